"""Quality of the mini model against its ablations and baselines: the paper's claims in miniature.

Writes the dev scenes (seeds 1,000,000 + i; both kinds, all trajectories) through the procedural
writer in the official layout, then runs ``gen3r eval`` itself, one output folder per (task,
checkpoint), so adding a row or scenes reruns only what is new (eval's per-scene JSONL resumes):

* 1view and 2view generation with ground-truth cameras. Rows: mini Gen3R, 2-stage (an
  appearance-only DiT, then mini VGGT on its frames), w/o KL (adapter without the KL alignment, DiT
  retrained), VGGT-only from the condition views (geometry), copying the condition frame
  (appearance floor). Metrics: PSNR, SSIM (LPIPS with ``--lpips-weights``), accuracy / completeness /
  Chamfer after Umeyama + FPS, and camera controllability AUC@30: the paper's Table 5 protocol,
  poses estimated from the generated frames (mini VGGT on them: eval's ``two_stage`` method) against
  the ground truth.
* allview reconstruction without cameras: Chamfer and AUC@30 of mini Gen3R, VAE-only (adapter round
  trip) and mini VGGT alone (Tables 3 and 8).

Every number is a mean over scenes with a 95 % percentile-bootstrap interval; the paper's orderings
are checked as hypotheses. Writes ``<out>/quality.md`` (tables + verdicts), ``<out>/quality.json``
and the plots ``<out>/quality-*.png``; ``--docs`` copies them into docs/benchmarks.md's folder.

    python benchmarks/quality_mini.py --scenes 64                 # the full run (hours on 2 CPU cores)
    python benchmarks/quality_mini.py --scenes 4 --steps 5         # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen3r.atomic import atomic_dir
from gen3r.cli.main import main as gen3r
from gen3r.data.cache import DEV_SEEDS
from gen3r.errors import Gen3RError
from gen3r.eval.runner import latest_records
from gen3r.eval.stats import bootstrap_interval

logger = logging.getLogger("quality_mini")
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    checkpoint: str       # which --checkpoint option supplies the model
    method: str           # gen3r eval method giving the row's frames and geometry
    camera_method: str | None = None  # method whose AUC@30 is the row's camera number


GENERATION_ROWS = (
    Row("gen3r", "mini Gen3R", "checkpoint", "gen3r", "two_stage"),
    Row("two_stage", "2-stage (RGB DiT, then VGGT)", "two_stage", "gen3r", "two_stage"),
    Row("no_kl", "w/o KL", "no_kl", "gen3r", "two_stage"),
    Row("vggt", "VGGT-only (condition views)", "checkpoint", "vggt"),
    Row("copy", "copy condition frame", "checkpoint", "copy_first"),
)
RECON_ROWS = (
    Row("gen3r", "mini Gen3R", "checkpoint", "gen3r", "gen3r"),
    Row("vae_only", "VAE only (adapter round trip)", "checkpoint", "vae_only", "vae_only"),
    Row("vggt", "mini VGGT alone", "checkpoint", "vggt", "vggt"),
)
#: The ablations' trained components (float16), kept in the repository so that the benchmark reruns
#: without their hours of training: ``scripts/train_ablations.sh`` copies them here from its runs. Where
#: an ablation's run folder is absent (a fresh clone), the benchmark assembles the ablation from the
#: shipped model (its VGGT, VAE and towers, on which the ablations were trained) and these parts.
ABLATION_WEIGHTS = ROOT / "benchmarks" / "ablation-weights"
ABLATION_PARTS = {"two_stage": ("2stage", {"dit": "transformer"}),
                  "no_kl": ("nokl", {"dit": "transformer", "adapter": "geo_adapter"})}
GENERATION_METRICS = ("psnr", "ssim", "lpips", "accuracy", "completeness", "chamfer", "auc30")
RECON_METRICS = ("chamfer", "accuracy", "completeness", "auc30")
#: Task -> its rows and metrics; every loop over tasks goes through this table.
SUITES = {"1view": (GENERATION_ROWS, GENERATION_METRICS), "2view": (GENERATION_ROWS, GENERATION_METRICS),
          "recon": (RECON_ROWS, RECON_METRICS)}
TASKS = tuple(SUITES)
LOWER_IS_BETTER = {"lpips", "accuracy", "completeness", "chamfer"}


def eval_runs(rows: tuple[Row, ...], task: str) -> dict[str, list[str]]:
    """Checkpoint option -> the eval methods its one run must produce (gen3r always runs)."""
    runs: dict[str, set[str]] = {}
    for row in rows:
        runs.setdefault(row.checkpoint, set()).update(m for m in (row.method, row.camera_method) if m)
    return {ck: sorted(m - {"gen3r"}) for ck, m in runs.items()}


def resolve_ablation(option: str, path: str | None, base: str, out: Path,
                     weights: Path = ABLATION_WEIGHTS) -> str | None:
    """The checkpoint of ablation ``option`` (``two_stage`` / ``no_kl``): ``path`` when it holds one,
    else one assembled once into ``out/models`` from ``base`` and the kept parts under ``weights``;
    None (its rows stay empty) when neither exists or ``path`` is ``none``."""
    if path is None or path == "none":
        return None
    if (Path(path) / "model_index.json").is_file():
        return path
    name, parts = ABLATION_PARTS[option]
    if not all((weights / name / component).is_dir() for component in parts.values()):
        logger.warning("%s has no checkpoint and %s no parts of it (scripts/train_ablations.sh): its rows stay "
                       "empty", path, weights / name)
        return None
    target = out / "models" / name
    if not (target / "model_index.json").is_file():
        command = ["assemble", str(target), "--base", base, "--fp16", "--overwrite"]
        for stage, component in parts.items():
            command += [f"--{stage}", str(weights / name / component)]
        assert gen3r(command) == 0, command
    return str(target)


def keep_parts(option: str, model: str | Path, weights: Path | None = None) -> list[Path]:
    """Copy the trained components of ablation ``option`` from its assembled checkpoint ``model``
    into ``weights`` (default :data:`ABLATION_WEIGHTS`; each one atomically): what
    :func:`resolve_ablation` assembles it from later."""
    weights = ABLATION_WEIGHTS if weights is None else weights
    name, parts = ABLATION_PARTS[option]
    kept = []
    for component in parts.values():
        source = Path(model) / component
        if not source.is_dir():
            raise Gen3RError(f"{source} is missing: assemble the {option} model first (scripts/train_ablations.sh)")
        with atomic_dir(weights / name / component, overwrite=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
        kept.append(weights / name / component)
    return kept


def write_dev_data(data: Path, scenes: int, frames: int, size: int) -> None:
    if (data / "seeds.json").is_file() and len(json.loads((data / "seeds.json").read_text())["seeds"]) == scenes:
        return
    seeds = f"{DEV_SEEDS.start}:{DEV_SEEDS.start + scenes}"
    assert gen3r(["cache", str(data), "--seeds", seeds, "--frames", str(frames), "--size", str(size),
                  "--layout", "official", "--overwrite"]) == 0


def run_evals(args: argparse.Namespace, data: Path) -> dict[tuple[str, str], Path]:
    """Run (or resume) every eval; returns (task, checkpoint option) -> output folder."""
    folders = {}
    for task in args.tasks:
        rows, _ = SUITES[task]
        for option, methods in eval_runs(rows, task).items():
            checkpoint = getattr(args, option)
            if checkpoint is None:
                logger.warning("no --%s given: its rows stay empty", option.replace("_", "-"))
                continue
            out = args.out / task / option
            command = ["eval", "--task", task, "--dataset", "official", "--root", str(data), "--out", str(out),
                       "--checkpoint", str(checkpoint), "--frames", str(args.frames), "--height", str(args.size),
                       "--width", str(args.size), "--baselines", ",".join(methods) or "none",
                       "--num-points", str(args.num_points)]
            if args.steps:
                command += ["--steps", str(args.steps)]
            if args.lpips_weights:
                command += ["--lpips-weights", str(args.lpips_weights)]
            assert gen3r(command) == 0, command
            folders[(task, option)] = out
    return folders


def per_scene(folder: Path, method: str, metric: str, scenes: set[str] | None = None) -> dict[str, float]:
    """Sequence -> value of ``metric`` for ``method`` (newest record; scenes without it, and scenes
    outside ``scenes`` when given, left out)."""
    out = {}
    for rec in latest_records(folder):
        value = (rec.get("metrics") or {}).get(metric)
        if scenes is not None and rec["sequence"] not in scenes:
            continue
        if rec["method"] == method and "skipped" not in rec and value is not None and np.isfinite(value):
            out[rec["sequence"]] = float(value)
    return out


def table(folders: dict, task: str, rows: tuple[Row, ...], metrics: tuple[str, ...],
          scenes: set[str] | None = None) -> dict[str, dict]:
    """Row key -> metric -> {"mean", "low", "high", "n", "values"} (values per sequence; only the
    sequences in ``scenes`` when given: the current dev set, not records of earlier, larger runs)."""
    result = {}
    for row in rows:
        folder = folders.get((task, row.checkpoint))
        if folder is None:
            continue
        cells = {}
        for metric in metrics:
            method = row.camera_method if metric == "auc30" else row.method
            if method is None:
                continue
            values = per_scene(folder, method, metric, scenes)
            if not values:
                continue
            cells[metric] = {**interval(list(values.values())), "n": len(values), "values": values}
        result[row.key] = {"label": row.label, **cells}
    return result


def interval(values: list[float]) -> dict[str, float]:
    """``{"mean", "low", "high"}``: the mean of ``values`` and its 95 % percentile-bootstrap interval."""
    return dict(zip(("mean", "low", "high"), bootstrap_interval(values)))


def _cell(cell: dict | None) -> str:
    if not cell:
        return "-"
    return f"{cell['mean']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}]"


def markdown_table(results: dict, metrics: tuple[str, ...]) -> str:
    head = "| row | " + " | ".join(f"{m}{' (lower better)' if m in LOWER_IS_BETTER else ''}" for m in metrics)
    lines = [head + " | scenes |", "|---|" + "---|" * (len(metrics) + 1)]
    for row in results.values():
        n = max((row[m]["n"] for m in metrics if m in row), default=0)
        lines.append(f"| {row['label']} | " + " | ".join(_cell(row.get(m)) for m in metrics) + f" | {n} |")
    return "\n".join(lines)


def compare(results: dict, better: str, worse: str, metric: str) -> tuple[str, str]:
    """(verdict, numbers) of the hypothesis 'row ``better`` beats row ``worse`` on ``metric``'."""
    a, b = results.get(better, {}).get(metric), results.get(worse, {}).get(metric)
    if not a or not b:
        return "not measured", "-"
    lower = metric in LOWER_IS_BETTER
    holds = a["mean"] < b["mean"] if lower else a["mean"] > b["mean"]
    separated = (a["high"] < b["low"]) if lower else (a["low"] > b["high"])
    paired = sorted(set(a["values"]) & set(b["values"]))
    diff = [a["values"][s] - b["values"][s] for s in paired]
    d_mean, d_low, d_high = bootstrap_interval(diff)
    paired_sep = (d_high < 0) if lower else (d_low > 0)
    verdict = ("holds (paired interval excludes 0)" if holds and paired_sep else
               "holds (intervals separate)" if holds and separated else
               "holds in the mean, within the noise" if holds else
               "does not hold" + (" (paired interval excludes 0)" if ((d_low > 0) if lower else (d_high < 0)) else ""))
    return verdict, f"{a['mean']:.3f} vs {b['mean']:.3f}; paired difference {d_mean:+.3f} [{d_low:+.3f}, {d_high:+.3f}]"


HYPOTHESES = (
    # (text, task, better row, worse row, metric)
    ("joint < 2-stage on Chamfer (1view)", "1view", "gen3r", "two_stage", "chamfer"),
    ("2-stage < w/o KL on Chamfer (1view)", "1view", "two_stage", "no_kl", "chamfer"),
    ("joint < 2-stage on Chamfer (2view)", "2view", "gen3r", "two_stage", "chamfer"),
    ("2-stage < w/o KL on Chamfer (2view)", "2view", "two_stage", "no_kl", "chamfer"),
    ("joint < w/o KL on Chamfer (1view)", "1view", "gen3r", "no_kl", "chamfer"),
    ("joint < w/o KL on Chamfer (2view)", "2view", "gen3r", "no_kl", "chamfer"),
    ("joint > 2-stage on PSNR (1view)", "1view", "gen3r", "two_stage", "psnr"),
    ("joint > 2-stage on PSNR (2view)", "2view", "gen3r", "two_stage", "psnr"),
    ("joint > w/o KL on PSNR (1view)", "1view", "gen3r", "no_kl", "psnr"),
    ("joint > 2-stage on camera AUC@30 (1view; Table 5)", "1view", "gen3r", "two_stage", "auc30"),
    ("joint > w/o KL on camera AUC@30 (1view; Table 5)", "1view", "gen3r", "no_kl", "auc30"),
    ("generation better than VGGT-only on Completeness (1view)", "1view", "gen3r", "vggt", "completeness"),
    ("generation better than VGGT-only on Completeness (2view)", "2view", "gen3r", "vggt", "completeness"),
    ("mini Gen3R < mini VGGT alone on reconstruction Chamfer (Table 3)", "recon", "gen3r", "vggt", "chamfer"),
)


def verdicts(results: dict[str, dict]) -> list[tuple[str, str, str]]:
    out = [(text, *compare(results[task], better, worse, metric))
           for text, task, better, worse, metric in HYPOTHESES]
    rec = results["recon"]
    a, b = rec.get("vae_only", {}).get("chamfer"), rec.get("vggt", {}).get("chamfer")
    if a and b:
        close = abs(a["mean"] - b["mean"]) <= 0.1 * b["mean"] or (a["low"] <= b["high"] and b["low"] <= a["high"])
        out.append(("VAE-only close to VGGT alone on reconstruction Chamfer (within 10 % or overlapping intervals)",
                    "holds" if close else "does not hold", f"{a['mean']:.3f} vs {b['mean']:.3f}"))
    return out


def breakdown(results: dict, data: Path, task: str, metric: str) -> str:
    """Mean ``metric`` per trajectory and kind of scene for each row (per-scene evidence)."""
    listing = {s["name"]: s for s in json.loads((data / "seeds.json").read_text()).get("scenes", [])}
    groups = sorted({(s["kind"], s["trajectory"]) for s in listing.values()})
    lines = ["| row | " + " | ".join(f"{k} {t}" for k, t in groups) + " |", "|---|" + "---|" * len(groups)]
    for row in results[task].values():
        if metric not in row:
            continue
        cells = []
        for group in groups:
            vals = [v for s, v in row[metric]["values"].items()
                    if s.split("/")[-1] in listing and (listing[s.split("/")[-1]]["kind"],
                                                        listing[s.split("/")[-1]]["trajectory"]) == group]
            cells.append(f"{np.mean(vals):.3f} ({len(vals)})" if vals else "-")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geometry_paths(folders: dict, task: str, scenes: set[str] | None = None) -> str:
    """Each generative row's own geometry next to mini VGGT run on its generated frames (eval's
    ``two_stage`` method): with the geometry path held fixed, what remains is the frames' quality."""
    head = ["| row | Chamfer, own geometry | Chamfer, VGGT on its frames | depth AbsRel, own | "
            "depth AbsRel, VGGT on its frames |", "|---|---|---|---|---|"]
    lines = []
    for row in GENERATION_ROWS:
        folder = folders.get((task, row.checkpoint))
        if row.method != "gen3r" or folder is None:
            continue
        cells = []
        for metric in ("chamfer", "depth_abs_rel"):
            for method in ("gen3r", "two_stage"):
                values = list(per_scene(folder, method, metric, scenes).values())
                cells.append(_cell(interval(values)) if values else "-")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(head + lines)


def identity_cameras(data: Path, frames: int, size: int) -> dict[str, float]:
    """Pose metrics of constant identity cameras (every frame at the first camera) on the dev scenes:
    the floor a camera estimate that learnt nothing reaches."""
    from gen3r.eval.datasets import OfficialLayoutReader
    from gen3r.eval.runner import camera_metrics, prepare_sequence

    reader = OfficialLayoutReader(data, split="test")
    identity = np.tile(np.eye(4)[:3], (frames, 1, 1))
    per = [camera_metrics(identity, prepare_sequence(reader.load(name), size, size).cameras.numpy()[0][:frames])[0]
           for name in reader.names()]
    return {key: float(np.mean([m[key] for m in per])) for key in ("rra30", "rta30", "auc30")}


def camera_table(results: dict, folders: dict, identity: dict[str, float], scenes: set[str] | None = None) -> str:
    """RRA@30 / RTA@30 / AUC@30 of every camera row next to constant identity cameras."""
    lines = ["| task | row | RRA@30 | RTA@30 | AUC@30 |", "|---|---|---|---|---|"]
    for task, (rows, _) in SUITES.items():
        for row in rows:
            folder = folders.get((task, row.checkpoint))
            if row.camera_method is None or folder is None or row.key not in results[task]:
                continue
            cells = []
            for metric in ("rra30", "rta30", "auc30"):
                values = list(per_scene(folder, row.camera_method, metric, scenes).values())
                cells.append(f"{np.mean(values):.3f}" if values else "-")
            lines.append(f"| {task} | {row.label} | " + " | ".join(cells) + " |")
    lines.append("| all | constant identity cameras | " + " | ".join(f"{identity[k]:.3f}" for k in
                                                                    ("rra30", "rta30", "auc30")) + " |")
    return "\n".join(lines)


def bar_plots(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    colours = {key: f"C{i}" for i, key in enumerate(dict.fromkeys(r.key for r in GENERATION_ROWS + RECON_ROWS))}
    for task, (_, metrics) in SUITES.items():
        shown = [m for m in metrics if any(m in r for r in results[task].values())]
        if not shown:
            continue
        fig, axes = plt.subplots(1, len(shown), figsize=(3.0 * len(shown), 3.4), squeeze=False)
        for ax, metric in zip(axes[0], shown):
            keys = [k for k, r in results[task].items() if metric in r]
            rows = [results[task][k] for k in keys]
            means = [r[metric]["mean"] for r in rows]
            err = np.array([[r[metric]["mean"] - r[metric]["low"], r[metric]["high"] - r[metric]["mean"]]
                            for r in rows]).T
            ax.bar(range(len(rows)), means, yerr=err, capsize=3, color=[colours[k] for k in keys])
            ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=60, ha="right", fontsize=7)
            ax.set_title(metric + (" (lower better)" if metric in LOWER_IS_BETTER else ""), fontsize=9)
        fig.suptitle(f"mini model, {task}: mean over scenes, 95 % bootstrap interval", fontsize=10)
        fig.tight_layout()
        path = out / f"quality-{task}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def scene_figure(args: argparse.Namespace, data: Path, out: Path, count: int = 3) -> Path | None:
    """A few scenes (1view, GT cameras): input, generated frames of each generative row and its point
    cloud seen from above (x-z, in the first camera's frame), the ground-truth frames and cloud."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from gen3r.eval.datasets import OfficialLayoutReader
    from gen3r.eval.runner import prepare_sequence
    from gen3r.pipeline import Gen3RPipeline

    reader = OfficialLayoutReader(data, split="test")
    names = reader.names()[:count]
    rows = [r for r in GENERATION_ROWS if r.method == "gen3r" and getattr(args, r.checkpoint) is not None]
    pipes = {r.key: Gen3RPipeline.from_pretrained(getattr(args, r.checkpoint), torch_dtype=torch.float32)
             for r in rows}
    f = args.frames
    shown = [0, f // 2, f - 1]
    fig, axes = plt.subplots(len(names), 3 + len(rows) * 2, figsize=(2.0 * (3 + 2 * len(rows)), 2.1 * len(names)),
                             squeeze=False)

    def top_view(ax, pts: np.ndarray, cols: np.ndarray, title: str) -> None:
        pick = np.random.default_rng(0).choice(len(pts), min(4000, len(pts)), replace=False)
        ax.scatter(pts[pick, 0], pts[pick, 2], c=np.clip(cols[pick], 0, 1), s=0.5)
        ax.set_title(title, fontsize=7)
        ax.set_aspect("equal", adjustable="datalim")

    for i, name in enumerate(names):
        seq = prepare_sequence(reader.load(name), args.size, args.size)
        frames, cameras = seq.frames[:f], seq.cameras.index(list(range(f)))
        axes[i, 0].imshow(frames[0].permute(1, 2, 0).numpy())
        axes[i, 0].set_title("input" if i == 0 else "", fontsize=8)
        for j, row in enumerate(rows):
            result = pipes[row.key](frames[:1][None], task="1view", cameras=cameras, num_frames=f, height=args.size,
                                    width=args.size, num_inference_steps=args.steps,
                                    generator=torch.Generator().manual_seed(0))
            strip = np.concatenate([result.rgb[0, k].numpy() for k in shown], axis=1)
            axes[i, 1 + 2 * j].imshow(np.clip(strip, 0, 1))
            axes[i, 1 + 2 * j].set_title(f"{row.label}\nframes {shown}" if i == 0 else "", fontsize=7)
            mask = result.point_mask[0].numpy().reshape(-1)
            top_view(axes[i, 2 + 2 * j], result.world_points[0].numpy().reshape(-1, 3)[mask],
                     result.rgb[0].numpy().reshape(-1, 3)[mask], "its points from above" if i == 0 else "")
        gt = np.concatenate([frames[k].permute(1, 2, 0).numpy() for k in shown], axis=1)
        axes[i, -2].imshow(gt)
        axes[i, -2].set_title("ground truth" if i == 0 else "", fontsize=8)
        w2c = cameras.numpy()[0][0]  # GT points into the first camera's frame, as the generated ones
        valid = seq.valid[:f].reshape(-1)
        pts = seq.points[:f].reshape(-1, 3)[valid] @ w2c[:3, :3].T + w2c[:3, 3]
        top_view(axes[i, -1], pts, frames.permute(0, 2, 3, 1).numpy().reshape(-1, 3)[valid],
                 "ground-truth points" if i == 0 else "")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = out / "quality-scenes.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="gen3r-mini", help="mini Gen3R (default: the shipped model)")
    parser.add_argument("--two-stage", default="runs/ablations/2stage/model",
                        help="the 2-stage ablation ('none': no rows; default: its run, else the kept parts)")
    parser.add_argument("--no-kl", default="runs/ablations/nokl/model", help="the w/o KL ablation (as --two-stage)")
    parser.add_argument("--scenes", type=int, default=64, help="dev scenes (default 64)")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--num-points", type=int, default=20000, help="FPS points per cloud (default 20000)")
    parser.add_argument("--lpips-weights", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/quality-mini"))
    parser.add_argument("--figure-scenes", type=int, default=3, help="scenes in the figure (0: none)")
    parser.add_argument("--tasks", type=lambda v: v.split(","), default=list(TASKS),
                        help="comma-separated subset of 1view,2view,recon to run (default all; e.g. two processes "
                             "over different tasks, then one run of all to collect)")
    parser.add_argument("--docs", type=Path, default=None, help="copy the plots into this folder")
    parser.add_argument("--keep", choices=tuple(ABLATION_PARTS), default=None,
                        help="only copy this ablation's trained parts from its --two-stage / --no-kl checkpoint "
                             "into benchmarks/ablation-weights (scripts/train_ablations.sh does), then stop")
    args = parser.parse_args(argv)
    if args.keep:
        try:
            return {"kept": keep_parts(args.keep, getattr(args, args.keep))}
        except Gen3RError as exc:
            parser.error(str(exc))  # one line, exit 2, nothing copied
    if unknown := set(args.tasks) - set(TASKS):
        parser.error(f"--tasks: unknown {sorted(unknown)}; choose from {','.join(TASKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for option in ("two_stage", "no_kl"):
        setattr(args, option, resolve_ablation(option, getattr(args, option), args.checkpoint, args.out))
    data = args.out / "dev-data"
    write_dev_data(data, args.scenes, args.frames, args.size)
    folders = run_evals(args, data)
    scenes = {s["name"] for s in json.loads((data / "seeds.json").read_text())["scenes"]}
    results = {task: table(folders, task, rows, metrics, scenes) for task, (rows, metrics) in SUITES.items()}
    plots = bar_plots(results, args.out)
    if args.figure_scenes:
        plots.append(scene_figure(args, data, args.out, args.figure_scenes))
    checks = verdicts(results)
    text = [f"Dev scenes: {args.scenes} (seeds {DEV_SEEDS.start}..{DEV_SEEDS.start + args.scenes - 1}), "
            f"{args.frames} frames of {args.size} x {args.size}. Mean over scenes [95 % bootstrap interval]; "
            "auc30 of generation rows = mini VGGT on the generated frames (Table 5 protocol).", ""]
    for task, (_, metrics) in SUITES.items():
        text += [f"### {task}", "", markdown_table(results[task], metrics), ""]
    text += ["### The paper's orderings", "", "| hypothesis | verdict | numbers |", "|---|---|---|"]
    text += [f"| {h} | {v} | {n} |" for h, v, n in checks] + [""]
    text += ["### 1view Chamfer by scene kind and trajectory (scenes)", "",
             breakdown(results, data, "1view", "chamfer"), "",
             "### 1view PSNR by scene kind and trajectory (scenes)", "", breakdown(results, data, "1view", "psnr"), ""]
    text += ["### Cameras next to constant identity cameras", "",
             camera_table(results, folders, identity_cameras(data, args.frames, args.size), scenes), ""]
    for task in ("1view", "2view"):
        text += [f"### {task} geometry: own geometry vs mini VGGT on the generated frames", "",
                 geometry_paths(folders, task, scenes), ""]
    (args.out / "quality.md").write_text("\n".join(text))
    (args.out / "quality.json").write_text(json.dumps({"results": results, "verdicts": checks}, indent=1))
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        for path in plots:
            shutil.copy(path, args.docs / path.name)
    print("\n".join(text))
    return {"results": results, "verdicts": checks, "plots": plots}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
