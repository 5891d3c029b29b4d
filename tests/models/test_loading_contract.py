"""The strict-loading contract, one parametrised test per clause for all six components (VGGT, geometry
adapter, joint DiT, Wan VAE, UMT5 text encoder, CLIP image encoder).

On the tiny official-layout fixture (``tests/data/official-tiny``): the loader reads the component
strictly and safely; one missing, one unexpected and one shape-mismatched tensor are each reported
in one line naming the key (in our layout where it maps); a missing folder is reported;
``torch_dtype`` casts every parameter outside the model's ``_keep_in_fp32_modules``.

At full size (``tests/data/official-keys``; the 40 GB official files cannot be downloaded here):
each component's real ``load_official*`` runs with ``read_weights_dir`` replaced by a reader of meta
tensors with exactly the manifest's keys and shapes. The strict loader must report 0 missing, 0
unexpected and 0 shape-mismatched keys, the loaded parameter count must equal the manifest's
(minus the tensors dropped on purpose), and one extra or one missing official key must be reported.
Model-specific loading behaviour (dropped tensors, key tables, shards) stays in the model's file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from gen3r.errors import CheckpointError
from tests._tiny import OFFICIAL_KEYS, TINY_CHECKPOINT, WEIGHTS, tiny_arch, write_component_variant

MANIFESTS = OFFICIAL_KEYS


@dataclass(frozen=True)
class Component:
    """One component's loader and a bad tensor of each kind for the fixture (official key -> the key
    the error names)."""

    weights: str
    missing: tuple[str, str]
    unexpected: tuple[str, list[int], str]
    mismatched: tuple[str, list[int], str]
    copy: tuple[str, ...] = ("config.json",)

    def load(self, name: str, folder: Path, torch_dtype: torch.dtype | None = None) -> torch.nn.Module:
        arch = None if name == "text_encoder" else tiny_arch(name)  # UMT5 sizes come from its config.json
        return _load(name, folder, arch, torch_dtype)


COMPONENTS = {
    "vggt": Component("model.safetensors",
                      ("aggregator.frame_blocks.7.attn.q_norm.bias", "aggregator.frame_blocks.7.attn.q_norm.bias"),
                      ("camera_head.embed_pose_extra.weight", [3], "camera_head.embed_pose_extra.weight"),
                      ("depth_head.projects.2.weight", [25, 32, 1, 1], "depth_head.projects.2.weight")),
    "geo_adapter": Component(WEIGHTS, ("model.decoder.head.2.bias", "decoder.conv_out.bias"),
                             ("model.decoder.extra.weight", [1], "model.decoder.extra.weight"),
                             ("model.conv2.bias", [17], "post_quant_conv.bias")),
    "transformer": Component(WEIGHTS, ("blocks.1.cross_attn.k_img.weight", "blocks.1.attn2.add_k_proj.weight"),
                             ("blocks.0.self_attn.alpha", [1], "blocks.0.self_attn.alpha"),
                             ("patch_embedding.weight", [32, 32, 1, 2, 2], "patch_embedding.weight")),
    "wan_vae": Component(WEIGHTS, ("model.decoder.head.2.bias", "decoder.conv_out.bias"),
                         ("model.encoder.extra.weight", [1], "encoder.extra.weight"),
                         ("model.conv2.bias", [17], "post_quant_conv.bias"), copy=()),
    "text_encoder": Component(WEIGHTS, ("blocks.1.ffn.fc1.weight", "encoder.block.1.layer.1.DenseReluDense.wi_1"),
                              ("pos_embedding.embedding.weight", [32, 4], "pos_embedding.embedding.weight"),
                              ("norm.weight", [33], "encoder.final_layer_norm.weight")),
    "clip_image_encoder": Component(WEIGHTS, ("model.visual.transformer.1.mlp.2.bias", "encoder.layers.1.mlp.fc2.bias"),
                                    ("model.visual.proj", [2], "model.visual.proj"),
                                    ("model.visual.pre_norm.bias", [31], "pre_layrnorm.bias"), copy=()),
}


def _load(component: str, folder: Path, arch: dict | None = None,
          torch_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The component's official-layout loader (each model module owns one)."""
    if component == "vggt":
        from gen3r.models.vggt import VGGT

        return VGGT.load_official(folder, arch=arch, torch_dtype=torch_dtype)
    if component == "geo_adapter":
        from gen3r.models.geo_adapter import GeometryAdapter

        return GeometryAdapter.load_official(folder, arch=arch, torch_dtype=torch_dtype)
    if component == "transformer":
        from gen3r.models.transformer import Gen3RTransformer3DModel

        return Gen3RTransformer3DModel.load_official(folder, arch=arch, torch_dtype=torch_dtype)
    if component == "wan_vae":
        from gen3r.models.wan_vae import load_official_wan_vae

        return load_official_wan_vae(folder, arch, torch_dtype=torch_dtype)
    if component == "text_encoder":
        from gen3r.models.text_encoder import load_official_text_encoder

        return load_official_text_encoder(folder, torch_dtype=torch_dtype)
    from gen3r.models.image_encoder import load_official_image_encoder

    return load_official_image_encoder(folder, arch, torch_dtype=torch_dtype)


# ------------------------------------------------------------------------- the tiny fixture


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_fixture_loads_every_tensor_and_casts(component: str) -> None:
    spec = COMPONENTS[component]
    folder = TINY_CHECKPOINT / component
    stored = load_file(str(folder / spec.weights))
    model = spec.load(component, folder, torch.bfloat16)
    keep = getattr(model, "_keep_in_fp32_modules", None) or []  # declared by the model, as in diffusers
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert {d for n, d in dtypes.items() if not set(n.split(".")) & set(keep)} == {torch.bfloat16}
    dropped = _dropped(component, {k: list(v.shape) for k, v in stored.items()})
    assert _unique_numel(model) == sum(v.numel() for k, v in stored.items() if k not in dropped)


@pytest.mark.parametrize("problem", ["missing", "unexpected", "mismatched"])
@pytest.mark.parametrize("component", list(COMPONENTS))
def test_fixture_bad_tensor_is_one_line_naming_the_key(component: str, problem: str, tmp_path: Path) -> None:
    spec = COMPONENTS[component]
    if problem == "missing":
        official, named = spec.missing

        def edit(state: dict) -> None:
            del state[official]
    else:
        official, shape, named = getattr(spec, problem)

        def edit(state: dict) -> None:
            state[official] = torch.zeros(shape)
    folder = write_component_variant(tmp_path, TINY_CHECKPOINT / component, spec.weights, edit, copy=spec.copy)
    with pytest.raises(CheckpointError) as info:
        spec.load(component, folder)
    message = str(info.value)
    assert "\n" not in message and named in message
    assert {"missing": "missing", "unexpected": "unexpected", "mismatched": "shape"}[problem] in message


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_missing_folder_is_reported(component: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        COMPONENTS[component].load(component, tmp_path / "nowhere")


# ------------------------------------------------------------------------- full size, meta tensors

MANIFESTS = OFFICIAL_KEYS


def _manifest(component: str) -> dict[str, Any]:
    return json.loads((MANIFESTS / f"{component}.json").read_text())


def _fake_reader(keys: dict[str, list[int]]) -> Callable[..., dict[str, torch.Tensor]]:
    """A ``read_weights_dir`` stand-in returning meta tensors with the manifest's keys and shapes."""

    def read(folder: Any, names: Any = (), dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        return {k: torch.empty(shape, dtype=dtype or torch.float32, device="meta") for k, shape in keys.items()}

    return read


def _folder(tmp_path: Path, config: dict[str, Any] | None) -> Path:
    folder = tmp_path / "component"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


MODULES = {
    "vggt": "gen3r.models.vggt",
    "geo_adapter": "gen3r.models.geo_adapter",
    "transformer": "gen3r.models.transformer",
    "wan_vae": "gen3r.models.wan_vae",
    "text_encoder": "gen3r.models.text_encoder",
    "clip_image_encoder": "gen3r.models.image_encoder",
}
# Components whose folder config.json the loader reads (the others hard-code their sizes).
HAS_CONFIG = {"vggt", "geo_adapter", "transformer", "text_encoder"}


def _dropped(component: str, keys: dict[str, list[int]]) -> set[str]:
    """Official tensors that are dropped on purpose (documented in docs/models/encoders.md)."""
    if component != "clip_image_encoder":
        return set()
    return {k for k in keys if k.startswith("model.textual.") or k in ("model.log_scale", "model.visual.head")}


def _unique_numel(model: torch.nn.Module) -> int:
    """Parameters + persistent buffers, counting tied tensors once (the official files store them once)."""
    seen: dict[int, int] = {}
    for tensor in model.state_dict(keep_vars=True).values():
        seen.setdefault(id(tensor), tensor.numel())
    return sum(seen.values())


@pytest.mark.parametrize("component", list(MODULES))
def test_real_loader_accepts_full_size_official_keys(component: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(component)
    keys = manifest["keys"]
    assert len(keys) == manifest["num_tensors"]
    monkeypatch.setattr(f"{MODULES[component]}.read_weights_dir", _fake_reader(keys))
    folder = _folder(tmp_path, manifest["config"] if component in HAS_CONFIG else None)

    model = _load(component, folder)  # strict: raises CheckpointError on any key/shape problem

    dropped = _dropped(component, keys)
    expected_numel = sum(torch.Size(keys[k]).numel() for k in keys if k not in dropped)
    assert _unique_numel(model) == expected_numel
    # every loaded tensor is a manifest tensor (assigned, never a second random copy)
    assert all(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("problem", ["missing", "unexpected"])
@pytest.mark.parametrize("component", list(MODULES))
def test_real_loader_reports_a_missing_or_unexpected_key(component: str, problem: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(component)
    keys = dict(manifest["keys"])
    if problem == "missing":
        dropped = _dropped(component, keys)
        candidates = sorted(k for k in keys if k not in dropped and k.endswith("weight"))
        victim = candidates[len(candidates) // 3]
        del keys[victim]
        message = r"1 missing \["
    else:
        prefix = "model.encoder." if next(iter(keys)).startswith("model.") else "blocks.0."
        keys[prefix + "bogus_extra.weight"] = [3]
        message = r"bogus_extra\.weight"
    monkeypatch.setattr(f"{MODULES[component]}.read_weights_dir", _fake_reader(keys))
    folder = _folder(tmp_path, manifest["config"] if component in HAS_CONFIG else None)
    with pytest.raises(CheckpointError, match=message) as info:
        _load(component, folder)
    assert "\n" not in str(info.value)


def test_upstream_vggt_1b_track_head_is_dropped_at_full_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Upstream facebook/VGGT-1B files add ``track_head.*``; the full-size loader drops and reports them."""
    import logging

    manifest = _manifest("vggt")
    keys = {**manifest["keys"], "track_head.feature_extractor.norm.weight": [128],
            "track_head.tracker.fmap_norm.bias": [128]}
    monkeypatch.setattr("gen3r.models.vggt.read_weights_dir", _fake_reader(keys))
    with caplog.at_level(logging.INFO, logger="gen3r.models.vggt"):
        model = _load("vggt", _folder(tmp_path, manifest["config"]))
    assert "tracking-head" in caplog.text
    assert _unique_numel(model) == manifest["num_elements"]
