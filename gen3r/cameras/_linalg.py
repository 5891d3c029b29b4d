"""Closed-form 3x3 determinants and affine 4x4 inverses.

Camera batches are tiny matrices; LAPACK calls on them are slow when the CPU is shared (thread
start-up dominates), so these closed forms are used instead. They work on any device, keep
autograd, and are computed in float64.
"""

from __future__ import annotations

import torch

from gen3r.errors import Gen3RError


def det3(m: torch.Tensor) -> torch.Tensor:
    """Determinant of (..., 3, 3) matrices by cofactor expansion."""
    return (m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
            - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
            + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0]))


def affine_inverse(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 4, 4) affine matrices ``[[A, t], [0, 1]]`` -> ``[[A^-1, -A^-1 t], [0, 1]]``.

    Computed in float64 with the adjugate formula and cast back to the input dtype. Raises
    :class:`~gen3r.errors.Gen3RError` when a 3x3 block is singular.
    """
    a = m[..., :3, :3].double()
    det = det3(a)
    if (det.abs() < 1e-12).any():
        raise Gen3RError("camera matrix is not invertible (its 3x3 rotation block is singular); "
                         "check the extrinsics / c2w")
    cof = torch.stack([
        torch.linalg.cross(a[..., 1, :], a[..., 2, :], dim=-1),
        torch.linalg.cross(a[..., 2, :], a[..., 0, :], dim=-1),
        torch.linalg.cross(a[..., 0, :], a[..., 1, :], dim=-1),
    ], -1)  # columns are the cross products, so cof = adj(a)
    inv_a = cof / det[..., None, None]
    t = m[..., :3, 3].double()
    out = torch.zeros(m.shape[:-2] + (4, 4), dtype=torch.float64, device=m.device)
    out[..., :3, :3] = inv_a
    out[..., :3, 3] = -(inv_a @ t[..., None])[..., 0]
    out[..., 3, 3] = 1.0
    return out.to(m.dtype)
