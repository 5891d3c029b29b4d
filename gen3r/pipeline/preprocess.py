"""Input handling: read images/videos, resize and centre-crop them like the official ``infer.py``.

Convention: frames are float tensors (B, F, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen3r.cameras import TRAJECTORY_PRESETS, load_cameras, make_trajectory
from gen3r.errors import Gen3RError
from gen3r.io.images import pil_to_rgb, read_rgb, upright_video_frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def read_image(path: str | Path) -> torch.Tensor:
    """Read one image file as (3, H, W) float32 in [0, 1], upright (EXIF orientation applied,
    16-bit scaled, alpha composited over white: :mod:`gen3r.io.images`)."""
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1).contiguous()


def read_video(path: str | Path, max_frames: int | None = None) -> torch.Tensor:
    """Read a video file (any format PyAV decodes) as (F, 3, H, W) float32 in [0, 1], with its
    display rotation applied (phone videos)."""
    import av
    from av.error import FFmpegError

    path = Path(path)
    if not path.is_file():
        raise Gen3RError(f"video {path} does not exist; check the path")
    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(upright_video_frame(frame))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (FFmpegError, IndexError, ValueError) as exc:
        raise Gen3RError(f"cannot decode video {path} ({exc}); pass a valid video file") from exc
    if not frames:
        raise Gen3RError(f"video {path} has no frames; pass a non-empty video")
    arr = np.stack(frames)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0


def read_frames(source: str | Path, max_frames: int | None = None) -> torch.Tensor:
    """Read a video file or a folder of images (sorted by name) as (F, 3, H, W) in [0, 1]."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise Gen3RError(f"folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                             "pass a folder of frames or a video file")
        if max_frames is not None:
            files = files[:max_frames]
        frames = [read_image(p) for p in files]
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) != 1:
            raise Gen3RError(f"frames in {source} have different sizes {sorted(shapes)}; "
                             "use frames of one size")
        return torch.stack(frames)
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return read_video(source, max_frames)
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(source)[None]
    if not source.exists():
        raise Gen3RError(f"input {source} does not exist; pass an image, a video or a folder of frames")
    raise Gen3RError(f"unsupported input {source}; pass an image ({', '.join(IMAGE_SUFFIXES)}), "
                     f"a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames")


def resize_and_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize so the image covers (height, width), then centre-crop (official ``infer.py``).

    ``frames`` (..., 3, h, w) in [0, 1]. Scale = max(H/h, W/w); resized size uses ``round``;
    bilinear with antialias (torchvision's default); crop offsets are floored.
    """
    h, w = frames.shape[-2:]
    if (h, w) == (height, width):
        return frames
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:]).float()
    flat = F.interpolate(flat, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    flat = flat[..., top:top + height, left:left + width]
    return flat.reshape(*lead, 3, height, width).to(frames.dtype)


def count_frames(images: torch.Tensor | Sequence | str | Path) -> tuple[int, int]:
    """``(batch, condition frames)`` of the user's ``images`` (as :func:`as_frames` takes them), from
    the argument alone: nothing is read or decoded, so the pipeline checks every argument first."""
    if isinstance(images, torch.Tensor):
        if images.ndim not in (4, 5) or images.shape[-3] != 3:
            raise Gen3RError(f"images tensor must be (B, F, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        return (1, int(images.shape[0])) if images.ndim == 4 else (int(images.shape[0]), int(images.shape[1]))
    if isinstance(images, (str, Path)):
        return 1, 1
    if len(images) == 0:
        raise Gen3RError("no input images given; pass 1 image, 2 images or a video")
    return 1, len(images)


def as_frames(images: torch.Tensor | Sequence | str | Path, height: int, width: int) -> torch.Tensor:
    """Turn the user's ``images`` into (B, Fc, 3, H, W) in [0, 1] at the working resolution.

    Accepts a tensor (B, Fc, 3, h, w) or (Fc, 3, h, w) in [0, 1], or a list of paths / PIL images
    (one batch element). Other sizes are resized and centre-cropped as the official code does.
    """
    count_frames(images)  # the shape / emptiness checks
    if isinstance(images, torch.Tensor):
        x = images if images.ndim == 5 else images[None]
    else:
        if isinstance(images, (str, Path)):
            images = [images]
        frames = []
        for item in images:
            if isinstance(item, (str, Path)):
                frames.append(read_image(item))
            elif isinstance(item, torch.Tensor):
                frames.append(item.float())
            else:  # PIL image

                frames.append(torch.from_numpy(pil_to_rgb(item)).permute(2, 0, 1).contiguous())
        frames = [resize_and_center_crop(f, height, width) for f in frames]
        x = torch.stack(frames)[None]
    if not torch.isfinite(x).all():
        raise Gen3RError("input images contain NaN or inf values; pass finite pixel values in [0, 1]")
    if x.min() < -1e-3 or x.max() > 1 + 1e-3:
        raise Gen3RError(f"input images must be in [0, 1], got range [{x.min():.3f}, {x.max():.3f}]; divide by 255")
    return resize_and_center_crop(x.float(), height, width)


def check_size(num_frames: int, height: int, width: int) -> None:
    """Raise Gen3RError unless F = 4k+1 and H, W are positive multiples of 112."""
    if num_frames < 1 or (num_frames - 1) % 4:
        k = max(0, round((num_frames - 1) / 4))
        raise Gen3RError(f"num_frames must be 4k+1 (e.g. {4 * k + 1} or 49), got {num_frames}")
    for name, v in (("height", height), ("width", width)):
        if v <= 0 or v % 112:
            near = max(112, 112 * math.floor(v / 112 + 0.5))
            raise Gen3RError(f"{name} must be a multiple of 112 (e.g. {near} or 560), got {v}")


def validate_camera_source(camera: str | Path | None, num_frames: int, image_size: tuple[int, int],
                           params: dict[str, float] | None = None) -> None:
    """Check a CLI ``--camera`` value (and a preset's ``params``) before any model is loaded.

    Presets must be known names and take ``params`` (``angle``/``distance``/``radius``, as
    :func:`gen3r.cameras.make_trajectory` allows per preset); files must parse, be finite and hold
    exactly ``num_frames`` cameras.
    """
    if params:
        if not isinstance(camera, str) or camera not in TRAJECTORY_PRESETS:
            flags = ", ".join(f"--camera-{k}" for k in params)
            raise Gen3RError(f"{flags} shape a trajectory preset, but --camera is {str(camera)!r}; pass a "
                             "preset name (see `gen3r cameras list`) or drop them")
        make_trajectory(camera, max(num_frames, 2), torch.eye(3), image_size=image_size, **params)
    if camera is None or camera == "free" or camera in TRAJECTORY_PRESETS:
        return
    path = Path(camera)
    if not path.exists():
        raise Gen3RError(f"unknown camera preset or missing camera file {str(camera)!r}; use one of "
                         f"{', '.join(TRAJECTORY_PRESETS)} or an existing camera file")
    cams = load_cameras(path, image_size=image_size)
    if len(cams) != num_frames:
        raise Gen3RError(f"camera file {path} has {len(cams)} cameras but --frames is {num_frames}; "
                         "give one camera per generated frame")
