"""Procedural textures and the named colour table used by the scene captions.

A texture maps surface coordinates ``u``, ``v`` (N,), in metres along the surface, to an albedo
(3, N) in [0, 1]. Every texture is defined by a few colours and numbers drawn from the scene's
random generator, so a scene is reproducible from its seed, and each texture can describe itself
in words (:meth:`Texture.describe`) for the caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Named colours (linear-ish RGB in [0, 1]); the names are what the captions say.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.12, 0.10),
    "orange": (0.92, 0.45, 0.08),
    "yellow": (0.95, 0.82, 0.15),
    "green": (0.18, 0.62, 0.20),
    "teal": (0.08, 0.55, 0.55),
    "blue": (0.12, 0.28, 0.80),
    "purple": (0.48, 0.18, 0.65),
    "pink": (0.95, 0.50, 0.68),
    "brown": (0.45, 0.28, 0.12),
    "beige": (0.86, 0.78, 0.62),
    "cream": (0.96, 0.93, 0.82),
    "gray": (0.50, 0.50, 0.50),
    "light gray": (0.78, 0.78, 0.76),
    "white": (0.95, 0.95, 0.95),
    "black": (0.07, 0.07, 0.08),
    "olive": (0.45, 0.48, 0.14),
    "navy": (0.08, 0.12, 0.40),
    "light blue": (0.62, 0.76, 0.92),
    "pale green": (0.70, 0.86, 0.68),
    "dark green": (0.10, 0.32, 0.14),
    "sand": (0.82, 0.72, 0.50),
}

# Colour groups the layout draws from.
BRIGHT = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "navy", "olive")
LIGHT = ("beige", "cream", "light gray", "white", "light blue", "pale green")
FLOOR = ("brown", "gray", "beige", "sand", "olive", "navy")
GROUND = ("green", "dark green", "sand", "brown", "olive", "gray")
CONTRAST = ("white", "black", "yellow", "red", "blue", "green")

PATTERNS = ("checker", "stripes", "noise", "gradient", "palette", "plain")


def colour(name: str) -> np.ndarray:
    """The RGB triple (3,) float64 in [0, 1] of a named colour."""
    return np.asarray(COLOURS[name], dtype=np.float64)


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point (vectorised)."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            iy.astype(np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        )
        h ^= np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(u: np.ndarray, v: np.ndarray, scale: float, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal value noise in [0, 1] at surface coordinates ``u``, ``v`` (m); ``scale`` is the base cell size (m)."""
    total = np.zeros(np.shape(u))
    norm = 0.0
    amplitude = 1.0
    for octave in range(octaves):
        cell = scale / 2.0**octave
        pu, pv = u / cell, v / cell
        iu, iv = np.floor(pu), np.floor(pv)
        fu, fv = pu - iu, pv - iv
        fu, fv = fu * fu * (3.0 - 2.0 * fu), fv * fv * (3.0 - 2.0 * fv)  # smoothstep weights
        s = seed + 7919 * octave
        v00 = _hash01(iu, iv, s)
        v10 = _hash01(iu + 1, iv, s)
        v01 = _hash01(iu, iv + 1, s)
        v11 = _hash01(iu + 1, iv + 1, s)
        top = v00 + (v10 - v00) * fu
        bottom = v01 + (v11 - v01) * fu
        total += amplitude * (top + (bottom - top) * fv)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


@dataclass(frozen=True)
class Texture:
    """A procedural texture.

    Attributes:
        pattern: one of :data:`PATTERNS`.
        colours: names of the colours used (1 for plain/noise, 2 for checker/stripes/gradient,
            3-5 for palette).
        scale: cell / stripe width / noise cell size / gradient half-period, in metres.
        angle: stripe / gradient direction in the uv plane, radians.
        seed: seed of the noise and palette hashes.
    """

    pattern: str
    colours: tuple[str, ...]
    scale: float = 0.5
    angle: float = 0.0
    seed: int = 0
    _rgb: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rgb", np.stack([colour(c) for c in self.colours]))

    def sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Albedo (3, N) float64 in [0, 1] at surface coordinates ``u``, ``v`` (N,) in metres."""
        rgb = self._rgb
        if self.pattern == "plain":
            return np.broadcast_to(rgb[0][:, None], (3, u.shape[0])).copy()
        if self.pattern == "checker":
            parity = (np.floor(u / self.scale) + np.floor(v / self.scale)).astype(np.int64) & 1
            return rgb.T[:, parity]
        w = u * np.cos(self.angle) + v * np.sin(self.angle)
        if self.pattern == "stripes":
            return rgb.T[:, np.floor(w / self.scale).astype(np.int64) & 1]
        if self.pattern == "gradient":
            t = np.abs((w / (2.0 * self.scale)) % 2.0 - 1.0)  # triangle wave, period 4 * scale
            return rgb[0][:, None] + (rgb[1] - rgb[0])[:, None] * t
        if self.pattern == "noise":
            t = value_noise(u, v, self.scale, self.seed)
            return rgb[0][:, None] * (0.55 + 0.75 * t)
        if self.pattern == "palette":
            pick = _hash01(np.floor(u / self.scale), np.floor(v / self.scale), self.seed)
            return rgb.T[:, np.minimum((pick * len(rgb)).astype(np.int64), len(rgb) - 1)]
        raise ValueError(f"unknown texture pattern {self.pattern!r}")

    def describe(self) -> str:
        """Words for the caption, e.g. ``"red and white checkered"`` or ``"mottled blue"``."""
        c = self.colours
        if self.pattern == "plain":
            return c[0]
        if self.pattern == "checker":
            return f"{c[0]} and {c[1]} checkered"
        if self.pattern == "stripes":
            return f"{c[0]} and {c[1]} striped"
        if self.pattern == "gradient":
            return f"{c[0]}-to-{c[1]} gradient"
        if self.pattern == "noise":
            return f"mottled {c[0]}"
        return "multicoloured patchwork"


def random_texture(rng: np.random.Generator, primary: tuple[str, ...], scale_range: tuple[float, float],
                   patterns: tuple[str, ...] = PATTERNS) -> Texture:
    """Draw a texture whose main colour comes from ``primary`` and whose cell size is in ``scale_range`` (m)."""
    pattern = str(rng.choice(patterns))
    first = str(rng.choice(primary))
    others = [n for n in CONTRAST + BRIGHT if n != first]
    if pattern in ("checker", "stripes", "gradient"):
        colours: tuple[str, ...] = (first, str(rng.choice(others)))
    elif pattern == "palette":
        k = int(rng.integers(3, 6))
        colours = (first, *(str(n) for n in rng.choice(others, size=k - 1, replace=False)))
    else:
        colours = (first,)
    return Texture(
        pattern=pattern,
        colours=colours,
        scale=float(rng.uniform(*scale_range)),
        angle=float(rng.choice([0.0, np.pi / 2, np.pi / 4, rng.uniform(0.0, np.pi)])),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
