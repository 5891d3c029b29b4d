"""CLIP ViT-H/14 image encoder: transformers ``CLIPVisionModel`` loaded from the official ``clip_image_encoder/``.

The official folder holds a whole open-clip XLM-RoBERTa + ViT-H/14 CLIP under ``model.``: the vision
tower ``model.visual.*``, the unused text tower ``model.textual.*`` and ``model.log_scale``. Only the
vision tower is converted (:data:`_GLOBAL_KEYS`, :data:`_LAYER_KEYS`; ``to_qkv`` is split into
``q/k/v_proj``); everything in :data:`DROPPED_PREFIXES` / :data:`DROPPED_KEYS` is dropped explicitly and
logged. The conditioning is the penultimate hidden state (all blocks but the last, no post-norm),
i.e. ``hidden_states[-2]``: (B, 257, vision_dim).

Pre-processing copies the official pipeline (``preprocess_clip_image``): uint8 truncation, torch
bicubic resize to 224 without antialias, CLIP mean/std.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models._loading import load_strict, read_weights_dir, restore_unsaved_state

logger = logging.getLogger(__name__)

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DROPPED_KEYS",
    "DROPPED_PREFIXES",
    "OFFICIAL_ARCH",
    "clip_vision_config",
    "encode_image",
    "from_official_state_dict",
    "load_official_image_encoder",
    "preprocess_clip_image",
    "to_official_state_dict",
]

COMPONENT = "clip_image_encoder"
OFFICIAL_PREFIX = "model.visual."
#: OpenAI CLIP normalisation (official ``wan_image_encoder._clip`` transforms).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

#: Official vision tower sizes (``clip_xlm_roberta_vit_h_14``); the text-tower entries are ignored.
OFFICIAL_ARCH: dict[str, Any] = {
    "embed_dim": 1024, "image_size": 224, "patch_size": 14, "vision_dim": 1280, "vision_mlp_ratio": 4,
    "vision_heads": 16, "vision_layers": 32, "vision_pool": "token", "activation": "gelu",
}
_TEXT_ARCH_KEYS = {"vocab_size", "max_text_len", "text_dim", "text_heads", "text_layers", "official", "note"}

#: Official tensors we do not load: the text tower, the contrastive temperature and the
#: vision projection head (the conditioning uses the penultimate hidden states only).
DROPPED_PREFIXES: tuple[str, ...] = ("model.textual.",)
DROPPED_KEYS: tuple[str, ...] = ("model.log_scale", "model.visual.head")

# --- key tables (official ``model.visual.*`` name -> transformers name) --------------------------
#: Tensors outside the blocks (cls/pos embeddings lose their leading singleton axes).
_GLOBAL_KEYS: dict[str, str] = {
    "patch_embedding.weight": "embeddings.patch_embedding.weight",  # conv without bias in both
    "cls_embedding": "embeddings.class_embedding",  # (1, 1, D) -> (D,)
    "pos_embedding": "embeddings.position_embedding.weight",  # (1, 257, D) -> (257, D)
    "pre_norm.weight": "pre_layrnorm.weight",
    "pre_norm.bias": "pre_layrnorm.bias",
    "post_norm.weight": "post_layernorm.weight",  # unused by the conditioning, kept for round trips
    "post_norm.bias": "post_layernorm.bias",
}
#: Per block ``i``: ``transformer.{i}.<official>`` -> ``encoder.layers.{i}.<ours>``.
_LAYER_KEYS: dict[str, str] = {
    "norm1.weight": "layer_norm1.weight",
    "norm1.bias": "layer_norm1.bias",
    "attn.proj.weight": "self_attn.out_proj.weight",
    "attn.proj.bias": "self_attn.out_proj.bias",
    "norm2.weight": "layer_norm2.weight",
    "norm2.bias": "layer_norm2.bias",
    "mlp.0.weight": "mlp.fc1.weight",
    "mlp.0.bias": "mlp.fc1.bias",
    "mlp.2.weight": "mlp.fc2.weight",
    "mlp.2.bias": "mlp.fc2.bias",
}
#: The fused ``attn.to_qkv`` (rows ordered q, k, v) is split into three projections.
_QKV = ("attn.to_qkv", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"))
_OFFICIAL_LAYER = re.compile(r"^transformer\.(\d+)\.(.+)$")
_OUR_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")


def _is_dropped(key: str) -> bool:
    return key in DROPPED_KEYS or key.startswith(DROPPED_PREFIXES)


def _squeeze_embedding(name: str, value: torch.Tensor) -> torch.Tensor:
    """Drop the leading singleton axes of the official cls (1, 1, D) and position (1, N, D) tensors."""
    if name in ("cls_embedding", "pos_embedding"):
        if value.ndim != 3 or value.shape[0] != 1 or (name == "cls_embedding" and value.shape[1] != 1):
            raise CheckpointError(f"{COMPONENT}: model.visual.{name} has shape {tuple(value.shape)}, "
                                  "expected (1, 1, D) / (1, N, D)")
        return value[0, 0] if name == "cls_embedding" else value[0]
    return value


def from_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert official CLIP weights (``model.visual.*``; text tower dropped) to ``CLIPVisionModel`` names.

    Unprefixed files (``visual.*``, ``textual.*``, ``log_scale``) are accepted too, as the official loader does.
    """
    if not any(k.startswith("model.") for k in state_dict):
        state_dict = {"model." + k: v for k, v in state_dict.items()}
    dropped = [k for k in state_dict if _is_dropped(k)]
    if dropped:
        logger.info("%s: dropping %d unused official tensors (text tower, log_scale, visual head)",
                    COMPONENT, len(dropped))
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if _is_dropped(key):
            continue
        if not key.startswith(OFFICIAL_PREFIX):
            raise CheckpointError(f"{COMPONENT}: unexpected key {key!r}; expected the official "
                                  "model.visual.* / model.textual.* CLIP layout")
        name = key[len(OFFICIAL_PREFIX):]
        if name in _GLOBAL_KEYS:
            out[_GLOBAL_KEYS[name]] = _squeeze_embedding(name, value)
            continue
        match = _OFFICIAL_LAYER.match(name)
        inner = match.group(2) if match else ""
        if match is not None and inner in _LAYER_KEYS:
            out[f"encoder.layers.{match.group(1)}.{_LAYER_KEYS[inner]}"] = value
        elif match is not None and inner.rpartition(".")[0] == _QKV[0]:
            param = inner.rpartition(".")[2]
            for ours, part in zip(_QKV[1], value.chunk(3, dim=0)):  # rows ordered q, k, v
                out[f"encoder.layers.{match.group(1)}.{ours}.{param}"] = part.clone()  # own storage
        else:
            raise CheckpointError(f"{COMPONENT}: unexpected key {key!r}; not part of the open-clip ViT tower")
    return out


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert ``CLIPVisionModel`` weights to official ``model.visual.*`` names (vision tower only)."""
    inverse_global = {v: k for k, v in _GLOBAL_KEYS.items()}
    inverse_layer = {v: k for k, v in _LAYER_KEYS.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key in inverse_global:
            name = inverse_global[key]
            out[OFFICIAL_PREFIX + name] = value.reshape(1, 1, -1) if name == "cls_embedding" else (
                value.unsqueeze(0) if name == "pos_embedding" else value)
            continue
        match = _OUR_LAYER.match(key)
        if match is None:
            raise CheckpointError(f"{COMPONENT}: key {key!r} is not part of a CLIPVisionModel")
        index, inner = match.group(1), match.group(2)
        if inner in inverse_layer:
            out[f"{OFFICIAL_PREFIX}transformer.{index}.{inverse_layer[inner]}"] = value
            continue
        module, _, param = inner.rpartition(".")
        if module not in _QKV[1]:
            raise CheckpointError(f"{COMPONENT}: key {key!r} is not part of a CLIPVisionModel")
        qkv.setdefault((index, param), {})[module] = value
    for (index, param), parts in qkv.items():
        if set(parts) != set(_QKV[1]):
            raise CheckpointError(f"{COMPONENT}: layer {index} lacks some of q/k/v_proj.{param}")
        out[f"{OFFICIAL_PREFIX}transformer.{index}.{_QKV[0]}.{param}"] = torch.cat([parts[m] for m in _QKV[1]])
    return out


# --- construction and loading --------------------------------------------------------------------
def clip_vision_config(arch: Mapping[str, Any] | None = None) -> CLIPVisionConfig:
    """``CLIPVisionConfig`` for the official ViT-H/14 tower, or the ``clip_image_encoder`` arch overrides."""
    cfg = dict(OFFICIAL_ARCH)
    if arch is not None:
        unknown = set(arch) - set(OFFICIAL_ARCH) - _TEXT_ARCH_KEYS
        if unknown:
            raise Gen3RError(f"clip_image_encoder architecture has unknown entries {sorted(unknown)}; "
                             f"allowed: {sorted(OFFICIAL_ARCH)}")
        cfg.update({k: v for k, v in arch.items() if k in OFFICIAL_ARCH})
    if cfg["vision_pool"] != "token" or cfg["activation"] != "gelu":
        raise Gen3RError("only the official CLIP tower (vision_pool 'token', activation 'gelu') is supported, "
                         f"got {cfg['vision_pool']!r} / {cfg['activation']!r}")
    return CLIPVisionConfig(
        hidden_size=cfg["vision_dim"], intermediate_size=int(cfg["vision_dim"] * cfg["vision_mlp_ratio"]),
        num_hidden_layers=cfg["vision_layers"], num_attention_heads=cfg["vision_heads"],
        image_size=cfg["image_size"], patch_size=cfg["patch_size"], projection_dim=cfg["embed_dim"],
        hidden_act="gelu", layer_norm_eps=1e-5, attention_dropout=0.0,
    )


def load_official_image_encoder(folder: str | Path, arch: Mapping[str, Any] | None = None,
                                torch_dtype: torch.dtype | None = None) -> CLIPVisionModel:
    """Load the vision tower of the official ``clip_image_encoder/`` folder strictly.

    ``arch`` is the ``clip_image_encoder`` section of ``gen3r_arch.json`` (default: ViT-H/14).
    ``torch_dtype`` defaults to float32. The text tower, ``log_scale`` and the visual head are
    dropped explicitly; every other key must match.
    """
    dtype = torch_dtype or torch.float32
    official = read_weights_dir(folder, ("diffusion_pytorch_model.safetensors",), dtype=dtype)
    state_dict = from_official_state_dict(official)
    del official
    config = clip_vision_config(arch)
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    load_strict(model, state_dict, COMPONENT, assign=True)
    restore_unsaved_state(model)  # non-persistent position ids left on the meta device
    logger.info("loaded %s from %s (%d layers, width %d, %s)", COMPONENT, folder, config.num_hidden_layers,
                config.hidden_size, dtype)
    return model.eval()


# --- pre-processing and encoding -----------------------------------------------------------------
def preprocess_clip_image(frames: torch.Tensor, image_size: int = 224) -> torch.Tensor:
    """Official CLIP input from frames (B, 3, H, W) in [0, 1] -> (B, 3, image_size, image_size), float32.

    ``x * 255`` truncated to uint8 (as the official PIL round trip), ``/ 255``, ``(t - 0.5) / 0.5``,
    torch bicubic resize (``align_corners=False``, no antialias), ``* 0.5 + 0.5``, then
    ``(x - CLIP_MEAN) / CLIP_STD``. Values outside [0, 1] are clamped first.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise Gen3RError(f"frames must be (B, 3, H, W), got shape {tuple(frames.shape)}")
    if not torch.isfinite(frames).all():
        raise Gen3RError("frames contain NaN or inf values; check the conditioning image")
    as_uint8 = (frames.float().clamp(0, 1) * 255).to(torch.uint8)
    x = (as_uint8.float() / 255 - 0.5) / 0.5
    x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False)
    x = x * 0.5 + 0.5
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def encode_image(image_encoder: CLIPVisionModel, frames: torch.Tensor) -> torch.Tensor:
    """CLIP conditioning tokens of frames (B, 3, H, W) in [0, 1]: (B, 1 + (224/14)^2, D).

    The penultimate hidden state (``hidden_states[-2]``: all blocks but the last, no post-norm),
    as the official ``use_31_block=True`` path. Runs in the encoder's dtype.
    """
    image_size = image_encoder.config.image_size
    if not isinstance(image_size, int):
        raise Gen3RError(f"the CLIP image encoder's image_size must be one int, got {image_size!r}")
    pixels = preprocess_clip_image(frames, image_size)
    param = next(image_encoder.parameters())
    out = image_encoder(pixel_values=pixels.to(param.device, param.dtype), output_hidden_states=True)
    return out.hidden_states[-2]
