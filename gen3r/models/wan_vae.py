"""Wan2.1 video VAE: diffusers ``AutoencoderKLWan`` loaded from the official Gen3R ``wan_vae/`` folder.

The official checkpoint stores the original Wan names wrapped in a ``model.`` prefix
(``model.encoder.downsamples.3.residual.2.weight``); diffusers uses its own names
(``encoder.down_blocks.3.conv1.weight``). The rename is the explicit table below
(:data:`_LEAVES`, :data:`_MIDDLE`, :data:`_RESIDUAL`, :data:`_RESAMPLE` and the block-index layout
in :func:`_official_to_ours`).

Latent conventions (copied from the official ``wan_vae.py``, see ``docs/models/encoders.md``):

* videos are ``(B, F, 3, H, W)`` in ``[0, 1]`` with ``F = 4k + 1``; latents are ``(B, 16, f, H/8, W/8)``
  with ``f = (F - 1) / 4 + 1``;
* the encoder's mean is normalised as ``(mu - mean) * (1 / std)`` (float32 reciprocal), the log-variance
  stays raw (clamped to ``[-30, 20]`` as diffusers' ``DiagonalGaussianDistribution`` does);
* the decoder input is de-normalised as ``z / (1 / std) + mean`` and the output clamped to ``[-1, 1]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models._loading import load_strict, read_weights_dir

logger = logging.getLogger(__name__)

__all__ = [
    "WAN_LATENTS_MEAN",
    "WAN_LATENTS_STD",
    "build_wan_vae",
    "decode_latents",
    "encode_video",
    "from_official_state_dict",
    "load_official_wan_vae",
    "sample_posterior",
    "to_official_state_dict",
]

#: Per-channel latent mean of the Wan2.1 VAE (official ``wan_vae.py``; equal to diffusers' default).
WAN_LATENTS_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
#: Per-channel latent std of the Wan2.1 VAE (official ``wan_vae.py``; equal to diffusers' default).
WAN_LATENTS_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)

OFFICIAL_PREFIX = "model."
COMPONENT = "wan_vae"

#: Official architecture (``_video_vae`` in the official code; its ``config.json`` is ignored there).
OFFICIAL_ARCH: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
}
_ARCH_IGNORED = {"official", "note"}

# --- key tables (official Wan name -> diffusers name) -------------------------------------------
#: Leaf modules renamed one to one (``conv1``/``conv2`` at the top are the quant convs).
_LEAVES: dict[str, str] = {
    "conv1": "quant_conv",
    "conv2": "post_quant_conv",
    "encoder.conv1": "encoder.conv_in",
    "encoder.head.0": "encoder.norm_out",
    "encoder.head.2": "encoder.conv_out",
    "decoder.conv1": "decoder.conv_in",
    "decoder.head.0": "decoder.norm_out",
    "decoder.head.2": "decoder.conv_out",
}
#: Inside a residual block: ``residual`` is ``nn.Sequential(RMS, SiLU, conv, RMS, SiLU, Dropout, conv)``.
_RESIDUAL: dict[str, str] = {
    "residual.0": "norm1",
    "residual.2": "conv1",
    "residual.3": "norm2",
    "residual.6": "conv2",
    "shortcut": "conv_shortcut",
}
#: Resample blocks (``resample.1`` = the 2D conv after the up/down sampler, ``time_conv``) keep their names.
_RESAMPLE: dict[str, str] = {"resample.1": "resample.1", "time_conv": "time_conv"}
#: The single-head spatial attention block keeps its names.
_ATTENTION: dict[str, str] = {"norm": "norm", "to_qkv": "to_qkv", "proj": "proj"}
#: Middle blocks: official container -> (diffusers container, inner table).
_MIDDLE: dict[str, tuple[str, dict[str, str]]] = {
    "encoder.middle.0": ("encoder.mid_block.resnets.0", _RESIDUAL),
    "encoder.middle.1": ("encoder.mid_block.attentions.0", _ATTENTION),
    "encoder.middle.2": ("encoder.mid_block.resnets.1", _RESIDUAL),
    "decoder.middle.0": ("decoder.mid_block.resnets.0", _RESIDUAL),
    "decoder.middle.1": ("decoder.mid_block.attentions.0", _ATTENTION),
    "decoder.middle.2": ("decoder.mid_block.resnets.1", _RESIDUAL),
}
# Encoder: ``encoder.downsamples.N`` -> ``encoder.down_blocks.N`` (same flat index; residual blocks and
# resamples interleaved). Decoder: the flat ``decoder.upsamples.N`` holds, per level, num_res_blocks + 1
# residual blocks then one resample -> ``decoder.up_blocks.<level>.resnets.<j>`` / ``.upsamplers.0``.
_OFFICIAL_BLOCK = re.compile(r"^(encoder\.downsamples|decoder\.upsamples)\.(\d+)\.(.+)$")
_OUR_DOWN = re.compile(r"^encoder\.down_blocks\.(\d+)\.(.+)$")
_OUR_UP = re.compile(r"^decoder\.up_blocks\.(\d+)\.(?:resnets\.(\d+)|upsamplers\.0)\.(.+)$")


def _invert(table: Mapping[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


def _rename_inner(inner: str, table: Mapping[str, str], key: str) -> str:
    module, _, param = inner.rpartition(".")
    if module not in table:
        raise CheckpointError(f"{COMPONENT}: unexpected key {key!r}; this is not a Wan2.1 VAE checkpoint "
                              "(or the architecture config does not match it)")
    return f"{table[module]}.{param}"


def _inner_table(inner: str) -> dict[str, str]:
    return _RESAMPLE if inner.split(".")[0] in ("resample", "time_conv") else _RESIDUAL


def _official_to_ours(key: str, num_res_blocks: int) -> str:
    """Map one official (unprefixed) key to the diffusers key."""
    module, _, param = key.rpartition(".")
    if module in _LEAVES:
        return f"{_LEAVES[module]}.{param}"
    for official, (ours, table) in _MIDDLE.items():
        if key.startswith(official + "."):
            return f"{ours}.{_rename_inner(key[len(official) + 1:], table, key)}"
    match = _OFFICIAL_BLOCK.match(key)
    if match is None:
        raise CheckpointError(f"{COMPONENT}: unexpected key {key!r}; this is not a Wan2.1 VAE checkpoint")
    where, index, inner = match.group(1), int(match.group(2)), match.group(3)
    if where == "encoder.downsamples":
        return f"encoder.down_blocks.{index}.{_rename_inner(inner, _inner_table(inner), key)}"
    level, slot = divmod(index, num_res_blocks + 2)
    if slot <= num_res_blocks:
        return f"decoder.up_blocks.{level}.resnets.{slot}.{_rename_inner(inner, _RESIDUAL, key)}"
    return f"decoder.up_blocks.{level}.upsamplers.0.{_rename_inner(inner, _RESAMPLE, key)}"


def _ours_to_official(key: str, num_res_blocks: int) -> str:
    """Map one diffusers key to the official (unprefixed) key."""
    module, _, param = key.rpartition(".")
    leaves = _invert(_LEAVES)
    if module in leaves:
        return f"{leaves[module]}.{param}"
    for official, (ours, table) in _MIDDLE.items():
        if key.startswith(ours + "."):
            return f"{official}.{_rename_inner(key[len(ours) + 1:], _invert(table), key)}"
    match = _OUR_DOWN.match(key)
    if match is not None:
        inner = match.group(2)
        table = _RESAMPLE if inner.split(".")[0] in ("resample", "time_conv") else _invert(_RESIDUAL)
        return f"encoder.downsamples.{match.group(1)}.{_rename_inner(inner, table, key)}"
    match = _OUR_UP.match(key)
    if match is None:
        raise CheckpointError(f"{COMPONENT}: key {key!r} is not part of a Wan2.1 AutoencoderKLWan")
    level, slot, inner = int(match.group(1)), match.group(2), match.group(3)
    base = level * (num_res_blocks + 2)
    if slot is not None:
        return f"decoder.upsamples.{base + int(slot)}.{_rename_inner(inner, _invert(_RESIDUAL), key)}"
    return f"decoder.upsamples.{base + num_res_blocks + 1}.{_rename_inner(inner, _RESAMPLE, key)}"


def from_official_state_dict(state_dict: Mapping[str, torch.Tensor],
                             num_res_blocks: int = 2) -> dict[str, torch.Tensor]:
    """Convert official ``wan_vae`` weights (with or without the ``model.`` prefix) to diffusers names."""
    if all(k.startswith(OFFICIAL_PREFIX) for k in state_dict):
        state_dict = {k[len(OFFICIAL_PREFIX):]: v for k, v in state_dict.items()}
    return {_official_to_ours(k, num_res_blocks): v for k, v in state_dict.items()}


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor],
                           num_res_blocks: int = 2) -> dict[str, torch.Tensor]:
    """Convert diffusers ``AutoencoderKLWan`` weights to the official layout (``model.`` prefix, Wan names)."""
    return {OFFICIAL_PREFIX + _ours_to_official(k, num_res_blocks): v for k, v in state_dict.items()}


# --- construction and loading --------------------------------------------------------------------
def _arch_config(arch: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = dict(OFFICIAL_ARCH)
    if arch is None:
        return cfg
    unknown = set(arch) - set(OFFICIAL_ARCH) - _ARCH_IGNORED
    if unknown:
        raise Gen3RError(f"wan_vae architecture has unknown entries {sorted(unknown)}; "
                         f"allowed: {sorted(OFFICIAL_ARCH)}")
    cfg.update({k: v for k, v in arch.items() if k in OFFICIAL_ARCH})
    return cfg


def build_wan_vae(arch: Mapping[str, Any] | None = None) -> AutoencoderKLWan:
    """Build an (untrained) ``AutoencoderKLWan`` with the official Wan2.1 sizes, or ``arch`` overrides.

    ``arch`` is the ``wan_vae`` section of ``gen3r_arch.json`` (keys ``base_dim``, ``z_dim``,
    ``dim_mult``, ``num_res_blocks``, ``attn_scales``, ``temperal_downsample``).
    """
    cfg = _arch_config(arch)
    if cfg["z_dim"] != len(WAN_LATENTS_MEAN):
        raise Gen3RError(f"wan_vae z_dim must be {len(WAN_LATENTS_MEAN)} (the Wan latent statistics are "
                         f"16-channel), got {cfg['z_dim']}")
    return AutoencoderKLWan(latents_mean=list(WAN_LATENTS_MEAN), latents_std=list(WAN_LATENTS_STD), **cfg)


def load_official_wan_vae(folder: str | Path, arch: Mapping[str, Any] | None = None,
                          torch_dtype: torch.dtype | None = None) -> AutoencoderKLWan:
    """Load the official ``wan_vae/`` folder strictly into a diffusers ``AutoencoderKLWan``.

    ``folder/config.json`` is ignored, as in the official code (its sizes are hard-coded); pass
    ``arch`` (the ``wan_vae`` section of ``gen3r_arch.json``) for non-official sizes.
    ``torch_dtype`` defaults to float32. Raises :class:`CheckpointError` listing missing,
    unexpected or shape-mismatched keys.
    """
    dtype = torch_dtype or torch.float32
    official = read_weights_dir(folder, ("diffusion_pytorch_model.safetensors",), dtype=dtype)
    cfg = _arch_config(arch)
    state_dict = from_official_state_dict(official, cfg["num_res_blocks"])
    with torch.device("meta"):  # no throw-away random init; the weights are assigned below
        vae = build_wan_vae(cfg)
    load_strict(vae, state_dict, COMPONENT, assign=True)
    logger.info("loaded %s from %s (%d tensors, base_dim %d, %s)", COMPONENT, folder, len(state_dict),
                cfg["base_dim"], dtype)
    return vae.eval()


# --- latent helpers ------------------------------------------------------------------------------
def _stats(vae: AutoencoderKLWan, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, 1/std)`` shaped ``(1, C, 1, 1, 1)``; reciprocal taken in float32, then cast (official)."""
    mean = torch.tensor(vae.config["latents_mean"], dtype=torch.float32)
    inv_std = 1.0 / torch.tensor(vae.config["latents_std"], dtype=torch.float32)
    shape = (1, -1, 1, 1, 1)
    return (mean.to(like.device, like.dtype).view(shape), inv_std.to(like.device, like.dtype).view(shape))


def _check_video(video: torch.Tensor) -> None:
    if video.ndim != 5 or video.shape[2] != 3:
        raise Gen3RError(f"video must be (B, F, 3, H, W), got shape {tuple(video.shape)}")
    if (video.shape[1] - 1) % 4:
        raise Gen3RError(f"the Wan VAE needs 4k+1 frames, got {video.shape[1]}; trim or pad the video")
    if video.shape[3] % 8 or video.shape[4] % 8:
        raise Gen3RError(f"video height/width must be multiples of 8, got {tuple(video.shape[3:])}")
    if not torch.isfinite(video).all():
        raise Gen3RError("video contains NaN or inf values; check the input frames")


def encode_video(vae: AutoencoderKLWan, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ``video`` (B, F, 3, H, W) in [0, 1] into the normalised posterior.

    Returns ``(mean, logvar)``, each (B, 16, (F-1)/4+1, H/8, W/8): ``mean = (mu - latents_mean) *
    (1 / latents_std)``, ``logvar`` raw (clamped to [-30, 20]). Inputs are mapped to ``[-1, 1]``
    as ``(x * 2 - 1).clamp(-1, 1)``; the computation runs in the VAE's dtype.
    """
    _check_video(video)
    param = next(vae.parameters())
    x = (video.to(param.device, param.dtype) * 2 - 1).clamp(-1, 1).permute(0, 2, 1, 3, 4)
    dist = cast(AutoencoderKLOutput, vae.encode(x)).latent_dist  # return_dict=True
    mean, inv_std = _stats(vae, dist.mean)
    return (dist.mean - mean) * inv_std, dist.logvar


def sample_posterior(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Official ``latent_dist.sample()`` on normalised latents: ``mean + exp(logvar / 2) * noise``.

    The noise is **not** divided by the latent std (the official code normalises only the mean).
    """
    if not (mean.shape == logvar.shape == noise.shape):
        raise Gen3RError(f"mean, logvar and noise must have one shape, got {tuple(mean.shape)}, "
                         f"{tuple(logvar.shape)}, {tuple(noise.shape)}")
    return mean + torch.exp(0.5 * logvar) * noise.to(mean.device, mean.dtype)


def decode_latents(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    """Decode normalised latents (B, 16, f, h, w) into a video (B, 4(f-1)+1, 3, 8h, 8w) in [0, 1].

    ``z / (1 / latents_std) + latents_mean`` -> decoder -> clamp [-1, 1] -> ``/ 2 + 0.5`` -> clamp [0, 1].
    """
    if latents.ndim != 5 or latents.shape[1] != vae.config["z_dim"]:
        raise Gen3RError(f"latents must be (B, {vae.config['z_dim']}, f, h, w), got {tuple(latents.shape)}")
    param = next(vae.parameters())
    z = latents.to(param.device, param.dtype)
    mean, inv_std = _stats(vae, z)
    decoded = cast(DecoderOutput, vae.decode(z / inv_std + mean)).sample.clamp(-1, 1)  # return_dict=True
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)
