"""Write rendered scenes to disk in the layouts the training, evaluation and other tools read.

Every writer is atomic: it fills a temporary folder next to the output and renames it into place
(:func:`gen3r.atomic.atomic_dir`), so a failure never leaves half-written output. An existing
non-empty output folder is an error unless ``overwrite=True``.

Formats (see ``docs/data.md`` for the exact file contents):

* ``official``: the official Gen3R training layout (spec §8.2). One folder per scene with
  ``images/frame00000.png ...``, ``captions.txt`` and ``transforms.json`` (per frame ``w, h, fl_x,
  fl_y, cx, cy, file_path, transform_matrix`` with ``transform_matrix`` = camera-to-world in the
  **OpenCV** convention), plus the index files ``<split>_videos_dirs.txt`` (the ``images`` folders),
  ``<split>_cameras_paths.txt`` and ``<split>_captions_paths.txt`` (absolute paths).
* ``re10k``: RealEstate10K: ``<split>/<seq>.txt`` (URL line, then per frame ``timestamp_us fx/w fy/h
  cx/w cy/h 0 0`` + the 3x4 OpenCV world-to-camera matrix row-major) and frames
  ``<split>/frames/<seq>/<timestamp_us>.png``.
* ``nerfstudio``: ``transforms.json`` with **OpenGL** camera-to-world matrices (OpenCV camera axes
  with y and z flipped), ``images/`` and 16-bit depth PNGs in millimetres (``depth_file_path``).
* ``npz``: one ``scene.npz`` with every array of the :class:`~gen3r.data.procedural.Scene`.

Every format also stores the exact ground truth as float32 ``.npz`` (z-depth in metres, valid
mask, OpenCV world-to-camera extrinsics, pixel intrinsics) so evaluation can read it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from gen3r.atomic import atomic_dir
from gen3r.cameras.formats import OPENGL_TO_OPENCV, re10k_lines, re10k_timestamps
from gen3r.data.procedural import Scene
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

Scenes = Scene | Iterable[Scene] | Mapping[str, Iterable[Scene]]


# ------------------------------------------------------------------------------------------ helpers

def check_scene(scene: Scene) -> None:
    """Raise :class:`Gen3RError` unless the arrays of ``scene`` have consistent shapes and finite values."""
    if scene.rgb.ndim != 4 or scene.rgb.shape[-1] != 3:
        raise Gen3RError(f"scene rgb must be (F, H, W, 3), got shape {scene.rgb.shape}; pass a Scene from render_scene")
    f, h, w = scene.rgb.shape[:3]
    expected = {"depth": (f, h, w), "valid": (f, h, w), "world_points": (f, h, w, 3),
                "extrinsics": (f, 4, 4), "intrinsics": (f, 3, 3)}
    for name, shape in expected.items():
        if getattr(scene, name).shape != shape:
            raise Gen3RError(f"scene {name} must have shape {shape} to match rgb, got {getattr(scene, name).shape}")
    for name in ("rgb", "depth", "extrinsics", "intrinsics"):
        if not np.isfinite(getattr(scene, name)).all():
            raise Gen3RError(f"scene {name} contains NaN or inf values; re-render the scene")


def camera_to_world(extrinsics: np.ndarray) -> np.ndarray:
    """Invert OpenCV world-to-camera (F, 4, 4) -> camera-to-world (F, 4, 4) float64 (same axes)."""
    w2c = extrinsics.astype(np.float64)
    rot_t = np.transpose(w2c[:, :3, :3], (0, 2, 1))
    c2w = np.tile(np.eye(4), (len(w2c), 1, 1))
    c2w[:, :3, :3] = rot_t
    c2w[:, :3, 3] = -np.einsum("fij,fj->fi", rot_t, w2c[:, :3, 3])
    return c2w


def _save_rgb(rgb: np.ndarray, path: Path) -> None:
    """Save (H, W, 3) float in [0, 1] as an 8-bit RGB PNG."""
    Image.fromarray(np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)).save(path)


def _save_ground_truth(scene: Scene, path: Path) -> None:
    np.savez(path, depth=scene.depth.astype(np.float32), valid=scene.valid,
                        extrinsics=scene.extrinsics.astype(np.float32),
                        intrinsics=scene.intrinsics.astype(np.float32))


def _as_splits(scenes: Scenes, split: str) -> Mapping[str, Iterable[Scene]]:
    if isinstance(scenes, Mapping):  # a mapping is always split name -> scenes (never scenes as keys)
        return cast(Mapping[str, Iterable[Scene]], scenes)
    if isinstance(scenes, Scene):
        return {split: [scenes]}
    return {split: scenes}


def _frame_intrinsics(k: np.ndarray) -> dict[str, float]:
    return {"fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2])}


# ----------------------------------------------------------------------------------------- official

def _write_official_scene(scene: Scene, folder: Path) -> None:
    check_scene(scene)
    (folder / "images").mkdir(parents=True)
    h, w = scene.image_size
    c2w = camera_to_world(scene.extrinsics)
    frames = []
    for i in range(scene.num_frames):
        name = f"images/frame{i:05d}.png"
        _save_rgb(scene.rgb[i], folder / name)
        frames.append({"file_path": name, "w": w, "h": h, **_frame_intrinsics(scene.intrinsics[i]),
                       "transform_matrix": c2w[i].tolist()})
    transforms = {"camera_model": "OPENCV", "convention": "transform_matrix is camera-to-world, OpenCV axes",
                  "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(transforms, indent=1))
    (folder / "captions.txt").write_text("\n".join(scene.captions or [scene.caption]) + "\n")
    _save_ground_truth(scene, folder / "depth.npz")


def write_official(out_dir: str | Path, scenes: Scenes, *, split: str = "train", overwrite: bool = False) -> Path:
    """Write scenes in the official Gen3R training layout under ``out_dir`` (= ``<root>/<dataset>``).

    ``scenes`` is one :class:`Scene`, an iterable of scenes (all in ``split``) or a mapping
    ``{split: scenes}``. Scene ``i`` of a split goes to ``<out_dir>/<split>/scene_<i:05d>/``; the index
    files ``<out_dir>/<split>_videos_dirs.txt`` (the ``images`` folders),
    ``<split>_cameras_paths.txt`` (``transforms.json``) and ``<split>_captions_paths.txt`` list
    absolute paths, one scene per line. Each scene folder also holds ``depth.npz`` (ground truth).
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    final = out_dir.resolve()
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for split_name, items in _as_splits(scenes, split).items():
            index: dict[str, list[str]] = {"videos_dirs": [], "cameras_paths": [], "captions_paths": []}
            for i, scene in enumerate(tqdm(items, desc=f"official/{split_name}", disable=None, leave=False)):
                rel = Path(split_name) / f"scene_{i:05d}"
                _write_official_scene(scene, tmp / rel)
                index["videos_dirs"].append(str(final / rel / "images"))
                index["cameras_paths"].append(str(final / rel / "transforms.json"))
                index["captions_paths"].append(str(final / rel / "captions.txt"))
            for key, lines in index.items():
                (tmp / f"{split_name}_{key}.txt").write_text("".join(line + "\n" for line in lines))
    logger.info("wrote official-layout dataset to %s", out_dir)
    return out_dir


# -------------------------------------------------------------------------------------------- re10k

def _re10k_lines(scene: Scene, url: str) -> list[str]:
    return re10k_lines(scene.extrinsics, scene.intrinsics, scene.image_size, url)


def write_re10k(out_dir: str | Path, scenes: Scenes, *, split: str = "test", overwrite: bool = False) -> Path:
    """Write scenes in the RealEstate10K layout under ``out_dir``.

    ``scenes`` as in :func:`write_official`. Scene ``i`` of a split is sequence ``scene_<i:05d>``:
    camera file ``<out_dir>/<split>/scene_<i:05d>.txt`` (first line a ``procedural://`` URL, then one
    line per frame: ``timestamp_us fx/w fy/h cx/w cy/h 0 0`` and the OpenCV world-to-camera 3x4
    row-major), frames ``<out_dir>/<split>/frames/scene_<i:05d>/<timestamp_us>.png`` and ground truth
    ``<out_dir>/<split>/depth/scene_<i:05d>.npz``. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for split_name, items in _as_splits(scenes, split).items():
            (tmp / split_name / "depth").mkdir(parents=True)
            for i, scene in enumerate(tqdm(items, desc=f"re10k/{split_name}", disable=None, leave=False)):
                check_scene(scene)
                seq = f"scene_{i:05d}"
                url = f"procedural://gen3r/seed={scene.seed}/kind={scene.kind}/trajectory={scene.trajectory}"
                (tmp / split_name / f"{seq}.txt").write_text("\n".join(_re10k_lines(scene, url)) + "\n")
                frames = tmp / split_name / "frames" / seq
                frames.mkdir(parents=True)
                for ts, rgb in zip(re10k_timestamps(scene.num_frames), scene.rgb, strict=True):
                    _save_rgb(rgb, frames / f"{ts}.png")
                _save_ground_truth(scene, tmp / split_name / "depth" / f"{seq}.npz")
    logger.info("wrote RealEstate10K-layout dataset to %s", out_dir)
    return out_dir


# --------------------------------------------------------------------------------------- nerfstudio

def depth_to_png_mm(depth: np.ndarray) -> np.ndarray:
    """z-depth (H, W) in metres -> uint16 millimetres (0 = no depth); values beyond 65.535 m become 0."""
    mm = np.round(depth.astype(np.float64) * 1000.0)
    too_far = mm > np.iinfo(np.uint16).max
    if too_far.any():
        logger.warning("%d depth values beyond 65.535 m cannot be stored in a 16-bit PNG; written as 0",
                       int(too_far.sum()))
    return np.where(too_far | (mm < 0), 0, mm).astype(np.uint16)


def write_nerfstudio(out_dir: str | Path, scene: Scene, *, depth_png: bool = True, overwrite: bool = False) -> Path:
    """Write one scene as a nerfstudio dataset in ``out_dir``.

    ``transforms.json`` holds shared and per-frame ``w, h, fl_x, fl_y, cx, cy``, ``camera_model
    "OPENCV"`` (no distortion) and per frame ``file_path`` (``images/frame_00001.png``, 1-based as
    nerfstudio's own tools), ``transform_matrix`` = camera-to-world in the **OpenGL** convention
    (camera +x right, +y up, +z backwards) and, with ``depth_png``, ``depth_file_path``
    (``depths/frame_00001.png``: uint16 z-depth in millimetres, 0 = sky; nerfstudio's default
    ``depth_unit_scale_factor`` 1e-3 reads it). ``depth.npz`` holds the float32 ground truth.
    """
    check_scene(scene)
    out_dir = Path(out_dir)
    h, w = scene.image_size
    c2w_gl = camera_to_world(scene.extrinsics) @ OPENGL_TO_OPENCV  # the flip is its own inverse
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        if depth_png:
            (tmp / "depths").mkdir()
        frames = []
        for i in range(scene.num_frames):
            frame = {"file_path": f"images/frame_{i + 1:05d}.png", **_frame_intrinsics(scene.intrinsics[i]),
                     "w": w, "h": h, "transform_matrix": c2w_gl[i].tolist()}
            _save_rgb(scene.rgb[i], tmp / frame["file_path"])
            if depth_png:
                frame["depth_file_path"] = f"depths/frame_{i + 1:05d}.png"
                Image.fromarray(depth_to_png_mm(scene.depth[i])).save(tmp / frame["depth_file_path"])
            frames.append(frame)
        transforms = {"camera_model": "OPENCV", "w": w, "h": h, **_frame_intrinsics(scene.intrinsics[0]),
                      "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames}
        (tmp / "transforms.json").write_text(json.dumps(transforms, indent=1))
        _save_ground_truth(scene, tmp / "depth.npz")
    logger.info("wrote nerfstudio dataset to %s", out_dir)
    return out_dir


# ---------------------------------------------------------------------------------------------- npz

def write_npz(out_dir: str | Path, scene: Scene, *, overwrite: bool = False) -> Path:
    """Write ``<out_dir>/scene.npz`` with every array of ``scene`` (float32 / bool) and its captions."""
    check_scene(scene)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        np.savez(
            tmp / "scene.npz", rgb=scene.rgb, depth=scene.depth, world_points=scene.world_points,
            valid=scene.valid, extrinsics=scene.extrinsics, intrinsics=scene.intrinsics,
            captions=np.array(scene.captions or [scene.caption]), seed=np.int64(scene.seed),
            kind=np.array(scene.kind), trajectory=np.array(scene.trajectory))
    logger.info("wrote %s", out_dir / "scene.npz")
    return out_dir


# -------------------------------------------------------------------------------------------- video

def write_preview(path: str | Path, scene: Scene, fps: int = 10) -> None:
    """Encode the rgb frames of ``scene`` as an H.264 mp4 at ``path`` (odd sizes are padded to even)."""
    import av

    frames = np.round(np.clip(scene.rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
