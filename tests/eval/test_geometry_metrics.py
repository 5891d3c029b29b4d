"""Point-cloud accuracy / completeness / Chamfer on analytic clouds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from gen3r.errors import Gen3RError
from gen3r.eval import point_cloud_metrics


def _point_map(frames: int = 3, h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    """A wavy surface seen as (F, H, W, 3) point maps, in metres."""
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1.5, 1.5, w), indexing="ij")
    maps = []
    for f in range(frames):
        z = 3.0 + 0.3 * np.sin(2 * xs + f) * np.cos(3 * ys) + 0.01 * rng.normal(size=xs.shape)
        maps.append(np.stack([xs + 0.2 * f, ys, z], axis=-1))
    return np.stack(maps)


def _plane(n: int, z: float, spacing: float = 0.1) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(n) * spacing, np.arange(n) * spacing, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel(), np.full(n * n, z)], axis=-1)


def test_similarity_transformed_copy_scores_zero_after_alignment():
    gt = _point_map()
    rot = Rotation.from_rotvec([0.4, -0.7, 1.1]).as_matrix()
    pred = 0.37 * gt @ rot.T + np.array([1.0, -2.0, 0.5])  # another frame and metric scale
    out = point_cloud_metrics(pred, gt)
    assert out["accuracy"] < 1e-9 and out["completeness"] < 1e-9 and out["chamfer"] < 1e-9
    assert out["scale"] == pytest.approx(1 / 0.37, rel=1e-9)
    np.testing.assert_allclose(out["rotation"], rot.T, atol=1e-9)
    assert out["num_pred"] == out["num_gt"] == gt.size // 3
    # without alignment the same clouds are far apart
    assert point_cloud_metrics(pred, gt, align=False)["chamfer"] > 0.5


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), log_scale=st.floats(-2.0, 2.0))
def test_alignment_removes_any_similarity_transform(seed, log_scale):
    gt = _point_map(frames=2, h=8, w=10, seed=seed)
    rot = Rotation.random(random_state=seed).as_matrix()
    scale = float(10.0**log_scale)
    pred = scale * gt @ rot.T + np.random.default_rng(seed).normal(scale=5.0, size=3)
    out = point_cloud_metrics(pred, gt, num_points=100, seed=seed)
    assert out["chamfer"] < 1e-8
    assert out["scale"] == pytest.approx(1 / scale, rel=1e-8)


def test_plane_offset_without_alignment_is_the_distance_between_planes():
    d = 0.03
    gt, pred = _plane(30, 0.0), _plane(30, d)
    out = point_cloud_metrics(pred, gt, align=False)
    assert out["accuracy"] == pytest.approx(d, abs=1e-12)
    assert out["completeness"] == pytest.approx(d, abs=1e-12)
    assert out["chamfer"] == pytest.approx(d, abs=1e-12)
    diagonal = math.hypot(2.9, 2.9)
    assert out["chamfer_relative_percent"] == pytest.approx(100 * d / diagonal, rel=1e-9)


def test_subset_prediction_has_perfect_accuracy_and_known_completeness():
    gt = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], axis=-1)
    pred = gt[:5]
    out = point_cloud_metrics(pred, gt, align=False)
    assert out["accuracy"] == 0.0
    assert out["completeness"] == pytest.approx((0 + 0 + 0 + 0 + 0 + 1 + 2 + 3 + 4 + 5) / 10)
    assert out["chamfer"] == pytest.approx(0.75)


def test_matches_brute_force_nearest_neighbours():
    rng = np.random.default_rng(1)
    pred, gt = rng.normal(size=(300, 3)), rng.normal(size=(400, 3)) + 0.1
    out = point_cloud_metrics(torch.from_numpy(pred), torch.from_numpy(gt), align=False)
    dist = cdist(pred, gt)
    assert out["accuracy"] == pytest.approx(dist.min(axis=1).mean(), rel=1e-12)
    assert out["completeness"] == pytest.approx(dist.min(axis=0).mean(), rel=1e-12)


def test_farthest_point_sampling_caps_both_clouds():
    gt, pred = _plane(40, 0.0, spacing=0.05), _plane(40, 0.02, spacing=0.05)
    out = point_cloud_metrics(pred, gt, align=False, num_points=300, seed=3)
    assert out["num_pred"] == out["num_gt"] == 300
    # a 300-point FPS of a 40x40 grid is about 0.1 apart: distances lie between the plane gap
    # and the gap combined with that sampling radius
    assert 0.02 - 1e-12 <= out["accuracy"] <= math.hypot(0.02, 0.15)
    again = point_cloud_metrics(pred, gt, align=False, num_points=300, seed=3)
    assert again["chamfer"] == out["chamfer"]


def test_masks_select_alignment_pairs_and_evaluated_points():
    gt = _point_map(seed=2)
    pred = 2.0 * gt + 1.0
    gt_mask = np.ones(gt.shape[:-1], bool)
    gt_mask[:, :3] = False  # e.g. missing depth in the ground truth
    gt_bad = gt.copy()
    gt_bad[~gt_mask] = 1e3  # garbage where invalid
    pred[0, 5, 5] = np.nan  # a failed prediction pixel is dropped automatically
    out = point_cloud_metrics(pred, gt_bad, gt_mask=gt_mask)
    assert out["scale"] == pytest.approx(0.5, rel=1e-9)
    # aligned prediction == gt except the NaN pixel: every valid prediction lies on a GT point...
    aligned_rows = gt.reshape(-1, 3)
    assert out["accuracy"] == pytest.approx(
        cdist(np.delete(aligned_rows, 5 * 16 + 5, axis=0), gt[gt_mask]).min(axis=1).mean(), abs=1e-9)
    # ...and only the GT point under the dropped pixel has a non-zero completeness distance
    others = np.delete(aligned_rows, 5 * 16 + 5, axis=0)
    lone = np.linalg.norm(others - gt[0, 5, 5], axis=1).min()
    assert out["completeness"] == pytest.approx(lone / gt_mask.sum(), rel=1e-9)
    assert out["num_gt"] == int(gt_mask.sum())
    assert out["num_pred"] == gt.size // 3 - 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"pred": np.zeros((10, 3)), "gt": np.zeros((12, 3))}, "align=False"),
    ({"pred": np.zeros((10, 2)), "gt": np.zeros((10, 2))}, "shape"),
    ({"pred": np.ones((10, 3)), "gt": np.ones((10, 3)), "pred_mask": np.ones(9, bool)}, "pred_mask"),
    ({"pred": np.ones((10, 3)), "gt": np.ones((10, 3)), "gt_mask": np.zeros(10, bool)}, "fewer than 3"),
    ({"pred": np.ones((10, 3)), "gt": np.ones((10, 3)), "num_points": 0}, "num_points"),
])
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(Gen3RError, match=match):
        point_cloud_metrics(**kwargs)


def test_empty_cloud_without_alignment_raises():
    with pytest.raises(Gen3RError, match="no valid points"):
        point_cloud_metrics(np.full((4, 3), np.nan), np.zeros((5, 3)), align=False)
