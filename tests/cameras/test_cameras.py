"""Tests of gen3r.cameras: Cameras type, pose encoding, Plücker rays, packing, trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from gen3r.cameras import (
    OFFICIAL_TRAJECTORIES,
    TRAJECTORY_DESCRIPTIONS,
    TRAJECTORY_PRESETS,
    Cameras,
    extri_intri_to_pose_encoding,
    make_trajectory,
    matrix_to_quaternion,
    official_poses,
    pack_plucker_for_dit,
    plucker_rays,
    pose_encoding_to_extri_intri,
    preprocess_poses,
    quaternion_to_matrix,
    resize_and_center_crop_params,
)
from gen3r.errors import Gen3RError
from tests._tiny import tensor_stats

SETTINGS = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def task_1view(tiny_task):
    return tiny_task("1view")


def _random_cameras(seed: int, frames: int = 4, size: tuple[int, int] = (48, 64)) -> Cameras:
    rng = np.random.default_rng(seed)
    rot = Rotation.random(frames, random_state=seed).as_matrix()
    w2c = np.concatenate([rot, rng.normal(size=(frames, 3, 1))], -1)
    k = np.zeros((frames, 3, 3))
    k[:, 0, 0], k[:, 1, 1] = rng.uniform(30, 90, frames), rng.uniform(30, 90, frames)
    k[:, 0, 2], k[:, 1, 2] = rng.uniform(20, 44, frames), rng.uniform(15, 33, frames)
    k[:, 2, 2] = 1
    return Cameras(torch.from_numpy(w2c), torch.from_numpy(k), size)


quaternions = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: sum(v * v for v in q) > 1e-2)


# ---------------------------------------------------------------------------------------------- parity
def test_official_zoom_out_matches_fixture(task_1view):
    scale = float(task_1view["cam_scene_scale"])
    assert torch.equal(official_poses("zoom_out", 9, scale), task_1view["c2ws_raw"])
    assert torch.equal(preprocess_poses(task_1view["c2ws_raw"]), task_1view["c2ws"][0])
    cams = make_trajectory("zoom_out", 9, task_1view["Ks"][0, 0], scene_scale=scale)
    assert cams.image_size == (112, 112)
    torch.testing.assert_close(cams.c2w, task_1view["c2ws_raw"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(cams.intrinsics, task_1view["Ks"][0])


def test_plucker_matches_fixture(task_1view):
    ref = task_1view["plucker_embeddings__s4"]
    plucker = plucker_rays(task_1view["c2ws"][0], task_1view["Ks"][0], 112, 112)[None]
    assert list(plucker.shape) == task_1view["plucker_embeddings__shape"].tolist()
    torch.testing.assert_close(plucker[..., ::4, ::4], ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tensor_stats(plucker), task_1view["plucker_embeddings__stats"], rtol=1e-4, atol=1e-4)


def test_cameras_trajectory_plucker_matches_fixture(task_1view):
    cams = make_trajectory("zoom_out", 9, task_1view["Ks"][0, 0], scene_scale=float(task_1view["cam_scene_scale"]))
    plucker = cams.relative_to_first().plucker()[None]
    torch.testing.assert_close(plucker[..., ::4, ::4], task_1view["plucker_embeddings__s4"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tensor_stats(plucker), task_1view["plucker_embeddings__stats"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prefix", ["vggt", "decoded"])
def test_pose_encoding_decoding_matches_fixture(tiny_stages, prefix):
    extrinsics, intrinsics = pose_encoding_to_extri_intri(tiny_stages[f"{prefix}_pose_enc"], (112, 112))
    assert intrinsics.dtype == torch.float32
    torch.testing.assert_close(extrinsics, tiny_stages[f"{prefix}_extrinsic"], rtol=0, atol=1e-6)
    torch.testing.assert_close(intrinsics, tiny_stages[f"{prefix}_intrinsic"], rtol=0, atol=1e-5)


def test_vggt_cameras_in_task_file(task_1view):
    cams = Cameras.from_pose_encoding(task_1view["cam_vggt_pose_enc"][0], (112, 112))
    torch.testing.assert_close(cams.extrinsics[:, :3], task_1view["cam_vggt_extrinsic"][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(cams.intrinsics, task_1view["cam_vggt_intrinsic"][0], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- rotations
def test_quaternion_order_hand_example():
    half = math.sqrt(0.5)
    q = torch.tensor([0.0, 0.0, half, half], dtype=torch.float64)  # 90 degrees about z, x y z w
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(quaternion_to_matrix(q), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(matrix_to_quaternion(expected), q, atol=1e-12, rtol=0)
    # 180 degrees about x: the w = 0 branch
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(matrix_to_quaternion(flip), torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64))


@SETTINGS
@given(quaternions)
def test_quaternion_to_matrix_matches_scipy(q):
    mine = quaternion_to_matrix(torch.tensor(q, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(mine, Rotation.from_quat(q).as_matrix(), atol=1e-10)


@SETTINGS
@given(quaternions)
def test_matrix_to_quaternion_round_trip(q):
    q = torch.tensor(q, dtype=torch.float64)
    unit = q / q.norm()
    unit = unit if unit[3] >= 0 else -unit
    back = matrix_to_quaternion(quaternion_to_matrix(q))
    assert back[3] >= 0
    if unit[3] > 1e-6:  # for w == 0 both signs are valid
        torch.testing.assert_close(back, unit, atol=1e-7, rtol=0)
    torch.testing.assert_close(quaternion_to_matrix(back), quaternion_to_matrix(q), atol=1e-7, rtol=0)


@SETTINGS
@given(quaternions, st.lists(st.floats(-10, 10), min_size=3, max_size=3), st.floats(10, 2000), st.floats(10, 2000),
       st.integers(8, 600), st.integers(8, 600))
def test_pose_encoding_round_trip(q, t, fx, fy, height, width):
    rot = quaternion_to_matrix(torch.tensor(q, dtype=torch.float64))
    w2c = torch.cat([rot, torch.tensor(t, dtype=torch.float64)[:, None]], -1)[None]
    k = torch.tensor([[fx, 0, width / 2], [0, fy, height / 2], [0, 0, 1]], dtype=torch.float64)[None]
    enc = extri_intri_to_pose_encoding(w2c, k, (height, width))
    assert enc.shape == (1, 9) and enc.dtype == torch.float32
    e2, k2 = pose_encoding_to_extri_intri(enc.double(), (height, width))
    torch.testing.assert_close(e2, w2c, atol=2e-6, rtol=1e-6)
    torch.testing.assert_close(k2.double(), k, rtol=5e-5, atol=1e-4)


def test_cameras_pose_encoding_round_trip():
    cams = _random_cameras(3)
    centred = Cameras(cams.extrinsics, cams.intrinsics.clone(), cams.image_size)
    centred.intrinsics[:, 0, 2], centred.intrinsics[:, 1, 2] = 32, 24
    back = Cameras.from_pose_encoding(centred.to_pose_encoding().double(), centred.image_size)
    assert back.allclose(centred, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- Cameras
@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_w2c_c2w_inverse(seed):
    cams = _random_cameras(seed)
    eye = torch.eye(4, dtype=torch.float64).expand(len(cams), 4, 4)
    torch.testing.assert_close(cams.extrinsics @ cams.c2w, eye, atol=1e-12, rtol=0)
    again = Cameras.from_c2w(cams.c2w, cams.intrinsics, cams.image_size)
    torch.testing.assert_close(again.extrinsics, cams.extrinsics, atol=1e-12, rtol=0)
    # the camera centre projects to depth 0: R c + t = 0
    centre = cams.centers
    torch.testing.assert_close(torch.einsum("fij,fj->fi", cams.extrinsics[:, :3, :3], centre)
                               + cams.extrinsics[:, :3, 3], torch.zeros_like(centre), atol=1e-12, rtol=0)


def test_three_by_four_and_shared_intrinsics():
    k = torch.tensor([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])
    cams = Cameras(torch.eye(4)[:3].expand(3, 3, 4), k, (48, 64))
    assert cams.extrinsics.shape == (3, 4, 4) and cams.intrinsics.shape == (3, 3, 3)
    torch.testing.assert_close(cams.extrinsics, torch.eye(4).expand(3, 4, 4))
    assert len(cams) == 3 and cams.num_frames == 3 and cams.dtype == torch.float32


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_relative_to_first_is_invariant_to_world_transform(seed):
    cams = _random_cameras(seed)
    rel = cams.relative_to_first()
    torch.testing.assert_close(rel.c2w[0], torch.eye(4, dtype=torch.float64), atol=1e-12, rtol=0)
    g = torch.eye(4, dtype=torch.float64)
    g[:3, :3] = torch.from_numpy(Rotation.random(random_state=seed + 1).as_matrix())
    g[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    moved = Cameras.from_c2w(g @ cams.c2w, cams.intrinsics, cams.image_size).relative_to_first()
    torch.testing.assert_close(moved.extrinsics, rel.extrinsics, atol=1e-9, rtol=0)
    torch.testing.assert_close(rel.c2w[1:], torch.linalg.inv(cams.c2w[0]) @ cams.c2w[1:], atol=1e-9, rtol=0)


def _project(cams: Cameras, point: torch.Tensor) -> torch.Tensor:
    cam = cams.extrinsics[:, :3, :3] @ point + cams.extrinsics[:, :3, 3]
    uvw = torch.einsum("fij,fj->fi", cams.intrinsics, cam)
    return uvw[:, :2] / uvw[:, 2:]


def test_resize_and_crop_move_projections_like_the_image():
    cams = _random_cameras(7)
    point = cams.centers[0] + 3 * cams.c2w[0, :3, 2]  # in front of camera 0
    uv = _project(cams, point)
    resized = cams.resize((24, 128))  # sy = 0.5, sx = 2
    torch.testing.assert_close(_project(resized, point), uv * torch.tensor([2.0, 0.5], dtype=torch.float64))
    cropped = cams.crop(5, 10, 30, 40)
    assert cropped.image_size == (30, 40)
    torch.testing.assert_close(_project(cropped, point), uv - torch.tensor([10.0, 5.0], dtype=torch.float64))
    with pytest.raises(Gen3RError, match="does not fit"):
        cams.crop(40, 0, 30, 40)


def test_resize_and_center_crop_follows_official_preprocessing():
    # fixture README: 120x136 frames resized to [112, 127] then centre-cropped to 112x112
    assert resize_and_center_crop_params((120, 136), (112, 112)) == ((112, 127), 0, 7)
    assert resize_and_center_crop_params((720, 1280), (560, 560)) == ((560, 996), 0, 218)
    k = torch.tensor([[100.0, 0, 68], [0, 100, 60], [0, 0, 1]])
    cams = Cameras(torch.eye(4)[None].double(), k[None], (120, 136))
    out = cams.resize_and_center_crop((120, 136), (112, 112))
    s = 112 / 120
    expected = torch.tensor([[100 * 127 / 136, 0, 68 * 127 / 136 - 7], [0, 100 * s, 60 * s], [0, 0, 1]],
                            dtype=torch.float64)
    torch.testing.assert_close(out.intrinsics[0], expected)
    assert out.image_size == (112, 112)
    # intrinsics given at half resolution are first brought to the source image size
    half = cams.resize((60, 68))
    torch.testing.assert_close(half.resize_and_center_crop((120, 136), (112, 112)).intrinsics, out.intrinsics)


def test_index_to_concat():
    cams = _random_cameras(1, frames=5)
    assert len(cams[1:3]) == 2 and len(cams[-1]) == 1 and len(cams.index([0, 4])) == 2
    torch.testing.assert_close(cams[-1].extrinsics[0], cams.extrinsics[4])
    assert Cameras.concat([cams[:2], cams[2:]]).allclose(cams)
    f32 = cams.to(torch.float32)
    assert f32.dtype == torch.float32 and f32.intrinsics.dtype == torch.float32
    assert repr(cams) == "Cameras(F=5, image_size=(48, 64), dtype=torch.float64, device=cpu)"
    e, k = cams.numpy()
    assert e.shape == (5, 4, 4) and k.shape == (5, 3, 3)
    with pytest.raises(Gen3RError, match="out of range"):
        cams.index(5)
    with pytest.raises(Gen3RError, match="different image sizes"):
        Cameras.concat([cams, cams.resize((10, 10))])


@pytest.mark.parametrize("kwargs, message", [
    (dict(extrinsics=torch.eye(4)[None, :2], intrinsics=torch.eye(3)), "shape"),
    (dict(extrinsics=torch.eye(4).expand(2, 4, 4), intrinsics=torch.eye(3).expand(3, 3, 3)), r"\(2, 3, 3\)"),
    (dict(extrinsics=torch.full((1, 4, 4), float("nan")), intrinsics=torch.eye(3)), "NaN"),
    (dict(extrinsics=torch.eye(4)[None], intrinsics=torch.tensor([[1.0, 0, 0], [0, float("inf"), 0], [0, 0, 1]])),
     "NaN or inf"),
    (dict(extrinsics=torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0]))[None], intrinsics=torch.eye(3)), "reflection"),
    (dict(extrinsics=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))[None], intrinsics=torch.eye(3)), "orthonormal"),
    (dict(extrinsics=torch.zeros(1, 3, 4), intrinsics=torch.eye(3)), "singular"),
    (dict(extrinsics=torch.eye(4)[None], intrinsics=torch.diag(torch.tensor([-1.0, 1.0, 1.0]))), "focal"),
    (dict(extrinsics=torch.eye(4)[None], intrinsics=torch.ones(3, 3)), "upper-triangular"),
    (dict(extrinsics=torch.eye(4)[None] + torch.tensor([[0.0] * 4] * 3 + [[0, 0, 1, 1]]), intrinsics=torch.eye(3)),
     "bottom row"),
])
def test_invalid_cameras_raise(kwargs, message):
    with pytest.raises(Gen3RError, match=message):
        Cameras(image_size=(4, 4), **kwargs)


def test_invalid_image_size():
    with pytest.raises(Gen3RError, match="image_size"):
        Cameras(torch.eye(4)[None], torch.eye(3), (0, 4))
    with pytest.raises(Gen3RError, match="image_size"):
        Cameras(torch.eye(4)[None], torch.eye(3), (4.5, 4))


# ---------------------------------------------------------------------------------------------- Plücker
def test_plucker_hand_example():
    k = torch.tensor([[[1.0, 0, 1], [0, 1.0, 1], [0, 0, 1]]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)[None]
    c2w[0, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    rays = plucker_rays(c2w, k, 2, 2)  # pixel (0, 0) centre -> direction (-0.5, -0.5, 1)
    d = torch.tensor([-0.5, -0.5, 1.0], dtype=torch.float64)
    d = d / (d.norm() + 1e-8)
    torch.testing.assert_close(rays[0, 3:, 0, 0], d)
    origin = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(rays[0, :3, 0, 0], torch.linalg.cross(origin, d))
    torch.testing.assert_close(rays[0, 3:, 1, 1], torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64) / math.sqrt(1.5))


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_plucker_identities(seed):
    cams = _random_cameras(seed, frames=2, size=(6, 8))
    rays = cams.plucker()
    assert rays.shape == (2, 6, 6, 8)
    moment, direction = rays[:, :3], rays[:, 3:]
    torch.testing.assert_close(direction.norm(dim=1), torch.ones(2, 6, 8, dtype=torch.float64), atol=1e-7, rtol=0)
    zeros = torch.zeros(2, 6, 8, dtype=torch.float64)
    torch.testing.assert_close((moment * direction).sum(1), zeros, atol=1e-9, rtol=0)
    # d x m is the point of the ray closest to the world origin: o - (o . d) d
    origin = cams.centers[:, :, None, None]
    closest = origin - (origin * direction).sum(1, keepdim=True) * direction
    torch.testing.assert_close(torch.linalg.cross(direction, moment, dim=1), closest, atol=1e-7, rtol=0)
    # each ray passes through its pixel centre: projecting o + d lands on (u + 0.5, v + 0.5)
    point = origin + direction
    cam = torch.einsum("fij,fjhw->fihw", cams.extrinsics[:, :3, :3], point) + cams.extrinsics[:, :3, 3, None, None]
    uvw = torch.einsum("fij,fjhw->fihw", cams.intrinsics, cam)
    v, u = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    torch.testing.assert_close(uvw[:, 0] / uvw[:, 2], (u + 0.5).double().expand(2, 6, 8), atol=1e-6, rtol=0)
    torch.testing.assert_close(uvw[:, 1] / uvw[:, 2], (v + 0.5).double().expand(2, 6, 8), atol=1e-6, rtol=0)


def test_plucker_at_other_resolution_rescales_intrinsics():
    cams = _random_cameras(5, size=(48, 64))
    torch.testing.assert_close(cams.plucker(24, 32), cams.resize((24, 32)).plucker())
    with pytest.raises(Gen3RError, match="same leading"):
        plucker_rays(cams.c2w, cams.intrinsics[:2], 4, 4)


def test_pack_plucker_hand_example():
    b, f, h, w = 2, 5, 1, 3
    values = torch.arange(f)[:, None] * 10 + torch.arange(6)[None]  # value = 10 * frame + channel
    plucker = values[None, :, :, None, None].expand(b, f, 6, h, w).float().clone()
    plucker[1] += 100
    packed = pack_plucker_for_dit(plucker)
    assert packed.shape == (b, 24, 2, h, 2 * w)
    for c in range(6):
        for k in range(4):
            assert packed[0, 4 * c + k, 0, 0, 0] == c  # latent frame 0: frame 0 four times
            assert packed[0, 4 * c + k, 1, 0, 0] == 10 * (1 + k) + c  # latent frame 1: frames 1..4
    torch.testing.assert_close(packed[..., :w], packed[..., w:])
    torch.testing.assert_close(packed[1], packed[0] + 100)
    with pytest.raises(Gen3RError, match="4k"):
        pack_plucker_for_dit(plucker[:, :4])
    with pytest.raises(Gen3RError, match="B, F, 6"):
        pack_plucker_for_dit(plucker[0])


# ---------------------------------------------------------------------------------------------- trajectories
K = torch.tensor([[100.0, 0, 64], [0, 100, 48], [0, 0, 1]])


def test_trajectory_presets_all_build():
    assert set(OFFICIAL_TRAJECTORIES) <= set(TRAJECTORY_PRESETS) and len(set(TRAJECTORY_PRESETS)) == 19
    assert tuple(TRAJECTORY_DESCRIPTIONS) == TRAJECTORY_PRESETS
    for name in TRAJECTORY_PRESETS:
        cams = make_trajectory(name, 5, K, scene_scale=2.0)
        assert len(cams) == 5 and cams.image_size == (96, 128)
        torch.testing.assert_close(cams.c2w[0], torch.eye(4), atol=1e-7, rtol=0)


def _end(name: str, **params) -> torch.Tensor:
    return make_trajectory(name, 9, K, scene_scale=2.0, **params).c2w[-1].double()


def test_official_trajectory_signs():
    assert _end("zoom_in")[2, 3] == pytest.approx(2.0)
    assert _end("zoom_out")[2, 3] == pytest.approx(-2.0)
    # yaw: arc_right turns the view axis (third column) towards +x (image right)
    assert _end("arc_right")[0, 2] == pytest.approx(math.sin(math.radians(15)), abs=1e-6)
    assert _end("arc_left")[0, 2] == pytest.approx(-math.sin(math.radians(15)), abs=1e-6)
    # pitch: translate_up turns the view axis towards -y (image up, since y points down)
    assert _end("translate_up")[1, 2] == pytest.approx(-math.sin(math.radians(15)), abs=1e-6)
    assert _end("translate_down")[1, 2] == pytest.approx(math.sin(math.radians(15)), abs=1e-6)
    for name in ("arc_left", "arc_right", "translate_up", "translate_down", "free"):
        assert _end(name)[:3, 3].abs().max() < 1e-6
    torch.testing.assert_close(_end("free"), torch.eye(4, dtype=torch.float64))
    ramp = make_trajectory("zoom_in", 5, K, scene_scale=2.0).centers[:, 2]
    torch.testing.assert_close(ramp, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))


def test_named_presets_directions():
    torch.testing.assert_close(_end("pan_right"), _end("arc_right"))
    torch.testing.assert_close(_end("tilt_up"), _end("translate_up"))
    torch.testing.assert_close(_end("dolly_in"), _end("zoom_in"))
    assert _end("pan_left", angle=30)[0, 2] == pytest.approx(-0.5, abs=1e-6)
    assert _end("truck_right")[0, 3] == pytest.approx(2.0) and _end("truck_left")[0, 3] == pytest.approx(-2.0)
    assert _end("pedestal_up")[1, 3] == pytest.approx(-2.0) and _end("pedestal_down")[1, 3] == pytest.approx(2.0)
    assert _end("dolly_out", distance=0.5)[2, 3] == pytest.approx(-0.5)
    for name in ("pan_left", "pan_right", "tilt_up", "tilt_down", "truck_left", "dolly_in", "pedestal_up"):
        rot = _end(name)[:3, :3]
        torch.testing.assert_close(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name, side", [("orbit_left", -1), ("orbit_right", 1)])
def test_orbit_looks_at_target(name, side):
    cams = make_trajectory(name, 7, K, scene_scale=3.0, angle=40)
    target = torch.tensor([0.0, 0.0, 3.0])
    c2w = cams.c2w
    to_target = target - c2w[:, :3, 3]
    torch.testing.assert_close(to_target.norm(dim=-1), torch.full((7,), 3.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(to_target / 3.0, c2w[:, :3, 2], atol=1e-5, rtol=0)  # view axis hits the target
    assert side * c2w[-1, 0, 3] > 0.5  # the camera travelled to that side
    assert c2w[:, 1, 3].abs().max() < 1e-6


def test_trajectory_options_and_errors():
    per_frame = make_trajectory("pan_left", 3, K.expand(3, 3, 3), image_size=(90, 120))
    assert per_frame.image_size == (90, 120)
    with pytest.raises(Gen3RError, match="pan_left, pan_right") as info:
        make_trajectory("spin", 5, K)
    assert "zoom_in" in str(info.value)
    with pytest.raises(Gen3RError, match="allowed: angle"):
        make_trajectory("pan_left", 5, K, distance=1.0)
    with pytest.raises(Gen3RError, match="num_frames"):
        make_trajectory("zoom_in", 0, K)
    with pytest.raises(Gen3RError, match="intrinsics"):
        make_trajectory("zoom_in", 4, K.expand(3, 3, 3))
    with pytest.raises(Gen3RError, match="finite"):
        make_trajectory("zoom_in", 4, K, distance=float("nan"))
    with pytest.raises(Gen3RError, match="official"):
        official_poses("pan_left", 4)


@pytest.mark.parametrize("frames,scale", [("abc", 1.0), (None, 1.0), (5, -2.0), (5, 0.0), (5, "x"), (5, float("nan"))])
def test_make_trajectory_rejects_bad_frames_and_scale(frames, scale):
    from gen3r.cameras import make_trajectory

    K = torch.tensor([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]])
    with pytest.raises(Gen3RError, match="num_frames|scene_scale"):
        make_trajectory("zoom_in", frames, K, scene_scale=scale)
