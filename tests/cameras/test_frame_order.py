"""One frame order for transforms.json, whoever reads it: frames listed out of order (and names whose
digits sort differently as text, frame_2 / frame_10) come back in natural file order, each with its
own image, from the camera reader, the evaluation readers and the training dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen3r.cameras import load_cameras
from gen3r.cameras.formats import OPENGL_TO_OPENCV, natural_key, read_transforms_frames

COUNT, SIZE = 12, 28


def _write_scene(folder: Path, opengl: bool) -> Path:
    """Frame i (1..COUNT): image frame_<i>.png of grey level 20 i, camera at x = i (OpenCV c2w),
    listed in a shuffled order."""
    (folder / "images").mkdir(parents=True)
    frames = []
    for i in range(1, COUNT + 1):
        Image.fromarray(np.full((SIZE, SIZE, 3), 20 * i, np.uint8)).save(folder / "images" / f"frame_{i}.png")
        c2w = np.eye(4)
        c2w[0, 3] = i
        frames.append({"file_path": f"images/frame_{i}.png", "fl_x": 30.0, "fl_y": 30.0, "cx": SIZE / 2,
                       "cy": SIZE / 2, "w": SIZE, "h": SIZE,
                       "transform_matrix": (c2w @ OPENGL_TO_OPENCV if opengl else c2w).tolist()})
    random.Random(0).shuffle(frames)
    (folder / "transforms.json").write_text(json.dumps({"frames": frames}))
    (folder / "captions.txt").write_text("a test scene\n")
    return folder / "transforms.json"


def _official_layout(root: Path) -> Path:
    path = _write_scene(root / "test" / "scene_00000", opengl=False)
    for split in ("test", "train"):
        (root / f"{split}_videos_dirs.txt").write_text(str(path.parent / "images") + "\n")
        (root / f"{split}_cameras_paths.txt").write_text(str(path) + "\n")
        (root / f"{split}_captions_paths.txt").write_text(str(path.parent / "captions.txt") + "\n")
    return root


def test_natural_order():
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "frame_1b.png"]
    assert sorted(names, key=natural_key) == ["frame_1.png", "frame_1b.png", "frame_2.png", "frame_10.png"]


@pytest.mark.parametrize("opengl", [True, False])
def test_camera_reader(tmp_path, opengl):
    path = _write_scene(tmp_path, opengl)
    frames, _ = read_transforms_frames(path, opengl=opengl)
    assert [f.file_path for f in frames] == [f"images/frame_{i}.png" for i in range(1, COUNT + 1)]
    cameras = load_cameras(path, format="nerfstudio" if opengl else "gen3r_transforms")
    np.testing.assert_allclose(cameras.c2w[:, 0, 3].numpy(), np.arange(1, COUNT + 1), atol=1e-9)


def test_evaluation_readers(tmp_path):
    from gen3r.eval.datasets import NerfstudioReader, OfficialLayoutReader

    _write_scene(tmp_path / "ns" / "scene", opengl=True)
    root = _official_layout(tmp_path / "official")
    for reader, name in ((NerfstudioReader(tmp_path / "ns"), "scene"), (OfficialLayoutReader(root), "scene_00000")):
        data = reader.load(name, with_depth=False)
        grey = np.round(np.asarray(data.frames, dtype=np.float64).reshape(COUNT, -1).mean(1)
                        * (255 if np.asarray(data.frames).max() <= 1 else 1) / 20)
        np.testing.assert_array_equal(grey, np.arange(1, COUNT + 1))
        c2w = np.linalg.inv(np.asarray(data.extrinsics, dtype=np.float64))
        np.testing.assert_allclose(c2w[:, 0, 3], np.arange(1, COUNT + 1), atol=1e-6)
        assert data.frame_ids == [f"frame_{i}" for i in range(1, COUNT + 1)]


def test_training_dataset(tmp_path):
    from gen3r.train.data import OfficialLayoutDataset

    root = _official_layout(tmp_path / "official")
    dataset = OfficialLayoutDataset(root, split="train", num_frames=5, height=SIZE, width=SIZE, max_stride=2, seed=3)
    for index_seed in range(4):
        sample = dataset.load(0, np.random.default_rng(index_seed))
        grey = np.round(sample["frames"].reshape(5, -1).mean(1).numpy() * 255 / 20)
        assert np.all(np.diff(grey) > 0)  # consecutive frames in natural file order
        x = sample["cameras"].c2w[:, 0, 3].numpy()  # relative to the first frame
        np.testing.assert_allclose(x, grey - grey[0], atol=1e-5)  # every image with its own camera
