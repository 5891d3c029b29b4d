"""Cameras for Gen3R: the :class:`Cameras` type, VGGT pose encoding, Plücker rays, trajectories, files.

Conventions: extrinsics are OpenCV world-to-camera (x right, y down, z forward), intrinsics are in
pixels of ``image_size = (H, W)``, translations are in scene units. See ``docs/cameras.md``.

The names below are resolved on first use, so :mod:`gen3r.cameras.names` (formats, trajectory
presets) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gen3r.cameras.cameras import Cameras, resize_and_center_crop_params
    from gen3r.cameras.formats import (
        OFFICIAL_IMAGE_SIZE,
        detect_format,
        load_cameras,
        read_colmap,
        save_cameras,
        write_colmap,
    )
    from gen3r.cameras.names import FORMATS, OFFICIAL_TRAJECTORIES, TRAJECTORY_DESCRIPTIONS, TRAJECTORY_PRESETS
    from gen3r.cameras.plucker import pack_plucker_for_dit, plucker_rays, preprocess_poses
    from gen3r.cameras.pose_encoding import (
        extri_intri_to_pose_encoding,
        matrix_to_quaternion,
        pose_encoding_to_extri_intri,
        quaternion_to_matrix,
    )
    from gen3r.cameras.trajectories import make_trajectory, official_poses

_HOME = {"Cameras": "cameras", "resize_and_center_crop_params": "cameras", "FORMATS": "names",
         "OFFICIAL_TRAJECTORIES": "names", "TRAJECTORY_PRESETS": "names", "TRAJECTORY_DESCRIPTIONS": "names",
         "OFFICIAL_IMAGE_SIZE": "formats", "detect_format": "formats", "load_cameras": "formats",
         "save_cameras": "formats", "read_colmap": "formats", "write_colmap": "formats",
         "plucker_rays": "plucker", "preprocess_poses": "plucker", "pack_plucker_for_dit": "plucker",
         "extri_intri_to_pose_encoding": "pose_encoding", "pose_encoding_to_extri_intri": "pose_encoding",
         "quaternion_to_matrix": "pose_encoding", "matrix_to_quaternion": "pose_encoding",
         "make_trajectory": "trajectories", "official_poses": "trajectories"}
__all__ = ["Cameras", "resize_and_center_crop_params", "FORMATS", "OFFICIAL_TRAJECTORIES",
           "TRAJECTORY_PRESETS", "TRAJECTORY_DESCRIPTIONS", "OFFICIAL_IMAGE_SIZE", "detect_format",
           "load_cameras", "save_cameras", "read_colmap", "write_colmap", "plucker_rays", "preprocess_poses",
           "pack_plucker_for_dit", "extri_intri_to_pose_encoding", "pose_encoding_to_extri_intri",
           "quaternion_to_matrix", "matrix_to_quaternion", "make_trajectory", "official_poses"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"gen3r.cameras.{_HOME[name]}"), name)
    raise AttributeError(f"module 'gen3r.cameras' has no attribute {name!r}")
