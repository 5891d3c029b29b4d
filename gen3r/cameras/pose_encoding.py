"""VGGT's ``absT_quaR_FoV`` pose encoding and the quaternion conversions it relies on.

Layout of one encoding (9 numbers), as in upstream VGGT ``vggt/utils/pose_enc.py`` and the
copy inside the official Gen3R code:

* ``[0:3]`` translation ``t`` of the **world-to-camera** extrinsic ``[R | t]`` (OpenCV axes:
  x right, y down, z forward), in the scene's length unit;
* ``[3:7]`` the rotation ``R`` as a unit quaternion **x, y, z, w (scalar last)**;
* ``[7]`` vertical field of view ``fov_h`` and ``[8]`` horizontal field of view ``fov_w``, radians.

Decoding builds pixel intrinsics with ``fy = (H/2) / tan(fov_h/2)``, ``fx = (W/2) / tan(fov_w/2)``
and the principal point at the image centre ``(W/2, H/2)``; the intrinsic matrices are float32.
The quaternion <-> matrix conversions follow VGGT (itself from PyTorch3D): the matrix is built
with ``2 / |q|^2`` (so a non-unit quaternion still gives a rotation), and the matrix-to-quaternion
direction picks the best-conditioned of four candidates and returns ``w >= 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gen3r.errors import Gen3RError

__all__ = [
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "extri_intri_to_pose_encoding",
    "pose_encoding_to_extri_intri",
]


#: Smallest field of view (radians) turned into a focal length by :func:`pose_encoding_to_extri_intri`.
MIN_FOV = 1e-6


def _focal(size: int, fov: torch.Tensor) -> torch.Tensor:
    """``(size / 2) / tan(fov / 2)``; a field of view of exactly 0 (VGGT's ReLU'd FoV of an untrained
    head) gives the focal length of :data:`MIN_FOV` instead of infinity (other values unchanged).

    The tangent is evaluated in float64 and rounded to ``fov``'s dtype: the correctly rounded value, the
    same on every CPU (vectorised float32 ``tan`` kernels differ by an ulp between machines), and the
    value the official float32 code produced for the fixtures."""
    wide = torch.float32 if fov.device.type == "mps" else torch.float64  # MPS has no float64
    tangent = torch.tan(fov.to(wide) / 2.0).to(fov.dtype)
    focal = (size / 2.0) / tangent
    return torch.where(torch.isinf(focal), torch.full_like(focal, (size / 2.0) / float(np.tan(MIN_FOV / 2.0))), focal)


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) ordered x, y, z, w (scalar last).

    The quaternion does not need unit norm: the formula divides by ``|q|^2``.
    """
    x, y, z, w = torch.unbind(quaternions, -1)
    two_s = 2.0 / (quaternions * quaternions).sum(-1)
    rows = (
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    )
    return torch.stack(rows, -1).reshape(quaternions.shape[:-1] + (3, 3))


def _sqrt_positive(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with a zero (not NaN) gradient where ``x <= 0``."""
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(x))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) ordered x, y, z, w with ``w >= 0`` from rotations (..., 3, 3).

    Numerically the same algorithm as VGGT's ``mat_to_quat``: the four candidate quaternions
    (one per largest component) are computed and the best-conditioned one is kept.
    """
    if matrix.shape[-2:] != (3, 3):
        raise Gen3RError(f"rotation matrices must have shape (..., 3, 3), got {tuple(matrix.shape)}")
    batch = matrix.shape[:-2]
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = torch.unbind(matrix.reshape(batch + (9,)), -1)
    # |w|, |x|, |y|, |z| times 2, from the diagonal
    q_abs = _sqrt_positive(torch.stack([
        1.0 + m00 + m11 + m22,
        1.0 + m00 - m11 - m22,
        1.0 - m00 + m11 - m22,
        1.0 - m00 - m11 + m22,
    ], -1))
    # row i: the quaternion (w, x, y, z) multiplied by 2 * its i-th component
    by_wxyz = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
    ], -2)
    floor = torch.tensor(0.1, dtype=q_abs.dtype, device=q_abs.device)
    candidates = by_wxyz / (2.0 * q_abs[..., None].max(floor))
    best = F.one_hot(q_abs.argmax(-1), num_classes=4) > 0.5
    wxyz = candidates[best, :].reshape(batch + (4,))
    xyzw = wxyz[..., [1, 2, 3, 0]]
    return torch.where(xyzw[..., 3:4] < 0, -xyzw, xyzw)


def _check_size(image_size: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise Gen3RError(f"image_size must be (height, width), got {image_size!r}") from None
    if height <= 0 or width <= 0:
        raise Gen3RError(f"image_size must be positive (height, width), got {image_size!r}")
    return height, width


def extri_intri_to_pose_encoding(extrinsics: torch.Tensor, intrinsics: torch.Tensor,
                                 image_size: Sequence[int]) -> torch.Tensor:
    """Encode cameras as VGGT ``absT_quaR_FoV`` vectors.

    Args:
        extrinsics: (..., 3, 4) or (..., 4, 4) OpenCV world-to-camera matrices.
        intrinsics: (..., 3, 3) pixel intrinsics for an image of ``image_size``.
        image_size: (H, W) in pixels.

    Returns:
        (..., 9) float32 ``[t(3), quaternion xyzw (4), fov_h, fov_w]`` (angles in radians).
    """
    height, width = _check_size(image_size)
    if extrinsics.shape[-2:] not in ((3, 4), (4, 4)) or intrinsics.shape[-2:] != (3, 3):
        raise Gen3RError(f"expected extrinsics (..., 3, 4)/(..., 4, 4) and intrinsics (..., 3, 3), "
                         f"got {tuple(extrinsics.shape)} and {tuple(intrinsics.shape)}")
    rotation = extrinsics[..., :3, :3]
    translation = extrinsics[..., :3, 3]
    quat = matrix_to_quaternion(rotation)
    fov_h = 2 * torch.atan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsics[..., 0, 0])
    return torch.cat([translation, quat, fov_h[..., None], fov_w[..., None]], -1).float()


def pose_encoding_to_extri_intri(pose_encoding: torch.Tensor,
                                 image_size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode VGGT ``absT_quaR_FoV`` vectors into cameras.

    Args:
        pose_encoding: (..., 9) ``[t(3), quaternion xyzw (4), fov_h, fov_w]``.
        image_size: (H, W) in pixels of the image the intrinsics are built for.

    Returns:
        extrinsics (..., 3, 4) OpenCV world-to-camera in the encoding's dtype, and
        intrinsics (..., 3, 3) float32 pixel matrices with the principal point at (W/2, H/2).
    """
    height, width = _check_size(image_size)
    if pose_encoding.shape[-1] != 9:
        raise Gen3RError(f"pose encodings must have 9 values in the last axis, got {tuple(pose_encoding.shape)}")
    translation = pose_encoding[..., :3]
    rotation = quaternion_to_matrix(pose_encoding[..., 3:7])
    extrinsics = torch.cat([rotation, translation[..., None]], -1)
    fy = _focal(height, pose_encoding[..., 7])
    fx = _focal(width, pose_encoding[..., 8])
    intrinsics = torch.zeros(pose_encoding.shape[:-1] + (3, 3), dtype=torch.float32, device=pose_encoding.device)
    intrinsics[..., 0, 0] = fx
    intrinsics[..., 1, 1] = fy
    intrinsics[..., 0, 2] = width / 2
    intrinsics[..., 1, 2] = height / 2
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics
