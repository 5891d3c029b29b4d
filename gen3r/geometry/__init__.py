"""Geometry utilities: unprojection, Sim(3) alignment, farthest point sampling, point-cloud filters.

Frames and units are stated per function; in Gen3R, world points live in VGGT's first-camera
frame (OpenCV axes) in its normalised scene unit.
"""

from gen3r.geometry.alignment import apply_sim3, umeyama
from gen3r.geometry.knn import mean_knn_distances
from gen3r.geometry.pointcloud import (
    filter_point_cloud,
    remove_far_points,
    statistical_outlier_removal,
    voxel_downsample,
)
from gen3r.geometry.sampling import farthest_point_sampling
from gen3r.geometry.unproject import depth_validity_mask, unproject_depth

__all__ = [
    "apply_sim3",
    "depth_validity_mask",
    "farthest_point_sampling",
    "filter_point_cloud",
    "mean_knn_distances",
    "remove_far_points",
    "statistical_outlier_removal",
    "umeyama",
    "unproject_depth",
    "voxel_downsample",
]
