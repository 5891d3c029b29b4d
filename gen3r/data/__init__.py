"""Data: procedural scenes with exact ground truth and writers for the dataset layouts we use.

* :mod:`gen3r.data.procedural`: :func:`render_scene` -> :class:`Scene` (rgb, z-depth, world points,
  valid mask, OpenCV cameras, captions).
* :mod:`gen3r.data.writers`: official Gen3R training layout, RealEstate10K, nerfstudio and npz.
"""

from gen3r.data.procedural import Scene, render_scene

__all__ = ["Scene", "render_scene"]
