"""Benchmark tables in the layout of the Gen3R paper: rows = methods, column groups = metric families.

:func:`write_tables` writes ``results.md`` (a markdown table whose first header row names the
families, Appearance / Geometry / Camera, and whose second row names the metrics with the paper's
arrows, like Tables 1-5 and 8) and ``results.csv`` (one row per method, one column per metric, empty
cells where a metric does not apply), both atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gen3r.atomic import atomic_path

#: (family, [(key, header, decimals)]) in table order.
COLUMNS: tuple[tuple[str, tuple[tuple[str, str, int], ...]], ...] = (
    ("Appearance", (("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 4), ("lpips", "LPIPS ↓", 4))),
    ("Geometry", (("accuracy", "Accuracy ↓", 4), ("completeness", "Completeness ↓", 4), ("chamfer", "CD ↓", 4),
                  ("depth_abs_rel", "AbsRel ↓", 4))),
    ("Camera", (("auc30", "AUC@30 ↑", 4), ("auc15", "AUC@15 ↑", 4), ("auc5", "AUC@5 ↑", 4),
                ("rra30", "RRA@30 ↑", 4), ("rta30", "RTA@30 ↑", 4))),
)
CSV_FIELDS = ("method", "label", "num_sequences", "num_skipped", "psnr", "ssim", "lpips", "accuracy", "completeness",
              "chamfer", "chamfer_relative_percent", "depth_abs_rel", "auc30", "auc15", "auc5", "rra30", "rta30",
              "rra_mean_deg", "rta_mean_deg")
TASK_TITLES = {"1view": "1-view generation", "2view": "2-view generation", "recon": "feed-forward reconstruction"}
EMPTY = "–"


def _cell(value: float | None, decimals: int) -> str:
    return EMPTY if value is None else f"{value:.{decimals}f}"


def markdown_table(summary: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> str:
    """The markdown text of ``results.md`` for ``summary`` (:func:`gen3r.eval.runner.summarize`)."""
    cond = "with" if config.get("camera_cond") else "without"
    task_name = config.get("task")
    task = TASK_TITLES.get(task_name, task_name) if task_name is not None else None
    lines = [f"# {config.get('dataset_label') or config.get('dataset')}: {task}, {cond} camera conditions", "",
             f"{len(config.get('sequences', []))} sequences, {config.get('num_frames')} frames at "
             f"{config.get('height')}x{config.get('width')}, {config.get('steps')} steps, guidance "
             f"{config.get('guidance')}, seed {config.get('seed')}; checkpoint `{config.get('checkpoint')}`. "
             f"LPIPS: {config.get('lpips_net') or 'not computed (no weights)'}. Geometry in ground-truth units "
             "after Umeyama Sim(3) alignment; pose AUC from the relative pose errors of all sequences.", ""]
    group_row, metric_row = ["Method", "N"], ["", ""]
    for family, cols in COLUMNS:
        group_row += [family] + [""] * (len(cols) - 1)
        metric_row += [f"**{header}**" for _, header, _ in cols]
    rows = [group_row, ["---"] * len(group_row), metric_row]
    for row in summary.values():
        cells = [str(row["label"]), str(row["num_sequences"])]
        for _, cols in COLUMNS:
            cells += [_cell(row.get(key), decimals) for key, _, decimals in cols]
        rows.append(cells)
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    notes = []
    for row in summary.values():
        for reason, names in (row.get("skipped") or {}).items():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            notes.append(f"{row['label']}: {len(names)} {reason} ({shown})")
    if notes:
        lines += ["", "Skipped: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def csv_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The CSV text of ``results.csv``: header :data:`CSV_FIELDS`, one row per method."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for method, row in summary.items():
        writer.writerow({"method": method, **{k: ("" if row.get(k) is None else row[k]) for k in CSV_FIELDS[1:]}})
    return buf.getvalue()


def write_tables(out_dir: str | Path, summary: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> None:
    """Write ``results.md`` and ``results.csv`` into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    for name, text in (("results.md", markdown_table(summary, config)), ("results.csv", csv_table(summary))):
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")


__all__ = ["COLUMNS", "CSV_FIELDS", "markdown_table", "csv_table", "write_tables"]
