"""Context-parallel generation (diffusers' Ulysses attention) under torchrun with 2 gloo CPU
processes: the outputs equal one process within 1e-5 on the tiny official-layout checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gen3r.cli.main import main as gen3r
from tests._tiny import ROOT, torchrun

CKPT = ROOT / "tests" / "data" / "official-tiny" / "checkpoint"
EXAMPLE = ROOT / "gen3r" / "assets" / "examples" / "room.png"
SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "2"]


def _generate(out: Path, *extra: str) -> list[str]:
    return ["generate", str(EXAMPLE), "--checkpoint", str(CKPT), "--camera", "orbit_left", "--prompt", "a room",
            "--out", str(out), *SMALL, *extra]


def test_ulysses_two_processes_equal_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert gen3r(_generate(one)) == 0
    result = torchrun(_generate(two, "--parallel", "ulysses"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1  # rank 0 writes, once
    a, b = np.load(one / "depth.npz"), np.load(two / "depth.npz")
    for key in a.files:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-5)
    ca, cb = (json.loads((d / "cameras.json").read_text()) for d in (one, two))
    np.testing.assert_allclose(np.asarray(cb["extrinsics"]), np.asarray(ca["extrinsics"]), atol=1e-5)
    frames_a = sorted((one / "images").iterdir())
    for fa in frames_a:  # 8-bit frames: at most one level apart
        from PIL import Image

        pa = np.asarray(Image.open(fa), dtype=np.int16)
        pb = np.asarray(Image.open(two / "images" / fa.name), dtype=np.int16)
        assert np.abs(pa - pb).max() <= 1


@pytest.mark.parametrize("args, message", [
    (["--parallel", "ring"], "needs an attention backend that returns the log-sum-exp"),
])
def test_ring_on_the_cpu_is_refused_with_the_reason(tmp_path, args, message):
    result = torchrun(_generate(tmp_path / "out", *args))
    assert result.returncode != 0 and message in result.stderr  # torchrun reports the ranks' exit 2 as 1
    assert not (tmp_path / "out").exists()


def test_parallel_without_torchrun_is_one_line(tmp_path, capsys):
    assert gen3r(_generate(tmp_path / "out", "--parallel", "ulysses")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "start it with `torchrun --nproc-per-node N" in err[-1]
