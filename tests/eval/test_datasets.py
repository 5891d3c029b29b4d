"""Dataset readers on procedural scenes written in each layout.

RealEstate10K, nerfstudio and the official layout are written by ``gen3r.data.writers``; Co3Dv2,
WildRGB-D and TartanAir fixtures are written here from the datasets' documented formats. Each
reader must give back the scene's frames, cameras and depth; the decisive check unprojects the
returned depth with the returned cameras and compares with the scene's exact world points.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from gen3r.data.procedural import render_scene
from gen3r.data.writers import write_nerfstudio, write_official, write_re10k
from gen3r.errors import Gen3RError
from gen3r.eval import point_cloud_metrics, pose_auc
from gen3r.eval.datasets import (
    Co3Dv2Reader,
    NerfstudioReader,
    OfficialLayoutReader,
    RealEstate10KReader,
    SequenceData,
    TartanAirReader,
    WildRGBDReader,
    read_split_file,
    sample_frame_indices,
    sample_sequences,
)

F, H, W = 5, 24, 32


@pytest.fixture(scope="module")
def scene():
    return render_scene(seed=3, num_frames=F, height=H, width=W, kind="indoor", trajectory="orbit")


@pytest.fixture(scope="module")
def tartan_scene():
    # TartanAir intrinsics are fixed (90 degree FOV, 4:3); render at 1/10 of 640x480
    return render_scene(seed=4, num_frames=4, height=48, width=64, kind="indoor", trajectory="walk", fov_deg=90.0)


def _unproject(data: SequenceData) -> np.ndarray:
    """World points (F, H, W, 3) from z-depth, pixel K and OpenCV w2c (pixel (u, v) at integer
    coordinates, as the procedural renderer casts its rays)."""
    f, h, w = data.depth.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    out = np.zeros((f, h, w, 3))
    for i in range(f):
        k, t = data.intrinsics[i], data.extrinsics[i]
        x = (u - k[0, 2]) / k[0, 0] * data.depth[i]
        y = (v - k[1, 2]) / k[1, 1] * data.depth[i]
        cam = np.stack([x, y, data.depth[i]], -1)
        out[i] = (cam - t[:3, 3]) @ t[:3, :3]  # R^T (p - t)
    return out


def _chw(rgb: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) numpy frames as (F, 3, H, W) torch."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(0, 3, 1, 2)


def _assert_matches_scene(data: SequenceData, scene, depth_atol: float, same_world: bool = True,
                          pose_atol: float = 1e-5) -> None:
    expected = _chw(scene.rgb)  # the readers return the evaluation's layout, (F, 3, H, W) torch
    assert data.frames.shape == expected.shape and data.frames.dtype == torch.float32
    np.testing.assert_allclose(data.frames.numpy(), expected.numpy(), atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(data.intrinsics, scene.intrinsics, rtol=1e-5, atol=1e-4)
    if same_world:
        np.testing.assert_allclose(data.extrinsics, scene.extrinsics, atol=pose_atol)
    else:
        assert pose_auc(data.extrinsics, scene.extrinsics)["rra"].max() < 1e-3
    assert data.depth is not None
    valid = scene.valid
    np.testing.assert_allclose(data.depth[valid], scene.depth[valid], atol=depth_atol)
    pts = _unproject(data)
    if same_world:
        err = np.abs(pts[valid] - scene.world_points[valid]).max()
        assert err < 20 * depth_atol + 1e-4
    else:
        out = point_cloud_metrics(pts, scene.world_points.astype(np.float64), pred_mask=valid, gt_mask=valid)
        assert out["scale"] == pytest.approx(1.0, abs=1e-4)
        assert out["chamfer"] < 20 * depth_atol + 1e-4


def test_realestate10k_reader(tmp_path, scene):
    write_re10k(tmp_path / "re10k", {"test": [scene, scene]})
    reader = RealEstate10KReader(tmp_path / "re10k", split="test")
    assert reader.names() == ["scene_00000", "scene_00001"]
    assert reader.num_frames("scene_00001") == F
    data = reader.load("scene_00000")
    _assert_matches_scene(data, scene, depth_atol=1e-6)
    assert data.frame_ids[1] == "33333"  # timestamps in microseconds at 30 fps
    part = reader.load("scene_00000", indices=[4, 0], with_depth=False)
    assert part.depth is None and part.frame_ids == [data.frame_ids[4], data.frame_ids[0]]
    np.testing.assert_array_equal(part.frames[0], data.frames[4])


def test_official_layout_reader(tmp_path, scene):
    write_official(tmp_path / "official", {"test": [scene]})
    reader = OfficialLayoutReader(tmp_path / "official", split="test")
    assert reader.names() == ["scene_00000"]
    _assert_matches_scene(reader.load("scene_00000"), scene, depth_atol=1e-6)


def test_nerfstudio_reader_converts_opengl_and_reads_mm_depth(tmp_path, scene):
    write_nerfstudio(tmp_path / "dl3dv" / "0a1b2c", scene)
    reader = NerfstudioReader(tmp_path / "dl3dv")
    assert reader.names() == ["0a1b2c"]
    _assert_matches_scene(reader.load("0a1b2c"), scene, depth_atol=0.5e-3 + 1e-6)


def test_nerfstudio_reader_rescales_intrinsics_for_downsampled_images(tmp_path, scene):
    root = tmp_path / "dl3dv"
    write_nerfstudio(root / "s" / "nerfstudio", scene)  # DL3DV benchmark layout: <scene>/nerfstudio/
    small = root / "s" / "nerfstudio" / "images_2"
    small.mkdir()
    for p in sorted((root / "s" / "nerfstudio" / "images").iterdir()):
        Image.open(p).resize((W // 2, H // 2), Image.BILINEAR).save(small / p.name)
    data = NerfstudioReader(root, images_dir="images_2").load("s", with_depth=False)
    assert data.frames.shape == (F, 3, H // 2, W // 2)
    np.testing.assert_allclose(data.intrinsics[:, :2], scene.intrinsics[:, :2] / 2, rtol=1e-5)


# ------------------------------------------------------------------- fixtures written here (formats)

def _write_co3d(root: Path, scene, category: str = "teddybear", seq: str = "101_1_2") -> None:
    """Co3Dv2 layout: PyTorch3D row-vector cameras (x_view = x_world R + T, view x left / y up),
    ndc_isotropic intrinsics, depth PNGs carrying float16 bits, depth masks, a set list."""
    folder = root / category / seq
    for sub in ("images", "depths", "depth_masks"):
        (folder / sub).mkdir(parents=True)
    flip = np.diag([-1.0, -1.0, 1.0])
    entries = []
    half = np.array([W, H]) / 2.0
    s = half.min()
    for i in range(scene.num_frames):
        name = f"frame{i + 1:06d}"
        Image.fromarray(np.round(scene.rgb[i] * 255).astype(np.uint8)).save(folder / "images" / f"{name}.jpg",
                                                                             quality=100, subsampling=0)
        bits = scene.depth[i].astype(np.float16).view(np.uint16)
        Image.fromarray(bits).save(folder / "depths" / f"{name}.jpg.geometric.png")
        Image.fromarray((scene.valid[i] * 255).astype(np.uint8)).save(folder / "depth_masks" / f"{name}.png")
        r_cv, t_cv = scene.extrinsics[i, :3, :3].astype(np.float64), scene.extrinsics[i, :3, 3].astype(np.float64)
        k = scene.intrinsics[i]
        entries.append({
            "sequence_name": seq, "frame_number": i + 1, "frame_timestamp": i / 30.0,
            "image": {"path": f"{category}/{seq}/images/{name}.jpg", "size": [H, W]},
            "depth": {"path": f"{category}/{seq}/depths/{name}.jpg.geometric.png", "scale_adjustment": 1.0,
                      "mask_path": f"{category}/{seq}/depth_masks/{name}.png"},
            "viewpoint": {"R": (flip @ r_cv).T.tolist(), "T": (flip @ t_cv).tolist(),
                          "focal_length": [k[0, 0] / s, k[1, 1] / s],
                          "principal_point": [(half[0] - k[0, 2]) / s, (half[1] - k[1, 2]) / s],
                          "intrinsics_format": "ndc_isotropic"},
        })
    with gzip.open(root / category / "frame_annotations.jgz", "wt") as f:
        json.dump(entries[::-1], f)  # unordered on purpose: the reader sorts by frame number
    (root / category / "set_lists").mkdir()
    lists = {"train": [["other_seq", 1, "x"]], "val": [], "test": [[seq, 1, entries[0]["image"]["path"]]]}
    (root / category / "set_lists" / "set_lists_fewview_dev.json").write_text(json.dumps(lists))


def test_co3d_reader(tmp_path, scene):
    _write_co3d(tmp_path, scene)
    reader = Co3Dv2Reader(tmp_path)
    assert reader.names() == ["teddybear/101_1_2"]
    data = reader.load("teddybear/101_1_2")
    # JPEG frames: compare loosely; cameras exactly; float16 depth: relative 1e-3
    assert (data.frames - _chw(scene.rgb)).abs().mean() < 0.02
    np.testing.assert_allclose(data.extrinsics, scene.extrinsics, atol=1e-5)
    np.testing.assert_allclose(data.intrinsics, scene.intrinsics, rtol=1e-6)
    np.testing.assert_allclose(data.depth[scene.valid], scene.depth[scene.valid], rtol=1e-3)
    pts = _unproject(data)
    assert np.abs(pts[scene.valid] - scene.world_points[scene.valid]).max() < 0.02
    assert data.frame_ids == [str(i + 1) for i in range(F)]
    assert Co3Dv2Reader(tmp_path, subset="fewview_dev", split="train").names() == []
    assert Co3Dv2Reader(tmp_path, subset="fewview_dev", split="test").names() == ["teddybear/101_1_2"]


def test_co3d_camera_matches_vggt_conversion():
    # VGGT's evaluation converts Co3D (R, T) with: T[:2] *= -1; R[:, :2] *= -1; R = R.T
    rot = Rotation.from_rotvec([0.2, 0.5, -0.3]).as_matrix()
    trans = np.array([0.3, -1.2, 4.0])
    from gen3r.eval.datasets import _co3d_camera

    w2c, k = _co3d_camera({"R": rot.tolist(), "T": trans.tolist(), "focal_length": [2.0, 2.0],
                           "principal_point": [0.1, -0.2], "intrinsics_format": "ndc_isotropic"}, [100, 200], "x")
    r_ref, t_ref = rot.copy(), trans.copy()
    t_ref[:2] *= -1
    r_ref[:, :2] *= -1
    np.testing.assert_allclose(w2c[:3, :3], r_ref.T, atol=1e-12)
    np.testing.assert_allclose(w2c[:3, 3], t_ref, atol=1e-12)
    # isotropic NDC: scale = min(H, W) / 2 = 50; cx = W/2 - px * 50, cy = H/2 - py * 50
    np.testing.assert_allclose(k, [[100.0, 0, 95.0], [0, 100.0, 60.0], [0, 0, 1]])


def _write_wildrgbd(root: Path, scene) -> None:
    folder = root / "mouse" / "scenes" / "scene_000"
    for sub in ("rgb", "depth", "masks"):
        (folder / sub).mkdir(parents=True)
    lines = []
    for i in range(scene.num_frames):
        Image.fromarray(np.round(scene.rgb[i] * 255).astype(np.uint8)).save(folder / "rgb" / f"{i:05d}.png")
        Image.fromarray(np.round(scene.depth[i] * 1000).astype(np.uint16)).save(folder / "depth" / f"{i:05d}.png")
        c2w = np.linalg.inv(scene.extrinsics[i].astype(np.float64))
        lines.append(f"{i} " + " ".join(f"{v:.10g}" for v in c2w.ravel()))
    (folder / "cam_poses.txt").write_text("\n".join(lines) + "\n")
    k = scene.intrinsics[0].astype(np.float64)
    (folder / "metadata").write_text(json.dumps({"K": k.T.ravel().tolist(), "w": W, "h": H}))


def test_wildrgbd_reader(tmp_path, scene):
    _write_wildrgbd(tmp_path, scene)
    reader = WildRGBDReader(tmp_path)
    assert reader.names() == ["mouse/scene_000"]
    _assert_matches_scene(reader.load("mouse/scene_000"), scene, depth_atol=0.5e-3 + 1e-6)


def _write_tartanair(root: Path, scene) -> None:
    folder = root / "office" / "Easy" / "P001"
    (folder / "image_left").mkdir(parents=True)
    (folder / "depth_left").mkdir()
    ned_to_cam = np.array([[0.0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    rows = []
    for i in range(scene.num_frames):
        Image.fromarray(np.round(scene.rgb[i] * 255).astype(np.uint8)).save(folder / "image_left" / f"{i:06d}_left.png")
        np.save(folder / "depth_left" / f"{i:06d}_left_depth.npy",
                np.where(scene.valid[i], scene.depth[i], 10000.0).astype(np.float32))
        c2w_ned = ned_to_cam.T @ np.linalg.inv(scene.extrinsics[i].astype(np.float64)) @ ned_to_cam
        q = Rotation.from_matrix(c2w_ned[:3, :3]).as_quat()
        rows.append(" ".join(f"{v:.10g}" for v in [*c2w_ned[:3, 3], *q]))
    (folder / "pose_left.txt").write_text("\n".join(rows) + "\n")


def test_tartanair_reader(tmp_path, tartan_scene):
    _write_tartanair(tmp_path, tartan_scene)
    reader = TartanAirReader(tmp_path, max_depth=1000.0)
    assert reader.names() == ["office/Easy/P001"]
    data = reader.load("office/Easy/P001")
    # the reader's world frame is TartanAir's ned2cam world: compare up to a rigid change of world
    _assert_matches_scene(data, tartan_scene, depth_atol=1e-6, same_world=False)
    # sky: TartanAir stores ~10 000 m; max_depth turns it into "unknown" (0), None keeps it
    npy = tmp_path / "office" / "Easy" / "P001" / "depth_left" / "000000_left_depth.npy"
    sky = np.load(npy)
    sky[0, :5] = 10000.0
    np.save(npy, sky)
    assert np.all(TartanAirReader(tmp_path).load("office/Easy/P001", indices=[0]).depth[0, 0, :5] == 10000.0)
    assert np.all(TartanAirReader(tmp_path, max_depth=1000.0).load("office/Easy/P001", indices=[0]).depth[0, 0, :5]
                  == 0.0)


# ------------------------------------------------------------------------------ splits and sampling

def test_split_file_restricts_and_validates(tmp_path, scene):
    write_re10k(tmp_path / "re10k", {"test": [scene, scene]})
    split = tmp_path / "split.txt"
    split.write_text("# test split\nscene_00001\n\n")
    assert read_split_file(split) == ["scene_00001"]
    assert RealEstate10KReader(tmp_path / "re10k", split_file=split).names() == ["scene_00001"]
    split.write_text("scene_00001\nscene_99999\n")
    with pytest.raises(Gen3RError, match="not on disk"):
        RealEstate10KReader(tmp_path / "re10k", split_file=split).names()


def test_sampling_helpers():
    assert sample_frame_indices(60).tolist() == list(range(49))
    assert sample_frame_indices(200, num_frames=5, stride=3, start=10).tolist() == [10, 13, 16, 19, 22]
    rand = sample_frame_indices(100, start=None, seed=1)
    assert len(rand) == 49 and rand[-1] - rand[0] == 48 and rand[-1] < 100
    assert np.array_equal(rand, sample_frame_indices(100, start=None, seed=1))
    with pytest.raises(Gen3RError, match="needs 49 frames"):
        sample_frame_indices(48)
    from gen3r.eval.runner import EvalConfig

    assert [EvalConfig(task=t, num_frames=49).condition_indices() for t in ("1view", "2view")] == [[0], [0, 48]]
    assert EvalConfig(task="recon", num_frames=5).condition_indices() == [0, 1, 2, 3, 4]
    names = [f"s{i}" for i in range(500)]
    picked = sample_sequences(names, 200, seed=0)
    assert len(set(picked)) == 200 and picked == sample_sequences(names, 200, seed=0)
    assert picked != sample_sequences(names, 200, seed=1)
    assert sample_sequences(names[:3], 200) == names[:3]


def test_reader_errors(tmp_path, scene):
    with pytest.raises(Gen3RError, match="does not exist"):
        RealEstate10KReader(tmp_path / "missing")
    write_re10k(tmp_path / "re10k", scene)
    reader = RealEstate10KReader(tmp_path / "re10k")
    with pytest.raises(Gen3RError, match="no sequence"):
        reader.load("nope")
    with pytest.raises(Gen3RError, match="outside"):
        reader.load("scene_00000", indices=[0, F])
    (tmp_path / "re10k" / "test" / "frames" / "scene_00000" / "0.png").unlink()
    with pytest.raises(Gen3RError, match="no frame 0"):
        RealEstate10KReader(tmp_path / "re10k").load("scene_00000")
    bad = tmp_path / "re10k" / "test" / "broken.txt"
    bad.write_text("url\n0 1 2 3\n")
    with pytest.raises(Gen3RError, match="19"):
        RealEstate10KReader(tmp_path / "re10k").load("broken")
