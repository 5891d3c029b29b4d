"""Time the evaluation metrics on paper-sized inputs (CPU).

Measures: Chamfer distance between two 200k-point clouds (cKDTree both ways), farthest point
sampling 200k -> 20k, the full ``point_cloud_metrics`` protocol on a 200k-pixel point map
(Umeyama + FPS of both clouds to 20k + Chamfer), and PSNR / SSIM / LPIPS-alex on a 49-frame
clip. Prints a Markdown table (median of ``--repeats`` runs: wall-clock and process CPU seconds;
CPU time is the better figure on a shared machine) and the load average.

    python benchmarks/bench_metrics.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from gen3r.eval import LPIPS, point_cloud_metrics, psnr, ssim
from gen3r.eval.geometry_metrics import nearest_distances
from gen3r.geometry import farthest_point_sampling


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds (all threads) over ``repeats`` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=256, help="image side for PSNR/SSIM/LPIPS")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(args.points, 3))
    b = rng.normal(size=(args.points, 3)) + 0.01
    side = int(round(args.points ** 0.5))
    gt_map = rng.normal(size=(1, side, side, 3))
    pred_map = 0.5 * gt_map + 0.01 * rng.normal(size=gt_map.shape)
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(args.frames, 3, args.size, args.size, generator=gen)
    img2 = (img + 0.05 * torch.randn(img.shape, generator=gen)).clamp(0, 1)
    model = LPIPS("alex")

    rows = [
        (f"Chamfer {args.points}<->{args.points} points (cKDTree, both directions)",
         lambda: (nearest_distances(a, b).mean(), nearest_distances(b, a).mean())),
        (f"FPS {args.points} -> {args.samples}", lambda: farthest_point_sampling(a, args.samples, seed=0)),
        (f"point_cloud_metrics, {side * side}-pixel map, align + FPS {args.samples} x2 + Chamfer",
         lambda: point_cloud_metrics(pred_map, gt_map, num_points=args.samples)),
        (f"PSNR, {args.frames} frames {args.size}x{args.size}", lambda: psnr(img, img2)),
        (f"SSIM, {args.frames} frames {args.size}x{args.size}", lambda: ssim(img, img2)),
        (f"LPIPS-alex, {args.frames} frames {args.size}x{args.size}",
         lambda: torch.no_grad()(model.forward)(img, img2)),
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}, "
          f"torch {torch.__version__}, repeats {args.repeats} (median), "
          f"load average before: {os.getloadavg()[0]:.1f}\n")
    print("| case | wall s | CPU s |\n|---|---|---|")
    for name, fn in rows:
        wall, cpu = _time(fn, args.repeats)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
