"""Pose AUC (VGGT protocol) on analytic cases and against a quaternion-based reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gen3r.errors import Gen3RError
from gen3r.eval import auc_from_errors, pose_auc, relative_pose_errors


def _random_w2c(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    out[:, :3, 3] = rng.normal(size=(n, 3))
    return out


def _rot_z(deg: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("z", deg, degrees=True).as_matrix()
    return out


def _reference_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VGGT's formulas: quaternion arccos(1 - 2 (1 - <q, q'>^2)), translation arccos(|<u, v>|)."""
    rot, trans = [], []
    for i, j in itertools.combinations(range(len(gt)), 2):
        rg = gt[i] @ np.linalg.inv(gt[j])
        rp = pred[i] @ np.linalg.inv(pred[j])
        qg = Rotation.from_matrix(rg[:3, :3]).as_quat()
        qp = Rotation.from_matrix(rp[:3, :3]).as_quat()
        loss = max(1 - float(qg @ qp) ** 2, 1e-15)
        rot.append(math.degrees(math.acos(1 - 2 * loss)))
        u, v = rg[:3, 3] / np.linalg.norm(rg[:3, 3]), rp[:3, 3] / np.linalg.norm(rp[:3, 3])
        trans.append(math.degrees(math.acos(min(abs(float(u @ v)), 1.0))))
    return np.array(rot), np.array(trans)


def test_perfect_poses_give_auc_one():
    gt = _random_w2c(8, 0)
    out = pose_auc(gt, gt)
    assert out["auc"] == 1.0
    assert out["num_pairs"] == 28
    assert np.all(out["rra"] < 1e-5) and np.all(out["rta"] < 1e-5)
    assert out["rra_acc"] == 1.0 and out["rta_acc"] == 1.0


def test_global_similarity_of_the_world_does_not_change_errors():
    gt = _random_w2c(6, 1)
    world = np.eye(4)
    world[:3, :3] = Rotation.from_rotvec([0.3, -1.0, 0.5]).as_matrix()
    world[:3, 3] = [2.0, -1.0, 4.0]
    pred = gt @ np.linalg.inv(world)
    pred[:, :3, 3] *= 3.5  # predictions in another metric scale
    rot, trans = relative_pose_errors(torch.from_numpy(pred[:, :3]), gt)
    assert rot.max() < 1e-5 and trans.max() < 1e-5


def test_known_rotation_perturbation_of_one_frame():
    # cameras on the z axis, identity rotations: relative translations are along z, so rotating
    # frame 0 about its z axis by theta degrees gives exactly theta degrees of rotation error and no
    # translation error on the pairs (0, j), and nothing elsewhere.
    n, theta = 5, 10.5  # away from a bin edge
    gt = np.tile(np.eye(4), (n, 1, 1))
    gt[:, 2, 3] = np.arange(n, dtype=np.float64) + 1.0
    pred = gt.copy()
    pred[0] = _rot_z(theta) @ gt[0]
    out = pose_auc(pred, gt)
    np.testing.assert_allclose(out["rra"][: n - 1], theta, atol=1e-9)
    np.testing.assert_allclose(out["rra"][n - 1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(out["rta"], 0.0, atol=1e-9)
    # 6 of 10 pairs in bin [0, 1), 4 in bin [10, 11): AUC@30 = (10 * 0.6 + 20 * 1) / 30
    assert out["auc"] == pytest.approx((10 * 0.6 + 20) / 30, abs=1e-12)
    assert pose_auc(pred, gt, max_threshold=5)["auc"] == pytest.approx(0.6, abs=1e-12)
    assert pose_auc(pred, gt, max_threshold=15)["auc"] == pytest.approx((10 * 0.6 + 5) / 15, abs=1e-12)


@pytest.mark.parametrize(("phi", "expected"), [(7.0, 7.0), (45.0, 45.0), (120.0, 60.0), (180.0, 0.0)])
def test_translation_angle_with_sign_ambiguity(phi, expected):
    gt = np.tile(np.eye(4), (2, 1, 1))
    gt[1, :3, 3] = [0.0, 0.0, 1.0]
    pred = gt.copy()
    rad = math.radians(phi)
    pred[1, :3, 3] = [math.sin(rad), 0.0, math.cos(rad)]
    rot, trans = relative_pose_errors(pred, gt)
    assert rot[0] == pytest.approx(0.0, abs=1e-9)
    assert trans[0] == pytest.approx(expected, abs=1e-7)


def test_zero_relative_translation_scores_ninety_degrees_like_vggt():
    gt = np.tile(np.eye(4), (2, 1, 1))
    gt[1, :3, 3] = [0.0, 0.0, 1.0]
    pred = np.tile(np.eye(4), (2, 1, 1))
    assert relative_pose_errors(pred, gt)[1][0] == 90.0


def test_matches_quaternion_reference_on_random_poses():
    gt = _random_w2c(7, 2)
    pred = gt.copy()
    rng = np.random.default_rng(3)
    for k in range(len(pred)):
        noise = np.eye(4)
        noise[:3, :3] = Rotation.from_rotvec(rng.normal(scale=0.2, size=3)).as_matrix()
        noise[:3, 3] = rng.normal(scale=0.3, size=3)
        pred[k] = noise @ pred[k]
    rot, trans = relative_pose_errors(pred, gt)
    ref_rot, ref_trans = _reference_errors(pred, gt)
    np.testing.assert_allclose(rot, ref_rot, atol=1e-5)
    np.testing.assert_allclose(trans, ref_trans, atol=1e-5)
    assert rot.max() > 5.0  # the case is not trivial


def test_auc_histogram_definition():
    # max errors 0.5, 2.5, 40 -> bins [0,1): 1/3, [2,3): 1/3, beyond 3: dropped
    rot = np.array([0.5, 2.5, 1.0])
    trans = np.array([0.1, 0.2, 40.0])
    # AUC@3: cumsum over bins [1/3, 1/3, 2/3] -> mean 4/9
    assert auc_from_errors(rot, trans, max_threshold=3) == pytest.approx(4 / 9)
    # the upper edge is inclusive in numpy's last bin: an error of exactly 3 counts
    assert auc_from_errors(np.array([3.0]), np.array([0.0]), max_threshold=3) == pytest.approx(1 / 3)


@pytest.mark.parametrize(("pred", "gt", "match"), [
    (np.zeros((3, 4, 4)), np.zeros((4, 4, 4)), "frames"),
    (np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), "at least 2"),
    (np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), "shape"),
    (np.full((3, 4, 4), np.nan), np.zeros((3, 4, 4)), "NaN"),
])
def test_bad_inputs_raise(pred, gt, match):
    with pytest.raises(Gen3RError, match=match):
        pose_auc(pred, gt)


def test_bad_threshold_raises():
    gt = _random_w2c(3, 0)
    with pytest.raises(Gen3RError, match="max_threshold"):
        pose_auc(gt, gt, max_threshold=2.5)
