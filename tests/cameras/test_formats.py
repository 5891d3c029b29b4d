"""Tests of gen3r.cameras.formats: camera files (official, RealEstate10K, nerfstudio, COLMAP)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gen3r.cameras import FORMATS, Cameras, detect_format, load_cameras, read_colmap, save_cameras, write_colmap
from gen3r.errors import Gen3RError

SIZE = (48, 64)
IDENTITY = np.eye(4).tolist()
K = [[2.0, 0, 1], [0, 2, 1], [0, 0, 1]]


def _cameras(seed: int = 0, frames: int = 4, shared: bool = False) -> Cameras:
    rng = np.random.default_rng(seed)
    rot = Rotation.random(frames, random_state=seed).as_matrix()
    w2c = np.concatenate([rot, rng.normal(size=(frames, 3, 1))], -1)
    k = np.zeros((frames, 3, 3))
    k[:, 0, 0], k[:, 1, 1] = rng.uniform(30, 90, frames), rng.uniform(30, 90, frames)
    k[:, 0, 2], k[:, 1, 2] = rng.uniform(20, 44, frames), rng.uniform(15, 33, frames)
    k[:, 2, 2] = 1
    if shared:
        k[:] = k[0]
    return Cameras(torch.from_numpy(w2c), torch.from_numpy(k), SIZE)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name, fmt", [
    ("cams.json", None), ("traj.txt", None), ("transforms.json", None), ("train.json", "gen3r_transforms"),
    ("sparse", None), ("sparse_shared", "colmap"),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip(tmp_path, name, fmt, seed):
    cams = _cameras(seed, shared=name.endswith("shared"))
    path = save_cameras(cams, tmp_path / name, format=fmt)
    back = load_cameras(path, image_size=SIZE, format=fmt)
    assert back.image_size == SIZE and len(back) == len(cams)
    assert back.allclose(cams, rtol=1e-12, atol=1e-12)
    assert not list(tmp_path.rglob("*.tmp*"))  # no temporary file left behind


def test_conversion_chain_preserves_cameras(tmp_path):
    cams = _cameras(5, frames=6)
    current = cams
    for target, fmt in [("a.json", None), ("colmap", None), ("transforms.json", None), ("b.txt", None),
                        ("c.json", "gen3r_transforms"), ("d.json", None)]:
        path = save_cameras(current, tmp_path / target, format=fmt)
        current = load_cameras(path, image_size=SIZE, format=fmt)
    assert current.allclose(cams, rtol=1e-12, atol=1e-12)


def test_formats_and_detection(tmp_path):
    assert FORMATS == ("official", "re10k", "nerfstudio", "gen3r_transforms", "colmap")
    assert detect_format(tmp_path / "x.json", for_writing=True) == "official"
    assert detect_format(tmp_path / "transforms.json", for_writing=True) == "nerfstudio"
    assert detect_format(tmp_path / "x.txt") == "re10k"
    assert detect_format(tmp_path / "model") == "colmap"
    # reading: by content
    nerf = _write(tmp_path / "renamed.json", json.dumps({"w": 4, "h": 4, "fl_x": 2, "frames": [
        {"transform_matrix": np.eye(4).tolist()}]}))
    assert detect_format(nerf) == "nerfstudio"
    official = save_cameras(_cameras(), tmp_path / "transforms_official.json", format="official")
    assert detect_format(official) == "official"


# ---------------------------------------------------------------------------------------------- known values
def test_official_known_values_and_image_size(tmp_path):
    path = _write(tmp_path / "cameras.json", json.dumps({
        "extrinsics": [np.eye(4).tolist()], "intrinsics": [[[480.0, 0, 280.8], [0, 480.0, 280], [0, 0, 1]]]}))
    cams = load_cameras(path)
    assert cams.image_size == (560, 560)  # the official convention: the 560x560 centre crop
    torch.testing.assert_close(cams.extrinsics[0], torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(cams.intrinsics[0, 0], torch.tensor([480.0, 0, 280.8], dtype=torch.float64))
    assert load_cameras(path, image_size=(280, 280)).image_size == (280, 280)  # size the intrinsics refer to
    # our files record the size, which wins over the image_size argument
    ours = save_cameras(cams.resize((100, 200)), tmp_path / "ours.json")
    assert json.loads(ours.read_text())["image_size"] == [100, 200]
    assert load_cameras(ours).allclose(cams.resize((100, 200)))
    assert load_cameras(ours, image_size=(560, 560)).image_size == (100, 200)
    # a 3x4 extrinsic list and shared (3, 3) intrinsics are accepted too
    short = _write(tmp_path / "short.json", json.dumps({"extrinsics": [np.eye(4)[:3].tolist()] * 2,
                                                        "intrinsics": [[2, 0, 1], [0, 2, 1], [0, 0, 1]]}))
    assert len(load_cameras(short, image_size=(2, 2))) == 2


def test_official_written_file_is_plain_json(tmp_path):
    cams = _cameras(2)
    data = json.loads(save_cameras(cams, tmp_path / "c.json").read_text())
    np.testing.assert_array_equal(np.array(data["extrinsics"]), cams.extrinsics.numpy())
    np.testing.assert_array_equal(np.array(data["intrinsics"]), cams.intrinsics.numpy())


def test_re10k_known_line(tmp_path):
    path = _write(tmp_path / "clip.txt", "https://www.youtube.com/watch?v=abc\n"
                  "0 0.5 0.8 0.5 0.25 0 0 0 0 1 0.1 0 1 0 0.2 -1 0 0 0.3\n"
                  "33366 0.5 0.8 0.5 0.25 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n")
    cams = load_cameras(path, image_size=(100, 200))
    expected_k = torch.tensor([[100.0, 0, 100], [0, 80, 25], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(cams.intrinsics, expected_k.expand(2, 3, 3))
    expected_w2c = torch.tensor([[0.0, 0, 1, 0.1], [0, 1, 0, 0.2], [-1, 0, 0, 0.3], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(cams.extrinsics[0], expected_w2c)
    torch.testing.assert_close(cams.extrinsics[1], torch.eye(4, dtype=torch.float64))


def test_re10k_written_file_is_normalised(tmp_path):
    cams = _cameras(3)
    lines = save_cameras(cams, tmp_path / "t.txt").read_text().splitlines()
    assert len(lines) == 1 + len(cams)
    values = np.array([[float(v) for v in line.split()] for line in lines[1:]])
    assert values.shape == (4, 19)
    k = cams.intrinsics.numpy()
    np.testing.assert_allclose(values[:, 1], k[:, 0, 0] / 64)
    np.testing.assert_allclose(values[:, 2], k[:, 1, 1] / 48)
    np.testing.assert_allclose(values[:, 3], k[:, 0, 2] / 64)
    np.testing.assert_allclose(values[:, 4], k[:, 1, 2] / 48)
    np.testing.assert_array_equal(values[:, 5:7], 0)
    np.testing.assert_allclose(values[:, 7:].reshape(4, 3, 4), cams.extrinsics[:, :3].numpy())


def test_colmap_known_quaternion(tmp_path, caplog):
    folder = tmp_path / "model"
    _write(folder / "cameras.txt", "# comment\n1 SIMPLE_PINHOLE 200 100 120 100 50\n"
           "2 OPENCV 200 100 110 120 101 51 0.1 0 0 0\n")
    half = math.sqrt(0.5)
    _write(folder / "images.txt", f"# header\n1 {half} 0 0 {half} 1 2 3 1 frame_10.png\n10.0 20.0 -1\n"
           "2 1 0 0 0 0 0 0 2 frame_9.png\n\n")
    with caplog.at_level(logging.WARNING, logger="gen3r.cameras.formats"):
        cams, names = read_colmap(folder)
    assert "distortion" in caplog.text
    assert names == ["frame_9.png", "frame_10.png"]  # natural order by name
    assert cams.image_size == (100, 200)
    torch.testing.assert_close(cams.extrinsics[0], torch.eye(4, dtype=torch.float64))
    rz = torch.tensor([[0.0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(cams.extrinsics[1], rz)
    torch.testing.assert_close(cams.intrinsics[0], torch.tensor([[110.0, 0, 101], [0, 120, 51], [0, 0, 1]],
                                                                dtype=torch.float64))
    torch.testing.assert_close(cams.intrinsics[1], torch.tensor([[120.0, 0, 100], [0, 120, 50], [0, 0, 1]],
                                                                dtype=torch.float64))
    # the standard sparse/0 layout is found from the project folder
    _write(tmp_path / "proj" / "sparse" / "0" / "cameras.txt", (folder / "cameras.txt").read_text())
    _write(tmp_path / "proj" / "sparse" / "0" / "images.txt", (folder / "images.txt").read_text())
    assert load_cameras(tmp_path / "proj").allclose(cams)
    assert load_cameras(folder, image_size=(50, 100)).image_size == (100, 200)


def test_colmap_written_files_read_independently(tmp_path):
    cams = _cameras(4)
    points = np.array([[0.0, 1.0, 2.0], [-1.5, 0.25, 3.0]])
    write_colmap(cams, tmp_path / "m", points=points, colors=np.array([[255, 0, 10], [1, 2, 3]], dtype=np.uint8),
                 image_names=[f"img{i}.jpg" for i in range(4)])
    lines = [line for line in (tmp_path / "m" / "images.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines[1::2] == ["", "", "", ""]  # empty POINTS2D lines
    for i, line in enumerate(lines[::2]):
        v = line.split()
        assert v[0] == str(i + 1) and v[9] == f"img{i}.jpg"
        qw, qx, qy, qz = map(float, v[1:5])
        assert qw >= 0
        np.testing.assert_allclose(Rotation.from_quat([qx, qy, qz, qw]).as_matrix(),
                                   cams.extrinsics[i, :3, :3].numpy(), atol=1e-12)
        np.testing.assert_allclose(list(map(float, v[5:8])), cams.extrinsics[i, :3, 3].numpy())
    cam_lines = [line.split() for line in (tmp_path / "m" / "cameras.txt").read_text().splitlines()
                 if not line.startswith("#")]
    assert [c[1:4] for c in cam_lines] == [["PINHOLE", "64", "48"]] * 4
    pts = [line.split() for line in (tmp_path / "m" / "points3D.txt").read_text().splitlines()
           if not line.startswith("#")]
    assert pts == [["1", "0.0", "1.0", "2.0", "255", "0", "10", "0"], ["2", "-1.5", "0.25", "3.0", "1", "2", "3", "0"]]
    # float colours in [0, 1] are rounded to uint8; no points -> an empty points3D.txt with its header
    write_colmap(cams, tmp_path / "f", points=torch.tensor(points), colors=torch.tensor([[1.0, 0.5, 0.0]] * 2))
    assert (tmp_path / "f" / "points3D.txt").read_text().splitlines()[3].split()[4:7] == ["255", "128", "0"]
    write_colmap(cams, tmp_path / "e")
    assert all(line.startswith("#") for line in (tmp_path / "e" / "points3D.txt").read_text().splitlines())
    assert read_colmap(tmp_path / "m")[1] == [f"img{i}.jpg" for i in range(4)]


def test_nerfstudio_known_values(tmp_path):
    c2w_gl = np.eye(4)
    c2w_gl[:3, 3] = [1.0, 2.0, 3.0]
    path = _write(tmp_path / "transforms.json", json.dumps({
        "fl_x": 100, "fl_y": 110, "cx": 50, "cy": 40, "w": 100, "h": 80, "k1": 0.0,
        "frames": [{"file_path": "images/a.png", "transform_matrix": c2w_gl.tolist()},
                   {"file_path": "images/b.png", "transform_matrix": c2w_gl.tolist(), "fl_x": 90}]}))
    cams = load_cameras(path)
    assert cams.image_size == (80, 100)
    # OpenGL camera looking down -z with y up == OpenCV camera with y and z flipped
    expected_c2w = np.diag([1.0, -1.0, -1.0, 1.0])
    expected_c2w[:3, 3] = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(cams.c2w[0].numpy(), expected_c2w, atol=1e-15)
    np.testing.assert_allclose(cams.intrinsics[:, 0, 0].numpy(), [100, 90])
    np.testing.assert_allclose(cams.intrinsics[0].numpy(), [[100, 0, 50], [0, 110, 40], [0, 0, 1]])
    # the official Gen3R training files are OpenCV: no flip
    raw = load_cameras(path, format="gen3r_transforms")
    np.testing.assert_allclose(raw.c2w[0].numpy(), c2w_gl, atol=1e-15)
    # instant-ngp style: camera_angle_x, defaults cx = w/2, cy = h/2, fl_y = fl_x
    ngp = _write(tmp_path / "ngp.json", json.dumps({"camera_angle_x": 2 * math.atan(0.5), "w": 100, "h": 80,
                                                     "frames": [{"transform_matrix": np.eye(4).tolist()}]}))
    np.testing.assert_allclose(load_cameras(ngp).intrinsics[0].numpy(), [[100, 0, 50], [0, 100, 40], [0, 0, 1]])
    assert load_cameras(path, image_size=(40, 50)).allclose(cams)  # the recorded w, h win
    # without w, h the image_size argument gives the size (and the default principal point)
    bare = _write(tmp_path / "bare.json", json.dumps({"fl_x": 30, "frames": [{"transform_matrix": IDENTITY}]}))
    np.testing.assert_allclose(load_cameras(bare, image_size=(40, 50)).intrinsics[0].numpy(),
                               [[30, 0, 25], [0, 30, 20], [0, 0, 1]])


def test_nerfstudio_distortion_warns_once(tmp_path, caplog):
    frames = [{"transform_matrix": IDENTITY, "k1": 0.1}] * 3
    path = _write(tmp_path / "transforms.json", json.dumps({"fl_x": 2, "w": 4, "h": 4, "frames": frames}))
    with caplog.at_level(logging.WARNING, logger="gen3r.cameras.formats"):
        assert len(load_cameras(path)) == 3
    assert caplog.text.count("distortion is ignored") == 1


def test_nerfstudio_written_file_read_independently(tmp_path):
    cams = _cameras(6)
    data = json.loads(save_cameras(cams, tmp_path / "transforms.json",
                                   image_names=[f"rgb/{i}.png" for i in range(4)]).read_text())
    assert data["w"] == 64 and data["h"] == 48 and len(data["frames"]) == 4
    for i, frame in enumerate(data["frames"]):
        c2w_cv = np.linalg.inv(cams.extrinsics[i].numpy())
        np.testing.assert_allclose(np.array(frame["transform_matrix"]), c2w_cv @ np.diag([1, -1, -1, 1]), atol=1e-12)
        assert frame["file_path"] == f"rgb/{i}.png"
        assert frame["fl_x"] == pytest.approx(float(cams.intrinsics[i, 0, 0]))


# ---------------------------------------------------------------------------------------------- bad input
BAD_FILES = [
    ("missing_key.json", json.dumps({"extrinsics": [IDENTITY]}), (4, 4), "missing key 'intrinsics'"),
    ("shape.json", json.dumps({"extrinsics": [[1, 2, 3]], "intrinsics": [K]}), (4, 4),
     r"'extrinsics'.*shape \(1, 3\)"),
    ("ragged.json", json.dumps({"extrinsics": [[[1, 2], [3]]], "intrinsics": [K]}), None, "rectangular"),
    ("nan.json", '{"extrinsics": [[[NaN, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]], "intrinsics": [' +
     json.dumps(K) + "]}", None, r"entry \[0, 0, 0\].*NaN"),
    ("singular.json", json.dumps({"extrinsics": [np.diag([0.0, 0, 0, 1]).tolist()], "intrinsics": [K]}), None,
     "singular"),
    ("count.json", json.dumps({"extrinsics": [IDENTITY] * 2, "intrinsics": [K] * 3}), None, "3 matrices"),
    ("syntax.json", '{\n"extrinsics": [,]}', None, "line 2 .*invalid JSON"),
    ("neither.json", json.dumps({"poses": []}), None, "neither"),
    ("no_size.txt", "url\n0 .5 .5 .5 .5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n", None, "image_size"),
    ("count.txt", "url\n0 .5 .5 .5 .5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n0 1 2\n", (4, 4), "line 3: has 3 values"),
    ("word.txt", "url\n0 .5 .5 .5 .5 0 0 1 0 0 0 0 1 0 0 0 0 1 zero\n", (4, 4), "line 2: contains a non-numeric"),
    ("nan.txt", "url\n0 .5 .5 .5 .5 0 0 1 0 0 0 0 1 0 0 0 0 1 nan\n", (4, 4), "line 2: contains NaN"),
    ("singular.txt", "url\n0 .5 .5 .5 .5 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", (4, 4), "line 2: .*not invertible"),
    ("empty.txt", "url\n", (4, 4), "no camera lines"),
    ("transforms.json", json.dumps({"w": 4, "h": 4, "frames": [{"transform_matrix": IDENTITY}]}), None, "'fl_x'"),
    ("nomatrix/transforms.json", json.dumps({"fl_x": 2, "w": 4, "h": 4, "frames": [{"file_path": "a"}]}), None,
     r"frames\[0\]: missing key 'transform_matrix'"),
    ("nosize/transforms.json", json.dumps({"fl_x": 2, "cx": 2, "cy": 2, "frames": [{"transform_matrix": IDENTITY}]}),
     None, "no image size"),
    ("sizes/transforms.json", json.dumps({"fl_x": 2, "frames": [{"transform_matrix": IDENTITY, "w": 4, "h": 4},
                                                                {"transform_matrix": IDENTITY, "w": 8, "h": 4}]}),
     None, "differ between frames"),
    ("flip/transforms.json", json.dumps({"fl_x": 2, "w": 4, "h": 4, "frames": [
        {"transform_matrix": np.diag([1.0, 1, -1, 1]).tolist()}]}), None, "reflection"),
    ("bad_fl/transforms.json", json.dumps({"fl_x": "2", "w": 4, "h": 4, "frames": [{"transform_matrix": IDENTITY}]}),
     None, r"field 'fl_x'.*finite number"),
    ("cameras.yaml", "a: 1", None, "suffix"),
]


@pytest.mark.parametrize("name, text, size, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_one_clear_error(tmp_path, name, text, size, message):
    path = _write(tmp_path / name, text)
    with pytest.raises(Gen3RError, match=message) as info:
        load_cameras(path, image_size=size)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _colmap(folder: Path, cameras: str, images: str) -> Path:
    _write(folder / "cameras.txt", cameras)
    _write(folder / "images.txt", images)
    return folder


@pytest.mark.parametrize("cameras, images, message", [
    ("1 FULL_OPENCV 4 4 1 1 2 2 0 0 0 0 0 0 0 0\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "FULL_OPENCV is not supported"),
    ("1 PINHOLE 4 4 1 1 2\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "needs 4 parameters"),
    ("1 PINHOLE 4 4 1 1 2 2\n", "1 0 0 0 0 0 0 0 1 a.png\n\n", "quaternion is zero"),
    ("1 PINHOLE 4 4 1 1 2 2\n", "1 1 0 0 0 0 0 0 7 a.png\n\n", "CAMERA_ID 7"),
    ("1 PINHOLE 4 4 1 1 2 2\n", "1 1 0 0 0 nan 0 0 1 a.png\n\n", "NaN"),
    ("1 PINHOLE 4 4 1 1 2 2\n", "1 1 0 0 0 0 0\n", "expected at least 10"),
    ("1 PINHOLE 4 4 1 1 2 2\n", "# nothing\n", "lists no images"),
    ("1 PINHOLE 4 4 1 1 2 2\n2 PINHOLE 8 4 1 1 2 2\n", "1 1 0 0 0 0 0 0 1 a.png\n\n2 1 0 0 0 0 0 0 2 b.png\n\n",
     "different image sizes"),
])
def test_bad_colmap_raises(tmp_path, cameras, images, message):
    folder = _colmap(tmp_path / "model", cameras, images)
    with pytest.raises(Gen3RError, match=message) as info:
        load_cameras(folder)
    assert "model" in str(info.value)


def test_missing_and_binary_and_unknown_format(tmp_path):
    with pytest.raises(Gen3RError, match="does not exist"):
        load_cameras(tmp_path / "nope.json")
    _write(tmp_path / "bin" / "sparse" / "0" / "cameras.bin", "x")
    with pytest.raises(Gen3RError, match="model_converter"):
        load_cameras(tmp_path / "bin")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(Gen3RError, match="no cameras.txt"):
        load_cameras(tmp_path / "emptydir")
    with pytest.raises(Gen3RError, match="choose one of: official, re10k"):
        save_cameras(_cameras(), tmp_path / "x.json", format="blender")
    with pytest.raises(Gen3RError, match="image_size"):
        load_cameras(save_cameras(_cameras(), tmp_path / "x.json"), image_size=(0, 3))


def test_failed_write_leaves_existing_file_untouched(tmp_path):
    target = save_cameras(_cameras(), tmp_path / "t.txt")
    before = target.read_text()
    skewed = _cameras(1)
    skewed.intrinsics[:, 0, 1] = 0.5
    with pytest.raises(Gen3RError, match="skewed"):
        save_cameras(skewed, target)
    assert target.read_text() == before
    with pytest.raises(Gen3RError, match="no whitespace"):
        write_colmap(_cameras(), tmp_path / "c", image_names=["a b.png"] * 4)
    with pytest.raises(Gen3RError, match="4 cameras"):
        write_colmap(_cameras(), tmp_path / "c", image_names=["a.png"])
    with pytest.raises(Gen3RError, match="shape"):
        write_colmap(_cameras(), tmp_path / "c", points=np.zeros((3, 2)))
    with pytest.raises(Gen3RError, match="uint8 or floats"):
        write_colmap(_cameras(), tmp_path / "c", points=np.zeros((1, 3)), colors=np.array([[2.0, 0, 0]]))
    with pytest.raises(Gen3RError, match="without points"):
        write_colmap(_cameras(), tmp_path / "c", colors=np.zeros((1, 3)))
    assert not (tmp_path / "c").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
