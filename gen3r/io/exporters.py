"""Pure exporters: each writes one standard file from arrays, atomically.

Conventions: frames (F, H, W, 3) float in [0, 1]; depth (F, H, W) z-depth; points (N, 3) in the
world frame of the caller (Gen3R: the first generated camera, VGGT normalised units); colours
(N, 3) float in [0, 1]; cameras as :class:`gen3r.cameras.Cameras` (OpenCV world-to-camera, px).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import cast

import numpy as np

from gen3r.atomic import atomic_path
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

# Anchor colours (RGB, 0..1) from near (warm) to far (cool) for depth visualisation.
_DEPTH_ANCHORS = np.array([
    [0.62, 0.00, 0.26], [0.84, 0.24, 0.31], [0.96, 0.43, 0.26], [0.99, 0.68, 0.38],
    [1.00, 0.88, 0.55], [0.90, 0.96, 0.60], [0.67, 0.87, 0.64], [0.40, 0.76, 0.65],
    [0.20, 0.53, 0.74], [0.37, 0.31, 0.64],
], dtype=np.float32)


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    if not np.isfinite(frames).all():
        raise Gen3RError("frames contain NaN or inf; cannot write them as images")
    # Official rounding is truncation of x*255 (save_videos_grid); keep it.
    return (np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 12, crf: int = 18) -> Path:
    """Write (F, H, W, 3) frames in [0, 1] as an H.264 mp4 (yuv420p; odd sizes are padded)."""
    import av

    data = _to_uint8(frames)
    if data.ndim != 4 or data.shape[-1] != 3:
        raise Gen3RError(f"video frames must be (F, H, W, 3), got {data.shape}")
    pad_h, pad_w = data.shape[1] % 2, data.shape[2] % 2
    if pad_h or pad_w:
        data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = data.shape[2], data.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def colorize_depth(depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Depth (F, H, W) -> RGB (F, H, W, 3) in [0, 1]; inverse depth between 2nd/98th percentiles.

    Near is warm (red), far is cool (blue); invalid pixels (mask False, non-finite, <= 0) are black.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    out = np.zeros(depth.shape + (3,), dtype=np.float32)
    if not valid.any():
        return out
    inv = np.zeros_like(depth)
    inv[valid] = 1.0 / depth[valid]
    lo, hi = np.percentile(inv[valid], [2, 98])
    t = np.clip((inv - lo) / max(hi - lo, 1e-12), 0, 1)
    t = 1.0 - t  # near (large inverse depth) -> anchor 0
    pos = t * (len(_DEPTH_ANCHORS) - 1)
    i0 = np.floor(pos).astype(np.int64).clip(0, len(_DEPTH_ANCHORS) - 2)
    frac = (pos - i0)[..., None]
    out = _DEPTH_ANCHORS[i0] * (1 - frac) + _DEPTH_ANCHORS[i0 + 1] * frac
    out[~valid] = 0
    return out


def write_depth_npz(path: str | Path, depth: np.ndarray, confidence: np.ndarray | None = None,
                    mask: np.ndarray | None = None) -> Path:
    """Write depth (F, H, W) float32 (camera z, scene units) [+ confidence, mask] as compressed npz."""
    arrays = {"depth": np.asarray(depth, dtype=np.float32)}
    if confidence is not None:
        arrays["confidence"] = np.asarray(confidence, dtype=np.float32)
    if mask is not None:
        arrays["mask"] = np.asarray(mask, dtype=bool)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, allow_pickle=False, **arrays)
    return path


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY with float32 x, y, z and uint8 red, green, blue."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    if not np.isfinite(points).all():
        raise Gen3RError("point cloud contains NaN or inf; filter it before writing a PLY")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        colors = _to_uint8(np.asarray(colors).reshape(-1, 3))
        if len(colors) != len(points):
            raise Gen3RError(f"{len(points)} points but {len(colors)} colours; pass one colour per point")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    record = np.empty(len(points), dtype=fields)
    record["x"], record["y"], record["z"] = points.T
    if colors is not None:
        record["red"], record["green"], record["blue"] = colors.T
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}",
              "property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header.append("end_header")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(record.tobytes())
    return path


def camera_frustum_segments(cameras, scale: float | None = None) -> np.ndarray:
    """Line segments (F*8, 2, 3) drawing each camera as a pyramid in world coordinates.

    ``scale`` is the pyramid depth in world units (default: 5% of the camera path extent, or 0.05).
    """
    c2w = cameras.c2w.double().cpu().numpy()
    K = cameras.intrinsics.double().cpu().numpy()
    h, w = cameras.image_size
    if scale is None:
        centres = c2w[:, :3, 3]
        extent = float(np.linalg.norm(centres.max(0) - centres.min(0))) if len(centres) > 1 else 0.0
        scale = 0.05 * extent if extent > 0 else 0.05
    segments = []
    for pose, k in zip(c2w, K):
        corners_px = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
        rays = np.stack([(corners_px[:, 0] - k[0, 2]) / k[0, 0], (corners_px[:, 1] - k[1, 2]) / k[1, 1],
                         np.ones(4)], axis=1) * scale
        world = rays @ pose[:3, :3].T + pose[:3, 3]
        origin = pose[:3, 3]
        for i in range(4):
            segments.append([origin, world[i]])
            segments.append([world[i], world[(i + 1) % 4]])
    return np.asarray(segments)


def _unlit_materials(glb: bytes) -> bytes:
    """Mark every material of a GLB ``KHR_materials_unlit``: points and lines have no normals, and a
    lit material greys their vertex colours out in viewers (gradio's Babylon.js, three.js)."""
    import json
    import struct

    magic, version, _ = struct.unpack_from("<4sII", glb, 0)
    length, kind = struct.unpack_from("<I4s", glb, 12)
    if magic != b"glTF" or kind != b"JSON":
        raise Gen3RError("the GLB writer produced an unexpected layout; report this as a bug")
    doc = json.loads(glb[20:20 + length])
    rest = glb[20 + length:]
    for material in doc.get("materials", []):
        material.setdefault("extensions", {})["KHR_materials_unlit"] = {}
    if doc.get("materials"):
        doc["extensionsUsed"] = sorted(set(doc.get("extensionsUsed", [])) | {"KHR_materials_unlit"})
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + rest
    return struct.pack("<4sII", magic, version, 12 + len(body)) + body


def write_glb(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None, cameras=None) -> Path:
    """GLB scene: the coloured point cloud plus camera frustums as line geometry (pyramids 4 % of the
    cloud's bounding-box diagonal deep; unlit materials: vertex colours shown as they are).

    glTF is y-up/right-handed: coordinates are written as given (OpenCV world), matching the PLY.
    """
    import trimesh
    from trimesh.path import Path3D

    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    geoms = []
    rgba = None
    if colors is not None:
        rgb = _to_uint8(np.asarray(colors).reshape(-1, 3))
        rgba = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    if len(points):
        geoms.append(trimesh.PointCloud(points, colors=rgba))
    if cameras is not None and len(cameras):
        extent = float(np.linalg.norm(np.ptp(points, axis=0))) if len(points) > 1 else 0.0
        segments = camera_frustum_segments(cameras, scale=0.04 * extent if extent > 0 else None)
        path3d = cast(Path3D, trimesh.load_path(segments))  # (n, 2, 3) segments load as a Path3D
        path3d.colors = np.tile(np.array([[255, 64, 64, 255]], np.uint8), (len(path3d.entities), 1))
        geoms.append(path3d)
    if not geoms:
        raise Gen3RError("nothing to write into the GLB (no points and no cameras)")
    glb = trimesh.Scene(geoms).export(file_type="glb")
    if not isinstance(glb, bytes):
        raise Gen3RError("the GLB writer produced no bytes; report this as a bug")
    data = _unlit_materials(glb)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_json(path: str | Path, data: dict) -> Path:
    """Pretty JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def write_images(folder: str | Path, frames: np.ndarray, pattern: str = "frame_{:05d}.png") -> list[str]:
    """Write frames (F, H, W, 3) in [0, 1] as PNG files; returns the file names."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, frame in enumerate(_to_uint8(frames)):
        name = pattern.format(i)
        with atomic_path(folder / name) as tmp:
            Image.fromarray(frame).save(tmp, format="PNG")
        names.append(name)
    return names
