"""The grid k-NN statistic (gen3r.geometry.knn) against scipy's cKDTree as an independent reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gen3r.geometry import knn, statistical_outlier_removal


def _reference(points: np.ndarray, k: int) -> np.ndarray:
    dist, _ = cKDTree(points).query(points, k=k)
    return dist.reshape(points.shape[0], k).mean(axis=1)


def _slab(rng: np.random.Generator, n: int, offset: float = 0.0) -> np.ndarray:
    """A noisy bent surface with flying points and duplicates: the shape of unprojected depth."""
    uv = rng.random((n, 2)) * 2.0
    z = 0.2 * np.sin(3 * uv[:, 0]) + 0.005 * rng.standard_normal(n)
    pts = np.column_stack([uv, z]) + offset
    flying = rng.random(n) < 0.01
    pts[flying] *= rng.uniform(0.3, 1.5, (int(flying.sum()), 1))
    pts[: n // 50] = pts[n // 50 : 2 * (n // 50)]  # exact duplicates
    pts[-40:] = pts[-41]  # a stack of 40 identical points (more than k)
    return pts


@pytest.mark.parametrize("k", [1, 7, 25])
@pytest.mark.parametrize("cell", [None, 0.004, 0.02, 0.1, 5.0])
def test_grid_matches_kdtree_on_a_noisy_surface(k: int, cell: float | None) -> None:
    pts = _slab(np.random.default_rng(k), 20_000)
    got = knn.grid_mean_knn_distances(pts, k, cell_size=cell)
    np.testing.assert_allclose(got, _reference(pts, k), rtol=1e-13, atol=1e-15)


def test_grid_matches_kdtree_uniform_volume_far_from_origin() -> None:
    rng = np.random.default_rng(3)
    pts = rng.random((15_000, 3)) * np.array([4.0, 0.5, 1.0]) + 1e3  # anisotropic, large offset
    got = knn.grid_mean_knn_distances(pts, 25)
    np.testing.assert_allclose(got, _reference(pts, 25), rtol=1e-12)


def test_grid_small_cloud_and_k_equal_n() -> None:
    pts = np.random.default_rng(4).random((30, 3))
    for k in (1, 29, 30):
        np.testing.assert_allclose(knn.grid_mean_knn_distances(pts, k, cell_size=0.05), _reference(pts, k), rtol=1e-13)


def test_grid_paths_for_crowded_cells_and_huge_row_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    pts = _slab(np.random.default_rng(5), 12_000)
    want = _reference(pts, 25)
    monkeypatch.setattr(knn, "_MAX_BLOCK", 300)  # most blocks overflow: their cells go to the kd-tree
    np.testing.assert_allclose(knn.grid_mean_knn_distances(pts, 25, cell_size=0.05), want, rtol=1e-13)
    monkeypatch.setattr(knn, "_MAX_BLOCK", 1 << 20)
    monkeypatch.setattr(knn, "_MAX_ROWS", 0)  # rows found by binary search instead of the table
    np.testing.assert_allclose(knn.grid_mean_knn_distances(pts, 25, cell_size=0.01), want, rtol=1e-13)


def test_grid_degenerate_inputs_fall_back_to_the_kdtree() -> None:
    same = np.zeros((100, 3))
    np.testing.assert_array_equal(knn.grid_mean_knn_distances(same, 5), np.zeros(100))
    pts = np.random.default_rng(6).random((500, 3))
    pts[0] = 1e12  # extent / cell would overflow the cell keys
    np.testing.assert_allclose(knn.grid_mean_knn_distances(pts, 5, cell_size=1e-3), _reference(pts, 5), rtol=1e-13)


def test_estimated_cell_size_tracks_density() -> None:
    rng = np.random.default_rng(7)
    plane = np.column_stack([rng.random((200_000, 2)), np.zeros(200_000)])
    # 25 points of a unit-density-200k plane lie within r with pi r^2 = 25 / 200k
    r25 = np.sqrt(25 / 200_000 / np.pi)
    assert 0.8 * 1.5 * r25 < knn.estimate_cell_size(plane, 25) < 1.25 * 1.5 * r25


def test_statistical_outlier_removal_uses_the_grid_and_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    pts = _slab(np.random.default_rng(8), 30_000)
    monkeypatch.setattr(knn, "GRID_MIN_POINTS", 1000)
    calls = []
    real = knn.grid_mean_knn_distances
    monkeypatch.setattr(knn, "grid_mean_knn_distances", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    keep = statistical_outlier_removal(pts, nb_neighbors=25, std_ratio=1.25)
    avg = _reference(pts, 25)
    pos = avg > 0
    mean = avg[pos].sum() / avg.size
    std = np.sqrt(((avg[pos] - mean) ** 2).sum() / (avg.size - 1))
    np.testing.assert_array_equal(keep, pos & (avg < mean + 1.25 * std))
    assert calls and 0 < keep.sum() < pts.shape[0]


def _far_outlier_cloud(rng: np.random.Generator) -> np.ndarray:
    """60k points of :func:`_slab` plus 300 isolated points at 1x to 40x the slab's size from its
    centre and three tight clumps of 6 (fewer than k) far away. Float64, (60_318, 3)."""
    direction = rng.standard_normal((300, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    scattered = np.array([1.0, 1.0, 0.0]) + direction * np.geomspace(2.0, 80.0, 300)[:, None]
    centres = ([30.0, -5.0, 2.0], [-60.0, 40.0, 10.0], [1.0, 1.0, 70.0])
    clumps = [centre + 0.01 * rng.standard_normal((6, 3)) for centre in centres]
    return np.vstack([_slab(rng, 60_000), scattered, *clumps])


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple]:
    """Replace ``knn.<name>`` by a wrapper that records the positional arguments of every call."""
    calls: list[tuple] = []
    real = getattr(knn, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(knn, name, spy)
    return calls


@pytest.mark.parametrize("k", [8, 25])
def test_far_outliers_are_answered_exactly_by_the_coarse_pass(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pts = _far_outlier_cloud(np.random.default_rng(20))
    kdtree = _spy(monkeypatch, "_kdtree_mean")
    coarse = _spy(monkeypatch, "_coarse_knn")
    got = knn.grid_mean_knn_distances(pts, k)
    np.testing.assert_allclose(got, _reference(pts, k), rtol=1e-13, atol=1e-15)
    assert not kdtree  # neither the whole cloud (grid not applicable) nor single queries
    assert len(coarse) == 1 and coarse[0][3].size >= 318  # at least as many queries as isolated points


def test_coarse_buffer_overflow_goes_to_the_kdtree(monkeypatch: pytest.MonkeyPatch) -> None:
    pts = _far_outlier_cloud(np.random.default_rng(21))
    want = _reference(pts, 25)
    kdtree = _spy(monkeypatch, "_kdtree_mean")
    coarse = _spy(monkeypatch, "_coarse_knn")
    monkeypatch.setattr(knn, "_COARSE_BLOCK", 16)  # candidate buffer of 16 distances: most overflow
    got = knn.grid_mean_knn_distances(pts, 25)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert len(coarse) == 1 and len(kdtree) == 1
    assert 0 < kdtree[0][1].shape[0] <= coarse[0][3].size < pts.shape[0]  # only the overflowing queries


@pytest.mark.parametrize("coarse_block", [None, 16])
@pytest.mark.parametrize("cell", [None, 0.05])
def test_float32_input_equals_the_same_values_in_float64(cell: float | None, coarse_block: int | None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pts32 = _far_outlier_cloud(np.random.default_rng(22)).astype(np.float32)
    pts64 = pts32.astype(np.float64)
    if coarse_block is not None:
        monkeypatch.setattr(knn, "_COARSE_BLOCK", coarse_block)  # the kd-tree fallback too
    kdtree = _spy(monkeypatch, "_kdtree_mean")
    got32 = knn.grid_mean_knn_distances(pts32, 25, cell_size=cell)
    assert len(kdtree) == (coarse_block is not None)  # the grid ran (no whole-cloud kd-tree)
    assert all(call[1].shape[0] < pts32.shape[0] for call in kdtree)
    got64 = knn.grid_mean_knn_distances(pts64, 25, cell_size=cell)
    assert got32.dtype == np.float64
    np.testing.assert_array_equal(got32, got64)
    np.testing.assert_allclose(got32, _reference(pts64, 25), rtol=1e-13, atol=1e-15)


def test_far_points_beyond_the_key_range_use_a_bulk_grid_box(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(21)
    bulk = _slab(rng, 60_000)
    far = np.vstack([
        [1e7, 2.0, 0.5], [-3e6, -1e6, 4e5], [0.5, 0.5, -2e6],  # single points far away on every side
        [2e6, 2e6, 2e6] + 1e-3 * rng.standard_normal((30, 3)),  # a far clump of more than k points
    ])
    pts = np.vstack([bulk[:30_000], far, bulk[30_000:]])
    h = knn.estimate_cell_size(pts, 25)
    assert not knn._grid_fits(pts.max(axis=0) - pts.min(axis=0), h)  # the full box cannot be keyed
    grid_calls = _spy(monkeypatch, "_grid_knn")
    kd_calls = _spy(monkeypatch, "_kdtree_mean")
    got = knn.grid_mean_knn_distances(pts, 25)
    np.testing.assert_allclose(got, _reference(pts, 25), rtol=1e-13)
    assert grid_calls  # the grid ran over the bulk box
    assert len(kd_calls) == 1
    queried = kd_calls[0][1]
    # the far points, plus at most the 0.1 % tails of each axis that fall outside the bulk box
    assert far.shape[0] <= queried.shape[0] <= far.shape[0] + 0.006 * pts.shape[0]
    assert {tuple(row) for row in far} <= {tuple(row) for row in queried}
