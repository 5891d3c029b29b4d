"""Procedural 3D scenes with exact ground truth (rgb, z-depth, world points, cameras, captions).

Indoor rooms and outdoor ground + sky scenes with boxes, spheres and capped cylinders, procedural
textures and Lambert shading, seen along walk / orbit / pan / random smooth camera paths. Every
pixel is ray cast analytically (vectorised numpy), so depth and world points are exact. See
:func:`render_scene` and ``docs/data.md``.
"""

from gen3r.data.procedural.layout import KINDS, Layout, sample_layout
from gen3r.data.procedural.render import FIELDS, Scene, intrinsics_from_fov, render_scene, render_views
from gen3r.data.procedural.trajectories import TRAJECTORIES, look_at, sample_trajectory

__all__ = [
    "FIELDS",
    "KINDS",
    "TRAJECTORIES",
    "Layout",
    "Scene",
    "intrinsics_from_fov",
    "look_at",
    "render_scene",
    "render_views",
    "sample_layout",
    "sample_trajectory",
]
