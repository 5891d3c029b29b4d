"""Data: procedural scenes with exact ground truth and writers for the dataset layouts we use.

* :mod:`gen3r.data.procedural`: :func:`render_scene` -> :class:`Scene` (rgb, z-depth, world points,
  valid mask, OpenCV cameras, captions).
* :mod:`gen3r.data.writers`: official Gen3R training layout, RealEstate10K, nerfstudio and npz.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gen3r.data.procedural import Scene, render_scene

__all__ = ["Scene", "render_scene"]


def __getattr__(name: str) -> Any:  # resolved on first use: the CLI's parser imports no torch
    if name in __all__:
        return getattr(importlib.import_module("gen3r.data.procedural"), name)
    raise AttributeError(f"module 'gen3r.data' has no attribute {name!r}")
