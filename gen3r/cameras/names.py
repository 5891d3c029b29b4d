"""The names of camera things (file formats, trajectory presets), without torch: the command
line's parser lists them before any model code loads. Their behaviour lives in
:mod:`gen3r.cameras.formats` and :mod:`gen3r.cameras.trajectories`."""

from __future__ import annotations

#: Camera file formats :func:`gen3r.cameras.load_cameras` / :func:`~gen3r.cameras.save_cameras` know.
FORMATS: tuple[str, ...] = ("official", "re10k", "nerfstudio", "gen3r_transforms", "colmap")

#: The official code's trajectory names (its ``--camera`` choices).
OFFICIAL_TRAJECTORIES: tuple[str, ...] = (
    "zoom_in", "zoom_out", "arc_left", "arc_right", "translate_up", "translate_down", "free",
)

#: Every preset :func:`gen3r.cameras.make_trajectory` builds: the official ones, then ours.
TRAJECTORY_PRESETS: tuple[str, ...] = OFFICIAL_TRAJECTORIES + (
    "pan_left", "pan_right", "tilt_up", "tilt_down", "orbit_left", "orbit_right",
    "dolly_in", "dolly_out", "truck_left", "truck_right", "pedestal_up", "pedestal_down",
)

#: One line per preset, for ``gen3r cameras list``.
TRAJECTORY_DESCRIPTIONS: dict[str, str] = {
    "zoom_in": "official: move forward along the view axis by scene_scale",
    "zoom_out": "official: move backward along the view axis by scene_scale",
    "arc_left": "official: turn left in place by 15 degrees (a pan)",
    "arc_right": "official: turn right in place by 15 degrees (a pan)",
    "translate_up": "official: turn up in place by 15 degrees (a tilt)",
    "translate_down": "official: turn down in place by 15 degrees (a tilt)",
    "free": "official: camera left to the model (identity poses, zero Plücker input)",
    "pan_left": "turn left in place by `angle` degrees",
    "pan_right": "turn right in place by `angle` degrees",
    "tilt_up": "turn up in place by `angle` degrees",
    "tilt_down": "turn down in place by `angle` degrees",
    "orbit_left": "travel left around the point `radius` ahead, looking at it, by `angle` degrees",
    "orbit_right": "travel right around the point `radius` ahead, looking at it, by `angle` degrees",
    "dolly_in": "move forward by `distance`",
    "dolly_out": "move backward by `distance`",
    "truck_left": "move left by `distance`",
    "truck_right": "move right by `distance`",
    "pedestal_up": "move up by `distance`",
    "pedestal_down": "move down by `distance`",
}
