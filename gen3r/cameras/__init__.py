"""Cameras for Gen3R: the :class:`Cameras` type, VGGT pose encoding, Plücker rays, trajectories, files.

Conventions: extrinsics are OpenCV world-to-camera (x right, y down, z forward), intrinsics are in
pixels of ``image_size = (H, W)``, translations are in scene units. See ``docs/cameras.md``.
"""

from gen3r.cameras.cameras import Cameras, resize_and_center_crop_params
from gen3r.cameras.formats import (
    FORMATS,
    OFFICIAL_IMAGE_SIZE,
    detect_format,
    load_cameras,
    read_colmap,
    save_cameras,
    write_colmap,
)
from gen3r.cameras.plucker import pack_plucker_for_dit, plucker_rays, preprocess_poses
from gen3r.cameras.pose_encoding import (
    extri_intri_to_pose_encoding,
    matrix_to_quaternion,
    pose_encoding_to_extri_intri,
    quaternion_to_matrix,
)
from gen3r.cameras.trajectories import (
    OFFICIAL_TRAJECTORIES,
    TRAJECTORY_DESCRIPTIONS,
    TRAJECTORY_PRESETS,
    make_trajectory,
    official_poses,
)

__all__ = [
    "Cameras",
    "resize_and_center_crop_params",
    "FORMATS",
    "OFFICIAL_IMAGE_SIZE",
    "detect_format",
    "load_cameras",
    "save_cameras",
    "read_colmap",
    "write_colmap",
    "plucker_rays",
    "preprocess_poses",
    "pack_plucker_for_dit",
    "extri_intri_to_pose_encoding",
    "pose_encoding_to_extri_intri",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "OFFICIAL_TRAJECTORIES",
    "TRAJECTORY_PRESETS",
    "TRAJECTORY_DESCRIPTIONS",
    "make_trajectory",
    "official_poses",
]
