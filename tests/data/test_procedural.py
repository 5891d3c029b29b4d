"""Procedural renderer: determinism, conventions, exact geometry, trajectories, primitives."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gen3r.data.procedural import KINDS, TRAJECTORIES, Scene, render_scene, sample_layout, sample_trajectory
from gen3r.data.procedural import render as render_module
from gen3r.data.procedural.layout import GROUND_RADIUS, MAX_INDOOR_OBJECT_HEIGHT, WALL_MARGIN
from gen3r.data.procedural.primitives import Box, Cylinder, Sphere
from gen3r.data.procedural.textures import PATTERNS, Texture
from gen3r.errors import Gen3RError

F, H, W = 5, 32, 32
COMBOS = [(k, t) for k in KINDS for t in TRAJECTORIES]


@pytest.fixture(scope="module")
def scenes() -> dict[tuple[str, str], Scene]:
    return {(k, t): render_scene(11, F, H, W, kind=k, trajectory=t) for k, t in COMBOS}


def unproject_integer_grid(depth: np.ndarray, w2c: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Independent numpy unprojection at integer pixel coordinates: X = R^T (d K^-1 [u, v, 1] - t)."""
    f, h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)  # (H, W, 3)
    out = np.empty((f, h, w, 3))
    for i in range(f):
        cam = (pix @ np.linalg.inv(k[i].astype(np.float64)).T) * depth[i, ..., None].astype(np.float64)
        rot, t = w2c[i, :3, :3].astype(np.float64), w2c[i, :3, 3].astype(np.float64)
        out[i] = (cam - t) @ rot
    return out


def camera_centres(w2c: np.ndarray) -> np.ndarray:
    rot, t = w2c[:, :3, :3].astype(np.float64), w2c[:, :3, 3].astype(np.float64)
    return -np.einsum("fji,fj->fi", rot, t)


# ------------------------------------------------------------------------------- basic behaviour

def test_same_seed_same_arrays_and_other_seed_differs() -> None:
    a = render_scene(5, 3, 24, 20, kind="random", trajectory="random")
    b = render_scene(5, 3, 24, 20, kind="random", trajectory="random")
    c = render_scene(6, 3, 24, 20, kind="random", trajectory="random")
    for name in ("rgb", "depth", "world_points", "valid", "extrinsics", "intrinsics"):
        np.testing.assert_array_equal(a[name], b[name])
    assert a.caption == b.caption and a.captions == b.captions
    assert not np.array_equal(a.rgb, c.rgb)


@pytest.mark.parametrize("kind,trajectory", COMBOS)
def test_shapes_dtypes_ranges(scenes: dict, kind: str, trajectory: str) -> None:
    s = scenes[(kind, trajectory)]
    assert s.rgb.shape == (F, H, W, 3) and s.rgb.dtype == np.float32
    assert s.depth.shape == (F, H, W) and s.depth.dtype == np.float32
    assert s.world_points.shape == (F, H, W, 3) and s.world_points.dtype == np.float32
    assert s.valid.shape == (F, H, W) and s.valid.dtype == np.bool_
    assert s.extrinsics.shape == (F, 4, 4) and s.intrinsics.shape == (F, 3, 3)
    assert s.kind == kind and s.trajectory == trajectory
    assert np.isfinite(s.rgb).all() and s.rgb.min() >= 0.0 and s.rgb.max() <= 1.0
    assert s.rgb.std() > 0.02  # shaded and textured, not a flat image
    assert (s.depth[s.valid] > 0).all()
    assert (s.depth[~s.valid] == 0).all() and (s.world_points[~s.valid] == 0).all()
    rot = s.extrinsics[:, :3, :3].astype(np.float64)
    np.testing.assert_allclose(rot @ np.transpose(rot, (0, 2, 1)), np.broadcast_to(np.eye(3), (F, 3, 3)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-6)
    np.testing.assert_array_equal(s.extrinsics[:, 3], np.broadcast_to([0, 0, 0, 1], (F, 4)))
    fx = (W / 2) / np.tan(np.radians(60) / 2)
    np.testing.assert_allclose(s.intrinsics[0], [[fx, 0, W / 2], [0, fx, H / 2], [0, 0, 1]], rtol=1e-6)
    assert isinstance(s.caption, str) and s.caption == s.captions[0] and len(s.captions) >= 3


@pytest.mark.parametrize("kind,trajectory", COMBOS)
def test_unprojecting_depth_reproduces_world_points(scenes: dict, kind: str, trajectory: str) -> None:
    s = scenes[(kind, trajectory)]
    points = unproject_integer_grid(s.depth, s.extrinsics, s.intrinsics)
    assert np.abs(points - s.world_points)[s.valid].max() < 1e-4


def test_gen3r_geometry_unproject_depth_reproduces_world_points(scenes: dict) -> None:
    from gen3r.geometry import unproject_depth

    for kind in KINDS:
        s = scenes[(kind, "orbit")]
        points = unproject_depth(s.depth, s.extrinsics, s.intrinsics)
        assert np.abs(points - s.world_points)[s.valid].max() < 1e-4


def test_depth_is_z_depth_in_camera_frame(scenes: dict) -> None:
    s = scenes[("outdoor", "walk")]
    homo = np.concatenate([s.world_points, np.ones((F, H, W, 1), np.float32)], axis=-1).astype(np.float64)
    cam = np.einsum("fij,fhwj->fhwi", s.extrinsics.astype(np.float64), homo)
    np.testing.assert_allclose(cam[..., 2][s.valid], s.depth[s.valid], rtol=1e-5, atol=1e-5)
    ray_length = np.linalg.norm(cam[..., :3], axis=-1)
    assert (ray_length[s.valid] >= s.depth[s.valid] - 1e-5).all()
    assert (ray_length[s.valid] > s.depth[s.valid] + 1e-3).any()  # off-centre pixels: length > z


def test_indoor_every_pixel_valid_and_inside_room(scenes: dict) -> None:
    for trajectory in TRAJECTORIES:
        s = scenes[("indoor", trajectory)]
        assert s.valid.all()
        z = s.world_points[..., 2]
        assert z.min() == pytest.approx(0.0, abs=1e-5)  # the floor z = 0 is in view, nothing below it
        centres = camera_centres(s.extrinsics)
        assert (centres[:, 2] > MAX_INDOOR_OBJECT_HEIGHT).all()
        # every camera sees surfaces all around it at >= WALL_MARGIN: no camera is in or at a wall
        assert s.depth.min() > 0.2


def test_outdoor_sky_is_invalid_and_ground_is_valid(scenes: dict) -> None:
    for trajectory in TRAJECTORIES:
        s = scenes[("outdoor", trajectory)]
        assert 0.2 < s.valid.mean() < 0.98  # sky and ground both in view
        # world direction of every pixel ray, from the cameras alone
        u, v = np.meshgrid(np.arange(W), np.arange(H))
        pix = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64)
        dirs = np.einsum("fji,hwj->fhwi", s.extrinsics[:, :3, :3].astype(np.float64),
                         pix @ np.linalg.inv(s.intrinsics[0].astype(np.float64)).T)
        centres = camera_centres(s.extrinsics)[:, None, None, :]
        t_ground = -centres[..., 2] / np.where(dirs[..., 2] < 0, dirs[..., 2], -1e-12)
        ground = centres + t_ground[..., None] * dirs
        reaches_ground = (dirs[..., 2] < 0) & (np.hypot(ground[..., 0], ground[..., 1]) <= GROUND_RADIUS)
        # valid == the ray reaches the ground disc, or it hits an object (a point above the ground) first
        assert s.valid[reaches_ground].all()
        assert (s.world_points[s.valid & ~reaches_ground][:, 2] > 1e-3).all()
        assert (~s.valid & ~reaches_ground).any()
        # valid points are on or above the ground, within the ground disc
        pts = s.world_points[s.valid]
        assert pts[:, 2].min() > -1e-4 and np.hypot(pts[:, 0], pts[:, 1]).max() <= GROUND_RADIUS + 1e-3
        # sky pixels are bright blue-ish/gray sky colours, not black
        assert s.rgb[~s.valid].min() > 0.2


def test_chunked_rendering_matches_single_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = render_scene(2, 4, 16, 12, kind="outdoor", trajectory="orbit")
    monkeypatch.setattr(render_module, "_RAYS_PER_CHUNK", 16 * 12 + 5)  # one frame per chunk
    chunked = render_scene(2, 4, 16, 12, kind="outdoor", trajectory="orbit")
    for name in ("rgb", "depth", "world_points", "valid"):
        np.testing.assert_array_equal(whole[name], chunked[name])


def test_single_frame_and_non_square() -> None:
    s = render_scene(0, 1, 10, 30, kind="indoor", trajectory="orbit", fov_deg=90.0)
    assert s.rgb.shape == (1, 10, 30, 3)
    assert s.intrinsics[0, 0, 0] == pytest.approx(15.0)
    assert s.intrinsics[0, 0, 2] == 15.0 and s.intrinsics[0, 1, 2] == 5.0


# ------------------------------------------------------------------------------ captions, API

_SHAPES = re.compile(r"\b(box|cube|sphere|cylinder|pillar)\b")


@pytest.mark.parametrize("count", [0, 1, 3, 6])
def test_caption_names_every_object(count: int) -> None:
    for kind in KINDS:
        s = render_scene(count, 1, 8, 8, kind=kind, num_objects=count)
        main = s.caption
        assert len(_SHAPES.findall(main)) == count
        assert ("room" in main) if kind == "indoor" else ("sky" in main)


def test_getitem_and_cameras(scenes: dict) -> None:
    s = scenes[("indoor", "pan")]
    assert s["rgb"] is s.rgb and s["caption"] == s.caption
    with pytest.raises(KeyError):
        s["nope"]
    cams = s.cameras
    assert cams.image_size == (H, W)
    torch.testing.assert_close(cams.extrinsics, torch.from_numpy(s.extrinsics))
    torch.testing.assert_close(cams.intrinsics, torch.from_numpy(s.intrinsics))


@pytest.mark.parametrize("kwargs", [
    {"seed": -1}, {"num_frames": 0}, {"height": 0}, {"width": 2.5}, {"kind": "moon"},
    {"trajectory": "fly"}, {"fov_deg": 0.0}, {"fov_deg": 180.0}, {"num_objects": -1}, {"num_objects": 1000},
    {"seed": True},
])
def test_bad_arguments_raise(kwargs: dict) -> None:
    args = {"seed": 0, "num_frames": 2, "height": 8, "width": 8, **kwargs}
    with pytest.raises(Gen3RError):
        render_scene(**args)


# -------------------------------------------------------------------------------- trajectories

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("trajectory", TRAJECTORIES)
def test_trajectories_stay_in_bounds_and_look_at_content(seed: int, trajectory: str) -> None:
    for kind in KINDS:
        rng = np.random.default_rng(seed)
        layout = sample_layout(rng, kind, None)
        w2c = sample_trajectory(rng, layout, trajectory, 9)
        centres = camera_centres(w2c)
        forward = w2c[:, 2, :3]
        to_content = layout.content_centre - centres
        cosine = np.einsum("fi,fi->f", forward, to_content) / np.linalg.norm(to_content, axis=1)
        angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        if kind == "indoor":
            size = layout.background.size
            assert (centres[:, :2] >= WALL_MARGIN - 1e-9).all()
            assert (centres[:, :2] <= size[:2] - WALL_MARGIN + 1e-9).all()
            assert (centres[:, 2] >= MAX_INDOOR_OBJECT_HEIGHT).all() and (centres[:, 2] <= size[2] - 0.3).all()
        else:
            assert (centres[:, 2] > 0.5).all()
            assert (np.hypot(centres[:, 0], centres[:, 1]) > layout.object_radius + 1.0).all()
        if trajectory in ("walk", "orbit") or kind == "outdoor":
            assert angle.max() < 40.0  # content within the 60-degree view
        assert (forward[:, 2] < 0.2).all()  # never looking up at the ceiling / sky


def test_outdoor_objects_are_seen() -> None:
    for seed in range(4):
        for trajectory in ("walk", "orbit"):
            s = render_scene(seed, 3, 32, 32, kind="outdoor", trajectory=trajectory)
            above_ground = s.valid & (s.world_points[..., 2] > 1e-3)
            assert above_ground.mean(axis=(1, 2)).min() > 0.005


# ---------------------------------------------------------------------------------- primitives

_TEX = Texture("plain", ("red",))


def _ray(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return o.reshape(3, 1, 1), d.reshape(3, 1, 1)


def test_analytic_hits() -> None:
    sphere = Sphere(np.zeros(3), 1.0, _TEX)
    assert sphere.intersect(*_ray(np.array([0, 0, -5.0]), np.array([0, 0, 1.0])))[0, 0] == pytest.approx(4.0)
    assert sphere.intersect(*_ray(np.array([0, 0, -5.0]), np.array([0, 0, 2.0])))[0, 0] == pytest.approx(2.0)
    assert np.isinf(sphere.intersect(*_ray(np.array([0, 2.0, -5.0]), np.array([0, 0, 1.0])))[0, 0])
    box = Box(np.zeros(3), np.full(3, 0.5), np.pi / 4, _TEX)
    assert box.intersect(*_ray(np.array([-5.0, 0, 0]), np.array([1.0, 0, 0])))[0, 0] == pytest.approx(5 - np.sqrt(0.5))
    cyl = Cylinder(np.zeros(3), 0.5, 2.0, _TEX)
    assert cyl.intersect(*_ray(np.array([-3.0, 0, 1.0]), np.array([1.0, 0, 0])))[0, 0] == pytest.approx(2.5)
    assert cyl.intersect(*_ray(np.array([0.2, 0, 5.0]), np.array([0, 0, -1.0])))[0, 0] == pytest.approx(3.0)
    assert np.isinf(cyl.intersect(*_ray(np.array([-3.0, 0, 2.5]), np.array([1.0, 0, 0])))[0, 0])
    normal, albedo = cyl.shade(np.array([[0.2], [0.0], [2.0]]))
    np.testing.assert_allclose(normal[:, 0], [0, 0, 1])
    np.testing.assert_allclose(albedo[:, 0], Texture("plain", ("red",)).sample(np.zeros(1), np.zeros(1))[:, 0])


def _inside(obj, p: np.ndarray) -> bool:
    if isinstance(obj, Sphere):
        return float(np.linalg.norm(p - obj.centre)) < obj.radius
    if isinstance(obj, Box):
        c, s = np.cos(obj.yaw), np.sin(obj.yaw)
        q = p - obj.centre
        local = np.array([c * q[0] + s * q[1], c * q[1] - s * q[0], q[2]])
        return bool((np.abs(local) < obj.half).all())
    q = p - obj.base
    return bool(np.hypot(q[0], q[1]) < obj.radius and 0 < q[2] < obj.height)


def _on_surface(obj, p: np.ndarray) -> float:
    """Distance-like residual of ``p`` from the surface of ``obj``."""
    if isinstance(obj, Sphere):
        return abs(float(np.linalg.norm(p - obj.centre)) - obj.radius)
    if isinstance(obj, Box):
        c, s = np.cos(obj.yaw), np.sin(obj.yaw)
        q = p - obj.centre
        local = np.array([c * q[0] + s * q[1], c * q[1] - s * q[0], q[2]])
        return abs(float(np.max(np.abs(local) - obj.half)))
    q = p - obj.base
    return abs(float(max(np.hypot(q[0], q[1]) - obj.radius, -q[2], q[2] - obj.height)))


coords = st.floats(-1.0, 1.0)


@settings(max_examples=150, deadline=None)
@given(shape=st.sampled_from(["sphere", "box", "cylinder"]), size=st.tuples(*[st.floats(0.2, 1.5)] * 3),
       yaw=st.floats(0, 3.2), target=st.tuples(coords, coords, coords),
       direction=st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: np.linalg.norm(v) > 0.1),
       distance=st.floats(4.0, 20.0), scale=st.floats(0.1, 3.0))
def test_rays_aimed_at_an_object_hit_its_surface_first(shape, size, yaw, target, direction, distance, scale) -> None:
    centre = np.array([0.3, -0.2, 0.1])
    if shape == "sphere":
        obj = Sphere(centre, size[0], _TEX)
        inner = centre + 0.9 * size[0] * np.array(target) / max(1.0, np.linalg.norm(target))
    elif shape == "box":
        obj = Box(centre, np.array(size), yaw, _TEX)
        c, s = np.cos(yaw), np.sin(yaw)
        local = 0.9 * np.array(target) * np.array(size)
        inner = centre + np.array([c * local[0] - s * local[1], s * local[0] + c * local[1], local[2]])
    else:
        obj = Cylinder(centre, size[0], size[1], _TEX)
        xy = 0.9 * size[0] * np.array(target[:2]) / max(1.0, np.linalg.norm(target[:2]))
        inner = centre + np.array([xy[0], xy[1], (0.05 + 0.9 * (target[2] + 1) / 2) * size[1]])
    unit = np.array(direction) / np.linalg.norm(direction)
    origin = inner - distance * unit
    d = unit * scale  # directions need not be unit length
    t = obj.intersect(*_ray(origin, d))[0, 0]
    assert np.isfinite(t) and 0 < t <= distance / scale + 1e-9
    hit = origin + t * d
    assert _on_surface(obj, hit) < 1e-7
    assert not _inside(obj, origin + 0.999 * t * d)  # nothing of the object before the hit
    normal, _ = obj.shade(hit.reshape(3, 1))
    assert np.linalg.norm(normal[:, 0]) == pytest.approx(1.0)
    assert np.dot(normal[:, 0], unit) < 1e-6  # the visible side faces the ray


@pytest.mark.parametrize("pattern", PATTERNS)
def test_textures_are_in_range_and_vary(pattern: str) -> None:
    colours = ("red", "white", "blue", "green") if pattern == "palette" else ("red", "white")
    tex = Texture(pattern, colours[:1] if pattern in ("plain", "noise") else colours, scale=0.3, angle=0.5, seed=3)
    u, v = np.meshgrid(np.linspace(-2, 2, 40), np.linspace(-2, 2, 40))
    rgb = tex.sample(u.ravel(), v.ravel())
    assert rgb.shape == (3, 1600) and np.isfinite(rgb).all() and rgb.min() >= 0.0
    if pattern == "plain":
        assert np.ptp(rgb, axis=1).max() == 0
    else:
        assert np.ptp(rgb, axis=1).max() > 0.1
    np.testing.assert_array_equal(rgb, tex.sample(u.ravel(), v.ravel()))


def test_objects_cast_shadows_on_the_ground() -> None:
    from gen3r.data.procedural import Layout, intrinsics_from_fov, look_at, render_views
    from gen3r.data.procedural.primitives import Ground
    from gen3r.data.procedural.textures import colour

    layout = Layout(kind="outdoor", background=Ground(GROUND_RADIUS, Texture("plain", ("gray",))),
                    objects=(Sphere(np.array([0.0, 0.0, 1.0]), 0.5, _TEX),), light=np.array([0.0, 0.0, 1.0]),
                    ambient=0.3, sky="hazy", content_centre=np.zeros(3), object_radius=1.0)
    w2c = look_at(np.array([[2.5, 0.5, 2.5]]), np.zeros((1, 3)))
    rgb, _, points, valid = render_views(layout, w2c, intrinsics_from_fov(64, 64, 70.0), 64, 64)
    ground = valid[0] & (np.abs(points[0, ..., 2]) < 1e-6)
    radius = np.hypot(points[0, ..., 0], points[0, ..., 1])
    gray = colour("gray")
    under = ground & (radius < 0.48)  # light straight down: the shadow is the disc below the sphere
    around = ground & (radius > 0.52)
    assert under.sum() > 20 and around.sum() > 100
    np.testing.assert_allclose(rgb[0][under], np.broadcast_to(gray * 0.3, (under.sum(), 3)), atol=1e-6)
    np.testing.assert_allclose(rgb[0][around], np.broadcast_to(gray, (around.sum(), 3)), atol=1e-6)
