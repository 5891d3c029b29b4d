"""gen3r.geometry.pointcloud: Open3D-semantics filters checked against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3r.errors import Gen3RError
from gen3r.geometry import filter_point_cloud, remove_far_points, statistical_outlier_removal, voxel_downsample


def _sor_reference(points: np.ndarray, k: int, std_ratio: float) -> np.ndarray:
    """Open3D RemoveStatisticalOutliers with all pairwise distances (the point itself included)."""
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    avg = np.sort(dist, axis=1)[:, : min(k, len(points))].mean(axis=1)
    valid = len(points)
    mean = sum(a for a in avg if a > 0) / valid
    std = np.sqrt(sum((a - mean) ** 2 for a in avg if a > 0) / (valid - 1))
    return np.array([0 < a < mean + std_ratio * std for a in avg])


def _voxel_reference(points: np.ndarray, colors: np.ndarray, voxel: float, origin: np.ndarray) -> dict:
    groups: dict = {}
    for p, c in zip(points, colors):
        key = tuple(int(np.floor(v)) for v in (p.astype(np.float64) - origin) / voxel)
        groups.setdefault(key, []).append((p, c))
    return {
        key: (np.mean([p for p, _ in v], axis=0), np.mean([c for _, c in v], axis=0)) for key, v in groups.items()
    }


@pytest.mark.parametrize("k, ratio, seed", [(25, 1.25, 0), (5, 0.5, 1), (1, 1.0, 2), (400, 2.0, 3)])
def test_sor_matches_brute_force(k: int, ratio: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.standard_normal((280, 3)), rng.uniform(-8, 8, (20, 3))])
    points[:6] = points[6]  # a few exact duplicates
    np.testing.assert_array_equal(statistical_outlier_removal(points, k, ratio), _sor_reference(points, k, ratio))


def test_sor_removes_planted_outliers() -> None:
    rng = np.random.default_rng(0)
    plane = np.c_[rng.random((3000, 2)), 0.001 * rng.standard_normal(3000)]
    outliers = rng.uniform(-1, 2, (15, 3)) + np.array([0.0, 0.0, 1.0])
    keep = statistical_outlier_removal(np.concatenate([plane, outliers]).astype(np.float32))
    assert not keep[3000:].any()
    assert keep[:3000].mean() > 0.9


def test_sor_duplicates_are_removed_like_open3d() -> None:
    points = np.concatenate([np.zeros((5, 3)), np.eye(3)])
    # k=3: each duplicate's 3 nearest are duplicates at distance 0 -> mean 0 -> removed
    keep = statistical_outlier_removal(points, nb_neighbors=3, std_ratio=10.0)
    np.testing.assert_array_equal(keep, [False] * 5 + [True] * 3)
    assert not statistical_outlier_removal(np.zeros((1, 3))).any()


def test_voxel_downsample_hand_made() -> None:
    points = np.array([[0.1, 0.1, 0.1], [0.3, 0.5, 0.2], [1.5, 0.2, 0.2], [1.7, 0.4, 0.0]])
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    # default origin = min - voxel/2 = (-0.4, -0.4, -0.5): x cells 0, 0, 1, 2
    p, c = voxel_downsample(points, colors, voxel_size=1.0)
    np.testing.assert_allclose(p, [[0.2, 0.3, 0.15], [1.5, 0.2, 0.2], [1.7, 0.4, 0.0]])
    np.testing.assert_allclose(c, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    # origin at the minimum (the official voxel_down_sample_and_trace call): x cells 0, 0, 1, 1
    p, c = voxel_downsample(points, colors, voxel_size=1.0, min_bound=points.min(axis=0))
    np.testing.assert_allclose(p, [[0.2, 0.3, 0.15], [1.6, 0.3, 0.1]])
    np.testing.assert_allclose(c, [[0.5, 0.5, 0.0], [0.5, 0.5, 1.0]])
    p, none = voxel_downsample(torch.from_numpy(points), voxel_size=10.0)
    assert none is None
    np.testing.assert_allclose(p, [points.mean(axis=0)])


def test_voxel_downsample_matches_reference() -> None:
    rng = np.random.default_rng(4)
    points = rng.uniform(-1, 1, (3000, 3)).astype(np.float32)
    colors = rng.random((3000, 3))
    for origin in (None, points.min(axis=0)):
        p, c = voxel_downsample(points, colors, voxel_size=0.25, min_bound=origin)
        o = points.min(axis=0).astype(np.float64) - 0.125 if origin is None else origin.astype(np.float64)
        ref = _voxel_reference(points, colors, 0.25, o)
        assert p.shape == (len(ref), 3) and c.shape == (len(ref), 3)
        ref_p = np.array(sorted(v[0].tolist() for v in ref.values()))
        ref_c = np.array([v[1] for v in sorted(ref.values(), key=lambda v: v[0].tolist())])
        order = np.lexsort(p.T[::-1])
        np.testing.assert_allclose(p[order], ref_p, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(c[order], ref_c, rtol=1e-6, atol=1e-7)


def test_remove_far_points_percentile() -> None:
    points = np.c_[np.zeros((100, 2)), np.random.default_rng(0).permutation(100)].astype(np.float32)
    colors = points / 100.0
    p, c = remove_far_points(points, colors)  # P80 of 0..99 = 79.2
    np.testing.assert_array_equal(np.sort(p[:, 2]), np.arange(80))
    np.testing.assert_array_equal(c, p / 100.0)
    p, c = remove_far_points(points, percentile=0.0)
    assert c is None and p.shape == (1, 3)


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    plane = np.c_[rng.random((4000, 2)), 1.0 + 0.002 * rng.standard_normal(4000)]
    wall = np.c_[rng.random(2000), np.full(2000, 1.0), 1.0 + 2.0 * rng.random(2000)]
    outliers = np.c_[rng.uniform(0, 1, (20, 2)), rng.uniform(-3.0, -1.0, 20)]
    points = np.concatenate([plane, wall, outliers])
    return points, rng.uniform(-0.2, 1.2, points.shape)


@pytest.mark.parametrize("far", [False, True])
def test_filter_point_cloud_end_to_end(far: bool) -> None:
    rng = np.random.default_rng(0)
    points, colors = _scene(rng)
    bad = points.copy()
    bad[[5, 50]] = [np.nan, 0.0, 0.0], [np.inf, 1.0, 1.0]
    out_p, out_c = filter_point_cloud(bad, colors, voxel_size=0.05, remove_far_points=far)
    assert out_p.dtype == np.float64 and out_c.shape == out_p.shape
    assert np.isfinite(out_p).all() and out_c.min() >= 0.0 and out_c.max() <= 1.0
    assert out_p[:, 2].min() > 0.5  # the planted outliers (z < -1) are gone

    # the same chain by hand: drop non-finite, float32, clip, far cut, SOR, voxel from the cloud min
    keep_rows = np.isfinite(bad).all(axis=1)
    p, c = bad[keep_rows].astype(np.float32), np.clip(colors[keep_rows], 0, 1).astype(np.float32)
    if far:
        p, c = remove_far_points(p, c)
    m = statistical_outlier_removal(p)
    ref_p, ref_c = voxel_downsample(p[m], c[m], voxel_size=0.05, min_bound=p[m].min(axis=0))
    np.testing.assert_array_equal(out_p, ref_p)
    np.testing.assert_array_equal(out_c, ref_c)
    grid = np.floor((out_p - p[m].min(axis=0)) / 0.05)
    assert len(np.unique(grid, axis=0)) <= len(out_p)


def test_filter_point_cloud_bad_inputs() -> None:
    points = np.random.default_rng(0).random((50, 3))
    with pytest.raises(Gen3RError):
        filter_point_cloud(points, np.zeros((49, 3)))
    with pytest.raises(Gen3RError):
        filter_point_cloud(points[:, :2], np.zeros((50, 2)))
    with pytest.raises(Gen3RError):
        filter_point_cloud(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(Gen3RError):
        filter_point_cloud(np.full((5, 3), np.nan), np.zeros((5, 3)))
    colors = np.zeros((50, 3))
    colors[3, 1] = np.nan
    with pytest.raises(Gen3RError, match="colors"):
        filter_point_cloud(points, colors)
    with pytest.raises(Gen3RError):
        filter_point_cloud(points, np.zeros((50, 3)), voxel_size=0.0)
    with pytest.raises(Gen3RError):
        statistical_outlier_removal(points, nb_neighbors=0)
    with pytest.raises(Gen3RError):
        remove_far_points(points, percentile=120.0)


def test_row_helpers_match_numpy() -> None:
    from gen3r.geometry._arrays import column_bounds, finite_rows, take_rows

    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64, np.uint8):
        arr = (rng.random((1001, 3)) * 200).astype(dtype)
        for mask in (rng.random(1001) < 0.5, np.zeros(1001, bool), np.ones(1001, bool)):
            np.testing.assert_array_equal(take_rows(arr, mask), arr[mask])
            assert take_rows(arr, mask).dtype == dtype
        strided = arr[::2]  # non-contiguous input
        mask = rng.random(strided.shape[0]) < 0.3
        np.testing.assert_array_equal(take_rows(strided, mask), strided[mask])
        lo, hi = column_bounds(arr)
        np.testing.assert_array_equal(lo, arr.min(axis=0))
        np.testing.assert_array_equal(hi, arr.max(axis=0))
    pts = rng.random((50, 3))
    assert finite_rows(pts) is None
    pts[[3, 7], [0, 2]] = [np.nan, np.inf]
    np.testing.assert_array_equal(finite_rows(pts), np.isfinite(pts).all(axis=1))
