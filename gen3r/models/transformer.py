"""Gen3R joint appearance/geometry DiT: a diffusers Wan2.1 transformer with the Gen3R additions.

Gen3R generates appearance latents (Wan VAE, left half) and geometry latents (geometry adapter,
right half) jointly, concatenated along the latent **width**. The backbone is Wan2.1-Fun-1.3B
Control-Camera (image-to-video, 36 input channels). Compared with
:class:`diffusers.WanTransformer3DModel` this class adds:

* a camera adapter (``control_adapter``, official VideoX-Fun ``SimpleAdapter``): a Plücker map
  ``(B, 24, f, H, 2W)`` at pixel resolution goes through PixelUnshuffle(8), a patch-sized
  strided conv and one residual conv block, and is added to the patch embeddings of both halves;
* RoPE shared by the two halves (``shared_width_rope``): width positions are computed for the
  left half and repeated for the right half, so appearance token ``(t, h, j)`` and geometry token
  ``(t, h, w/2 + j)`` get the same rotation;
* official numerics: float64 sinusoidal time features, time embedding and modulation in float32,
  and (``fp32_residual``) the residual stream kept in float32 when the weights are bf16/fp16;
* strict loading of the official checkpoint (original Wan / VideoX-Fun key names) through an
  explicit key table (:func:`from_official_state_dict` / :func:`to_official_state_dict`).

Input convention of :meth:`Gen3RTransformer3DModel.forward` (the official DiT input):
``hidden_states = cat([noisy latent (16), condition latent (16), mask (4)], dim=1)`` with shape
``(B, 36, f, h, 2w)`` where ``f = (F - 1) / 4 + 1``, ``h = H / 8``, ``w = W / 8`` for ``F`` frames
of ``H x W`` pixels. The output is the flow-matching velocity ``(B, 16, f, h, 2w)``.
See docs/models/transformer.md for the key mapping and every numerical choice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from accelerate import init_empty_weights
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformer3DModel, WanTransformerBlock
from diffusers.utils.peft_utils import apply_lora_scale
from torch import nn

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models._loading import load_strict, read_config_json, read_weights_dir

logger = logging.getLogger(__name__)

TEXT_TOKENS = 512
"""Text context length the DiT expects (zero-padded T5 output); diffusers splits image/text at
``len - 512``, so any other length silently mis-splits: we refuse it."""

OFFICIAL_CLIP_DIM = 1280
"""Width of the CLIP ViT-H/14 features; hard-coded in the official ``MLPProj(1280, dim)``."""

OFFICIAL_WEIGHT_FILES = ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors")
"""Weight files the official loader tries, in order (then every ``*.safetensors`` = shards)."""


# --------------------------------------------------------------------------------------------
# Official <-> ours key table
# --------------------------------------------------------------------------------------------

_TOP_LEVEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("patch_embedding.", "patch_embedding."),
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("img_emb.proj.0.", "condition_embedder.image_embedder.norm1."),
    ("img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."),
    ("img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."),
    ("img_emb.proj.4.", "condition_embedder.image_embedder.norm2."),
    ("head.head.", "proj_out."),
    ("head.modulation", "scale_shift_table"),
    ("control_adapter.", "control_adapter."),
)
"""(official prefix, our prefix) outside the blocks. ``head.modulation`` is a whole key."""

_BLOCK_PREFIXES: tuple[tuple[str, str], ...] = (
    ("modulation", "scale_shift_table"),
    ("self_attn.q.", "attn1.to_q."),
    ("self_attn.k.", "attn1.to_k."),
    ("self_attn.v.", "attn1.to_v."),
    ("self_attn.o.", "attn1.to_out.0."),
    ("self_attn.norm_q.", "attn1.norm_q."),
    ("self_attn.norm_k.", "attn1.norm_k."),
    ("cross_attn.q.", "attn2.to_q."),
    ("cross_attn.k.", "attn2.to_k."),
    ("cross_attn.v.", "attn2.to_v."),
    ("cross_attn.o.", "attn2.to_out.0."),
    ("cross_attn.norm_q.", "attn2.norm_q."),
    ("cross_attn.norm_k.", "attn2.norm_k."),
    ("cross_attn.k_img.", "attn2.add_k_proj."),
    ("cross_attn.v_img.", "attn2.add_v_proj."),
    ("cross_attn.norm_k_img.", "attn2.norm_added_k."),
    # Wan's affine pre-cross-attention LayerNorm is `norm3`; diffusers calls it `norm2`.
    # Wan's norm1/norm2 and diffusers' norm1/norm3 are non-affine (no parameters).
    ("norm3.", "norm2."),
    ("ffn.0.", "ffn.net.0.proj."),
    ("ffn.2.", "ffn.net.2."),
)
"""(official suffix prefix, our suffix prefix) inside ``blocks.<i>.``."""

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _rename(key: str, top: tuple[tuple[str, str], ...], block: tuple[tuple[str, str], ...]) -> str:
    """Rename one key with the first matching (source, target) prefix; unknown keys are kept."""
    match = _BLOCK_KEY.match(key)
    if match:
        index, rest = match.groups()
        for src, dst in block:
            if rest.startswith(src):
                return f"blocks.{index}.{dst}{rest[len(src):]}"
        return key
    for src, dst in top:
        if key.startswith(src):
            return dst + key[len(src):]
    return key


def _swap(table: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((dst, src) for src, dst in table)


def from_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official (Wan / VideoX-Fun) transformer state dict to our key names.

    Keys the table does not know are passed through unchanged, so strict loading reports them
    under their original name.
    """
    return {_rename(k, _TOP_LEVEL_PREFIXES, _BLOCK_PREFIXES): v for k, v in state_dict.items()}


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename our transformer state dict to the official key names (inverse of the above)."""
    return {_rename(k, _swap(_TOP_LEVEL_PREFIXES), _swap(_BLOCK_PREFIXES)): v
            for k, v in state_dict.items()}


def config_from_official(official: Mapping[str, Any], arch: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Map an official ``transformer/config.json`` (VideoX-Fun ``WanTransformer3DModel`` args) to our config.

    ``arch`` is the ``transformer`` section of ``gen3r_arch.json``; its ``img_emb_in_dim`` gives
    the CLIP width, which the official code hard-codes to 1280 (tiny checkpoints differ).
    Raises :class:`CheckpointError` for official options diffusers' Wan blocks cannot express.
    """
    def get(name: str, default: Any = None) -> Any:
        return official.get(name, default)

    model_type = get("model_type", "t2v")
    if model_type not in ("t2v", "i2v"):
        raise CheckpointError(f"transformer config: model_type {model_type!r} is not supported; "
                              "use a Wan2.1 't2v' or 'i2v' checkpoint")
    if int(get("text_len", TEXT_TOKENS)) != TEXT_TOKENS:
        raise CheckpointError(f"transformer config: text_len {get('text_len')} != {TEXT_TOKENS}; "
                              "diffusers' Wan attention assumes 512 text tokens")
    if list(get("window_size", (-1, -1))) != [-1, -1]:
        raise CheckpointError(f"transformer config: window_size {get('window_size')} (local attention) "
                              "is not supported; only global attention [-1, -1]")
    if not get("qk_norm", True):
        raise CheckpointError("transformer config: qk_norm=false is not supported (diffusers' Wan "
                              "attention always normalises q/k); use a qk_norm=true checkpoint")
    if get("add_ref_conv", False):
        raise CheckpointError("transformer config: add_ref_conv=true (reference-image conv) is not "
                              "part of Gen3R; use the Gen3R transformer checkpoint")
    dim, heads = int(get("dim", 2048)), int(get("num_heads", 16))
    if dim % heads:
        raise CheckpointError(f"transformer config: dim {dim} is not divisible by num_heads {heads}")
    image_dim = None
    if model_type == "i2v":
        image_dim = int((arch or {}).get("img_emb_in_dim", OFFICIAL_CLIP_DIM))
    return {
        "patch_size": tuple(int(p) for p in get("patch_size", (1, 2, 2))),
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": int(get("in_dim", 16)),
        "out_channels": int(get("out_dim", 16)),
        "text_dim": int(get("text_dim", 4096)),
        "freq_dim": int(get("freq_dim", 256)),
        "ffn_dim": int(get("ffn_dim", 8192)),
        "num_layers": int(get("num_layers", 32)),
        "cross_attn_norm": bool(get("cross_attn_norm", True)),
        "qk_norm": "rms_norm_across_heads",
        "eps": float(get("eps", 1e-6)),
        "image_dim": image_dim,
        "added_kv_proj_dim": dim if model_type == "i2v" else None,
        "rope_max_seq_len": 1024,
        "pos_embed_seq_len": None,
        "camera_in_channels": int(get("in_dim_control_adapter", 24)) if get("add_control_adapter", False) else 0,
        "camera_downscale": int(get("downscale_factor_control_adapter", 8)),
        "shared_width_rope": True,
        "fp32_residual": True,
    }


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

class Float64Timesteps(nn.Module):
    """Sinusoidal timestep features computed in float64, returned as float32 (official Wan).

    ``[cos(t * f_k), sin(t * f_k)]`` with ``f_k = 10000^(-k / (d/2))``, ``k = 0..d/2-1``.
    diffusers' ``Timesteps`` computes the same in float32, which at ``t ~ 1000`` is off by ~6e-5.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        if num_channels % 2:
            raise Gen3RError(f"freq_dim must be even, got {num_channels}")
        self.num_channels = num_channels

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        position = timesteps.to(torch.float64)
        freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=position.device) / half)
        angles = torch.outer(position, freqs)
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()


class SharedWidthRotaryPosEmbed(WanRotaryPosEmbed):
    """Wan 3D RoPE whose width positions restart at 0 for the right (geometry) half.

    With ``shared_width=False`` it is the plain diffusers table (positions ``0..w-1``).
    Returns ``(cos, sin)`` of shape ``(1, f*h*w, 1, head_dim)`` in float64.
    """

    def __init__(self, attention_head_dim: int, patch_size: tuple[int, int, int], max_seq_len: int,
                 shared_width: bool) -> None:
        super().__init__(attention_head_dim, patch_size, max_seq_len)
        self.shared_width = shared_width

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.shared_width:
            # diffusers annotates WanRotaryPosEmbed.forward as one tensor; it returns (cos, sin)
            return cast(tuple[torch.Tensor, torch.Tensor], super().forward(hidden_states))
        _, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.patch_size
        ppf, pph, ppw = frames // p_t, height // p_h, width // p_w
        # Table of the left half only (RoPE only reads the shape), then tiled along width.
        cos, sin = super().forward(hidden_states[..., : (ppw // 2) * p_w])

        def tile(table: torch.Tensor) -> torch.Tensor:
            table = table.reshape(ppf, pph, ppw // 2, -1)
            return torch.cat([table, table], dim=2).reshape(1, ppf * pph * ppw, 1, -1)

        return tile(cos), tile(sin)


class CameraAdapterResidualBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with 3x3 convs (official ``ResidualBlock``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class CameraAdapter(nn.Module):
    """Plücker camera adapter (official ``SimpleAdapter``), applied frame by frame.

    ``(B, C, f, H, W)`` pixel-resolution rays -> PixelUnshuffle(downscale) -> Conv2d(C*downscale^2,
    dim, kernel=stride=patch) -> residual block -> ``(B, dim, f, H/(downscale*p_h), W/(downscale*p_w))``,
    the shape of the patch embeddings it is added to.
    """

    def __init__(self, in_channels: int, dim: int, patch_hw: tuple[int, int], downscale: int) -> None:
        super().__init__()
        self.pixel_unshuffle = nn.PixelUnshuffle(downscale)
        self.conv = nn.Conv2d(in_channels * downscale * downscale, dim, kernel_size=patch_hw, stride=patch_hw)
        self.residual_blocks = nn.Sequential(CameraAdapterResidualBlock(dim))

    def forward(self, camera: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = camera.shape
        x = camera.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
        x = self.residual_blocks(self.conv(self.pixel_unshuffle(x)))
        return x.reshape(batch, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)


class Gen3RTransformerBlock(WanTransformerBlock):
    """Wan block; with ``fp32_residual`` the residual stream stays float32 (official numerics).

    The official block adds bf16 sub-layer outputs times float32 modulation gates to the
    residual, so after the first block the stream is float32 by type promotion; sub-layer inputs
    are cast to the compute dtype (that of ``encoder_hidden_states``). diffusers' block instead
    casts the stream back to the input dtype after every sub-layer. In float32 both are identical.
    """

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, qk_norm: str | None, cross_attn_norm: bool,
                 eps: float, added_kv_proj_dim: int | None, fp32_residual: bool) -> None:
        # diffusers' WanTransformer3DModel passes its `str | None` qk_norm here too (the block does not use it)
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps,  # pyright: ignore[reportArgumentType]
                         added_kv_proj_dim)
        self.fp32_residual = fp32_residual

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, temb: torch.Tensor,
                rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if not self.fp32_residual:
            # diffusers annotates rotary_emb as one tensor; its blocks take the (cos, sin) pair of its RoPE
            return super().forward(hidden_states, encoder_hidden_states, temb,
                                   rotary_emb)  # pyright: ignore[reportArgumentType]
        compute_dtype = encoder_hidden_states.dtype
        x = hidden_states.float()
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table.float() + temb.float()).chunk(6, dim=1)

        # 1. Self-attention
        normed = (self.norm1(x) * (1 + scale_msa) + shift_msa).to(compute_dtype)
        x = x + self.attn1(normed, None, None, rotary_emb).float() * gate_msa
        # 2. Cross-attention (text + CLIP image tokens)
        normed = self.norm2(x).to(compute_dtype)
        x = x + self.attn2(normed, encoder_hidden_states, None, None).float()
        # 3. Feed-forward
        normed = (self.norm3(x) * (1 + c_scale_msa) + c_shift_msa).to(compute_dtype)
        return x + self.ffn(normed).float() * c_gate_msa


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

class Gen3RTransformer3DModel(WanTransformer3DModel):
    """Gen3R's joint appearance/geometry Wan2.1 DiT (see the module docstring).

    Defaults are the full-size Gen3R model (Wan2.1-Fun-1.3B-Control-Camera widened to 36 input
    channels). Gen3R-specific config:

    * ``camera_in_channels``: Plücker channels of the camera adapter (24 = 6 ray channels x 4
      temporally packed frames); 0 builds no adapter.
    * ``camera_downscale``: pixel-to-latent factor of the adapter's PixelUnshuffle (8).
    * ``shared_width_rope``: RoPE width positions restart at 0 for the right half (see
      docs/models/transformer.md for how this differs from the official ``h != w`` test).
    * ``fp32_residual``: keep the residual stream in float32 for bf16/fp16 weights (official).
    * ``appearance_only``: the latent holds the appearance (Wan-VAE) latent alone, no geometry half
      (the "2-stage" ablation: an RGB video DiT whose frames VGGT reconstructs afterwards); needs
      ``shared_width_rope=False``. The pipeline and the DiT trainer read it (:attr:`latent_halves`).
    """

    _no_split_modules = ["Gen3RTransformerBlock"]
    _repeated_blocks = ["Gen3RTransformerBlock"]
    # `time_proj` joins diffusers' list: the official time projection runs in float32 too.
    _keep_in_fp32_modules = [*WanTransformer3DModel._keep_in_fp32_modules, "time_proj"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 36,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = 1280,
        added_kv_proj_dim: int | None = 1536,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        camera_in_channels: int = 24,
        camera_downscale: int = 8,
        shared_width_rope: bool = True,
        fp32_residual: bool = True,
        appearance_only: bool = False,
    ) -> None:
        if len(patch_size) != 3:
            raise Gen3RError(f"patch_size must have 3 entries (t, h, w), got {patch_size}")
        if camera_in_channels < 0 or camera_downscale < 1:
            raise Gen3RError(f"camera_in_channels ({camera_in_channels}) must be >= 0 and "
                             f"camera_downscale ({camera_downscale}) >= 1")
        if appearance_only and shared_width_rope:
            raise Gen3RError("appearance_only has no geometry half to share RoPE positions with; "
                             "set shared_width_rope=False")
        # num_layers=0: the blocks are built below as Gen3RTransformerBlock (building the parent's
        # first would double init time and peak memory); the parent registered num_layers=0, so
        # the real value is registered again right after.
        super().__init__(
            patch_size=patch_size, num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim, in_channels=in_channels, out_channels=out_channels,
            text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim, num_layers=0,
            cross_attn_norm=cross_attn_norm, qk_norm=qk_norm, eps=eps, image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim, rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        self.register_to_config(num_layers=num_layers)
        inner_dim = num_attention_heads * attention_head_dim
        p_t, p_h, p_w = patch_size
        self.rope = SharedWidthRotaryPosEmbed(attention_head_dim, (p_t, p_h, p_w), rope_max_seq_len,
                                              shared_width=shared_width_rope)
        self.condition_embedder.add_module("timesteps_proj", Float64Timesteps(freq_dim))
        self.blocks = nn.ModuleList([
            Gen3RTransformerBlock(inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps,
                                  added_kv_proj_dim, fp32_residual)
            for _ in range(num_layers)
        ])
        self.control_adapter = (
            CameraAdapter(camera_in_channels, inner_dim, (p_h, p_w), camera_downscale)
            if camera_in_channels > 0 else None)

    @property
    def latent_halves(self) -> int:
        """Latents side by side along width: 2 (appearance | geometry) or 1 (``appearance_only``)."""
        return 1 if self.config.get("appearance_only", False) else 2

    # ---------------------------------------------------------------- loading

    @classmethod
    def load_official(cls, folder: str | Path, arch: Mapping[str, Any] | None = None,
                      torch_dtype: torch.dtype | None = None) -> Gen3RTransformer3DModel:
        """Load an official ``transformer/`` folder (``config.json`` + original-name weights) strictly.

        ``arch`` is the ``transformer`` section of ``gen3r_arch.json`` (``img_emb_in_dim``) or None
        for the full-size model. ``torch_dtype`` casts the weights except ``_keep_in_fp32_modules``
        (time embedding, modulation tables, norms), which stay float32 as in diffusers.
        """
        folder = Path(folder)
        official = read_config_json(folder / "config.json", "transformer")
        config = config_from_official(official, arch)
        state = from_official_state_dict(read_weights_dir(folder, OFFICIAL_WEIGHT_FILES))
        with init_empty_weights(include_buffers=False):
            model = cls(**config)
        state = {k: v.to(model._load_dtype(k, v, torch_dtype)) for k, v in state.items()}
        load_strict(model, state, f"transformer ({folder})", assign=True)
        logger.info("loaded official transformer from %s (%d tensors)", folder, len(state))
        return model.eval()

    def _load_dtype(self, key: str, tensor: torch.Tensor, torch_dtype: torch.dtype | None) -> torch.dtype:
        """dtype a loaded tensor gets: float32 for keep-in-fp32 modules, else ``torch_dtype``."""
        if torch_dtype is None or not tensor.is_floating_point():
            return tensor.dtype
        if any(name in key.split(".") for name in self._keep_in_fp32_modules):
            return torch.float32
        return torch_dtype

    # ---------------------------------------------------------------- forward

    def _check_inputs(self, hidden_states: torch.Tensor, timestep: torch.Tensor,
                      encoder_hidden_states: torch.Tensor, encoder_hidden_states_image: torch.Tensor | None,
                      camera: torch.Tensor | None) -> None:
        cfg = self.config
        if hidden_states.ndim != 5 or hidden_states.shape[1] != cfg["in_channels"]:
            raise Gen3RError(f"hidden_states must be (B, {cfg['in_channels']}, f, h, 2w) = [noisy 16 | condition "
                             f"latent 16 | mask 4], got {tuple(hidden_states.shape)}")
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = cfg["patch_size"]
        if frames % p_t or height % p_h or width % p_w:
            raise Gen3RError(f"latent grid {frames}x{height}x{width} is not divisible by the patch size "
                             f"{tuple(cfg['patch_size'])}; use H, W multiples of 16 pixels")
        if cfg["shared_width_rope"] and (width // p_w) % 2:
            raise Gen3RError(f"latent width {width} must hold an even number of tokens (appearance | "
                             "geometry halves); concatenate two equal-width latents along width")
        if timestep.ndim > 1 or (timestep.ndim == 1 and timestep.shape[0] != batch):
            raise Gen3RError(f"timestep must be a scalar or have shape ({batch},), got {tuple(timestep.shape)}")
        if (encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != batch
                or encoder_hidden_states.shape[1:] != (TEXT_TOKENS, cfg["text_dim"])):
            raise Gen3RError(f"encoder_hidden_states must be (B={batch}, {TEXT_TOKENS}, {cfg['text_dim']}), got "
                             f"{tuple(encoder_hidden_states.shape)}; zero-pad the T5 output to {TEXT_TOKENS} tokens")
        if cfg["image_dim"] is None:
            if encoder_hidden_states_image is not None:
                raise Gen3RError("encoder_hidden_states_image given but this transformer has no image "
                                 "branch (image_dim is None); drop the CLIP features")
        elif (encoder_hidden_states_image is None or encoder_hidden_states_image.ndim != 3
              or encoder_hidden_states_image.shape[0] != batch
              or encoder_hidden_states_image.shape[2] != cfg["image_dim"]):
            got = None if encoder_hidden_states_image is None else tuple(encoder_hidden_states_image.shape)
            raise Gen3RError(f"encoder_hidden_states_image must be (B={batch}, 257, {cfg['image_dim']}) CLIP "
                             f"penultimate features, got {got}")
        if camera is None:
            return
        if self.control_adapter is None:
            raise Gen3RError("camera given but this transformer has no camera adapter "
                             "(camera_in_channels=0); pass camera=None")
        expected = self.camera_shape(hidden_states.shape)
        if tuple(camera.shape) != expected:
            raise Gen3RError(f"camera must be {expected} (packed Plücker rays, both halves), "
                             f"got {tuple(camera.shape)}")

    def camera_shape(self, latent_shape: tuple[int, ...] | torch.Size) -> tuple[int, int, int, int, int]:
        """Shape of the packed Plücker input for a latent of shape ``(B, C, f, h, 2w)``."""
        batch, _, frames, height, width = latent_shape
        scale = self.config["camera_downscale"]
        return (batch, self.config["camera_in_channels"], frames, height * scale, width * scale)

    def _time_embedding(self, timestep: torch.Tensor, compute_dtype: torch.dtype
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``temb (B, D)`` and ``timestep_proj (B, 6, D)``; float32 when ``fp32_residual``."""
        embedder = self.condition_embedder
        features = embedder.timesteps_proj(timestep)
        temb = embedder.time_embedder(features.to(embedder.time_embedder.linear_1.weight.dtype))
        out_dtype = torch.float32 if self.config["fp32_residual"] else compute_dtype
        temb = temb.to(out_dtype)
        proj = embedder.time_proj(embedder.act_fn(temb).to(embedder.time_proj.weight.dtype)).to(out_dtype)
        return temb, proj.unflatten(1, (6, -1))

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the flow velocity of the joint latent.

        Args:
            hidden_states: ``(B, 36, f, h, 2w)`` = ``[noisy latent 16 | condition latent 16 | mask 4]``;
                left half of the width = appearance, right half = geometry. Its dtype is the
                compute dtype; the other inputs are cast to it.
            timestep: ``(B,)`` or scalar, flow-matching time in ``[0, 1000]``.
            encoder_hidden_states: ``(B, 512, text_dim)`` T5 features zero-padded to 512 tokens.
            encoder_hidden_states_image: ``(B, 257, image_dim)`` CLIP penultimate features (i2v).
            camera: ``(B, 24, f, 8 * h, 8 * 2w)`` packed Plücker rays at pixel resolution, both
                halves (see ``camera_shape``);
                None = all-zero rays (what the official pipeline feeds for 'free' cameras/allview).
            return_dict: return a ``Transformer2DModelOutput`` (else a 1-tuple).
            attention_kwargs: only ``scale`` for LoRA (diffusers convention).

        Returns:
            velocity ``(B, out_channels, f, h, 2w)`` in the compute dtype.
        """
        if timestep.ndim == 0:
            timestep = timestep.expand(hidden_states.shape[0])
        self._check_inputs(hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, camera)
        dtype = hidden_states.dtype
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config["patch_size"]

        # 1. Patch embedding (+ camera features) and RoPE
        rotary_emb = self.rope(hidden_states)
        x = self.patch_embedding(hidden_states)
        if self.control_adapter is not None:
            if camera is None:
                camera = hidden_states.new_zeros(self.camera_shape(hidden_states.shape))
            x = x + self.control_adapter(camera.to(dtype))
        x = x.flatten(2).transpose(1, 2).contiguous()
        if self.config["fp32_residual"]:
            x = x.float()

        # 2. Time, text and image conditioning
        temb, timestep_proj = self._time_embedding(timestep, dtype)
        context = self.condition_embedder.text_embedder(encoder_hidden_states.to(dtype))
        if encoder_hidden_states_image is not None:
            image_embedder = self.condition_embedder.image_embedder
            assert image_embedder is not None, "_check_inputs refuses image features without image_dim"
            image_context = image_embedder(encoder_hidden_states_image.to(dtype))
            context = torch.cat([image_context.to(dtype), context], dim=1)

        # 3. Transformer blocks
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                assert self._gradient_checkpointing_func is not None, "set by enable_gradient_checkpointing"
                x = self._gradient_checkpointing_func(block, x, context, timestep_proj, rotary_emb)
            else:
                x = block(x, context, timestep_proj, rotary_emb)

        # 4. Output norm, projection and unpatchify
        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).to(dtype)
        x = self.proj_out(x)
        x = x.reshape(batch, frames // p_t, height // p_h, width // p_w, p_t, p_h, p_w, -1)
        output = x.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

