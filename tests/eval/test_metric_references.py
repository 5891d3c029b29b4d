"""Audit of issue 5 (evaluation suite): public names/defaults and independent references.

SSIM is checked against a scipy.ndimage implementation of Wang et al. 2004 (Gaussian sigma 1.5,
radius 5, population statistics, valid region); pose AUC against closed forms of VGGT's
histogram AUC on cameras with known relative errors.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

import gen3r.eval as ev


def test_public_names_and_defaults():
    for name in ("psnr", "ssim", "point_cloud_metrics", "pose_auc", "LPIPS", "lpips"):
        assert hasattr(ev, name), name
    assert list(inspect.signature(ev.psnr).parameters)[:2] == ["pred", "gt"]
    assert list(inspect.signature(ev.ssim).parameters)[:2] == ["pred", "gt"]
    pc = inspect.signature(ev.point_cloud_metrics).parameters
    assert list(pc)[:2] == ["pred", "gt"]
    assert (pc["align"].default, pc["num_points"].default, pc["seed"].default) == (True, 20000, 0)
    pa = inspect.signature(ev.pose_auc).parameters
    assert list(pa)[:2] == ["pred_w2c", "gt_w2c"] and pa["max_threshold"].default == 30


def _ssim_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 on (3, H, W) in [0, 1] with scipy's Gaussian filter, valid region."""
    c1, c2 = 0.01**2, 0.03**2
    truncate = 5 / 1.5  # radius 5 -> 11 taps
    maps = []
    for a, b in zip(x, y):
        f = lambda z: gaussian_filter(z, 1.5, truncate=truncate, mode="constant")  # noqa: E731
        mu_a, mu_b = f(a), f(b)
        va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
        m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
        maps.append(m[5:-5, 5:-5])  # only windows fully inside the image
    return float(np.mean(maps))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_scipy_gaussian_reference(seed):
    rng = np.random.default_rng(seed)
    h, w = 23 + seed, 31
    gt = rng.uniform(size=(3, h, w))
    gt = gaussian_filter(gt, (0, 1.0, 1.0))  # some structure
    pred = np.clip(gt + rng.normal(scale=0.05 * (seed + 1), size=gt.shape), 0, 1)
    got = ev.ssim(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None]).item()
    assert got == pytest.approx(_ssim_scipy(pred, gt), abs=1e-10)


def test_psnr_closed_form_and_batched_shape():
    gt = torch.zeros(2, 4, 3, 16, 16)
    pred = gt + 0.1
    out = ev.psnr(pred, gt)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out, torch.full((2, 4), 20.0, dtype=torch.float64))


def _w2c(rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, t
    return m


@pytest.mark.parametrize("beta", [3.5, 12.5, 27.25])
def test_pose_auc_translation_direction_error_closed_form(beta):
    """Rotations exact; every relative translation turned by beta degrees -> max error beta for all
    pairs; VGGT AUC@T = (T - floor(beta)) / T when beta < T, else 0."""
    n = 6
    b = math.radians(beta)
    gt = np.stack([_w2c(np.eye(3), np.array([i, 0.0, 0.0])) for i in range(n)])
    pred = np.stack([_w2c(np.eye(3), 2.0 * i * np.array([math.cos(b), math.sin(b), 0.0])) for i in range(n)])
    for threshold in (5, 15, 30):
        out = ev.pose_auc(torch.from_numpy(pred), torch.from_numpy(gt), max_threshold=threshold)
        expected = (threshold - math.floor(beta)) / threshold if beta < threshold else 0.0
        assert out["auc"] == pytest.approx(expected, abs=1e-12), threshold
        assert len(out["rra"]) == len(out["rta"]) == n * (n - 1) // 2
        np.testing.assert_allclose(out["rta"], beta, atol=1e-9)
        np.testing.assert_allclose(out["rra"], 0.0, atol=1e-9)


def test_pose_auc_rotation_error_closed_form():
    """Camera 1 turned by alpha about the x axis (its translation along x is unchanged by it):
    rotation error alpha, translation error 0."""
    alpha = 7.3
    rx = Rotation.from_euler("x", alpha, degrees=True).as_matrix()
    gt = np.stack([_w2c(np.eye(3), np.zeros(3)), _w2c(np.eye(3), np.array([1.0, 0, 0]))])
    pred = np.stack([_w2c(np.eye(3), np.zeros(3)), _w2c(rx, np.array([1.0, 0, 0]))])
    out = ev.pose_auc(pred[:, :3], gt[:, :3])
    np.testing.assert_allclose(out["rra"], [alpha], atol=1e-9)
    np.testing.assert_allclose(out["rta"], [0.0], atol=1e-6)
    assert out["auc"] == pytest.approx((30 - 7) / 30, abs=1e-12)
    assert ev.pose_auc(pred, gt, max_threshold=5)["auc"] == 0.0


def test_pose_auc_is_invariant_to_global_similarity_of_the_prediction():
    rng = np.random.default_rng(3)
    gt = np.stack([_w2c(Rotation.random(random_state=i).as_matrix(), rng.normal(size=3)) for i in range(5)])
    # a different world frame and scale for the prediction: w2c' = w2c @ inv(S), S = [sR | t]
    s, r, t = 3.7, Rotation.random(random_state=9).as_matrix(), np.array([1.0, -2.0, 0.5])
    sim = np.eye(4)
    sim[:3, :3], sim[:3, 3] = s * r, t
    pred = gt @ np.linalg.inv(sim)
    pred[:, :3, :3] *= s  # re-orthonormalise rotation (translation keeps the scale)
    out = ev.pose_auc(pred, gt)
    np.testing.assert_allclose(out["rra"], 0.0, atol=1e-6)
    np.testing.assert_allclose(out["rta"], 0.0, atol=1e-5)
    assert out["auc"] == pytest.approx(1.0)


def test_realestate10k_reader_on_a_hand_written_file(tmp_path):
    """RE10K format written here from its documentation (not by gen3r.data.writers): first line the
    video URL, then ``timestamp_us fx fy cx cy k1 k2 <3x4 w2c row-major>`` with intrinsics
    normalised by the image width / height; frames in ``frames/<name>/<timestamp>.png``."""
    from PIL import Image

    from gen3r.eval.datasets import RealEstate10KReader

    w, h = 40, 30
    rng = np.random.default_rng(0)
    rots = [Rotation.from_rotvec(rng.normal(scale=0.3, size=3)).as_matrix() for _ in range(3)]
    trans = [rng.normal(size=3) for _ in range(3)]
    stamps = ["0", "33367", "66733"]
    lines = ["https://www.youtube.com/watch?v=abcdefghijk"]
    frames_dir = tmp_path / "test" / "frames" / "seq0"
    frames_dir.mkdir(parents=True)
    for i, (r, t, ts) in enumerate(zip(rots, trans, stamps)):
        pose = np.concatenate([r, t[:, None]], axis=1).reshape(-1)
        lines.append(" ".join([ts, "0.9", "1.2", "0.45", "0.55", "0", "0"] + [repr(float(v)) for v in pose]))
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(frames_dir / f"{ts}.png")
    (tmp_path / "test" / "seq0.txt").write_text("\n".join(lines) + "\n")
    data = RealEstate10KReader(tmp_path, split="test").load("seq0", with_depth=False)
    assert data.frames.shape == (3, 3, h, w)
    np.testing.assert_allclose(data.frames[2].numpy(), 80 / 255, atol=1e-6)
    K = np.array([[0.9 * w, 0, 0.45 * w], [0, 1.2 * h, 0.55 * h], [0, 0, 1]])
    np.testing.assert_allclose(data.intrinsics, np.broadcast_to(K, (3, 3, 3)), rtol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(data.extrinsics[i][:3, :3], rots[i], atol=1e-12)
        np.testing.assert_allclose(data.extrinsics[i][:3, 3], trans[i], atol=1e-12)
    assert list(data.frame_ids) == stamps
