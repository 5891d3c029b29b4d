"""The mini model's dev-set targets (issue "Embedded mini Gen3R"), measured with `gen3r eval` itself.

Writes the dev scenes (seeds 1,000,000 + i) through the procedural writer in the official layout,
runs `gen3r eval` for 1view and 2view generation with ground-truth cameras (baseline: copying the
first frame) and for allview reconstruction (baselines: mini VGGT, VAE only), then checks:

* 1view: PSNR over frames 1..F-1 at least 1 dB above copying frame 0; camera AUC@30 >= 0.5;
* 2view: on the middle frames 1..F-2, PSNR at least 0.5 dB above 1view on the same frames;
* allview: camera AUC@30 >= 0.6; depth AbsRel <= 0.25 after per-frame median scaling.

    python benchmarks/mini_targets.py [--checkpoint gen3r-mini] [--scenes 8] [--out runs/mini-targets]

Prints a markdown table (also written to ``<out>/targets.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gen3r.cli.main import main as gen3r
from gen3r.data.cache import DEV_SEEDS
from gen3r.eval.runner import read_records, summarize


def middle_psnr(out: Path, method: str, frames: list[int]) -> float:
    """Mean over sequences of the mean PSNR over ``frames`` (per-frame values of metrics.jsonl)."""
    values = [np.mean([r["psnr_frames"][str(i)] for i in frames]) for r in read_records(out)
              if r["method"] == method and not r.get("skipped")]
    return float(np.mean(values))


def identity_camera_auc(data: Path) -> tuple[float, float]:
    """(AUC@30, RRA@30) of predicting the identity camera for every frame, on the dev scenes of
    ``data``: the floor any camera number of the mini model is to be read against (the procedural
    paths turn little between frames, so a constant camera already gets many rotations right)."""
    from gen3r.eval.camera_metrics import auc_from_errors, relative_pose_errors
    from gen3r.eval.datasets import OfficialLayoutReader

    reader = OfficialLayoutReader(data, split="test")
    rra, rta = [], []
    for name in reader.names():
        gt = reader.load(name, with_depth=False).extrinsics
        r, t = relative_pose_errors(np.tile(np.eye(4), (len(gt), 1, 1)), gt)
        rra.append(r)
        rta.append(t)
    rra, rta = np.concatenate(rra), np.concatenate(rta)
    return auc_from_errors(rra, rta, 30), float((rra < 30).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="gen3r-mini")
    parser.add_argument("--scenes", type=int, default=8, help="dev scenes (>= 6)")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/mini-targets"))
    args = parser.parse_args()

    data = args.out / "dev-data"
    if not (data / "test_cameras_paths.txt").is_file():
        seeds = f"{DEV_SEEDS.start}:{DEV_SEEDS.start + args.scenes}"
        assert gen3r(["cache", str(data), "--seeds", seeds, "--frames", str(args.frames), "--size", str(args.size),
                      "--layout", "official"]) == 0
    common = ["--dataset", "official", "--root", str(data), "--checkpoint", args.checkpoint, "--frames",
              str(args.frames), "--height", str(args.size), "--width", str(args.size)]
    if args.steps:
        common += ["--steps", str(args.steps)]
    if args.guidance:
        common += ["--guidance", str(args.guidance)]
    runs = {"1view": ["--baselines", "copy_first"], "2view": ["--baselines", "copy_first"],
            "recon": ["--baselines", "vggt,vae_only"]}
    summary = {}
    for task, extra in runs.items():
        out = args.out / task
        assert gen3r(["eval", "--task", task, "--out", str(out), *common, *extra]) == 0
        summary[task] = summarize(out)
    f = args.frames
    one, rec = summary["1view"], summary["recon"]
    middle = list(range(1, f - 1))
    rows = [
        ("1view PSNR - copy frame 0 (frames 1..F-1), dB", one["gen3r"]["psnr"] - one["copy_first"]["psnr"], ">= 1.0"),
        ("1view camera AUC@30 (generated vs GT)", one["gen3r"]["auc30"], ">= 0.5"),
        ("2view - 1view PSNR on frames 1..F-2, dB",
         middle_psnr(args.out / "2view", "gen3r", middle) - middle_psnr(args.out / "1view", "gen3r", middle), ">= 0.5"),
        ("allview camera AUC@30", rec["gen3r"]["auc30"], ">= 0.6"),
        ("allview depth AbsRel (per-frame median scaling)", rec["gen3r"]["depth_abs_rel"], "<= 0.25"),
    ]
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for name, value, goal in rows:
        op, bound = goal.split()
        met = value >= float(bound) if op == ">=" else value <= float(bound)
        lines.append(f"| {name} | {value:.3f} | {goal} | {'yes' if met else 'no'} |")
    context = {task: {m: {k: v for k, v in row.items()
                          if k in ("psnr", "ssim", "auc30", "rra30", "depth_abs_rel", "chamfer")}
                      for m, row in s.items()} for task, s in summary.items()}
    auc, rra = identity_camera_auc(data)
    context["identity cameras (reference)"] = {"auc30": auc, "rra30": rra}
    text = "\n".join(lines) + "\n\n```json\n" + json.dumps(context, indent=1) + "\n```\n"
    (args.out / "targets.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
