"""Base model: train a VGGT-style reconstruction model from scratch on ground truth (mini scale).

Per micro-batch of frames (B, F, 3, H, W) in [0, 1] with ground-truth z-depth (B, F, H, W) (0 =
invalid) and cameras (relative to frame 0, OpenCV world-to-camera, metres):

1. :func:`normalise_scene`: the ground truth is expressed in the first camera's frame and divided
   by the mean distance of the valid points to its origin (VGGT's normalisation; predictions are
   not normalised), giving depth, world points, and pose encodings ``[t, q_xyzw, fov_h, fov_w]``;
2. VGGT forward (aggregator, camera head with its refinement iterations, depth and point heads);
3. :func:`gen3r.train.losses.vggt_training_loss`: L1 camera loss over the iterations (weights
   ``0.6 ** (n-1-i)``), aleatoric depth and point losses with their confidences plus gradient terms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gen3r.cameras import Cameras, extri_intri_to_pose_encoding
from gen3r.errors import Gen3RError
from gen3r.models.vggt import VGGT
from gen3r.train.config import VggtTrainConfig
from gen3r.train.loop import Trainer, TrainResult, initial_weights, run_training
from gen3r.train.losses import vggt_training_loss

logger = logging.getLogger(__name__)


@dataclass
class VggtTargets:
    """Normalised ground truth of one micro-batch (float32, training device).

    ``frames`` (B, F, 3, H, W); ``pose`` (B, F, 9); ``depth`` (B, F, H, W, 1); ``points``
    (B, F, H, W, 3) in the first camera's frame; ``valid`` (B, F, H, W) bool; ``scale`` (B,) metres
    per normalised unit.
    """

    frames: torch.Tensor
    pose: torch.Tensor
    depth: torch.Tensor
    points: torch.Tensor
    valid: torch.Tensor
    scale: torch.Tensor


def depth_to_points(depth: torch.Tensor, cameras: Cameras) -> torch.Tensor:
    """World points (F, H, W, 3) of z-depth (F, H, W) seen by ``cameras`` (world-to-camera, pixel
    intrinsics); pixel (row v, column u) is the ray through integer image coordinates (u, v)."""
    f, h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    k = cameras.intrinsics.double()
    x = (u - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None]
    y = (v - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None]
    cam = torch.stack([x, y, torch.ones_like(x)], -1) * depth.double()[..., None]
    w2c = cameras.extrinsics.double()
    rot, trans = w2c[:, :3, :3], w2c[:, :3, 3]
    return torch.einsum("fji,fhwj->fhwi", rot, cam - trans[:, None, None, :]).float()


def normalise_scene(depth: torch.Tensor, cameras: Cameras) -> tuple[torch.Tensor, ...]:
    """VGGT ground truth of one clip: z-depth (F, H, W) in metres (0 = invalid) and its cameras.

    Returns ``(pose (F, 9), depth (F, H, W, 1), points (F, H, W, 3), valid (F, H, W), scale)``: the
    scene in the first camera's frame divided by ``scale`` = mean distance of the valid points to
    the first camera (VGGT's normalisation).
    """
    cameras = cameras.relative_to_first()
    valid = depth > 0
    if not valid.any():
        raise Gen3RError("a training clip has no valid depth; check the scene cache")
    points = depth_to_points(depth, cameras)
    scale = points[valid].norm(dim=-1).mean().clamp(min=1e-6)
    extrinsics = cameras.extrinsics.clone().float()
    extrinsics[:, :3, 3] = extrinsics[:, :3, 3] / scale
    pose = extri_intri_to_pose_encoding(extrinsics, cameras.intrinsics.float(), tuple(depth.shape[-2:]))
    points = torch.where(valid[..., None], points / scale, torch.zeros_like(points))
    return pose, (depth / scale)[..., None], points, valid, scale


class VggtTrainer(Trainer):
    """Trains :class:`VGGT` (sizes from ``config.model``, seeded init) against ground truth."""

    component = "vggt"
    prepared_type = VggtTargets
    uses_pipeline = False
    config: VggtTrainConfig

    def build_model(self) -> nn.Module:
        return initial_weights(lambda: VGGT(**self.config.model), self.config.seed, self.config.init,
                               "vggt").float().requires_grad_(True)

    @torch.no_grad()
    def prepare(self, batch: dict[str, Any], micro_step: int) -> VggtTargets:
        if "depth" not in batch:
            raise Gen3RError("VGGT training needs ground-truth depth: train on a scene cache (data.cache) "
                             "or procedural scenes rendered at the training size")
        parts = [normalise_scene(d, c) for d, c in zip(batch["depth"], batch["cameras"])]
        pose, depth, points, valid, scale = (torch.stack(x) for x in zip(*parts))
        dev = self.device
        return VggtTargets(batch["frames"].to(dev), pose.to(dev), depth.to(dev), points.to(dev), valid.to(dev),
                           scale.to(dev))

    def loss(self, prepared: VggtTargets, micro_step: int) -> dict[str, Any]:
        t = prepared
        out = self.wrapped(t.frames)
        w = self.config.loss_weights
        return vggt_training_loss(
            out["pose_enc_list"], t.pose, out["depth"], out["depth_conf"], t.depth, out["world_points"],
            out["world_points_conf"], t.points, t.valid, camera_weight=w.get("camera", 5.0),
            depth_weight=w.get("depth", 1.0), point_weight=w.get("point", 1.0), alpha=w.get("alpha", 0.2),
            gradient_weight=w.get("gradient", 1.0), translation_weight=w.get("translation", 1.0))


def train_vggt(config: VggtTrainConfig | str | Path, *, pipeline=None, resume: bool = False,
               max_steps: int | None = None, allow_config_changes: bool = False) -> TrainResult:
    """Train the base VGGT from a config (object or JSON file); ``resume`` continues from the newest
    checkpoint in ``config.output_dir``."""
    return run_training(VggtTrainer, VggtTrainConfig, config, pipeline=pipeline, resume=resume, max_steps=max_steps,
                        allow_config_changes=allow_config_changes)
