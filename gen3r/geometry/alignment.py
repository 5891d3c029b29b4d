"""Similarity (Sim(3)) alignment of corresponding point sets.

Both functions accept numpy arrays or torch tensors. :func:`umeyama` computes in float64 numpy
and returns the type (and, for torch, dtype and device) of ``src``; it is not differentiable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gen3r.errors import Gen3RError
from gen3r.geometry._arrays import ArrayLike, as_points, check_finite


def _like(x: np.ndarray, ref: Any) -> ArrayLike:
    """Return ``x`` converted to the array type, dtype and device of ``ref``."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
    return x.astype(ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float64)


def umeyama(src: ArrayLike, dst: ArrayLike, with_scale: bool = True) -> tuple[Any, ArrayLike, ArrayLike]:
    """Least-squares similarity transform with ``dst ≈ scale * R @ src + t`` (Umeyama 1991).

    Args:
        src: ``(N, 3)`` source points (any frame and unit).
        dst: ``(N, 3)`` corresponding destination points.
        with_scale: Estimate the scale (Umeyama's trace formula); otherwise ``scale = 1``.

    Returns:
        ``(scale, R, t)``: ``scale`` a Python float, ``R`` a proper rotation ``(3, 3)``
        (``det R = +1``, reflections are corrected), ``t`` ``(3,)`` in ``dst`` units; ``R`` and ``t``
        have the array type of ``src``.

    Raises:
        Gen3RError: Shape mismatch, fewer than 3 points, non-finite values, or all source points
            identical.
    """
    s = as_points(src, "src", np.float64)
    d = as_points(dst, "dst", np.float64)
    if s.shape != d.shape:
        raise Gen3RError(f"src and dst must have the same shape, got {s.shape} and {d.shape}; "
                         "pass corresponding points")
    if s.shape[0] < 3:
        raise Gen3RError(f"umeyama needs at least 3 point pairs, got {s.shape[0]}")
    check_finite(s, "src")
    check_finite(d, "dst")
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    var_s = float((sc**2).sum() / s.shape[0])
    if var_s <= 0.0:
        raise Gen3RError("src points are all identical; a similarity transform is undefined")
    cov = dc.T @ sc / s.shape[0]
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2] = -1.0
    rot = (u * sign) @ vt
    scale = float((sigma * sign).sum() / var_s) if with_scale else 1.0
    trans = mu_d - scale * rot @ mu_s
    return scale, _like(rot, src), _like(trans, src)


def apply_sim3(points: ArrayLike, scale: float, R: ArrayLike, t: ArrayLike) -> ArrayLike:
    """Apply ``p -> scale * R @ p + t`` to ``(..., 3)`` points (numpy or torch, type kept)."""
    if points.shape[-1] != 3:
        raise Gen3RError(f"points must have shape (..., 3), got {tuple(points.shape)}")
    if tuple(R.shape) != (3, 3) or tuple(t.shape) != (3,):
        raise Gen3RError(f"R must be (3, 3) and t (3,), got {tuple(R.shape)} and {tuple(t.shape)}")
    return scale * (points @ R.T) + t
