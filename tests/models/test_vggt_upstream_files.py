"""VGGT loads upstream VGGT-1B file layouts: model.pt (weights_only) without config.json, or a file path."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from gen3r.models.vggt import VGGT
from tests._tiny import TINY_CHECKPOINT, tiny_arch


def test_upstream_model_pt_without_config(tmp_path, caplog):
    official = load_file(str(TINY_CHECKPOINT / "vggt" / "model.safetensors"))
    upstream = dict(official)
    upstream["track_head.feature_extractor.norm.weight"] = torch.ones(4)  # upstream ships a track head
    folder = tmp_path / "VGGT-1B"
    folder.mkdir()
    torch.save(upstream, folder / "model.pt")
    ref = VGGT.load_official(TINY_CHECKPOINT / "vggt", arch=tiny_arch("vggt"))
    with caplog.at_level("INFO"):
        got = VGGT.load_official(folder, arch=tiny_arch("vggt"))
    assert "track_head" in caplog.text
    assert got.config.embed_dim == ref.config.embed_dim == 16
    ours, theirs = got.state_dict(), ref.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    direct = VGGT.load_official(folder / "model.pt", arch=tiny_arch("vggt"))
    assert all(torch.equal(direct.state_dict()[k], theirs[k]) for k in theirs)
