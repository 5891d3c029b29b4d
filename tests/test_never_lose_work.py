"""Runs killed with SIGKILL lose nothing: a resumed training run logs exactly the losses of an
uninterrupted one, checkpoints are whole or absent, and a killed generate leaves no output behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gen3r.cli.main import main as gen3r
from tests._tiny import ROOT

TRAIN = ["train", "vae", "--preset", "smoke", "--max-steps", "10"]


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "gen3r.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "the run did not get far enough to be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _run(args: list[str]) -> None:
    """A whole run in a fresh process with the same environment as the killed one (same threads and
    kernels: the comparison is bit for bit)."""
    proc = _spawn(args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_killed_training_resumes_with_identical_losses(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run([*TRAIN, "--out", str(whole)])
    proc = _spawn([*TRAIN, "--out", str(killed)])
    metrics = killed / "metrics.jsonl"
    _kill_when(proc, lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 5)
    logged = len(metrics.read_text().splitlines())
    assert logged < 10
    # whatever the kill interrupted, the listed checkpoints are whole and the resume picks the newest
    _run([*TRAIN, "--out", str(killed), "--resume"])
    expected, got = _records(whole), _records(killed)
    assert [r["step"] for r in got] == list(range(1, 11))
    for a, b in zip(expected, got):
        assert a == b, (a, b)  # every logged term, bit for bit
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_killed_generate_leaves_no_output(tmp_path):
    out = tmp_path / "out"
    example = ROOT / "gen3r" / "assets" / "examples" / "room.png"
    args = ["generate", str(example), "--out", str(out), "--steps", "25"]
    proc = _spawn(args)
    # kill while the export runs: its temporary folder exists
    _kill_when(proc, lambda: any(p.name.startswith(".out.") for p in tmp_path.iterdir()))
    assert not out.exists()
    assert gen3r([*args[:-2], "--steps", "1"]) == 0  # the next run sweeps the killed one's temporaries
    assert (out / "rgb.mp4").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_killed_convert_leaves_no_output(tmp_path):
    """Killed while writing the converted weights (a writer slowed down so the kill lands mid-way)."""
    out = tmp_path / "converted"
    fixture = ROOT / "tests" / "data" / "official-tiny" / "checkpoint"
    args = ["convert", str(fixture), str(out)]
    slow = ("import sys, time, safetensors.torch as st\n"
            "real = st.save_file\n"
            "def save_file(*a, **k):\n"
            "    real(*a, **k)\n"
            "    time.sleep(60)\n"
            "st.save_file = save_file\n"
            "from gen3r.cli.main import main\n"
            f"sys.exit(main({[str(a) for a in args]!r}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", slow], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _kill_when(proc, lambda: any(p.name.startswith(".converted.") and any(p.rglob("*.safetensors"))
                                 for p in tmp_path.iterdir()))
    assert not out.exists()
    assert gen3r(args) == 0  # the next run sweeps the killed one's temporaries
    assert (out / "model_index.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["converted"]
