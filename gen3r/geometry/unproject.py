"""Depth maps to world points, exactly as the official Gen3R post-processing does it.

Conventions
-----------
* Depth is the camera-frame z coordinate (not the ray length), in the same unit as the camera
  translations (VGGT's normalised scene unit for Gen3R outputs).
* Extrinsics are OpenCV world-to-camera matrices ``[R | t]`` (x right, y down, z forward),
  shape ``(..., 3, 4)`` or ``(..., 4, 4)``; a camera point is ``p_cam = R @ p_world + t``.
* Intrinsics are ``(..., 3, 3)`` pinhole matrices in pixels without skew.
* Pixel ``(u, v)`` (column, row) sits at the integer coordinate ``(u, v)``: no ``+0.5`` offset,
  unlike the Plücker rays. This matches ``unproject_depth_map_to_point_map`` of the official
  code (its VGGT copy), verified against the fixture ``tests/data/official-tiny``.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from gen3r.errors import Gen3RError
from gen3r.geometry._arrays import ArrayLike, check_finite, to_numpy

#: Depths at or below this are invalid (the official ``eps``).
DEPTH_EPS = 1e-8
#: Percentile (per frame) below which depths are masked out with ``min_max_depth_mask``.
LOW_PERCENTILE = 0.1
#: Percentile (per frame) above which depths are masked out with ``min_max_depth_mask``.
HIGH_PERCENTILE = 98.0
#: Absolute cap on the upper depth bound with ``min_max_depth_mask``.
MAX_DEPTH = 50.0


def depth_validity_mask(depth: ArrayLike, min_max_depth_mask: bool = True) -> np.ndarray:
    """Official Gen3R validity mask of depth maps.

    Args:
        depth: ``(..., H, W)`` depth along the camera z axis (numpy or torch). Every leading
            index is one frame.
        min_max_depth_mask: If true (what ``infer.py`` uses), a pixel is valid when
            ``max(1e-8, P0.1) < d < min(P98, 50)`` with ``P`` the per-frame percentiles
            (linear interpolation, as ``numpy.percentile``). Otherwise valid means ``d > 1e-8``.

    Returns:
        ``(..., H, W)`` bool numpy array.
    """
    d = to_numpy(depth, "depth")
    if d.ndim < 2 or d.shape[-1] == 0 or d.shape[-2] == 0:
        raise Gen3RError(f"depth must have shape (..., H, W) with H, W > 0, got {tuple(d.shape)}")
    if not min_max_depth_mask:
        return d > DEPTH_EPS
    frames = d.reshape(-1, d.shape[-2] * d.shape[-1])
    low, high = np.percentile(frames, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=-1)
    low = np.maximum(low, DEPTH_EPS)[:, None]
    high = np.minimum(high, MAX_DEPTH)[:, None]
    return ((frames > low) & (frames < high)).reshape(d.shape)


def _split_depth(depth: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """Check ``depth`` against the camera batch shape and drop a trailing channel of size 1."""
    nb = len(batch)
    if depth.shape[:nb] != batch or depth.ndim not in (nb + 2, nb + 3):
        raise Gen3RError(
            f"depth shape {tuple(depth.shape)} does not match cameras with batch shape {batch}; "
            f"expected {batch + ('H', 'W')} or {batch + ('H', 'W', 1)}"
        )
    if depth.ndim == nb + 3:
        if depth.shape[-1] != 1:
            raise Gen3RError(f"depth must have a trailing channel of size 1, got shape {tuple(depth.shape)}")
        depth = depth[..., 0]
    if depth.shape[-1] == 0 or depth.shape[-2] == 0:
        raise Gen3RError(f"depth maps are empty (shape {tuple(depth.shape)}); pass H, W > 0")
    return depth


def _check_cameras(extrinsics: np.ndarray, intrinsics: np.ndarray) -> tuple[int, ...]:
    """Validate camera shapes and values; return the batch shape."""
    if extrinsics.ndim < 2 or extrinsics.shape[-2:] not in ((3, 4), (4, 4)):
        raise Gen3RError(f"extrinsics must have shape (..., 3, 4) or (..., 4, 4), got {tuple(extrinsics.shape)}")
    if intrinsics.ndim < 2 or intrinsics.shape[-2:] != (3, 3):
        raise Gen3RError(f"intrinsics must have shape (..., 3, 3), got {tuple(intrinsics.shape)}")
    batch = tuple(extrinsics.shape[:-2])
    if tuple(intrinsics.shape[:-2]) != batch:
        raise Gen3RError(
            f"extrinsics batch shape {batch} and intrinsics batch shape {tuple(intrinsics.shape[:-2])} differ; "
            "pass one intrinsics matrix per camera"
        )
    check_finite(extrinsics, "extrinsics")
    check_finite(intrinsics, "intrinsics")
    if np.any(intrinsics[..., 0, 1] != 0) or np.any(intrinsics[..., 1, 0] != 0):
        raise Gen3RError("intrinsics have non-zero skew; only pinhole matrices without skew are supported")
    if np.any(intrinsics[..., 0, 0] == 0) or np.any(intrinsics[..., 1, 1] == 0):
        raise Gen3RError("intrinsics have a zero focal length; check the camera matrices")
    return batch


def _unproject_frame(
    depth: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray, out: np.ndarray
) -> None:
    """Unproject one ``(H, W)`` depth map into ``out`` ``(H, W, 3)`` (float64), official arithmetic.

    The official code builds camera points in float64 and rounds them to float32, inverts the
    extrinsic in its own dtype (``-R^T t``) and stores the inverse as float64, then applies it in
    float64. Every rounding step is reproduced here.
    """
    height, width = depth.shape
    fx, fy = np.float64(intrinsic[0, 0]), np.float64(intrinsic[1, 1])
    cx, cy = np.float64(intrinsic[0, 2]), np.float64(intrinsic[1, 2])
    d = depth.astype(np.float64)
    cam = np.empty((height, width, 3), dtype=np.float32)
    cam[..., 0] = (np.arange(width, dtype=np.float64)[None, :] - cx) * d / fx
    cam[..., 1] = (np.arange(height, dtype=np.float64)[:, None] - cy) * d / fy
    cam[..., 2] = d
    rot = extrinsic[:3, :3]
    rot_c2w = rot.T
    t_c2w = -np.matmul(rot_c2w, extrinsic[:3, 3:])[:, 0]
    np.matmul(cam.reshape(-1, 3), rot_c2w.T.astype(np.float64), out=out.reshape(-1, 3))
    out += t_c2w.astype(np.float64)


@overload
def unproject_depth(depth: ArrayLike, extrinsics: ArrayLike, intrinsics: ArrayLike, return_mask: Literal[False] = False,
                    min_max_depth_mask: bool = True) -> np.ndarray: ...


@overload
def unproject_depth(depth: ArrayLike, extrinsics: ArrayLike, intrinsics: ArrayLike, return_mask: Literal[True],
                    min_max_depth_mask: bool = True) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def unproject_depth(depth: ArrayLike, extrinsics: ArrayLike, intrinsics: ArrayLike, return_mask: bool = False,
                    min_max_depth_mask: bool = True) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...


def unproject_depth(
    depth: ArrayLike,
    extrinsics: ArrayLike,
    intrinsics: ArrayLike,
    return_mask: bool = False,
    min_max_depth_mask: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Unproject depth maps to world points (official ``unproject_depth_map_to_point_map``).

    Args:
        depth: ``(..., H, W)`` or ``(..., H, W, 1)`` depth along the camera z axis; the leading
            shape ``...`` must equal the camera batch shape (``()`` for a single frame).
        extrinsics: ``(..., 3, 4)`` or ``(..., 4, 4)`` OpenCV world-to-camera matrices.
        intrinsics: ``(..., 3, 3)`` intrinsics in pixels (no skew).
        return_mask: Also return the validity mask of :func:`depth_validity_mask`.
        min_max_depth_mask: Passed to :func:`depth_validity_mask`.

    Returns:
        World points ``(..., H, W, 3)`` float64 in the world frame of ``extrinsics`` (same unit as
        depth), where pixel ``(u, v)`` gives ``R^T (((u-cx) d/fx, (v-cy) d/fy, d) - t)``;
        with ``return_mask`` also the ``(..., H, W)`` bool mask. All points are returned; the
        mask is never applied.

    Raises:
        Gen3RError: Wrong shapes, non-finite values, skewed or zero-focal intrinsics.
    """
    ext = to_numpy(extrinsics, "extrinsics")
    intr = to_numpy(intrinsics, "intrinsics")
    batch = _check_cameras(ext, intr)
    d = _split_depth(to_numpy(depth, "depth"), batch)
    check_finite(d, "depth")

    height, width = d.shape[-2:]
    frames_d = d.reshape(-1, height, width)
    frames_e = ext.reshape(-1, *ext.shape[-2:])
    frames_k = intr.reshape(-1, 3, 3)
    points = np.empty((frames_d.shape[0], height, width, 3), dtype=np.float64)
    for i in range(frames_d.shape[0]):
        _unproject_frame(frames_d[i], frames_e[i], frames_k[i], points[i])
    points = points.reshape(*batch, height, width, 3)
    if return_mask:
        return points, depth_validity_mask(d, min_max_depth_mask)
    return points
