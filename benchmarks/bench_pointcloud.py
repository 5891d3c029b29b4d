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
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from gen3r.geometry import farthest_point_sampling, filter_point_cloud, unproject_depth

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
    rays = np.stack([(u - intrinsic[0, 2]) / intrinsic[0, 0], (v - intrinsic[1, 2]) / intrinsic[1, 1], np.ones_like(u)], -1)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=560)
    parser.add_argument("--voxel-size", type=float, default=0.005)
    parser.add_argument("--remove-far-points", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=int, nargs=2, metavar=("N", "M"), default=None,
                        help="also time farthest_point_sampling of M points from N points of the filtered cloud")
    args = parser.parse_args()

    points, colors = make_scene(args.frames, args.size, args.seed)
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
    if args.fps:
        subset = out_points[np.random.default_rng(args.seed).permutation(len(out_points))[: args.fps[0]]]
        wall, cpu = time.perf_counter(), time.process_time()
        farthest_point_sampling(subset, args.fps[1])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"\nfarthest_point_sampling {len(subset):,} -> {args.fps[1]:,}: {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
