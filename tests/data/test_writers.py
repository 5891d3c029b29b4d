"""Writers: each layout read back with plain json / numpy / PIL / av and compared to the scene."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from gen3r.data.procedural import Scene, render_scene
from gen3r.data.writers import (
    check_scene,
    depth_to_png_mm,
    write_nerfstudio,
    write_npz,
    write_official,
    write_preview,
    write_re10k,
)
from gen3r.errors import Gen3RError

F, H, W = 4, 24, 32


@pytest.fixture(scope="module")
def indoor() -> Scene:
    return render_scene(3, F, H, W, kind="indoor", trajectory="orbit")


@pytest.fixture(scope="module")
def outdoor() -> Scene:
    return render_scene(4, F, H, W, kind="outdoor", trajectory="walk")


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _assert_image(path: Path, rgb: np.ndarray) -> None:
    img = _png(path)
    assert img.shape == rgb.shape and img.dtype == np.uint8
    assert np.abs(img / 255.0 - rgb).max() <= 0.5 / 255 + 1e-6


def _assert_ground_truth(path: Path, scene: Scene) -> None:
    with np.load(path) as gt:
        np.testing.assert_array_equal(gt["depth"], scene.depth)
        np.testing.assert_array_equal(gt["valid"], scene.valid)
        np.testing.assert_array_equal(gt["extrinsics"], scene.extrinsics)
        np.testing.assert_array_equal(gt["intrinsics"], scene.intrinsics)


def test_official_layout_round_trip(tmp_path: Path, indoor: Scene, outdoor: Scene) -> None:
    out = write_official(tmp_path / "procedural", {"train": [indoor, outdoor], "test": [outdoor]})
    for split, scenes in (("train", [indoor, outdoor]), ("test", [outdoor])):
        dirs = (out / f"{split}_videos_dirs.txt").read_text().splitlines()
        cams = (out / f"{split}_cameras_paths.txt").read_text().splitlines()
        caps = (out / f"{split}_captions_paths.txt").read_text().splitlines()
        assert len(dirs) == len(cams) == len(caps) == len(scenes)
        for images_dir, cam_path, cap_path, scene in zip(dirs, cams, caps, scenes, strict=True):
            images_dir, cam_path, cap_path = Path(images_dir), Path(cam_path), Path(cap_path)
            assert images_dir.is_absolute() and images_dir.parent == cam_path.parent == cap_path.parent
            frames = sorted(images_dir.iterdir())
            assert [p.name for p in frames] == [f"frame{i:05d}.png" for i in range(F)]
            transforms = json.loads(cam_path.read_text())
            assert len(transforms["frames"]) == F
            for i, frame in enumerate(transforms["frames"]):
                assert (frame["w"], frame["h"]) == (W, H)
                k = scene.intrinsics[i]
                np.testing.assert_allclose([frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"]],
                                           [k[0, 0], k[1, 1], k[0, 2], k[1, 2]], rtol=1e-7)
                w2c = np.linalg.inv(np.array(frame["transform_matrix"]))  # c2w OpenCV -> w2c
                np.testing.assert_allclose(w2c, scene.extrinsics[i], atol=1e-5)
                _assert_image(images_dir.parent / frame["file_path"], scene.rgb[i])
            assert cap_path.read_text().splitlines() == scene.captions
            _assert_ground_truth(images_dir.parent / "depth.npz", scene)


def test_official_transform_matrix_is_opencv_camera_to_world(tmp_path: Path, indoor: Scene) -> None:
    out = write_official(tmp_path / "ds", indoor)
    frame = json.loads((out / "train" / "scene_00000" / "transforms.json").read_text())["frames"][0]
    c2w = np.array(frame["transform_matrix"])
    # the world point of the principal pixel lies on the camera's +z axis (OpenCV: forward is +z)
    point = indoor.world_points[0, H // 2, W // 2].astype(np.float64)
    forward = c2w[:3, 2]
    offset = point - c2w[:3, 3]
    assert np.dot(offset, forward) == pytest.approx(indoor.depth[0, H // 2, W // 2], rel=1e-5)
    assert np.linalg.norm(np.cross(offset / np.linalg.norm(offset), forward)) < 1e-5


def test_re10k_round_trip(tmp_path: Path, indoor: Scene, outdoor: Scene) -> None:
    out = write_re10k(tmp_path / "re10k", [indoor, outdoor], split="test")
    for i, scene in enumerate([indoor, outdoor]):
        txt = out / "test" / f"scene_{i:05d}.txt"
        lines = txt.read_text().splitlines()
        assert lines[0] == f"procedural://gen3r/seed={scene.seed}/kind={scene.kind}/trajectory={scene.trajectory}"
        table = np.loadtxt(txt, skiprows=1)
        assert table.shape == (F, 19)
        np.testing.assert_array_equal(table[:, 5:7], 0)
        for row, k, w2c in zip(table, scene.intrinsics, scene.extrinsics, strict=True):
            np.testing.assert_allclose(row[1:5], [k[0, 0] / W, k[1, 1] / H, k[0, 2] / W, k[1, 2] / H], rtol=1e-7)
            np.testing.assert_allclose(row[7:].reshape(3, 4), w2c[:3], atol=1e-5)
        stamps = table[:, 0].astype(int)
        assert stamps[0] == 0 and (np.diff(stamps) > 0).all()
        for stamp, rgb in zip(stamps, scene.rgb, strict=True):
            _assert_image(out / "test" / "frames" / f"scene_{i:05d}" / f"{stamp}.png", rgb)
        _assert_ground_truth(out / "test" / "depth" / f"scene_{i:05d}.npz", scene)


def test_nerfstudio_round_trip(tmp_path: Path, outdoor: Scene) -> None:
    out = write_nerfstudio(tmp_path / "ns", outdoor)
    transforms = json.loads((out / "transforms.json").read_text())
    assert transforms["camera_model"] == "OPENCV" and (transforms["w"], transforms["h"]) == (W, H)
    for i, frame in enumerate(transforms["frames"]):
        c2w_gl = np.array(frame["transform_matrix"])
        c2w_cv = c2w_gl @ np.diag([1.0, -1.0, -1.0, 1.0])
        np.testing.assert_allclose(np.linalg.inv(c2w_cv), outdoor.extrinsics[i], atol=1e-5)
        # OpenGL: the camera looks along its -z axis and its +y axis points up (world +z up here)
        point = outdoor.world_points[i, H // 2, W // 2].astype(np.float64)
        assert np.dot(point - c2w_gl[:3, 3], -c2w_gl[:3, 2]) > 0
        assert c2w_gl[2, 1] > 0
        _assert_image(out / frame["file_path"], outdoor.rgb[i])
        depth_mm = _png(out / frame["depth_file_path"])
        assert depth_mm.dtype == np.uint16
        expected = np.where(outdoor.valid[i], outdoor.depth[i] * 1000.0, 0.0)
        assert np.abs(depth_mm - expected).max() <= 0.5 + 1e-3
        assert (depth_mm[~outdoor.valid[i]] == 0).all()
    _assert_ground_truth(out / "depth.npz", outdoor)


def test_depth_png_clips_far_values() -> None:
    mm = depth_to_png_mm(np.array([[0.0, 1.2344, 65.535, 70.0]], np.float32))
    np.testing.assert_array_equal(mm, [[0, 1234, 65535, 0]])


def test_npz_round_trip(tmp_path: Path, indoor: Scene) -> None:
    out = write_npz(tmp_path / "npz", indoor)
    with np.load(out / "scene.npz") as data:
        for name in ("rgb", "depth", "world_points", "valid", "extrinsics", "intrinsics"):
            np.testing.assert_array_equal(data[name], indoor[name])
        assert data["captions"].tolist() == indoor.captions
        assert int(data["seed"]) == 3 and str(data["kind"]) == "indoor" and str(data["trajectory"]) == "orbit"


def test_preview_mp4_decodes(tmp_path: Path) -> None:
    scene = render_scene(0, 6, 15, 21)  # odd sizes are padded to even
    write_preview(tmp_path / "p.mp4", scene, fps=12)
    with av.open(str(tmp_path / "p.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (16, 22, 3)
    assert np.abs(frames[0][:15, :21] / 255.0 - scene.rgb[0]).mean() < 0.08


def test_existing_output_needs_overwrite(tmp_path: Path, indoor: Scene, outdoor: Scene) -> None:
    out = tmp_path / "ds"
    write_npz(out, indoor)
    with pytest.raises(Gen3RError, match="overwrite"):
        write_npz(out, outdoor)
    with pytest.raises(Gen3RError, match="overwrite"):
        write_official(out, outdoor)
    write_nerfstudio(out, outdoor, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["depth.npz", "depths", "images", "transforms.json"]


def test_bad_scene_leaves_no_output(tmp_path: Path, indoor: Scene) -> None:
    bad = replace(indoor, depth=np.where(indoor.valid, np.nan, 0.0).astype(np.float32))
    with pytest.raises(Gen3RError, match="NaN"):
        write_official(tmp_path / "ds", [indoor, bad])
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary folder
    with pytest.raises(Gen3RError, match="shape"):
        check_scene(replace(indoor, depth=indoor.depth[:, :-1]))
    with pytest.raises(Gen3RError, match=r"\(F, H, W, 3\)"):
        write_re10k(tmp_path / "re", replace(indoor, rgb=indoor.rgb[..., 0]))
    assert list(tmp_path.iterdir()) == []
