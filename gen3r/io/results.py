"""Write everything a Gen3R run produces into one output folder, atomically.

Layout of ``OUT`` (created in a temporary sibling folder, renamed when complete):
``rgb.mp4``, ``depth.npz`` (depth, confidence, mask), ``depth.mp4`` (colourised), ``points.ply``
(post-processed like the official PLY), ``scene.glb`` (points + camera frustums), ``cameras.json``
(official format, generated cameras), ``colmap/`` (cameras.txt, images.txt, points3D.txt),
``transforms.json`` + ``images/`` (nerfstudio), ``config.json`` (resolved settings, versions).
All 3D data is in the first generated camera's frame (VGGT normalised units).
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from gen3r.atomic import atomic_dir
from gen3r.cameras import save_cameras, write_colmap
from gen3r.geometry import filter_point_cloud
from gen3r.io.exporters import (
    colorize_depth,
    write_depth_npz,
    write_glb,
    write_images,
    write_json,
    write_ply,
    write_video,
)

logger = logging.getLogger(__name__)

EXPORTED_FILES = ("rgb.mp4", "depth.npz", "depth.mp4", "points.ply", "scene.glb", "cameras.json",
                  "colmap/cameras.txt", "colmap/images.txt", "colmap/points3D.txt", "transforms.json",
                  "images", "config.json")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("gen3r", "torch", "diffusers", "transformers", "numpy", "scipy"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def point_cloud_from_output(world_points: np.ndarray, rgb: np.ndarray, remove_far_points: bool = False,
                            voxel_size: float | None = None,
                            keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Official PLY post-processing of one scene: all unprojected pixels (by default the validity
    mask is NOT applied, as in the official code; ``keep`` (F, H, W) bool restricts the pixels),
    colours from the RGB, then :func:`gen3r.geometry.filter_point_cloud` (voxel 0.005, or 0.003 with
    far-point removal)."""
    points = np.asarray(world_points, dtype=np.float32).reshape(-1, 3)
    colors = np.clip(np.asarray(rgb, dtype=np.float32).reshape(-1, 3), 0, 1)
    if keep is not None:
        keep = np.asarray(keep, dtype=bool).reshape(-1)
        points, colors = points[keep], colors[keep]
    if voxel_size is None:
        voxel_size = 0.003 if remove_far_points else 0.005
    return filter_point_cloud(points, colors, voxel_size=voxel_size, remove_far_points=remove_far_points)


def export_scene(out_dir: str | Path, rgb: np.ndarray, depth: np.ndarray, world_points: np.ndarray,
                 cameras, depth_conf: np.ndarray | None = None, point_mask: np.ndarray | None = None,
                 settings: dict[str, Any] | None = None, fps: int = 12, remove_far_points: bool = False,
                 overwrite: bool = False, max_colmap_points: int = 200_000,
                 ply_mask: np.ndarray | None = None) -> Path:
    """Write every output file of one scene into ``out_dir`` (atomic: all or nothing).

    Args:
        rgb: (F, H, W, 3) in [0, 1]. depth: (F, H, W). world_points: (F, H, W, 3).
        cameras: :class:`gen3r.cameras.Cameras` (OpenCV w2c, px) of the F frames.
        ply_mask: optional (F, H, W) bool of pixels that go into the point cloud (default: all,
            as the official code does).
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        write_video(tmp / "rgb.mp4", rgb, fps=fps)
        write_depth_npz(tmp / "depth.npz", depth, depth_conf, point_mask)
        write_video(tmp / "depth.mp4", colorize_depth(depth, point_mask), fps=fps)
        points, colors = point_cloud_from_output(world_points, rgb, remove_far_points=remove_far_points,
                                                  keep=ply_mask)
        write_ply(tmp / "points.ply", points, colors)
        write_glb(tmp / "scene.glb", points, colors, cameras)
        save_cameras(cameras, tmp / "cameras.json", format="official")
        names = write_images(tmp / "images", rgb)
        save_cameras(cameras, tmp / "transforms.json", format="nerfstudio", image_names=[f"images/{n}" for n in names])
        if len(points) > max_colmap_points:
            pick = np.random.default_rng(0).choice(len(points), max_colmap_points, replace=False)
            col_points, col_colors = points[np.sort(pick)], colors[np.sort(pick)]
        else:
            col_points, col_colors = points, colors
        write_colmap(cameras, tmp / "colmap", points=col_points, colors=col_colors, image_names=names)
        config = {"settings": settings or {}, "versions": library_versions(),
                  "num_points": int(len(points)), "files": list(EXPORTED_FILES)}
        write_json(tmp / "config.json", config)
    logger.info("wrote %s", out_dir)
    return out_dir


def export_output(output, out_dir: str | Path, index: int = 0, settings: dict[str, Any] | None = None,
                  **kwargs: Any) -> Path:
    """Export batch element ``index`` of a :class:`gen3r.pipeline.Gen3ROutput`."""
    settings = {**(output.info or {}), **(settings or {})}
    return export_scene(out_dir, rgb=output.rgb[index].numpy(), depth=output.depth[index].numpy(),
                        world_points=output.world_points[index].numpy(), cameras=output.cameras(index),
                        depth_conf=output.depth_conf[index].numpy(), point_mask=output.point_mask[index].numpy(),
                        settings=settings, **kwargs)
