"""The :class:`Cameras` type: a sequence of pinhole cameras for one video.

Conventions (the whole package uses them):

* ``extrinsics`` (F, 4, 4) are **OpenCV world-to-camera** matrices ``[R | t]`` (camera axes x right,
  y down, z forward); ``c2w`` is their inverse. Translations are in the scene's length unit
  (VGGT-normalised units for generated cameras, metres for metric datasets).
* ``intrinsics`` (F, 3, 3) are in **pixels** of an image of ``image_size = (H, W)``; a pixel
  (u, v) covers ``[u, u + 1) x [v, v + 1)``, so its centre is at ``(u + 0.5, v + 0.5)``.
  Resizing by ``s`` scales fx, cx (and fy, cy) by ``s``; cropping subtracts the offset from cx, cy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gen3r.cameras._linalg import affine_inverse, det3
from gen3r.cameras.plucker import plucker_rays, preprocess_poses
from gen3r.cameras.pose_encoding import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from gen3r.errors import Gen3RError

__all__ = ["Cameras", "resize_and_center_crop_params"]

logger = logging.getLogger(__name__)

_ROTATION_TOL = 5e-2  # loose: also accepts bf16/fp16 cameras; catches scaled or reflected matrices


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise Gen3RError(f"{name} must be a numeric array, got {type(value).__name__} ({exc})") from None
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def _check_image_size(image_size: Any) -> tuple[int, int]:
    try:
        height, width = image_size
        if int(height) != height or int(width) != width:
            raise ValueError
        height, width = int(height), int(width)
    except (TypeError, ValueError):
        raise Gen3RError(f"image_size must be a pair of integers (height, width), got {image_size!r}") from None
    if height <= 0 or width <= 0:
        raise Gen3RError(f"image_size must be positive (height, width), got {image_size!r}")
    return height, width


def _first_bad(mask: torch.Tensor) -> int:
    return int(torch.nonzero(mask.reshape(mask.shape[0], -1).any(-1))[0, 0])


def _validate(extrinsics: torch.Tensor, intrinsics: torch.Tensor) -> None:
    """Raise one Gen3RError naming the first bad frame and the fix."""
    if not torch.isfinite(extrinsics).all():
        i = _first_bad(~torch.isfinite(extrinsics))
        raise Gen3RError(f"extrinsics[{i}] contains NaN or inf; provide finite world-to-camera matrices")
    if not torch.isfinite(intrinsics).all():
        i = _first_bad(~torch.isfinite(intrinsics))
        raise Gen3RError(f"intrinsics[{i}] contains NaN or inf; provide finite pixel intrinsics")
    e = extrinsics.detach().double().cpu()
    k = intrinsics.detach().double().cpu()
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    bad = (e[:, 3] - bottom).abs().amax(-1) > 1e-6
    if bad.any():
        i = int(torch.nonzero(bad)[0, 0])
        raise Gen3RError(f"extrinsics[{i}] bottom row is {e[i, 3].tolist()}, expected [0, 0, 0, 1]; "
                         "pass 3x4 or homogeneous 4x4 world-to-camera matrices")
    rot = e[:, :3, :3]
    det = det3(rot)
    gram_err = (rot @ rot.transpose(-1, -2) - torch.eye(3, dtype=torch.float64)).abs().amax((-1, -2))
    bad = (gram_err > _ROTATION_TOL) | (det <= 0)
    if bad.any():
        i = int(torch.nonzero(bad)[0, 0])
        if abs(det[i]) < 1e-9:
            what = "singular (not invertible)"
        elif det[i] < 0:
            what = "a reflection (det < 0): check the axis convention (OpenGL vs OpenCV)"
        else:
            what = f"not orthonormal (|R R^T - I| = {gram_err[i]:.3g}, det {det[i]:.4g}): remove any scale"
        raise Gen3RError(f"extrinsics[{i}] rotation is {what}; extrinsics must be rigid world-to-camera "
                         "transforms")
    fx, fy = k[:, 0, 0], k[:, 1, 1]
    bad = (fx <= 0) | (fy <= 0)
    if bad.any():
        i = int(torch.nonzero(bad)[0, 0])
        raise Gen3RError(f"intrinsics[{i}] has non-positive focal length (fx={fx[i]:.6g}, fy={fy[i]:.6g}); "
                         "intrinsics must be pixel matrices [[fx, s, cx], [0, fy, cy], [0, 0, 1]]")
    bottom_k = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    bad = ((k[:, 2] - bottom_k).abs().amax(-1) > 1e-6) | (k[:, 1, 0].abs() > 1e-6)
    if bad.any():
        i = int(torch.nonzero(bad)[0, 0])
        raise Gen3RError(f"intrinsics[{i}] = {k[i].tolist()} is not upper-triangular with last row [0, 0, 1]; "
                         "pass pixel matrices [[fx, s, cx], [0, fy, cy], [0, 0, 1]]")


def resize_and_center_crop_params(src_hw: Sequence[int],
                                  dst_hw: Sequence[int]) -> tuple[tuple[int, int], int, int]:
    """Resized size and crop offsets of the official ``infer.py`` image preprocessing.

    The image (h, w) is resized by ``scale = max(H / h, W / w)`` to ``(round(h * scale),
    round(w * scale))`` (never below (H, W)), then centre-cropped to (H, W) with floored offsets.

    Returns:
        ``((resized_h, resized_w), top, left)``.
    """
    h, w = _check_image_size(src_hw)
    dst_h, dst_w = _check_image_size(dst_hw)
    scale = max(dst_h / h, dst_w / w)
    new_h, new_w = max(dst_h, round(h * scale)), max(dst_w, round(w * scale))
    return (new_h, new_w), (new_h - dst_h) // 2, (new_w - dst_w) // 2


@dataclass(eq=False, repr=False)
class Cameras:
    """F pinhole cameras (one per video frame), OpenCV world-to-camera extrinsics, pixel intrinsics.

    Attributes:
        extrinsics: (F, 4, 4) OpenCV world-to-camera ``[R | t]``; (F, 3, 4) is accepted and completed
            with the row ``[0, 0, 0, 1]``. Translation in scene units.
        intrinsics: (F, 3, 3) pixel intrinsics for ``image_size``; a single (3, 3) is repeated F times.
        image_size: (H, W) in pixels of the image the intrinsics refer to.

    Construction validates shapes and values (finite, rigid rotation, positive focal lengths) and
    raises :class:`~gen3r.errors.Gen3RError` naming the first bad frame. Intrinsics are converted to
    the dtype and device of the extrinsics.
    """

    extrinsics: torch.Tensor
    intrinsics: torch.Tensor
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        extrinsics = _as_tensor(self.extrinsics, "extrinsics")
        intrinsics = _as_tensor(self.intrinsics, "intrinsics")
        if extrinsics.ndim != 3 or extrinsics.shape[-2:] not in ((3, 4), (4, 4)) or extrinsics.shape[0] == 0:
            raise Gen3RError(f"extrinsics must have shape (F, 4, 4) or (F, 3, 4) with F >= 1, "
                             f"got {tuple(extrinsics.shape)}")
        if extrinsics.shape[-2] == 3:
            row = torch.zeros(extrinsics.shape[0], 1, 4, dtype=extrinsics.dtype, device=extrinsics.device)
            row[..., 3] = 1
            extrinsics = torch.cat([extrinsics, row], 1)
        frames = extrinsics.shape[0]
        if intrinsics.shape == (3, 3):
            intrinsics = intrinsics.expand(frames, 3, 3)
        if intrinsics.shape != (frames, 3, 3):
            raise Gen3RError(f"intrinsics must have shape ({frames}, 3, 3) to match {frames} extrinsics, "
                             f"got {tuple(intrinsics.shape)}")
        intrinsics = intrinsics.to(dtype=extrinsics.dtype, device=extrinsics.device).contiguous()
        _validate(extrinsics, intrinsics)
        self.extrinsics = extrinsics
        self.intrinsics = intrinsics
        self.image_size = _check_image_size(self.image_size)

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_c2w(cls, c2w: torch.Tensor, intrinsics: torch.Tensor, image_size: Sequence[int]) -> Cameras:
        """Cameras from OpenCV camera-to-world matrices (F, 4, 4) or (F, 3, 4)."""
        c2w = _as_tensor(c2w, "c2w")
        if c2w.ndim != 3 or c2w.shape[-2:] not in ((3, 4), (4, 4)):
            raise Gen3RError(f"c2w must have shape (F, 4, 4) or (F, 3, 4), got {tuple(c2w.shape)}")
        if c2w.shape[-2] == 3:
            row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype, device=c2w.device)
            c2w = torch.cat([c2w, row.expand(c2w.shape[0], 1, 4)], 1)
        if not torch.isfinite(c2w).all():
            raise Gen3RError("c2w contains NaN or inf; provide finite camera-to-world matrices")
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype, device=c2w.device)
        if (c2w[:, 3] - bottom).abs().amax() > 1e-6:
            raise Gen3RError("c2w bottom rows must be [0, 0, 0, 1]; pass rigid camera-to-world matrices")
        return cls(affine_inverse(c2w), intrinsics, _check_image_size(image_size))

    @classmethod
    def from_pose_encoding(cls, pose_encoding: torch.Tensor, image_size: Sequence[int]) -> Cameras:
        """Cameras from VGGT ``absT_quaR_FoV`` encodings (F, 9) for an image of ``image_size``."""
        if pose_encoding.ndim != 2 or pose_encoding.shape[-1] != 9:
            raise Gen3RError(f"pose encoding must have shape (F, 9), got {tuple(pose_encoding.shape)}")
        extrinsics, intrinsics = pose_encoding_to_extri_intri(pose_encoding, image_size)
        return cls(extrinsics, intrinsics, _check_image_size(image_size))

    # ----------------------------------------------------------------------------- basic access
    def __repr__(self) -> str:
        return (f"Cameras(F={len(self)}, image_size={self.image_size}, dtype={self.dtype}, "
                f"device={self.device})")

    def __len__(self) -> int:
        return int(self.extrinsics.shape[0])

    @property
    def num_frames(self) -> int:
        """Number of cameras F."""
        return len(self)

    @property
    def device(self) -> torch.device:
        return self.extrinsics.device

    @property
    def dtype(self) -> torch.dtype:
        return self.extrinsics.dtype

    @property
    def height(self) -> int:
        return self.image_size[0]

    @property
    def width(self) -> int:
        return self.image_size[1]

    @property
    def c2w(self) -> torch.Tensor:
        """(F, 4, 4) OpenCV camera-to-world matrices (inverse of the extrinsics), scene units."""
        return affine_inverse(self.extrinsics)

    @property
    def centers(self) -> torch.Tensor:
        """(F, 3) camera centres in world coordinates, scene units."""
        return self.c2w[:, :3, 3]

    def index(self, idx: int | slice | Sequence[int] | torch.Tensor) -> Cameras:
        """A subset of the cameras; an integer index keeps the frame axis (F = 1)."""
        if isinstance(idx, int):
            if not -len(self) <= idx < len(self):
                raise Gen3RError(f"camera index {idx} out of range for {len(self)} cameras")
            idx = slice(idx, idx + 1 if idx != -1 else None)
        extrinsics = self.extrinsics[idx]
        if extrinsics.ndim != 3 or extrinsics.shape[0] == 0:
            raise Gen3RError(f"camera index {idx!r} selects no camera out of {len(self)}")
        return Cameras(extrinsics, self.intrinsics[idx], self.image_size)

    __getitem__ = index

    def to(self, *args: Any, **kwargs: Any) -> Cameras:
        """Move/cast both tensors like :meth:`torch.Tensor.to` (e.g. ``cams.to("cuda", torch.float64)``)."""
        return Cameras(self.extrinsics.to(*args, **kwargs), self.intrinsics.to(*args, **kwargs), self.image_size)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(extrinsics (F, 4, 4), intrinsics (F, 3, 3))`` as float64 numpy arrays."""
        return (self.extrinsics.detach().cpu().double().numpy(), self.intrinsics.detach().cpu().double().numpy())

    @staticmethod
    def concat(cameras: Sequence[Cameras]) -> Cameras:
        """Concatenate camera sequences with the same image size along the frame axis."""
        if not cameras:
            raise Gen3RError("Cameras.concat needs at least one Cameras")
        sizes = {c.image_size for c in cameras}
        if len(sizes) != 1:
            raise Gen3RError(f"cannot concatenate cameras of different image sizes {sorted(sizes)}; resize first")
        first = cameras[0]
        return Cameras(torch.cat([c.extrinsics.to(first.extrinsics) for c in cameras]),
                       torch.cat([c.intrinsics.to(first.intrinsics) for c in cameras]), first.image_size)

    def allclose(self, other: Cameras, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
        """True when both have the same image size and numerically close matrices."""
        return (self.image_size == other.image_size and len(self) == len(other)
                and torch.allclose(self.extrinsics.double().cpu(), other.extrinsics.double().cpu(), rtol, atol)
                and torch.allclose(self.intrinsics.double().cpu(), other.intrinsics.double().cpu(), rtol, atol))

    # ----------------------------------------------------------------------------- geometry
    def relative_to_first(self) -> Cameras:
        """Poses relative to the first camera (official ``preprocess_poses``); frame 0 becomes identity.

        ``rel_c2w_i = inv(c2w_0) @ c2w_i``. No scale normalisation: translations keep their unit.
        """
        return Cameras.from_c2w(preprocess_poses(self.c2w), self.intrinsics, self.image_size)

    def resize(self, image_size: Sequence[int]) -> Cameras:
        """Intrinsics for the image resized (without crop) to ``image_size`` = (H', W').

        fx, skew and cx scale by W'/W; fy and cy by H'/H (pixel-corner convention, so the centre of
        the image stays the centre).
        """
        new_h, new_w = _check_image_size(image_size)
        sx, sy = new_w / self.width, new_h / self.height
        scale = torch.tensor([[sx, sx, sx], [sy, sy, sy], [1.0, 1.0, 1.0]], dtype=self.dtype, device=self.device)
        return Cameras(self.extrinsics, self.intrinsics * scale, (new_h, new_w))

    def crop(self, top: int, left: int, height: int, width: int) -> Cameras:
        """Intrinsics for the crop ``image[top:top + height, left:left + width]`` (cx -= left, cy -= top)."""
        if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > self.height \
                or left + width > self.width:
            raise Gen3RError(f"crop (top={top}, left={left}, height={height}, width={width}) does not fit in "
                             f"the {self.height}x{self.width} image; choose a window inside the image")
        k = self.intrinsics.clone()
        k[:, 0, 2] -= left
        k[:, 1, 2] -= top
        return Cameras(self.extrinsics, k, (int(height), int(width)))

    def resize_and_center_crop(self, src_hw: Sequence[int] | None, dst_hw: Sequence[int]) -> Cameras:
        """Intrinsics after the official ``infer.py`` image preprocessing from ``src_hw`` to ``dst_hw``.

        See :func:`resize_and_center_crop_params`. ``src_hw`` is the size of the image that is
        preprocessed; when it differs from ``image_size`` (or is None, meaning ``image_size``), the
        intrinsics are first rescaled to it.
        """
        cams = self if src_hw is None or tuple(src_hw) == self.image_size else self.resize(src_hw)
        resized, top, left = resize_and_center_crop_params(cams.image_size, dst_hw)
        dst_h, dst_w = _check_image_size(dst_hw)
        return cams.resize(resized).crop(top, left, dst_h, dst_w)

    def plucker(self, height: int | None = None, width: int | None = None) -> torch.Tensor:
        """(F, 6, H, W) Plücker map ``[o x d, d]`` of these cameras (world frame, no re-centring).

        With ``height``/``width`` other than ``image_size``, the intrinsics are first rescaled to that
        size. For the official DiT input call ``relative_to_first().plucker()``.
        """
        height = self.height if height is None else int(height)
        width = self.width if width is None else int(width)
        cams = self if (height, width) == self.image_size else self.resize((height, width))
        return plucker_rays(cams.c2w, cams.intrinsics, height, width)

    def to_pose_encoding(self) -> torch.Tensor:
        """(F, 9) float32 VGGT ``absT_quaR_FoV`` encoding ``[t, quaternion xyzw, fov_h, fov_w]``.

        The encoding assumes the principal point at the image centre; an off-centre principal point
        is not representable and is lost on decoding.
        """
        return extri_intri_to_pose_encoding(self.extrinsics[:, :3], self.intrinsics, self.image_size)

    def fov(self) -> torch.Tensor:
        """(F, 2) vertical and horizontal field of view in degrees."""
        fov_h = 2 * torch.atan((self.height / 2) / self.intrinsics[:, 1, 1])
        fov_w = 2 * torch.atan((self.width / 2) / self.intrinsics[:, 0, 0])
        return torch.stack([fov_h, fov_w], -1) * (180.0 / math.pi)
