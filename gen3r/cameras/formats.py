"""Camera files: read and write the trajectory formats users bring to Gen3R.

Formats (``FORMATS``), each documented in ``docs/cameras.md``:

* ``official``: the official Gen3R ``cameras.json`` ``{"extrinsics": F x 4x4 world-to-camera (OpenCV),
  "intrinsics": F x 3x3 pixels}``. The file does not record the image size; the official code assumes
  the 560x560 centre crop. We also write (and read, if present) an extra ``"image_size": [H, W]``,
  which the official reader ignores.
* ``re10k``: RealEstate10K / CameraCtrl / VideoX-Fun ``.txt``: a first line (the video URL), then one
  line per frame ``timestamp fx fy cx cy 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`` with
  intrinsics normalised by the image width (fx, cx) and height (fy, cy) and a 3x4 OpenCV
  world-to-camera matrix. Reading needs ``image_size``.
* ``nerfstudio``: ``transforms.json`` with per-frame ``transform_matrix`` = **OpenGL** camera-to-world
  (x right, y up, z backward) and ``fl_x, fl_y, cx, cy, w, h`` global or per frame (or
  ``camera_angle_x``). Frame order: by ``file_path`` in natural order (``frame_2`` before
  ``frame_10``) when every frame has one, else as listed (:func:`read_transforms_frames`, the one
  reader of transforms.json that cameras, evaluation and training share).
* ``gen3r_transforms``: the same layout with an **OpenCV** camera-to-world ``transform_matrix``, as in
  the official Gen3R training data. It cannot be told apart from ``nerfstudio`` by content: ask for it
  with ``format="gen3r_transforms"``.
* ``colmap``: a COLMAP text model folder (``cameras.txt``, ``images.txt``, ``points3D.txt``).
  ``images.txt`` holds ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` (Hamilton quaternion,
  world-to-camera, OpenCV axes). Reading accepts PINHOLE, SIMPLE_PINHOLE, OPENCV, SIMPLE_RADIAL and
  RADIAL cameras (distortion is ignored with a warning); images are ordered by name (natural sort).
  Writing uses PINHOLE.

Every problem with a file raises one :class:`~gen3r.errors.Gen3RError` naming the file, the line or
field, and the fix. Every write is atomic.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3r.atomic import atomic_path, file_in_the_way
from gen3r.cameras.cameras import Cameras
from gen3r.cameras.names import FORMATS
from gen3r.cameras.pose_encoding import matrix_to_quaternion, quaternion_to_matrix
from gen3r.errors import Gen3RError

__all__ = ["FORMATS", "OFFICIAL_IMAGE_SIZE", "OPENGL_TO_OPENCV", "TransformsFrame", "detect_format", "load_cameras",
           "save_cameras", "read_colmap", "write_colmap", "read_transforms_frames", "natural_key", "RE10K_FPS",
           "re10k_timestamps", "read_re10k_lines", "re10k_lines"]

logger = logging.getLogger(__name__)

OFFICIAL_IMAGE_SIZE = (560, 560)
#: Flips the camera y and z axes: OpenGL (x right, y up, z backward) <-> OpenCV camera frames, on the
#: right of a camera-to-world matrix; self-inverse, so it converts both ways.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_COLMAP_MODELS = {  # model -> (number of params, indices of fx, fy, cx, cy); distortion params follow
    "SIMPLE_PINHOLE": (3, (0, 0, 1, 2)),
    "PINHOLE": (4, (0, 1, 2, 3)),
    "SIMPLE_RADIAL": (4, (0, 0, 1, 2)),
    "RADIAL": (5, (0, 0, 1, 2)),
    "OPENCV": (8, (0, 1, 2, 3)),
}


def _error(path: Path, where: str, problem: str, fix: str) -> Gen3RError:
    where = f" {where}" if where else ""
    return Gen3RError(f"{path}{where}: {problem}; {fix}")


def _build(path: Path, fmt: str, extrinsics: np.ndarray, intrinsics: np.ndarray,
           image_size: tuple[int, int]) -> Cameras:
    """Cameras from float64 arrays, re-raising validation errors with the file name."""
    try:
        return Cameras(torch.from_numpy(extrinsics), torch.from_numpy(intrinsics), image_size)
    except Gen3RError as exc:
        raise Gen3RError(f"{path} ({fmt}): {exc}") from None


def _check_size(path: Path, image_size: Any) -> tuple[int, int] | None:
    return None if image_size is None else _parse_size(path, image_size)


def _parse_size(path: Path, image_size: Any) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
        if height <= 0 or width <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise _error(path, "", f"image_size must be a positive (height, width), got {image_size!r}",
                     "pass image_size=(H, W) in pixels") from None
    return height, width


def _no_skew(cams: Cameras, fmt: str) -> None:
    skew = cams.intrinsics[:, 0, 1].abs()
    if (skew > 1e-9 * cams.intrinsics[:, 0, 0].abs()).any():
        raise Gen3RError(f"the {fmt} format cannot store a skewed intrinsic matrix (K[0, 1] != 0); "
                         "save as 'official' instead")


def _fmt(x: float) -> str:
    return repr(float(x))


# ------------------------------------------------------------------------------------------ detection
def detect_format(path: str | Path, for_writing: bool = False) -> str:
    """Guess the format of ``path`` from its name (and, for reading, its content)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return "re10k"
    if suffix == ".json":
        if for_writing or not path.is_file():
            return "nerfstudio" if path.name.lower() == "transforms.json" else "official"
        head = _load_json(path)
        if isinstance(head, dict) and "frames" in head:
            return "nerfstudio"
        if isinstance(head, dict) and "extrinsics" in head:
            return "official"
        raise _error(path, "", "JSON is neither an official cameras.json (keys 'extrinsics', 'intrinsics') nor a "
                     "transforms.json (key 'frames')", "pass a supported camera file or format=...")
    if suffix == "" or path.is_dir():
        return "colmap"
    raise _error(path, "", f"cannot tell the camera format from the suffix {suffix!r}",
                 f"use .json, .txt or a COLMAP folder, or pass format= one of {', '.join(FORMATS)}")


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Gen3RError(f"unknown camera file format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def load_cameras(path: str | Path, image_size: Sequence[int] | None = None, format: str | None = None) -> Cameras:
    """Read a camera file (format auto-detected unless ``format`` is given).

    Args:
        path: a ``.json`` (official or transforms.json), ``.txt`` (RealEstate10K) or COLMAP folder.
        image_size: (H, W) in pixels the intrinsics refer to, used when the file does not record it
            (required for RealEstate10K; an official cameras.json defaults to the official 560x560).
            Files that record their size (transforms.json, COLMAP, our cameras.json) keep it: bring
            the cameras to the working resolution with :meth:`Cameras.resize_and_center_crop`, as
            the images are.
        format: force one of :data:`FORMATS` (needed for ``gen3r_transforms``).

    Returns:
        :class:`Cameras` (float64) with OpenCV world-to-camera extrinsics and pixel intrinsics.
    """
    path = Path(path)
    if not path.exists():
        raise Gen3RError(f"camera file {path} does not exist; check the path")
    fmt = _check_format(format) if format is not None else detect_format(path)
    size = _check_size(path, image_size)
    if fmt == "official":
        return _read_official(path, size)
    if fmt == "re10k":
        return _read_re10k(path, size)
    if fmt in ("nerfstudio", "gen3r_transforms"):
        return _read_transforms(path, size, opengl=fmt == "nerfstudio")
    if size is not None:
        logger.debug("%s records its image size; image_size=%s is not used", path, size)
    return read_colmap(path)[0]


def save_cameras(cameras: Cameras, path: str | Path, format: str | None = None,
                 image_names: Sequence[str] | None = None) -> Path:
    """Write ``cameras`` atomically (format from ``format`` or the path; see :func:`detect_format`).

    ``image_names`` (one per frame) fill ``file_path`` (transforms.json) or ``NAME`` (COLMAP);
    default ``images/frame_00000.png`` / ``frame_00000.png``. Returns the written path.
    """
    path = Path(path)
    fmt = _check_format(format) if format is not None else detect_format(path, for_writing=True)
    _check_output(path, fmt)
    if fmt == "official":
        _write_official(cameras, path)
    elif fmt == "re10k":
        _write_re10k(cameras, path)
    elif fmt in ("nerfstudio", "gen3r_transforms"):
        _write_transforms(cameras, path, opengl=fmt == "nerfstudio", image_names=image_names)
    else:
        write_colmap(cameras, path, image_names=image_names)
    logger.info("wrote %d cameras to %s (%s)", len(cameras), path, fmt)
    return path


def _check_output(path: Path, fmt: str) -> None:
    """Refuse an output path that cannot be written (before anything is written)."""
    blocked = file_in_the_way(path)
    if blocked is not None:
        raise Gen3RError(f"cannot write {path}: {blocked} is a file, not a folder; choose another output path")
    if fmt == "colmap" and path.exists() and not path.is_dir():
        raise Gen3RError(f"cannot write a COLMAP model to {path}: it is a file; pass a folder path")
    if fmt != "colmap" and path.is_dir():
        raise Gen3RError(f"cannot write {path}: it is a folder; pass a file path (e.g. {path / 'cameras.json'})")


# ------------------------------------------------------------------------------------------ JSON
def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, "", f"cannot read the file ({exc.__class__.__name__})", "check the path") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(path, f"line {exc.lineno} column {exc.colno}", f"invalid JSON ({exc.msg})",
                     "fix the JSON syntax") from None


def _array(path: Path, field: str, value: Any, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """A finite float64 array of one of ``shapes`` (-1 = any positive length) from a JSON value."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _error(path, f"field '{field}'", "is not a rectangular array of numbers",
                     f"write it as nested lists of shape {' or '.join(map(_shape_str, shapes))}") from None
    if not any(arr.ndim == len(s) and all(d == -1 and n > 0 or d == n for d, n in zip(s, arr.shape))
               for s in shapes):
        raise _error(path, f"field '{field}'", f"has shape {arr.shape}",
                     f"expected {' or '.join(map(_shape_str, shapes))}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise _error(path, f"field '{field}' entry {list(map(int, bad))}", "is NaN or infinite",
                     "replace it with a finite number")
    return arr


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("F" if d == -1 else str(d) for d in shape) + ")"


def _read_official(path: Path, image_size: tuple[int, int] | None) -> Cameras:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise _error(path, "", "is not a JSON object", 'write {"extrinsics": [...], "intrinsics": [...]}')
    for key in ("extrinsics", "intrinsics"):
        if key not in data:
            raise _error(path, "", f"missing key '{key}'",
                         'an official cameras.json has "extrinsics" (F x 4x4 w2c) and "intrinsics" (F x 3x3 px)')
    extrinsics = _array(path, "extrinsics", data["extrinsics"], ((-1, 4, 4), (-1, 3, 4)))
    intrinsics = _array(path, "intrinsics", data["intrinsics"], ((-1, 3, 3), (3, 3)))
    if intrinsics.ndim == 3 and intrinsics.shape[0] != extrinsics.shape[0]:
        raise _error(path, "field 'intrinsics'", f"has {intrinsics.shape[0]} matrices but 'extrinsics' has "
                     f"{extrinsics.shape[0]}", "give one intrinsic matrix per frame")
    stored = data.get("image_size")
    if stored is not None:
        return _build(path, "official", extrinsics, intrinsics, _parse_size(path, stored))
    if image_size is None:
        logger.info("%s records no image size; assuming the official %dx%d", path, *OFFICIAL_IMAGE_SIZE)
    return _build(path, "official", extrinsics, intrinsics, image_size or OFFICIAL_IMAGE_SIZE)


def _write_official(cameras: Cameras, path: Path) -> None:
    extrinsics, intrinsics = cameras.numpy()
    data = {"extrinsics": extrinsics.tolist(), "intrinsics": intrinsics.tolist(),
            "image_size": list(cameras.image_size)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _frame_value(path: Path, frame: dict, top: dict, key: str, index: int) -> float | None:
    value = frame.get(key, top.get(key))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _error(path, f"frames[{index}] field '{key}'", f"is {value!r}", "write a finite number")
    return float(value)


def _transforms_intrinsics(path: Path, frame: dict, top: dict, index: int,
                           image_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int] | None]:
    get = lambda key: _frame_value(path, frame, top, key, index)  # noqa: E731
    w, h = get("w"), get("h")
    size = (int(h), int(w)) if w is not None and h is not None else None
    fl_x = get("fl_x")
    if fl_x is None and (angle_x := get("camera_angle_x")) is not None:
        if w is None:
            raise _error(path, f"frames[{index}]", "has 'camera_angle_x' but no 'w'", "add the image width 'w'")
        fl_x = 0.5 * w / math.tan(0.5 * angle_x)
    if fl_x is None:
        raise _error(path, f"frames[{index}]", "missing key 'fl_x' (focal length in pixels)",
                     "add 'fl_x' (and 'fl_y', 'cx', 'cy', 'w', 'h') globally or per frame")
    fl_y = get("fl_y")
    if fl_y is None and (angle_y := get("camera_angle_y")) is not None and h is not None:
        fl_y = 0.5 * h / math.tan(0.5 * angle_y)
    ref = size or image_size
    cx, cy = get("cx"), get("cy")
    if cx is None or cy is None:
        if ref is None:
            raise _error(path, f"frames[{index}]", "missing 'cx'/'cy' and the image size",
                         "add 'cx', 'cy' (or 'w', 'h'), or pass image_size")
        cx = ref[1] / 2 if cx is None else cx
        cy = ref[0] / 2 if cy is None else cy
    k = np.array([[fl_x, 0.0, cx], [0.0, fl_y if fl_y is not None else fl_x, cy], [0.0, 0.0, 1.0]])
    return k, size


@dataclass
class TransformsFrame:
    """One frame of a transforms.json: ``file_path`` as written (None when absent), ``c2w`` 4x4
    OpenCV camera-to-world, ``K`` 3x3 pixel intrinsics, ``size`` (H, W) when recorded (``w``/``h``),
    ``entry`` the frame's own JSON object (e.g. ``depth_file_path``)."""

    file_path: str | None
    c2w: np.ndarray
    K: np.ndarray
    size: tuple[int, int] | None
    entry: dict


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers: ``frame_2`` < ``frame_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_transforms_frames(path: str | Path, opengl: bool = True, image_size: tuple[int, int] | None = None
                           ) -> tuple[list[TransformsFrame], dict]:
    """Every frame of a nerfstudio (``opengl=True``) or official-training (``opengl=False``, OpenCV
    matrices) transforms.json, in **the** frame order: by ``file_path`` in natural order when every
    frame has one, else as listed. Returns the frames and the whole JSON object.

    Intrinsics: ``fl_x`` (or ``camera_angle_x`` with ``w``), ``fl_y`` (default ``fl_x``), ``cx``/``cy``
    (default the image centre from ``w``/``h`` or ``image_size``), per frame or global. Errors name
    the file, the frame and the fix."""
    path = Path(path)
    data = _load_json(path)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise _error(path, "field 'frames'", "is missing or empty",
                     "list one entry per image with a 'transform_matrix'")
    out, distorted = [], False
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise _error(path, f"frames[{i}]", "missing key 'transform_matrix'", "add the 4x4 camera-to-world matrix")
        c2w = _array(path, f"frames[{i}].transform_matrix", frame["transform_matrix"], ((4, 4), (3, 4)))
        if c2w.shape[0] == 3:
            c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
        if abs(np.linalg.det(c2w[:3, :3])) < 1e-8:
            raise _error(path, f"frames[{i}].transform_matrix", "is not invertible",
                         "write a rigid camera-to-world matrix")
        k, size = _transforms_intrinsics(path, frame, data, i, image_size)
        distorted |= any(_frame_value(path, frame, data, key, i) for key in ("k1", "k2", "k3", "k4", "p1", "p2"))
        name = frame.get("file_path")
        if name is not None and not isinstance(name, str):
            raise _error(path, f"frames[{i}].file_path", f"is {name!r}", "write the image path as a string")
        out.append(TransformsFrame(name, c2w @ OPENGL_TO_OPENCV if opengl else c2w, k, size, frame))
    if distorted:
        logger.warning("%s: lens distortion is ignored (pinhole cameras only); undistort the images", path)
    if all(f.file_path is not None for f in out):
        out.sort(key=lambda f: natural_key(f.file_path))
    return out, data


def _read_transforms(path: Path, image_size: tuple[int, int] | None, opengl: bool) -> Cameras:
    fmt = "nerfstudio" if opengl else "gen3r_transforms"
    frames, _ = read_transforms_frames(path, opengl, image_size)
    sizes = {f.size for f in frames}
    if len(sizes) > 1:
        raise _error(path, "fields 'w'/'h'", f"differ between frames ({sorted(s for s in sizes if s)})",
                     "use one image size for the whole sequence")
    size = sizes.pop() or image_size
    if size is None:
        raise _error(path, "", "records no image size ('w', 'h')",
                     "add 'w' and 'h' or pass image_size=(H, W) (`gen3r cameras convert --size HxW`)")
    extrinsics = np.linalg.inv(np.stack([f.c2w for f in frames]))
    return _build(path, fmt, extrinsics, np.stack([f.K for f in frames]), size)


def _write_transforms(cameras: Cameras, path: Path, opengl: bool, image_names: Sequence[str] | None) -> None:
    fmt = "nerfstudio" if opengl else "gen3r_transforms"
    _no_skew(cameras, fmt)
    names = _names(cameras, image_names, "images/frame_{:05d}.png")
    height, width = cameras.image_size
    c2ws = cameras.c2w.detach().cpu().double().numpy()
    _, ks = cameras.numpy()
    frames = []
    for name, c2w, k in zip(names, c2ws, ks):
        frames.append({
            "file_path": name, "transform_matrix": (c2w @ OPENGL_TO_OPENCV if opengl else c2w).tolist(),
            "fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2]),
            "w": width, "h": height,
        })
    data = {"camera_model": "OPENCV", "w": width, "h": height, "frames": frames}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _names(cameras: Cameras, image_names: Sequence[str] | None, pattern: str) -> list[str]:
    if image_names is None:
        return [pattern.format(i) for i in range(len(cameras))]
    names = [str(n) for n in image_names]
    if len(names) != len(cameras):
        raise Gen3RError(f"got {len(names)} image names for {len(cameras)} cameras; pass one name per camera")
    return names


# ------------------------------------------------------------------------------------------ RealEstate10K
#: Frame rate of the RealEstate10K timestamps we write (microseconds, starting at 0).
RE10K_FPS = 30.0


def re10k_timestamps(num_frames: int, fps: float = RE10K_FPS) -> list[int]:
    """Frame timestamps in microseconds at ``fps`` frames per second, starting at 0."""
    return [int(round(i * 1e6 / fps)) for i in range(num_frames)]


@dataclass
class Re10kLine:
    """One camera line of a RealEstate10K file: ``timestamp`` as written (it names the frame image),
    ``intrinsics`` (fx/w, fy/h, cx/w, cy/h) normalised, ``w2c`` 4x4 OpenCV world-to-camera."""

    timestamp: str
    intrinsics: tuple[float, float, float, float]
    w2c: np.ndarray


def read_re10k_lines(path: str | Path) -> list[Re10kLine]:
    """The camera lines of a RealEstate10K ``.txt`` (the URL line skipped), checked: 19 finite numbers,
    an invertible rotation. The one reader of the format (cameras and ``gen3r eval``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, "", f"cannot read the file ({exc.__class__.__name__})", "check the path") from None
    out = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if number == 1 and not _is_number(tokens[0]):
            continue  # the video URL
        if len(tokens) != 19:
            raise _error(path, f"line {number}", f"has {len(tokens)} values, expected 19",
                         "write 'timestamp fx fy cx cy 0 0' then the 12 numbers of the 3x4 world-to-camera matrix")
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise _error(path, f"line {number}", "contains a non-numeric value", "write numbers only") from None
        if not all(math.isfinite(v) for v in values):
            raise _error(path, f"line {number}", "contains NaN or inf", "write finite numbers")
        w2c = np.eye(4)
        w2c[:3] = np.array(values[7:], dtype=np.float64).reshape(3, 4)
        if abs(np.linalg.det(w2c[:3, :3])) < 1e-8:
            raise _error(path, f"line {number}", "the 3x4 world-to-camera matrix is not invertible",
                         "write a rotation in r11..r33")
        fx, fy, cx, cy = values[1:5]
        out.append(Re10kLine(tokens[0], (fx, fy, cx, cy), w2c))
    if not out:
        raise _error(path, "", "contains no camera lines", "write one line per frame after the URL line")
    return out


def re10k_lines(extrinsics: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int],
                url: str = "https://gen3r.invalid/camera-trajectory") -> list[str]:
    """The lines of a RealEstate10K file: ``url`` (readers skip it), then per frame the timestamp at
    30 fps, the normalised intrinsics, ``0 0`` and the 3x4 OpenCV world-to-camera matrix (row-major)."""
    height, width = image_size
    lines = [url]
    for timestamp, w2c, k in zip(re10k_timestamps(len(extrinsics)), extrinsics, intrinsics, strict=True):
        norm = (k[0, 0] / width, k[1, 1] / height, k[0, 2] / width, k[1, 2] / height)
        lines.append(" ".join([str(timestamp), *map(_fmt, norm), "0", "0",
                               *map(_fmt, np.asarray(w2c)[:3, :4].reshape(-1))]))
    return lines


def _read_re10k(path: Path, image_size: tuple[int, int] | None) -> Cameras:
    if image_size is None:
        raise _error(path, "", "RealEstate10K files store normalised intrinsics and no image size",
                     "pass image_size=(H, W) (`gen3r cameras convert --size HxW`)")
    height, width = image_size
    parsed = read_re10k_lines(path)
    intrinsics = [[[fx * width, 0.0, cx * width], [0.0, fy * height, cy * height], [0.0, 0.0, 1.0]]
                  for fx, fy, cx, cy in (line.intrinsics for line in parsed)]
    return _build(path, "re10k", np.stack([line.w2c[:3] for line in parsed]), np.array(intrinsics), image_size)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _write_re10k(cameras: Cameras, path: Path) -> None:
    _no_skew(cameras, "re10k")
    extrinsics, intrinsics = cameras.numpy()
    lines = re10k_lines(extrinsics, intrinsics, cameras.image_size)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------ COLMAP
def _colmap_folder(path: Path) -> Path:
    for folder in (path, path / "sparse" / "0", path / "sparse"):
        if (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file():
            return folder
    if any((folder / "cameras.bin").is_file() for folder in (path, path / "sparse" / "0", path / "sparse")):
        raise _error(path, "", "is a binary COLMAP model", "convert it with `colmap model_converter --input_path "
                     f"{path} --output_path {path} --output_type TXT`")
    raise _error(path, "", "has no cameras.txt and images.txt", "pass a COLMAP text model folder")


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, "", f"cannot read the file ({exc.__class__.__name__})", "check the path") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1)]


def _read_colmap_cameras(path: Path) -> dict[int, tuple[np.ndarray, tuple[int, int]]]:
    cameras = {}
    for number, line in _data_lines(path):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        where = f"line {number}"
        if len(tokens) < 4:
            raise _error(path, where, "is too short", "write 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]'")
        model = tokens[1]
        if model not in _COLMAP_MODELS:
            raise _error(path, where, f"camera model {model} is not supported",
                         f"undistort to PINHOLE (`colmap image_undistorter`) or use {', '.join(_COLMAP_MODELS)}")
        count, (ifx, ify, icx, icy) = _COLMAP_MODELS[model]
        try:
            cam_id, width, height = int(tokens[0]), int(tokens[2]), int(tokens[3])
            params = [float(t) for t in tokens[4:]]
        except ValueError:
            raise _error(path, where, "contains a malformed number",
                         "write 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]'") from None
        if len(params) != count:
            raise _error(path, where, f"{model} needs {count} parameters, got {len(params)}", "fix the parameter list")
        if not all(math.isfinite(p) for p in params) or width <= 0 or height <= 0:
            raise _error(path, where, "has NaN/inf parameters or a non-positive size", "write finite values")
        if any(params[max(ifx, ify, icx, icy) + 1:]):
            logger.warning("%s %s: lens distortion of %s camera %d is ignored", path, where, model, cam_id)
        k = np.array([[params[ifx], 0.0, params[icx]], [0.0, params[ify], params[icy]], [0.0, 0.0, 1.0]])
        cameras[cam_id] = (k, (height, width))
    return cameras


def read_colmap(folder: str | Path) -> tuple[Cameras, list[str]]:
    """Read a COLMAP text model: (:class:`Cameras` ordered by image name, the image names)."""
    folder = _colmap_folder(Path(folder))
    intrinsics_by_id = _read_colmap_cameras(folder / "cameras.txt")
    images_path = folder / "images.txt"
    entries = []
    lines = iter(_data_lines(images_path))
    for number, line in lines:
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        where = f"line {number}"
        if len(tokens) < 10:
            raise _error(images_path, where, f"has {len(tokens)} values, expected at least 10",
                         "write 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME' followed by a (possibly empty) "
                         "POINTS2D line")
        try:
            qw, qx, qy, qz, tx, ty, tz = (float(t) for t in tokens[1:8])
            cam_id = int(tokens[8])
        except ValueError:
            raise _error(images_path, where, "contains a malformed number", "fix the numbers") from None
        if not all(math.isfinite(v) for v in (qw, qx, qy, qz, tx, ty, tz)):
            raise _error(images_path, where, "contains NaN or inf", "write finite numbers")
        if qw * qw + qx * qx + qy * qy + qz * qz < 1e-12:
            raise _error(images_path, where, "quaternion is zero (not invertible)",
                         "write a unit quaternion QW QX QY QZ")
        if cam_id not in intrinsics_by_id:
            raise _error(images_path, where, f"refers to CAMERA_ID {cam_id}, which cameras.txt does not define",
                         "add the camera or fix the id")
        rotation = quaternion_to_matrix(torch.tensor([qx, qy, qz, qw], dtype=torch.float64)).numpy()
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = rotation, (tx, ty, tz)
        entries.append((" ".join(tokens[9:]), w2c, *intrinsics_by_id[cam_id]))
        next(lines, None)  # the POINTS2D line that follows every image line
    if not entries:
        raise _error(images_path, "", "lists no images", "register images with COLMAP first")
    sizes = {size for *_, size in entries}
    if len(sizes) > 1:
        raise _error(folder / "cameras.txt", "", f"cameras have different image sizes {sorted(sizes)}",
                     "use one image size for the whole sequence")
    entries.sort(key=lambda entry: natural_key(entry[0]))
    cams = _build(folder, "colmap", np.stack([e[1] for e in entries]), np.stack([e[2] for e in entries]),
                  sizes.pop())
    return cams, [e[0] for e in entries]


def write_colmap(cameras: Cameras, folder: str | Path, points: np.ndarray | torch.Tensor | None = None,
                 colors: np.ndarray | torch.Tensor | None = None,
                 image_names: Sequence[str] | None = None) -> Path:
    """Write a COLMAP text model (cameras.txt, images.txt, points3D.txt) into ``folder``.

    Args:
        cameras: the cameras; one PINHOLE camera is written when all intrinsics are equal, else one per image.
        folder: output folder (created; each file is written atomically).
        points: optional (N, 3) world points, scene units, for points3D.txt (empty file otherwise).
        colors: optional (N, 3) colours, uint8 or floats in [0, 1]; default grey.
        image_names: one NAME per camera (no whitespace); default ``frame_00000.png``, ...

    Returns:
        The folder.
    """
    folder = Path(folder)
    _no_skew(cameras, "colmap")
    names = _names(cameras, image_names, "frame_{:05d}.png")
    if any(not n or any(c.isspace() for c in n) for n in names):
        raise Gen3RError("COLMAP image names must be non-empty and contain no whitespace; rename the images")
    xyz, rgb = _points(points, colors)
    extrinsics, intrinsics = cameras.numpy()
    shared = bool(np.allclose(intrinsics, intrinsics[:1], rtol=0, atol=0))
    height, width = cameras.image_size
    cam_lines = ["# Camera list with one line of data per camera:",
                 "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                 f"# Number of cameras: {1 if shared else len(names)}"]
    for i, k in enumerate(intrinsics[:1] if shared else intrinsics):
        cam_lines.append(" ".join([str(i + 1), "PINHOLE", str(width), str(height),
                                   *map(_fmt, (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))]))
    quats = matrix_to_quaternion(torch.from_numpy(extrinsics[:, :3, :3])).numpy()  # x, y, z, w
    img_lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {len(names)}"]
    for i, (name, q, w2c) in enumerate(zip(names, quats, extrinsics)):
        values = (q[3], q[0], q[1], q[2], *w2c[:3, 3])
        img_lines += [" ".join([str(i + 1), *map(_fmt, values), str(1 if shared else i + 1), name]), ""]
    pts_lines = ["# 3D point list with one line of data per point:",
                 "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
                 f"# Number of points: {len(xyz)}"]
    pts_lines += [f"{i + 1} {_fmt(p[0])} {_fmt(p[1])} {_fmt(p[2])} {c[0]} {c[1]} {c[2]} 0"
                  for i, (p, c) in enumerate(zip(xyz, rgb))]
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("cameras.txt", cam_lines), ("images.txt", img_lines), ("points3D.txt", pts_lines)):
        with atomic_path(folder / name) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _points(points: Any, colors: Any) -> tuple[np.ndarray, np.ndarray]:
    if points is None:
        if colors is not None:
            raise Gen3RError("colors were given without points; pass points (N, 3) too")
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    xyz = (points.detach().cpu().double().numpy() if isinstance(points, torch.Tensor)
           else np.asarray(points, dtype=np.float64))
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise Gen3RError(f"points must have shape (N, 3), got {xyz.shape}")
    if not np.isfinite(xyz).all():
        raise Gen3RError("points contain NaN or inf; filter them before writing")
    if colors is None:
        return xyz, np.full(xyz.shape, 128, dtype=np.uint8)
    rgb = colors.detach().cpu().numpy() if isinstance(colors, torch.Tensor) else np.asarray(colors)
    if rgb.shape != xyz.shape:
        raise Gen3RError(f"colors must have the shape of points {xyz.shape}, got {rgb.shape}")
    if rgb.dtype == np.uint8:
        return xyz, rgb
    if not np.issubdtype(rgb.dtype, np.floating) or not np.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 1:
        raise Gen3RError("colors must be uint8 or floats in [0, 1]")
    return xyz, np.round(rgb * 255).astype(np.uint8)
