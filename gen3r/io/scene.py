"""A Gen3R output folder read back for looking at it: the viewer, the HTML export and the app.

:func:`load_output` reads the standard files a ``gen3r generate`` / ``reconstruct`` / ``demo``
folder holds (``cameras.json``, ``images/``, ``depth.npz``, ``points.ply``; see
:data:`gen3r.io.results.EXPORTED_FILES`) into an :class:`OutputScene`, checking each with a one-line
error. Per-frame points are unprojected from ``depth.npz`` with the cameras, so a frame's points,
confidence and depth can be shown, filtered and highlighted; :meth:`OutputScene.select` is the one
point filter (confidence / depth percentiles, frame subset, size cap) all three views use.

Frames: OpenCV world-to-camera cameras, pixel intrinsics; points in the world frame of the cameras
(the first generated camera's frame, VGGT normalised units for the model's outputs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen3r.cameras import Cameras, load_cameras
from gen3r.errors import Gen3RError
from gen3r.geometry import unproject_depth

logger = logging.getLogger(__name__)

_FIX = "pass a folder written by `gen3r generate`/`reconstruct`/`demo`"


@dataclass
class OutputScene:
    """One output folder in memory.

    Attributes:
        folder: where it was read from.
        cameras: :class:`gen3r.cameras.Cameras` of the F frames (OpenCV w2c, px).
        frames: (F, H, W, 3) uint8 frames (``images/``).
        depth: (F, H, W) float32 camera z depth (scene units) or None without ``depth.npz``.
        confidence: (F, H, W) float32 depth confidence or None.
        mask: (F, H, W) bool valid-depth mask (all True when the file has none) or None.
        frame_points: (F, H, W, 3) float32 world points unprojected from ``depth`` or None.
        points, colors: the exported cloud of ``points.ply`` (N, 3) float32 and (N, 3) float32 in [0, 1].
    """

    folder: Path
    cameras: Cameras
    frames: np.ndarray
    depth: np.ndarray | None
    confidence: np.ndarray | None
    mask: np.ndarray | None
    frame_points: np.ndarray | None
    points: np.ndarray
    colors: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.cameras)

    def select(self, frames: int | list[int] | None = None, min_confidence_percentile: float = 0.0,
               max_depth_percentile: float = 100.0, max_points: int | None = None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points of the per-frame clouds that pass the filters.

        Args:
            frames: one frame index, a list, or None for all frames.
            min_confidence_percentile: drop pixels below this percentile of the confidence of all
                frames (0 keeps all).
            max_depth_percentile: drop pixels beyond this percentile of the depth of all frames
                (100 keeps all): far background and sky.
            max_points: a fixed random subset (``seed``) of at most this many points.

        Returns:
            points (N, 3) float32, colours (N, 3) float32 in [0, 1], frame index (N,) int32. Without
            ``depth.npz`` the exported ``points.ply`` cloud (frame index -1; filters do not apply).
        """
        if self.frame_points is None:
            pts, cols = self.points, self.colors
            return self._cap(pts, cols, np.full(len(pts), -1, np.int32), max_points, seed)
        for name, value in (("min_confidence_percentile", min_confidence_percentile),
                            ("max_depth_percentile", max_depth_percentile)):
            if not 0 <= value <= 100:
                raise Gen3RError(f"{name} must be between 0 and 100, got {value}")
        assert self.mask is not None and self.depth is not None, "load_output reads them with frame_points"
        keep = self.mask.copy()
        if min_confidence_percentile > 0 and self.confidence is not None:
            keep &= self.confidence >= np.percentile(self.confidence[self.mask], min_confidence_percentile)
        if max_depth_percentile < 100:
            keep &= self.depth <= np.percentile(self.depth[self.mask], max_depth_percentile)
        if frames is not None:
            chosen = np.zeros(self.num_frames, bool)
            chosen[np.atleast_1d(np.asarray(frames, dtype=np.int64))] = True
            keep &= chosen[:, None, None]
        index = np.nonzero(keep)
        points = self.frame_points[index]
        colors = self.frames[index].astype(np.float32) / 255.0
        return self._cap(points, colors, index[0].astype(np.int32), max_points, seed)

    @staticmethod
    def _cap(points, colors, frame, max_points, seed):
        if max_points is not None and len(points) > max_points:
            pick = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
            points, colors, frame = points[pick], colors[pick], frame[pick]
        return points.astype(np.float32), colors.astype(np.float32), frame

    def extent(self) -> float:
        """Diagonal of the bounding box of the exported cloud (scene units; 1 when empty)."""
        pts = self.points if len(self.points) else (
            self.frame_points[self.mask] if self.frame_points is not None else self.points)
        return float(np.linalg.norm(np.ptp(pts, axis=0))) if len(pts) else 1.0


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from plyfile import PlyData

    try:
        vertex = PlyData.read(str(path))["vertex"]
        points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
        names = vertex.data.dtype.names
    except Exception as exc:  # plyfile raises many types for truncated / foreign files
        raise Gen3RError(f"cannot read {path} ({type(exc).__name__}: {exc}); the file is truncated or not a point "
                         "cloud: export the folder again") from None
    if "red" in names:
        colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1).astype(np.float32) / 255
    else:
        colors = np.full_like(points, 0.7)
    return points, colors


def _read_frames(folder: Path, count: int) -> np.ndarray:
    from PIL import Image

    paths = sorted((folder / "images").glob("*.png")) if (folder / "images").is_dir() else []
    if len(paths) < count:
        raise Gen3RError(f"{folder / 'images'} holds {len(paths)} PNG frames for {count} cameras; {_FIX}")
    frames = []
    for path in paths[:count]:
        try:
            with Image.open(path) as img:
                frames.append(np.asarray(img.convert("RGB")))
        except (OSError, ValueError) as exc:  # PIL: UnidentifiedImageError, truncated data
            raise Gen3RError(f"cannot read {path} ({type(exc).__name__}); the image is damaged: export the folder "
                             "again") from None
    if len({f.shape for f in frames}) != 1:
        raise Gen3RError(f"the frames in {folder / 'images'} differ in size; export the folder again")
    return np.stack(frames)


def _read_depth(path: Path, shape: tuple[int, int, int]):
    try:
        with np.load(path, allow_pickle=False) as data:
            depth = np.asarray(data["depth"], dtype=np.float32)
            conf = np.asarray(data["confidence"], dtype=np.float32) if "confidence" in data else None
            mask = np.asarray(data["mask"], dtype=bool) if "mask" in data else None
    except Exception as exc:  # zipfile / pickle / key errors of a damaged or foreign file
        raise Gen3RError(f"cannot read {path} ({type(exc).__name__}: {exc}); export the folder again") from None
    if depth.shape != shape or any(a is not None and a.shape != shape for a in (conf, mask)):
        raise Gen3RError(f"{path} holds arrays of shape {depth.shape}, not the {shape} of the frames and cameras; "
                         "export the folder again")
    valid = np.isfinite(depth) & (depth > 0)
    mask = valid if mask is None else mask & valid
    return depth, conf, mask


def load_output(folder: str | Path, need_ply: bool = True) -> OutputScene:
    """Read an output folder (see the module docstring); one-line Gen3RError for anything missing or
    damaged. ``depth.npz`` is optional (older folders): then only the exported cloud is shown."""
    folder = Path(folder)
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise Gen3RError(f"{folder} {problem}; {_FIX}")
    ply, cams = folder / "points.ply", folder / "cameras.json"
    for f in (ply, cams) if need_ply else (cams,):
        if not f.is_file():
            raise Gen3RError(f"{f} is missing; {_FIX}")
    points, colors = _read_ply(ply) if ply.is_file() else (np.zeros((0, 3), np.float32),) * 2
    cameras = load_cameras(cams)
    frames = _read_frames(folder, len(cameras))
    depth = confidence = mask = frame_points = None
    if (folder / "depth.npz").is_file():
        depth, confidence, mask = _read_depth(folder / "depth.npz", frames.shape[:3])
        ext = cameras.extrinsics.double().cpu().numpy()[:, :3]
        intr = cameras.intrinsics.double().cpu().numpy()
        size = tuple(cameras.image_size)
        if size != frames.shape[1:3]:
            raise Gen3RError(f"{cams} is for {size[0]}x{size[1]} images but the frames are "
                             f"{frames.shape[1]}x{frames.shape[2]}; export the folder again")
        frame_points = unproject_depth(np.where(mask, depth, 0.0), ext, intr).astype(np.float32)
    return OutputScene(folder=folder, cameras=cameras, frames=frames, depth=depth, confidence=confidence,
                       mask=mask, frame_points=frame_points, points=points, colors=colors)
