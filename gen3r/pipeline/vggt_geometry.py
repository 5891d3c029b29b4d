"""VGGT's heads on aggregated tokens -> cameras, depth and points: the one implementation behind the
pipeline's geometry decoding (adapter tokens) and camera setup, its 2-stage reconstruction, gen3r
eval's VGGT baseline and the geometry adapter's training targets and losses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gen3r.cameras import pose_encoding_to_extri_intri
from gen3r.geometry import unproject_depth
from gen3r.pipeline.tensors import module_dtype


@dataclass
class HeadOutputs:
    """What VGGT's heads predict from aggregated tokens of B x F frames of H x W (differentiable).

    ``poses``: pose encodings (B, F, 9) of every camera refinement iteration (last = final);
    ``depth`` (B, F, H, W, 1) z-depth and ``depth_conf`` (B, F, H, W); ``points`` (B, F, H, W, 3) world
    points of the point head and ``point_conf`` (B, F, H, W), or None without the point head. All in the
    first frame's camera frame, VGGT's normalised units; the heads' dtype.
    """

    poses: list[torch.Tensor]
    depth: torch.Tensor
    depth_conf: torch.Tensor
    points: torch.Tensor | None = None
    point_conf: torch.Tensor | None = None


def run_heads(vggt, token_list, patch_start: int, size: tuple[int, int], point_head: bool = True) -> HeadOutputs:
    """VGGT's camera head, depth head and (``point_head``) point head on ``token_list`` (the tapped
    layers of frames of ``size`` (H, W); patch tokens from ``patch_start`` on)."""
    poses = vggt.predict_cameras(token_list)
    depth, depth_conf = vggt.predict_depth(token_list, size, patch_start_idx=patch_start)
    points = point_conf = None
    if point_head:
        points, point_conf = vggt.predict_points(token_list, size, patch_start_idx=patch_start)
    return HeadOutputs(poses=poses, depth=depth, depth_conf=depth_conf, points=points, point_conf=point_conf)


def geometry_from_tokens(vggt, token_list, patch_start: int, size: tuple[int, int],
                         point_head: bool = True) -> dict[str, Any]:
    """VGGT heads on aggregated tokens of B x F frames of ``size`` (H, W).

    Returns tensors: ``extrinsics`` (B, F, 3, 4) OpenCV w2c, ``intrinsics`` (B, F, 3, 3) px,
    ``depth``/``depth_conf`` (B, F, H, W), ``world_points`` (B, F, H, W, 3) float64 (CPU: ``depth``
    unprojected with the predicted cameras) and ``point_mask`` (B, F, H, W) bool (CPU, the official
    percentile mask), all in the first frame's camera frame (VGGT normalised units); with
    ``point_head`` also ``point_map`` (B, F, H, W, 3) / ``point_conf`` of the point head.
    """
    heads = run_heads(vggt, token_list, patch_start, size, point_head)
    extrinsics, intrinsics = pose_encoding_to_extri_intri(heads.poses[-1].float(), size)
    depth = heads.depth.float().squeeze(-1)
    world_points, point_mask = unproject_depth(depth.cpu(), extrinsics.cpu(), intrinsics.cpu(),
                                               return_mask=True, min_max_depth_mask=True)
    out = {"extrinsics": extrinsics, "intrinsics": intrinsics, "depth": depth, "depth_conf": heads.depth_conf.float(),
           "world_points": torch.as_tensor(np.asarray(world_points, dtype=np.float64)),
           "point_mask": torch.as_tensor(np.asarray(point_mask, dtype=bool))}
    if heads.points is not None and heads.point_conf is not None:
        out.update(point_map=heads.points.float(), point_conf=heads.point_conf.float())
    return out


@torch.no_grad()
def reconstruct(vggt, frames: torch.Tensor, point_head: bool = True) -> dict[str, Any]:
    """VGGT alone on frames (B, F, 3, H, W) in [0, 1]: :func:`geometry_from_tokens` of its tokens."""
    device = next(vggt.parameters()).device
    tokens, start = vggt.aggregate(frames.to(device, module_dtype(vggt)))
    return geometry_from_tokens(vggt, tokens, start, (frames.shape[-2], frames.shape[-1]), point_head)
