"""Strict, safe weight loading helpers."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from gen3r.errors import CheckpointError
from gen3r.models._loading import check_state_dict, load_strict, read_weights, read_weights_dir


def test_read_weights_cast_while_reading(tmp_path):
    save_file({"a": torch.randn(3, 4), "i": torch.arange(3)}, str(tmp_path / "w.safetensors"))
    sd = read_weights(tmp_path / "w.safetensors", dtype=torch.bfloat16)
    assert sd["a"].dtype == torch.bfloat16 and sd["i"].dtype == torch.int64


def test_read_weights_pth_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": torch.ones(2), "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        read_weights(tmp_path / "evil.pth")
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(read_weights(tmp_path / "ok.pth")["w"], torch.ones(2))


def test_read_weights_dir_merges_shards(tmp_path):
    save_file({"a": torch.zeros(1)}, str(tmp_path / "m-00001.safetensors"))
    save_file({"b": torch.ones(1)}, str(tmp_path / "m-00002.safetensors"))
    assert sorted(read_weights_dir(tmp_path)) == ["a", "b"]
    with pytest.raises(CheckpointError, match="no weights"):
        read_weights_dir(_empty(tmp_path))
    with pytest.raises(CheckpointError, match="does not exist"):
        read_weights_dir(tmp_path / "missing")


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_corrupt_file(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"xx")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        read_weights(tmp_path / "bad.safetensors")


def test_strict_lists_every_problem():
    model = torch.nn.Linear(2, 3)
    with pytest.raises(CheckpointError) as exc:
        load_strict(model, {"weight": torch.zeros(3, 5), "extra": torch.zeros(1)}, "lin")
    msg = str(exc.value)
    assert "1 missing [bias]" in msg and "1 unexpected [extra]" in msg and "1 shape-mismatched [weight" in msg
    assert "\n" not in msg
    check_state_dict({"a": (1,)}, {"a": torch.zeros(1)}, "ok")
    load_strict(model, {"weight": torch.ones(3, 2), "bias": torch.ones(3)}, "lin")
    assert torch.equal(model.weight, torch.ones(3, 2))
