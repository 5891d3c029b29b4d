"""Building blocks of :class:`gen3r.models.vggt.VGGT` (backbone, camera head, DPT heads).

Module and parameter names mirror upstream facebookresearch/vggt (and Gen3R's vendored copy) so
that official state dicts load with an identity key mapping; the numerics follow upstream exactly
(see ``docs/models/vggt.md`` for every choice). Conventions: ``B`` batch, ``S``/``F`` frames,
``P`` tokens per frame, ``C`` channels; images are ``(B, S, 3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ImageNet statistics the aggregator normalises with (DINOv2 / ResNet convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Pose encoding "absT_quaR_FoV": translation (3) + quaternion xyzw (4) + FoV h, w (2).
POSE_ENCODING_DIM = 9
# Largest element count F.interpolate is given at once (upstream works around an INT_MAX issue).
_INTERPOLATE_MAX_ELEMENTS = 1610612736


# --------------------------------------------------------------------------------------------
# Transformer primitives
# --------------------------------------------------------------------------------------------


class LayerScale(nn.Module):
    """Per-channel residual scale ``x * gamma`` (key ``gamma``)."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """``fc1 -> GELU (exact) -> fc2``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RotaryPositionEmbedding2D(nn.Module):
    """2-D RoPE: the first half of each head rotates with the row index, the second with the column.

    Each half uses the "rotate half" convention with inverse frequencies
    ``base ** (-arange(0, d, 2) / d)`` (``d`` = half the head dim); the cos/sin tables are computed
    in float32 and cast to the token dtype, as upstream does.
    """

    def __init__(self, base: float) -> None:
        super().__init__()
        self.base = float(base)

    def _tables(self, dim: int, length: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        inv_freq = 1.0 / (self.base ** (torch.arange(0, dim, 2, device=device).float() / dim))
        angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq).to(dtype)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    @staticmethod
    def _rotate_half(x: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def _apply_1d(self, x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        cos = F.embedding(positions, cos)[:, None]  # (B, 1, N, d)
        sin = F.embedding(positions, sin)[:, None]
        return x * cos + self._rotate_half(x) * sin

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x`` (B, heads, N, head_dim) by integer ``positions`` (B, N, 2) = (row, col)."""
        half_dim = x.shape[-1] // 2
        cos, sin = self._tables(half_dim, int(positions.max()) + 1, x.device, x.dtype)
        rows, cols = x.chunk(2, dim=-1)
        rows = self._apply_1d(rows, positions[..., 0], cos, sin)
        cols = self._apply_1d(cols, positions[..., 1], cos, sin)
        return torch.cat((rows, cols), dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with optional per-head LayerNorm on q/k and 2-D RoPE."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False,
                 rope: RotaryPositionEmbedding2D | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None and pos is not None:
            q, k = self.rope(q, pos), self.rope(k, pos)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1 x)); x + ls2(mlp(norm2 x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float | None,
                 norm_eps: float = 1e-5, qk_norm: bool = False,
                 rope: RotaryPositionEmbedding2D | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, rope=rope)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), pos=pos))
        return x + self.ls2(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------
# DINOv2 patch embedding (ViT with register tokens)
# --------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution, flattened to (B, h*w, C) row-major."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoPatchEmbed(nn.Module):
    """DINOv2 ViT with registers, used as VGGT's patch embedding (keys ``aggregator.patch_embed.*``).

    Returns the final-LayerNorm'ed patch tokens (B, h*w, C); the class and register tokens only
    take part in attention. The learned ``pos_embed`` covers a square ``img_size / patch_size``
    grid and is resized bicubically (optionally antialiased) to the input grid.
    ``mask_token`` is kept for checkpoint compatibility; inference never masks.
    """

    def __init__(self, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, num_register_tokens: int, init_values: float,
                 interpolate_antialias: bool, interpolate_offset: float) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        num_patches = (img_size // patch_size) ** 2
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values, norm_eps=1e-6) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, num_tokens: int, height: int, width: int, dtype: torch.dtype) -> Tensor:
        """Positional embedding (1, 1 + h*w, C) for an image of ``height x width`` pixels."""
        n_learned = self.pos_embed.shape[1] - 1
        if num_tokens - 1 == n_learned and height == width:
            return self.pos_embed
        pos = self.pos_embed.float()  # interpolation always runs in float32
        side = int(math.sqrt(n_learned))
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            scale = ((grid_h + self.interpolate_offset) / side, (grid_w + self.interpolate_offset) / side)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias)
        else:
            grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic",
                                 antialias=self.interpolate_antialias)
        grid = grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat((pos[:, :1], grid), dim=1).to(dtype)

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (N, 3, H, W), normalised -> patch tokens (N, (H/p)*(W/p), C)."""
        n, _, height, width = images.shape
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x.shape[1], height, width, x.dtype)
        x = torch.cat((x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1 + self.num_register_tokens:]


# --------------------------------------------------------------------------------------------
# Aggregator: alternating frame / global attention
# --------------------------------------------------------------------------------------------


def expand_special_tokens(tokens: Tensor, batch: int, frames: int) -> Tensor:
    """(1, 2, X, C) learned tokens -> (B*S, X, C): variant 0 for frame 0, variant 1 for the rest."""
    first = tokens[:, :1].expand(batch, 1, *tokens.shape[2:])
    rest = tokens[:, 1:].expand(batch, frames - 1, *tokens.shape[2:])
    return torch.cat((first, rest), dim=1).reshape(batch * frames, *tokens.shape[2:])


def grid_positions(batch: int, grid_h: int, grid_w: int, num_special: int, device: torch.device) -> Tensor:
    """RoPE positions (batch, num_special + h*w, 2): special tokens at (0, 0), patch (i, j) at (i+1, j+1)."""
    rows = torch.arange(grid_h, device=device)
    cols = torch.arange(grid_w, device=device)
    patch = torch.cartesian_prod(rows, cols) + 1
    special = torch.zeros(num_special, 2, dtype=patch.dtype, device=device)
    return torch.cat((special, patch), dim=0).unsqueeze(0).expand(batch, -1, -1)


class Aggregator(nn.Module):
    """VGGT's alternating-attention trunk (keys ``aggregator.*``).

    Per frame the token sequence is ``[camera, registers..., patches...]``; each of ``depth``
    steps runs one frame-attention block (tokens of one frame) then one global-attention block
    (tokens of all frames); the step's output is ``cat(frame_out, global_out)`` (2C channels).
    """

    def __init__(self, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, num_register_tokens: int, qk_norm: bool, rope_freq: float,
                 init_values: float, patch_embed_depth: int, patch_embed_num_heads: int,
                 patch_embed_mlp_ratio: float, patch_embed_init_values: float,
                 patch_embed_interpolate_antialias: bool, patch_embed_interpolate_offset: float) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.depth = depth
        self.patch_start_idx = 1 + num_register_tokens
        self.patch_embed = DinoPatchEmbed(
            img_size, patch_size, embed_dim, patch_embed_depth, patch_embed_num_heads, patch_embed_mlp_ratio,
            num_register_tokens, patch_embed_init_values, patch_embed_interpolate_antialias,
            patch_embed_interpolate_offset)
        self.rope = RotaryPositionEmbedding2D(rope_freq) if rope_freq > 0 else None
        self.frame_blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values, qk_norm=qk_norm, rope=self.rope)
            for _ in range(depth))
        self.global_blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values, qk_norm=qk_norm, rope=self.rope)
            for _ in range(depth))
        # Index 0: first (reference) frame, index 1: every other frame.
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, embed_dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, num_register_tokens, embed_dim) * 1e-6)
        self.register_buffer("_resnet_mean", torch.empty(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("_resnet_std", torch.empty(1, 1, 3, 1, 1), persistent=False)
        self.reset_normalization_buffers()

    def reset_normalization_buffers(self) -> None:
        """(Re)create the float32 ImageNet mean/std buffers on CPU (they are not stored in checkpoints)."""
        self._resnet_mean = torch.tensor(IMAGENET_MEAN, device="cpu").view(1, 1, 3, 1, 1)
        self._resnet_std = torch.tensor(IMAGENET_STD, device="cpu").view(1, 1, 3, 1, 1)

    def forward(self, images: Tensor, keep: Sequence[int] | None = None) -> list[Tensor]:
        """Run the trunk; return the outputs (B, S, P, 2C) of the steps in ``keep`` (all if None)."""
        b, s, _, height, width = images.shape
        keep_set = set(range(self.depth)) if keep is None else set(keep)
        # Normalise in the weight dtype (as upstream does once the whole model is cast).
        dtype = self.patch_embed.patch_embed.proj.weight.dtype
        images = (images.to(dtype) - self._resnet_mean.to(dtype)) / self._resnet_std.to(dtype)
        # 1. Patch tokens of every frame, then prepend camera + register tokens.
        patches = self.patch_embed(images.reshape(b * s, 3, height, width))
        tokens = torch.cat((expand_special_tokens(self.camera_token, b, s).to(patches.dtype),
                            expand_special_tokens(self.register_token, b, s).to(patches.dtype),
                            patches), dim=1)
        n, c = tokens.shape[1], tokens.shape[2]
        frame_pos = global_pos = None
        if self.rope is not None:
            frame_pos = grid_positions(b * s, height // self.patch_size, width // self.patch_size,
                                       self.patch_start_idx, images.device)
            global_pos = frame_pos.reshape(b, s * n, 2)
        # 2. Alternating attention; outputs are collected only for the kept steps.
        outputs: dict[int, Tensor] = {}
        for step in range(self.depth):
            tokens = self.frame_blocks[step](tokens.reshape(b * s, n, c), pos=frame_pos)
            frame_out = tokens.reshape(b, s, n, c)
            tokens = self.global_blocks[step](tokens.reshape(b, s * n, c), pos=global_pos)
            if step in keep_set:
                outputs[step] = torch.cat((frame_out, tokens.reshape(b, s, n, c)), dim=-1)
        order = range(self.depth) if keep is None else keep
        return [outputs[i] for i in order]


# --------------------------------------------------------------------------------------------
# Camera head
# --------------------------------------------------------------------------------------------


def activate_pose(raw: Tensor) -> Tensor:
    """Pose activations: translation linear, quaternion linear, FoV ReLU (keeps FoV >= 0)."""
    return torch.cat((raw[..., :7], F.relu(raw[..., 7:])), dim=-1)


class CameraHead(nn.Module):
    """Iterative camera regression from the camera token (keys ``camera_head.*``).

    The normalised camera token is modulated (AdaLN shift/scale/gate) by an embedding of the
    current pose estimate (a learned "empty pose" at the first iteration), passed through a
    transformer trunk that attends across frames, and a 9-d delta is accumulated.
    """

    def __init__(self, dim_in: int, trunk_depth: int, num_heads: int, mlp_ratio: float,
                 init_values: float) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(Block(dim_in, num_heads, mlp_ratio, init_values) for _ in range(trunk_depth)))
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_DIM))
        self.embed_pose = nn.Linear(POSE_ENCODING_DIM, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, dim_in // 2, POSE_ENCODING_DIM)

    def forward(self, camera_tokens: Tensor, num_iterations: int) -> list[Tensor]:
        """``camera_tokens`` (B, S, 2C) -> activated pose encodings (B, S, 9) of every iteration."""
        b, s, _ = camera_tokens.shape
        tokens = self.token_norm(camera_tokens)
        raw: Tensor | None = None
        encodings = []
        for _ in range(num_iterations):
            if raw is None:
                cond = self.embed_pose(self.empty_pose_tokens.expand(b, s, -1))
            else:
                cond = self.embed_pose(raw.detach())
            shift, scale, gate = self.poseLN_modulation(cond).chunk(3, dim=-1)
            x = gate * (self.adaln_norm(tokens) * (1 + scale) + shift) + tokens
            delta: Tensor = self.pose_branch(self.trunk_norm(self.trunk(x)))
            raw = delta if raw is None else raw + delta
            encodings.append(activate_pose(raw))
        return encodings


# --------------------------------------------------------------------------------------------
# DPT head
# --------------------------------------------------------------------------------------------


def interpolate_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize with ``align_corners=True``, split along the batch when very large."""
    elements = size[0] * size[1] * x.shape[0] * x.shape[1]
    if elements <= _INTERPOLATE_MAX_ELEMENTS:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    chunks = torch.chunk(x, elements // _INTERPOLATE_MAX_ELEMENTS + 1, dim=0)
    return torch.cat([F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in chunks], dim=0)


def uv_position_embedding(channels: int, grid_h: int, grid_w: int, aspect_ratio: float, omega0: float,
                          dtype: torch.dtype, device: torch.device) -> Tensor:
    """Sin/cos embedding (channels, h, w) of a UV grid normalised by the image diagonal.

    u spans ``+-aspect/sqrt(1+aspect^2) * (w-1)/w``, v spans ``+-1/sqrt(1+aspect^2) * (h-1)/h``
    (grid built in ``dtype``); channels = [sin(u w_k), cos(u w_k), sin(v w_k), cos(v w_k)] with
    ``w_k = omega0 ** (-k / (channels/4))`` evaluated in float64, returned as float32 values.
    """
    diag = (aspect_ratio ** 2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    u = torch.linspace(-span_x * (grid_w - 1) / grid_w, span_x * (grid_w - 1) / grid_w, grid_w,
                       dtype=dtype, device=device)
    v = torch.linspace(-span_y * (grid_h - 1) / grid_h, span_y * (grid_h - 1) / grid_h, grid_h,
                       dtype=dtype, device=device)
    uu, vv = torch.meshgrid(u, v, indexing="xy")  # (h, w) each

    def sincos(coord: Tensor, dim: int) -> Tensor:
        omega = torch.arange(dim // 2, dtype=torch.float64, device=device) / (dim / 2.0)
        angles = torch.outer(coord.reshape(-1).double(), 1.0 / omega0 ** omega)
        return torch.cat((angles.sin(), angles.cos()), dim=1).float()

    emb = torch.cat((sincos(uu, channels // 2), sincos(vv, channels // 2)), dim=-1)
    return emb.reshape(grid_h, grid_w, channels).permute(2, 0, 1)


class ResidualConvUnit(nn.Module):
    """``relu(x) + conv2(relu(conv1(relu(x))))``.

    Upstream applies an in-place ReLU to the input, so the skip connection carries ``relu(x)``,
    not ``x``; this reproduces that.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FeatureFusionBlock(nn.Module):
    """RefineNet fusion: ``out_conv(upsample(rcu2(x + rcu1(skip))))`` (no ``rcu1`` for the deepest)."""

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            size = (x.shape[-2] * 2, x.shape[-1] * 2)
        return self.out_conv(interpolate_bilinear(x, size))


class _DPTScratch(nn.Module):
    """The DPT fusion layers (official ``scratch.*`` keys); ``layer{1..4}_rn`` are set by name."""

    refinenet1: FeatureFusionBlock
    refinenet2: FeatureFusionBlock
    refinenet3: FeatureFusionBlock
    refinenet4: FeatureFusionBlock
    output_conv1: nn.Conv2d
    output_conv2: nn.Sequential


class DPTHead(nn.Module):
    """DPT dense head over 4 token layers (keys ``depth_head.*`` / ``point_head.*``).

    Gen3R variant: the 4 token tensors are taken by position (not indexed by layer number).
    Output: values (B, S, H, W, output_dim - 1) after ``activation`` and confidence (B, S, H, W)
    after ``1 + exp``.
    """

    def __init__(self, dim_in: int, patch_size: int, output_dim: int, activation: str, features: int,
                 out_channels: Sequence[int], head_features_2: int, pos_embed_ratio: float = 0.1,
                 pos_embed_omega0: float = 100.0) -> None:
        super().__init__()
        if activation not in ("exp", "inv_log"):
            raise ValueError(f"unknown DPT activation {activation!r}")
        if len(out_channels) != 4:
            raise ValueError(f"DPT head needs 4 out_channels, got {list(out_channels)}")
        self.patch_size = patch_size
        self.activation = activation
        self.pos_embed_ratio = pos_embed_ratio
        self.pos_embed_omega0 = pos_embed_omega0
        c0, c1, c2, c3 = out_channels
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, oc, kernel_size=1) for oc in out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c0, c0, kernel_size=4, stride=4),
            nn.ConvTranspose2d(c1, c1, kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(c3, c3, kernel_size=3, stride=2, padding=1),
        ])
        self.scratch = _DPTScratch()
        for i, oc in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(oc, features, kernel_size=3, padding=1, bias=False))
        self.scratch.refinenet1 = FeatureFusionBlock(features)
        self.scratch.refinenet2 = FeatureFusionBlock(features)
        self.scratch.refinenet3 = FeatureFusionBlock(features)
        self.scratch.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, head_features_2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_features_2, output_dim, kernel_size=1),
        )

    def _add_pos_embed(self, x: Tensor, aspect_ratio: float) -> Tensor:
        emb = uv_position_embedding(x.shape[1], x.shape[2], x.shape[3], aspect_ratio, self.pos_embed_omega0,
                                    x.dtype, x.device)
        return x + (emb * self.pos_embed_ratio).to(x.dtype)[None]

    def _fuse(self, features: list[Tensor]) -> Tensor:
        l1, l2, l3, l4 = (getattr(self.scratch, f"layer{i}_rn")(f) for i, f in enumerate(features, start=1))
        out = self.scratch.refinenet4(l4, size=(l3.shape[2], l3.shape[3]))
        out = self.scratch.refinenet3(out, l3, size=(l2.shape[2], l2.shape[3]))
        out = self.scratch.refinenet2(out, l2, size=(l1.shape[2], l1.shape[3]))
        out = self.scratch.refinenet1(out, l1)
        return self.scratch.output_conv1(out)

    def _activate(self, out: Tensor) -> tuple[Tensor, Tensor]:
        fmap = out.permute(0, 2, 3, 1)
        values, conf = fmap[..., :-1], fmap[..., -1]
        # "exp" or "inv_log"
        values = torch.exp(values) if self.activation == "exp" else torch.sign(values) * torch.expm1(values.abs())
        return values, 1 + conf.exp()

    def _forward_frames(self, tokens: Sequence[Tensor], image_size: tuple[int, int],
                        patch_start_idx: int) -> tuple[Tensor, Tensor]:
        height, width = image_size
        b, s = tokens[0].shape[:2]
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        aspect = width / height
        features = []
        for i, layer_tokens in enumerate(tokens):
            x = self.norm(layer_tokens[:, :, patch_start_idx:].reshape(b * s, grid_h * grid_w, -1))
            x = x.permute(0, 2, 1).reshape(b * s, -1, grid_h, grid_w)
            x = self._add_pos_embed(self.projects[i](x), aspect)
            features.append(self.resize_layers[i](x))
        out = interpolate_bilinear(self._fuse(features), (grid_h * self.patch_size, grid_w * self.patch_size))
        out = self.scratch.output_conv2(self._add_pos_embed(out, aspect))
        values, conf = self._activate(out)
        return values.reshape(b, s, *values.shape[1:]), conf.reshape(b, s, *conf.shape[1:])

    def forward(self, tokens: Sequence[Tensor], image_size: tuple[int, int], patch_start_idx: int,
                frames_chunk_size: int | None) -> tuple[Tensor, Tensor]:
        """``tokens``: 4 tensors (B, S, P, 2C); frames are processed ``frames_chunk_size`` at a time."""
        s = tokens[0].shape[1]
        if not frames_chunk_size or frames_chunk_size >= s:
            return self._forward_frames(tokens, image_size, patch_start_idx)
        values, confs = [], []
        for start in range(0, s, frames_chunk_size):
            chunk = [t[:, start:start + frames_chunk_size] for t in tokens]
            v, c = self._forward_frames(chunk, image_size, patch_start_idx)
            values.append(v)
            confs.append(c)
        return torch.cat(values, dim=1), torch.cat(confs, dim=1)
