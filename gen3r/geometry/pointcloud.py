"""Point-cloud filters of the official PLY export, reimplemented without Open3D.

The official ``downsample_and_save_pointcloud`` (``gen3r/utils/common_utils.py``) runs, on the
unprojected depth points of all frames (float32) and the decoded RGB clipped to [0, 1]:

1. optionally keep points whose world z is at most the 80th percentile (``--remove_far_points``);
2. Open3D ``remove_statistical_outlier(nb_neighbors=25, std_ratio=1.25)``;
3. a "near / far" radius-outlier stage with ``depth_percentile=0`` that only ever touches the
   minimum-z point(s) and leaves them unchanged, i.e. a no-op (not reproduced);
4. Open3D ``voxel_down_sample_and_trace(voxel_size, min_bound=cloud min, max_bound=cloud max)``,
   which averages points and colours per voxel.

:func:`filter_point_cloud` chains these steps. Points are in whatever unit and frame they come in
(for Gen3R: VGGT's first-camera world frame, normalised scene unit). Colours are RGB in [0, 1].
"""

from __future__ import annotations

import logging
from typing import overload

import numpy as np
from numba import njit, prange

from gen3r.errors import Gen3RError
from gen3r.geometry import knn
from gen3r.geometry._arrays import (
    ArrayLike,
    as_points,
    check_finite,
    column_bounds,
    finite_rows,
    kernel_floats,
    take_rows,
)
from gen3r.geometry._sort import argsort_keys

logger = logging.getLogger(__name__)


def _check_colors(colors: ArrayLike | None, n: int) -> np.ndarray | None:
    """Return colours as ``(N, 3)`` float32 numpy, or ``None``; raise on a shape mismatch."""
    if colors is None:
        return None
    c = as_points(colors, "colors")
    if c.shape[0] != n:
        raise Gen3RError(f"colors has {c.shape[0]} rows but points has {n}; pass one colour per point")
    return c


def remove_far_points(
    points: ArrayLike, colors: ArrayLike | None = None, percentile: float = 80.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep points whose z coordinate is at most the ``percentile``-th percentile of z.

    Args:
        points: ``(N, 3)`` points; z is the third coordinate of their (world) frame.
        colors: Optional ``(N, 3)`` per-point colours, filtered alike.
        percentile: Percentile in [0, 100] (linear interpolation, as ``numpy.percentile``).

    Returns:
        ``(points, colors)`` subsets (same dtypes; ``colors`` is ``None`` if not given).
    """
    p = as_points(points)
    c = _check_colors(colors, p.shape[0])
    if p.shape[0] == 0:
        raise Gen3RError("points is empty; nothing to filter")
    if not 0.0 <= percentile <= 100.0:
        raise Gen3RError(f"percentile must be in [0, 100], got {percentile}")
    keep = _near_mask(p[:, 2], percentile)
    return p[keep], (c[keep] if c is not None else None)


def _near_mask(z: np.ndarray, percentile: float) -> np.ndarray:
    """``z <= percentile(z)``, the threshold rounded to the dtype of ``z`` (as the official code)."""
    return z <= z.dtype.type(np.percentile(z, percentile))


def statistical_outlier_removal(points: ArrayLike, nb_neighbors: int = 25, std_ratio: float = 1.25) -> np.ndarray:
    """Open3D ``remove_statistical_outlier`` as a keep-mask.

    Open3D semantics, reproduced exactly: the k-nearest-neighbour search includes the point
    itself (distance 0), so ``a_i`` is the mean distance to the point and its ``nb_neighbors - 1``
    nearest others (fewer if the cloud is smaller). With ``P = {i : a_i > 0}``,
    ``mean = sum_P a_i / N`` and ``std = sqrt(sum_P (a_i - mean)^2 / (N - 1))`` (Bessel), and a
    point is kept iff ``0 < a_i < mean + std_ratio * std``. Points whose neighbours all coincide
    with them (``a_i == 0``) are therefore removed, as in Open3D.

    The neighbour search is exact (:func:`gen3r.geometry.knn.mean_knn_distances`: a numba grid
    search for large clouds, pykdtree for small ones).

    Args:
        points: ``(N, 3)`` points (any unit); distances are computed in float64.
        nb_neighbors: ``k`` (>= 1), counting the point itself.
        std_ratio: Threshold in standard deviations (> 0).

    Returns:
        ``(N,)`` bool numpy mask of points to keep.
    """
    p = as_points(points)
    if nb_neighbors < 1 or std_ratio <= 0:
        raise Gen3RError(f"nb_neighbors must be >= 1 and std_ratio > 0, got {nb_neighbors} and {std_ratio}")
    n = p.shape[0]
    if n == 0:
        raise Gen3RError("points is empty; nothing to filter")
    check_finite(p, "points")
    if n == 1:
        return np.zeros(1, dtype=bool)
    avg = knn.mean_knn_distances(p, min(nb_neighbors, n))
    positive = avg > 0
    mean = avg[positive].sum() / n
    std = np.sqrt(((avg[positive] - mean) ** 2).sum() / (n - 1))
    return positive & (avg < mean + std_ratio * std)


@njit(cache=True, parallel=True)
def _voxel_keys_kernel(p, origin, voxel_size, cell_min, dims, out):
    """``out[i]`` = linear voxel id (x-major) of ``floor((p[i] - origin) / voxel_size) - cell_min``."""
    for i in prange(p.shape[0]):
        key = np.int64(0)
        for axis in range(3):
            cell = np.int64(np.floor((np.float64(p[i, axis]) - origin[axis]) / voxel_size)) - cell_min[axis]
            key = key * dims[axis] + cell
        out[i] = key


@njit(cache=True, parallel=True)
def _group_means(values, order, bounds, out):
    """``out[g]`` = float64 mean of ``values[order[bounds[g]:bounds[g+1]]]`` (rows of 3)."""
    for g in prange(bounds.shape[0] - 1):
        s0 = bounds[g]
        s1 = bounds[g + 1]
        for axis in range(3):
            total = 0.0
            for t in range(s0, s1):
                total += np.float64(values[order[t], axis])
            out[g, axis] = total / (s1 - s0)


def _voxel_keys(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, voxel_size: float,
                min_bound: np.ndarray) -> np.ndarray:
    """Linear voxel id ``floor((p - min_bound) / voxel_size)`` per point (int64, x-major, offset so
    that the smallest cell of each axis is 0); ``lo``/``hi`` are the per-axis point bounds."""
    # floor((p - o) / s) is monotone in p, so the extreme cells are those of the extreme points
    cell_min = np.floor((lo - min_bound) / voxel_size).astype(np.int64)
    dims = np.floor((hi - min_bound) / voxel_size).astype(np.int64) - cell_min + 1
    if float(dims[0]) * dims[1] * dims[2] >= 2.0**62:
        raise Gen3RError(f"voxel_size {voxel_size} is too small for a cloud of this extent; use a larger voxel")
    keys = np.empty(points.shape[0], dtype=np.int64)
    _voxel_keys_kernel(points, np.asarray(min_bound, dtype=np.float64), float(voxel_size), cell_min, dims, keys)
    return keys


@overload
def voxel_downsample(points: ArrayLike, colors: None = None, voxel_size: float = 0.005,
                     min_bound: ArrayLike | None = None) -> tuple[np.ndarray, None]: ...


@overload
def voxel_downsample(points: ArrayLike, colors: ArrayLike, voxel_size: float = 0.005,
                     min_bound: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def voxel_downsample(points: ArrayLike, colors: ArrayLike | None = None, voxel_size: float = 0.005,
                     min_bound: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray | None]: ...


def voxel_downsample(
    points: ArrayLike,
    colors: ArrayLike | None = None,
    voxel_size: float = 0.005,
    min_bound: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Average points (and colours) per voxel, as Open3D's voxel down-sampling.

    A point ``p`` falls in voxel ``floor((p - min_bound) / voxel_size)``. With ``min_bound=None``
    it is ``min(points) - voxel_size / 2`` (Open3D ``voxel_down_sample``); the official Gen3R
    export uses ``voxel_down_sample_and_trace(min_bound=cloud min)``, i.e. pass
    ``min_bound=points.min(axis=0)``.

    Args:
        points: ``(N, 3)`` points (any unit; ``voxel_size`` in the same unit).
        colors: Optional ``(N, 3)`` colours, averaged alike.
        voxel_size: Voxel edge length (> 0).
        min_bound: Optional ``(3,)`` origin of the voxel grid.

    Returns:
        ``(points, colors)`` float64 arrays with one row per occupied voxel, sorted by voxel
        index (x-major); ``colors`` is ``None`` if not given.
    """
    p = as_points(points)
    c = _check_colors(colors, p.shape[0])
    if voxel_size <= 0:
        raise Gen3RError(f"voxel_size must be > 0, got {voxel_size}")
    if p.shape[0] == 0:
        raise Gen3RError("points is empty; nothing to downsample")
    check_finite(p, "points")
    p = kernel_floats(p)
    lo, hi = (b.astype(np.float64) for b in column_bounds(p))
    origin = lo - voxel_size / 2 if min_bound is None else np.asarray(min_bound, dtype=np.float64).reshape(3)
    keys = _voxel_keys(p, lo, hi, voxel_size, origin)
    order, sorted_keys = argsort_keys(keys, return_sorted=True)
    del keys
    bounds = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1], [True]])).astype(np.int64)
    del sorted_keys

    def average(values: np.ndarray) -> np.ndarray:
        out = np.empty((bounds.size - 1, 3), dtype=np.float64)
        _group_means(kernel_floats(values), order, bounds, out)
        return out

    return average(p), (average(c) if c is not None else None)


def filter_point_cloud(
    points: ArrayLike,
    colors: ArrayLike,
    voxel_size: float = 0.005,
    remove_far_points: bool = False,
    nb_neighbors: int = 25,
    std_ratio: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """The official PLY post-processing: far cut, statistical outliers, voxel averaging.

    Args:
        points: ``(N, 3)`` world points (e.g. ``unproject_depth(...).reshape(-1, 3)``); computed in
            float32 like the official code. Non-finite points are dropped first.
        colors: ``(N, 3)`` RGB, clipped to [0, 1].
        voxel_size: Voxel edge in the unit of ``points`` (official: 0.005, or 0.003 together with
            ``remove_far_points``).
        remove_far_points: Keep only points with z <= the 80th percentile of z first.
        nb_neighbors: Statistical outlier removal ``k`` (the point itself included).
        std_ratio: Statistical outlier removal threshold.

    Returns:
        ``(points, colors)``: ``(M, 3)`` float64 voxel-averaged points (input unit and frame) and
        ``(M, 3)`` float64 colours in [0, 1].

    Raises:
        Gen3RError: Shape mismatch, non-finite colours, bad parameters, or no finite point.
    """
    p = as_points(points, "points", np.float32)
    c = _check_colors(colors, p.shape[0])
    if c is None:
        raise Gen3RError("colors is required; pass one RGB colour per point")
    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    check_finite(c, "colors")
    finite = finite_rows(p)
    if finite is not None:
        logger.warning("dropping %d non-finite points of %d", int((~finite).sum()), p.shape[0])
        p, c = take_rows(p, finite), take_rows(c, finite)
    if p.shape[0] == 0:
        raise Gen3RError("the point cloud has no finite point; check the depth maps and cameras")
    if remove_far_points:
        near = _near_mask(p[:, 2], 80.0)
        p, c = take_rows(p, near), take_rows(c, near)
    logger.info("statistical outlier removal on %d points", p.shape[0])
    keep = statistical_outlier_removal(p, nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    p, c = take_rows(p, keep), take_rows(c, keep)
    if p.shape[0] == 0:
        raise Gen3RError("statistical outlier removal left no point; the cloud is degenerate (all points equal?)")
    logger.info("voxel averaging of %d points (voxel %g)", p.shape[0], voxel_size)
    p_out, c_out = voxel_downsample(p, c, voxel_size=voxel_size, min_bound=column_bounds(p)[0])
    return p_out, c_out
