"""Training curves: ``metrics.jsonl`` of one or more runs -> a PNG of the loss terms over steps."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gen3r.atomic import atomic_path
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

#: Logged values that are not loss terms (left out of the plots).
NOT_LOSSES = ("step", "lr", "grad_norm", "clip", "sigma", "camera_dropped", "kl_adaptive_weight")


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The records of a ``metrics.jsonl`` (a run folder or the file); a torn last line is skipped."""
    path = Path(path)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise Gen3RError(f"{path} does not exist; pass a training output folder with metrics.jsonl")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over ``window`` records (shorter at the start)."""
    x = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(x) < 2:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_runs(runs: Mapping[str, str | Path], out: str | Path, keys: Mapping[str, Sequence[str]] | None = None,
              window: int = 20) -> Path:
    """One panel per run (up to 4 per row) with its loss terms (log scale, moving average over
    ``window`` records) against the optimizer step; written atomically as a PNG. ``keys``: run -> terms to draw
    (default: every logged loss term)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(runs), 4)
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, (name, path) in zip(axes.flat, runs.items()):
        records = read_metrics(path)
        if not records:
            raise Gen3RError(f"{path} holds no metrics records")
        steps = [r["step"] for r in records]
        chosen = (keys or {}).get(name) or [k for k in records[-1] if k not in NOT_LOSSES]
        for key in chosen:
            values = [r.get(key, np.nan) for r in records]
            ax.plot(steps, smooth(values, window), label=key, linewidth=1.2)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    logger.info("wrote %s", out)
    return Path(out)
