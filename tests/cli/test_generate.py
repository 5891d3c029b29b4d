"""`gen3r generate` / `reconstruct` / `convert` on the tiny official-layout checkpoint, and bad inputs.

Bad input -> one line on stderr, exit code 2, nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gen3r.cli.main import main
from tests._tiny import TINY

CKPT = TINY / "checkpoint"
SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "2"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    frames = load_file(str(TINY / "inputs.safetensors"))["source_frames_uint8"].numpy()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    return folder


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("gen3r: error:")
    return err[0]


@pytest.mark.parametrize("extra,needle", [
    (["--frames", "8"], "4k+1"),
    (["--height", "100"], "multiple of 112"),
    (["--width", "250"], "multiple of 112"),
    (["--camera", "spin_around"], "unknown camera preset"),
    (["--camera", "zoom_in", "--camera-angle", "10"], "does not take parameter(s) angle"),
    (["--camera-radius", "2"], "does not take parameter(s) radius"),  # free camera
])
def test_generate_bad_settings(tmp_path, images, capsys, extra, needle):
    out = tmp_path / "out"
    args = ["generate", str(images / "000.png"), "--checkpoint", str(CKPT), "--out", str(out), *SMALL, *extra]
    assert main(args) == 2
    assert needle in _one_error_line(capsys)
    assert not out.exists()


def test_generate_bad_camera_files(tmp_path, images, capsys):
    from gen3r.cameras import make_trajectory, save_cameras

    K = torch.tensor([[100.0, 0, 56], [0, 100.0, 56], [0, 0, 1]])
    wrong_count = tmp_path / "cams9.json"
    save_cameras(make_trajectory("zoom_in", 9, K, image_size=(112, 112)), wrong_count)
    out = tmp_path / "out"
    base = ["generate", str(images / "000.png"), "--checkpoint", str(CKPT), "--out", str(out), *SMALL]
    assert main(base + ["--camera", str(wrong_count)]) == 2
    assert "has 9 cameras" in _one_error_line(capsys)
    nan_file = tmp_path / "nan.json"
    data = json.loads(wrong_count.read_text())
    data["extrinsics"] = data["extrinsics"][:5]
    data["intrinsics"] = data["intrinsics"][:5]
    data["extrinsics"][2][0][3] = float("nan")
    nan_file.write_text(json.dumps(data).replace("NaN", "NaN"))
    assert main(base + ["--camera", str(nan_file)]) == 2
    assert "nan.json" in _one_error_line(capsys)
    assert not out.exists()


def test_generate_unreadable_image_and_missing_component(tmp_path, images, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    out = tmp_path / "out"
    assert main(["generate", str(bad), "--checkpoint", str(CKPT), "--out", str(out), *SMALL]) == 2
    assert "cannot read image" in _one_error_line(capsys)
    broken = tmp_path / "ckpt"
    shutil.copytree(CKPT, broken)
    shutil.rmtree(broken / "geo_adapter")
    assert main(["generate", str(images / "000.png"), "--checkpoint", str(broken), "--out", str(out), *SMALL]) == 2
    assert "geo_adapter" in _one_error_line(capsys)
    assert not out.exists()


def test_generate_unreadable_video(tmp_path, capsys):
    bad = tmp_path / "v.mp4"
    bad.write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    assert main(["reconstruct", str(bad), "--checkpoint", str(CKPT), "--out", str(out), *SMALL]) == 2
    assert "cannot decode video" in _one_error_line(capsys)
    assert not out.exists()


def test_api_2view_with_one_image():
    from gen3r.errors import Gen3RError
    from gen3r.pipeline import Gen3RPipeline

    pipe = Gen3RPipeline.from_pretrained(CKPT)
    with pytest.raises(Gen3RError, match="2view needs 2 condition image"):
        pipe(torch.rand(1, 1, 3, 112, 112), task="2view", num_frames=5, height=112, width=112,
             num_inference_steps=1)


FILES = ("rgb.mp4", "depth.npz", "depth.mp4", "points.ply", "scene.glb", "cameras.json",
         "colmap/cameras.txt", "colmap/images.txt", "colmap/points3D.txt", "transforms.json", "config.json")


def _check_outputs(out: Path, frames: int, window: int | None = None) -> None:
    for name in FILES:
        assert (out / name).exists(), name
    depth = np.load(out / "depth.npz")["depth"]
    assert depth.shape == (frames, 112, 112) and np.isfinite(depth).all()
    cams = json.loads((out / "cameras.json").read_text())
    assert np.asarray(cams["extrinsics"]).shape == (frames, 4, 4)
    config = json.loads((out / "config.json").read_text())
    assert "torch" in config["versions"] and config["settings"]["frames"] == (window or frames)


@pytest.mark.slow
def test_generate_1view_and_2view(tmp_path, images):
    out1 = tmp_path / "one"
    assert main(["generate", str(images / "000.png"), "--camera", "zoom_out", "--prompt", "a courtyard",
                 "--checkpoint", str(CKPT), "--out", str(out1), *SMALL]) == 0
    _check_outputs(out1, 5)
    out2 = tmp_path / "two"
    assert main(["generate", str(images / "000.png"), str(images / "008.png"), "--checkpoint", str(CKPT),
                 "--out", str(out2), *SMALL]) == 0
    _check_outputs(out2, 5)


@pytest.mark.slow
def test_reconstruct_windows(tmp_path, images):
    out = tmp_path / "rec"
    assert main(["reconstruct", str(images), "--checkpoint", str(CKPT), "--out", str(out), "--overlap", "2",
                 *SMALL]) == 0
    _check_outputs(out, 9, window=5)  # 9 frames in windows of 5 with 2 shared: [0,5) [3,8) [4,9)
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["windows"] == [[0, 5], [3, 8], [4, 9]]


def test_convert_roundtrip_identical(tmp_path):
    from gen3r.pipeline import Gen3RPipeline

    out = tmp_path / "converted"
    assert main(["convert", str(CKPT), str(out)]) == 0
    assert json.loads((out / "model_index.json").read_text())["_gen3r_layout"] == 1
    a = Gen3RPipeline.from_pretrained(CKPT)
    b = Gen3RPipeline.from_pretrained(out)
    for name in ("text_encoder", "clip_image_encoder", "transformer", "wan_vae", "geo_adapter", "vggt"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys(), name
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}"
    public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith("_")}  # noqa: E731
    assert public(a.scheduler.config) == public(b.scheduler.config)
    bf16 = tmp_path / "bf16"
    assert main(["convert", str(CKPT), str(bf16), "--dtype", "bf16"]) == 0
    c = Gen3RPipeline.from_pretrained(bf16)
    assert next(c.vggt.parameters()).dtype == torch.bfloat16


def test_preset_parameters_shape_the_camera_path(images):
    from gen3r.pipeline import Gen3RPipeline
    from gen3r.pipeline.preprocess import as_frames

    pipe = Gen3RPipeline.from_pretrained(CKPT)
    frames = as_frames([images / "000.png"], 112, 112)
    default, info = pipe.resolve_cameras("orbit_left", "1view", frames, 5, 112, 112)
    wide, wide_info = pipe.resolve_cameras("orbit_left", "1view", frames, 5, 112, 112, {"angle": 40.0})
    assert "camera_params" not in info and wide_info["camera_params"] == {"angle": 40.0}
    torch.testing.assert_close(wide[:, 0], default[:, 0])  # first camera: identity either way
    assert (wide[:, -1] - default[:, -1]).abs().max() > 0.1
    with pytest.raises(Exception, match="shape a trajectory preset"):
        pipe.resolve_cameras(None, "1view", frames, 5, 112, 112, {"angle": 40.0})


def test_camera_parameter_must_be_a_finite_number(tmp_path, images, capsys):
    for bad in ("nan", "inf", "wide"):
        with pytest.raises(SystemExit) as exc:
            main(["generate", str(images / "000.png"), "--camera", "orbit_left", f"--camera-angle={bad}",
                  "--out", str(tmp_path / "o")])
        assert exc.value.code == 2
        assert "--camera-angle" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_config_json_stores_the_prompt_not_the_file_reference(tmp_path, images):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("a small room with a window\nsecond line ignored\n")
    for command, source in (("generate", images / "000.png"), ("reconstruct", images)):
        out = tmp_path / command
        extra = ["--mode", "vae"] if command == "reconstruct" else []
        assert main([command, str(source), "--checkpoint", str(CKPT), "--out", str(out), *SMALL,
                     "--prompt", f"@{prompt}", *extra]) == 0
        settings = json.loads((out / "config.json").read_text())["settings"]
        assert settings["prompt"] == "a small room with a window", command
