"""Audit of issue 4 (CLI): every output file of `gen3r generate` read back with independent readers
(plyfile, trimesh, PyAV, plain-text COLMAP parsing, JSON), and "nothing written" on failures,
including no temporary sibling folders left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import trimesh
from PIL import Image
from plyfile import PlyData
from scipy.spatial.transform import Rotation

from gen3r.cli.main import main
from tests._tiny import TINY_CHECKPOINT

SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "1", "--guidance", "1"]


@pytest.fixture(scope="module")
def image(tmp_path_factory, tiny_inputs):
    folder = tmp_path_factory.mktemp("audit45_img")
    path = folder / "first.png"
    Image.fromarray(tiny_inputs["source_frames_uint8"][0].numpy()).save(path)
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory, image):
    root = tmp_path_factory.mktemp("audit45_gen")
    out = root / "out"
    code = main(["generate", str(image), "--camera", "orbit_left", "--prompt", "a courtyard", "--seed", "3",
                 "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out), *SMALL])
    assert code == 0
    return out


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_only_the_output_folder_is_created(generated):
    assert _siblings(generated.parent) == ["out"]  # no temp folder left next to it


def test_rgb_and_depth_videos_decode_with_pyav(generated):
    for name in ("rgb.mp4", "depth.mp4"):
        with av.open(str(generated / name)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 5 and frames[0].shape == (112, 112, 3), name


def test_depth_npz_contents(generated):
    with np.load(generated / "depth.npz") as data:
        depth = data["depth"]
        assert depth.shape == (5, 112, 112) and depth.dtype == np.float32 and np.isfinite(depth).all()
        assert data["mask"].dtype == bool and data["mask"].shape == depth.shape
        assert data["confidence"].shape == depth.shape


def test_ply_and_glb_read_with_independent_readers(generated):
    ply = PlyData.read(str(generated / "points.ply"))
    vertex = ply["vertex"]
    names = [p.name for p in vertex.properties]
    assert names == ["x", "y", "z", "red", "green", "blue"]
    pts = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    assert len(pts) > 0 and np.isfinite(pts).all()
    config = json.loads((generated / "config.json").read_text())
    assert config["num_points"] == len(pts)
    scene = trimesh.load(str(generated / "scene.glb"))
    clouds = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    assert len(clouds) == 1 and len(clouds[0].vertices) == len(pts)
    np.testing.assert_allclose(np.sort(clouds[0].vertices, axis=0), np.sort(pts, axis=0), atol=1e-6)
    paths = [g for g in scene.geometry.values() if isinstance(g, trimesh.path.Path3D)]
    assert len(paths) == 1 and len(paths[0].vertices) == 5 * 8 * 2  # 8 segments per camera frustum


def _colmap_images(path: Path) -> dict[str, np.ndarray]:
    """name -> 4x4 w2c from COLMAP images.txt (QW QX QY QZ TX TY TZ, two lines per image)."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    poses = {}
    for header in lines[0::2]:
        parts = header.split()
        qw, qx, qy, qz, tx, ty, tz = map(float, parts[1:8])
        m = np.eye(4)
        m[:3, :3] = Rotation.from_quat([qx, qy, qz, qw]).as_matrix()
        m[:3, 3] = [tx, ty, tz]
        poses[parts[9]] = m
    return poses


def test_cameras_json_colmap_and_nerfstudio_agree(generated):
    cams = json.loads((generated / "cameras.json").read_text())
    w2c = np.asarray(cams["extrinsics"], dtype=np.float64)
    K = np.asarray(cams["intrinsics"], dtype=np.float64)
    assert w2c.shape == (5, 4, 4) and K.shape == (5, 3, 3)
    # generated path relative to its first camera: ours are VGGT's decoded cameras -> just rigid
    np.testing.assert_allclose(w2c[:, :3, :3] @ w2c[:, :3, :3].transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-4)
    colmap = _colmap_images(generated / "colmap" / "images.txt")
    assert len(colmap) == 5
    for i, name in enumerate(sorted(colmap)):
        np.testing.assert_allclose(colmap[name], w2c[i], atol=1e-5)
    cam_lines = [ln.split() for ln in (generated / "colmap" / "cameras.txt").read_text().splitlines()
                 if ln and not ln.startswith("#")]
    assert cam_lines and all(int(c[2]) == 112 and int(c[3]) == 112 for c in cam_lines)
    fx = float(cam_lines[0][4])
    assert fx == pytest.approx(K[0, 0, 0], rel=1e-5)
    points3d = [ln for ln in (generated / "colmap" / "points3D.txt").read_text().splitlines()
                if ln and not ln.startswith("#")]
    assert len(points3d) > 0
    ns = json.loads((generated / "transforms.json").read_text())
    frames = ns["frames"]
    assert len(frames) == 5
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    for i, frame in enumerate(frames):
        assert (generated / frame["file_path"]).is_file()
        c2w_gl = np.asarray(frame["transform_matrix"], dtype=np.float64)
        np.testing.assert_allclose(np.linalg.inv(c2w_gl @ flip), w2c[i], atol=1e-5)
    assert len(list((generated / "images").iterdir())) == 5


def test_config_records_resolved_settings_and_versions(generated):
    config = json.loads((generated / "config.json").read_text())
    settings = config["settings"]
    for key, value in {"frames": 5, "height": 112, "width": 112, "steps": 1, "guidance": 1.0, "seed": 3,
                       "prompt": "a courtyard", "camera": "orbit_left", "task": "1view", "dtype": "fp32"}.items():
        assert settings[key] == value, key
    assert settings["scene_scale"] > 0  # resolved from VGGT on the condition frame
    for lib in ("torch", "diffusers", "transformers", "numpy"):
        assert config["versions"][lib], lib


def test_failure_during_export_leaves_nothing(tmp_path, image, monkeypatch, capsys):
    """An exporter failing after other files were written: exit 2, one line, no folder, no temp dir."""
    from gen3r.errors import Gen3RError
    from gen3r.io import results

    def broken(*_a, **_k):
        raise Gen3RError("simulated GLB failure; nothing should remain")

    monkeypatch.setattr(results, "write_glb", broken)
    out = tmp_path / "out"
    assert main(["generate", str(image), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out), *SMALL]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "it/s]" not in ln]  # tqdm bars
    assert err == ["gen3r: error: simulated GLB failure; nothing should remain"]
    assert _siblings(tmp_path) == []


@pytest.mark.parametrize("extra,needle", [
    (["--frames", "7"], "4k+1"),
    (["--width", "120"], "multiple of 112"),
    (["--camera", "no_such_preset"], "unknown camera preset"),
])
def test_bad_input_leaves_no_temp_folders(tmp_path, image, capsys, extra, needle):
    out = tmp_path / "out"
    args = ["generate", str(image), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out), *SMALL, *extra]
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("gen3r: error:") and needle in err[0]
    assert _siblings(tmp_path) == []


def test_unreadable_last_image_and_missing_vggt(tmp_path, image, capsys):
    import shutil

    bad = tmp_path / "last.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(["generate", str(image), str(bad), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out),
                 *SMALL]) == 2
    assert "last.jpg" in capsys.readouterr().err
    ckpt = tmp_path / "ckpt"
    shutil.copytree(TINY_CHECKPOINT, ckpt)
    shutil.rmtree(ckpt / "vggt")
    assert main(["reconstruct", str(image.parent), "--checkpoint", str(ckpt), "--out", str(out), *SMALL]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "vggt" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "last.jpg"]


@pytest.mark.parametrize("command", ["generate", "reconstruct"])
def test_out_is_an_existing_file(tmp_path, image, capsys, command):
    out = tmp_path / "out"
    out.write_text("keep me")
    source = str(image) if command == "generate" else str(image.parent)
    code = main([command, source, "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out), *SMALL])
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("gen3r: error:")
    assert out.read_text() == "keep me"


def test_eval_out_is_an_existing_file(tmp_path, capsys):
    from gen3r.data.procedural import render_scene
    from gen3r.data.writers import write_re10k

    write_re10k(tmp_path / "re10k", {"test": [render_scene(4, 5, 112, 112, kind="indoor", trajectory="orbit")]})
    out = tmp_path / "out"
    out.write_text("keep me")
    code = main(["eval", "--task", "2view", "--dataset", "re10k", "--root", str(tmp_path / "re10k"),
                 "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out), *SMALL, "--baselines", "none"])
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "it/s]" not in ln]
    assert len(err) == 1 and err[0].startswith("gen3r: error:")
    assert out.read_text() == "keep me"
