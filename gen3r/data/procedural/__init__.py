"""Procedural 3D scenes with exact ground truth (rgb, z-depth, world points, cameras, captions).

Indoor rooms and outdoor ground + sky scenes with boxes, spheres and capped cylinders, procedural
textures and Lambert shading, seen along walk / orbit / pan / random smooth camera paths. Every
pixel is ray cast analytically (vectorised numpy), so depth and world points are exact. See
:func:`render_scene` and ``docs/data.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gen3r.data.procedural.layout import KINDS, Layout, sample_layout
    from gen3r.data.procedural.render import FIELDS, Scene, intrinsics_from_fov, render_scene, render_views
    from gen3r.data.procedural.trajectories import TRAJECTORIES, look_at, sample_trajectory

#: Where each public name lives; resolved on first use, so the scene kinds and trajectory names
#: (numpy-only modules) import without torch.
_HOME = {"KINDS": "layout", "Layout": "layout", "sample_layout": "layout", "FIELDS": "render", "Scene": "render",
         "intrinsics_from_fov": "render", "render_scene": "render", "render_views": "render",
         "TRAJECTORIES": "trajectories", "look_at": "trajectories", "sample_trajectory": "trajectories"}
__all__ = ["FIELDS", "KINDS", "Layout", "Scene", "TRAJECTORIES", "intrinsics_from_fov", "look_at",
           "render_scene", "render_views", "sample_layout", "sample_trajectory"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"gen3r.data.procedural.{_HOME[name]}"), name)
    raise AttributeError(f"module 'gen3r.data.procedural' has no attribute {name!r}")
