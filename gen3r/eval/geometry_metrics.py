"""Point-cloud accuracy / completeness / Chamfer distance (Gen3R paper, Tables 2-4).

Protocol (paper section 4.2): align the generated points to the ground truth with a Umeyama
Sim(3) fit, take ``num_points`` (20k) points from each cloud with farthest point sampling,
then

* accuracy = mean distance from each generated point to its nearest ground-truth point,
* completeness = mean distance from each ground-truth point to its nearest generated point,
* Chamfer distance = (accuracy + completeness) / 2,

all in the units of the ground-truth points (after alignment the prediction is in that frame).

Umeyama needs correspondences. When ``pred`` and ``gt`` have the same shape (per-pixel point
maps ``(F, H, W, 3)``, or ``(N, 3)`` clouds whose rows correspond) the fit uses the points valid
in both. Unordered clouds of different sizes have no correspondences: pass ``align=False``
(no ICP is run: an ICP result depends on its initialisation and would hide prediction errors).

Differences from the official ``compute_chamfer_metrics`` (documented in docs/evaluation.md):
the scale is Umeyama's least-squares scale (official: a variance ratio), the fit uses every
corresponding valid point (official: a buggy voxel/FPS-derived subset), and there is no 5 mm
voxel pre-filter.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from scipy.spatial import KDTree

from gen3r.errors import Gen3RError
from gen3r.geometry import farthest_point_sampling, umeyama

logger = logging.getLogger(__name__)


def _as_points(x: Any, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise Gen3RError(f"point_cloud_metrics: {name} has shape {arr.shape}; expected (N, 3) points "
                         "or (F, H, W, 3) point maps")
    if not np.issubdtype(arr.dtype, np.number):
        raise Gen3RError(f"point_cloud_metrics: {name} has dtype {arr.dtype}; expected numbers")
    return arr.astype(np.float64, copy=False)


def _as_mask(mask: Any, points: np.ndarray, name: str) -> np.ndarray:
    finite = np.asarray(np.isfinite(points).all(axis=-1))
    if mask is None:
        return finite
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.shape != points.shape[:-1]:
        raise Gen3RError(f"point_cloud_metrics: {name} has shape {m.shape}; expected {points.shape[:-1]} "
                         "(the point array without its last axis)")
    return m.astype(bool) & finite


def _sample(points: np.ndarray, num_points: int, seed: int) -> np.ndarray:
    if len(points) <= num_points:
        return points

    idx = np.asarray(farthest_point_sampling(points, num_points, seed=seed))
    return points[idx]


def nearest_distances(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Euclidean distance from every ``src`` point to its nearest ``dst`` point (KDTree, all cores)."""
    dist, _ = KDTree(dst).query(src, k=1, workers=-1)
    return dist


def point_cloud_metrics(pred: Any, gt: Any, align: bool = True, num_points: int = 20000, seed: int = 0,
                        pred_mask: Any = None, gt_mask: Any = None) -> dict[str, Any]:
    """Accuracy, completeness and Chamfer distance of a generated point cloud.

    Args:
        pred: generated points ``(N, 3)`` or point maps ``(F, H, W, 3)`` (any frame / unit).
        gt: ground-truth points ``(M, 3)`` or ``(F, H, W, 3)``; metrics are in its unit and frame.
        align: fit ``gt ~ s R pred + t`` (Umeyama, with scale) on corresponding valid points first;
            requires ``pred.shape == gt.shape``.
        num_points: farthest-point-sample each cloud to this many points (all kept if fewer).
        seed: start index seed of the farthest point sampling.
        pred_mask / gt_mask: optional boolean validity masks of shape ``points.shape[:-1]``;
            non-finite points are always dropped.

    Returns:
        ``accuracy``, ``completeness``, ``chamfer`` (floats, GT units); ``chamfer_relative_percent``
        (Chamfer / diagonal of the sampled GT bounding box x 100); ``scale``, ``rotation`` (3x3),
        ``translation`` (3,) of the applied alignment (identity when ``align=False``);
        ``num_pred`` / ``num_gt`` (points after sampling).
    """
    p, g = _as_points(pred, "pred"), _as_points(gt, "gt")
    pm, gm = _as_mask(pred_mask, p, "pred_mask"), _as_mask(gt_mask, g, "gt_mask")
    if num_points < 1:
        raise Gen3RError(f"point_cloud_metrics: num_points must be >= 1, got {num_points}")
    scale, rot, trans = 1.0, np.eye(3), np.zeros(3)
    if align:
        if p.shape != g.shape:
            raise Gen3RError(f"point_cloud_metrics: align=True needs corresponding points (same shape), got "
                             f"pred {p.shape} and gt {g.shape}; pass per-pixel point maps or align=False")
        both = pm & gm
        if both.sum() < 3:
            raise Gen3RError("point_cloud_metrics: fewer than 3 points are valid in both clouds; "
                             "cannot align (check the masks)")

        s, r, t = umeyama(p[both], g[both], with_scale=True)
        scale, rot, trans = float(s), np.asarray(r, np.float64), np.asarray(t, np.float64).reshape(3)
        logger.debug("Umeyama alignment on %d corresponding points: scale %.6g", int(both.sum()), scale)
    pred_pts = scale * p[pm] @ rot.T + trans
    gt_pts = g[gm]
    if len(pred_pts) == 0 or len(gt_pts) == 0:
        raise Gen3RError("point_cloud_metrics: a cloud has no valid points; check the masks and NaNs")
    pred_pts = _sample(pred_pts, num_points, seed)
    gt_pts = _sample(gt_pts, num_points, seed)
    accuracy = float(nearest_distances(pred_pts, gt_pts).mean())
    completeness = float(nearest_distances(gt_pts, pred_pts).mean())
    chamfer = 0.5 * (accuracy + completeness)
    diagonal = float(np.linalg.norm(gt_pts.max(axis=0) - gt_pts.min(axis=0)))
    return {
        "accuracy": accuracy,
        "completeness": completeness,
        "chamfer": chamfer,
        "chamfer_relative_percent": 100.0 * chamfer / diagonal if diagonal > 0 else float("nan"),
        "scale": scale,
        "rotation": rot,
        "translation": trans,
        "num_pred": len(pred_pts),
        "num_gt": len(gt_pts),
    }


__all__ = ["point_cloud_metrics", "nearest_distances"]
