"""Stable parallel argsort of non-negative integer keys (LSD radix sort, numba).

``np.argsort`` runs on one core; for the 15 M cell and voxel keys of a Gen3R point cloud this
radix sort takes a fraction of its time on two cores (docs/benchmarks.md). Each pass sorts by
11 bits: per-chunk digit histograms, one exclusive prefix over (digit, chunk), then every chunk
scatters its points in order, so the sort is stable.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
from numba import get_num_threads, njit, prange

#: Bits per radix pass.
_BITS = 11
#: Below this many keys ``np.argsort(kind="stable")`` is used.
_MIN_KEYS = 1 << 16


@njit(cache=True, parallel=True)
def _radix_pass(src_keys, src_idx, dst_keys, dst_idx, shift, chunks):
    """Stable scatter of ``(src_keys, src_idx)`` by digit ``(key >> shift) & (2^_BITS - 1)``."""
    n = src_keys.shape[0]
    buckets = 1 << _BITS
    mask = buckets - 1
    counts = np.zeros((chunks, buckets), np.int64)
    for c in prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            counts[c, (src_keys[i] >> shift) & mask] += 1
    total = 0
    for digit in range(buckets):
        for c in range(chunks):
            count = counts[c, digit]
            counts[c, digit] = total
            total += count
    for c in prange(chunks):
        offsets = counts[c]
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            key = src_keys[i]
            digit = (key >> shift) & mask
            slot = offsets[digit]
            dst_keys[slot] = key
            dst_idx[slot] = src_idx[i]
            offsets[digit] = slot + 1


@njit(cache=True, parallel=True)
def _iota(out):
    for i in prange(out.shape[0]):
        out[i] = i


@overload
def argsort_keys(keys: np.ndarray, return_sorted: Literal[False] = False) -> np.ndarray: ...


@overload
def argsort_keys(keys: np.ndarray, return_sorted: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def argsort_keys(keys: np.ndarray, return_sorted: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...


def argsort_keys(keys: np.ndarray, return_sorted: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Stable argsort (int64 indices) of 1-D non-negative integer ``keys``.

    Equal to ``np.argsort(keys, kind="stable")``; with ``return_sorted`` also returns
    ``keys[order]`` (a by-product of the sort). Needs about 4 extra int64 arrays of the length
    of ``keys`` while it runs.
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    n = keys.shape[0]
    if n and int(keys.min()) < 0:
        raise ValueError("argsort_keys needs non-negative keys")
    if n < _MIN_KEYS:
        order = np.argsort(keys, kind="stable")
        return (order, keys[order]) if return_sorted else order
    passes = max(1, -(-int(keys.max()).bit_length() // _BITS))
    chunks = max(1, get_num_threads())
    src_idx = np.empty(n, dtype=np.int64)
    _iota(src_idx)
    dst_keys = np.empty(n, dtype=np.int64)
    dst_idx = np.empty(n, dtype=np.int64)
    src_keys = keys
    for p in range(passes):
        _radix_pass(src_keys, src_idx, dst_keys, dst_idx, p * _BITS, chunks)
        if p == 0:
            src_keys = np.empty(n, dtype=np.int64)  # never write into the caller's array
        src_keys, dst_keys = dst_keys, src_keys
        src_idx, dst_idx = dst_idx, src_idx
    return (src_idx, src_keys) if return_sorted else src_idx
