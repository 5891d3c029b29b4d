"""Audit of issue 4 (Gen3RPipeline): API names/defaults, RNG order, output conventions, bad input.

Every expected value here is computed independently of the library (inspect, numpy formulas of
the VGGT/official unprojection and mask, torch.randn with the documented draw order).
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from gen3r.errors import Gen3RError
from tests._tiny import TINY_CHECKPOINT

SMALL = dict(num_frames=5, height=112, width=112, num_inference_steps=1, prompt="a room")


@pytest.fixture(scope="module")
def pipe():
    from gen3r import Gen3RPipeline

    return Gen3RPipeline.from_pretrained(TINY_CHECKPOINT, torch_dtype=torch.float32)


@pytest.fixture(scope="module")
def frame0(tiny_inputs):
    return tiny_inputs["control_video"][:, :1].clone()


@pytest.fixture(scope="module")
def run_1view(pipe, frame0):
    return pipe(frame0, generator=torch.Generator().manual_seed(123), **SMALL)


def test_top_level_import_and_component_names(pipe):
    from gen3r import Gen3RPipeline as Top
    from gen3r.pipeline import Gen3RPipeline

    assert Top is Gen3RPipeline
    names = {"tokenizer", "text_encoder", "clip_image_encoder", "transformer", "wan_vae", "geo_adapter",
             "vggt", "scheduler"}
    assert set(pipe.components) == names
    for name in names:
        assert getattr(pipe, name) is not None, name
    assert pipe.checkpoint_layout == "official"  # auto-detected


def test_call_signature_defaults_as_specified():
    from gen3r import Gen3RPipeline
    from gen3r.pipeline.pipeline_gen3r import OFFICIAL_CALL_DEFAULTS

    params = inspect.signature(Gen3RPipeline.__call__).parameters
    expected = {"task": None, "cameras": None, "prompt": "", "negative_prompt": "bad detailed",
                "num_frames": 49, "height": 560, "width": 560, "num_inference_steps": 50,
                "guidance_scale": 5.0, "generator": None, "latents": None, "callback_on_step_end": None}
    assert list(params)[:2] == ["self", "images"]
    for name, default in expected.items():
        assert name in params, name
        if name in OFFICIAL_CALL_DEFAULTS:  # None in the signature: the checkpoint's own default applies
            assert params[name].default is None and OFFICIAL_CALL_DEFAULTS[name] == default, name
        else:
            assert params[name].default == default, name
    assert "torch_dtype" in inspect.signature(Gen3RPipeline.from_pretrained).parameters


def test_output_fields_shapes_dtypes(run_1view):
    out = run_1view
    fields = {f.name for f in dataclasses.fields(out)}
    assert {"rgb", "depth", "depth_conf", "point_map", "world_points", "point_mask", "extrinsics",
            "intrinsics", "latents"} <= fields
    b, f, h, w = 1, 5, 112, 112
    assert tuple(out.rgb.shape) == (b, f, h, w, 3)
    assert float(out.rgb.min()) >= 0.0 and float(out.rgb.max()) <= 1.0
    assert tuple(out.depth.shape) == (b, f, h, w) and tuple(out.depth_conf.shape) == (b, f, h, w)
    assert tuple(out.point_map.shape) == (b, f, h, w, 3)
    assert tuple(np.shape(out.world_points)) == (b, f, h, w, 3)
    assert np.asarray(out.point_mask).dtype == bool and np.shape(out.point_mask) == (b, f, h, w)
    assert tuple(out.extrinsics.shape) == (b, f, 3, 4) and tuple(out.intrinsics.shape) == (b, f, 3, 3)
    assert tuple(out.latents.shape) == (b, 16, (f - 1) // 4 + 1, h // 8, 2 * w // 8)
    # extrinsics are rigid (rotation part orthonormal, det +1): OpenCV w2c, not a projection
    rot = out.extrinsics[0, :, :, :3].double()
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(f, 3, 3),
                               atol=1e-4, rtol=0)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(f, dtype=torch.float64), atol=1e-4)
    # intrinsics in pixels: principal point at the image centre, bottom row [0, 0, 1]
    torch.testing.assert_close(out.intrinsics[0, :, :2, 2], torch.full((f, 2), 56.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.intrinsics[0, :, 2], torch.tensor([0.0, 0.0, 1.0]).expand(f, 3))


def test_world_points_are_depth_unprojected_with_generated_cameras(run_1view):
    """Independent numpy unprojection: X_w = R^T (d K^-1 [u, v, 1] - t), u, v integer pixel indices."""
    out = run_1view
    depth = out.depth[0].double().numpy()
    ext = out.extrinsics[0].double().numpy()
    K = out.intrinsics[0].double().numpy()
    f, h, w = depth.shape
    v, u = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).astype(np.float64)  # (H, W, 3)
    for i in range(f):
        cam = depth[i][..., None] * (pix @ np.linalg.inv(K[i]).T)
        world = (cam - ext[i, :, 3]) @ ext[i, :, :3]  # R^T (x - t) for row vectors
        np.testing.assert_allclose(np.asarray(out.world_points)[0, i], world, rtol=1e-4, atol=1e-5)


def test_point_mask_is_the_official_percentile_mask(run_1view):
    """eps = max(1e-8, p0.1(d)), dmax = min(p98(d), 50), mask = eps < d < dmax, per frame."""
    depth = run_1view.depth[0].double().numpy()
    mask = np.asarray(run_1view.point_mask)[0]
    for i, d in enumerate(depth):
        lo = max(1e-8, np.percentile(d, 0.1))
        hi = min(np.percentile(d, 98), 50.0)
        expected = (d > lo) & (d < hi)
        # float32 vs float64 percentile ties may flip a handful of boundary pixels
        assert (expected != mask[i]).sum() <= 2, i


def test_without_latents_initial_noise_is_drawn_before_the_posterior_noise(pipe, frame0, run_1view):
    """Documented draw order: [initial noise, posterior noise] from one generator."""
    g = torch.Generator().manual_seed(123)
    latents = torch.randn((1, 16, 2, 14, 28), generator=g, dtype=torch.float32)
    again = pipe(frame0, generator=g, latents=latents, **SMALL)  # g continues after the first draw
    torch.testing.assert_close(again.latents, run_1view.latents, rtol=0, atol=0)


def test_images_as_pil_list_of_other_size_equal_official_preprocessing(pipe, tiny_inputs, run_1view):
    """A PIL image of the raw 120x136 source frame must give exactly the run on the official
    preprocessed ``control_video`` (short side bilinear+antialias resize, centre crop)."""
    from PIL import Image

    raw = Image.fromarray(tiny_inputs["source_frames_uint8"][0].numpy())
    assert raw.size != (112, 112)
    out = pipe([raw], generator=torch.Generator().manual_seed(123), **SMALL)
    torch.testing.assert_close(out.latents, run_1view.latents, rtol=1e-5, atol=1e-5)


def test_decode_geometry_of_final_latents_reproduces_the_outputs(pipe, run_1view):
    """``decode_geometry`` on the geometry (right) half of the returned latents gives the returned
    cameras and depth (the dataclass's ``latents`` really are the final joint latents)."""
    geometry = run_1view.latents[..., 14:]
    geo = pipe.decode_geometry(geometry, 112, 112)
    torch.testing.assert_close(geo["depth"], run_1view.depth, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(geo["extrinsics"], run_1view.extrinsics, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(num_frames=6), r"4k\+1"),
    (dict(height=100), "multiple of 112"),
    (dict(width=200), "multiple of 112"),
    (dict(task="3view"), "unknown task"),
    (dict(guidance_scale=float("nan")), "guidance_scale"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(cameras=12), "cameras must be"),
])
def test_bad_arguments_raise_one_line_gen3r_errors(pipe, frame0, kwargs, needle):
    args = {**SMALL, **kwargs}
    with pytest.raises(Gen3RError, match=needle) as info:
        pipe(frame0, **args)
    assert "\n" not in str(info.value)


def test_bad_images_raise(pipe):
    with pytest.raises(Gen3RError, match="NaN"):
        pipe(torch.full((1, 1, 3, 112, 112), float("nan")), **SMALL)
    with pytest.raises(Gen3RError, match=r"\[0, 1\]"):
        pipe(torch.full((1, 1, 3, 112, 112), 255.0), **SMALL)
    with pytest.raises(Gen3RError, match="2view needs 2"):
        pipe(torch.rand(1, 3, 3, 112, 112), task="2view", **SMALL)


def test_camera_file_with_nan_is_rejected(pipe, frame0, tmp_path):
    import json

    from gen3r.cameras import make_trajectory, save_cameras

    K = torch.tensor([[100.0, 0, 56], [0, 100.0, 56], [0, 0, 1]])
    path = tmp_path / "cams.json"
    save_cameras(make_trajectory("zoom_in", 5, K, image_size=(112, 112)), path)
    data = json.loads(path.read_text())
    data["extrinsics"][1][0][0] = float("nan")
    path.write_text(json.dumps(data))
    with pytest.raises(Gen3RError) as info:
        pipe(frame0, cameras=str(path), **SMALL)
    assert "cams.json" in str(info.value) and "\n" not in str(info.value)


def test_progress_bar_counts_the_denoising_steps(frame0):
    import io

    from gen3r import Gen3RPipeline

    pipe = Gen3RPipeline.from_pretrained(TINY_CHECKPOINT)
    buf = io.StringIO()
    pipe.set_progress_bar_config(file=buf, disable=False)
    pipe(frame0, generator=torch.Generator().manual_seed(0), **{**SMALL, "num_inference_steps": 3})
    assert "3/3" in buf.getvalue()


def test_info_names_user_cameras(pipe, frame0, monkeypatch):
    from gen3r.cameras import Cameras, make_trajectory

    K = torch.tensor([[90.0, 0, 56], [0, 90.0, 56], [0, 0, 1]])
    cams = make_trajectory("dolly_in", 5, K, scene_scale=0.5, image_size=(112, 112))
    moved = []
    original_to = Cameras.to
    monkeypatch.setattr(Cameras, "to", lambda self, *a, **k: moved.append(a) or original_to(self, *a, **k))
    rays, info = pipe.resolve_cameras(cams, "1view", frame0, 5, 112, 112)
    assert info["cameras"] == "user"
    # the rays are built on the device of the frames (the execution device), not moved there afterwards
    assert moved == [(frame0.device,)] and rays.device == frame0.device


@pytest.mark.parametrize("fmt,name", [("nerfstudio", "transforms.json"), ("colmap", "colmap")])
def test_camera_files_in_other_formats_give_the_same_rays(pipe, frame0, tmp_path, fmt, name):
    """A camera path saved as nerfstudio transforms.json or a COLMAP folder conditions the
    pipeline exactly like the Cameras object it came from."""
    from gen3r.cameras import make_trajectory, save_cameras

    K = torch.tensor([[90.0, 0, 56], [0, 90.0, 56], [0, 0, 1]])
    cams = make_trajectory("orbit_left", 5, K, scene_scale=0.7, image_size=(112, 112))
    path = tmp_path / name
    save_cameras(cams, path, format=fmt)
    ref, _ = pipe.resolve_cameras(cams, "1view", frame0, 5, 112, 112)
    got, info = pipe.resolve_cameras(str(path), "1view", frame0, 5, 112, 112)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    assert info["cameras"] == str(path)


def test_preset_cameras_of_a_batch_equal_single_runs(pipe, tiny_inputs):
    video = tiny_inputs["control_video"]
    frames = torch.cat([video[:, :1], video[:, -1:] * 0.5])  # two different 1view inputs
    batch, _ = pipe.resolve_cameras("zoom_in", "1view", frames, 5, 112, 112)
    for b in range(2):
        single, _ = pipe.resolve_cameras("zoom_in", "1view", frames[b:b + 1], 5, 112, 112)
        torch.testing.assert_close(batch[b:b + 1], single, rtol=1e-4, atol=1e-5)


def test_cli_dtype_fp32_asks_for_float32(monkeypatch):
    import argparse

    from gen3r.cli._common import add_pipeline_args, load_pipeline
    from gen3r.pipeline import Gen3RPipeline

    seen = {}

    class Loaded:
        def to(self, device):
            seen["device"] = device

    def fake_from_pretrained(path, torch_dtype=None, **_kw):
        seen["dtype"] = torch_dtype
        return Loaded()

    monkeypatch.setattr(Gen3RPipeline, "from_pretrained", staticmethod(fake_from_pretrained))
    parser = argparse.ArgumentParser()
    add_pipeline_args(parser)
    load_pipeline(parser.parse_args(["--checkpoint", str(TINY_CHECKPOINT), "--dtype", "bf16", "--device", "cpu"]))
    assert seen["dtype"] == torch.bfloat16  # the other choices are explicit
    load_pipeline(parser.parse_args(["--checkpoint", str(TINY_CHECKPOINT), "--dtype", "fp32", "--device", "cpu"]))
    assert seen["dtype"] == torch.float32


def test_converted_checkpoint_runs_like_the_official_layout(tmp_path, frame0, run_1view):
    from gen3r import Gen3RPipeline
    from gen3r.cli.main import main

    out = tmp_path / "converted"
    assert main(["convert", str(TINY_CHECKPOINT), str(out)]) == 0
    converted = Gen3RPipeline.from_pretrained(out)
    metas = [name for part in ("clip_image_encoder", "text_encoder") for name, t in
             getattr(converted, part).named_buffers() if t.is_meta]
    assert not metas, metas
    converted.to("cpu")
    again = converted(frame0, generator=torch.Generator().manual_seed(123), **SMALL)
    torch.testing.assert_close(again.latents, run_1view.latents, rtol=1e-5, atol=1e-5)


def test_callback_can_replace_the_latents(pipe, frame0):
    seen = []

    def zero_out(_pipe, step, t, kwargs):
        seen.append((step, float(t), tuple(kwargs["latents"].shape)))
        return {"latents": torch.zeros_like(kwargs["latents"])}

    out = pipe(frame0, generator=torch.Generator().manual_seed(1), callback_on_step_end=zero_out,
               **{**SMALL, "num_inference_steps": 2})
    assert [s for s, _, _ in seen] == [0, 1] and seen[0][2] == (1, 16, 2, 14, 28)
    assert seen[0][1] > seen[1][1]  # timesteps decrease
    assert torch.count_nonzero(out.latents) == 0
