"""VGGT's heads on aggregated tokens -> cameras, depth and points: the one implementation behind the
pipeline's geometry decoding (adapter tokens), its 2-stage reconstruction and gen3r eval's VGGT
baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gen3r.cameras import pose_encoding_to_extri_intri
from gen3r.geometry import unproject_depth
from gen3r.pipeline.tensors import module_dtype


def geometry_from_tokens(vggt, token_list, patch_start: int, size: tuple[int, int],
                         point_head: bool = True) -> dict[str, Any]:
    """VGGT heads on aggregated tokens of B x F frames of ``size`` (H, W).

    Returns tensors: ``extrinsics`` (B, F, 3, 4) OpenCV w2c, ``intrinsics`` (B, F, 3, 3) px,
    ``depth``/``depth_conf`` (B, F, H, W), ``world_points`` (B, F, H, W, 3) float64 (CPU: ``depth``
    unprojected with the predicted cameras) and ``point_mask`` (B, F, H, W) bool (CPU, the official
    percentile mask), all in the first frame's camera frame (VGGT normalised units); with
    ``point_head`` also ``point_map`` (B, F, H, W, 3) / ``point_conf`` of the point head.
    """
    pose = vggt.predict_cameras(token_list)[-1].float()
    extrinsics, intrinsics = pose_encoding_to_extri_intri(pose, size)
    depth, depth_conf = vggt.predict_depth(token_list, size, patch_start_idx=patch_start)
    depth = depth.float().squeeze(-1)
    world_points, point_mask = unproject_depth(depth.cpu(), extrinsics.cpu(), intrinsics.cpu(),
                                               return_mask=True, min_max_depth_mask=True)
    out = {"extrinsics": extrinsics, "intrinsics": intrinsics, "depth": depth, "depth_conf": depth_conf.float(),
           "world_points": torch.as_tensor(np.asarray(world_points, dtype=np.float64)),
           "point_mask": torch.as_tensor(np.asarray(point_mask, dtype=bool))}
    if point_head:
        point_map, point_conf = vggt.predict_points(token_list, size, patch_start_idx=patch_start)
        out.update(point_map=point_map.float(), point_conf=point_conf.float())
    return out


@torch.no_grad()
def reconstruct(vggt, frames: torch.Tensor, point_head: bool = True) -> dict[str, Any]:
    """VGGT alone on frames (B, F, 3, H, W) in [0, 1]: :func:`geometry_from_tokens` of its tokens."""
    device = next(vggt.parameters()).device
    tokens, start = vggt.aggregate(frames.to(device, module_dtype(vggt)))
    return geometry_from_tokens(vggt, tokens, start, tuple(frames.shape[-2:]), point_head)
