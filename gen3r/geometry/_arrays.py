"""Input checking shared by the geometry functions: numpy/torch in, numpy out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gen3r.errors import Gen3RError

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array (torch tensors are detached and moved to CPU).

    bfloat16/float16 tensors are widened to float32 (numpy has no bfloat16). Raises
    :class:`Gen3RError` for anything that is neither an array nor a tensor.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.numpy()
    if isinstance(x, np.ndarray):
        return x
    raise Gen3RError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}; convert it first")


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise :class:`Gen3RError` if ``x`` holds NaN or infinity."""
    if not np.isfinite(x).all():
        raise Gen3RError(f"{name} contains NaN or infinite values; clean the input before calling this function")


def as_points(points: Any, name: str = "points", dtype: Any = None) -> np.ndarray:
    """Return ``points`` as a numpy ``(N, 3)`` float array (``dtype`` if given, else kept if floating)."""
    arr = to_numpy(points, name)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise Gen3RError(f"{name} must have shape (N, 3), got {tuple(arr.shape)}; reshape it with .reshape(-1, 3)")
    if dtype is not None:
        return np.asarray(arr, dtype=dtype)
    if not np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64)
    return arr


def column_bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis ``(min, max)`` of ``(N, 3)`` points, in their dtype.

    Reduces each column separately: numpy's ``min(axis=0)`` over a tall ``(N, 3)`` array is ~8x
    slower (0.6 s against 0.08 s on 15 M points).
    """
    lo = np.array([points[:, axis].min() for axis in range(3)], dtype=points.dtype)
    hi = np.array([points[:, axis].max() for axis in range(3)], dtype=points.dtype)
    return lo, hi


def finite_rows(points: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the rows of ``(N, 3)`` points that are all finite, or ``None`` if all are."""
    if np.isfinite(points).all():
        return None
    return np.isfinite(points[:, 0]) & np.isfinite(points[:, 1]) & np.isfinite(points[:, 2])


def take_rows(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``array[mask]`` for a 2-D array and a boolean row mask, ~5x faster than numpy's row
    indexing on tall arrays: each row is viewed as one opaque item of ``row bytes``."""
    array = np.ascontiguousarray(array)
    rows = array.view(np.dtype((np.void, array.dtype.itemsize * array.shape[1]))).reshape(-1)
    return rows[mask].view(array.dtype).reshape(-1, array.shape[1])


def kernel_floats(array: np.ndarray) -> np.ndarray:
    """``array`` as C-contiguous float32 (kept) or float64 (anything else): the two dtypes the
    numba kernels of this package are compiled for."""
    if array.dtype == np.float32:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array, dtype=np.float64)
