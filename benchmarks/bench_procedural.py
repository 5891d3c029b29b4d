"""Time the procedural renderer (frames per second) for every scene kind and trajectory on one core.

Renders ``--frames`` frames at ``--size`` x ``--size`` for each kind x trajectory and several
seeds, and prints a Markdown table of frames per second (median of ``--repeats`` runs; wall clock
and process CPU time, the latter insensitive to other load on the machine) plus the time of
writing one scene in each output format. BLAS / OpenMP threads are limited to 1 before
numpy is imported.

    python benchmarks/bench_procedural.py --frames 49 --size 128
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from gen3r.data import writers  # noqa: E402
from gen3r.data.procedural import KINDS, TRAJECTORIES, render_scene  # noqa: E402


def _median_seconds(fn, repeats: int, clock=time.perf_counter) -> float:
    runs = []
    for _ in range(repeats):
        start = clock()
        fn()
        runs.append(clock() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=128, help="image height = width in pixels")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per kind x trajectory")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass

    render_scene(0, 1, 8, 8)  # warm up imports
    print(f"{platform.processor() or platform.machine()}, 1 thread, {args.frames} frames at {args.size}x{args.size}\n")
    print("| kind | trajectory | frames/s wall (min / mean over seeds) | frames/s CPU time (min / mean) |")
    print("|---|---|---|---|")
    all_wall, all_cpu = [], []
    for kind in KINDS:
        for trajectory in TRAJECTORIES:
            wall, cpu = [], []
            for seed in range(args.seeds):
                def run(s: int = seed, kind: str = kind, trajectory: str = trajectory) -> None:
                    render_scene(s, args.frames, args.size, args.size, kind=kind, trajectory=trajectory)

                wall.append(args.frames / _median_seconds(run, args.repeats))
                cpu.append(args.frames / _median_seconds(run, args.repeats, time.process_time))
            all_wall += wall
            all_cpu += cpu
            print(f"| {kind} | {trajectory} | {min(wall):.1f} / {statistics.mean(wall):.1f} "
                  f"| {min(cpu):.1f} / {statistics.mean(cpu):.1f} |")
    print(f"| all | all | {min(all_wall):.1f} / {statistics.mean(all_wall):.1f} "
          f"| {min(all_cpu):.1f} / {statistics.mean(all_cpu):.1f} |\n")

    scene = render_scene(0, args.frames, args.size, args.size)
    print("| format | seconds to write one scene |")
    print("|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        calls = {
            "official": lambda out: writers.write_official(out, scene, overwrite=True),
            "re10k": lambda out: writers.write_re10k(out, scene, overwrite=True),
            "nerfstudio": lambda out: writers.write_nerfstudio(out, scene, overwrite=True),
            "npz": lambda out: writers.write_npz(out, scene, overwrite=True),
        }
        for name, call in calls.items():
            out = Path(tmp) / name
            print(f"| {name} | {_median_seconds(lambda c=call, o=out: c(o), args.repeats):.2f} |")


if __name__ == "__main__":
    main()
