"""Gen3R geometry adapter: a causal-conv VAE between VGGT tokens and 16-channel geometry latents.

The official adapter (``gen3r/models/geometry_adapter/geometry_adapter.py`` in JaceyHuang/Gen3R) is a
modified Wan2.1 causal video VAE. This module re-implements it with readable module names; the
explicit key table (:data:`_TOP_LEVEL`, :data:`_BLOCK_LEAVES`) converts to and from the official
``model.encoder.*`` / ``model.decoder.*`` / ``model.conv1.*`` / ``model.conv2.*`` names.

Shapes (full size, 49 frames at 560 x 560; ``E`` = VGGT embed dim 1024, ``D = 2E`` = 2048):

* input tokens ``(B, input_dim = 5D, F, h, w)`` with ``F = 4k + 1`` and the VGGT token grid
  ``h, w = H/14, W/14``. Channels are ``[L4 | L11 | L17 | L23 | camera token of L23]``, each ``D``
  wide (patch tokens of the tapped aggregator layers; the camera token broadcast to every cell).
* latent ``(B, 16, f, H/8, W/8)`` with ``f = (F - 1)/4 + 1``. The encoder's only spatial step is a
  per-frame nearest-exact resize of the token grid to the latent grid (official: fixed x1.75).
* decoded tokens ``(B, output_dim, F, h, w)``. The decoder's only spatial step is a per-frame
  nearest-exact resize of the latent grid to twice the token grid, ``ZeroPad2d((0, 1, 0, 1))`` and a
  stride-2 3x3 conv (official: fixed resize to 80 x 80, i.e. 560 x 560 only).

Latent normalisation (official constants, not stored in the checkpoint, see :data:`GEO_LATENTS_MEAN`):
the posterior mean is ``(mu - mean) * (1 / std)`` (float32 reciprocal) and the log-variance stays
raw (clamped to ``[-30, 20]`` by :class:`diffusers.models.autoencoders.vae.DiagonalGaussianDistribution`);
``decode`` de-normalises with ``z / (1 / std) + mean``. Every numerical choice is listed in
``docs/models/geo_adapter.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models._loading import cast_model, load_strict, read_config_json, read_weights_dir

logger = logging.getLogger(__name__)

__all__ = [
    "GEO_LATENTS_MEAN",
    "GEO_LATENTS_STD",
    "GeometryAdapter",
    "from_official_state_dict",
    "to_official_state_dict",
]

#: Per-channel mean of the raw adapter latent (official ``GeometryAdapter.__init__``, "for 49 frames").
GEO_LATENTS_MEAN: tuple[float, ...] = (
    0.14257538, 0.18577661, 0.14208488, 0.06298031, 0.09738383, -0.06001362, -0.04728968, -0.12326089,
    -0.04308648, -0.10522724, 0.08278389, -0.00270301, -0.09203526, 0.03170688, 0.11458898, 0.10679868,
)
#: Per-channel std of the raw adapter latent (official ``GeometryAdapter.__init__``).
GEO_LATENTS_STD: tuple[float, ...] = (
    0.56929547, 0.61451489, 0.68560797, 0.78598368, 0.51151282, 0.75570852, 0.80284864, 0.63438177,
    0.82458758, 0.59266430, 0.75781488, 0.70593017, 0.70382243, 0.57837099, 0.73155540, 0.71971470,
)

COMPONENT = "geo_adapter"
OFFICIAL_PREFIX = "model."
#: Extra tensors written by the official training checkpointer (``save_pretrained_safetensors``).
_OFFICIAL_EXTRA_KEYS = ("mean", "std")
#: Frames of causal context each cached conv keeps between chunks (official ``CACHE_T``).
_CACHE_T = 2
#: Weight file names tried in order inside a component folder (official loader's order).
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors",)

# ---------------------------------------------------------------------------------------------
# Key conversion table: our name prefix <-> official name prefix.
# ---------------------------------------------------------------------------------------------
#: Top-level modules (ours -> official). Block lists keep their indices.
_TOP_LEVEL: tuple[tuple[str, str], ...] = (
    ("encoder.token_proj.", "model.encoder.init_block.resample.1."),
    ("encoder.conv_in.", "model.encoder.conv1."),
    ("encoder.blocks.", "model.encoder.downsamples."),
    ("encoder.mid.", "model.encoder.middle."),
    ("encoder.norm_out.", "model.encoder.head.0."),
    ("encoder.conv_out.", "model.encoder.head.2."),
    ("quant_conv.", "model.conv1."),
    ("post_quant_conv.", "model.conv2."),
    ("decoder.conv_in.", "model.decoder.conv1."),
    ("decoder.mid.", "model.decoder.middle."),
    ("decoder.blocks.", "model.decoder.upsamples."),
    ("decoder.norm_out.", "model.decoder.head.0."),
    ("decoder.conv_out.", "model.decoder.head.2."),
    ("decoder.token_proj.", "model.decoder.out_block.resample.2."),
)
#: Leaves inside ``blocks.N.`` / ``mid.N.`` (ours -> official); others (shortcut, time_conv,
#: attention's norm/to_qkv/proj) keep their names.
_BLOCK_LEAVES: tuple[tuple[str, str], ...] = (
    ("norm1.", "residual.0."),
    ("conv1.", "residual.2."),
    ("norm2.", "residual.3."),
    ("conv2.", "residual.6."),
    ("spatial_conv.", "resample.0."),
)
_LISTS = ("encoder.blocks.", "encoder.mid.", "decoder.blocks.", "decoder.mid.")


def _convert_key(key: str, top: Sequence[tuple[str, str]], leaves: Sequence[tuple[str, str]],
                 lists: Sequence[str]) -> str | None:
    """Rename one key with the (source prefix, target prefix) tables; None if no rule matches."""
    for src, dst in top:
        if not key.startswith(src):
            continue
        rest = key[len(src):]
        if src in lists:
            index, _, leaf = rest.partition(".")
            for leaf_src, leaf_dst in leaves:
                if leaf.startswith(leaf_src):
                    leaf = leaf_dst + leaf[len(leaf_src):]
                    break
            rest = f"{index}.{leaf}"
        return dst + rest
    return None


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> official ``model.``-prefixed names (tensors shared, not copied).

    Raises :class:`CheckpointError` for a key the table does not know.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = _convert_key(key, _TOP_LEVEL, _BLOCK_LEAVES, _LISTS)
        if new is None:
            raise CheckpointError(f"{COMPONENT}: no official name for parameter {key!r}; "
                                  "the state dict is not a GeometryAdapter state dict")
        out[new] = value
    return out


def from_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ``model.``-prefixed names -> ours. Unknown keys are kept unchanged, so that a strict
    load lists them as unexpected."""
    top = tuple((dst, src) for src, dst in _TOP_LEVEL)
    leaves = tuple((dst, src) for src, dst in _BLOCK_LEAVES)
    lists = tuple(dst for src, dst in _TOP_LEVEL if src in _LISTS)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = _convert_key(key, top, leaves, lists)
        out[key if new is None else new] = value
    return out


# ---------------------------------------------------------------------------------------------
# Building blocks (Wan2.1 causal VAE semantics).
# ---------------------------------------------------------------------------------------------
class _FeatureCache:
    """Per-conv temporal caches for chunked (causal) encode/decode.

    Each cached layer takes the next slot in call order; :meth:`start_chunk` rewinds the pointer so
    that every chunk visits the same slots in the same order (official ``feat_cache``/``feat_idx``).
    """

    #: Marker of a decoder time-upsample that has seen only the first chunk (official ``'Rep'``).
    REPEAT = "repeat"

    def __init__(self) -> None:
        self.slots: list[Any] = []
        self.index = 0

    def start_chunk(self) -> None:
        self.index = 0

    def get(self) -> Any:
        if self.index == len(self.slots):
            self.slots.append(None)
        return self.slots[self.index]

    def put(self, value: Any) -> None:
        self.slots[self.index] = value
        self.index += 1


class CausalConv3d(nn.Conv3d):
    """3-D conv whose temporal padding (``2 * pad_t``) is all in front; spatial padding symmetric.

    ``forward(x, cache)`` prepends ``cache`` (previous frames) in place of that much zero padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1, padding: int | tuple[int, int, int] = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        pad_t, pad_h, pad_w = self.padding
        self._causal_padding = [pad_w, pad_w, pad_h, pad_h, 2 * pad_t, 0]
        self.padding = (0, 0, 0)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> torch.Tensor:
        padding = list(self._causal_padding)
        if cache is not None and padding[4] > 0:
            x = torch.cat([cache.to(x.device), x], dim=2)
            padding[4] -= cache.shape[2]
        return super().forward(F.pad(x, padding))


def _cached_conv(conv: CausalConv3d, x: torch.Tensor, cache: _FeatureCache) -> torch.Tensor:
    """Run a temporal causal conv on one chunk, using and refreshing its cache slot."""
    previous = cache.get()
    keep = x[:, :, -_CACHE_T:].clone()
    if keep.shape[2] < _CACHE_T and previous is not None:
        keep = torch.cat([previous[:, :, -1:].to(keep.device), keep], dim=2)
    out = conv(x, previous)
    cache.put(keep)
    return out


class RMSNorm(nn.Module):
    """Channel RMS norm: ``F.normalize`` over dim 1 times ``sqrt(C)`` times ``gamma`` (no bias)."""

    def __init__(self, channels: int, video: bool = True) -> None:
        super().__init__()
        shape = (channels, 1, 1, 1) if video else (channels, 1, 1)
        self.scale = channels ** 0.5
        self.gamma = nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


def _per_frame(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a 2-D op to every frame of ``(B, C, T, H, W)``."""
    b, _, t = x.shape[:3]
    y = fn(x.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (b, t)).transpose(1, 2)


def _resize_nearest_exact(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-exact resize of ``(N, C, H, W)`` computed in float32 (as the official ``Upsample``)."""
    return F.interpolate(x.float(), size=size, mode="nearest-exact").type_as(x)


class ResidualBlock(nn.Module):
    """RMS -> SiLU -> causal 3x3x3 -> RMS -> SiLU -> (dropout 0) -> causal 3x3x3, plus shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, padding=1)
        self.norm2 = RMSNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (CausalConv3d(in_channels, out_channels, 1) if in_channels != out_channels
                         else nn.Identity())

    def forward(self, x: torch.Tensor, cache: _FeatureCache) -> torch.Tensor:
        skip = self.shortcut(x)
        x = _cached_conv(self.conv1, F.silu(self.norm1(x)), cache)
        x = _cached_conv(self.conv2, F.silu(self.norm2(x)), cache)
        return x + skip


class AttentionBlock(nn.Module):
    """Single-head self-attention over the spatial positions of each frame, with residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = RMSNorm(channels, video=False)
        self.to_qkv = nn.Conv2d(channels, channels * 3, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(n, 1, c * 3, h * w).transpose(2, 3).contiguous()
        q, k, v = qkv.chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.squeeze(1).transpose(1, 2).reshape(n, c, h, w))

    def forward(self, x: torch.Tensor, cache: _FeatureCache | None = None) -> torch.Tensor:
        # ``cache`` only keeps the block interface uniform: attention has no temporal state.
        return x + _per_frame(x, self._attend)


class TimeDownsample(nn.Module):
    """Encoder resample: per-frame 3x3 conv (stride 1), then optionally a causal stride-2 time conv.

    Official ``encode_block_2d`` (``time=False``) / ``encode_block_3d`` (``time=True``). The first
    chunk only fills the cache (frame 0 passes through); later chunks prepend the cached last frame.
    """

    def __init__(self, channels: int, time: bool) -> None:
        super().__init__()
        self.spatial_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.time_conv = CausalConv3d(channels, channels, (3, 1, 1), stride=(2, 1, 1)) if time else None

    def forward(self, x: torch.Tensor, cache: _FeatureCache) -> torch.Tensor:
        x = _per_frame(x, self.spatial_conv)
        if self.time_conv is None:
            return x
        previous = cache.get()
        if previous is None:
            cache.put(x.clone())
            return x
        keep = x[:, :, -1:].clone()
        x = self.time_conv(torch.cat([previous[:, :, -1:].to(x.device), x], dim=2))
        cache.put(keep)
        return x


class TimeUpsample(nn.Module):
    """Decoder resample: optional causal time conv doubling the frames, then per-frame 3x3 conv
    halving the channels (official ``decode_block_3d`` / ``decode_block_2d``).

    The time conv is skipped on the first latent frame (official ``'Rep'`` logic), so latent frame 0
    gives one frame and every later latent frame gives two (interleaved from the 2C channels).
    """

    def __init__(self, channels: int, time: bool) -> None:
        super().__init__()
        self.spatial_conv = nn.Conv2d(channels, channels // 2, 3, padding=1)
        self.time_conv = CausalConv3d(channels, channels * 2, (3, 1, 1), padding=(1, 0, 0)) if time else None

    def _time_step(self, x: torch.Tensor, cache: _FeatureCache, time_conv: CausalConv3d) -> torch.Tensor:
        previous = cache.get()
        if previous is None:
            cache.put(_FeatureCache.REPEAT)
            return x
        after_first = previous is _FeatureCache.REPEAT  # no real frames cached yet: zero padding
        keep = x[:, :, -_CACHE_T:].clone()
        if keep.shape[2] < _CACHE_T:
            head = torch.zeros_like(keep[:, :, -1:]) if after_first else previous[:, :, -1:].to(keep.device)
            keep = torch.cat([head, keep], dim=2)
        x = time_conv(x) if after_first else time_conv(x, previous)
        cache.put(keep)
        b, c2, t, h, w = x.shape
        x = x.reshape(b, 2, c2 // 2, t, h, w)
        return torch.stack((x[:, 0], x[:, 1]), dim=3).reshape(b, c2 // 2, t * 2, h, w)

    def forward(self, x: torch.Tensor, cache: _FeatureCache) -> torch.Tensor:
        if self.time_conv is not None:
            x = self._time_step(x, cache, self.time_conv)
        return _per_frame(x, self.spatial_conv)


def _middle(channels: int) -> nn.ModuleList:
    return nn.ModuleList([ResidualBlock(channels, channels), AttentionBlock(channels),
                          ResidualBlock(channels, channels)])


class AdapterEncoder(nn.Module):
    """Tokens ``(B, input_dim, T, h, w)`` -> ``(B, 2*latent, T', h_lat, w_lat)`` for one chunk."""

    def __init__(self, input_dim: int, resample_scale: int, hidden_dim: int, latent_channels: int,
                 dim_mult: Sequence[int], num_res_blocks: int, temporal_downsample: Sequence[bool]) -> None:
        super().__init__()
        dims = [hidden_dim * m for m in [dim_mult[0], *dim_mult]]
        self.token_proj = nn.Conv2d(input_dim, input_dim // resample_scale, 3, padding=1)
        self.conv_in = CausalConv3d(input_dim // resample_scale, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for stage, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(c_in, c_out))
                c_in = c_out
            if stage != len(dim_mult) - 1:
                blocks.append(TimeDownsample(c_out, time=bool(temporal_downsample[stage])))
        self.blocks = nn.ModuleList(blocks)
        self.mid = _middle(dims[-1])
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], latent_channels * 2, 3, padding=1)

    def _from_tokens(self, frames: torch.Tensor, latent_grid: tuple[int, int]) -> torch.Tensor:
        return self.token_proj(_resize_nearest_exact(frames, latent_grid))

    def forward(self, x: torch.Tensor, latent_grid: tuple[int, int], cache: _FeatureCache) -> torch.Tensor:
        x = _per_frame(x, partial(self._from_tokens, latent_grid=latent_grid))
        x = _cached_conv(self.conv_in, x, cache)
        for layer in [*self.blocks, *self.mid]:
            x = layer(x, cache)
        return _cached_conv(self.conv_out, F.silu(self.norm_out(x)), cache)


class AdapterDecoder(nn.Module):
    """Latent ``(B, latent, 1, h_lat, w_lat)`` (one latent frame) -> tokens ``(B, output_dim, T, h, w)``."""

    def __init__(self, output_dim: int, resample_scale: int, hidden_dim: int, latent_channels: int,
                 dim_mult: Sequence[int], num_res_blocks: int, temporal_downsample: Sequence[bool]) -> None:
        super().__init__()
        dims = [hidden_dim * m for m in [dim_mult[-1], *reversed(dim_mult)]]
        temporal_upsample = list(reversed(list(temporal_downsample)))
        self.conv_in = CausalConv3d(latent_channels, dims[0], 3, padding=1)
        self.mid = _middle(dims[0])
        blocks: list[nn.Module] = []
        for stage, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            if stage > 0:
                c_in //= 2  # the previous resample halved the channels
            for _ in range(num_res_blocks + 1):
                blocks.append(ResidualBlock(c_in, c_out))
                c_in = c_out
            if stage != len(dim_mult) - 1:
                blocks.append(TimeUpsample(c_out, time=bool(temporal_upsample[stage])))
        self.blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], output_dim // resample_scale, 3, padding=1)
        self.token_proj = nn.Conv2d(output_dim // resample_scale, output_dim, 3, stride=2)

    def _to_tokens(self, frames: torch.Tensor, token_grid: tuple[int, int]) -> torch.Tensor:
        frames = _resize_nearest_exact(frames, (2 * token_grid[0], 2 * token_grid[1]))
        return self.token_proj(F.pad(frames, (0, 1, 0, 1)))

    def forward(self, x: torch.Tensor, token_grid: tuple[int, int], cache: _FeatureCache) -> torch.Tensor:
        x = _cached_conv(self.conv_in, x, cache)
        for layer in [*self.mid, *self.blocks]:
            x = layer(x, cache)
        x = _cached_conv(self.conv_out, F.silu(self.norm_out(x)), cache)
        return _per_frame(x, partial(self._to_tokens, token_grid=token_grid))


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------
class GeometryAdapter(ModelMixin, ConfigMixin):
    """Gen3R geometry adapter (VAE): VGGT tokens <-> geometry latents aligned with Wan2.1 latents.

    Args:
        latent_channels: latent channels (16; the mean/std lists must have this length).
        hidden_dim: base width; stage widths are ``hidden_dim * dim_mult``.
        input_dim: token channels in (``5 * 2E``: four tapped layers + camera token).
        output_dim: token channels out.
        resample_scale: ``input_dim / resample_scale`` channels after the token projection.
        temporal_compression_ratio: frames per latent frame (= 2 ** number of time downsamples).
        spatial_compression_ratio: image pixels per latent cell (8, as the Wan VAE).
        patch_size: image pixels per VGGT token (14). Token grid ``h = H/14``, latent grid
            ``h * patch_size / spatial_compression_ratio = H/8``.
        dim_mult: width multipliers of the encoder stages (decoder: reversed).
        num_res_blocks: residual blocks per encoder stage (decoder: one more).
        temporal_downsample: per encoder stage transition, whether time is halved.
        latents_mean, latents_std: per-channel raw-latent statistics used for normalisation.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 16, hidden_dim: int = 128, input_dim: int = 10240,
                 output_dim: int = 10240, resample_scale: int = 10, temporal_compression_ratio: int = 4,
                 spatial_compression_ratio: int = 8, patch_size: int = 14,
                 dim_mult: Sequence[int] = (4, 2, 1, 1), num_res_blocks: int = 2,
                 temporal_downsample: Sequence[bool] = (False, True, True),
                 latents_mean: Sequence[float] = GEO_LATENTS_MEAN,
                 latents_std: Sequence[float] = GEO_LATENTS_STD) -> None:
        super().__init__()
        _check_config(latent_channels, input_dim, output_dim, resample_scale, temporal_compression_ratio,
                      dim_mult, temporal_downsample, latents_mean, latents_std)
        shared: dict[str, Any] = dict(
            resample_scale=resample_scale, hidden_dim=hidden_dim, latent_channels=latent_channels,
            dim_mult=tuple(dim_mult), num_res_blocks=num_res_blocks, temporal_downsample=tuple(temporal_downsample))
        self.encoder = AdapterEncoder(input_dim, **shared)
        self.quant_conv = CausalConv3d(latent_channels * 2, latent_channels * 2, 1)
        self.post_quant_conv = CausalConv3d(latent_channels, latent_channels, 1)
        self.decoder = AdapterDecoder(output_dim, **shared)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load_official(cls, folder: str | Path, arch: Mapping[str, Any] | None = None,
                      torch_dtype: torch.dtype | None = None) -> GeometryAdapter:
        """Load an official ``geo_adapter/`` folder strictly (``config.json`` + safetensors).

        Both on-disk forms are accepted: ``model.``-prefixed keys (pipeline ``save_pretrained``) or
        unprefixed keys plus ``mean``/``std`` tensors (training checkpointer); those two tensors are
        dropped (the official code uses its hard-coded constants too). ``arch`` is the
        ``geo_adapter`` section of ``gen3r_arch.json`` (its ``config.json`` entry, or flat kwargs)
        and overrides the folder's config.
        """
        folder = Path(folder)
        config = _read_official_config(folder)
        if arch:
            given = arch.get("config.json", arch)
            overrides = {k: v for k, v in given.items() if k in _official_config_keys()}
            changed = sorted(k for k, v in overrides.items() if config.get(k, v) != v)
            if changed:
                logger.info("%s: architecture overrides config.json for %s", COMPONENT, changed)
            config.update(overrides)
        with torch.device("meta"):
            model = cls(**config)
        state = _official_weights_to_ours(read_weights_dir(folder, _WEIGHT_NAMES), folder)
        load_strict(model, state, f"{COMPONENT} ({folder})", assign=True)
        model.eval()
        return cast_model(model, torch_dtype)

    # ------------------------------------------------------------------ grids
    def latent_grid(self, token_grid: tuple[int, int]) -> tuple[int, int]:
        """VGGT token grid ``(h, w)`` -> latent grid ``(h * patch / ratio, w * patch / ratio)``."""
        return self._regrid(token_grid, "token", self.config["patch_size"], "latent",
                            self.config["spatial_compression_ratio"])

    def token_grid(self, latent_grid: tuple[int, int]) -> tuple[int, int]:
        """Latent grid ``(h_lat, w_lat)`` -> VGGT token grid ``(h_lat * ratio / patch, ...)``."""
        return self._regrid(latent_grid, "latent", self.config["spatial_compression_ratio"], "token",
                            self.config["patch_size"])

    @staticmethod
    def _regrid(grid: tuple[int, int], src: str, src_px: int, dst: str, dst_px: int) -> tuple[int, int]:
        """Grid of ``src_px``-pixel cells -> grid of ``dst_px``-pixel cells over the same image."""
        if any((n * src_px) % dst_px for n in grid):
            raise Gen3RError(f"{COMPONENT}: {src} grid {tuple(grid)} does not map to a whole {dst} "
                             f"grid ({src_px} px {src}s, {dst_px} px {dst}s); use image sides that are "
                             f"multiples of {src_px * dst_px // _gcd(src_px, dst_px)} pixels")
        return grid[0] * src_px // dst_px, grid[1] * src_px // dst_px

    # ------------------------------------------------------------------ encode / decode
    def _scales(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1/std) as ``(1, C, 1, 1, 1)``; 1/std is computed in float32, then cast (official)."""
        mean = torch.tensor(self.config["latents_mean"], dtype=torch.float32)
        inv_std = 1.0 / torch.tensor(self.config["latents_std"], dtype=torch.float32)
        shape = (1, -1, 1, 1, 1)
        return (mean.to(like.device, like.dtype).view(shape), inv_std.to(like.device, like.dtype).view(shape))

    def encode(self, tokens: torch.Tensor) -> DiagonalGaussianDistribution:
        """VGGT tokens ``(B, input_dim, F, h, w)`` (``F = 4k + 1``) -> posterior over the latent.

        The posterior (diffusers ``DiagonalGaussianDistribution``) has ``.mean``
        ``(B, 16, (F-1)/4 + 1, h*14/8, w*14/8)`` normalised as ``(mu - mean) * (1/std)``, ``.logvar``
        raw (clamped to [-30, 20]), ``.std``, ``.sample(generator)``, ``.mode()``, ``.kl(other)``.
        Frames are encoded causally in chunks of 1, 4, 4, ... with a feature cache.
        """
        self._check_input(tokens, self.config["input_dim"], "tokens", "(B, input_dim, F, h, w)")
        frames = tokens.shape[2]
        ratio = self.config["temporal_compression_ratio"]
        if (frames - 1) % ratio:
            lower = (frames - 1) // ratio * ratio + 1
            raise Gen3RError(f"{COMPONENT}: got {frames} frames; the adapter needs {ratio}k+1 frames "
                             f"(e.g. {lower} or {lower + ratio})")
        grid = self.latent_grid((tokens.shape[3], tokens.shape[4]))
        cache = _FeatureCache()
        chunks = [tokens[:, :, :1]] + [tokens[:, :, i:i + ratio] for i in range(1, frames, ratio)]
        outs = []
        for chunk in chunks:
            cache.start_chunk()
            outs.append(self.encoder(chunk, grid, cache))
        mu, logvar = self.quant_conv(torch.cat(outs, dim=2)).chunk(2, dim=1)
        mean, inv_std = self._scales(mu)
        return DiagonalGaussianDistribution(torch.cat([(mu - mean) * inv_std, logvar], dim=1))

    def decode(self, z: torch.Tensor, token_grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Normalised latent ``(B, 16, f, h_lat, w_lat)`` -> tokens ``(B, output_dim, 4(f-1)+1, h, w)``.

        ``token_grid`` defaults to the grid derived from the latent (``h_lat * 8 / 14``); pass
        ``(40, 40)`` to reproduce the official decoder's hard-coded 80 x 80 resize for any latent.
        Latent frames are decoded one at a time with a feature cache.
        """
        self._check_input(z, self.config["latent_channels"], "latent", "(B, latent_channels, f, h, w)")
        grid = self.token_grid((z.shape[3], z.shape[4])) if token_grid is None else tuple(token_grid)
        if len(grid) != 2 or min(grid) < 1:
            raise Gen3RError(f"{COMPONENT}: token_grid must be two positive ints, got {token_grid!r}")
        mean, inv_std = self._scales(z)
        x = self.post_quant_conv(z / inv_std + mean)
        cache = _FeatureCache()
        outs = []
        for i in range(x.shape[2]):
            cache.start_chunk()
            outs.append(self.decoder(x[:, :, i:i + 1], grid, cache))
        return torch.cat(outs, dim=2)

    def forward(self, tokens: torch.Tensor, sample_posterior: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Reconstruct tokens: encode, take the mean (or a sample), decode."""
        posterior = self.encode(tokens)
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, token_grid=(tokens.shape[3], tokens.shape[4]))

    @staticmethod
    def _check_input(x: torch.Tensor, channels: int, what: str, layout: str) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise Gen3RError(f"{COMPONENT}: {what} must be a 5-D tensor {layout}, got {shape}")
        if x.shape[1] != channels:
            raise Gen3RError(f"{COMPONENT}: {what} has {x.shape[1]} channels, the adapter expects "
                             f"{channels} (layout {layout}); check the adapter config or the tensor layout")
        if not torch.isfinite(x).all():
            raise Gen3RError(f"{COMPONENT}: {what} contains NaN or inf values; check the upstream stage")


# ---------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------
def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _check_config(latent_channels: int, input_dim: int, output_dim: int, resample_scale: int,
                  temporal_compression_ratio: int, dim_mult: Sequence[int],
                  temporal_downsample: Sequence[bool], latents_mean: Sequence[float],
                  latents_std: Sequence[float]) -> None:
    problems = []
    if input_dim % resample_scale or output_dim % resample_scale:
        problems.append(f"input_dim {input_dim} and output_dim {output_dim} must be divisible by "
                        f"resample_scale {resample_scale}")
    if len(temporal_downsample) != len(dim_mult) - 1:
        problems.append(f"temporal_downsample needs {len(dim_mult) - 1} entries (one per stage "
                        f"transition of dim_mult), got {len(temporal_downsample)}")
    elif temporal_compression_ratio != 2 ** sum(bool(t) for t in temporal_downsample):
        problems.append(f"temporal_compression_ratio {temporal_compression_ratio} must equal "
                        f"2 ** (number of True in temporal_downsample)")
    if len(latents_mean) != latent_channels or len(latents_std) != latent_channels:
        problems.append(f"latents_mean/latents_std need {latent_channels} values each")
    elif any(s <= 0 for s in latents_std):
        problems.append("latents_std values must be positive")
    if problems:
        raise Gen3RError(f"{COMPONENT}: invalid config: " + "; ".join(problems))


def _official_config_keys() -> tuple[str, ...]:
    """Arguments an official ``config.json`` may set (ours has the same names)."""
    return ("latent_channels", "hidden_dim", "input_dim", "output_dim", "resample_scale",
            "temporal_compression_ratio", "spatial_compression_ratio")


def _read_official_config(folder: Path) -> dict[str, Any]:
    raw = read_config_json(folder / "config.json", COMPONENT)
    known = _official_config_keys()
    ignored = sorted(k for k in raw if k not in known and not k.startswith("_"))
    if ignored:
        logger.info("%s: ignoring config entries %s (not adapter arguments)", COMPONENT, ignored)
    return {k: raw[k] for k in known if k in raw}


def _official_weights_to_ours(state: dict[str, torch.Tensor], folder: Path) -> dict[str, torch.Tensor]:
    """Normalise both official on-disk forms to the prefixed form, then rename to ours."""
    extras = [k for k in _OFFICIAL_EXTRA_KEYS if k in state]
    if extras:
        logger.info("%s: dropping %s from %s (training-checkpoint normalisation tensors; the "
                    "config's latents_mean/latents_std are used, as in the official code)",
                    COMPONENT, extras, folder)
        state = {k: v for k, v in state.items() if k not in extras}
    if not all(k.startswith(OFFICIAL_PREFIX) for k in state):
        state = {(k if k.startswith(OFFICIAL_PREFIX) else OFFICIAL_PREFIX + k): v for k, v in state.items()}
    return from_official_state_dict(state)
