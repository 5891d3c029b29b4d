"""Pipeline features beyond the official code, on the tiny fixture checkpoint.

Non-square sizes, F = 4k+1, batches, dtypes, memory options and windowed reconstruction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gen3r.errors import Gen3RError
from gen3r.pipeline import Gen3RPipeline
from tests._tiny import TINY


@pytest.fixture(scope="module")
def pipe():
    return Gen3RPipeline.from_pretrained(TINY / "checkpoint")


@pytest.fixture(scope="module")
def video():
    return load_file(str(TINY / "inputs.safetensors"))["control_video"]


def _run(pipe, images, **kw):
    args = dict(num_frames=5, height=112, width=112, num_inference_steps=2, prompt="a room")
    args.update(kw)
    return pipe(images, **args)


def test_non_square_and_shapes(pipe, video):
    img = torch.nn.functional.interpolate(video[0, :1], size=(112, 224), mode="bilinear")[None]
    out = _run(pipe, img, height=112, width=224, num_frames=9, cameras="orbit_left",
               generator=torch.Generator().manual_seed(0))
    assert out.rgb.shape == (1, 9, 112, 224, 3)
    assert out.depth.shape == (1, 9, 112, 224) and out.point_map.shape == (1, 9, 112, 224, 3)
    assert out.world_points.shape == (1, 9, 112, 224, 3) and out.point_mask.dtype == torch.bool
    assert out.extrinsics.shape == (1, 9, 3, 4) and out.intrinsics.shape == (1, 9, 3, 3)
    assert out.latents.shape == (1, 16, 3, 14, 56)
    # principal point of the generated cameras sits at the image centre (VGGT pose decoding)
    assert out.intrinsics[0, 0, 0, 2].item() == pytest.approx(112) and out.intrinsics[0, 0, 1, 2].item() == 56
    for t in (out.rgb, out.depth, out.point_map):
        assert torch.isfinite(t).all()


def test_batch_equals_single_runs(pipe, video):
    images = torch.cat([video[:, :1], video[:, -1:]])  # two different 1view inputs
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    batch = _run(pipe, images, generator=gens, prompt=["a room", "a hall"])
    for b, (seed, prompt) in enumerate(((1, "a room"), (2, "a hall"))):
        single = _run(pipe, images[b:b + 1], generator=torch.Generator().manual_seed(seed), prompt=prompt)
        torch.testing.assert_close(batch.latents[b:b + 1], single.latents, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(batch.rgb[b:b + 1], single.rgb, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(batch.extrinsics[b:b + 1], single.extrinsics, rtol=1e-4, atol=1e-4)


def test_seed_reproducible_and_latents_argument(pipe, video):
    a = _run(pipe, video[:, :1], generator=torch.Generator().manual_seed(7))
    b = _run(pipe, video[:, :1], generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.latents, b.latents)
    with pytest.raises(Gen3RError, match="latents must have shape"):
        _run(pipe, video[:, :1], latents=torch.zeros(1, 16, 2, 14, 14))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_runs(dtype, video):
    low = Gen3RPipeline.from_pretrained(TINY / "checkpoint", torch_dtype=dtype)
    assert low.transformer.blocks[0].attn1.to_q.weight.dtype == dtype
    assert low.geo_adapter.decoder.conv_in.weight.dtype == dtype and low.vggt.camera_head is not None
    out = _run(low, video[:, :1], generator=torch.Generator().manual_seed(3))
    assert out.rgb.dtype == torch.float32 and torch.isfinite(out.rgb).all()
    assert torch.isfinite(out.depth).all() and torch.isfinite(out.extrinsics).all()


def test_group_offload_and_text_encoder_on_cpu_match(video):
    ref_pipe = Gen3RPipeline.from_pretrained(TINY / "checkpoint")
    ref = _run(ref_pipe, video[:, :1], generator=torch.Generator().manual_seed(4))
    off = Gen3RPipeline.from_pretrained(TINY / "checkpoint")
    off.enable_offload("cpu")
    off.keep_text_encoder_on_cpu()
    got = _run(off, video[:, :1], generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(got.latents, ref.latents, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.rgb, ref.rgb, rtol=1e-5, atol=1e-5)


def test_vae_tiling_takes_the_tiled_path(pipe, video):
    from gen3r.models.wan_vae import decode_latents

    ref = _run(pipe, video[:, :1], generator=torch.Generator().manual_seed(5))
    tiled = Gen3RPipeline.from_pretrained(TINY / "checkpoint")
    tiled.enable_vae_tiling(tile_sample_min_height=64, tile_sample_min_width=64,
                            tile_sample_stride_height=48, tile_sample_stride_width=48)
    calls = []
    original = tiled.wan_vae.tiled_decode
    tiled.wan_vae.tiled_decode = lambda *a, **k: calls.append(1) or original(*a, **k)
    out = _run(tiled, video[:, :1], generator=torch.Generator().manual_seed(5))
    assert calls, "the tiled decoder was not used"
    assert out.rgb.shape == (1, 5, 112, 112, 3) and torch.isfinite(out.rgb).all()
    # same latents; tiles blend at the seams, so the decode differs slightly but stays close
    appearance = ref.latents.chunk(2, dim=-1)[0]
    with torch.no_grad():
        untiled = decode_latents(pipe.wan_vae, appearance)
        tiled_rgb = decode_latents(tiled.wan_vae, appearance)
    diff = (untiled - tiled_rgb).abs()
    assert diff.max() > 0 and diff.mean() < 0.1


def test_user_cameras_and_file(pipe, video, tmp_path):
    from gen3r.cameras import make_trajectory, save_cameras

    K = torch.tensor([[90.0, 0, 56], [0, 90.0, 56], [0, 0, 1]])
    cams = make_trajectory("dolly_in", 5, K, scene_scale=0.5, image_size=(112, 112))
    a = _run(pipe, video[:, :1], cameras=cams, generator=torch.Generator().manual_seed(6))
    save_cameras(cams, tmp_path / "c.json")
    b = _run(pipe, video[:, :1], cameras=str(tmp_path / "c.json"), generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a.latents, b.latents)
    free = _run(pipe, video[:, :1], cameras=None, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(a.latents, free.latents)  # the camera path changes the result
    with pytest.raises(Gen3RError, match="has 9 frames but num_frames is 5"):
        _run(pipe, video[:, :1], cameras=make_trajectory("dolly_in", 9, K, image_size=(112, 112)))
    with pytest.raises(Gen3RError, match="unknown camera preset"):
        _run(pipe, video[:, :1], cameras="barrel_roll")


def test_encode_decode_geometry_vae_only(pipe, video):
    post = pipe.encode_geometry(video)
    assert post.mean.shape == (1, 16, 3, 14, 14)
    geo = pipe.decode_geometry(post.mean, 112, 112)
    assert geo["depth"].shape == (1, 9, 112, 112) and geo["extrinsics"].shape == (1, 9, 3, 4)
    stages = load_file(str(TINY / "stages.safetensors"))
    torch.testing.assert_close(post.mean, stages["adapter_latent_mean"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(geo["extrinsics"], stages["decoded_extrinsic"], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ windowed reconstruction
def _fake_window_runner(scene, scales):
    """Reconstruction of frames [s, e) expressed in the frame of camera s, scaled by scales[s]."""
    from gen3r.geometry import unproject_depth

    ext = scene.extrinsics.astype(np.float64)

    def run(_pipe, frames, mode, start, **_):
        s = scales[start]
        n = frames.shape[0]
        ref = ext[start]  # w2c of the window's first camera = new world
        ref_inv = np.linalg.inv(ref)
        window_ext = np.stack([ext[start + i] @ ref_inv for i in range(n)])
        window_ext[:, :3, 3] *= s
        depth = scene.depth[start:start + n] * s
        K = scene.intrinsics[start:start + n]
        wp, mask = unproject_depth(depth, window_ext, K, return_mask=True, min_max_depth_mask=False)
        return {"rgb": scene.rgb[start:start + n], "depth": depth.astype(np.float32),
                "depth_conf": np.ones_like(depth, np.float32), "world_points": wp, "point_mask": mask,
                "extrinsics": torch.from_numpy(window_ext[:, :3]).float(),
                "intrinsics": torch.from_numpy(K).float()}
    return run


def test_windowed_reconstruction_aligns_windows(monkeypatch):
    from gen3r.data.procedural import render_scene
    from gen3r.pipeline import reconstruct as rec

    scene = render_scene(3, 13, 32, 32, kind="indoor", trajectory="walk")
    rng = np.random.default_rng(0)
    scales = {s: float(rng.uniform(0.5, 2.0)) for s in range(13)}
    runner = _fake_window_runner(scene, scales)
    calls = []

    def fake(pipe, frames, mode, **kw):
        start = calls.pop(0)
        return runner(pipe, frames, mode, start)

    windows = rec.plan_windows(13, 5, 2)
    assert windows == [(0, 5), (3, 8), (6, 11), (8, 13)]
    calls.extend(s for s, _ in windows)
    monkeypatch.setattr(rec, "_run_window", fake)
    out = rec.reconstruct_video(None, torch.zeros(13, 3, 32, 32), window=5, overlap=2, mode="vae")
    # expected: everything in camera 0's frame at scale scales[0]
    ext0 = scene.extrinsics[0].astype(np.float64)
    s0 = scales[0]
    gt_world = scene.world_points.reshape(-1, 3).astype(np.float64)
    expected = s0 * (gt_world @ ext0[:3, :3].T + ext0[:3, 3])
    np.testing.assert_allclose(out.world_points.reshape(-1, 3), expected, atol=1e-3 * s0)
    np.testing.assert_allclose(out.depth, scene.depth * s0, rtol=1e-4, atol=1e-4)
    exp_ext = np.stack([e @ np.linalg.inv(ext0) for e in scene.extrinsics.astype(np.float64)])
    exp_ext[:, :3, 3] *= s0
    np.testing.assert_allclose(out.cameras.extrinsics.numpy()[:, :3], exp_ext[:, :3], atol=2e-4)


def test_plan_windows_errors():
    from gen3r.pipeline.reconstruct import plan_windows

    assert plan_windows(49, 49, 8) == [(0, 49)]
    assert plan_windows(7, 49, 2) == [(0, 5), (2, 7)]
    with pytest.raises(Gen3RError, match="4k\\+1"):
        plan_windows(20, 8, 2)
    with pytest.raises(Gen3RError, match="overlap"):
        plan_windows(20, 5, 5)


def test_default_overlap_follows_the_window(caplog):
    import logging

    from gen3r.pipeline.reconstruct import default_overlap, plan_windows

    assert [default_overlap(w) for w in (5, 9, 17, 49)] == [1, 2, 3, 8]
    with caplog.at_level(logging.INFO, logger="gen3r.pipeline.reconstruct"):
        windows = plan_windows(21, 9)
    assert windows == [(0, 9), (7, 16), (12, 21)]  # was 13 windows with the fixed overlap of 8
    assert "21 frames -> 3 window(s) of 9 frames, overlap 2" in caplog.text


def test_reconstruct_window_errors_come_before_the_models_load(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from gen3r.cli import generate as cli_generate
    from gen3r.cli.main import main

    for i in range(9):
        Image.fromarray(np.full((112, 112, 3), 20 * i, np.uint8)).save(tmp_path / f"{i:02d}.png")
    monkeypatch.setattr(cli_generate, "load_pipeline", lambda args: pytest.fail("models loaded"))
    out = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path), "--frames", "5", "--overlap", "5", "--out", str(out)]) == 2
    assert "--overlap (5) must be smaller than the window (5 frames); pass --overlap 1" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    assert "8 for 49" in capsys.readouterr().out


def test_cpu_run_of_the_full_size_model_says_it_takes_hours(caplog):
    import logging
    from types import SimpleNamespace

    from gen3r.pipeline import Gen3RPipeline

    big = torch.nn.Module()
    big.weight = torch.nn.Parameter(torch.empty(14_000_000_000, device="meta"))  # the 14B DiT, no memory
    small = torch.nn.Linear(1000, 1000)
    with caplog.at_level(logging.WARNING, logger="gen3r.pipeline.pipeline_gen3r"):
        Gen3RPipeline._warn_if_cpu_is_too_slow(SimpleNamespace(transformer=big), torch.device("cpu"), 49, 560, 560, 50)
        assert "expect hours" in caplog.text and "gen3r-mini" in caplog.text
        caplog.clear()
        Gen3RPipeline._warn_if_cpu_is_too_slow(SimpleNamespace(transformer=big), torch.device("cuda"), 49, 560, 560, 50)
        cpu = torch.device("cpu")
        Gen3RPipeline._warn_if_cpu_is_too_slow(SimpleNamespace(transformer=small), cpu, 17, 112, 112, 25)
        assert caplog.text == ""


def test_output_types_and_check_inputs():
    """output_type "pt" / "np" / "latent" share one denoising result; check_inputs runs before any model."""
    import numpy as np

    from gen3r.errors import Gen3RError
    from gen3r.pipeline import Gen3RPipeline
    from gen3r.pipeline.loading import MINI_MODEL

    pipe = Gen3RPipeline.from_pretrained(MINI_MODEL)
    image = torch.rand(1, 1, 3, 112, 112)
    kw = dict(num_frames=5, num_inference_steps=1, generator=None)
    pt = pipe(image, **{**kw, "generator": torch.Generator().manual_seed(0)})
    arr = pipe(image, output_type="np", **{**kw, "generator": torch.Generator().manual_seed(0)})
    lat = pipe(image, output_type="latent", **{**kw, "generator": torch.Generator().manual_seed(0)})
    assert isinstance(arr.rgb, np.ndarray) and isinstance(arr.world_points, np.ndarray)
    np.testing.assert_allclose(arr.depth, pt.depth.numpy())
    assert lat.rgb is None and lat.depth is None and torch.equal(lat.latents, pt.latents)
    with pytest.raises(Gen3RError, match="output_type must be one of pt, np, latent"):
        pipe(image, output_type="pil", **kw)
    with pytest.raises(Gen3RError, match="task 2view needs 2 condition image"):
        Gen3RPipeline.check_inputs(5, 112, 112, 10, 3.0, task="2view", num_condition_frames=1)
    assert Gen3RPipeline.check_inputs(5, 112, 112, 10, 3.0, num_condition_frames=2) == "2view"
    # __call__ checks every argument before it reads an image: the missing file is never opened
    with pytest.raises(Gen3RError, match="got 2 prompts for a batch of 1"):
        pipe(["does-not-exist.png"], prompt=["a", "b"], **kw)
    with pytest.raises(Gen3RError, match="task 2view needs 2 condition image"):
        pipe(["does-not-exist.png"], task="2view", **kw)
    with pytest.raises(Gen3RError, match="unknown argument\\(s\\) device_map"):
        Gen3RPipeline.from_pretrained(MINI_MODEL, device_map="auto")
