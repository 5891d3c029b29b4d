"""Image and video frames as cameras and phones write them: the one place pixels enter gen3r.

Every reader returns RGB float32 in [0, 1] the way a photo viewer shows the file:

* **EXIF orientation** is applied (a portrait phone photo comes out upright, width and height
  swapped where the tag says so);
* **16-bit** images (PNG/TIFF grayscale ``I;16`` and 32-bit integer ``I``) are scaled by
  1 / 65535, not clipped at 255; float images (``F``) are taken as [0, 1] and clipped;
* **alpha** (RGBA, LA, palette or grey/RGB with a transparent colour) is composited over a white
  background (VGGT's convention for cut-outs), so transparent pixels do not turn into black or
  into whatever colour the file stores under them;
* grey, palette, CMYK and YCbCr images are converted to RGB;
* **video rotation** (the display matrix phones store instead of rotating the pixels) is applied
  in multiples of 90 degrees, as ffmpeg's autorotate does; flips are not applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gen3r.errors import Gen3RError

#: Image modes with an alpha channel (Pillow names).
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
#: EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


def _has_alpha(img: Any) -> bool:
    return img.mode in _ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)


def pil_to_rgb(img: Any) -> np.ndarray:
    """A PIL image as (H, W, 3) float32 in [0, 1], upright (see the module docstring)."""
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        grey = np.asarray(img).astype(np.float32) / np.float32(65535.0)
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=-1)
    if mode == "F":
        return np.repeat(np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)[..., None], 3, axis=-1)
    if _has_alpha(img):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / np.float32(255.0)
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (np.float32(1.0) - alpha)
    return np.asarray(img.convert("RGB")).astype(np.float32) / np.float32(255.0)


def read_rgb(path: str | Path, what: str = "image", fix: str = "pass a valid PNG/JPEG file") -> np.ndarray:
    """Read an image file as (H, W, 3) float32 in [0, 1], upright.

    A missing or unreadable file raises :class:`Gen3RError` naming ``what`` and the ``fix``.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise Gen3RError(f"{what} {path} does not exist; check the path")
    try:
        with Image.open(path) as img:
            return pil_to_rgb(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise Gen3RError(f"cannot read {what} {path} ({exc}); {fix}") from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as :func:`read_rgb` returns it (EXIF orientation applied),
    read from the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            return width, height
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise Gen3RError(f"cannot read image {path} ({exc}); check the frames folder") from exc


def upright_video_frame(frame: Any) -> np.ndarray:
    """A decoded PyAV video frame as (H, W, 3) uint8 RGB with its display rotation applied.

    ``frame.rotation`` is the counter-clockwise angle the display matrix turns the picture by
    (-90 for a phone held upright): the pixels are turned by it, rounded to quarter turns.
    """
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns)) if quarter_turns else rgb
