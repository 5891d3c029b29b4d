"""gen3r.geometry.alignment (Umeyama Sim(3)) and gen3r.geometry.sampling (farthest point sampling)."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gen3r.errors import Gen3RError
from gen3r.geometry import apply_sim3, farthest_point_sampling, umeyama


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 200),
    log_scale=st.floats(-2.0, 2.0),
)
def test_umeyama_recovers_exact_sim3(seed: int, n: int, log_scale: float) -> None:
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((n, 3))
    scale, rot, trans = float(np.exp(log_scale)), _rotation(rng), rng.uniform(-5, 5, 3)
    dst = scale * src @ rot.T + trans
    s, r, t = umeyama(src, dst)
    assert np.isclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(s, scale, rtol=1e-8)
    np.testing.assert_allclose(r, rot, atol=1e-8)
    np.testing.assert_allclose(t, trans, atol=1e-7 * max(1.0, scale))
    np.testing.assert_allclose(apply_sim3(src, s, r, t), dst, atol=1e-7 * max(1.0, scale))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_umeyama_with_noise_matches_roma(seed: int) -> None:
    rng = np.random.default_rng(seed)
    src = rng.uniform(-1, 1, (500, 3))
    scale, rot, trans = 2.5, _rotation(rng), np.array([0.3, -1.0, 2.0])
    dst = scale * src @ rot.T + trans + 0.01 * rng.standard_normal((500, 3))
    s, r, t = umeyama(src, dst)
    np.testing.assert_allclose(s, scale, rtol=0.01)
    assert np.degrees(np.arccos(np.clip((np.trace(r.T @ rot) - 1) / 2, -1, 1))) < 0.5
    r_ref, t_ref, s_ref = roma.rigid_points_registration(
        torch.from_numpy(src), torch.from_numpy(dst), compute_scaling=True
    )
    np.testing.assert_allclose(s, float(s_ref), rtol=1e-6)
    np.testing.assert_allclose(r, r_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(t, t_ref.numpy(), atol=1e-6)


def test_umeyama_reflection_gives_proper_rotation() -> None:
    rng = np.random.default_rng(0)
    src = rng.standard_normal((50, 3))
    dst = src * np.array([1.0, 1.0, -1.0])  # a mirror image: no rotation reproduces it
    _, r, _ = umeyama(src, dst)
    assert np.isclose(np.linalg.det(r), 1.0)


def test_umeyama_without_scale_and_torch_types() -> None:
    rng = np.random.default_rng(1)
    src = rng.standard_normal((30, 3))
    rot, trans = _rotation(rng), np.array([1.0, 2.0, 3.0])
    dst = 3.0 * src @ rot.T + trans
    s, r, _ = umeyama(src, dst, with_scale=False)
    assert s == 1.0
    np.testing.assert_allclose(r, rot, atol=1e-8)
    s_t, r_t, t_t = umeyama(torch.from_numpy(src).float(), torch.from_numpy(dst).float())
    assert isinstance(r_t, torch.Tensor) and r_t.dtype == torch.float32 and t_t.shape == (3,)
    np.testing.assert_allclose(s_t, 3.0, rtol=1e-5)
    out = apply_sim3(torch.from_numpy(src).float(), s_t, r_t, t_t)
    np.testing.assert_allclose(out.numpy(), dst, atol=1e-4)


def test_umeyama_bad_inputs() -> None:
    with pytest.raises(Gen3RError):
        umeyama(np.zeros((5, 3)), np.zeros((6, 3)))
    with pytest.raises(Gen3RError):
        umeyama(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(Gen3RError):
        umeyama(np.ones((5, 3)), np.zeros((5, 3)))
    with pytest.raises(Gen3RError):
        umeyama(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(Gen3RError):
        umeyama(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(Gen3RError):
        apply_sim3(np.zeros((4, 2)), 1.0, np.eye(3), np.zeros(3))


def _brute_force_fps(points: np.ndarray, num: int, start: int) -> np.ndarray:
    dist = np.full(points.shape[0], np.inf)
    out = [start]
    for _ in range(num - 1):
        dist = np.minimum(dist, ((points - points[out[-1]]) ** 2).sum(axis=1))
        out.append(int(np.argmax(dist)))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fps_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.standard_normal((12000, 3)), rng.uniform(-1, 1, (8000, 3)) * [4, 1, 0.01]])
    idx = farthest_point_sampling(points, 400, seed=seed)
    assert idx[0] == np.random.default_rng(seed).integers(points.shape[0])
    np.testing.assert_array_equal(idx, _brute_force_fps(points, 400, int(idx[0])))


def test_fps_properties() -> None:
    rng = np.random.default_rng(5)
    points = rng.random((4000, 3)).astype(np.float32)
    a = farthest_point_sampling(points, 300, seed=11)
    assert a.dtype == np.int64 and a.shape == (300,) and len(np.unique(a)) == 300
    np.testing.assert_array_equal(a, farthest_point_sampling(torch.from_numpy(points), 300, seed=11))
    b = farthest_point_sampling(points, 300, seed=12)
    assert a[0] != b[0]
    np.testing.assert_array_equal(farthest_point_sampling(points[:10], 20), np.arange(10))


def test_fps_covers_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    corners = np.array([[x, y, z] for x in (0, 10) for y in (0, 10) for z in (0, 10)], dtype=np.float64)
    points = np.concatenate([c + 0.1 * rng.standard_normal((100, 3)) for c in corners])
    idx = farthest_point_sampling(points, 8, seed=3)
    assert sorted(set(idx // 100)) == list(range(8))


def test_fps_duplicates_still_unique() -> None:
    points = np.concatenate([np.zeros((10, 3)), np.ones((2, 3))])
    idx = farthest_point_sampling(points, 6, seed=0)
    assert len(np.unique(idx)) == 6


def test_fps_bad_inputs() -> None:
    with pytest.raises(Gen3RError):
        farthest_point_sampling(np.zeros((10, 3)), 0)
    with pytest.raises(Gen3RError):
        farthest_point_sampling(np.zeros((0, 3)), 5)
    with pytest.raises(Gen3RError):
        farthest_point_sampling(np.zeros((10, 2)), 5)
