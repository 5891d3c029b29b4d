"""The eight-lane numba intrinsics of gen3r.geometry._simd against numpy, and their portable lowering.

The intrinsics can only be called from compiled code, so each is wrapped in a small ``@njit``
function. The last test compiles the k-NN search in a subprocess for a Haswell (AVX2, no AVX-512)
target and checks both the machine code (no ``zmm`` registers, no ``vcompresspd``) and the results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from numba.core.registry import cpu_target

from gen3r.geometry._simd import LANES, scan8, select_small, split8
from tests._tiny import ROOT as REPO

SENTINEL = -7.25  # never a squared distance: marks entries a kernel must not write


@njit
def _scan8(xs, ys, zs, t, m, q, tau, d, n):
    return scan8(xs, ys, zs, t, m, q[0], q[1], q[2], tau, d, n)


@njit
def _select_small(d, n, k):
    return select_small(d, n, k)


@njit
def _split8(src, t, m, thr, low, n_low, high, n_high):
    return split8(src, t, m, thr, low, n_low, high, n_high)


@njit
def _split_all(src, n, thr, low, high):
    """Split ``src[:n]`` eight lanes at a time, as the k-NN selection does (``high`` may be ``src``)."""
    n_low = 0
    n_high = 0
    for t in range(0, n, LANES):
        n_low, n_high = split8(src, t, n - t, thr, low, n_low, high, n_high)
    return n_low, n_high


def _squared(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """numpy's float64 ``(dx*dx + dy*dy) + dz*dz`` (no fused multiply-add)."""
    dx, dy, dz = xs - q[0], ys - q[1], zs - q[2]
    return (dx * dx + dy * dy) + dz * dz


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


# ---------------------------------------------------------------------------------------------- scan8


def _scan_case(rng: np.random.Generator, m: int, t: int) -> tuple[np.ndarray, ...]:
    """Points around ``1e3`` (rounding in every product) with ``t`` points before the scanned
    lanes, and the lanes at and beyond ``m`` placed exactly on the query (they would pass any
    ``tau >= 0`` if the kernel did not mask them)."""
    size = t + max(m, LANES) + LANES
    xs, ys, zs = (1e3 + rng.standard_normal(size) * rng.uniform(0.01, 10.0) for _ in range(3))
    q = 1e3 + rng.standard_normal(3)
    for arr, value in zip((xs, ys, zs), q):
        arr[t + min(m, LANES): t + LANES] = value
    return xs, ys, zs, q


@pytest.mark.parametrize("m", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 200])
def test_scan8_appends_passing_lanes_in_order_bit_identical_to_numpy(m: int) -> None:
    rng = np.random.default_rng(100 + m)
    for trial in range(40):
        t = int(rng.integers(0, 20))
        xs, ys, zs, q = _scan_case(rng, m, t)
        lanes = _squared(xs[t:t + LANES], ys[t:t + LANES], zs[t:t + LANES], q)[: min(m, LANES)]
        if lanes.size and trial % 4:
            tau = float(lanes[rng.integers(0, lanes.size)])  # exactly one of the distances: "<=" keeps it
        else:
            tau = float(rng.choice([0.0, 1.0, np.inf]))
        n0 = int(rng.integers(0, 5))
        d = np.full(n0 + LANES + 8, SENTINEL)
        d[:n0] = rng.random(n0)
        before = d.copy()
        n = _scan8(xs, ys, zs, t, m, q, tau, d, n0)
        want = lanes[lanes <= tau]
        assert n == n0 + want.size
        np.testing.assert_array_equal(_bits(d[n0:n]), _bits(want))
        np.testing.assert_array_equal(d[:n0], before[:n0])  # earlier entries kept
        np.testing.assert_array_equal(d[n:], before[n:])  # nothing written past the appended values


def test_scan8_tau_boundary_is_inclusive_and_exact() -> None:
    rng = np.random.default_rng(7)
    xs, ys, zs, q = _scan_case(rng, LANES, 3)
    lanes = _squared(xs[3:3 + LANES], ys[3:3 + LANES], zs[3:3 + LANES], q)
    d = np.empty(2 * LANES)
    for j in range(LANES):
        at = _scan8(xs, ys, zs, 3, LANES, q, float(lanes[j]), d, 0)
        assert at == int((lanes <= lanes[j]).sum()) and lanes[j] in d[:at]
        below = _scan8(xs, ys, zs, 3, LANES, q, float(np.nextafter(lanes[j], -np.inf)), d, 0)
        assert below == at - int((lanes == lanes[j]).sum()) and lanes[j] not in d[:below]


def test_scan8_rejects_negative_tau_and_keeps_duplicates() -> None:
    xs = np.zeros(2 * LANES)
    ys = np.zeros(2 * LANES)
    zs = np.zeros(2 * LANES)
    xs[:LANES] = [0.0, 0.0, 1.0, 1.0, 2.0, 0.0, 3.0, 0.0]  # duplicates of the query and of each other
    q = np.zeros(3)
    d = np.full(2 * LANES, SENTINEL)
    assert _scan8(xs, ys, zs, 0, LANES, q, -1e-300, d, 0) == 0
    assert np.all(d == SENTINEL)
    n = _scan8(xs, ys, zs, 0, LANES, q, 1.0, d, 0)
    np.testing.assert_array_equal(d[:n], [0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    assert np.all(d[n:] == SENTINEL)


# ---------------------------------------------------------------------------------------- select_small


def _padded(values: np.ndarray) -> np.ndarray:
    """``values`` followed by +inf up to a multiple of 8, then trailing garbage the kernel must not read."""
    n = values.size
    full = -(-n // LANES) * LANES
    d = np.full(full + LANES, -1.0)
    d[:n] = values
    d[n:full] = np.inf
    return d


def _check_select(values: np.ndarray, k: int) -> None:
    d = _padded(values)
    before = d.copy()
    kth, total = _select_small(d, values.size, k)
    ref = np.sort(values)
    assert kth == ref[k - 1], (values.size, k)
    np.testing.assert_allclose(total, np.sqrt(ref[:k]).sum(), rtol=1e-14, atol=0.0)
    np.testing.assert_array_equal(d, before)  # read only


def _ks(n: int, rng: np.random.Generator) -> list[int]:
    ks = {1, 2, n // 2, n - 1, n} | {int(v) for v in rng.integers(1, n + 1, 3)}
    return sorted(k for k in ks if 1 <= k <= n)


@pytest.mark.parametrize("kind", ["continuous", "ties", "zeros"])
def test_select_small_matches_sorted_reference(kind: str) -> None:
    rng = np.random.default_rng({"continuous": 1, "ties": 2, "zeros": 3}[kind])
    for n in range(1, 97):
        if kind == "continuous":
            values = rng.random(n) ** 2 * 10.0 ** rng.uniform(-6, 6)
        elif kind == "ties":  # few distinct values: ties at (and around) every k-th value
            values = rng.integers(0, max(2, n // 6), n).astype(np.float64) * 0.37
        else:  # mostly exact duplicates of the query (distance 0)
            values = np.where(rng.random(n) < 0.7, 0.0, rng.random(n))
        for k in _ks(n, rng):
            _check_select(values, k)


def test_select_small_ties_exactly_at_the_kth_value() -> None:
    rng = np.random.default_rng(4)
    for n in (5, 8, 9, 31, 64, 65, 96):
        for k in range(1, n + 1):
            values = np.sort(rng.random(n) + 1.0)
            first = k - 1 - int(rng.integers(0, k))  # a tie group around position k - 1 (0-based)
            last = k - 1 + int(rng.integers(0, n - k + 1))
            values[first:last + 1] = values[k - 1]
            _check_select(rng.permutation(values), k)
    _check_select(np.zeros(17), 9)
    _check_select(np.full(40, 2.25), 40)
    _check_select(np.array([0.25]), 1)


# ---------------------------------------------------------------------------------------------- split8


@pytest.mark.parametrize("m", [0, 1, 3, 7, 8, 9, 50])
def test_split8_routes_lanes_by_threshold_in_order(m: int) -> None:
    rng = np.random.default_rng(200 + m)
    for trial in range(30):
        t = int(rng.integers(0, 10))
        src = rng.integers(0, 6, t + max(m, LANES) + LANES).astype(np.float64) * 0.5  # with ties
        lanes = src[t:t + min(m, LANES)]
        thr = float(lanes[rng.integers(0, lanes.size)]) if lanes.size and trial % 3 else float(rng.uniform(-1, 3))
        nl0, nh0 = (int(v) for v in rng.integers(0, 4, 2))
        low = np.full(nl0 + 2 * LANES, SENTINEL)
        high = np.full(nh0 + 2 * LANES, SENTINEL)
        low[:nl0] = -1.0
        high[:nh0] = -2.0
        src_before = src.copy()
        n_low, n_high = _split8(src, t, m, thr, low, nl0, high, nh0)
        want_low, want_high = lanes[lanes <= thr], lanes[lanes > thr]
        assert (n_low, n_high) == (nl0 + want_low.size, nh0 + want_high.size)
        np.testing.assert_array_equal(low[nl0:n_low], want_low)
        np.testing.assert_array_equal(high[nh0:n_high], want_high)
        assert np.all(low[:nl0] == -1.0) and np.all(high[:nh0] == -2.0)
        assert np.all(low[n_low:] == SENTINEL) and np.all(high[n_high:] == SENTINEL)
        np.testing.assert_array_equal(src, src_before)


@pytest.mark.parametrize("in_place", [False, True])
def test_split8_whole_buffer_including_in_place_compaction(in_place: bool) -> None:
    rng = np.random.default_rng(9)
    for n in list(range(1, 40)) + [96, 97, 500]:
        values = rng.random(n)
        values[rng.random(n) < 0.3] = 0.5  # ties at the threshold go low
        src = np.full(n + LANES, SENTINEL)
        src[:n] = values
        low = np.full(n + LANES, SENTINEL)
        high = src if in_place else np.full(n + LANES, SENTINEL)
        n_low, n_high = _split_all(src, n, 0.5, low, high)
        assert (n_low, n_high) == (int((values <= 0.5).sum()), int((values > 0.5).sum()))
        np.testing.assert_array_equal(low[:n_low], values[values <= 0.5])
        np.testing.assert_array_equal(high[:n_high], values[values > 0.5])
        assert np.all(low[n_low:] == SENTINEL)
        if in_place:  # the tail past the kept values still holds what was read there
            np.testing.assert_array_equal(src[n:], SENTINEL)
        else:
            np.testing.assert_array_equal(src[:n], values)


# --------------------------------------------------------------------------------------- portability


def _asm(fn) -> str:
    return "".join(fn.inspect_asm().values())


def test_avx512_host_lowers_the_compaction_to_vcompresspd() -> None:
    """The control for the portability test: on an AVX-512 target the zmm check does see something."""
    features = cpu_target.target_context.codegen()._tm_features
    if "+avx512f" not in features.split(","):
        pytest.skip("the compile target has no AVX-512")
    xs = np.zeros(2 * LANES)
    _scan8(xs, xs, xs, 0, LANES, np.zeros(3), 1.0, np.empty(2 * LANES), 0)  # compile (if not yet)
    _split8(xs, 0, LANES, 0.5, np.empty(2 * LANES), 0, np.empty(2 * LANES), 0)
    assert "vcompresspd" in _asm(_scan8) and "zmm" in _asm(_scan8)
    assert "vcompresspd" in _asm(_split8)


# Target a Haswell (AVX2 without AVX-512). NUMBA_CPU_NAME alone is not enough: numba then still
# passes the HOST's feature list (+avx512f, ...) to LLVM, so the features are given explicitly.
HASWELL_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,+mmx,"
                    "+movbe,+pclmul,+popcnt,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")

_PORTABLE_SCRIPT = r'''
import numpy as np
from numba import njit
from scipy.spatial import cKDTree

from gen3r.geometry import knn
from gen3r.geometry._simd import scan8, select_small, split8
from tests._tiny import ROOT


@njit
def scan(xs, ys, zs, t, m, qx, qy, qz, tau, d, n):
    return scan8(xs, ys, zs, t, m, qx, qy, qz, tau, d, n)


@njit
def select(d, n, k):
    return select_small(d, n, k)


@njit
def split(src, t, m, thr, low, n_low, high, n_high):
    return split8(src, t, m, thr, low, n_low, high, n_high)


rng = np.random.default_rng(0)
xs, ys, zs = rng.random((3, 16))
d = np.full(16, -1.0)
n = scan(xs, ys, zs, 2, 7, 0.5, 0.5, 0.5, 0.3, d, 1)
dist = ((xs[2:9] - 0.5) ** 2 + (ys[2:9] - 0.5) ** 2) + (zs[2:9] - 0.5) ** 2
assert n == 1 + (dist <= 0.3).sum() and np.array_equal(d[1:n], dist[dist <= 0.3]), (n, d, dist)
values = np.concatenate([rng.integers(0, 4, 21) * 0.5, np.full(3, np.inf)])
kth, total = select(values, 21, 9)
ref = np.sort(values[:21])
assert kth == ref[8] and abs(total - np.sqrt(ref[:9]).sum()) <= 1e-14 * total, (kth, total)
lanes = values[:8].copy()
low = np.full(16, -1.0)
n_low, n_high = split(values, 0, 8, 0.5, low, 0, values, 0)  # in place: high is the source
assert np.array_equal(low[:n_low], lanes[lanes <= 0.5]), (low, lanes)
assert np.array_equal(values[:n_high], lanes[lanes > 0.5]), (values, lanes)

# a noisy bent surface with far outliers: the fine grid, the coarse pass and the selection run
m = 60_000
uv = rng.random((m, 2))
pts = np.column_stack([uv, 0.15 * np.sin(4 * uv[:, 0]) + 0.003 * rng.standard_normal(m)])
direction = rng.standard_normal((60, 3))
direction /= np.linalg.norm(direction, axis=1, keepdims=True)
pts[:60] = 0.5 + direction * np.geomspace(0.3, 30.0, 60)[:, None]
calls = []
kdtree = knn._kdtree_mean
knn._kdtree_mean = lambda *args: calls.append(args[1].shape[0]) or kdtree(*args)
got = knn.grid_mean_knn_distances(pts, 25)
assert not calls, calls
want = cKDTree(pts).query(pts, k=25)[0].mean(axis=1)
np.testing.assert_allclose(got, want, rtol=1e-13)

# the machine code (the cache dir is fresh, so all of it was compiled in this process)
for fn in (scan, select, split, knn._scan, knn._kth_and_sum, knn._cell_queries, knn._coarse_query):
    asm = "".join(fn.inspect_asm().values())
    assert asm, f"no machine code for {fn} (a warm cache?)"
    assert "zmm" not in asm and "vcompresspd" not in asm, f"AVX-512 code in {fn}"
print("ok")
'''


def test_intrinsics_compile_and_stay_exact_without_avx512(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=HASWELL_FEATURES, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _PORTABLE_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")
