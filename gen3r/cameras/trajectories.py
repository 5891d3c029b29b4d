"""Built-in camera trajectories.

Every trajectory is a sequence of OpenCV camera-to-world poses that starts at the identity (the
first camera is the world frame: x right, y down, z forward) and changes linearly over the frames.

Official names (exactly the official ``infer.py::get_poses``):

* ``zoom_in`` / ``zoom_out``: translate along the camera +z / -z axis from 0 to ``scene_scale``
  (despite the name this moves the camera, it does not change the focal length);
* ``arc_left`` / ``arc_right``: pure rotation about the camera y axis from 0 to -15 / +15 degrees,
  no translation (a pan, despite the name);
* ``translate_up`` / ``translate_down``: pure rotation about the x axis from 0 to +15 / -15 degrees,
  no translation (a tilt, despite the name);
* ``free``: identity poses (the official pipeline then zeroes the Plücker input).

Correctly named presets (camera-relative directions; ``angle`` in degrees, lengths in scene units):

* ``pan_left`` / ``pan_right``: yaw in place by ``angle`` (default 15);
* ``tilt_up`` / ``tilt_down``: pitch in place by ``angle`` (default 15);
* ``orbit_left`` / ``orbit_right``: the camera travels left / right on a circle around the point at
  ``radius`` (default ``scene_scale``) in front of the first camera, always looking at it, sweeping
  ``angle`` (default 15) degrees;
* ``dolly_in`` / ``dolly_out``: move forward / backward along the view axis by ``distance``;
* ``truck_left`` / ``truck_right``: move sideways along -x / +x by ``distance``;
* ``pedestal_up`` / ``pedestal_down``: move along -y / +y (up / down in the image) by ``distance``.

``distance`` defaults to ``scene_scale``. The official names also accept ``angle`` / ``distance``
overrides (defaults: the official values).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from gen3r.cameras.cameras import Cameras
from gen3r.cameras.names import OFFICIAL_TRAJECTORIES, TRAJECTORY_DESCRIPTIONS, TRAJECTORY_PRESETS
from gen3r.errors import Gen3RError

__all__ = ["TRAJECTORY_PRESETS", "TRAJECTORY_DESCRIPTIONS", "OFFICIAL_TRAJECTORIES", "official_poses",
           "make_trajectory"]


def _rot_y(theta: float) -> list[list[float]]:
    c, s = math.cos(theta), math.sin(theta)
    return [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]


def _rot_x(theta: float) -> list[list[float]]:
    c, s = math.cos(theta), math.sin(theta)
    return [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]


def _ramp(end: float, num_frames: int) -> list[float]:
    """Linear values 0 -> end over the frames, rounded through float32 like the official linspace."""
    return torch.linspace(0.0, end, steps=num_frames, dtype=torch.float32).tolist()


def _rotations(axis: str, end_deg: float, num_frames: int) -> torch.Tensor:
    """(F, 4, 4) float32 poses rotating about ``axis`` from 0 to ``end_deg`` degrees."""
    rot = _rot_y if axis == "y" else _rot_x
    poses = torch.eye(4, dtype=torch.float32).repeat(num_frames, 1, 1)
    for i, angle in enumerate(_ramp(math.radians(end_deg), num_frames)):
        poses[i, :3, :3] = torch.tensor(rot(angle), dtype=torch.float32)
    return poses


def _translations(direction: tuple[float, float, float], distance: float, num_frames: int) -> torch.Tensor:
    """(F, 4, 4) float32 poses moving along the camera-frame unit ``direction`` by ``distance``."""
    poses = torch.eye(4, dtype=torch.float32).repeat(num_frames, 1, 1)
    steps = torch.tensor(_ramp(float(distance), num_frames), dtype=torch.float32)
    poses[:, :3, 3] = steps[:, None] * torch.tensor(direction, dtype=torch.float32)
    return poses


def _orbit(sign: float, angle: float, radius: float, num_frames: int) -> torch.Tensor:
    """Orbit around the point (0, 0, radius); ``sign`` +1 moves the camera left (-x)."""
    poses = torch.eye(4, dtype=torch.float64).repeat(num_frames, 1, 1)
    for i, theta in enumerate(_ramp(math.radians(sign * angle), num_frames)):
        rotation = torch.tensor(_rot_y(theta), dtype=torch.float64)
        poses[i, :3, :3] = rotation
        # centre = target - R @ (0, 0, radius): the camera looks at the target from distance radius
        poses[i, :3, 3] = torch.tensor([0.0, 0.0, radius], dtype=torch.float64) - rotation[:, 2] * radius
    return poses.float()


# name -> (builder(num_frames, scene_scale, params) -> c2w, allowed params)
_Builder = Callable[[int, float, dict], torch.Tensor]


def _official(name: str) -> tuple[_Builder, tuple[str, ...]]:
    if name in ("zoom_in", "zoom_out"):
        sign = 1.0 if name == "zoom_in" else -1.0
        return (lambda f, s, p: _translations((0.0, 0.0, 1.0), sign * p.get("distance", s), f)), ("distance",)
    if name in ("arc_left", "arc_right"):
        sign = -1.0 if name == "arc_left" else 1.0
        return (lambda f, s, p: _rotations("y", sign * p.get("angle", 15.0), f)), ("angle",)
    if name in ("translate_up", "translate_down"):
        sign = 1.0 if name == "translate_up" else -1.0
        return (lambda f, s, p: _rotations("x", sign * p.get("angle", 15.0), f)), ("angle",)
    return (lambda f, s, p: torch.eye(4, dtype=torch.float32).repeat(f, 1, 1)), ()


_MOVES = {
    "dolly_in": (0.0, 0.0, 1.0), "dolly_out": (0.0, 0.0, -1.0),
    "truck_left": (-1.0, 0.0, 0.0), "truck_right": (1.0, 0.0, 0.0),
    "pedestal_up": (0.0, -1.0, 0.0), "pedestal_down": (0.0, 1.0, 0.0),
}
# rotation about +y turns the view to the right; rotation about +x turns it up (y points down)
_TURNS = {"pan_left": ("y", -1.0), "pan_right": ("y", 1.0), "tilt_up": ("x", 1.0), "tilt_down": ("x", -1.0)}


def _preset(name: str) -> tuple[_Builder, tuple[str, ...]]:
    if name in OFFICIAL_TRAJECTORIES:
        return _official(name)
    if name in _MOVES:
        direction = _MOVES[name]
        return (lambda f, s, p: _translations(direction, p.get("distance", s), f)), ("distance",)
    if name in _TURNS:
        axis, sign = _TURNS[name]
        return (lambda f, s, p: _rotations(axis, sign * p.get("angle", 15.0), f)), ("angle",)
    if name in ("orbit_left", "orbit_right"):
        sign = 1.0 if name == "orbit_left" else -1.0
        return (lambda f, s, p: _orbit(sign, p.get("angle", 15.0), p.get("radius", s), f)), ("angle", "radius")
    raise Gen3RError(f"unknown camera trajectory {name!r}; choose one of: {', '.join(TRAJECTORY_PRESETS)}")


def _check_frames(num_frames: int) -> int:
    if (isinstance(num_frames, bool) or not isinstance(num_frames, (int, float))
            or int(num_frames) != num_frames or num_frames < 1):
        raise Gen3RError(f"num_frames must be a positive integer, got {num_frames!r}")
    return int(num_frames)


def _check_scale(scene_scale: float) -> float:
    if (isinstance(scene_scale, bool) or not isinstance(scene_scale, (int, float))
            or not math.isfinite(scene_scale) or scene_scale <= 0):
        raise Gen3RError(f"scene_scale must be a positive finite number (scene units), got {scene_scale!r}")
    return float(scene_scale)


def official_poses(name: str, num_frames: int, scene_scale: float = 1.0) -> torch.Tensor:
    """(F, 4, 4) float32 OpenCV c2w poses of an official trajectory, as the official ``get_poses``."""
    if name not in OFFICIAL_TRAJECTORIES:
        raise Gen3RError(f"{name!r} is not an official trajectory; choose one of: {', '.join(OFFICIAL_TRAJECTORIES)}")
    builder, _ = _official(name)
    return builder(_check_frames(num_frames), _check_scale(scene_scale), {})


def make_trajectory(name: str, num_frames: int, intrinsics: torch.Tensor, scene_scale: float = 1.0,
                    image_size: tuple[int, int] | None = None, **params: float) -> Cameras:
    """Cameras following a built-in trajectory (see the module docstring for every name).

    Args:
        name: one of :data:`TRAJECTORY_PRESETS`.
        num_frames: number of cameras F.
        intrinsics: (3, 3) pixel intrinsics shared by all frames, or (F, 3, 3).
        scene_scale: length scale of the scene in world units (official: 0.8 x median VGGT depth);
            default travel distance / orbit radius.
        image_size: (H, W) the intrinsics refer to; default ``(round(2 * cy), round(2 * cx))``.
        **params: ``angle`` (degrees), ``distance`` or ``radius`` (scene units), per preset.

    Returns:
        :class:`Cameras` whose first pose is the identity.
    """
    builder, allowed = _preset(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        hint = ", ".join(allowed) if allowed else "none"
        raise Gen3RError(f"trajectory {name!r} does not take parameter(s) {', '.join(unknown)}; allowed: {hint}")
    for key, value in params.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Gen3RError(f"trajectory parameter {key}={value!r} must be a finite number")
    scene_scale = _check_scale(scene_scale)
    frames = _check_frames(num_frames)
    k = intrinsics if isinstance(intrinsics, torch.Tensor) else torch.as_tensor(intrinsics, dtype=torch.float32)
    if k.shape not in ((3, 3), (frames, 3, 3)):
        raise Gen3RError(f"intrinsics must have shape (3, 3) or ({frames}, 3, 3), got {tuple(k.shape)}")
    k = k.float().expand(frames, 3, 3)
    if image_size is None:
        image_size = (round(2 * float(k[0, 1, 2])), round(2 * float(k[0, 0, 2])))
    c2w = builder(frames, float(scene_scale), params)
    return Cameras.from_c2w(c2w.to(k.device), k, image_size)
