"""Readers for the evaluation datasets of the Gen3R paper, returning one common sequence type.

Every reader lists sequence names (optionally restricted by a split file, one name per line)
and loads any frames of a sequence as a :class:`SequenceData`:

* ``frames``: ``(F, 3, H, W)`` float32 torch RGB in ``[0, 1]`` (the layout of the whole evaluation, from
  here to the metrics);
* ``extrinsics``: ``(F, 4, 4)`` float64 OpenCV world-to-camera (x right, y down, z forward),
  translation in the dataset's unit (metres where the dataset is metric);
* ``intrinsics``: ``(F, 3, 3)`` float64 in pixels of the returned frames;
* ``depth``: ``(F, H, W)`` float32 z-depth in the same unit, 0 where unknown, or ``None``.

Layouts:

* :class:`RealEstate10KReader`: ``<root>/<split>/<seq>.txt`` (URL line, then per frame
  ``timestamp fx/w fy/h cx/w cy/h 0 0`` + 3x4 world-to-camera row-major) with frames
  ``<frames_dir>/<seq>/<timestamp>.{png,jpg}``; optional ground-truth ``<root>/<split>/depth/<seq>.npz``
  (procedural data written by :func:`gen3r.data.writers.write_re10k`).
* :class:`NerfstudioReader` (DL3DV-10K): one folder per scene with ``transforms.json`` (OpenGL
  camera-to-world) directly or under ``nerfstudio/``; ``images_dir`` picks a resolution folder
  (``images_4``) and intrinsics are rescaled to the image read; 16-bit depth PNGs via
  ``depth_file_path`` x ``depth_unit_scale_factor``.
* :class:`OfficialLayoutReader`: the official Gen3R layout (``<split>_videos_dirs.txt`` /
  ``<split>_cameras_paths.txt``; ``transforms.json`` with OpenCV camera-to-world).
* :class:`Co3Dv2Reader`: ``<root>/<category>/frame_annotations.jgz`` (PyTorch3D cameras, NDC
  intrinsics), depth PNGs holding float16 bits x ``scale_adjustment``, depth masks;
  ``set_lists/set_lists_<subset>.json`` for splits.
* :class:`WildRGBDReader`: ``<root>/<category>/scenes/<scene>/`` with ``rgb/``, ``depth/``
  (uint16 millimetres), ``metadata`` (JSON ``K``, column-major) and ``cam_poses.txt``
  (``frame_id`` + flattened 4x4 OpenCV camera-to-world).
* :class:`TartanAirReader`: ``<root>/<env>/<Easy|Hard>/<Pxxx>/`` with ``image_left/``,
  ``depth_left/*_left_depth.npy`` (metres) and ``pose_left.txt`` (``tx ty tz qx qy qz qw``,
  camera-to-world in NED axes, converted with TartanAir's ``ned2cam``); fixed intrinsics
  fx = fy = 320, cx = 320, cy = 240.

Sampling (paper section 4.2): :func:`sample_sequences` draws sequences, :func:`sample_frame_indices`
takes 49 consecutive frames; the conditioning views (1-view: first frame; 2-view: first and last)
are the pipeline's own rule (:func:`gen3r.pipeline.conditioning.condition_indices`).
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from gen3r.cameras.formats import read_re10k_lines, read_transforms_frames
from gen3r.data.official_layout import read_official_index
from gen3r.defaults import DEFAULT_NUM_FRAMES
from gen3r.errors import Gen3RError
from gen3r.io.images import image_size, read_rgb

logger = logging.getLogger(__name__)

PAPER_NUM_FRAMES = DEFAULT_NUM_FRAMES
# TartanAir ``ned2cam``: camera (x right, y down, z forward) <- NED body (x forward, y right, z down)
NED_TO_CAM = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
TARTANAIR_INTRINSICS = np.array([[320.0, 0.0, 320.0], [0.0, 320.0, 240.0], [0.0, 0.0, 1.0]])


@dataclass
class SequenceData:
    """Frames, cameras and optional depth of one sequence (conventions in the module docstring)."""

    name: str
    frames: torch.Tensor
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    depth: np.ndarray | None
    frame_ids: list[str]

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class _Frame:
    """One frame on disk: image path, OpenCV w2c (4x4), pixel intrinsics at ``size`` (W, H)."""

    image: Path
    w2c: np.ndarray
    K: np.ndarray
    frame_id: str
    size: tuple[int, int] | None = None  # (W, H) the intrinsics refer to; None = the image's own size
    depth: Callable[[], np.ndarray] | None = None


# ------------------------------------------------------------------------------------------ helpers

def read_split_file(path: str | Path) -> list[str]:
    """Sequence names from a split file: one per line; blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise Gen3RError(f"split file {path} does not exist; pass an existing file with one sequence name per line")
    return [s for s in (line.split("#", 1)[0].strip() for line in path.read_text().splitlines()) if s]


def _read_json(path: Path) -> Any:
    try:
        if path.suffix in (".jgz", ".gz"):
            with gzip.open(path, "rt") as f:
                return json.load(f)
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise Gen3RError(f"{path} does not exist; check the dataset root") from exc
    except (OSError, ValueError) as exc:
        raise Gen3RError(f"cannot parse {path} ({exc}); the file is corrupt, re-download it") from exc


def _read_rgb(path: Path) -> np.ndarray:
    return read_rgb(path, "frame", "re-extract the frames (a missing one means the dataset is incomplete)")


def _read_png16(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img).astype(np.uint16)
    except OSError as exc:
        raise Gen3RError(f"cannot read depth PNG {path} ({exc}); re-extract the depth maps") from exc


def _intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _invert(t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


def _pose_4x4(values: Sequence[float] | np.ndarray, where: str) -> np.ndarray:
    m = np.asarray(values, dtype=np.float64)
    if m.size == 12:
        m = np.vstack([m.reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
    if m.shape not in ((4, 4), (16,)) or not np.isfinite(m).all():
        raise Gen3RError(f"bad camera matrix in {where}; expected 12 or 16 finite numbers")
    return m.reshape(4, 4)


# ------------------------------------------------------------------------------------------- readers

class SequenceReader(ABC):
    """Base reader: subclasses list names and describe frames; loading is shared."""

    dataset: str = ""

    def __init__(self, split_file: str | Path | None = None) -> None:
        self._split = read_split_file(split_file) if split_file is not None else None
        self._cache: dict[str, list[_Frame]] = {}
        self._found: list[str] | None = None

    @abstractmethod
    def _all_names(self) -> list[str]:
        """Every sequence found on disk, sorted."""

    @abstractmethod
    def _frames(self, name: str) -> list[_Frame]:
        """The frames of sequence ``name`` in temporal order."""

    def _on_disk(self) -> list[str]:
        if self._found is None:
            self._found = self._all_names()
        return self._found

    def names(self) -> list[str]:
        """Sequence names, restricted to the split file when one was given."""
        found = self._on_disk()
        if self._split is None:
            return found
        missing = sorted(set(self._split) - set(found))
        if missing:
            raise Gen3RError(f"{self.dataset}: {len(missing)} split sequences are not on disk (e.g. {missing[0]}); "
                             "download them or fix the split file")
        return list(self._split)

    def frames_of(self, name: str) -> list[_Frame]:
        if name not in self._cache:
            if name not in self._on_disk():
                raise Gen3RError(f"{self.dataset}: no sequence {name!r}; list the available ones with .names()")
            frames = self._frames(name)
            if not frames:
                raise Gen3RError(f"{self.dataset}: sequence {name!r} has no frames; the download is incomplete")
            self._cache[name] = frames
        return self._cache[name]

    def num_frames(self, name: str) -> int:
        """Number of frames of sequence ``name``."""
        return len(self.frames_of(name))

    def load(self, name: str, indices: Sequence[int] | np.ndarray | None = None,
             with_depth: bool = True) -> SequenceData:
        """Load frames ``indices`` (default: all) of sequence ``name``."""
        frames = self.frames_of(name)
        idx = list(range(len(frames))) if indices is None else [int(i) for i in indices]
        if any(i < 0 or i >= len(frames) for i in idx):
            raise Gen3RError(f"{self.dataset}: frame indices {min(idx)}..{max(idx)} outside 0..{len(frames) - 1} "
                             f"of {name!r}; sample fewer frames")
        rgb, ks = [], []
        for i in idx:
            image = _read_rgb(frames[i].image)
            h, w = image.shape[:2]
            k = frames[i].K.copy()
            size = frames[i].size
            if size is not None and size != (w, h):
                sx, sy = w / size[0], h / size[1]
                k[0] *= sx
                k[1] *= sy
            if rgb and image.shape != rgb[0].shape:
                raise Gen3RError(f"{self.dataset}: frames of {name!r} differ in size ({image.shape} vs {rgb[0].shape})")
            rgb.append(image)
            ks.append(k)
        depth = None
        if with_depth and all(frames[i].depth is not None for i in idx):
            depth = np.stack([self._depth(frames[i], rgb[0].shape[:2]) for i in idx]).astype(np.float32)
        frames_chw = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).contiguous()
        return SequenceData(name=name, frames=frames_chw, extrinsics=np.stack([frames[i].w2c for i in idx]),
                            intrinsics=np.stack(ks), depth=depth, frame_ids=[frames[i].frame_id for i in idx])

    def _depth(self, frame: _Frame, hw: tuple[int, int]) -> np.ndarray:
        assert frame.depth is not None, "load reads depth only when every frame has it"
        d = np.asarray(frame.depth(), dtype=np.float32)
        if d.shape != hw:
            raise Gen3RError(f"{self.dataset}: depth of {frame.image} has shape {d.shape}, image {hw}; "
                             "use the depth maps of the same resolution")
        return np.where(np.isfinite(d) & (d > 0), d, 0.0)


class RealEstate10KReader(SequenceReader):
    """RealEstate10K camera files plus extracted frames (see module docstring)."""

    dataset = "RealEstate10K"

    def __init__(self, root: str | Path, split: str = "test", frames_dir: str | Path | None = None,
                 split_file: str | Path | None = None) -> None:
        super().__init__(split_file)
        self.cameras_dir = Path(root) / split
        if not self.cameras_dir.is_dir():
            raise Gen3RError(f"RealEstate10K: {self.cameras_dir} does not exist; "
                             "pass the folder that holds <split>/*.txt")
        self.frames_dir = Path(frames_dir) if frames_dir is not None else self.cameras_dir / "frames"

    def _all_names(self) -> list[str]:
        return sorted(p.stem for p in self.cameras_dir.glob("*.txt"))

    def _frames(self, name: str) -> list[_Frame]:
        path = self.cameras_dir / f"{name}.txt"
        gt = self.cameras_dir / "depth" / f"{name}.npz"
        depth = _npz_depth_loader(gt) if gt.is_file() else None
        out = []
        for n, line in enumerate(read_re10k_lines(path)):
            image = _find_image(self.frames_dir / name, line.timestamp)
            w, h = image_size(image)
            fx, fy, cx, cy = line.intrinsics
            out.append(_Frame(image=image, w2c=line.w2c, K=_intrinsics(fx * w, fy * h, cx * w, cy * h),
                              frame_id=line.timestamp, depth=None if depth is None else functools.partial(depth, n)))
        return out


def _find_image(folder: Path, stem: str) -> Path:
    for ext in (".png", ".jpg", ".jpeg"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise Gen3RError(f"no frame {stem}.png/.jpg in {folder}; extract the RealEstate10K frames first")


def _npz_depth_loader(path: Path) -> Callable[[int], np.ndarray]:
    """Per-frame depth from a ground-truth ``.npz`` (``depth`` (F, H, W), ``valid`` mask), read lazily once."""
    cache: dict[str, np.ndarray] = {}

    def load(i: int) -> np.ndarray:
        if not cache:
            with np.load(path) as z:
                cache["depth"] = np.where(z["valid"], z["depth"], 0.0) if "valid" in z else z["depth"]
        return cache["depth"][i]
    return load


def _png_depth(path: Path, scale: float) -> np.ndarray:
    """16-bit depth PNG times ``scale`` (e.g. 1e-3 for millimetres -> metres)."""
    return _read_png16(path).astype(np.float32) * scale


def _transforms_frames(transforms_path: Path, opengl: bool, images_dir: str | None,
                       depth_scale: float) -> list[_Frame]:
    """Frames of a nerfstudio / official ``transforms.json`` in the shared frame order
    (:func:`gen3r.cameras.formats.read_transforms_frames`); each needs a ``file_path`` and ``w``/``h``."""
    frames, _ = read_transforms_frames(transforms_path, opengl=opengl)
    base = transforms_path.parent
    gt = base / "depth.npz"
    npz_depth = _npz_depth_loader(gt) if gt.is_file() else None
    out = []
    for n, fr in enumerate(frames):
        if fr.file_path is None or fr.size is None:
            raise Gen3RError(f"frame {n} of {transforms_path} lacks file_path or w/h; every frame needs its image "
                             "path and size")
        rel = Path(fr.file_path)
        if images_dir is not None:
            rel = Path(images_dir, *rel.parts[1:])
        depth = None
        if "depth_file_path" in fr.entry:
            depth = functools.partial(_png_depth, base / fr.entry["depth_file_path"], depth_scale)
        elif npz_depth is not None:
            depth = functools.partial(npz_depth, n)
        height, width = fr.size
        out.append(_Frame(image=base / rel, w2c=_invert(fr.c2w), K=fr.K, frame_id=rel.stem, size=(width, height),
                          depth=depth))
    return out


class NerfstudioReader(SequenceReader):
    """Nerfstudio-format scenes (DL3DV-10K): one sub-folder per scene (see module docstring)."""

    dataset = "DL3DV (nerfstudio)"

    def __init__(self, root: str | Path, images_dir: str | None = None, depth_unit_scale_factor: float = 1e-3,
                 split_file: str | Path | None = None) -> None:
        super().__init__(split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise Gen3RError(f"nerfstudio: dataset root {self.root} does not exist")
        self.images_dir = images_dir
        self.depth_scale = depth_unit_scale_factor

    def _transforms(self, name: str) -> Path:
        for cand in (self.root / name / "transforms.json", self.root / name / "nerfstudio" / "transforms.json"):
            if cand.is_file():
                return cand
        raise Gen3RError(f"nerfstudio: no transforms.json for scene {name!r} under {self.root}")

    def _all_names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()
                      if (p / "transforms.json").is_file() or (p / "nerfstudio" / "transforms.json").is_file())

    def _frames(self, name: str) -> list[_Frame]:
        return _transforms_frames(self._transforms(name), True, self.images_dir, self.depth_scale)


class OfficialLayoutReader(SequenceReader):
    """The official Gen3R dataset layout (index files + per-scene ``transforms.json``, OpenCV c2w)."""

    dataset = "official layout"

    def __init__(self, root: str | Path, split: str = "test", split_file: str | Path | None = None) -> None:
        super().__init__(split_file)
        scenes = read_official_index(root, split, require_captions=False)
        self._paths: dict[str, Path] = {scene.name: scene.transforms for scene in scenes}

    def _all_names(self) -> list[str]:
        return sorted(self._paths)

    def _frames(self, name: str) -> list[_Frame]:
        return _transforms_frames(self._paths[name], False, None, 1.0)


def _co3d_camera(viewpoint: dict, size_hw: Sequence[int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch3D (row-vector R, T, NDC focal / principal point) -> OpenCV w2c and pixel K."""
    try:
        rot = np.asarray(viewpoint["R"], np.float64)
        trans = np.asarray(viewpoint["T"], np.float64)
        focal = np.asarray(viewpoint["focal_length"], np.float64)
        pp = np.asarray(viewpoint["principal_point"], np.float64)
        fmt = viewpoint.get("intrinsics_format", "ndc_norm_image_bounds").lower()
    except KeyError as exc:
        raise Gen3RError(f"Co3Dv2: viewpoint of {where} lacks {exc}; the annotation file is not Co3Dv2") from exc
    half_wh = np.array([size_hw[1], size_hw[0]], np.float64) / 2.0
    if fmt == "ndc_isotropic":
        rescale = np.full(2, half_wh.min())
    elif fmt == "ndc_norm_image_bounds":
        rescale = half_wh
    else:
        raise Gen3RError(f"Co3Dv2: unknown intrinsics_format {fmt!r} in {where}")
    f_px = focal * rescale
    c_px = half_wh - pp * rescale
    flip = np.diag([-1.0, -1.0, 1.0])  # PyTorch3D camera (x left, y up) -> OpenCV (x right, y down)
    w2c = np.eye(4)
    w2c[:3, :3] = flip @ rot.T
    w2c[:3, 3] = flip @ trans
    return w2c, _intrinsics(f_px[0], f_px[1], c_px[0], c_px[1])


def _co3d_depth(path: Path, scale: float, mask_path: Path | None) -> np.ndarray:
    """Co3D depth PNG: uint16 pixels holding float16 bits, times ``scale_adjustment``, masked."""
    raw = _read_png16(path)
    depth = raw.view(np.float16).astype(np.float32) * scale
    if mask_path is not None and mask_path.is_file():
        with Image.open(mask_path) as m:
            depth = np.where(np.asarray(m) > 0, depth, 0.0)
    return depth


class Co3Dv2Reader(SequenceReader):
    """Co3Dv2: names are ``<category>/<sequence>``; ``subset`` + ``split`` select a set list."""

    dataset = "Co3Dv2"

    def __init__(self, root: str | Path, categories: Sequence[str] | None = None, subset: str | None = None,
                 split: str = "test", split_file: str | Path | None = None) -> None:
        super().__init__(split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise Gen3RError(f"Co3Dv2: dataset root {self.root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if (p / "frame_annotations.jgz").is_file())
        self.categories = list(categories) if categories is not None else found
        for c in self.categories:
            if c not in found:
                raise Gen3RError(f"Co3Dv2: no {c}/frame_annotations.jgz under {self.root}; download that category")
        self.subset, self.split = subset, split
        self._annotations: dict[str, dict[str, list[dict]]] = {}

    def _category(self, cat: str) -> dict[str, list[dict]]:
        if cat not in self._annotations:
            by_seq: dict[str, list[dict]] = {}
            for entry in _read_json(self.root / cat / "frame_annotations.jgz"):
                by_seq.setdefault(entry["sequence_name"], []).append(entry)
            if self.subset is not None:
                lists = _read_json(self.root / cat / "set_lists" / f"set_lists_{self.subset}.json")
                keep = {row[0] for row in lists.get(self.split, [])}
                by_seq = {k: v for k, v in by_seq.items() if k in keep}
            self._annotations[cat] = {k: sorted(v, key=lambda e: e["frame_number"]) for k, v in by_seq.items()}
        return self._annotations[cat]

    def _all_names(self) -> list[str]:
        return sorted(f"{c}/{s}" for c in self.categories for s in self._category(c))

    def _frames(self, name: str) -> list[_Frame]:
        cat, seq = name.split("/", 1)
        out = []
        for e in self._category(cat)[seq]:
            where = f"{name} frame {e['frame_number']}"
            w2c, k = _co3d_camera(e["viewpoint"], e["image"]["size"], where)
            depth = None
            if e.get("depth") and e["depth"].get("path"):
                d = e["depth"]
                mask = self.root / d["mask_path"] if d.get("mask_path") else None
                depth = functools.partial(_co3d_depth, self.root / d["path"],
                                          float(d.get("scale_adjustment", 1.0)), mask)
            out.append(_Frame(image=self.root / e["image"]["path"], w2c=w2c, K=k, frame_id=str(e["frame_number"]),
                              size=(int(e["image"]["size"][1]), int(e["image"]["size"][0])), depth=depth))
        return out


class WildRGBDReader(SequenceReader):
    """WildRGB-D: names are ``<category>/<scene>`` (see module docstring)."""

    dataset = "WildRGB-D"

    def __init__(self, root: str | Path, split_file: str | Path | None = None) -> None:
        super().__init__(split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise Gen3RError(f"WildRGB-D: dataset root {self.root} does not exist")

    def _all_names(self) -> list[str]:
        return sorted(f"{p.parent.parent.name}/{p.name}" for p in self.root.glob("*/scenes/*")
                      if (p / "cam_poses.txt").is_file())

    def _frames(self, name: str) -> list[_Frame]:
        cat, scene = name.split("/", 1)
        folder = self.root / cat / "scenes" / scene
        meta = _read_json(folder / "metadata")
        try:
            k = np.asarray(meta["K"], np.float64).reshape(3, 3).T
            size = (int(meta["w"]), int(meta["h"])) if "w" in meta and "h" in meta else None
        except (KeyError, TypeError, ValueError) as exc:
            raise Gen3RError(f"WildRGB-D: {folder / 'metadata'} has no valid K ({exc})") from exc
        out = []
        for n, line in enumerate((folder / "cam_poses.txt").read_text().splitlines()):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 17:
                raise Gen3RError(f"WildRGB-D: line {n + 1} of {folder / 'cam_poses.txt'} has {len(parts)} fields, "
                                 "expected frame id + 16 numbers")
            fid = int(parts[0])
            stem = _find_frame_stem(folder / "rgb", fid)
            c2w = _pose_4x4([float(v) for v in parts[1:]], str(folder / "cam_poses.txt"))
            depth_path = folder / "depth" / f"{stem}.png"
            depth = functools.partial(_png_depth, depth_path, 1e-3) if depth_path.is_file() else None
            out.append(_Frame(image=folder / "rgb" / f"{stem}.png", w2c=_invert(c2w), K=k.copy(), frame_id=stem,
                              size=size, depth=depth))
        return out


def _find_frame_stem(folder: Path, fid: int) -> str:
    for stem in (f"{fid:05d}", str(fid), f"{fid:06d}"):
        if (folder / f"{stem}.png").is_file():
            return stem
    raise Gen3RError(f"WildRGB-D: no image for frame {fid} in {folder}; the scene is incomplete")


class TartanAirReader(SequenceReader):
    """TartanAir (left camera): names are ``<env>/<Easy|Hard>/<Pxxx>`` (see module docstring).

    ``max_depth`` (metres) marks farther pixels (TartanAir's sky is ~10 000 m) as unknown; ``None``
    keeps the raw values.
    """

    dataset = "TartanAir"

    def __init__(self, root: str | Path, max_depth: float | None = None,
                 split_file: str | Path | None = None) -> None:
        super().__init__(split_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise Gen3RError(f"TartanAir: dataset root {self.root} does not exist")
        self.max_depth = max_depth

    def _all_names(self) -> list[str]:
        return sorted(str(p.parent.relative_to(self.root)) for p in self.root.glob("*/*/*/pose_left.txt"))

    def _frames(self, name: str) -> list[_Frame]:
        folder = self.root / name
        rows = [ln.split() for ln in (folder / "pose_left.txt").read_text().splitlines() if ln.strip()]
        images = sorted((folder / "image_left").glob("*_left.png"))
        if len(images) != len(rows):
            raise Gen3RError(f"TartanAir: {name} has {len(images)} images but {len(rows)} poses; re-extract it")
        out = []
        for n, (row, image) in enumerate(zip(rows, images)):
            if len(row) != 7:
                raise Gen3RError(f"TartanAir: line {n + 1} of {folder / 'pose_left.txt'} needs 7 numbers")
            vals = [float(v) for v in row]
            c2w_ned = np.eye(4)
            c2w_ned[:3, :3] = Rotation.from_quat(vals[3:]).as_matrix()  # scipy order x, y, z, w
            c2w_ned[:3, 3] = vals[:3]
            c2w = NED_TO_CAM @ c2w_ned @ NED_TO_CAM.T
            stem = image.name[: -len("_left.png")]
            depth_path = folder / "depth_left" / f"{stem}_left_depth.npy"
            depth = functools.partial(self._read_depth, depth_path) if depth_path.is_file() else None
            out.append(_Frame(image=image, w2c=_invert(c2w), K=TARTANAIR_INTRINSICS.copy(), frame_id=stem,
                              size=(640, 480), depth=depth))
        return out

    def _read_depth(self, path: Path) -> np.ndarray:
        d = np.load(path).astype(np.float32)
        return d if self.max_depth is None else np.where(d <= self.max_depth, d, 0.0)


# ------------------------------------------------------------------------------------------ sampling

def sample_sequences(names: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """``count`` distinct names drawn uniformly with ``numpy.random.default_rng(seed)`` (all if fewer)."""
    if count < 1:
        raise Gen3RError(f"count must be >= 1, got {count}")
    if len(names) <= count:
        return list(names)
    pick = np.random.default_rng(seed).choice(len(names), size=count, replace=False)
    return [names[int(i)] for i in sorted(pick)]


class TooFewFrames(Gen3RError):
    """A readable sequence that is too short for the requested clip (evaluation skips it)."""


def sample_frame_indices(num_available: int, num_frames: int = PAPER_NUM_FRAMES, stride: int = 1,
                         start: int | None = 0, seed: int = 0) -> np.ndarray:
    """Indices of ``num_frames`` frames ``stride`` apart from ``start`` (``None``: random, from ``seed``)."""
    if num_frames < 1 or stride < 1:
        raise Gen3RError(f"num_frames and stride must be >= 1, got {num_frames} and {stride}")
    span = (num_frames - 1) * stride + 1
    if span > num_available:
        raise TooFewFrames(f"a clip of {num_frames} frames at stride {stride} needs {span} frames, the sequence has "
                           f"{num_available}; use fewer frames or a smaller stride")
    if start is None:
        start = int(np.random.default_rng(seed).integers(num_available - span + 1))
    if start < 0 or start + span > num_available:
        raise TooFewFrames(f"start {start} leaves too few frames ({num_available} available, {span} needed)")
    return start + stride * np.arange(num_frames)


__all__ = [
    "SequenceData", "SequenceReader", "RealEstate10KReader", "NerfstudioReader", "OfficialLayoutReader",
    "Co3Dv2Reader", "WildRGBDReader", "TartanAirReader", "read_split_file", "sample_sequences",
    "sample_frame_indices", "PAPER_NUM_FRAMES", "TooFewFrames",
]
