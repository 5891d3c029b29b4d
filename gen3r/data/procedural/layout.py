"""Random scene layouts (room or open ground, objects, light, sky) and their captions.

World frame: right-handed, metres, +z up, floor / ground at z = 0. Indoor rooms span
``[0, size_x] x [0, size_y] x [0, size_z]``; outdoor objects stand within ``object_radius`` of the
origin on a ground disc. Objects are never taller than :data:`MAX_INDOOR_OBJECT_HEIGHT` indoors,
so cameras at eye height (>= :data:`MIN_INDOOR_EYE_HEIGHT`) can never be inside one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gen3r.data.procedural.primitives import Box, Cylinder, Ground, Primitive, Room, Sphere
from gen3r.data.procedural.textures import BRIGHT, FLOOR, GROUND, LIGHT, Texture, random_texture

KINDS = ("indoor", "outdoor")
MAX_INDOOR_OBJECT_HEIGHT = 1.1
MIN_INDOOR_EYE_HEIGHT = 1.3
WALL_MARGIN = 0.4  # cameras stay this far (m) from the walls and the ceiling
GROUND_RADIUS = 60.0

# sky name -> (horizon colour, zenith colour)
SKIES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "clear blue": ((0.78, 0.87, 0.97), (0.22, 0.45, 0.88)),
    "hazy": ((0.88, 0.88, 0.86), (0.60, 0.66, 0.78)),
    "sunset": ((0.98, 0.62, 0.32), (0.30, 0.24, 0.50)),
    "overcast gray": ((0.74, 0.74, 0.76), (0.52, 0.53, 0.57)),
}

Object = Box | Sphere | Cylinder


@dataclass(frozen=True)
class Layout:
    """A scene without cameras.

    Attributes:
        kind: ``"indoor"`` or ``"outdoor"``.
        background: the :class:`Room` or the :class:`Ground`.
        objects: the boxes, spheres and cylinders.
        light: unit vector (3,) pointing *towards* the directional light, world frame.
        ambient: ambient light fraction in [0, 1].
        sky: sky name (outdoor) or ``None`` (indoor: every ray hits the room).
        content_centre: point (3,) m the cameras look at by default (centroid of the objects).
        object_radius: outdoor only: radius (m) around the origin that holds every object.
    """

    kind: str
    background: Room | Ground
    objects: tuple[Object, ...]
    light: np.ndarray
    ambient: float
    sky: str | None
    content_centre: np.ndarray
    object_radius: float = 0.0

    @property
    def primitives(self) -> tuple[Primitive, ...]:
        """Background first, then the objects."""
        return (self.background, *self.objects)


def _footprint(obj: Object) -> float:
    """Radius (m) of a vertical cylinder around the object's axis that contains it."""
    if isinstance(obj, Box):
        return float(np.hypot(obj.half[0], obj.half[1]))
    return float(obj.radius)


def _random_object(rng: np.random.Generator, xy: np.ndarray, big: bool) -> Object:
    """An object standing on z = 0 at ``xy``; ``big`` objects are the outdoor sizes."""
    shape = str(rng.choice(["box", "sphere", "cylinder"]))
    scale = 2.0 if big else 1.0
    texture = random_texture(rng, BRIGHT, (0.06 * scale, 0.25 * scale))
    if shape == "box":
        half = rng.uniform(0.15, 0.5, size=3) * scale
        half[2] = min(half[2], 0.5 * (2.5 if big else MAX_INDOOR_OBJECT_HEIGHT))
        if rng.random() < 0.3:
            half[:] = half[0]  # a cube
        return Box(np.array([xy[0], xy[1], half[2]]), half, float(rng.uniform(0, np.pi)), texture)
    if shape == "sphere":
        r = float(rng.uniform(0.15, 0.5) * scale)
        return Sphere(np.array([xy[0], xy[1], r]), r, texture)
    r = float(rng.uniform(0.1, 0.35) * scale)
    height = float(rng.uniform(0.3, 1.1) * (2.7 if big else 1.0))
    return Cylinder(np.array([xy[0], xy[1], 0.0]), r, height, texture)


def _place_objects(rng: np.random.Generator, count: int, sample_xy: Callable[[float], np.ndarray],
                   big: bool) -> tuple[Object, ...]:
    """Draw ``count`` objects at positions from ``sample_xy(footprint)``, avoiding overlaps when possible."""
    objects: list[Object] = []
    for _ in range(count):
        obj = _random_object(rng, np.zeros(2), big)
        rad = _footprint(obj)
        xy = sample_xy(rad)
        for _try in range(50):
            if all(np.hypot(*(xy - _xy(o))) >= rad + _footprint(o) + 0.1 for o in objects):
                break
            xy = sample_xy(rad)
        objects.append(_moved(obj, xy))
    return tuple(objects)


def _xy(obj: Object) -> np.ndarray:
    """Ground-plane position (2,) m of the object's vertical axis."""
    return (obj.base if isinstance(obj, Cylinder) else obj.centre)[:2]


def _moved(obj: Object, xy: np.ndarray) -> Object:
    """The same object with its vertical axis moved to ``xy`` (m)."""
    if isinstance(obj, Cylinder):
        return Cylinder(np.array([xy[0], xy[1], obj.base[2]]), obj.radius, obj.height, obj.texture)
    centre = np.array([xy[0], xy[1], obj.centre[2]])
    if isinstance(obj, Box):
        return Box(centre, obj.half, obj.yaw, obj.texture)
    return Sphere(centre, obj.radius, obj.texture)


def _centroid(objects: tuple[Object, ...], fallback: np.ndarray) -> np.ndarray:
    """Mean ground position of the objects at the height of ``fallback`` (used when there are none)."""
    if not objects:
        return fallback
    xy = np.mean([_xy(o) for o in objects], axis=0)
    return np.array([xy[0], xy[1], fallback[2]])


def sample_layout(rng: np.random.Generator, kind: str, num_objects: int | None) -> Layout:
    """Draw a layout of ``kind`` with ``num_objects`` objects (``None``: 2 to 5, from ``rng``)."""
    count = int(rng.integers(2, 6)) if num_objects is None else num_objects
    if kind == "indoor":
        return _indoor(rng, count)
    return _outdoor(rng, count)


def _indoor(rng: np.random.Generator, count: int) -> Layout:
    size = np.array([rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0), rng.uniform(2.6, 3.4)])
    room = Room(
        size=size,
        floor=random_texture(rng, FLOOR, (0.25, 0.8), ("checker", "stripes", "noise", "plain", "palette")),
        walls=random_texture(rng, LIGHT, (0.15, 0.6), ("plain", "stripes", "noise", "gradient", "checker")),
        ceiling=Texture("plain", (str(rng.choice(["white", "cream", "light gray"])),)),
    )

    def sample_xy(rad: float) -> np.ndarray:
        lo = min(0.6 + rad, 0.5 * size[0]), min(0.6 + rad, 0.5 * size[1])
        return np.array([rng.uniform(lo[0], size[0] - lo[0]), rng.uniform(lo[1], size[1] - lo[1])])

    objects = _place_objects(rng, count, sample_xy, big=False)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0])
    return Layout(
        kind="indoor",
        background=room,
        objects=objects,
        light=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.35, 0.5)),
        sky=None,
        content_centre=_centroid(objects, np.array([size[0] / 2, size[1] / 2, 0.4])),
    )


def _outdoor(rng: np.random.Generator, count: int) -> Layout:
    object_radius = float(rng.uniform(2.0, 4.0))
    ground = Ground(GROUND_RADIUS, random_texture(rng, GROUND, (0.5, 2.0), ("checker", "noise", "plain", "stripes")))

    def sample_xy(rad: float) -> np.ndarray:
        r = max(object_radius - rad, 0.0) * np.sqrt(rng.random())
        phi = rng.uniform(0, 2 * np.pi)
        return np.array([r * np.cos(phi), r * np.sin(phi)])

    objects = _place_objects(rng, count, sample_xy, big=True)
    elevation = rng.uniform(np.radians(25), np.radians(70))
    azimuth = rng.uniform(0, 2 * np.pi)
    light = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    return Layout(
        kind="outdoor",
        background=ground,
        objects=objects,
        light=light,
        ambient=float(rng.uniform(0.3, 0.45)),
        sky=str(rng.choice(list(SKIES))),
        content_centre=_centroid(objects, np.array([0.0, 0.0, 0.6])),
        object_radius=object_radius,
    )


# ----------------------------------------------------------------------------------------- captions

_MOTION = {
    "walk": "walks forward through",
    "orbit": "orbits around",
    "pan": "pans across",
    "random": "drifts smoothly through",
}


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _join(items: list[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe_object(obj: Object) -> str:
    """E.g. ``"a large red and white checkered box"``."""
    if isinstance(obj, Box):
        shape = "cube" if np.ptp(obj.half) < 1e-9 else "box"
        extent = 2.0 * float(obj.half.max())
    elif isinstance(obj, Sphere):
        shape, extent = "sphere", 2.0 * obj.radius
    else:
        shape = "pillar" if obj.height > 4.0 * obj.radius else "cylinder"
        extent = max(obj.height, 2.0 * obj.radius)
    size = "small " if extent < 0.4 else "large " if extent > 1.6 else ""
    return _article(f"{size}{obj.texture.describe()} {shape}")


def captions(layout: Layout, trajectory: str) -> list[str]:
    """Several captions of the scene (the first is the main one), in the style of the training data."""
    objs = _join([describe_object(o) for o in layout.objects])
    motion = _MOTION[trajectory]
    if isinstance(layout.background, Room):
        room = layout.background
        area = room.size[0] * room.size[1]
        size = "small" if area < 20 else "medium-sized" if area < 40 else "large"
        walls, floor = room.walls.describe(), room.floor.describe()
        ceiling = room.ceiling.describe()
        return [
            f"{_article(size)} room with {objs}, {walls} walls, {_article(floor)} floor "
            f"and {_article(ceiling)} ceiling",
            f"An indoor scene: {objs} on {_article(floor)} floor in {_article(size)} room with {walls} walls.",
            f"A 3D rendered {size} room containing {objs}.",
            f"The camera {motion} {_article(size)} room with {walls} walls and {objs}.",
        ]
    ground = layout.background.texture.describe()
    return [
        f"an open field of {ground} ground with {objs} under {_article(str(layout.sky))} sky",
        f"An outdoor scene: {objs} standing on {ground} ground, {_article(str(layout.sky))} sky above.",
        f"A 3D rendered landscape with {objs}.",
        f"The camera {motion} an open field with {objs} under {_article(str(layout.sky))} sky.",
    ]
