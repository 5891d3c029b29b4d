"""The README's examples run as written, so they cannot rot: the Python block on the embedded mini
model, the command block on the tiny official-layout fixture with small sizes (every `gen3r` line
parses; generate / reconstruct / convert run)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gen3r.cli.main import build_parser, main
from tests._tiny import ROOT

FIXTURE = ROOT / "tests" / "data" / "official-tiny" / "checkpoint"
EXAMPLE = ROOT / "gen3r" / "assets" / "examples" / "room.png"
SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "2"]


def _blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """Shell lines of a block (continuations joined, comments dropped) as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    (block,) = _blocks("python")
    shutil.copy(EXAMPLE, tmp_path / "room.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    out = namespace["out"]
    b, f, h, w = out.depth.shape
    assert (b, f, h, w) == (1, 17, 112, 112)  # the mini model's own defaults
    assert out.rgb.shape == (b, f, h, w, 3) and float(out.rgb.min()) >= 0 and float(out.rgb.max()) <= 1
    assert out.world_points.shape == (b, f, h, w, 3) and out.extrinsics.shape == (b, f, 3, 4)
    assert out.intrinsics.shape == (b, f, 3, 3)
    for name in ("rgb", "depth", "depth_conf", "point_map", "point_conf", "world_points", "point_mask",
                 "extrinsics", "intrinsics"):
        assert isinstance(getattr(out, name), torch.Tensor), name  # one output type throughout


def test_readme_vae_only_sentence_runs():
    from gen3r import Gen3RPipeline

    text = (ROOT / "README.md").read_text()
    call = re.search(r"`(pipe\.decode_geometry\(pipe\.encode_geometry\(frames\)\))`", text)
    assert call, "the README names the VAE-only reconstruction"
    pipe = Gen3RPipeline.from_pretrained(FIXTURE)
    frames = torch.rand(1, 5, 3, 112, 112)
    geo = eval(call.group(1), {"pipe": pipe, "frames": frames})
    assert geo["depth"].shape == (1, 5, 112, 112) and isinstance(geo["world_points"], torch.Tensor)


def _inputs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("room.png", "first.png", "last.png"):
        Image.fromarray(rng.integers(0, 256, (120, 136, 3), dtype=np.uint8)).save(folder / name)
    from gen3r.io.exporters import write_video

    write_video(folder / "video.mp4", rng.random((9, 112, 112, 3)).astype(np.float32), fps=8)


def test_readme_commands_run_on_the_fixture(tmp_path, monkeypatch):
    blocks = _blocks("bash")
    commands = [c for block in blocks for c in _commands(block)]
    gen3r_lines = [c[1:] for c in commands if c[0] == "gen3r"]
    assert len(gen3r_lines) >= 5
    parser = build_parser()
    for args in gen3r_lines:
        parser.parse_args(args)  # every documented flag exists (argparse exits 2 otherwise)
    _inputs(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "Gen3R").symlink_to(FIXTURE, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    ran = set()
    for args in gen3r_lines:
        command = args[0]
        if command in ("generate", "reconstruct"):
            assert main([*args, *SMALL]) == 0, args
        elif command == "convert":
            assert main(args) == 0, args
        else:
            continue  # view serves until stopped: its flags parsed above, the viewer has its own tests
        ran.add(command)
    assert ran == {"generate", "reconstruct", "convert"}
    assert (tmp_path / "out" / "room" / "rgb.mp4").is_file() and (tmp_path / "out" / "pair" / "points.ply").is_file()
    assert (tmp_path / "out" / "rec" / "depth.npz").is_file()
    assert (tmp_path / "checkpoints" / "Gen3R-bf16" / "model_index.json").is_file()


def test_readme_two_commands_exist():
    (first, *_) = _blocks("bash")
    assert _commands(first) == [["bash", "scripts/run", "demo"], ["bash", "scripts/run", "test"]]
    run = (ROOT / "scripts" / "run").read_text()
    assert "demo)" in run and "test)" in run
