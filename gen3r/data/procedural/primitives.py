"""Analytic ray casting against the scene primitives, vectorised over rays.

World frame: right-handed, metres, **+z up** (the floor / ground is the plane z = 0).
Rays are ``o + t * d``. Arrays are component-first so every component is contiguous: origins
``o`` (3, F, 1) (one camera centre per frame) and directions ``d`` (3, F, P) in the world frame
broadcast to (F, P). Directions need not be unit length: the renderer passes directions whose
camera-z component is 1, so the ray parameter ``t`` of a hit *is* the z-depth of that hit.

Every primitive has

* ``intersect(o, d) -> t`` (F, P): parameter of the nearest hit with ``t > EPS``, ``inf`` on a miss;
* ``shade(p) -> (normal, albedo)``: outward unit normal (3, M) and albedo (3, M) at hit points
  ``p`` (3, M) that lie on the primitive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen3r.data.procedural.textures import Texture

EPS = 1e-6


def _nearest_root(a: np.ndarray, half_b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Smallest root > EPS of ``a t^2 + 2 half_b t + c = 0`` (``a >= 0``), ``inf`` when there is none."""
    disc = half_b * half_b - a * c
    hit = (disc >= 0.0) & (a > 0.0)
    sq = np.sqrt(np.where(hit, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_a = 1.0 / a
        t0 = (-half_b - sq) * inv_a
        t1 = (-half_b + sq) * inv_a
    t = np.where(t0 > EPS, t0, np.where(t1 > EPS, t1, np.inf))
    return np.where(hit, t, np.inf)


@dataclass(frozen=True)
class Box:
    """A box resting in the scene: centre (3,) m, half extents (3,) m, rotated by ``yaw`` rad about +z."""

    centre: np.ndarray
    half: np.ndarray
    yaw: float
    texture: Texture

    def _to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotate world x, y components into the box frame (R^T v)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return c * x + s * y, c * y - s * x

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ox, oy = self._to_local(o[0] - self.centre[0], o[1] - self.centre[1])
        dx, dy = self._to_local(d[0], d[1])
        tnear: np.ndarray | float = -np.inf
        tfar: np.ndarray | float = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            for oa, da, h in ((ox, dx, self.half[0]), (oy, dy, self.half[1]),
                              (o[2] - self.centre[2], d[2], self.half[2])):
                inv = 1.0 / da
                t1 = (-h - oa) * inv
                t2 = (h - oa) * inv
                tnear = np.maximum(tnear, np.minimum(t1, t2))
                tfar = np.minimum(tfar, np.maximum(t1, t2))
        return np.where((tnear <= tfar) & (tnear > EPS), tnear, np.inf)

    def shade(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._to_local(p[0] - self.centre[0], p[1] - self.centre[1])
        local = np.stack([x, y, p[2] - self.centre[2]])
        axis = np.argmax(np.abs(local) / self.half[:, None], axis=0)
        cols = np.arange(p.shape[1])
        normal = np.zeros_like(local)
        normal[axis, cols] = np.sign(local[axis, cols])
        # surface coordinates: the two in-face local coordinates, measured from a box corner
        corner = local + self.half[:, None]
        u, v = corner[(axis + 1) % 3, cols], corner[(axis + 2) % 3, cols]
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        world = np.stack([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1], normal[2]])
        return world, self.texture.sample(u, v)


@dataclass(frozen=True)
class Sphere:
    """A sphere: centre (3,) m, radius m."""

    centre: np.ndarray
    radius: float
    texture: Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ox, oy, oz = (o[i] - self.centre[i] for i in range(3))
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        half_b = ox * d[0] + oy * d[1] + oz * d[2]
        c = ox * ox + oy * oy + oz * oz - self.radius**2
        return _nearest_root(a, half_b, c)

    def shade(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = p - self.centre[:, None]
        n /= np.linalg.norm(n, axis=0, keepdims=True)
        azimuth = np.arctan2(n[1], n[0])
        polar = np.arccos(np.clip(n[2], -1.0, 1.0))
        return n, self.texture.sample(azimuth * self.radius, polar * self.radius)


@dataclass(frozen=True)
class Cylinder:
    """A capped cylinder with a vertical axis: base centre (3,) m (bottom cap), radius m, height m."""

    base: np.ndarray
    radius: float
    height: float
    texture: Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ox, oy, oz = o[0] - self.base[0], o[1] - self.base[1], o[2]
        dx, dy, dz = d[0], d[1], d[2]
        z0, z1 = self.base[2], self.base[2] + self.height
        r2 = self.radius**2
        # side: only the near root can be the first hit from outside the cylinder
        t_side = _nearest_root(dx * dx + dy * dy, ox * dx + oy * dy, ox * ox + oy * oy - r2)
        z_side = oz + t_side * dz
        best = np.where((z_side >= z0) & (z_side <= z1), t_side, np.inf)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv = 1.0 / dz
            for z_cap in (z0, z1):
                t_cap = (z_cap - oz) * inv
                rx, ry = ox + t_cap * dx, oy + t_cap * dy
                ok = (t_cap > EPS) & (rx * rx + ry * ry <= r2)
                best = np.where(ok & (t_cap < best), t_cap, best)
        return best

    def shade(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qx, qy, qz = p[0] - self.base[0], p[1] - self.base[1], p[2] - self.base[2]
        rho = np.hypot(qx, qy)
        zc = qz - 0.5 * self.height
        on_cap = np.abs(zc) / (0.5 * self.height) > rho / self.radius
        zero = np.zeros_like(rho)
        inv_rho = 1.0 / np.maximum(rho, EPS)
        n = np.where(on_cap, np.stack([zero, zero, np.sign(zc)]), np.stack([qx * inv_rho, qy * inv_rho, zero]))
        u = np.where(on_cap, qx, np.arctan2(qy, qx) * self.radius)
        v = np.where(on_cap, qy, qz)
        return n, self.texture.sample(u, v)


@dataclass(frozen=True)
class Room:
    """The inside of an axis-aligned room ``[0, size_x] x [0, size_y] x [0, size_z]`` (m).

    Every ray cast from inside the room hits it (the exit point of the box); the surface is split
    into floor (z = 0), ceiling (z = size_z) and the four walls, each with its own texture.
    """

    size: np.ndarray
    floor: Texture
    walls: Texture
    ceiling: Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        tfar: np.ndarray | float = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(3):
                inv = 1.0 / d[i]
                tfar = np.minimum(tfar, np.maximum(-o[i] * inv, (self.size[i] - o[i]) * inv))
        return np.where(tfar > EPS, tfar, np.inf)

    def shade(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the face is the one the point is closest to; normals point into the room
        dist = np.concatenate([p, self.size[:, None] - p], axis=0)  # (6, M): x0 y0 z0 x1 y1 z1
        face = np.argmin(dist, axis=0)
        axis = face % 3
        cols = np.arange(p.shape[1])
        n = np.zeros_like(p)
        n[axis, cols] = np.where(face < 3, 1.0, -1.0)
        albedo = np.empty_like(p)
        floor, ceiling = face == 2, face == 5
        walls = ~(floor | ceiling)
        albedo[:, floor] = self.floor.sample(p[0, floor], p[1, floor])
        albedo[:, ceiling] = self.ceiling.sample(p[0, ceiling], p[1, ceiling])
        along = np.where(axis[walls] == 0, p[1, walls], p[0, walls])
        albedo[:, walls] = self.walls.sample(along, p[2, walls])
        return n, albedo


@dataclass(frozen=True)
class Ground:
    """The ground plane z = 0, a disc of ``radius`` m around the origin (beyond it: sky)."""

    radius: float
    texture: Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -o[2] / d[2]
        x = o[0] + t * d[0]
        y = o[1] + t * d[1]
        ok = (d[2] < 0.0) & (t > EPS) & (x * x + y * y <= self.radius**2)
        return np.where(ok, t, np.inf)

    def shade(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = np.zeros_like(p)
        n[2] = 1.0
        return n, self.texture.sample(p[0], p[1])


Primitive = Box | Sphere | Cylinder | Room | Ground
