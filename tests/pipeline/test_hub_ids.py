"""`--checkpoint` / `from_pretrained` take a Hugging Face Hub id, resolved through huggingface_hub's
cache (tested offline with a cache laid out as huggingface_hub writes it; no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gen3r.cli.main import main
from gen3r.errors import CheckpointError
from gen3r.pipeline.loading import resolve_checkpoint
from tests._tiny import TINY_CHECKPOINT

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A huggingface_hub cache holding `JaceyH919/Gen3R` (the tiny fixture) at revision main."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--JaceyH919--Gen3R"
    shutil.copytree(TINY_CHECKPOINT, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_hub_id_resolves_to_the_cached_snapshot(hub_cache):
    assert resolve_checkpoint("JaceyH919/Gen3R") == (hub_cache / "models--JaceyH919--Gen3R" / "snapshots" / COMMIT)


def test_pipeline_and_cli_take_a_hub_id(hub_cache, tmp_path):
    from PIL import Image

    from gen3r.pipeline import Gen3RPipeline

    pipe = Gen3RPipeline.from_pretrained("JaceyH919/Gen3R")
    assert pipe.checkpoint_path == "JaceyH919/Gen3R"
    image = tmp_path / "first.png"
    Image.new("RGB", (112, 112), (120, 90, 60)).save(image)
    out = tmp_path / "out"
    assert main(["generate", str(image), "--checkpoint", "JaceyH919/Gen3R", "--frames", "5", "--height", "112",
                 "--width", "112", "--steps", "1", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["checkpoint"] == "JaceyH919/Gen3R"


def test_missing_hub_id_offline_is_one_line_with_the_manual_download(hub_cache, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        resolve_checkpoint("someone/Unknown-Model")
    out = tmp_path / "out"
    image = tmp_path / "first.png"
    from PIL import Image

    Image.new("RGB", (112, 112)).save(image)
    assert main(["generate", str(image), "--checkpoint", "someone/Unknown-Model", "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("gen3r: error:") and "huggingface-cli download someone/Unknown-Model" in err[-1]
    assert "offline" in err[-1] and not out.exists()


def test_local_folders_win_over_hub_ids(hub_cache, tmp_path, monkeypatch):
    local = tmp_path / "JaceyH919" / "Gen3R"
    shutil.copytree(TINY_CHECKPOINT, local)
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("JaceyH919/Gen3R") == Path("JaceyH919/Gen3R")
    assert resolve_checkpoint("checkpoints/missing/deeper") == Path("checkpoints/missing/deeper")  # not an id
