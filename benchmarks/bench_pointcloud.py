"""Benchmark: official-style PLY post-processing (gen3r.geometry.filter_point_cloud) at full size.

A procedural room (box walls + spheres) is ray-cast from a moving camera into depth maps of
``--frames`` x ``--size`` x ``--size`` (default 49 x 560 x 560 = 15.4 M points, Gen3R's output
size), with 0.5 % multiplicative depth noise and 0.3 % "flying pixels"; the maps are unprojected
with gen3r.geometry.unproject_depth and coloured procedurally. Then filter_point_cloud runs
(far cut optional -> statistical outlier removal -> voxel averaging) and wall time, CPU time and
peak RSS (resource.getrusage, whole process including the inputs) are reported as a markdown row.

    python benchmarks/bench_pointcloud.py                      # full size
    python benchmarks/bench_pointcloud.py --frames 5 --size 112  # quick check
    python benchmarks/bench_pointcloud.py --fps 200000 20000     # also time FPS 200k -> 20k
    python benchmarks/bench_pointcloud.py --stages               # per-function wall / CPU breakdown
    python benchmarks/bench_pointcloud.py --knn-only             # the k-NN alone, checked against pykdtree
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import numpy as np

from gen3r.geometry import farthest_point_sampling, filter_point_cloud, knn, pointcloud, unproject_depth

#: Functions timed by --stages, per module (each call's wall and CPU time is summed).
STAGES = {
    pointcloud: ["statistical_outlier_removal", "voxel_downsample", "_voxel_keys", "_group_means", "argsort_keys"],
    knn: ["estimate_cell_size", "_sort_keys", "argsort_keys", "_gather", "_grid_knn", "_coarse_grid",
          "_coarse_knn", "_kdtree_mean"],
}

ROOM_LO = np.array([-2.0, -1.5, -1.0])
ROOM_HI = np.array([2.0, 1.2, 6.0])
SPHERES = [((-0.8, 0.6, 2.5), 0.6), ((0.9, 0.3, 3.5), 0.9), ((0.0, 0.9, 1.6), 0.3)]


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def make_cameras(frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera extrinsics (F, 3, 4) along a forward arc, and shared intrinsics (F, 3, 3)."""
    s = np.linspace(0.0, 1.0, frames)
    extrinsics = np.zeros((frames, 3, 4))
    for i, si in enumerate(s):
        c2w_rot = _rot_y(0.35 * np.sin(2 * np.pi * si))
        center = np.array([0.6 * np.sin(np.pi * si), -0.1, 1.2 * si])
        extrinsics[i, :, :3] = c2w_rot.T
        extrinsics[i, :, 3] = -c2w_rot.T @ center
    focal = size / (2 * np.tan(np.radians(30.0)))
    k = np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    return extrinsics, np.repeat(k[None], frames, axis=0)


def render_depth(extrinsic: np.ndarray, intrinsic: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Ray-cast the room: camera-z depth (size, size) with noise and flying pixels."""
    rot, trans = extrinsic[:, :3], extrinsic[:, 3]
    center = -rot.T @ trans
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([(u - intrinsic[0, 2]) / intrinsic[0, 0], (v - intrinsic[1, 2]) / intrinsic[1, 1],
                     np.ones_like(u)], -1)
    dirs = rays @ rot  # world directions with unit camera z, so the ray parameter is the depth
    with np.errstate(divide="ignore"):
        exits = np.where(dirs > 0, (ROOM_HI - center) / dirs, (ROOM_LO - center) / dirs)
    depth = np.min(np.where(np.isfinite(exits), exits, np.inf), axis=-1)
    for sphere_center, radius in SPHERES:
        oc = center - np.asarray(sphere_center)
        a = (dirs**2).sum(-1)
        b = 2 * (dirs @ oc)
        disc = b * b - 4 * a * (oc @ oc - radius**2)
        hit = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
        depth = np.where((disc > 0) & (hit > 0) & (hit < depth), hit, depth)
    depth *= 1.0 + 0.005 * rng.standard_normal(depth.shape)
    flying = rng.random(depth.shape) < 0.003
    depth[flying] *= rng.uniform(0.3, 1.5, int(flying.sum()))
    return depth.astype(np.float32)


def make_scene(frames: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unprojected points (F*size*size, 3) float64 and colours (same, float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    extrinsics, intrinsics = make_cameras(frames, size)
    depth = np.stack([render_depth(extrinsics[i], intrinsics[i], size, rng) for i in range(frames)])
    points = unproject_depth(depth, extrinsics, intrinsics).reshape(-1, 3)
    colors = (0.5 + 0.5 * np.sin(3.0 * points + np.array([0.0, 2.0, 4.0]))).astype(np.float32)
    return points, colors


def instrument() -> dict[str, list]:
    """Wrap the :data:`STAGES` functions so that each call adds its wall and CPU time."""
    timings: dict[str, list] = {}
    for module, names in STAGES.items():
        for name in names:
            label = f"{name} ({module.__name__.rsplit('.', 1)[-1]})"
            timings[label] = [0, 0.0, 0.0]

            def timed(*args, _f=getattr(module, name), _slot=timings[label], **kwargs):  # noqa: B008 (bound per loop)
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return _f(*args, **kwargs)
                finally:
                    _slot[0] += 1
                    _slot[1] += time.perf_counter() - wall
                    _slot[2] += time.process_time() - cpu

            setattr(module, name, functools.wraps(getattr(module, name))(timed))
    return timings


def knn_only(points: np.ndarray, seed: int, k: int = 25, checked: int = 300_000) -> None:
    """Time ``mean_knn_distances`` (float32 points, as the filter passes them) and compare it with
    pykdtree on ``checked`` random points plus 100,000 of the 1 % with the largest mean distance."""
    from pykdtree.kdtree import KDTree

    p = points.astype(np.float32)
    wall, cpu = time.perf_counter(), time.process_time()
    got = knn.mean_knn_distances(p, k)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(len(p), min(checked, len(p)), replace=False),
                          np.flatnonzero(got > np.percentile(got, 99))[:100_000]])
    data = p.astype(np.float64)
    dist, _ = KDTree(data).query(data[idx], k=k)
    err = float(np.max(np.abs(got[idx] - dist.mean(axis=1)) / dist.mean(axis=1)))
    print(f"mean_knn_distances k={k}, {len(p):,} points: {wall:.1f} s wall, {cpu:.1f} s CPU; "
          f"max relative difference to pykdtree on {len(idx):,} points: {err:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=560)
    parser.add_argument("--voxel-size", type=float, default=0.005)
    parser.add_argument("--remove-far-points", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", action="store_true", help="also print wall / CPU time per pipeline function")
    parser.add_argument("--knn-only", action="store_true",
                        help="time only gen3r.geometry.knn.mean_knn_distances and check it against pykdtree")
    parser.add_argument("--fps", type=int, nargs=2, metavar=("N", "M"), default=None,
                        help="also time farthest_point_sampling of M points from N points of the filtered cloud")
    args = parser.parse_args()

    points, colors = make_scene(args.frames, args.size, args.seed)
    if args.knn_only:
        knn_only(points, args.seed)
        return
    timings = instrument() if args.stages else None
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    wall, cpu = time.perf_counter(), time.process_time()
    out_points, _ = filter_point_cloud(
        points, colors, voxel_size=args.voxel_size, remove_far_points=args.remove_far_points
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("| input points | output points | far cut | voxel | wall time | CPU time | peak RSS (inputs) |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {points.shape[0]:,} | {out_points.shape[0]:,} | {args.remove_far_points} | {args.voxel_size} "
        f"| {wall:.1f} s | {cpu:.1f} s | {peak:.2f} GB ({rss_inputs:.2f} GB) |"
    )
    if timings is not None:
        print("\n| function (module) | calls | wall s | CPU s |\n|---|---|---|---|")
        for name, (calls, w, c) in timings.items():
            print(f"| {name} | {calls} | {w:.2f} | {c:.2f} |")
    if args.fps:
        subset = out_points[np.random.default_rng(args.seed).permutation(len(out_points))[: args.fps[0]]]
        wall, cpu = time.perf_counter(), time.process_time()
        farthest_point_sampling(subset, args.fps[1])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"\nfarthest_point_sampling {len(subset):,} -> {args.fps[1]:,}: {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
