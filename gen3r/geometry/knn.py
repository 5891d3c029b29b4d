"""Exact mean k-nearest-neighbour distances for large point clouds.

:func:`mean_knn_distances` returns, for every point, the mean Euclidean distance to its ``k``
nearest points, the point itself included (Open3D's ``remove_statistical_outlier`` statistic).
It is exact: every result is the mean of the true ``k`` smallest float64 distances (only the
order of the final float64 summation differs from a kd-tree, i.e. results agree to ~1e-16
relative).

Large clouds use a uniform-grid search compiled with numba; on Gen3R-sized outputs it costs
about a quarter of the CPU time of pykdtree's kd-tree (docs/benchmarks.md):

1. Points are bucketed into cubic cells of edge ``h`` (about 1.5x the typical k-th neighbour
   distance, estimated from a random subsample), sorted by cell (x-major, z fastest) and by a
   Morton code inside each cell (a parallel radix sort), so that consecutive queries are close
   in space.
2. A query in cell ``c`` only looks at the 5 x 5 x 5 cells around ``c``. Any point farther than
   ``r_q = 2h + (distance from q to the faces of c)`` may lie outside that block, so a result
   is accepted only when at least ``k`` candidates lie within a radius ``tau <= r_q``; then the
   ``k`` nearest are exactly the ``k`` nearest of those candidates.
3. ``tau`` starts optimistic, 1.15x the k-th distance of the nearest of the last four answered
   queries, and is widened (by the shortfall of candidates, up to the safe bound
   ``min(r_q, r_i + |q - p_i|)`` from the triangle inequality) while fewer than ``k`` candidates
   fall inside; cells farther than ``tau`` are skipped.
4. The inner loops are eight-lane vector code (:mod:`gen3r.geometry._simd`): squared distances
   of 8 candidates at a time, appended with a compress-store when ``<= tau``, and the ``k``
   smallest of the few dozen kept found by counting ranks, after the values below 0.9x the
   predicted k-th distance are set aside as certainly selected.
5. Queries with fewer than ``k`` points within ``r_q`` (isolated outliers, sparse regions, ~1 %
   on Gen3R outputs) go to a coarse grid of ``4 x 4 x 4`` fine cells, searched best-first: the
   coarse cells of a growing block are visited nearest box first, fine cells and points beyond
   the current k-th distance are skipped, and the result is accepted once that distance is
   within the block's certified radius. Only what overflows its buffer (massive duplicates) and
   degenerate grids use pykdtree.

Points are in any unit and frame; distances are in that unit.
"""

from __future__ import annotations

import logging

import numpy as np
from numba import njit, prange
from pykdtree.kdtree import KDTree
from tqdm.auto import tqdm

from gen3r.geometry._arrays import column_bounds, kernel_floats
from gen3r.geometry._simd import LANES, scan8, select_small, split8
from gen3r.geometry._sort import argsort_keys

logger = logging.getLogger(__name__)

#: Below this many points the kd-tree alone is used (no grid set-up, no JIT compilation).
GRID_MIN_POINTS = 50_000
#: Cell edge in units of the estimated median k-th neighbour distance.
_CELL_FACTOR = 1.5
#: The optimistic search radius in units of a nearby point's k-th neighbour distance.
_TAU_FACTOR = 1.15
#: Values below this times a nearby point's k-th distance are taken without ranking.
_SPLIT_FACTOR = 0.9
#: Extra factor on the squared radius when a retry widens it.
_GROW = 1.3
#: Half-width of the searched cell block (a block of (2A+1)^3 cells).
_A = 2
#: Bits per axis of the Morton code that orders points inside a cell.
_SUB = 6
#: Recent answered queries whose k-th distances bound the next query's radius.
_RING = 4
#: Work items (runs of cells) of the fine-grid pass, for load balancing.
_SEGMENTS = 1024
#: Groups of work items run one after the other, for the progress bar.
_PROGRESS_STEPS = 16
#: Largest dense (x, y) row table (entries); beyond it rows are found by binary search.
_MAX_ROWS = 1 << 24
#: Largest candidate buffer per thread (float64 entries); crowded blocks go to the coarse pass.
_MAX_BLOCK = 1 << 20
#: Largest candidate count ranked with vector compares; more go to quickselect.
_SMALL = 96
#: Coarse cell edge in fine cells (the search for queries the fine block cannot answer).
_COARSE_FACTOR = 4
#: Largest coarse-grid table (cells); the coarse factor doubles until the table fits.
_MAX_COARSE = 1 << 24
#: Candidate buffer per thread of the coarse pass (float64 entries); overflows go to the kd-tree.
_COARSE_BLOCK = 1 << 22
#: Quantile (each side, each axis) bounding the grid box when far points make the full box too big.
_BULK_QUANTILE = 0.001
#: Points per kd-tree query batch (bounds the (batch, k) distance matrix).
_QUERY_CHUNK = 1 << 19


@njit(cache=True, inline="always")
def _spread3(x):
    """Insert two zero bits between the low 21 bits of ``x`` (Morton interleave)."""
    x = x & 0x1FFFFF
    x = (x | (x << 32)) & 0x1F00000000FFFF
    x = (x | (x << 16)) & 0x1F0000FF0000FF
    x = (x | (x << 8)) & 0x100F00F00F00F00F
    x = (x | (x << 4)) & 0x10C30C30C30C30C3
    x = (x | (x << 2)) & 0x1249249249249249
    return x


@njit(cache=True, inline="always")
def _cell_index(value, lo, h, dim):
    """Grid cell of coordinate ``value`` along an axis starting at ``lo``; points outside the grid
    box go to the boundary cells. The one formula for cells, so every kernel agrees on them."""
    return min(max(np.int64((value - lo) / h), 0), dim - 1)


@njit(cache=True, parallel=True)
def _sort_keys(p, lo, h, dims, out):
    """Per point: linear cell id (x-major) in the high bits, Morton code inside the cell below."""
    sub = 1 << _SUB
    for i in prange(p.shape[0]):
        lin = np.int64(0)
        mor = np.int64(0)
        for a in range(3):
            c = _cell_index(p[i, a], lo[a], h, dims[a])
            s = min(max(np.int64(((p[i, a] - lo[a]) / h - c) * sub), 0), sub - 1)
            lin = lin * dims[a] + c
            mor |= _spread3(s) << a
        out[i] = (lin << (3 * _SUB)) | mor


@njit(cache=True, inline="always")
def _lower_bound(keys, key, lo, hi):
    """First index in ``keys[lo:hi]`` (sorted) whose value is >= ``key``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _select_sum(d, n, k):
    """Move the ``k`` smallest of ``d[:n]`` to the front; return (k-th smallest, sum of sqrt)."""
    lo = 0
    hi = n - 1
    kk = k - 1
    while lo < hi:
        pivot = d[(lo + hi) >> 1]
        i = lo
        j = hi
        while i <= j:
            while d[i] < pivot:
                i += 1
            while d[j] > pivot:
                j -= 1
            if i <= j:
                t = d[i]
                d[i] = d[j]
                d[j] = t
                i += 1
                j -= 1
        if kk <= j:
            hi = j
        elif kk >= i:
            lo = i
        else:
            break
    kth = d[0]
    total = 0.0
    for t in range(k):
        kth = max(kth, d[t])
        total += np.sqrt(d[t])
    return kth, total


@njit(cache=True, inline="always")
def _gap(f, size, o):
    """Distance from offset ``f`` inside a cell of edge ``size`` to the cell ``o`` steps away."""
    if o < 0:
        return f - (o + 1) * size
    if o > 0:
        return (o - 1) * size + (size - f)
    return 0.0


@njit(cache=True, inline="always")
def _face_gaps(f, h, a, out):
    """Squared distance from offset ``f`` in a cell to cell offsets -a..a along one axis."""
    for i in range(2 * a + 1):
        g = _gap(f, h, i - a)
        out[i] = g * g


@njit(cache=True)
def _scan(xs, ys, zs, qx, qy, qz, tau, runs, gx, gy, gz, a, d):
    """Squared distances <= ``tau`` from q to the block's points, into ``d``; returns the count.

    Cells whose box is farther than ``tau`` are skipped; the cells of one (x, y) row that remain
    are a contiguous z run, hence one contiguous range of points.
    """
    w = 2 * a + 1
    n = 0
    for i in range(w):
        gi = gx[i]
        if gi > tau:
            continue
        for j in range(w):
            gij = gi + gy[j]
            if gij > tau:
                continue
            l0 = a
            while l0 > 0 and gij + gz[l0 - 1] <= tau:
                l0 -= 1
            l1 = a
            while l1 < w - 1 and gij + gz[l1 + 1] <= tau:
                l1 += 1
            base = (i * w + j) * (w + 1)
            stop = runs[base + l1 + 1]
            for t in range(runs[base + l0], stop, LANES):
                n = scan8(xs, ys, zs, t, stop - t, qx, qy, qz, tau, d, n)
    return n


@njit(cache=True)
def _cell_block(cells, starts, rows, c, dims, a, runs, pos, last):
    """Point ranges of the (2a+1)^3 cells around cell ``c``: ``runs[(i*w+j)*(w+1) + l]`` is the
    first point of row (i, j) with z offset >= l - a (``w = 2a+1``).

    ``pos`` keeps, per neighbouring row, the first cell at or after the block's z window and
    ``last[0]`` the (x, y) row of the previous call: cells are visited in ascending order, so
    within one (x, y) row the windows only move forward and ``pos`` is advanced instead of
    binary-searched again.
    """
    ny = dims[1]
    nz = dims[2]
    ncell = cells.shape[0]
    key = cells[c]
    cz = key % nz
    row_c = key // nz
    cy = row_c % ny
    cx = row_c // ny
    fresh = row_c != last[0]
    last[0] = row_c
    w = 2 * a + 1
    for i in range(w):
        x = cx + i - a
        for j in range(w):
            y = cy + j - a
            slot = i * w + j
            base = slot * (w + 1)
            if x < 0 or x >= dims[0] or y < 0 or y >= ny:
                for d in range(w + 1):
                    runs[base + d] = 0
                continue
            row = x * ny + y
            if rows.shape[0] > 0:
                r0 = rows[row]
                r1 = rows[row + 1]
            else:
                r0 = 0
                r1 = ncell
            target = row * nz + cz - a
            if fresh:
                t = _lower_bound(cells, target, r0, r1)
            else:
                t = pos[slot]
                while t < r1 and cells[t] < target:
                    t += 1
            pos[slot] = t
            for d in range(w + 1):
                while t < r1 and cells[t] < target + d:
                    t += 1
                runs[base + d] = starts[t]
    return cx, cy, cz


@njit(cache=True, inline="always")
def _pad_select(d, n, k):
    """:func:`select_small` on ``d[:n]`` after filling ``d[n:]`` with +inf to a multiple of 8."""
    for t in range(n, (n + LANES - 1) // LANES * LANES):
        d[t] = np.inf
    return select_small(d, n, k)


@njit(cache=True)
def _kth_and_sum(d, n, k, split, aux):
    """(k-th smallest, sum of sqrt of the k smallest) of ``d[:n]``; ``d`` and ``aux`` have 8
    spare entries. ``split > 0`` is a guess just below the k-th smallest: the values up to it
    (all selected, unless more than k) go to ``aux`` and only the rest is ranked."""
    if n > _SMALL:
        return _select_sum(d, n, k)
    if not split > 0.0:
        return _pad_select(d, n, k)
    n_low = 0
    n_high = 0
    for t in range(0, n, LANES):
        n_low, n_high = split8(d, t, n - t, split, aux, n_low, d, n_high)
    if n_low > k:
        return _pad_select(aux, n_low, k)
    kth = 0.0
    total = 0.0
    for t in range(n_low):
        kth = max(kth, aux[t])
        total += np.sqrt(aux[t])
    if n_low == k:
        return kth, total
    kth, rest = _pad_select(d, n_high, k - n_low)
    return kth, total + rest


@njit(cache=True)
def _cell_queries(xs, ys, zs, cells, starts, rows, c, dims, lo, h, k, runs, pos, last, gx, gy, gz, d, aux, ring,
                  ring_r, out):
    """Answer the queries of cell ``c``; unanswered ones get -1 (left to the coarse pass)."""
    a = _A
    cx, cy, cz = _cell_block(cells, starts, rows, c, dims, a, runs, pos, last)
    w = 2 * a + 1
    total = 0
    for i in range(w * w):
        total += runs[i * (w + 1) + w] - runs[i * (w + 1)]
    if total > d.shape[0] - LANES:  # too crowded for the buffer (e.g. massive duplicates)
        out[starts[c]:starts[c + 1]] = -1.0
        return
    x0 = lo[0] + cx * h
    y0 = lo[1] + cy * h
    z0 = lo[2] + cz * h
    eps = 1e-9 * h
    for q in range(starts[c], starts[c + 1]):
        qx = xs[q]
        qy = ys[q]
        qz = zs[q]
        fx = qx - x0
        fy = qy - y0
        fz = qz - z0
        # radius inside which the block holds every point of the cloud
        r = a * h + min(fx, h - fx, fy, h - fy, fz, h - fz) - eps
        if r <= 0.0:
            out[q] = -1.0
            continue
        tau_safe = r * r
        nearest = np.inf
        r_pred = -1.0
        for u in range(_RING):
            p = ring[u]
            if p >= 0:
                dd = (xs[p] - qx) ** 2 + (ys[p] - qy) ** 2 + (zs[p] - qz) ** 2
                if dd < nearest:
                    nearest = dd
                    r_pred = ring_r[u]
        tau = tau_safe
        if r_pred >= 0.0:
            bound = (r_pred + np.sqrt(nearest)) * (1.0 + 1e-12)  # triangle inequality
            tau_safe = min(tau_safe, bound * bound)
            tau = min(tau_safe, (_TAU_FACTOR * r_pred) ** 2)
        _face_gaps(fx, h, a, gx)
        _face_gaps(fy, h, a, gy)
        _face_gaps(fz, h, a, gz)
        n = _scan(xs, ys, zs, qx, qy, qz, tau, runs, gx, gy, gz, a, d)
        while n < k and tau < tau_safe:
            # too few inside: widen the radius by the shortfall (counts grow ~ r^2 on surfaces)
            grown = tau * _GROW * k / max(n, 1)
            tau = min(tau_safe, grown) if grown > tau else tau_safe  # tau = 0 (duplicates) cannot grow
            n = _scan(xs, ys, zs, qx, qy, qz, tau, runs, gx, gy, gz, a, d)
        if n >= k:
            kth, total = _kth_and_sum(d, n, k, (_SPLIT_FACTOR * r_pred) ** 2 if r_pred > 0.0 else 0.0, aux)
            out[q] = total / k
            u = q % _RING
            ring[u] = q
            ring_r[u] = np.sqrt(kth)
        else:
            out[q] = -1.0


@njit(cache=True, parallel=True)
def _grid_knn(xs, ys, zs, cells, starts, rows, segments, dims, lo, h, k, cap, out):
    """Run :func:`_cell_queries` over all cells, one segment of cells per parallel work item."""
    w = 2 * _A + 1
    for s in prange(segments.shape[0] - 1):
        runs = np.empty(w * w * (w + 1), np.int64)
        pos = np.empty(w * w, np.int64)
        last = np.full(1, -1, np.int64)
        gx = np.empty(w)
        gy = np.empty(w)
        gz = np.empty(w)
        d = np.empty(cap + LANES)
        aux = np.empty(_SMALL + LANES)
        ring = np.full(_RING, -1, np.int64)
        ring_r = np.zeros(_RING)
        for c in range(segments[s], segments[s + 1]):
            _cell_queries(xs, ys, zs, cells, starts, rows, c, dims, lo, h, k, runs, pos, last, gx, gy, gz, d, aux,
                          ring, ring_r, out)


@njit(cache=True)
def _keep_below(d, n, kth):
    """Compact ``d[:n]`` to the values ``<= kth``; returns their count."""
    m = 0
    for t in range(n):
        v = d[t]
        d[m] = v
        m += v <= kth
    return m


@njit(cache=True)
def _coarse_query(xs, ys, zs, q, starts, dims, lo, h, factor, cdims, cstart, zspan, members, mcoord, k, d, order_buf,
                  key_buf):
    """Mean k-NN distance of sorted point ``q`` from the coarse grid, or -1 if ``d`` overflows.

    Coarse cells hold ``factor^3`` fine cells (edge ``H = factor * h``). The block of
    ``(2R+1)^3`` coarse cells around the query's holds every point within
    ``r_R = R*H + (distance to the faces of its coarse cell)``. Its non-empty coarse cells are
    visited nearest box first; fine cells and points farther than the current bound ``U`` (the
    k-th smallest distance found so far) are skipped, and the walk stops at the first coarse
    cell beyond ``U``. The answer is exact when ``U <= r_R``; otherwise ``R`` doubles.
    """
    big = factor * h
    qx = xs[q]
    qy = ys[q]
    qz = zs[q]
    fine = np.empty(3, np.int64)
    cc = np.empty(3, np.int64)
    ff = np.empty(3)
    of = np.empty(3)
    for axis, value in enumerate((qx, qy, qz)):
        f = _cell_index(value, lo[axis], h, dims[axis])
        fine[axis] = f
        cc[axis] = f // factor
        ff[axis] = value - (lo[axis] + cc[axis] * big)
        of[axis] = value - (lo[axis] + f * h)
    eps = 1e-9 * h
    reach = 1
    while True:
        whole = True
        face = np.inf
        for axis in range(3):
            if cc[axis] - reach > 0 or cc[axis] + reach < cdims[axis] - 1:
                whole = False
            face = min(face, ff[axis], big - ff[axis])
        r = reach * big + face - eps
        if not whole and r <= 0.0:
            return -1.0
        cert = np.inf if whole else r * r
        # non-empty coarse cells of the block within the certificate radius, by box distance
        m = 0
        for x in range(max(cc[0] - reach, 0), min(cc[0] + reach + 1, cdims[0])):
            g = _gap(ff[0], big, x - cc[0])
            gi = g * g
            for y in range(max(cc[1] - reach, 0), min(cc[1] + reach + 1, cdims[1])):
                g = _gap(ff[1], big, y - cc[1])
                gij = gi + g * g
                if gij > cert:
                    continue
                row = x * cdims[1] + y
                for z in range(max(cc[2] - reach, zspan[row, 0]), min(cc[2] + reach, zspan[row, 1]) + 1):
                    cid = row * cdims[2] + z
                    if cstart[cid] == cstart[cid + 1]:
                        continue
                    g = _gap(ff[2], big, z - cc[2])
                    gap = gij + g * g
                    if gap > cert:
                        continue
                    if m == key_buf.shape[0]:
                        return -1.0
                    key_buf[m] = gap
                    order_buf[m] = cid
                    m += 1
        if m <= _SMALL:  # insertion sort: no allocation, fast for short lists
            for v in range(1, m):
                key = key_buf[v]
                cid = order_buf[v]
                j = v - 1
                while j >= 0 and key_buf[j] > key:
                    key_buf[j + 1] = key_buf[j]
                    order_buf[j + 1] = order_buf[j]
                    j -= 1
                key_buf[j + 1] = key
                order_buf[j + 1] = cid
        else:
            visit = np.argsort(key_buf[:m])
            key_buf[:m] = key_buf[:m][visit]
            order_buf[:m] = order_buf[:m][visit]
        bound = cert
        n = 0
        for v in range(m):
            if key_buf[v] > bound:
                break
            cid = order_buf[v]
            for u in range(cstart[cid], cstart[cid + 1]):
                g = _gap(of[0], h, mcoord[u, 0] - fine[0])
                gap = g * g
                g = _gap(of[1], h, mcoord[u, 1] - fine[1])
                gap += g * g
                g = _gap(of[2], h, mcoord[u, 2] - fine[2])
                gap += g * g
                if gap > bound:
                    continue
                fc = members[u]
                s0 = starts[fc]
                s1 = starts[fc + 1]
                if n + (s1 - s0) > d.shape[0] - LANES:
                    return -1.0
                for t in range(s0, s1, LANES):
                    n = scan8(xs, ys, zs, t, s1 - t, qx, qy, qz, bound, d, n)
            if n >= k and (bound == cert or n > _SMALL):
                kth, _ = _kth_and_sum(d, n, k, 0.0, d)
                bound = min(bound, kth)
                n = _keep_below(d, n, bound)
        if n >= k:
            kth, total = _kth_and_sum(d, n, k, 0.0, d)
            return total / k
        if whole:
            return -1.0
        reach *= 2


@njit(cache=True, parallel=True)
def _coarse_knn(xs, ys, zs, queries, starts, dims, lo, h, factor, cdims, cstart, zspan, members, mcoord, k, cap, out):
    """:func:`_coarse_query` for every sorted index in ``queries``; writes ``out[queries]``."""
    chunks = min(queries.shape[0], 256)
    for s in prange(chunks):
        d = np.empty(cap + LANES)
        order_buf = np.empty(cap, np.int64)
        key_buf = np.empty(cap)
        for u in range(s * queries.shape[0] // chunks, (s + 1) * queries.shape[0] // chunks):
            q = queries[u]
            out[q] = _coarse_query(xs, ys, zs, q, starts, dims, lo, h, factor, cdims, cstart, zspan, members, mcoord, k,
                                   d, order_buf, key_buf)


@njit(cache=True, parallel=True)
def _gather(p, order, xs, ys, zs):
    """``xs/ys/zs[i] = p[order[i]]``; the arrays are longer than ``order`` (vector padding)."""
    for i in prange(order.shape[0]):
        j = order[i]
        xs[i] = p[j, 0]
        ys[i] = p[j, 1]
        zs[i] = p[j, 2]


def _kdtree_mean(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Mean distance of each query to its ``k`` nearest points of ``data`` (pykdtree, exact)."""
    tree = KDTree(data)
    out = np.empty(queries.shape[0], dtype=np.float64)
    for start in tqdm(range(0, queries.shape[0], _QUERY_CHUNK), desc="k-NN", unit="chunk", disable=None, leave=False):
        stop = min(start + _QUERY_CHUNK, queries.shape[0])
        dist, _ = tree.query(queries[start:stop], k=k)
        out[start:stop] = dist.reshape(stop - start, k).mean(axis=1)
    return out


def estimate_cell_size(points: np.ndarray, k: int, seed: int = 0) -> float:
    """``1.5 x`` the median k-th neighbour distance, estimated as the nearest-neighbour distance
    inside a random ``1/k`` subsample (whose density puts one point in a full-cloud k-ball)."""
    rng = np.random.default_rng(seed)
    keep = rng.random(points.shape[0]) < 1.0 / k  # Bernoulli(1/k): no permutation of all n indices
    sub = (points[keep] if keep.sum() >= 2 else points[:2]).astype(np.float64)
    probe = sub[rng.choice(sub.shape[0], min(sub.shape[0], 5000), replace=False)]
    dist, _ = KDTree(sub).query(probe, k=2)
    positive = dist[:, 1][dist[:, 1] > 0]
    if positive.size == 0:
        return 0.0
    return float(_CELL_FACTOR * np.median(positive))


def grid_mean_knn_distances(points: np.ndarray, k: int, cell_size: float | None = None) -> np.ndarray:
    """The grid search of this module on ``(N, 3)`` ``points``; see the module docstring.

    Args:
        points: ``(N, 3)`` finite points (any unit). float32 input is read as is (no float64
            copy of the cloud), all arithmetic is float64.
        k: Neighbours per point, the point itself included (1 <= k <= N).
        cell_size: Grid cell edge (same unit); estimated when ``None``. Any positive value gives
            exact results, only the speed depends on it.

    Returns:
        ``(N,)`` float64 mean distances, in input order.
    """
    p = kernel_floats(points)
    n = p.shape[0]
    h = estimate_cell_size(p, k) if cell_size is None else float(cell_size)
    lo, hi = (b.astype(np.float64) for b in column_bounds(p))
    outside = None
    if h > 0.0 and not _grid_fits(hi - lo, h):
        lo, hi, outside = _bulk_box(p, lo, hi, h)
    extent = hi - lo
    if not h > 0.0 or not _grid_fits(extent, h):
        logger.info("k-NN: grid not applicable (cell size %g for extent %s); using the kd-tree", h, extent)
        p64 = p.astype(np.float64)
        return _kdtree_mean(p64, p64, k)
    dims = (np.floor(extent / h).astype(np.int64) + 1)
    keys = np.empty(n, dtype=np.int64)
    _sort_keys(p, lo, h, dims, keys)
    order, cell_of = argsort_keys(keys, return_sorted=True)
    del keys
    cell_of >>= 3 * _SUB
    breaks = np.flatnonzero(cell_of[1:] != cell_of[:-1]) + 1
    starts = np.concatenate([[0], breaks, [n]]).astype(np.int64)
    cells = cell_of[starts[:-1]]
    del cell_of, breaks
    nrows = int(dims[0] * dims[1])
    rows = (np.searchsorted(cells // dims[2], np.arange(nrows + 1)).astype(np.int64)
            if nrows < _MAX_ROWS else np.zeros(0, dtype=np.int64))
    xs, ys, zs = (np.zeros(n + LANES) for _ in range(3))  # padded: vector loads read 8 entries
    _gather(p, order, xs, ys, zs)
    segments = np.unique(np.searchsorted(starts, np.linspace(0, n, _SEGMENTS + 1).astype(np.int64))).astype(np.int64)
    segments[-1] = cells.shape[0]
    block = int(np.diff(starts).max()) * (2 * _A + 1) ** 3
    result = np.empty(n, dtype=np.float64)
    steps = np.unique(np.linspace(0, segments.shape[0] - 1, _PROGRESS_STEPS + 1).astype(np.int64))
    for i in tqdm(range(steps.shape[0] - 1), desc="k-NN", unit="step", disable=None, leave=False):
        # segments are independent, so running them in a few groups only adds a progress bar
        _grid_knn(xs, ys, zs, cells, starts, rows, segments[steps[i]:steps[i + 1] + 1], dims, lo, h, k,
                  min(block, n, _MAX_BLOCK), result)
    if outside is not None:  # far points: straight to the kd-tree (the grid would crawl to them)
        far = outside[order]
        result[far] = -1.0
        failed = np.flatnonzero((result < 0) & ~far)
    else:
        failed = np.flatnonzero(result < 0)
    if failed.size:
        factor, cdims, cstart, zspan, members, mcoord = _coarse_grid(cells, dims)
        _coarse_knn(xs, ys, zs, failed, starts, dims, lo, h, factor, cdims, cstart, zspan, members, mcoord, k,
                    min(n, _COARSE_BLOCK), result)
    left = np.flatnonzero(result < 0)
    logger.info("k-NN grid: %d points, %d cells of %g, %d to the coarse grid, %d to the kd-tree",
                n, cells.shape[0], h, failed.size, left.size)
    if left.size:
        data = np.column_stack([xs[:n], ys[:n], zs[:n]])
        result[left] = _kdtree_mean(data, data[left], k)
    del xs, ys, zs
    out = np.empty(n, dtype=np.float64)
    out[order] = result
    return out


def _grid_fits(extent: np.ndarray, h: float) -> bool:
    """Whether a grid of cell ``h`` over ``extent`` has few enough cells for the int64 keys."""
    return float(np.prod(np.floor(extent / h) + 1)) < 2.0 ** (62 - 3 * _SUB)


def _bulk_box(p: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A grid box around the bulk of the cloud when far points make the full box too large.

    The box spans the 0.1-99.9 % quantiles of each axis plus 10 % of that range. Points outside
    it are kept in the boundary cells (which stays exact: they lie beyond those cells' faces,
    so every distance bound of the search still holds) and are answered by the kd-tree.
    Returns ``(lo, hi, outside mask)``; the unchanged box and ``None`` if no box fits.
    """
    qlo = np.array([np.quantile(p[:, axis], _BULK_QUANTILE) for axis in range(3)], dtype=np.float64)
    qhi = np.array([np.quantile(p[:, axis], 1.0 - _BULK_QUANTILE) for axis in range(3)], dtype=np.float64)
    margin = 0.1 * (qhi - qlo) + h
    blo, bhi = np.maximum(lo, qlo - margin), np.minimum(hi, qhi + margin)
    if not _grid_fits(bhi - blo, h):
        return lo, hi, None
    outside = np.zeros(p.shape[0], dtype=bool)
    for axis in range(3):
        outside |= (p[:, axis] < blo[axis]) | (p[:, axis] > bhi[axis])
    logger.info("k-NN: %d far points outside the grid box %s - %s", int(outside.sum()), blo, bhi)
    return blo, bhi, outside


def _coarse_grid(cells: np.ndarray,
                 dims: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group the occupied fine cells into coarse cells of ``factor^3`` fine cells.

    Returns ``(factor, coarse dims, start of each coarse cell in members (+ end), first and last
    occupied z of each coarse (x, y) row (1, 0 if empty), members, (len(members), 3) fine-cell
    coordinates of members)``; ``members`` lists fine-cell indices
    by coarse cell (x-major). ``factor`` is 4, doubled until the dense coarse table has at most
    ``_MAX_COARSE`` cells.
    """
    factor = _COARSE_FACTOR
    while float(np.prod((dims + factor - 1) // factor)) > _MAX_COARSE:
        factor *= 2
    cdims = ((dims + factor - 1) // factor).astype(np.int64)
    rest = cells // dims[2]
    coord = np.stack([rest // dims[1], rest % dims[1], cells % dims[2]], axis=1)
    coarse = ((coord[:, 0] // factor) * cdims[1] + coord[:, 1] // factor) * cdims[2] + coord[:, 2] // factor
    members = argsort_keys(coarse)
    counts = np.bincount(coarse, minlength=int(np.prod(cdims)))
    cstart = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=cstart[1:])
    occupied = counts.reshape(-1, cdims[2]) > 0
    zspan = np.stack([occupied.argmax(axis=1), cdims[2] - 1 - occupied[:, ::-1].argmax(axis=1)], axis=1)
    zspan[~occupied.any(axis=1)] = (1, 0)  # empty row: no z
    return factor, cdims, cstart, zspan.astype(np.int64), members, np.ascontiguousarray(coord[members])


def mean_knn_distances(points: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance (float64) of every point to its ``k`` nearest points, itself included.

    Args:
        points: ``(N, 3)`` finite float32 or float64 points (any unit; other dtypes are
            converted); distances are computed in float64.
        k: Neighbours per point, 1 <= k <= N.

    Returns:
        ``(N,)`` float64 mean distances (unit of ``points``), in input order.
    """
    if points.shape[0] < GRID_MIN_POINTS:
        p = np.ascontiguousarray(points, dtype=np.float64)
        return _kdtree_mean(p, p, k)
    return grid_mean_knn_distances(points, k)
