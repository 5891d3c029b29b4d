"""Exporters round-trip through independent readers (plyfile, trimesh, PyAV, numpy)."""

from __future__ import annotations

import io
import os

import av
import numpy as np
import pytest
import torch
import trimesh
from plyfile import PlyData

from gen3r.atomic import atomic_dir, atomic_path
from gen3r.errors import Gen3RError
from gen3r.io.exporters import (
    camera_frustum_segments,
    colorize_depth,
    write_depth_npz,
    write_glb,
    write_images,
    write_json,
    write_ply,
    write_video,
)


def _cameras(num: int = 3, h: int = 32, w: int = 48):
    from gen3r.cameras import Cameras

    ext = torch.eye(4).repeat(num, 1, 1)
    ext[:, 0, 3] = torch.arange(num, dtype=torch.float32) * 0.5  # cameras move along -x in world
    K = torch.tensor([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1]]).repeat(num, 1, 1)
    return Cameras(extrinsics=ext, intrinsics=K, image_size=(h, w))


def test_ply_roundtrip_plyfile(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 3)).astype(np.float32)
    cols = rng.random((500, 3)).astype(np.float32)
    write_ply(tmp_path / "p.ply", pts, cols)
    ply = PlyData.read(str(tmp_path / "p.ply"))
    v = ply["vertex"]
    got = np.stack([v["x"], v["y"], v["z"]], 1)
    np.testing.assert_array_equal(got, pts)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), (cols * 255).astype(np.uint8))
    assert ply.text is False  # binary


def test_ply_rejects_nan_and_leaves_nothing(tmp_path):
    pts = np.zeros((4, 3), np.float32)
    pts[1, 2] = np.nan
    with pytest.raises(Gen3RError, match="NaN"):
        write_ply(tmp_path / "bad.ply", pts)
    assert list(tmp_path.iterdir()) == []


def test_video_roundtrip_pyav(tmp_path):
    frames = np.zeros((6, 32, 48, 3), np.float32)
    for i in range(6):
        frames[i, :, : 8 * (i + 1)] = [1.0, 0.5, 0.0]
    write_video(tmp_path / "v.mp4", frames, fps=12)
    with av.open(str(tmp_path / "v.mp4")) as c:
        stream = c.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert stream.average_rate == 12
    assert len(decoded) == 6 and decoded[0].shape == (32, 48, 3)
    err = np.abs(decoded[3].astype(np.float32) / 255 - frames[3]).mean()
    assert err < 0.03  # lossy H.264, but close


def test_video_odd_size_padded(tmp_path):
    write_video(tmp_path / "odd.mp4", np.full((2, 31, 33, 3), 0.5, np.float32))
    with av.open(str(tmp_path / "odd.mp4")) as c:
        f = next(c.decode(video=0))
    assert (f.height, f.width) == (32, 34)


def test_depth_npz_and_colorize(tmp_path):
    depth = np.linspace(1, 5, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    mask = depth < 4.5
    write_depth_npz(tmp_path / "d.npz", depth, depth * 0 + 2, mask)
    data = np.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(data["depth"], depth)
    np.testing.assert_array_equal(data["mask"], mask)
    rgb = colorize_depth(depth, mask)
    assert rgb.shape == (2, 8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb[~mask] == 0).all()
    near, far = rgb[0, 0, 0], rgb[1, 4, 0]
    assert near[0] > near[2] and far[2] > far[0]  # near warm, far cool


def test_glb_roundtrip_trimesh(tmp_path):
    cams = _cameras()
    pts = np.random.default_rng(1).normal(size=(200, 3)).astype(np.float32)
    cols = np.full((200, 3), 0.25, np.float32)
    write_glb(tmp_path / "s.glb", pts, cols, cams)
    scene = trimesh.load(str(tmp_path / "s.glb"), file_type="glb")
    clouds = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    paths = [g for g in scene.geometry.values() if isinstance(g, trimesh.path.Path3D)]
    assert len(clouds) == 1 and len(paths) == 1
    np.testing.assert_allclose(np.sort(clouds[0].vertices, 0), np.sort(pts, 0), atol=1e-6)
    # camera centres (c2w translation) appear among the frustum vertices
    centres = cams.c2w[:, :3, 3].numpy()
    for c in centres:
        assert np.min(np.linalg.norm(paths[0].vertices - c, axis=1)) < 1e-5


def test_frustum_geometry_matches_intrinsics():
    cams = _cameras(num=1)
    seg = camera_frustum_segments(cams, scale=2.0)
    assert seg.shape == (8, 2, 3)
    corners = seg[0::2, 1]
    # image corner (0,0) at depth 2: x = (0 - cx)/fx*2, y = (0 - cy)/fy*2
    np.testing.assert_allclose(corners[0], [-24 / 40 * 2, -16 / 40 * 2, 2.0], atol=1e-9)


def test_images_and_json(tmp_path):
    names = write_images(tmp_path / "img", np.zeros((2, 4, 4, 3), np.float32))
    assert names == ["frame_00000.png", "frame_00001.png"]
    write_json(tmp_path / "c.json", {"a": np.float32(1.5), "b": np.arange(2)})
    assert (tmp_path / "c.json").read_text().count("1.5") == 1


def test_atomic_path_cleans_up_on_error(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
    assert (out / "a.txt").read_text() == "x"
    with pytest.raises(Gen3RError, match="not empty"), atomic_dir(out):
        pass
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("y")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_export_scene_writes_every_file(tmp_path):
    from gen3r.io.results import EXPORTED_FILES, export_scene

    cams = _cameras(num=5, h=32, w=48)
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 2, size=(5, 32, 48)).astype(np.float32)
    from gen3r.geometry import unproject_depth

    wp = unproject_depth(depth, cams.extrinsics, cams.intrinsics, min_max_depth_mask=False)
    rgb = rng.random((5, 32, 48, 3)).astype(np.float32)
    out = export_scene(tmp_path / "res", rgb=rgb, depth=depth, world_points=wp, cameras=cams,
                       settings={"seed": 1})
    for name in EXPORTED_FILES:
        assert (out / name).exists(), name
    v = PlyData.read(str(out / "points.ply"))["vertex"]
    assert 0 < len(v) <= 5 * 32 * 48
    from gen3r.cameras import load_cameras

    back = load_cameras(out / "cameras.json")
    assert back.allclose(cams, atol=1e-5)
    back_ns = load_cameras(out / "transforms.json")
    assert back_ns.allclose(cams, atol=1e-4)
    back_colmap = load_cameras(out / "colmap")
    assert back_colmap.allclose(cams, atol=1e-4)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_glb_stream_readable_bytes(tmp_path):
    write_glb(tmp_path / "x.glb", np.zeros((3, 3), np.float32))
    data = (tmp_path / "x.glb").read_bytes()
    assert data[:4] == b"glTF"
    trimesh.load(io.BytesIO(data), file_type="glb")


def test_atomic_writes_use_normal_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("y")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_glb_materials_are_unlit(tmp_path):
    """Points have no normals: the materials are KHR_materials_unlit so viewers show the vertex colours."""
    import json
    import struct

    write_glb(tmp_path / "u.glb", np.random.rand(10, 3), np.random.rand(10, 3))
    data = (tmp_path / "u.glb").read_bytes()
    magic, _, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and length == len(data)
    size, kind = struct.unpack_from("<I4s", data, 12)
    doc = json.loads(data[20:20 + size])
    assert kind == b"JSON" and size % 4 == 0 and "KHR_materials_unlit" in doc["extensionsUsed"]
    assert all("KHR_materials_unlit" in m["extensions"] for m in doc["materials"])
    cloud = next(g for g in trimesh.load(tmp_path / "u.glb", force="scene").geometry.values())
    assert len(cloud.vertices) == 10


def test_temporaries_of_killed_writers_are_swept(tmp_path):
    import subprocess
    import sys

    from gen3r.atomic import atomic_dir, atomic_path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale_dir = tmp_path / f".out.{dead}.abcd1234.tmp"
    stale_dir.mkdir()
    (stale_dir / "rgb.mp4").write_bytes(b"half")
    stale_file = tmp_path / f".points.ply.{dead}.x1y2z3w4.tmp.ply"
    stale_file.write_bytes(b"half")
    live = tmp_path / f".other.{os.getpid()}.abcd1234.tmp"  # a live writer's (this process) stays
    live.mkdir()
    keep = tmp_path / ".hidden.tmp"  # not ours
    keep.write_text("x")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("1")
    assert not stale_dir.exists() and not stale_file.exists() and live.exists() and keep.exists()
    assert (tmp_path / "out" / "a").read_text() == "1"
    with atomic_path(tmp_path / "f.txt") as tmp:
        assert f".{os.getpid()}." in tmp.name
        tmp.write_text("ok")
