"""Render a procedural scene: analytic ray casting of every pixel, Lambert shading, exact geometry.

Conventions (all arrays are numpy):

* World frame: right-handed, metres, +z up, floor / ground at z = 0.
* Extrinsics: OpenCV world-to-camera (F, 4, 4) (camera +x right, +y down, +z forward).
* Intrinsics: (F, 3, 3) in pixels, ``fx = fy = (W / 2) / tan(fov_deg / 2)``, ``cx = W / 2``,
  ``cy = H / 2``.
* Pixel grid: the ray of pixel (row v, column u) goes through the **integer** image coordinates
  ``(u, v)``, i.e. ``K^-1 [u, v, 1]``. This is the grid VGGT and the official Gen3R code use when
  they unproject depth, so ``gen3r.geometry.unproject_depth(depth, extrinsics, intrinsics)``
  reproduces ``world_points`` exactly (up to float32 rounding).
* ``depth`` is the z-depth (along the camera +z axis, not the ray length) in metres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gen3r.cameras import Cameras
from gen3r.data.procedural.layout import KINDS, SKIES, Layout, captions, sample_layout
from gen3r.data.procedural.trajectories import TRAJECTORIES, sample_trajectory
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

_RAYS_PER_CHUNK = 1 << 19
_SHADOW_OFFSET = 1e-4  # m, shadow rays start this far off the surface (no self-shadowing)
FIELDS = ("rgb", "depth", "world_points", "valid", "extrinsics", "intrinsics", "caption")


@dataclass(eq=False)
class Scene:
    """A rendered procedural scene with exact ground truth.

    Attributes:
        rgb: (F, H, W, 3) float32 in [0, 1].
        depth: (F, H, W) float32 z-depth in metres along camera +z; 0 where not ``valid``.
        world_points: (F, H, W, 3) float32 world-frame points in metres; 0 where not ``valid``.
        valid: (F, H, W) bool; False on sky pixels.
        extrinsics: (F, 4, 4) float32 OpenCV world-to-camera.
        intrinsics: (F, 3, 3) float32 in pixels.
        caption: the main caption, e.g. ``"a small room with a red and white checkered box, ..."``.
        captions: several captions (the first is ``caption``), for ``captions.txt``.
        seed, kind, trajectory: how the scene was made (``kind`` is resolved: never ``"random"``).
    """

    rgb: np.ndarray
    depth: np.ndarray
    world_points: np.ndarray
    valid: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    caption: str
    captions: list[str] = field(default_factory=list)
    seed: int = 0
    kind: str = "indoor"
    trajectory: str = "walk"

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to the fields in :data:`FIELDS` (and ``captions``), e.g. ``scene["rgb"]``."""
        if key not in FIELDS and key != "captions":
            raise KeyError(key)
        return getattr(self, key)

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])

    @property
    def cameras(self) -> Cameras:
        """The cameras as a :class:`gen3r.cameras.Cameras` (torch float32)."""
        import torch

        return Cameras(torch.from_numpy(self.extrinsics.copy()), torch.from_numpy(self.intrinsics.copy()),
                       image_size=self.image_size)


def intrinsics_from_fov(height: int, width: int, fov_deg: float) -> np.ndarray:
    """Pinhole intrinsics (3, 3) float64 in pixels with horizontal field of view ``fov_deg``."""
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def _check(seed: int, num_frames: int, height: int, width: int, kind: str, trajectory: str,
           fov_deg: float, num_objects: int | None) -> None:
    for name, value, low in (("seed", seed, 0), ("num_frames", num_frames, 1), ("height", height, 1),
                             ("width", width, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise Gen3RError(f"render_scene: {name} must be an integer >= {low}, got {value!r}")
    if kind not in (*KINDS, "random"):
        raise Gen3RError(f"render_scene: kind must be one of {(*KINDS, 'random')}, got {kind!r}")
    if trajectory not in TRAJECTORIES:
        raise Gen3RError(f"render_scene: trajectory must be one of {TRAJECTORIES}, got {trajectory!r}")
    if not (isinstance(fov_deg, (int, float)) and 1.0 <= fov_deg <= 170.0):
        raise Gen3RError(f"render_scene: fov_deg must be a number in [1, 170] degrees, got {fov_deg!r}")
    if num_objects is not None and (isinstance(num_objects, bool) or not isinstance(num_objects, (int, np.integer))
                                    or not 0 <= num_objects <= 64):
        raise Gen3RError(f"render_scene: num_objects must be an integer in [0, 64] or None, got {num_objects!r}")


def render_scene(seed: int, num_frames: int, height: int, width: int, *, kind: str = "indoor",
                 trajectory: str = "walk", fov_deg: float = 60.0, num_objects: int | None = None) -> Scene:
    """Render a random procedural scene, deterministic in ``seed``.

    Args:
        seed: integer >= 0; the same arguments always give identical arrays.
        num_frames, height, width: output size F, H, W.
        kind: ``"indoor"`` (a closed room: every pixel valid), ``"outdoor"`` (ground disc and sky:
            sky pixels invalid) or ``"random"`` (one of the two, drawn from ``seed``).
        trajectory: ``"walk"`` (forward), ``"orbit"`` (arc around the content), ``"pan"`` (rotate in
            place) or ``"random"`` (smooth random path).
        fov_deg: horizontal field of view in degrees.
        num_objects: number of boxes / spheres / cylinders; ``None`` draws 2 to 5.

    Returns:
        A :class:`Scene`; see the module docstring for the conventions.
    """
    _check(seed, num_frames, height, width, kind, trajectory, fov_deg, num_objects)
    rng = np.random.default_rng(int(seed))
    if kind == "random":
        kind = str(rng.choice(KINDS))
    layout = sample_layout(rng, kind, None if num_objects is None else int(num_objects))
    w2c = sample_trajectory(rng, layout, trajectory, num_frames)
    k = intrinsics_from_fov(height, width, float(fov_deg))
    rgb, depth, points, valid = render_views(layout, w2c, k, height, width)
    texts = captions(layout, trajectory)
    logger.debug("rendered %s scene seed=%d: %s", kind, seed, texts[0])
    return Scene(
        rgb=rgb,
        depth=depth,
        world_points=points,
        valid=valid,
        extrinsics=w2c.astype(np.float32),
        intrinsics=np.broadcast_to(k, (num_frames, 3, 3)).astype(np.float32),
        caption=texts[0],
        captions=texts,
        seed=int(seed),
        kind=kind,
        trajectory=trajectory,
    )


def _camera_rays(w2c: np.ndarray, k: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins (3, F, 1) and directions (3, F, H * W), world frame, float64; camera-z of each direction is 1."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    d_cam = np.stack([((u - k[0, 2]) / k[0, 0]).ravel(), ((v - k[1, 2]) / k[1, 1]).ravel(), np.ones(u.size)])
    rot, trans = w2c[:, :3, :3], w2c[:, :3, 3]
    centres = -np.einsum("fji,fj->if", rot, trans)  # R^T t, component-first
    dirs = np.einsum("fji,jn->ifn", rot, d_cam)  # R^T d
    return np.ascontiguousarray(centres[:, :, None]), np.ascontiguousarray(dirs)


def _sky(layout: Layout, dirs: np.ndarray) -> np.ndarray:
    """Sky colour (3, M) for view directions ``dirs`` (3, M)."""
    horizon, zenith = (np.asarray(c)[:, None] for c in SKIES[layout.sky or "hazy"])
    elevation = dirs[2] / np.linalg.norm(dirs, axis=0)
    t = np.sqrt(np.clip(elevation, 0.0, 1.0))
    return horizon + (zenith - horizon) * t


def _in_shadow(layout: Layout, points: np.ndarray) -> np.ndarray:
    """(M,) bool: does an object block the directional light from ``points`` (3, M)?

    Only the objects cast shadows (the room's walls and ceiling would otherwise block the light).
    """
    blocked = np.zeros(points.shape[1], dtype=bool)
    towards_light = layout.light[:, None]
    for obj in layout.objects:
        blocked |= np.isfinite(obj.intersect(points, towards_light))
    return blocked


def _cast(layout: Layout, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shade rays -> colour (3, F, P), ray parameter (F, P) (``inf`` = sky) and hit points (3, F, P)."""
    best = np.full(dirs.shape[1:], np.inf)
    owner = np.full(dirs.shape[1:], -1)
    for i, prim in enumerate(layout.primitives):
        t = prim.intersect(origins, dirs)
        closer = t < best
        best = np.where(closer, t, best)
        owner[closer] = i
    hit = np.isfinite(best)
    points = origins + np.where(hit, best, 0.0) * dirs
    colour = np.empty_like(dirs)
    if not hit.all():
        colour[:, ~hit] = _sky(layout, dirs[:, ~hit])
    for i, prim in enumerate(layout.primitives):
        mine = owner == i
        if not mine.any():
            continue
        normal, albedo = prim.shade(points[:, mine])
        view = dirs[:, mine]
        facing = (normal * view).sum(axis=0) > 0.0
        normal[:, facing] *= -1.0  # shade the side the camera sees
        lambert = np.clip(layout.light @ normal, 0.0, None)
        lit = lambert > 0.0
        lambert[lit] *= ~_in_shadow(layout, points[:, mine][:, lit] + _SHADOW_OFFSET * normal[:, lit])
        colour[:, mine] = albedo * (layout.ambient + (1.0 - layout.ambient) * lambert)
    return np.clip(colour, 0.0, 1.0), best, points


def render_views(layout: Layout, w2c: np.ndarray, k: np.ndarray, height: int,
                 width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render ``layout`` from cameras ``w2c`` (F, 4, 4) with intrinsics ``k`` (3, 3).

    Returns rgb (F, H, W, 3) float32 in [0, 1], z-depth (F, H, W) float32 m, world points
    (F, H, W, 3) float32 m and valid (F, H, W) bool, computed in float64 and rounded once.
    """
    frames = len(w2c)
    rgb = np.empty((frames, height, width, 3), np.float32)
    depth = np.zeros((frames, height, width), np.float32)
    points = np.zeros((frames, height, width, 3), np.float32)
    valid = np.zeros((frames, height, width), bool)
    step = max(1, _RAYS_PER_CHUNK // (height * width))
    for f0 in range(0, frames, step):
        f1 = min(frames, f0 + step)
        origins, dirs = _camera_rays(w2c[f0:f1], k, height, width)
        colour, t, hits = _cast(layout, origins, dirs)
        hit = np.isfinite(t)
        shape = (f1 - f0, height, width)
        rgb[f0:f1] = np.moveaxis(colour, 0, -1).reshape(*shape, 3)
        depth[f0:f1] = np.where(hit, t, 0.0).reshape(shape)
        points[f0:f1] = np.moveaxis(np.where(hit, hits, 0.0), 0, -1).reshape(*shape, 3)
        valid[f0:f1] = hit.reshape(shape)
    return rgb, depth, points, valid
