"""Camera pose accuracy: relative rotation / translation errors and AUC (the VGGT protocol).

Follows ``facebookresearch/vggt`` ``evaluation/test_co3d.py`` (``se3_to_relative_pose_error``,
``calculate_auc_np``), which Gen3R's paper cites for AUC@30:

* For every frame pair ``i < j`` (``itertools.combinations`` order), the relative pose is
  ``T_i @ inv(T_j)`` of the OpenCV world-to-camera 4x4 matrices, for prediction and ground truth.
* Relative rotation error: the geodesic angle between the two relative rotations, in degrees.
* Relative translation error: the angle between the two relative translation vectors, with the
  sign ambiguity removed (``min(err, 180 - err)``), so it lies in ``[0, 90]`` degrees. It is
  scale-free: predictions in any global scale are fine. A zero-length relative translation in
  either pose has no direction; as in VGGT it scores 90 degrees.
* AUC@T: a histogram of ``max(rot_err, trans_err)`` per pair with 1-degree bins on ``[0, T]``,
  normalised by the number of pairs, cumulated, and averaged over the ``T`` bins.
"""

from __future__ import annotations

import numpy as np
import torch

from gen3r.errors import Gen3RError

_EPS = 1e-15


def _as_w2c(poses: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """Validate ``(F, 3, 4)`` / ``(F, 4, 4)`` world-to-camera matrices; return ``(F, 4, 4)`` float64."""
    t = torch.as_tensor(np.asarray(poses) if not isinstance(poses, torch.Tensor) else poses)
    t = t.detach().to("cpu", torch.float64)
    if t.ndim != 3 or t.shape[-1] != 4 or t.shape[-2] not in (3, 4):
        raise Gen3RError(f"pose_auc: {name} has shape {tuple(t.shape)}; expected (F, 3, 4) or (F, 4, 4) "
                         "OpenCV world-to-camera matrices")
    if not torch.isfinite(t).all():
        raise Gen3RError(f"pose_auc: {name} contains NaN or inf; drop the failed frames first")
    if t.shape[-2] == 3:
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(t.shape[0], 1, 4)
        t = torch.cat([t, bottom], dim=1)
    return t


def _inverse_se3(t: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of rigid 4x4 matrices."""
    r, tr = t[:, :3, :3], t[:, :3, 3:]
    out = torch.zeros_like(t)
    out[:, :3, :3] = r.transpose(1, 2)
    out[:, :3, 3:] = -r.transpose(1, 2) @ tr
    out[:, 3, 3] = 1.0
    return out


def relative_pose_errors(pred_w2c: torch.Tensor | np.ndarray,
                         gt_w2c: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair relative rotation and translation angle errors (degrees) over all pairs ``i < j``.

    Args:
        pred_w2c: predicted OpenCV world-to-camera extrinsics ``(F, 3, 4)`` or ``(F, 4, 4)``.
        gt_w2c: ground-truth extrinsics, same number of frames ``F >= 2``.

    Returns:
        ``(rot_err, trans_err)``, each ``(F (F - 1) / 2,)`` float64 arrays in degrees.
    """
    pred, gt = _as_w2c(pred_w2c, "pred_w2c"), _as_w2c(gt_w2c, "gt_w2c")
    if pred.shape[0] != gt.shape[0]:
        raise Gen3RError(f"pose_auc: pred has {pred.shape[0]} frames but gt has {gt.shape[0]}; "
                         "pass the same frames in the same order")
    if pred.shape[0] < 2:
        raise Gen3RError("pose_auc: need at least 2 frames to form a relative pose")
    i, j = torch.combinations(torch.arange(pred.shape[0]), 2).unbind(-1)
    rel_gt = gt[i] @ _inverse_se3(gt[j])
    rel_pred = pred[i] @ _inverse_se3(pred[j])
    return _rotation_angle(rel_gt[:, :3, :3], rel_pred[:, :3, :3]), \
        _translation_angle(rel_gt[:, :3, 3], rel_pred[:, :3, 3])


def _rotation_angle(r_gt: torch.Tensor, r_pred: torch.Tensor) -> np.ndarray:
    """Geodesic angle (degrees) of ``r_gt^T r_pred``, via ``atan2`` for accuracy near 0 and 180."""
    delta = r_gt.transpose(1, 2) @ r_pred
    cos = (delta.diagonal(dim1=1, dim2=2).sum(-1) - 1.0) / 2.0
    skew = torch.stack([delta[:, 2, 1] - delta[:, 1, 2], delta[:, 0, 2] - delta[:, 2, 0],
                        delta[:, 1, 0] - delta[:, 0, 1]], dim=-1)
    sin = skew.norm(dim=-1) / 2.0
    return torch.rad2deg(torch.atan2(sin, cos)).numpy()


def _translation_angle(t_gt: torch.Tensor, t_pred: torch.Tensor) -> np.ndarray:
    """Angle (degrees) between translation directions, folded to ``[0, 90]``; 90 if one is zero."""
    u = t_gt / (t_gt.norm(dim=-1, keepdim=True) + _EPS)
    v = t_pred / (t_pred.norm(dim=-1, keepdim=True) + _EPS)
    cos = (u * v).sum(-1).abs().clamp(max=1.0)
    sin = torch.linalg.cross(u, v).norm(dim=-1)
    degenerate = (t_gt.norm(dim=-1) < _EPS) | (t_pred.norm(dim=-1) < _EPS)
    angle = torch.rad2deg(torch.atan2(sin, cos))
    angle[degenerate] = 90.0
    return angle.numpy()


def auc_from_errors(rot_err: np.ndarray, trans_err: np.ndarray, max_threshold: int = 30) -> float:
    """VGGT's AUC: mean over ``max_threshold`` 1-degree bins of the cumulative share of pairs below."""
    if int(max_threshold) != max_threshold or max_threshold < 1:
        raise Gen3RError(f"pose_auc: max_threshold must be a positive whole number of degrees, got {max_threshold}")
    worst = np.maximum(np.asarray(rot_err, np.float64), np.asarray(trans_err, np.float64))
    hist, _ = np.histogram(worst, bins=np.arange(int(max_threshold) + 1))
    return float(np.mean(np.cumsum(hist / float(len(worst)))))


def pose_auc(pred_w2c: torch.Tensor | np.ndarray, gt_w2c: torch.Tensor | np.ndarray,
             max_threshold: int = 30) -> dict[str, float | np.ndarray]:
    """Camera pose accuracy of one sequence under the VGGT protocol.

    Args:
        pred_w2c: predicted OpenCV world-to-camera extrinsics ``(F, 3, 4)`` / ``(F, 4, 4)``; any
            global scale (translation errors are angles).
        gt_w2c: ground-truth extrinsics of the same ``F >= 2`` frames.
        max_threshold: AUC threshold ``T`` in degrees (30 for AUC@30; 5 / 15 for AUC@5 / AUC@15).

    Returns:
        ``auc``: AUC@T in ``[0, 1]``; ``rra`` / ``rta``: per-pair relative rotation / translation
        errors in degrees (VGGT's ``rError`` / ``tError``, pairs ``i < j`` in combination order),
        which callers concatenate over sequences before :func:`auc_from_errors` for dataset-level
        AUC; ``rra_acc`` / ``rta_acc``: share of pairs with error below ``T``;
        ``num_pairs``.
    """
    rot_err, trans_err = relative_pose_errors(pred_w2c, gt_w2c)
    return {
        "auc": auc_from_errors(rot_err, trans_err, max_threshold),
        "rra": rot_err,
        "rta": trans_err,
        "rra_acc": float((rot_err < max_threshold).mean()),
        "rta_acc": float((trans_err < max_threshold).mean()),
        "num_pairs": len(rot_err),
    }


__all__ = ["pose_auc", "relative_pose_errors", "auc_from_errors"]
