"""Plücker ray maps, the official pose preprocessing, and the DiT packing of ray maps.

Conventions (as in the official ``gen3r/utils/data_utils.py::compute_rays``/``preprocess_poses``
and ``pipeline_gen3r.py``):

* poses are OpenCV camera-to-world 4x4 matrices (x right, y down, z forward); translations are in
  the scene's length unit (no scale normalisation anywhere);
* a pixel (u, v) is sampled at its centre ``(u + 0.5, v + 0.5)``; the camera-frame direction is
  ``((u + 0.5 - cx) / (fx + 1e-8), (v + 0.5 - cy) / (fy + 1e-8), 1)``, rotated to the world frame by
  the c2w rotation and normalised (``/ (|d| + 1e-8)``); the ray origin is the camera centre;
* a Plücker map has 6 channels ``[o x d (moment), d (unit direction)]``, both in world coordinates.
"""

from __future__ import annotations

import torch

from gen3r.cameras._linalg import affine_inverse
from gen3r.errors import Gen3RError

__all__ = ["plucker_rays", "preprocess_poses", "pack_plucker_for_dit"]


def plucker_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-pixel Plücker embedding ``[o x d, d]`` of each camera (official ``compute_rays``).

    Args:
        c2w: (..., 4, 4) (or (..., 3, 4)) OpenCV camera-to-world matrices, world units.
        intrinsics: (..., 3, 3) pixel intrinsics for an image of (height, width).
        height, width: size of the ray map in pixels.

    Returns:
        (..., 6, height, width) in the promoted dtype of the inputs: channels 0-2 the moment
        ``o x d`` (world units), channels 3-5 the unit world-space direction ``d``.
    """
    if c2w.shape[-2:] not in ((4, 4), (3, 4)) or intrinsics.shape[-2:] != (3, 3):
        raise Gen3RError(f"plucker_rays expects c2w (..., 4, 4) and intrinsics (..., 3, 3), "
                         f"got {tuple(c2w.shape)} and {tuple(intrinsics.shape)}")
    if c2w.shape[:-2] != intrinsics.shape[:-2]:
        raise Gen3RError(f"c2w {tuple(c2w.shape)} and intrinsics {tuple(intrinsics.shape)} need the same "
                         "leading (frame) dimensions")
    if int(height) <= 0 or int(width) <= 0:
        raise Gen3RError(f"ray map size must be positive, got height={height} width={width}")
    dtype = torch.promote_types(c2w.dtype, intrinsics.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    c2w = c2w.to(dtype)
    k = intrinsics.to(dtype=dtype, device=c2w.device)
    lead = c2w.shape[:-2]
    v, u = torch.meshgrid(torch.arange(height, device=c2w.device), torch.arange(width, device=c2w.device),
                          indexing="ij")
    fx, fy = k[..., 0, 0, None, None], k[..., 1, 1, None, None]
    cx, cy = k[..., 0, 2, None, None], k[..., 1, 2, None, None]
    x = (u + 0.5 - cx) / (fx + 1e-8)
    y = (v + 0.5 - cy) / (fy + 1e-8)
    cam_dirs = torch.stack([x, y, torch.ones_like(x)], -1)  # (..., H, W, 3) camera frame
    rotation = c2w[..., :3, :3]
    dirs = torch.einsum("...ij,...hwj->...ihw", rotation, cam_dirs)  # (..., 3, H, W) world frame
    dirs = dirs / (torch.linalg.vector_norm(dirs, dim=-3, keepdim=True) + 1e-8)
    origins = c2w[..., :3, 3, None, None].expand(lead + (3, height, width))
    moments = torch.cross(origins, dirs, dim=-3)
    return torch.cat([moments, dirs], dim=-3)


def preprocess_poses(c2w: torch.Tensor) -> torch.Tensor:
    """Express every pose relative to the first one (official ``preprocess_poses``).

    Args:
        c2w: (F, 4, 4) OpenCV camera-to-world matrices.

    Returns:
        (F, 4, 4) ``rel_i = inv(c2w_0) @ c2w_i``; frame 0 is exactly the identity. Translations keep
        their unit: there is no scale normalisation and no recentring.
    """
    if c2w.ndim != 3 or c2w.shape[-2:] != (4, 4) or c2w.shape[0] == 0:
        raise Gen3RError(f"preprocess_poses expects c2w of shape (F, 4, 4) with F >= 1, got {tuple(c2w.shape)}")
    first_w2c = affine_inverse(c2w[0])
    identity = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
    return torch.cat([identity[None], first_w2c @ c2w[1:]], 0)


def pack_plucker_for_dit(plucker: torch.Tensor, halves: int = 2) -> torch.Tensor:
    """Pack per-frame Plücker maps into the DiT camera input ``y_camera`` (official packing).

    Frame 0 is repeated so there are F + 3 frames, which are grouped by 4 consecutive frames (one
    group per latent frame); inside a group, channel ``4 * c + k`` holds Plücker channel ``c`` of
    the group's ``k``-th frame. The result is repeated along width once per latent half: the
    appearance (left) and geometry (right) halves of the joint latent (``halves=2``), or the
    appearance latent alone of an appearance-only DiT (``halves=1``).

    Args:
        plucker: (B, F, 6, H, W) with F = 4k + 1.
        halves: 2 (joint latent) or 1.

    Returns:
        (B, 24, (F - 1) // 4 + 1, H, halves * W).
    """
    if plucker.ndim != 5 or plucker.shape[2] != 6:
        raise Gen3RError(f"pack_plucker_for_dit expects (B, F, 6, H, W), got {tuple(plucker.shape)}")
    batch, frames, _, height, width = plucker.shape
    if frames % 4 != 1:
        raise Gen3RError(f"the number of frames must be 4k + 1 (e.g. 9, 49), got {frames}")
    p = plucker.transpose(1, 2)  # (B, 6, F, H, W)
    p = torch.cat([p[:, :, :1].expand(-1, -1, 3, -1, -1), p], dim=2)  # (B, 6, F + 3, H, W)
    groups = (frames + 3) // 4
    p = p.reshape(batch, 6, groups, 4, height, width).transpose(2, 3)  # (B, 6, 4, f, H, W)
    p = p.reshape(batch, 24, groups, height, width)
    return torch.cat([p] * halves, dim=-1)
