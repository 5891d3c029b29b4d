"""Audit: the public names and signatures promised by the Foundation issue (item 7) stay exact.

Behaviour is tested in the per-module files; this file pins the API surface so that a rename or a
reordered/renamed parameter breaks a test instead of users' code.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

P = inspect.Parameter


def _params(func) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(func).parameters.values()]


def test_cameras_type_fields() -> None:
    from gen3r.cameras import Cameras

    k = torch.tensor([[10.0, 0, 4], [0, 10, 3], [0, 0, 1]])
    cams = Cameras(extrinsics=torch.eye(4)[None], intrinsics=k[None], image_size=(6, 8))
    assert cams.extrinsics.shape == (1, 4, 4) and cams.intrinsics.shape == (1, 3, 3)
    assert cams.image_size == (6, 8)
    assert _params(Cameras)[:3] == [("extrinsics", P.empty), ("intrinsics", P.empty), ("image_size", P.empty)]


def test_camera_file_functions() -> None:
    from gen3r.cameras import load_cameras, save_cameras

    assert _params(load_cameras)[:2] == [("path", P.empty), ("image_size", None)]
    assert _params(save_cameras)[:3] == [("cameras", P.empty), ("path", P.empty), ("format", None)]


def test_make_trajectory_signature() -> None:
    from gen3r.cameras import make_trajectory

    params = inspect.signature(make_trajectory).parameters
    assert list(params)[:4] == ["name", "num_frames", "intrinsics", "scene_scale"]
    assert params["scene_scale"].default == 1.0
    assert any(p.kind is P.VAR_KEYWORD for p in params.values())  # **params (angle, distance, radius)


def test_filter_point_cloud_signature_and_return_types() -> None:
    from gen3r.geometry import filter_point_cloud

    assert _params(filter_point_cloud) == [("points", P.empty), ("colors", P.empty), ("voxel_size", 0.005),
                                           ("remove_far_points", False), ("nb_neighbors", 25), ("std_ratio", 1.25)]
    rng = np.random.default_rng(0)
    points, colors = filter_point_cloud(torch.from_numpy(rng.random((500, 3))), rng.random((500, 3)), voxel_size=0.1)
    assert isinstance(points, np.ndarray) and isinstance(colors, np.ndarray)
    assert points.ndim == 2 and points.shape[1] == 3 and colors.shape == points.shape


def test_render_scene_signature_and_fields() -> None:
    from gen3r.data.procedural import render_scene

    params = inspect.signature(render_scene).parameters
    assert list(params)[:4] == ["seed", "num_frames", "height", "width"]
    assert all(p.kind is P.KEYWORD_ONLY for name, p in params.items() if name not in list(params)[:4])
    scene = render_scene(0, 2, 8, 12)
    shapes = {"rgb": (2, 8, 12, 3), "depth": (2, 8, 12), "world_points": (2, 8, 12, 3), "valid": (2, 8, 12),
              "extrinsics": (2, 4, 4), "intrinsics": (2, 3, 3)}
    for name, shape in shapes.items():
        assert scene[name].shape == shape and getattr(scene, name).shape == shape, name
    assert scene["valid"].dtype == bool and scene["rgb"].min() >= 0.0 and scene["rgb"].max() <= 1.0
    assert isinstance(scene["caption"], str) and scene["caption"]


@pytest.mark.parametrize("module, names", [
    ("gen3r.cameras", ["Cameras", "load_cameras", "save_cameras", "make_trajectory", "plucker_rays",
                       "preprocess_poses", "extri_intri_to_pose_encoding", "pose_encoding_to_extri_intri"]),
    ("gen3r.geometry", ["filter_point_cloud", "unproject_depth", "umeyama", "farthest_point_sampling"]),
    ("gen3r.data.procedural", ["render_scene"]),
])
def test_names_are_exported(module: str, names: list[str]) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert set(names) <= set(mod.__all__)
    assert all(callable(getattr(mod, n)) for n in names)
