"""Audit: ``gen3r convert`` writes our layout, read back with an independent reader, and bad input.

``tests/cli/test_generate.py::test_convert_roundtrip_identical`` loads the converted folder with our
own ``Gen3RPipeline.from_pretrained``. Here the written files are read with ``safetensors`` directly
and compared with the models loaded from the official folder (whose outputs the parity tests tie to
the official code), every component is checked for ``--dtype fp16``, the tokenizer is checked to
give the same ids, and bad input is checked to exit 2 with one line and leave nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gen3r.cli.main import main
from tests._tiny import TINY_CHECKPOINT

COMPONENTS = ("text_encoder", "clip_image_encoder", "transformer", "wan_vae", "geo_adapter", "vggt")
PROMPT = "a quiet stone courtyard with arches and a small fountain, soft morning light"


@pytest.fixture(scope="module")
def official():
    from gen3r.pipeline import Gen3RPipeline

    return Gen3RPipeline.from_pretrained(TINY_CHECKPOINT)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("convert")
    out = {"fp32": root / "fp32", "fp16": root / "fp16"}
    assert main(["convert", str(TINY_CHECKPOINT), str(out["fp32"])]) == 0
    assert main(["convert", str(TINY_CHECKPOINT), str(out["fp16"]), "--dtype", "fp16"]) == 0
    return out


def _files(folder: Path) -> dict[str, torch.Tensor]:
    shards = sorted(folder.glob("*.safetensors"))
    assert shards, f"no safetensors in {folder}"
    merged: dict[str, torch.Tensor] = {}
    for shard in shards:
        merged.update(load_file(str(shard)))
    return merged


def _persistent_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items()}


@pytest.mark.parametrize("component", COMPONENTS)
def test_written_fp32_files_hold_the_loaded_official_tensors(official, converted, component: str) -> None:
    folder = converted["fp32"] / component
    assert (folder / "config.json").is_file()
    on_disk = _files(folder)
    loaded = _persistent_state(getattr(official, component))
    # tied tensors (umT5 shared/embed_tokens) may be stored once: every stored key is a model key,
    # and every model key is stored or is a tie of a stored tensor
    assert set(on_disk) <= set(loaded), sorted(set(on_disk) - set(loaded))[:5]
    missing = set(loaded) - set(on_disk)
    for key in missing:
        assert any(loaded[key] is loaded[other] or torch.equal(loaded[key], loaded[other]) for other in on_disk), key
    for key, tensor in on_disk.items():
        assert tensor.dtype == loaded[key].dtype, key
        assert torch.equal(tensor, loaded[key]), f"{component}.{key}"


@pytest.fixture(scope="module")
def official_fp16():
    """The reference for ``--dtype fp16``: the official folder loaded with ``torch_dtype=float16``."""
    from gen3r.pipeline import Gen3RPipeline

    return Gen3RPipeline.from_pretrained(TINY_CHECKPOINT, torch_dtype=torch.float16)


def _same_tensors(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], what: str) -> None:
    for key, tensor in ours.items():
        assert tensor.dtype == ref[key].dtype, f"{what}.{key}: {tensor.dtype} != {ref[key].dtype}"
        assert torch.equal(tensor, ref[key]), f"{what}.{key}"


@pytest.mark.parametrize("component", [
    "text_encoder", "clip_image_encoder", "transformer", "wan_vae",
    "geo_adapter", "vggt"])
def test_fp16_files_equal_official_loaded_in_fp16(official_fp16, converted, component: str) -> None:
    on_disk = _files(converted["fp16"] / component)
    ref = _persistent_state(getattr(official_fp16, component))
    assert set(on_disk) <= set(ref)
    assert any(t.dtype == torch.float16 for t in on_disk.values())
    _same_tensors(on_disk, ref, component)
    assert json.loads((converted["fp16"] / "model_index.json").read_text())["dtype"] == "float16"


@pytest.mark.parametrize("component", [
    "text_encoder",
    "clip_image_encoder",
    "transformer", "wan_vae", "geo_adapter", "vggt"])
def test_fp16_conversion_loads_back_like_official_fp16(official_fp16, converted, component: str) -> None:
    from gen3r.pipeline import Gen3RPipeline

    back = Gen3RPipeline.from_pretrained(converted["fp16"])
    _same_tensors(_persistent_state(getattr(back, component)), _persistent_state(getattr(official_fp16, component)),
                  component)


def test_converted_tokenizer_gives_the_same_ids(official, converted) -> None:
    from gen3r.models.text_encoder import load_tokenizer

    theirs = official.tokenizer([PROMPT, "bad detailed"], padding="max_length", max_length=512, truncation=True)
    ours = load_tokenizer(converted["fp32"] / "tokenizer")(
        [PROMPT, "bad detailed"], padding="max_length", max_length=512, truncation=True)
    assert ours["input_ids"] == theirs["input_ids"]
    assert ours["attention_mask"] == theirs["attention_mask"]


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("gen3r: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_missing_official_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["convert", str(tmp_path / "nope"), str(out)]) == 2
    assert "does not exist" in _one_line_error(capsys)
    assert not out.exists()


def test_already_converted_folder_is_refused(converted, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["convert", str(converted["fp32"]), str(out)]) == 2
    assert "already in gen3r layout" in _one_line_error(capsys)
    assert not out.exists()


def test_non_empty_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["convert", str(TINY_CHECKPOINT), str(out)]) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_incomplete_checkpoint_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(TINY_CHECKPOINT, broken)
    (broken / "vggt" / "model.safetensors").unlink()
    out = tmp_path / "out"
    assert main(["convert", str(broken), str(out)]) == 2
    line = _one_line_error(capsys)
    assert "vggt" in line and "incomplete" in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # no temporary folder left behind


def test_output_path_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert main(["convert", str(TINY_CHECKPOINT), str(out)]) == 2
    assert "out" in _one_line_error(capsys)
    assert out.read_text() == "not a folder"
