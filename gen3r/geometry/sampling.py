"""Farthest point sampling (exact, accelerated with spatial buckets).

Plain FPS costs O(N) per sample. Here the points are first split into compact buckets (a
kd-tree built by median splits). Each bucket keeps its bounding box and the largest
"distance to the selected set" of its points. A new sample can only lower the distances of a
bucket whose box is closer to it than that largest distance, so the other buckets are skipped.
The result equals plain FPS (up to ties between exactly equal distances).
"""

from __future__ import annotations

import numpy as np

from gen3r.errors import Gen3RError
from gen3r.geometry._arrays import ArrayLike, as_points, check_finite

#: Target number of points per bucket.
_BUCKET_SIZE = 1024


def _kd_buckets(points: np.ndarray, bucket_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Order the points into kd-tree leaves of at most ``bucket_size`` points.

    Returns ``order`` (a permutation of ``range(N)``) and ``bounds`` (start offsets of the
    buckets in ``order``, followed by ``N``).
    """
    order = np.arange(points.shape[0])
    segments = [(0, points.shape[0])]
    leaves = []
    while segments:
        start, stop = segments.pop()
        if stop - start <= bucket_size:
            leaves.append(start)
            continue
        idx = order[start:stop]
        pts = points[idx]
        axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
        half = (stop - start) // 2
        order[start:stop] = idx[np.argpartition(pts[:, axis], half)]
        segments += [(start, start + half), (start + half, stop)]
    bounds = np.array(sorted(leaves) + [points.shape[0]])
    return order, bounds


def farthest_point_sampling(points: ArrayLike, num_samples: int, seed: int = 0) -> np.ndarray:
    """Indices of ``num_samples`` points chosen by farthest point sampling.

    Args:
        points: ``(N, 3)`` points (numpy or torch; any unit and frame).
        num_samples: Number of points to select (> 0).
        seed: Picks the start point: ``numpy.random.default_rng(seed).integers(N)``.

    Returns:
        ``(min(num_samples, N),)`` int64 numpy array of unique indices into ``points``, in
        selection order; the first one is the seeded start point. If ``N <= num_samples``
        all indices ``0..N-1`` are returned in order.
    """
    pts = as_points(points, "points", np.float64)
    check_finite(pts, "points")
    if num_samples <= 0:
        raise Gen3RError(f"num_samples must be > 0, got {num_samples}")
    n = pts.shape[0]
    if n == 0:
        raise Gen3RError("points is empty; farthest point sampling needs at least one point")
    if n <= num_samples:
        return np.arange(n, dtype=np.int64)

    order, bounds = _kd_buckets(pts, _BUCKET_SIZE)
    sorted_pts = pts[order]
    starts, stops = bounds[:-1], bounds[1:]
    lo = np.minimum.reduceat(sorted_pts, starts, axis=0)
    hi = np.maximum.reduceat(sorted_pts, starts, axis=0)
    dist = np.full(n, np.inf)
    bucket_max = np.full(starts.shape[0], np.inf)

    first = int(np.random.default_rng(seed).integers(n))
    current = int(np.flatnonzero(order == first)[0])
    chosen = np.empty(num_samples, dtype=np.int64)
    for k in range(num_samples):
        chosen[k] = current
        c = sorted_pts[current]
        gap = np.maximum(lo - c, 0.0) + np.maximum(c - hi, 0.0)
        near = np.flatnonzero((gap * gap).sum(axis=1) <= bucket_max)
        for b in near:
            s, e = starts[b], stops[b]
            diff = sorted_pts[s:e] - c
            np.minimum(dist[s:e], np.einsum("ij,ij->i", diff, diff), out=dist[s:e])
            bucket_max[b] = dist[s:e].max()
        best = int(np.argmax(bucket_max))
        if bucket_max[best] == 0.0:  # only duplicates of chosen points are left
            rest = np.setdiff1d(np.arange(n), chosen[: k + 1], assume_unique=True)
            chosen[k + 1 :] = rest[: num_samples - k - 1]
            break
        current = int(starts[best] + np.argmax(dist[starts[best] : stops[best]]))
    return order[chosen]
