"""VGGT (Visual Geometry Grounded Transformer) as used by Gen3R, key-compatible with upstream.

:class:`VGGT` reproduces facebookresearch/vggt (VGGT-1B: DINOv2-reg ViT-L/14 patch embedding,
24 alternating frame/global attention steps, camera head, depth and point DPT heads; no track
head) with every size exposed in the config, plus the Gen3R conventions: heads consume only the
4 tapped aggregator layers (by position), and the geometry adapter exchanges tokens with VGGT
through :func:`tokens_to_adapter_input` / :func:`adapter_output_to_tokens`.

Conventions: images ``(B, F, 3, H, W)`` in ``[0, 1]`` with H, W multiples of the patch size (14);
tokens ``(B, F, 5 + h*w, 2E)`` with ``h, w = H/14, W/14`` (token 0 camera, 1..4 registers, then
patches row-major); pose encodings ``(B, F, 9)`` = ``[t (3), quaternion xyzw (4), fov_h, fov_w]``
describing OpenCV world-to-camera extrinsics (world = first camera's frame, VGGT's unit-free
scene scale) and FoV in radians (decode with ``gen3r.cameras.pose_encoding_to_extri_intri``);
depth is the z distance along the camera's optical axis and world points are in the first
camera's frame, both in VGGT's scene units.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from gen3r.errors import Gen3RError
from gen3r.models._loading import load_strict, read_config_json, read_weights_dir
from gen3r.models.vggt_layers import Aggregator, CameraHead, DPTHead

logger = logging.getLogger(__name__)

COMPONENT = "vggt"
OFFICIAL_WEIGHT_FILES = ("model.safetensors", "model.pt")  # Gen3R/hub-mixin file, upstream VGGT-1B file
# Official key prefix -> our key prefix (the module tree mirrors upstream, so this is identity).
OFFICIAL_TO_OURS_PREFIXES: dict[str, str] = {
    "aggregator.": "aggregator.",
    "camera_head.": "camera_head.",
    "depth_head.": "depth_head.",
    "point_head.": "point_head.",
}
# Official keys that we drop on purpose: the tracking head (upstream VGGT-1B only; Gen3R has none).
DROPPED_OFFICIAL_PREFIXES: tuple[str, ...] = ("track_head.",)
# Official config.json fields (huggingface_hub PyTorchModelHubMixin of upstream VGGT).
_OFFICIAL_CONFIG_FIELDS = ("img_size", "patch_size", "embed_dim")


def _map_prefix(key: str, table: Mapping[str, str]) -> str:
    for src, dst in table.items():
        if key.startswith(src):
            return dst + key[len(src):]
    return key  # unknown keys pass through so the strict check reports them by name


def from_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official (upstream / Gen3R) VGGT keys -> ours: prefix table, ``track_head.*`` dropped (logged)."""
    dropped = [k for k in state_dict if k.startswith(DROPPED_OFFICIAL_PREFIXES)]
    if dropped:
        logger.info("vggt: dropping %d tracking-head tensors (%s...): Gen3R does not use the track head",
                    len(dropped), sorted(dropped)[0])
    return {_map_prefix(k, OFFICIAL_TO_OURS_PREFIXES): v for k, v in state_dict.items()
            if not k.startswith(DROPPED_OFFICIAL_PREFIXES)}


def to_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our keys -> official Gen3R ``vggt/model.safetensors`` keys (inverse of the prefix table)."""
    inverse = {dst: src for src, dst in OFFICIAL_TO_OURS_PREFIXES.items()}
    return {_map_prefix(k, inverse): v for k, v in state_dict.items()}


def _check_images(images: Tensor, patch_size: int) -> None:
    if images.ndim != 5 or images.shape[2] != 3:
        raise Gen3RError(f"VGGT expects images of shape (B, F, 3, H, W), got {tuple(images.shape)}; "
                         "add the batch/frame axes")
    height, width = images.shape[-2:]
    if height % patch_size or width % patch_size:
        raise Gen3RError(f"VGGT image size {height}x{width} is not a multiple of the patch size {patch_size}; "
                         "resize or crop the frames")
    if not torch.isfinite(images).all():
        raise Gen3RError("VGGT input images contain NaN/Inf; check the decoded frames")


class VGGT(ModelMixin, ConfigMixin):
    """VGGT-1B geometry transformer (official full size by default).

    Args:
        img_size: Side of the square grid the DINOv2 ``pos_embed`` was learned for (pixels).
        patch_size: Patch side in pixels (also the DPT upsampling factor).
        embed_dim: Token width E of the patch embedding and aggregator (tokens are 2E wide).
        depth: Number of (frame, global) attention steps.
        num_heads, mlp_ratio: Aggregator attention heads and MLP ratio.
        num_register_tokens: Register tokens per frame (also DINOv2 registers); special tokens = 1 + this.
        qk_norm: LayerNorm on q and k per head in the aggregator.
        rope_freq: 2-D RoPE base frequency (<= 0 disables RoPE).
        init_values: LayerScale init of aggregator and camera-trunk blocks.
        patch_embed_*: DINOv2 depth/heads/MLP ratio/LayerScale init, pos-embed interpolation mode.
        camera_trunk_depth, camera_num_heads, camera_mlp_ratio: Camera-head trunk.
        camera_iterations: Refinement iterations of the camera head.
        dpt_features, dpt_out_channels, dpt_head_features_2: DPT head widths.
        intermediate_layer_idx: Aggregator steps fed to the DPT heads (and the geometry adapter).
        frames_chunk_size: Frames per DPT-head chunk (memory bound; no effect on values).
    """

    #: Transformer blocks: the units FSDP2 shards (and accelerate never splits).
    _no_split_modules = ["Block"]

    @property
    def num_special_tokens(self) -> int:
        """Tokens before the patch tokens of each frame: the camera token and the register tokens."""
        return 1 + int(self.config["num_register_tokens"])

    @register_to_config
    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        qk_norm: bool = True,
        rope_freq: float = 100.0,
        init_values: float = 0.01,
        patch_embed_depth: int = 24,
        patch_embed_num_heads: int = 16,
        patch_embed_mlp_ratio: float = 4.0,
        patch_embed_init_values: float = 1.0,
        patch_embed_interpolate_antialias: bool = True,
        patch_embed_interpolate_offset: float = 0.0,
        camera_trunk_depth: int = 4,
        camera_num_heads: int = 16,
        camera_mlp_ratio: float = 4.0,
        camera_iterations: int = 4,
        dpt_features: int = 256,
        dpt_out_channels: Sequence[int] = (256, 512, 1024, 1024),
        dpt_head_features_2: int = 32,
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        frames_chunk_size: int = 8,
    ) -> None:
        super().__init__()
        if any(not 0 <= i < depth for i in intermediate_layer_idx) or len(intermediate_layer_idx) != 4:
            raise Gen3RError(f"intermediate_layer_idx {list(intermediate_layer_idx)} must be 4 indices "
                             f"in [0, {depth}); fix the VGGT config")
        self.tapped_layers = tuple(int(i) for i in intermediate_layer_idx)
        # 1. Aggregator (DINOv2 patch embedding + alternating attention).
        self.aggregator = Aggregator(
            img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, num_register_tokens, qk_norm,
            rope_freq, init_values, patch_embed_depth, patch_embed_num_heads, patch_embed_mlp_ratio,
            patch_embed_init_values, patch_embed_interpolate_antialias, patch_embed_interpolate_offset)
        # 2. Heads on 2E-wide tokens.
        dim = 2 * embed_dim
        self.camera_head = CameraHead(dim, camera_trunk_depth, camera_num_heads, camera_mlp_ratio, init_values)
        dpt: dict[str, Any] = dict(dim_in=dim, patch_size=patch_size, features=dpt_features,
                                   out_channels=tuple(dpt_out_channels), head_features_2=dpt_head_features_2)
        self.point_head = DPTHead(output_dim=4, activation="inv_log", **dpt)
        self.depth_head = DPTHead(output_dim=2, activation="exp", **dpt)

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token (1 camera + registers before it)."""
        return self.aggregator.patch_start_idx

    # ---------------------------------------------------------------- official checkpoints

    @classmethod
    def load_official(cls, folder: str | Path, arch: Mapping[str, Any] | None = None,
                      torch_dtype: torch.dtype | None = None) -> VGGT:
        """Load an official Gen3R ``vggt/`` folder or upstream VGGT-1B files, strictly.

        ``folder``: a folder with ``config.json`` (img_size, patch_size, embed_dim; optional: the
        VGGT-1B defaults apply without it) and ``model.safetensors`` or upstream's ``model.pt``
        (read with ``weights_only=True``), or the path of such a weight file itself.
        ``arch`` is the ``"vggt"`` section of ``gen3r_arch.json`` for sizes the official config
        cannot express (None = official full size). Upstream ``track_head.*`` keys are dropped
        and reported. Raises :class:`CheckpointError` listing missing/unexpected/mismatched keys.
        """
        folder = Path(folder)
        names: tuple[str, ...] = OFFICIAL_WEIGHT_FILES
        if folder.is_file():
            folder, names = folder.parent, (folder.name,)
        config = config_from_official(folder, arch)
        dtype = torch_dtype or torch.float32
        state_dict = from_official_state_dict(read_weights_dir(folder, names))
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
        with torch.device("meta"):
            model = cls(**config)
        load_strict(model, state_dict, COMPONENT, assign=True)
        model.aggregator.reset_normalization_buffers()
        return model.eval()

    # ---------------------------------------------------------------- forward pieces

    def aggregate(self, images: Tensor, all_layers: bool = False) -> tuple[list[Tensor], int]:
        """Aggregator tokens of ``images`` (B, F, 3, H, W) in [0, 1].

        Returns the tapped layers (``config.intermediate_layer_idx``, 4 tensors (B, F, 5+P, 2E))
        or, with ``all_layers=True``, all ``depth`` outputs; plus ``patch_start_idx``.
        """
        _check_images(images, self.config["patch_size"])
        keep = None if all_layers else self.tapped_layers
        return self.aggregator(images, keep=keep), self.patch_start_idx

    def predict_cameras(self, tokens: Sequence[Tensor]) -> list[Tensor]:
        """Pose encodings (B, F, 9) of every refinement iteration (last = final), from ``tokens[-1][:, :, 0]``."""
        last = tokens[-1]
        return self.camera_head(last[:, :, 0].to(self.dtype), self.config["camera_iterations"])

    def _dense(self, head: DPTHead, tokens: Sequence[Tensor], image_size: tuple[int, int],
               patch_start_idx: int, frames_chunk_size: int | None) -> tuple[Tensor, Tensor]:
        if len(tokens) != len(self.tapped_layers):
            raise Gen3RError(f"DPT heads take the {len(self.tapped_layers)} tapped layers "
                             f"{list(self.tapped_layers)}, got {len(tokens)} token tensors; "
                             "use aggregate(images) without all_layers")
        height, width = image_size
        p = self.config["patch_size"]
        if height % p or width % p:
            raise Gen3RError(f"image_size {height}x{width} is not a multiple of the patch size {p}")
        expected = patch_start_idx + (height // p) * (width // p)
        if any(t.shape[2] != expected for t in tokens):
            raise Gen3RError(f"tokens have {tokens[0].shape[2]} entries per frame but image_size "
                             f"{height}x{width} needs {expected}; pass the size the tokens were made at")
        tokens = [t.to(self.dtype) for t in tokens]
        chunk = self.config["frames_chunk_size"] if frames_chunk_size is None else frames_chunk_size
        return head(tokens, (height, width), patch_start_idx, chunk)

    def predict_depth(self, tokens: Sequence[Tensor], image_size: tuple[int, int], patch_start_idx: int = 5,
                      frames_chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Depth (B, F, H, W, 1) (z along the optical axis, scene units) and confidence (B, F, H, W) >= 1.

        ``tokens``: the 4 tapped layers (B, F, special + h*w, 2E); ``image_size``: (H, W) in pixels
        the tokens were made at; ``frames_chunk_size``: frames per head chunk (None = config).
        """
        return self._dense(self.depth_head, tokens, image_size, patch_start_idx, frames_chunk_size)

    def predict_points(self, tokens: Sequence[Tensor], image_size: tuple[int, int], patch_start_idx: int = 5,
                       frames_chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
        """World points (B, F, H, W, 3) in the first camera's frame and confidence (B, F, H, W) >= 1.

        Arguments as :meth:`predict_depth`.
        """
        return self._dense(self.point_head, tokens, image_size, patch_start_idx, frames_chunk_size)

    def forward(self, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Full prediction like upstream ``VGGT.forward`` (without ``images``/tracks).

        Returns ``pose_enc`` (B, F, 9), ``pose_enc_list`` (per iteration), ``depth`` (B, F, H, W, 1),
        ``depth_conf`` (B, F, H, W), ``world_points`` (B, F, H, W, 3), ``world_points_conf``.
        """
        tokens, start = self.aggregate(images)
        size = (images.shape[-2], images.shape[-1])
        pose_enc_list = self.predict_cameras(tokens)
        depth, depth_conf = self.predict_depth(tokens, size, start)
        points, points_conf = self.predict_points(tokens, size, start)
        return {"pose_enc": pose_enc_list[-1], "pose_enc_list": pose_enc_list, "depth": depth,
                "depth_conf": depth_conf, "world_points": points, "world_points_conf": points_conf}


def config_from_official(folder: str | Path, arch: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our VGGT config from an official ``config.json`` plus the optional ``gen3r_arch.json`` section."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        logger.info("no %s: using the VGGT-1B sizes unless the architecture says otherwise", path)
        if arch is None:
            return {}
        config = {k: v for k, v in arch.get("config.json", {}).items() if k in _OFFICIAL_CONFIG_FIELDS}
        config.update(_config_from_arch(arch, config))
        return config
    official = read_config_json(path, COMPONENT)
    config: dict[str, Any] = {k: official[k] for k in _OFFICIAL_CONFIG_FIELDS if k in official}
    if arch is not None:
        config.update(_config_from_arch(arch, config))
    return config


def _require(section: Mapping[str, Any], key: str, allowed: Any, where: str) -> None:
    if key in section and section[key] != allowed:
        raise Gen3RError(f"gen3r_arch.json vggt.{where}.{key}={section[key]!r} is not supported "
                         f"(only {allowed!r}); use an architecture this implementation can express")


def _config_from_arch(arch: Mapping[str, Any], official: Mapping[str, Any]) -> dict[str, Any]:
    """Translate the ``"vggt"`` section of ``gen3r_arch.json`` into constructor arguments."""
    for key, value in arch.get("config.json", {}).items():
        if key in official and official[key] != value:
            raise Gen3RError(f"gen3r_arch.json vggt config.json.{key}={value!r} disagrees with the folder's "
                             f"config.json ({official[key]!r}); use the matching architecture file")
    agg = arch.get("aggregator", {})
    dino = arch.get("patch_embed_dinov2", {})
    cam = arch.get("camera_head", {})
    dpt = arch.get("dpt_heads", {})
    _require(agg, "aa_order", ["frame", "global"], "aggregator")
    _require(agg, "aa_block_size", 1, "aggregator")
    _require(dino, "block_chunks", 0, "patch_embed_dinov2")
    embed_dim = official.get("embed_dim", 1024)
    if "embed_dim" in dino and dino["embed_dim"] != embed_dim:
        raise Gen3RError(f"gen3r_arch.json vggt.patch_embed_dinov2.embed_dim={dino['embed_dim']} differs from "
                         f"embed_dim {embed_dim}; VGGT needs equal widths")
    for name, section in (("camera_head", cam), ("dpt_heads", dpt)):
        if "dim_in" in section and section["dim_in"] != 2 * embed_dim:
            raise Gen3RError(f"gen3r_arch.json vggt.{name}.dim_in={section['dim_in']} must be 2*embed_dim "
                             f"= {2 * embed_dim}; use the matching architecture file")
    for key in ("img_size", "patch_size"):
        if key in dino and key in official and dino[key] != official[key]:
            raise Gen3RError(f"gen3r_arch.json vggt.patch_embed_dinov2.{key}={dino[key]} differs from "
                             f"config.json ({official[key]}); use the matching architecture file")
    pairs = [
        (agg, "depth", "depth"), (agg, "num_heads", "num_heads"), (agg, "mlp_ratio", "mlp_ratio"),
        (agg, "num_register_tokens", "num_register_tokens"), (agg, "qk_norm", "qk_norm"),
        (agg, "rope_freq", "rope_freq"), (agg, "init_values", "init_values"),
        (dino, "depth", "patch_embed_depth"), (dino, "num_heads", "patch_embed_num_heads"),
        (dino, "mlp_ratio", "patch_embed_mlp_ratio"), (dino, "init_values", "patch_embed_init_values"),
        (dino, "interpolate_antialias", "patch_embed_interpolate_antialias"),
        (dino, "interpolate_offset", "patch_embed_interpolate_offset"),
        (cam, "trunk_depth", "camera_trunk_depth"), (cam, "num_heads", "camera_num_heads"),
        (cam, "mlp_ratio", "camera_mlp_ratio"),
        (dpt, "features", "dpt_features"), (dpt, "out_channels", "dpt_out_channels"),
        (dpt, "head_features_2", "dpt_head_features_2"), (dpt, "intermediate_layer_idx", "intermediate_layer_idx"),
    ]
    config = {ours: section[key] for section, key, ours in pairs if key in section}
    if "num_register_tokens" in dino and dino["num_register_tokens"] != config.get("num_register_tokens", 4):
        raise Gen3RError("gen3r_arch.json vggt: DINOv2 and aggregator register counts differ; not supported")
    return config


# -------------------------------------------------------------------- adapter token layout


def tokens_to_adapter_input(tokens: Sequence[Tensor], patch_start_idx: int,
                            grid_size: tuple[int, int]) -> Tensor:
    """Tapped VGGT tokens -> geometry-adapter input (B, 5*2E, F, h, w).

    Channel order ``[L_a | L_b | L_c | L_d | cam]``: patch tokens of the 4 tapped layers (e.g.
    4, 11, 17, 23) on the h x w grid, then the camera token of the last tapped layer broadcast
    to every grid position. Register tokens and other camera tokens are discarded.
    """
    if len(tokens) != 4:
        raise Gen3RError(f"the adapter input needs the 4 tapped VGGT layers, got {len(tokens)}")
    b, f, n, c = tokens[0].shape
    h, w = grid_size
    if n != patch_start_idx + h * w:
        raise Gen3RError(f"tokens have {n} entries per frame, grid {h}x{w} with {patch_start_idx} special "
                         "tokens needs " + str(patch_start_idx + h * w))
    parts = [t[:, :, patch_start_idx:].reshape(b, f, h, w, c) for t in tokens]
    parts.append(tokens[-1][:, :, :1].reshape(b, f, 1, 1, c).expand(b, f, h, w, c))
    return torch.cat(parts, dim=-1).permute(0, 4, 1, 2, 3)


def adapter_output_to_tokens(x: Tensor, num_special_tokens: int = 5) -> list[Tensor]:
    """Geometry-adapter output (B, 5*2E, F, h, w) -> 4 token tensors (B, F, special + h*w, 2E).

    Slices 1-4 become the patch tokens of the 4 layers; the spatial mean of slice 5 (camera)
    fills every special-token slot (camera and registers) of every layer, as the official
    ``convert_to_token_list`` does.
    """
    if x.ndim != 5 or x.shape[1] % 5:
        raise Gen3RError(f"adapter output must be (B, 5*2E, F, h, w), got {tuple(x.shape)}")
    b, c5, f, h, w = x.shape
    c = c5 // 5
    grid = x.permute(0, 2, 3, 4, 1).reshape(b, f, h * w, c5)
    special = grid[..., 4 * c:].mean(dim=2, keepdim=True).expand(b, f, num_special_tokens, c)
    return [torch.cat((special, grid[..., i * c:(i + 1) * c]), dim=2) for i in range(4)]
