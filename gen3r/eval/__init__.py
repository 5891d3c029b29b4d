"""Evaluation metrics of the Gen3R paper (section 4) and dataset readers.

* appearance: :func:`psnr`, :func:`ssim` (Wang et al., Gaussian 11x11, valid), :class:`LPIPS` /
  :func:`lpips` (AlexNet / VGG16 trunk + LPIPS v0.1 heads);
* geometry: :func:`point_cloud_metrics` (Umeyama Sim(3) alignment, FPS to 20k points,
  accuracy / completeness / Chamfer distance);
* cameras: :func:`pose_auc` (VGGT protocol: relative rotation / translation errors, AUC@30);
* datasets: readers for RealEstate10K, DL3DV (nerfstudio), Co3Dv2, WildRGB-D, TartanAir and the
  official layout, plus the paper's sampling, in :mod:`gen3r.eval.datasets`;
* the protocol's names (datasets, tasks, methods) in :mod:`gen3r.eval.protocol`.

The protocol, units and thresholds are described in ``docs/evaluation.md``. The names below are
resolved on first use, so ``gen3r.eval.protocol`` imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gen3r.eval.camera_metrics import auc_from_errors, pose_auc, relative_pose_errors
    from gen3r.eval.geometry_metrics import point_cloud_metrics
    from gen3r.eval.image_metrics import psnr, ssim
    from gen3r.eval.perceptual import LPIPS, lpips
    from gen3r.eval.runner import evaluate

_HOME = {"psnr": "image_metrics", "ssim": "image_metrics", "LPIPS": "perceptual", "lpips": "perceptual",
         "point_cloud_metrics": "geometry_metrics", "pose_auc": "camera_metrics",
         "relative_pose_errors": "camera_metrics", "auc_from_errors": "camera_metrics", "evaluate": "runner"}
__all__ = ["psnr", "ssim", "LPIPS", "lpips", "point_cloud_metrics", "pose_auc", "relative_pose_errors",
           "auc_from_errors", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"gen3r.eval.{_HOME[name]}"), name)
    raise AttributeError(f"module 'gen3r.eval' has no attribute {name!r}")
