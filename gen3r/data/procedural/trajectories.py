"""Camera trajectories through a :class:`~gen3r.data.procedural.layout.Layout`.

All trajectories return OpenCV world-to-camera extrinsics (F, 4, 4) float64 (camera +x right,
+y down, +z forward; world +z up, metres). Indoors the cameras stay inside the room, at least
``WALL_MARGIN`` from walls and ceiling and above every object; outdoors they stay above the
ground, outside the disc that holds the objects, and look towards the objects.
"""

from __future__ import annotations

import numpy as np

from gen3r.data.procedural.layout import MIN_INDOOR_EYE_HEIGHT, WALL_MARGIN, Layout
from gen3r.data.procedural.primitives import Room

TRAJECTORIES = ("walk", "orbit", "pan", "random")
_UP = np.array([0.0, 0.0, 1.0])


def look_at(eyes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera (F, 4, 4) for cameras at ``eyes`` (F, 3) looking at ``targets`` (F, 3).

    The camera has no roll: its +x axis is horizontal. ``targets`` must not be straight above or
    below ``eyes``.
    """
    forward = targets - eyes
    forward /= np.linalg.norm(forward, axis=1, keepdims=True)
    right = np.cross(forward, _UP)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward], axis=1)  # rows: camera axes in world coordinates
    w2c = np.tile(np.eye(4), (len(eyes), 1, 1))
    w2c[:, :3, :3] = rot
    w2c[:, :3, 3] = -np.einsum("fij,fj->fi", rot, eyes)
    return w2c


def _direction(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Unit view directions (F, 3) from yaw (about +z, from +x) and pitch (up positive), radians."""
    return np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)


def smooth_curve(controls: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Catmull-Rom spline through ``controls`` (K, D) evaluated at ``s`` (F,) in [0, 1] -> (F, D)."""
    k = len(controls)
    padded = np.concatenate([controls[:1], controls, controls[-1:]], axis=0)
    x = np.clip(s, 0.0, 1.0) * (k - 1)
    i = np.minimum(np.floor(x).astype(int), k - 2)
    t = (x - i)[:, None]
    p0, p1, p2, p3 = padded[i], padded[i + 1], padded[i + 2], padded[i + 3]
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)


def sample_trajectory(rng: np.random.Generator, layout: Layout, name: str, num_frames: int) -> np.ndarray:
    """Draw trajectory ``name`` (one of :data:`TRAJECTORIES`) with ``num_frames`` cameras -> (F, 4, 4)."""
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    if isinstance(layout.background, Room):
        return _INDOOR[name](rng, layout, s)
    return _OUTDOOR[name](rng, layout, s)


# --------------------------------------------------------------------------------------------- indoor

def _indoor_box(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners (3,) of the region indoor cameras may occupy."""
    assert isinstance(layout.background, Room), "indoor trajectories are drawn for rooms only"
    size = layout.background.size
    lo = np.array([WALL_MARGIN, WALL_MARGIN, MIN_INDOOR_EYE_HEIGHT])
    hi = np.array([size[0] - WALL_MARGIN, size[1] - WALL_MARGIN, max(size[2] - WALL_MARGIN, lo[2])])
    return lo, hi


def _indoor_walk(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    lo, hi = _indoor_box(layout)
    target = np.array([*layout.content_centre[:2], rng.uniform(0.3, 0.7)])
    # start near a wall on the far side of the content, walk straight towards the content
    phi = rng.uniform(0, 2 * np.pi, size=8)
    candidates = np.clip(target + 10.0 * np.stack([np.cos(phi), np.sin(phi), np.zeros(8)], axis=1), lo, hi)
    start = candidates[np.argmax(np.linalg.norm(candidates[:, :2] - target[:2], axis=1))]
    start[2] = rng.uniform(lo[2], min(hi[2], 1.8))
    to_target = target[:2] - start[:2]
    distance = float(np.linalg.norm(to_target))
    length = float(np.clip(rng.uniform(1.0, 2.5), 0.0, max(distance - 1.2, 0.0)))
    end = start.copy()
    end[:2] += to_target / max(distance, 1e-9) * length
    eyes = start + (end - start) * s[:, None]
    return look_at(eyes, np.broadcast_to(target, eyes.shape))


def _indoor_orbit(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    lo, hi = _indoor_box(layout)
    centre = 0.5 * (lo + hi)
    radius = rng.uniform(0.7, 1.0) * 0.5 * min(hi[0] - lo[0], hi[1] - lo[1])
    start = rng.uniform(0, 2 * np.pi)
    sweep = np.radians(rng.uniform(60, 150)) * (1 if rng.random() < 0.5 else -1)
    angle = start + sweep * s
    height = rng.uniform(lo[2], min(hi[2], 1.8))
    eyes = np.stack([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle),
                     np.full_like(angle, height)], axis=1)
    target = np.array([centre[0], centre[1], rng.uniform(0.3, 0.6)])
    return look_at(eyes, np.broadcast_to(target, eyes.shape))


def _indoor_pan(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    lo, hi = _indoor_box(layout)
    centre = 0.5 * (lo + hi)
    phi = rng.uniform(0, 2 * np.pi)
    eye = centre + rng.uniform(0.5, 0.9) * 0.5 * (hi - lo) * np.array([np.cos(phi), np.sin(phi), 0.0])
    eye[2] = rng.uniform(lo[2], min(hi[2], 1.8))
    yaw0 = np.arctan2(centre[1] - eye[1], centre[0] - eye[0])
    sweep = np.radians(rng.uniform(20, 50)) * (1 if rng.random() < 0.5 else -1)
    yaw = yaw0 + sweep * (s - 0.5)
    pitch = np.full_like(s, np.radians(rng.uniform(-25, -8)))
    eyes = np.broadcast_to(eye, (len(s), 3))
    return look_at(eyes, eyes + _direction(yaw, pitch))


def _indoor_random(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    lo, hi = _indoor_box(layout)
    hi_eye = hi.copy()
    hi_eye[2] = min(hi[2], 1.9)
    controls = rng.uniform(lo, hi_eye, size=(4, 3))
    eyes = np.clip(smooth_curve(controls, s), lo, hi)  # the spline may overshoot its controls
    centre = 0.5 * (lo + hi)
    yaw0 = np.arctan2(centre[1] - controls[0, 1], centre[0] - controls[0, 0])
    yaws = yaw0 + np.cumsum(np.radians(rng.uniform(-50, 50, size=4)))
    pitches = np.radians(rng.uniform(-30, -5, size=4))
    angles = smooth_curve(np.stack([yaws, pitches], axis=1), s)
    return look_at(eyes, eyes + _direction(angles[:, 0], angles[:, 1]))


# -------------------------------------------------------------------------------------------- outdoor

def _aim(eyes: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch (F,) that look from ``eyes`` (F, 3) at ``target`` (3,)."""
    delta = target - eyes
    yaw = np.arctan2(delta[:, 1], delta[:, 0])
    pitch = np.arctan2(delta[:, 2], np.hypot(delta[:, 0], delta[:, 1]))
    return yaw, pitch


def _ring(rng: np.random.Generator, layout: Layout) -> tuple[float, float]:
    """Inner and outer radius (m) of the annulus outdoor cameras may occupy."""
    inner = layout.object_radius + 1.5
    return inner, inner + rng.uniform(2.0, 4.0)


def _outdoor_walk(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    inner, outer = _ring(rng, layout)
    phi = rng.uniform(0, 2 * np.pi)
    start_r = outer + 1.0
    length = min(rng.uniform(2.0, 4.0), start_r - inner)
    radial = np.array([np.cos(phi), np.sin(phi), 0.0])
    lateral = np.array([-np.sin(phi), np.cos(phi), 0.0]) * rng.uniform(-1.0, 1.0)
    height = rng.uniform(1.3, 2.5)
    start = start_r * radial + np.array([0.0, 0.0, height])
    end = (start_r - length) * radial + lateral + np.array([0.0, 0.0, height])
    eyes = start + (end - start) * s[:, None]
    target = layout.content_centre
    return look_at(eyes, np.broadcast_to(target, eyes.shape))


def _outdoor_orbit(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    inner, outer = _ring(rng, layout)
    radius = rng.uniform(inner, outer)
    start = rng.uniform(0, 2 * np.pi)
    sweep = np.radians(rng.uniform(60, 180)) * (1 if rng.random() < 0.5 else -1)
    angle = start + sweep * s
    height = rng.uniform(1.5, 3.0)
    eyes = np.stack([radius * np.cos(angle), radius * np.sin(angle), np.full_like(angle, height)], axis=1)
    return look_at(eyes, np.broadcast_to(layout.content_centre, eyes.shape))


def _outdoor_pan(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    inner, outer = _ring(rng, layout)
    radius = rng.uniform(inner, outer)
    phi = rng.uniform(0, 2 * np.pi)
    eye = np.array([radius * np.cos(phi), radius * np.sin(phi), rng.uniform(1.3, 3.0)])
    eyes = np.broadcast_to(eye, (len(s), 3))
    yaw0, pitch0 = _aim(eyes[:1], layout.content_centre)
    sweep = np.radians(rng.uniform(20, 50)) * (1 if rng.random() < 0.5 else -1)
    yaw = yaw0[0] + sweep * (s - 0.5)
    pitch = np.full_like(s, pitch0[0] - np.radians(rng.uniform(0, 6)))
    return look_at(eyes, eyes + _direction(yaw, pitch))


def _outdoor_random(rng: np.random.Generator, layout: Layout, s: np.ndarray) -> np.ndarray:
    inner, outer = _ring(rng, layout)
    phi0 = rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(inner, outer, size=4)
    phi = phi0 + np.radians(rng.uniform(-40, 40, size=4))
    heights = rng.uniform(1.3, 3.0, size=4)
    # interpolate in polar coordinates so the path cannot cut through the object disc
    polar = smooth_curve(np.stack([radius, phi, heights], axis=1), s)
    r = np.clip(polar[:, 0], inner, outer)
    z = np.clip(polar[:, 2], 1.0, 3.5)
    eyes = np.stack([r * np.cos(polar[:, 1]), r * np.sin(polar[:, 1]), z], axis=1)
    yaw, pitch = _aim(eyes, layout.content_centre)
    offsets = smooth_curve(np.radians(rng.uniform(-20, 20, size=(4, 2))) * np.array([1.0, 0.25]), s)
    return look_at(eyes, eyes + _direction(yaw + offsets[:, 0], pitch + offsets[:, 1]))


_INDOOR = {"walk": _indoor_walk, "orbit": _indoor_orbit, "pan": _indoor_pan, "random": _indoor_random}
_OUTDOOR = {"walk": _outdoor_walk, "orbit": _outdoor_orbit, "pan": _outdoor_pan, "random": _outdoor_random}
