"""gen3r.geometry.unproject: analytic cases, projection round trip, official-fixture parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from gen3r.errors import Gen3RError
from gen3r.geometry import depth_validity_mask, unproject_depth
from tests._tiny import TINY

TASKS = ["1view", "2view", "allview"]


def _rot_z90() -> np.ndarray:
    return np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _random_cameras(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    q = rng.standard_normal((frames, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    rot = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )
    ext = np.concatenate([rot, rng.standard_normal((frames, 3, 1))], axis=2)
    k = np.zeros((frames, 3, 3))
    k[:, 0, 0], k[:, 1, 1] = rng.uniform(50, 200, frames), rng.uniform(50, 200, frames)
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = rng.uniform(10, 30, frames), rng.uniform(10, 30, frames), 1.0
    return ext, k


def test_analytic_single_pixel() -> None:
    depth = np.full((4, 6), 2.0, dtype=np.float32)
    ext = np.concatenate([_rot_z90(), np.array([[1.0], [2.0], [3.0]])], axis=1)
    k = np.array([[4.0, 0.0, 2.0], [0.0, 8.0, 1.0], [0.0, 0.0, 1.0]])
    pts = unproject_depth(depth, ext, k)
    assert pts.shape == (4, 6, 3) and pts.dtype == np.float64
    # pixel u=5 (column), v=3 (row): camera point ((5-2)*2/4, (3-1)*2/8, 2) = (1.5, 0.5, 2);
    # world = R^T (p - t) with R a +90 deg turn about z: R^T (a, b, c) = (b, -a, c).
    np.testing.assert_allclose(pts[3, 5], [0.5 - 2.0, -(1.5 - 1.0), 2.0 - 3.0])
    # the principal point pixel maps to the camera centre ray: camera point (0, 0, 2)
    np.testing.assert_allclose(pts[1, 2], [-2.0, 1.0, -1.0])


def test_identity_camera_integer_pixel_grid() -> None:
    depth = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    k = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pts = unproject_depth(depth, np.eye(4), k)
    v, u = np.mgrid[0:3, 0:4]
    np.testing.assert_allclose(pts, np.stack([u * depth, v * depth, depth], -1))


def test_reprojection_round_trip() -> None:
    rng = np.random.default_rng(7)
    ext, k = _random_cameras(rng, 3)
    depth = rng.uniform(0.5, 5.0, (3, 20, 30)).astype(np.float32)
    pts = unproject_depth(depth, ext, k)
    cam = np.einsum("fij,fhwj->fhwi", ext[:, :, :3], pts) + ext[:, None, None, :, 3]
    pix = np.einsum("fij,fhwj->fhwi", k, cam)
    v, u = np.mgrid[0:20, 0:30]
    np.testing.assert_allclose(cam[..., 2], depth, rtol=1e-6)
    np.testing.assert_allclose(pix[..., 0] / pix[..., 2], np.broadcast_to(u, (3, 20, 30)), atol=1e-4)
    np.testing.assert_allclose(pix[..., 1] / pix[..., 2], np.broadcast_to(v, (3, 20, 30)), atol=1e-4)


def test_layouts_and_torch_inputs_agree() -> None:
    rng = np.random.default_rng(3)
    ext, k = _random_cameras(rng, 4)
    depth = rng.uniform(0.5, 5.0, (4, 8, 9)).astype(np.float32)
    ref = unproject_depth(depth, ext, k)
    ext44 = np.concatenate([ext, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (4, 1, 1))], axis=1)
    np.testing.assert_array_equal(unproject_depth(depth[..., None], ext44, k), ref)
    as_torch = unproject_depth(torch.from_numpy(depth), torch.from_numpy(ext), torch.from_numpy(k))
    np.testing.assert_array_equal(as_torch, ref)
    batched = unproject_depth(depth.reshape(2, 2, 8, 9), ext.reshape(2, 2, 3, 4), k.reshape(2, 2, 3, 3))
    np.testing.assert_array_equal(batched.reshape(4, 8, 9, 3), ref)
    np.testing.assert_array_equal(unproject_depth(depth[1], ext[1], k[1]), ref[1])


@pytest.mark.parametrize("task", TASKS)
def test_parity_with_official_points(task: str) -> None:
    """pcds__s4 holds the official points at pixels (u, v) = (4j, 4i); depth__s2[::2, ::2] is the
    depth there. Unprojecting that 28x28 depth with fx, fy, cx, cy divided by 4 uses exactly the
    official pixel coordinates: (j - cx/4) d / (fx/4) == (4j - cx) d / fx bit for bit (a power of two)."""
    ref = load_file(str(TINY / f"task_{task}.safetensors"))
    depth = ref["depth_maps__s2"][0, :, ::2, ::2]
    k = ref["camera_intrinsics"][0].copy()
    k[:, :2, :] /= 4.0
    k[:, 2, 2] = 1.0
    pts, mask = unproject_depth(depth, ref["camera_extrinsics"][0], k, return_mask=True)
    assert pts.dtype == np.float64 and mask.shape == (9, 28, 28)
    expected = ref["pcds__s4"][0]
    assert pts.shape == expected.shape
    np.testing.assert_allclose(pts, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("task", TASKS)
def test_mask_matches_official_mask_pattern(task: str) -> None:
    """The official mask is an open depth interval per frame; ours on the strided depth (whose
    percentiles differ slightly from the full-resolution ones) agrees on >= 99.5 % of pixels."""
    ref = load_file(str(TINY / f"task_{task}.safetensors"))
    depth = ref["depth_maps__s2"][0, ..., 0]
    official = ref["point_masks__s2"][0].astype(bool)
    for f in range(depth.shape[0]):
        valid, invalid = depth[f][official[f]], depth[f][~official[f]]
        assert np.all((invalid <= valid.min()) | (invalid >= valid.max()))
    ours = depth_validity_mask(depth)
    assert (ours == official).mean() >= 0.995


def test_mask_count_matches_official_full_resolution_count() -> None:
    """Per 112x112 frame the official mask keeps 12280 pixels (stats of the full mask); with
    distinct depths our percentile rule keeps exactly as many: 13 at/below P0.1, 251 at/above P98."""
    stats = load_file(str(TINY / "task_1view.safetensors"))["point_masks__stats"]
    rng = np.random.default_rng(0)
    depth = np.stack([rng.permutation(112 * 112).reshape(112, 112) for _ in range(9)]) * 1e-3 + 0.1
    assert depth_validity_mask(depth).sum() == int(stats[0]) == 9 * 12280


def test_mask_percentiles_and_cap() -> None:
    depth = np.arange(1, 1001, dtype=np.float64).reshape(1, 10, 100)
    # P0.1 = 1 + 0.001 * 999 = 1.999, P98 = 1 + 0.98 * 999 = 980.02, capped at 50
    mask = depth_validity_mask(depth)
    np.testing.assert_array_equal(depth[mask], np.arange(2, 50))
    small = depth / 100.0  # 0.01..10: P98 = 9.8002 < 50
    np.testing.assert_array_equal(small[depth_validity_mask(small)], np.arange(2, 981) / 100.0)
    zeros = np.array([[0.0, 1e-9, 0.5, 3.0]])
    np.testing.assert_array_equal(depth_validity_mask(zeros, min_max_depth_mask=False), [[False, False, True, True]])


@pytest.mark.parametrize(
    "depth_shape, ext_shape, k_shape",
    [
        ((2, 4, 5), (3, 3, 4), (3, 3, 3)),  # batch mismatch
        ((2, 4, 5, 3), (2, 3, 4), (2, 3, 3)),  # trailing channel != 1
        ((2, 4, 5), (2, 4, 3), (2, 3, 3)),  # bad extrinsics
        ((2, 4, 5), (2, 3, 4), (2, 3, 4)),  # bad intrinsics
        ((2, 4, 5), (2, 3, 4), (1, 3, 3)),  # intrinsics batch differs
        ((2, 0, 5), (2, 3, 4), (2, 3, 3)),  # empty
    ],
)
def test_bad_shapes_raise(depth_shape: tuple, ext_shape: tuple, k_shape: tuple) -> None:
    ext = np.zeros(ext_shape)
    k = np.zeros(k_shape)
    if k_shape[-2:] == (3, 3):
        k[..., 0, 0] = k[..., 1, 1] = k[..., 2, 2] = 1.0
    with pytest.raises(Gen3RError):
        unproject_depth(np.ones(depth_shape), ext, k)


def test_bad_values_raise() -> None:
    ext, k = np.eye(4)[:3], np.eye(3)
    with pytest.raises(Gen3RError, match="NaN"):
        unproject_depth(np.array([[1.0, np.nan]]), ext, k)
    skewed = k.copy()
    skewed[0, 1] = 0.5
    with pytest.raises(Gen3RError, match="skew"):
        unproject_depth(np.ones((2, 2)), ext, skewed)
    with pytest.raises(Gen3RError):
        unproject_depth([[1.0]], ext, k)  # type: ignore[arg-type]
    with pytest.raises(Gen3RError):
        depth_validity_mask(np.ones(5))
