"""Bad-input corpus of every entry point (issue 15): `gen3r eval`, `train`, `convert`, `cameras`, `scene`
and `view` each refuse their bad inputs with exit code 2 and one error line naming the problem (the last
line on stderr, no traceback), before any model loads, and write or change nothing.

Each case builds its inputs in ``tmp_path`` and returns the command line and a text the error must
contain; the whole of ``tmp_path`` (the inputs and any output folder) is snapshotted before the call and
must be byte-identical after it, so a fresh ``--out`` must not appear and no temporary folder may stay.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from gen3r.cli import eval as cli_eval
from gen3r.cli.main import main
from tests._tiny import TINY_CHECKPOINT as CKPT
from tests._tiny import export_small_output, free_port

# ------------------------------------------------------------------------------------------ helpers

def _snapshot(folder: Path) -> list[tuple[str, str]]:
    """Every path under ``folder`` with a digest of its bytes (folders as 'dir')."""
    out = []
    for p in sorted(folder.rglob("*")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out.append((str(p.relative_to(folder)), digest))
    return out


def _refused(capsys, tmp_path: Path, argv: list[str], needle: str) -> str:
    """Run ``gen3r argv``: exit 2, the last stderr line the error naming ``needle``, no traceback,
    ``tmp_path`` unchanged. Returns the error line."""
    before = _snapshot(tmp_path)
    capsys.readouterr()
    try:
        code, parser_error = main([str(a) for a in argv]), False
    except SystemExit as exc:  # argparse: `gen3r <cmd>: error: ...`
        code, parser_error = exc.code, True
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert lines, "no error message"
    last = lines[-1]
    if parser_error:
        assert re.match(r"gen3r( [\w-]+)*: error: ", last), lines
    else:
        assert last.startswith("gen3r: error: "), lines
    assert needle in last, (needle, lines)
    assert _snapshot(tmp_path) == before, "the failed command wrote or changed files"
    return last


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _json(path: Path, data) -> Path:
    return _write(path, json.dumps(data))


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ckpt_copy(t: Path) -> Path:
    return Path(shutil.copytree(CKPT, t / "ckpt"))


def _damaged_ckpt(t: Path, damage) -> Path:
    ckpt = _ckpt_copy(t)
    damage(ckpt)
    return ckpt


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# ------------------------------------------------------------------------------------------ gen3r eval

EVAL_SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "1", "--guidance", "1",
              "--num-points", "300", "--baselines", "none"]


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory) -> Path:
    from gen3r.data.procedural import render_scene
    from gen3r.data.writers import write_re10k

    root = tmp_path_factory.mktemp("eval_data") / "re10k"
    write_re10k(root, {"test": [render_scene(s, 5, 112, 128, kind="indoor", trajectory="orbit") for s in (4, 5)]})
    return root


def _eval(root, out, *extra, task="1view", dataset="re10k", checkpoint=CKPT) -> list:
    return ["eval", "--task", task, "--dataset", dataset, "--root", root, "--checkpoint", checkpoint, "--out", out,
            *EVAL_SMALL, *extra]


def _other_run(t: Path) -> Path:
    out = _json(t / "out" / "config.json", {"task": "2view", "methods": ["gen3r"]}).parent
    _write(out / "metrics.jsonl", '{"sequence": "scene_00000", "method": "gen3r"}\n')
    return out


EVAL_CASES = [
    pytest.param(lambda t, d: _eval(d, t / "out", dataset="imagenet"), "unknown dataset 'imagenet'",
                 id="dataset-unknown"),
    pytest.param(lambda t, d: _eval(t / "nowhere", t / "out"), "does not exist", id="root-missing"),
    pytest.param(lambda t, d: _eval(_write(t / "root.txt", "x"), t / "out"), "is a file", id="root-is-a-file"),
    pytest.param(lambda t, d: _eval(_folder(t / "empty"), t / "out"), "test does not exist", id="root-empty"),
    pytest.param(lambda t, d: _eval(_folder(t / "empty" / "test").parent, t / "out"), "no sequences found",
                 id="root-without-sequences"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--split", t / "split.txt"), "split file", id="split-missing"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--split", _write(t / "split.txt", "scene_99999\n")),
                 "not on disk", id="split-names-unknown-sequence"),
    pytest.param(lambda t, d: _eval(d, t / "out", task="4view"), "invalid choice", id="task-unknown"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--frames", "8"), "4k+1", id="frames-not-4k+1"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--height", "100"), "multiple of 112", id="height-not-x112"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--width=-112"), "positive integer", id="width-negative"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--stride", "0"), "positive integer", id="stride-zero"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--num-sequences=-3"), "positive integer",
                 id="num-sequences-negative"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--seed", "many"), "invalid int value", id="seed-not-a-number"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--guidance=nan"), "positive finite number", id="guidance-nan"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--guidance=inf"), "positive finite number, got inf",
                 id="guidance-inf"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--max-depth=0"), "positive finite number", id="max-depth-zero"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--num-points=0"), "positive integer", id="num-points-zero"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--max-points", "2"), "max_points >= 3", id="max-points-2"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--baselines", "vggt,dust3r"), "unknown baseline 'dust3r'",
                 id="baseline-unknown"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--baselines", "vae_only"), "vae_only is a reconstruction",
                 id="baseline-of-another-task"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--camera-cond", task="recon"), "drop --camera-cond",
                 id="camera-cond-with-recon"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--dtype", "fp8"), "invalid choice", id="dtype-unknown"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--lpips-net", "squeeze"), "invalid choice",
                 id="lpips-net-unknown"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--lpips-weights", t / "nowhere"), "is not a folder",
                 id="lpips-weights-missing"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--lpips-weights", _folder(t / "lpips")), "does not exist",
                 id="lpips-weights-empty-folder"),
    pytest.param(lambda t, d: _eval(d, t / "out", checkpoint=t / "nowhere"), "does not exist",
                 id="checkpoint-missing"),
    pytest.param(lambda t, d: _eval(d, t / "out", checkpoint=_folder(t / "bare")), "is not a Gen3R checkpoint",
                 id="checkpoint-empty-folder"),
    pytest.param(lambda t, d: _eval(d, t / "out", checkpoint=_write(t / "ck" / "model_index.json", "{").parent),
                 "is not valid JSON", id="checkpoint-index-not-json"),
    pytest.param(lambda t, d: _eval(d, t / "out", checkpoint=_write(t / "ck" / "model_index.json", "3").parent),
                 "is not a JSON object", id="checkpoint-index-not-an-object"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--architecture", t / "arch.json"), "architecture file",
                 id="architecture-missing"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--architecture", _write(t / "arch.json", "[1, 2]")),
                 "must map each component", id="architecture-not-an-object"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--device", "tpu9"), "is not a torch device",
                 id="device-unknown"),
    pytest.param(lambda t, d: _eval(d, t / "out", "--device", "cuda:99"), "cuda:99", id="device-not-here"),
    pytest.param(lambda t, d: _eval(d, _write(t / "out", "mine")), "is a file", id="out-is-a-file"),
    pytest.param(lambda t, d: _eval(d, _write(t / "file", "mine") / "out"), "is a file", id="out-below-a-file"),
    pytest.param(lambda t, d: _eval(d, _other_run(t)), "other settings", id="out-holds-another-run"),
    pytest.param(lambda t, d: _eval(d, _write(t / "out" / "config.json", "{").parent), "is not JSON",
                 id="out-config-not-json"),
    pytest.param(lambda t, d: ["eval", "--task", "1view", "--dataset", "re10k", "--out", t / "out"],
                 "the following arguments are required: --root", id="root-not-given"),
]


@pytest.mark.parametrize("build,needle", EVAL_CASES)
def test_eval_refuses(build, needle, tmp_path, eval_root, capsys, monkeypatch):
    monkeypatch.setattr(cli_eval, "load_pipeline", lambda args: pytest.fail("models loaded"))
    _refused(capsys, tmp_path, build(tmp_path, eval_root), needle)


# ------------------------------------------------------------------------------------------ gen3r train

def _train(stage, *extra, preset="smoke") -> list:
    return ["train", stage, *(["--preset", preset] if preset else []), *extra]


def _config(t: Path, content) -> Path:
    return _write(t / "cfg.json", content if isinstance(content, (str, bytes)) else json.dumps(content))


def _run_with_checkpoint(t: Path, state: bytes) -> Path:
    ckpt = _write(t / "run" / "checkpoint-0000002" / "training_state.pt", state).parent
    _write(ckpt / "wan_vae" / "diffusion_pytorch_model.safetensors", b"weights")
    return t / "run"


TRAIN_CASES = [
    pytest.param(lambda t: _train("vae", preset=None), "pass --preset NAME", id="no-preset-or-config"),
    pytest.param(lambda t: _train("gan"), "invalid choice", id="stage-unknown"),
    pytest.param(lambda t: _train("vae", preset="huge"), "has no preset 'huge'", id="preset-unknown"),
    pytest.param(lambda t: _train("vae", "--config", t / "cfg.json"), "does not exist", id="config-missing"),
    pytest.param(lambda t: _train("vae", "--config", _folder(t / "cfgdir")), "is a folder", id="config-is-a-folder"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, "{not json")), "is not valid JSON",
                 id="config-not-json"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, b"\xff\xfe\x00{")), "is not valid JSON",
                 id="config-not-utf8"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, [1, 2])), "must hold a JSON object",
                 id="config-not-an-object"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"max_step": 3})), "unknown config key 'max_step'",
                 id="config-unknown-key"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"data": {"num_frame": 5}})),
                 "unknown config key 'data.num_frame'", id="config-unknown-nested-key"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"max_steps": "10"})), "'max_steps' must be int",
                 id="config-wrong-type"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, '{"init_logvar": NaN}')),
                 "'init_logvar' is NaN or infinite", id="config-nan"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, '{"optim": {"max_grad_norm": Infinity}}')),
                 "'optim.max_grad_norm' is NaN or infinite", id="config-infinity"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, '{"model": {"dim_mult": [1, 2, NaN, 4]}}')),
                 "'model.dim_mult[2]' is NaN or infinite", id="config-nan-in-a-list"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"optim": {"lr": -1}})), "lr and eps must be > 0",
                 id="config-negative-lr"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"data": {"num_frames": 6}})), "4k+1",
                 id="config-frames-not-4k+1"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"model": {"nonsense": 3}})),
                 "'model' cannot build AutoencoderKLWan", id="config-unknown-model-size"),
    pytest.param(lambda t: _train("vggt", "--config", _config(t, {"model": {"embed_dim": 15}})),
                 "'model' cannot build VGGT", id="config-impossible-model-size"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"device": "tpu9"})), "is not a torch device",
                 id="config-device-unknown"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"device": "cuda:99"})), "cuda:99",
                 id="config-device-not-here"),
    pytest.param(lambda t: _train("vae", "--config", _config(t, {"init": str(t / "nowhere")})),
                 "holds no trained wan_vae", id="init-weights-missing"),
    pytest.param(lambda t: _train("adapter", "--checkpoint", CKPT, "--config", _config(t, {"init": "nowhere"})),
                 "init must be 'random', 'checkpoint' or a geo_adapter folder", id="adapter-init-missing"),
    pytest.param(lambda t: _train("vae", "--max-steps", "0"), "positive integer", id="max-steps-zero"),
    pytest.param(lambda t: _train("vae", "--stop-at=-1"), "positive integer", id="stop-at-negative"),
    pytest.param(lambda t: _train("vae", "--data-cache", t / "c", "--data-root", t / "r"), "both given",
                 id="data-cache-and-root"),
    pytest.param(lambda t: _train("vae", "--data-cache", t / "nowhere"), "is not a scene cache",
                 id="data-cache-missing"),
    pytest.param(lambda t: _train("adapter", "--data-root", t / "nowhere", "--checkpoint", CKPT),
                 "does not exist", id="data-root-missing"),
    pytest.param(lambda t: _train("adapter", "--data-root", _folder(t / "data" / "NotADataset").parent,
                                  "--checkpoint", CKPT),
                 "holds none of the official dataset folders", id="data-root-without-datasets"),
    pytest.param(lambda t: _train("vae", "--adapter", t / "a"), "--adapter is an option of the dit stage",
                 id="adapter-outside-dit"),
    pytest.param(lambda t: _train("dit", "--checkpoint", CKPT, "--adapter", t / "nowhere"),
                 "holds no trained geo_adapter", id="adapter-missing"),
    pytest.param(lambda t: _train("dit", "--checkpoint", CKPT, "--config",
                                  _config(t, {"adapter_path": str(t / "nowhere")})),
                 "holds no trained geo_adapter", id="adapter-path-in-config-missing"),
    pytest.param(lambda t: _train("adapter"), "no Gen3R checkpoint given", id="checkpoint-not-given"),
    pytest.param(lambda t: _train("dit", "--checkpoint", t / "nowhere"), "does not exist", id="checkpoint-missing"),
    pytest.param(lambda t: _train("adapter", "--checkpoint", _write(t / "ck" / "model_index.json", "{").parent),
                 "is not valid JSON", id="checkpoint-index-not-json"),
    pytest.param(lambda t: _train("vae", "--out", _write(t / "out", "mine")), "is a file", id="out-is-a-file"),
    pytest.param(lambda t: _train("vae", "--out", _write(t / "file", "mine") / "out"), "is a file",
                 id="out-below-a-file"),
    pytest.param(lambda t: _train("vae", "--out", _run_with_checkpoint(t, b"state")),
                 "already holds checkpoint-0000002; pass --resume", id="out-holds-a-run"),
    pytest.param(lambda t: _train("vae", "--out", t / "run", "--resume"), "holds no checkpoint",
                 id="resume-without-a-run"),
    pytest.param(lambda t: _train("vae", "--out", _run_with_checkpoint(t, b"not a checkpoint"), "--resume"),
                 "corrupt or truncated", id="resume-from-garbage"),
]


@pytest.mark.parametrize("build,needle", TRAIN_CASES)
def test_train_refuses(build, needle, tmp_path, capsys, monkeypatch):
    from gen3r.train import loop

    monkeypatch.setattr(loop.Trainer, "__init__", lambda *a, **k: pytest.fail("models loaded"))
    monkeypatch.chdir(tmp_path)  # preset output folders (runs/...) land here, inside the snapshot
    _refused(capsys, tmp_path, build(tmp_path), needle)


# ------------------------------------------------------------------------------------------ gen3r convert

def _set_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _arch_with(t: Path, content: str) -> Path:
    return _write(t / "arch.json", content)


CONVERT_CASES = [
    pytest.param(lambda t: ["convert", t / "nowhere", t / "out"], "does not exist", id="source-missing"),
    pytest.param(lambda t: ["convert", _write(t / "ckpt.tar", "x"), t / "out"], "is a file", id="source-is-a-file"),
    pytest.param(lambda t: ["convert", _folder(t / "empty"), t / "out"], "is not a Gen3R checkpoint",
                 id="source-empty-folder"),
    pytest.param(lambda t: ["convert", _json(t / "ours" / "model_index.json", {"_gen3r_layout": 1}).parent,
                            t / "out"], "already in gen3r layout", id="source-already-converted"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _write(c / "model_index.json", "{")), t / "out"],
                 "is not valid JSON", id="model-index-not-json"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _write(c / "model_index.json", "[1]")),
                            t / "out"], "is not a JSON object", id="model-index-not-an-object"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: shutil.rmtree(c / "vggt")), t / "out"],
                 "component 'vggt' is missing", id="component-missing"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: (c / "vggt" / "model.safetensors").unlink()),
                            t / "out"], "incomplete", id="weights-missing"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(
        t, lambda c: _truncate(c / "transformer" / "diffusion_pytorch_model.safetensors")), t / "out"],
        "cannot read weights", id="weights-truncated"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(
        t, lambda c: _write(c / "vggt" / "model.safetensors", b"garbage")), t / "out"],
        "cannot read weights", id="weights-garbage"),
    pytest.param(lambda t: ["convert", CKPT, t / "out", "--architecture", _arch_with(t, "{}")],
                 "weights do not match the model", id="weights-wrong-shapes"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _write(c / "transformer" / "config.json", "{bad")),
                            t / "out"], "is not valid JSON", id="component-config-not-json"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _write(c / "text_encoder" / "config.json", "[]")),
                            t / "out"], "is not a JSON object", id="component-config-not-an-object"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _set_json(
        c / "scheduler" / "scheduler_config.json", _class_name="DDIMScheduler")), t / "out"],
        "is not supported", id="scheduler-unsupported"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _set_json(
        c / "scheduler" / "scheduler_config.json", num_train_timesteps=-5)), t / "out"],
        "cannot build the scheduler", id="scheduler-impossible-value"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: [p.unlink() for p in (c / "tokenizer").iterdir()]),
                            t / "out"], "cannot load the tokenizer", id="tokenizer-empty"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _write(c / "tokenizer" / "tokenizer.json", "{")),
                            t / "out"], "cannot load the tokenizer", id="tokenizer-corrupt"),
    pytest.param(lambda t: ["convert", _damaged_ckpt(t, lambda c: _write(c / "gen3r_arch.json", "{")), t / "out"],
                 "is not valid JSON", id="checkpoint-architecture-not-json"),
    pytest.param(lambda t: ["convert", CKPT, t / "out", "--architecture", t / "arch.json"],
                 "architecture file", id="architecture-missing"),
    pytest.param(lambda t: ["convert", CKPT, t / "out", "--architecture", _arch_with(t, "[1]")],
                 "must map each component", id="architecture-not-an-object"),
    pytest.param(lambda t: ["convert", CKPT, t / "out", "--architecture", _arch_with(t, '{"vggt": 3}')],
                 "('vggt' does not)", id="architecture-component-not-an-object"),
    pytest.param(lambda t: ["convert", CKPT, t / "out", "--dtype", "fp8"], "invalid choice", id="dtype-unknown"),
    pytest.param(lambda t: ["convert", CKPT], "the following arguments are required: out_dir", id="out-not-given"),
    pytest.param(lambda t: ["convert", CKPT, _write(t / "out", "mine")], "is a file", id="out-is-a-file"),
    pytest.param(lambda t: ["convert", CKPT, _write(t / "file", "mine") / "out"], "is a file",
                 id="out-below-a-file"),
    pytest.param(lambda t: ["convert", CKPT, _write(t / "out" / "keep.txt", "mine").parent], "--overwrite",
                 id="out-not-empty"),
    pytest.param(lambda t: ["convert", _ckpt_copy(t), t / "ckpt", "--overwrite"],
                 "holds the checkpoint being converted", id="out-is-the-source"),
    pytest.param(lambda t: ["convert", _ckpt_copy(t), t, "--overwrite"], "holds the checkpoint being converted",
                 id="out-holds-the-source"),
]


@pytest.mark.parametrize("build,needle", CONVERT_CASES)
def test_convert_refuses(build, needle, tmp_path, capsys):
    _refused(capsys, tmp_path, build(tmp_path), needle)


# ------------------------------------------------------------------------------------------ gen3r cameras

_EYE = np.eye(4).tolist()
_K = [[100.0, 0.0, 56.0], [0.0, 100.0, 56.0], [0.0, 0.0, 1.0]]


def _official(t: Path, **fields) -> Path:
    return _json(t / "cams.json", {"extrinsics": [_EYE, _EYE], "intrinsics": [_K, _K], "image_size": [112, 112],
                                   **fields})


def _transforms(t: Path, frames, **top) -> Path:
    return _json(t / "transforms.json", {"fl_x": 100.0, "cx": 56.0, "cy": 56.0, "w": 112, "h": 112, **top,
                                         "frames": frames})


_RE10K_LINE = "0 0.9 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"


def _colmap(t: Path, cameras: str, images: str) -> Path:
    folder = t / "colmap"
    _write(folder / "cameras.txt", cameras)
    _write(folder / "images.txt", images)
    return folder


_COLMAP_CAMERA = "1 PINHOLE 112 112 100 100 56 56\n"


def _convert(src, out, *extra) -> list:
    return ["cameras", "convert", src, out, *extra]


def _make(out, *extra, preset="orbit_left") -> list:
    return ["cameras", "make", preset, out, "--frames", "5", *extra]


CAMERAS_CASES = [
    # cameras make
    pytest.param(lambda t: _make(t / "c.json", preset="spin_around"), "spin_around", id="make-preset-unknown"),
    pytest.param(lambda t: _make(t / "c.json", "--frames", "0"),
                 "a number of cameras in [1, 100000]", id="make-frames-zero"),
    pytest.param(lambda t: _make(t / "c.json", "--frames", str(10**12)),
                 "a number of cameras in [1, 100000]", id="make-frames-huge"),
    pytest.param(lambda t: _make(t / "c.json", "--size", "big"), "expected HxW", id="make-size-not-HxW"),
    pytest.param(lambda t: _make(t / "c.json", "--size", "0x560"), "positive HxW", id="make-size-zero"),
    pytest.param(lambda t: _make(t / "c.json", "--fov", "180"),
                 "a field of view in degrees in (0, 180)", id="make-fov-180"),
    pytest.param(lambda t: _make(t / "c.json", "--fov", "nan"),
                 "a field of view in degrees in (0, 180), got nan", id="make-fov-nan"),
    pytest.param(lambda t: _make(t / "c.json", "--scene-scale", "0"), "positive finite number", id="make-scale-zero"),
    pytest.param(lambda t: _make(t / "c.json", "--scene-scale", "inf"), "positive finite number, got inf",
                 id="make-scale-inf"),
    pytest.param(lambda t: _make(t / "c.json", "--scene-scale", "1e308"), "NaN or inf", id="make-scale-huge"),
    pytest.param(lambda t: _make(t / "c.json", "--angle=nan"), "finite", id="make-angle-nan"),
    pytest.param(lambda t: _make(t / "c.json", "--angle", "10", preset="zoom_in"),
                 "does not take parameter(s) angle", id="make-parameter-not-taken"),
    pytest.param(lambda t: _make(t / "c.json", "--format", "ply"), "invalid choice", id="make-format-unknown"),
    pytest.param(lambda t: _make(t / "c.yaml"), "cannot tell the camera format", id="make-suffix-unknown"),
    pytest.param(lambda t: _make(_folder(t / "c.json")), "it is a folder", id="make-out-is-a-folder"),
    pytest.param(lambda t: _make(_write(t / "file", "mine") / "c.json"), "is a file, not a folder",
                 id="make-out-below-a-file"),
    pytest.param(lambda t: _make(_write(t / "model", "mine"), "--format", "colmap"), "it is a file",
                 id="make-colmap-out-is-a-file"),
    # cameras convert: the source
    pytest.param(lambda t: _convert(t / "nowhere.json", t / "o.json"), "does not exist", id="convert-src-missing"),
    pytest.param(lambda t: _convert(_write(t / "c.json", "{"), t / "o.json"), "invalid JSON",
                 id="convert-src-not-json"),
    pytest.param(lambda t: _convert(_write(t / "c.json", b"\xff\xfe{"), t / "o.json"), "cannot read the file",
                 id="convert-src-not-utf8"),
    pytest.param(lambda t: _convert(_json(t / "c.json", {"poses": []}), t / "o.json"), "neither",
                 id="convert-json-of-no-format"),
    pytest.param(lambda t: _convert(_json(t / "c.json", 3), t / "o.json"), "neither", id="convert-json-a-number"),
    pytest.param(lambda t: _convert(_json(t / "c.json", {"extrinsics": [_EYE]}), t / "o.json"),
                 "missing key 'intrinsics'", id="convert-official-missing-key"),
    pytest.param(lambda t: _convert(_official(t, extrinsics=[_EYE, [[float("nan")] * 4] * 4]), t / "o.json"),
                 "NaN or infinite", id="convert-official-nan"),
    pytest.param(lambda t: _convert(_official(t, extrinsics=[[1, 2, 3]]), t / "o.json"), "has shape",
                 id="convert-official-wrong-shape"),
    pytest.param(lambda t: _convert(_official(t, intrinsics=[_K, _K, _K]), t / "o.json"),
                 "has 3 matrices but 'extrinsics' has 2", id="convert-official-count-mismatch"),
    pytest.param(lambda t: _convert(_official(t, intrinsics=[[[0, 0, 56], [0, 0, 56], [0, 0, 1]]] * 2),
                                    t / "o.json"), "non-positive focal length", id="convert-official-zero-focal"),
    pytest.param(lambda t: _convert(_official(t, image_size=[0, 112]), t / "o.json"),
                 "image_size must be a positive", id="convert-official-bad-image-size"),
    pytest.param(lambda t: _convert(_json(t / "transforms.json", {"frames": []}), t / "o.json"),
                 "field 'frames': is missing or empty", id="convert-transforms-no-frames"),
    pytest.param(lambda t: _convert(_transforms(t, [{"file_path": "a.png"}]), t / "o.json"),
                 "missing key 'transform_matrix'", id="convert-transforms-no-matrix"),
    pytest.param(lambda t: _convert(_transforms(t, [{"transform_matrix": np.zeros((4, 4)).tolist()}]), t / "o.json"),
                 "is not invertible", id="convert-transforms-singular"),
    pytest.param(lambda t: _convert(_transforms(t, [{"transform_matrix": _EYE}], fl_x="big"), t / "o.json"),
                 "field 'fl_x'", id="convert-transforms-focal-not-a-number"),
    pytest.param(lambda t: _convert(_transforms(t, [{"transform_matrix": _EYE}], w=None, h=None), t / "o.json"),
                 "records no image size", id="convert-transforms-no-size"),
    pytest.param(lambda t: _convert(_write(t / "c.txt", f"https://x\n{_RE10K_LINE}\n"), t / "o.json"),
                 "--size HxW", id="convert-re10k-without-size"),
    pytest.param(lambda t: _convert(_write(t / "c.txt", "https://x\n0 0.9 0.9 0.5 0.5 0 0\n"), t / "o.json",
                                    "--size", "112x112"), "has 7 values, expected 19", id="convert-re10k-short-line"),
    pytest.param(lambda t: _convert(_write(t / "c.txt", "https://x\n" + _RE10K_LINE.replace("0.9", "nan", 1)),
                                    t / "o.json", "--size", "112x112"), "NaN or inf", id="convert-re10k-nan"),
    pytest.param(lambda t: _convert(_write(t / "c.txt", "https://x\n"), t / "o.json", "--size", "112x112"),
                 "contains no camera lines", id="convert-re10k-empty"),
    pytest.param(lambda t: _convert(_folder(t / "colmap"), t / "o.json"), "has no cameras.txt",
                 id="convert-colmap-empty-folder"),
    pytest.param(lambda t: _convert(_write(t / "colmap" / "cameras.bin", b"\0").parent, t / "o.json"),
                 "binary COLMAP model", id="convert-colmap-binary"),
    pytest.param(lambda t: _convert(_colmap(t, "1 FISHEYE 112 112 100 56 56 0\n", ""), t / "o.json"),
                 "camera model FISHEYE is not supported", id="convert-colmap-unsupported-model"),
    pytest.param(lambda t: _convert(_colmap(t, _COLMAP_CAMERA, "1 0 0 0 0 0 0 0 1 a.png\n\n"), t / "o.json"),
                 "quaternion is zero", id="convert-colmap-zero-quaternion"),
    pytest.param(lambda t: _convert(_colmap(t, _COLMAP_CAMERA, "1 1 0 0 0 0 0 0 7 a.png\n\n"), t / "o.json"),
                 "CAMERA_ID 7", id="convert-colmap-unknown-camera"),
    # cameras convert: the output
    pytest.param(lambda t: _convert(_official(t), t / "o.json", "--format", "ply"), "invalid choice",
                 id="convert-format-unknown"),
    pytest.param(lambda t: _convert(_official(t), t / "o.yaml"), "cannot tell the camera format",
                 id="convert-suffix-unknown"),
    pytest.param(lambda t: _convert(_official(t), _folder(t / "o.json")), "it is a folder",
                 id="convert-out-is-a-folder"),
    pytest.param(lambda t: _convert(_official(t), _write(t / "file", "mine") / "o.json"), "is a file, not a folder",
                 id="convert-out-below-a-file"),
    pytest.param(lambda t: _convert(_official(t), _write(t / "model", "mine"), "--format", "colmap"),
                 "it is a file", id="convert-colmap-out-is-a-file"),
    pytest.param(lambda t: _convert(_official(t), t / "o.json", "--size=0x5"), "positive HxW", id="convert-size-zero"),
]


@pytest.mark.parametrize("build,needle", CAMERAS_CASES)
def test_cameras_refuses(build, needle, tmp_path, capsys):
    _refused(capsys, tmp_path, build(tmp_path), needle)


# ------------------------------------------------------------------------------------------ gen3r scene

def _scene(out, *extra) -> list:
    return ["scene", "--frames", "2", "--height", "8", "--width", "8", "--out", out, *extra]


SCENE_CASES = [
    pytest.param(lambda t: _scene(t / "o", "--frames", "0"), "positive integer", id="frames-zero"),
    pytest.param(lambda t: _scene(t / "o", "--height=-3"), "positive integer", id="height-negative"),
    pytest.param(lambda t: _scene(t / "o", "--width", "abc"), "positive integer", id="width-not-a-number"),
    pytest.param(lambda t: _scene(t / "o", "--seed=-1"), "integer >= 0", id="seed-negative"),
    pytest.param(lambda t: _scene(t / "o", "--scenes", "0"), "positive integer", id="scenes-zero"),
    pytest.param(lambda t: _scene(t / "o", "--kind", "moon"), "invalid choice", id="kind-unknown"),
    pytest.param(lambda t: _scene(t / "o", "--trajectory", "fly"), "invalid choice", id="trajectory-unknown"),
    pytest.param(lambda t: _scene(t / "o", "--format", "ply"), "invalid choice", id="format-unknown"),
    pytest.param(lambda t: _scene(t / "o", "--fov", "0"), "a field of view in degrees in [1, 170]", id="fov-zero"),
    pytest.param(lambda t: _scene(t / "o", "--fov", "200"), "a field of view in degrees in [1, 170]", id="fov-200"),
    pytest.param(lambda t: _scene(t / "o", "--fov", "nan"), "a field of view in degrees in [1, 170]", id="fov-nan"),
    pytest.param(lambda t: _scene(t / "o", "--fov", "inf"), "a field of view in degrees in [1, 170]", id="fov-inf"),
    pytest.param(lambda t: _scene(t / "o", "--num-objects", "100"),
                 "a number of objects in [0, 64]", id="num-objects-100"),
    pytest.param(lambda t: _scene(t / "o", "--num-objects=-1"),
                 "a number of objects in [0, 64]", id="num-objects-negative"),
    pytest.param(lambda t: _scene(t / "o", "--split", "a/b"), "split must be a name", id="split-with-slash"),
    pytest.param(lambda t: _scene(t / "o", "--format", "nerfstudio", "--split", "val"),
                 "drop it for --format nerfstudio", id="split-for-nerfstudio"),
    pytest.param(lambda t: _scene(t / "o", "--height", "100000", "--width", "100000", "--frames", "1000"),
                 "GiB of memory", id="too-large-for-memory"),
    pytest.param(lambda t: _scene(t / "o", "--scenes", str(10**9)), "GiB of memory", id="scenes-huge"),
    pytest.param(lambda t: ["scene", "--frames", "2"], "the following arguments are required: --out",
                 id="out-not-given"),
    pytest.param(lambda t: _scene(_write(t / "o", "mine")), "is a file", id="out-is-a-file"),
    pytest.param(lambda t: _scene(_write(t / "file", "mine") / "o"), "is a file", id="out-below-a-file"),
    pytest.param(lambda t: _scene(_write(t / "o" / "keep.txt", "mine").parent), "--overwrite", id="out-not-empty"),
]


@pytest.mark.parametrize("build,needle", SCENE_CASES)
def test_scene_refuses(build, needle, tmp_path, capsys):
    _refused(capsys, tmp_path, build(tmp_path), needle)


# ------------------------------------------------------------------------------------------ gen3r view

@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_small_output(tmp_path_factory.mktemp("view") / "out")


def _view(folder, *extra) -> list:
    return ["view", folder, "--port", str(free_port()), *extra]


def _damaged_out(t: Path, src: Path, damage) -> Path:
    out = Path(shutil.copytree(src, t / "out"))
    damage(out)
    return out


def _set_cameras(out: Path, **fields) -> None:
    _set_json(out / "cameras.json", **fields)


_BUSY: list[socket.socket] = []  # sockets held open while a case runs (closed by the test)


def _busy_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    _BUSY.append(s)
    return s.getsockname()[1]


VIEW_CASES = [
    pytest.param(lambda t, o: _view(t / "nowhere"), "does not exist", id="folder-missing"),
    pytest.param(lambda t, o: _view(_write(t / "out", "mine")), "is a file", id="folder-is-a-file"),
    pytest.param(lambda t, o: _view(_folder(t / "empty")), "points.ply is missing", id="folder-empty"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: (d / "cameras.json").unlink())),
                 "cameras.json is missing", id="cameras-missing"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _truncate(d / "points.ply"))), "points.ply",
                 id="points-truncated"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _write(d / "points.ply", "not a ply"))),
                 "truncated or not a point cloud", id="points-not-ply"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _write(
        d / "points.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n"))),
        "truncated or not a point cloud", id="points-without-xyz"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _write(
        d / "points.ply", "ply\nformat ascii 1.0\nelement face 0\nend_header\n"))),
        "truncated or not a point cloud", id="points-without-vertices"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _write(d / "cameras.json", "{"))),
                 "invalid JSON", id="cameras-not-json"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _set_cameras(
        d, extrinsics=[[[float("nan")] * 4] * 4] * 3))), "NaN or infinite", id="cameras-nan"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _set_cameras(d, extrinsics=[[1, 2]]))),
                 "has shape", id="cameras-wrong-shape"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _set_cameras(d, extrinsics=[_EYE]))),
                 "has 3 matrices but 'extrinsics' has 1", id="cameras-count-mismatch"),
    pytest.param(lambda t, o: _view(_damaged_out(t, o, lambda d: _write(d / "images" / "frame_00000.png", b"junk"))),
                 "frame_00000.png", id="thumbnail-damaged"),
    pytest.param(lambda t, o: ["view", o, "--port=0"], "a port number in [1, 65535]", id="port-zero"),
    pytest.param(lambda t, o: ["view", o, "--port=-1"], "a port number in [1, 65535]", id="port-negative"),
    pytest.param(lambda t, o: ["view", o, "--port=70000"], "a port number in [1, 65535]", id="port-too-large"),
    pytest.param(lambda t, o: ["view", o, "--port=http"], "a port number in [1, 65535]", id="port-not-a-number"),
    pytest.param(lambda t, o: ["view", o, "--port", str(_busy_port())], "is in use", id="port-in-use"),
    pytest.param(lambda t, o: _view(o, "--host", "no such host.invalid"), "is not a valid address",
                 id="host-invalid"),
    pytest.param(lambda t, o: _view(o, "--host", ""), "is not a valid address", id="host-empty"),
    pytest.param(lambda t, o: _view(o, "--host", "192.0.2.1"), "cannot listen on 192.0.2.1", id="host-not-here"),
    pytest.param(lambda t, o: ["view"], "the following arguments are required: folder", id="folder-not-given"),
]


@pytest.mark.parametrize("build,needle", VIEW_CASES)
def test_view_refuses(build, needle, tmp_path, exported, capsys, monkeypatch):
    import gen3r.io.viewer as viewer

    monkeypatch.setattr(viewer, "serve", lambda *a, **k: pytest.fail("the viewer started serving"))
    before = _snapshot(exported)
    try:
        _refused(capsys, tmp_path, build(tmp_path, exported), needle)
    finally:
        while _BUSY:
            _BUSY.pop().close()
    assert _snapshot(exported) == before


# ------------------------------------------------------------------------------- gen3r export-html / app

EXPORT_HTML_CASES = [
    pytest.param(lambda t, o: ["export-html", t / "nowhere"], "does not exist", id="folder-missing"),
    pytest.param(lambda t, o: ["export-html", _folder(t / "empty")], "points.ply is missing", id="folder-empty"),
    pytest.param(lambda t, o: ["export-html", _damaged_out(t, o, lambda d: _write(d / "points.ply", "not a ply"))],
                 "truncated or not a point cloud", id="points-not-ply"),
    pytest.param(lambda t, o: ["export-html", _damaged_out(t, o, lambda d: _write(d / "depth.npz", b"junk"))],
                 "depth.npz", id="depth-damaged"),
    pytest.param(lambda t, o: ["export-html",
                               _damaged_out(t, o, lambda d: (d / "images" / "frame_00002.png").unlink())],
                 "PNG frames for 3 cameras", id="frame-missing"),
    pytest.param(lambda t, o: ["export-html", o, "--output", _folder(t / "dir")],
                 "is a folder", id="output-is-a-folder"),
    pytest.param(lambda t, o: ["export-html", o, "--max-points", "0"],
                 "a point count in [1, 5e+06]", id="max-points-0"),
    pytest.param(lambda t, o: ["export-html", o, "--max-points", "many"], "a point count", id="max-points-text"),
]


@pytest.mark.parametrize("build,needle", EXPORT_HTML_CASES)
def test_export_html_refuses(build, needle, tmp_path, exported, capsys):
    before = _snapshot(exported)
    _refused(capsys, tmp_path, build(tmp_path, exported), needle)
    assert _snapshot(exported) == before


APP_CASES = [
    pytest.param(lambda t: ["app", "--port", str(_busy_port())], "is in use", id="port-in-use"),
    pytest.param(lambda t: ["app", "--port", "0"], "a port number in [1, 65535]", id="port-zero"),
    pytest.param(lambda t: ["app", "--host", "192.0.2.1", "--port", str(free_port())], "cannot listen on 192.0.2.1",
                 id="host-not-here"),
    pytest.param(lambda t: ["app", "--max-upload-mb", "0"], "a size in MB in [1, 10000]", id="upload-cap-0"),
    pytest.param(lambda t: ["app", "--port", str(free_port()), "--work-dir", _write(t / "f", "x")], "is a file",
                 id="work-dir-is-a-file"),
    pytest.param(lambda t: ["app", "--checkpoint", t / "nowhere", "--port", str(free_port())], "nowhere",
                 id="checkpoint-missing"),
    pytest.param(lambda t: ["app", "--device", "tpu", "--port", str(free_port())], "tpu", id="device-unknown"),
]


@pytest.mark.parametrize("build,needle", APP_CASES)
def test_app_refuses(build, needle, tmp_path, capsys, monkeypatch):
    import gen3r.app as app

    monkeypatch.setattr(app, "launch", lambda *a, **k: pytest.fail("the app started serving"))
    try:
        _refused(capsys, tmp_path, build(tmp_path), needle)
    finally:
        while _BUSY:
            _BUSY.pop().close()
