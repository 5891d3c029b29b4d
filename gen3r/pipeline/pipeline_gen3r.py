"""Gen3RPipeline: joint generation of an RGB video and its 3D geometry.

Flow of one call (spec §7.2; numbered as in ``__call__``):
 1. inputs: condition frames (B, Fc, 3, H, W) in [0, 1] -> task 1view / 2view / allview;
 2. cameras: preset (intrinsics + scene scale from VGGT on the condition frames), Cameras, file
    or none -> poses relative to frame 0 -> Plücker rays (B, F, 6, H, W) -> packed (B, 24, f, H, 2W);
 3. text: UMT5 on prompt and negative prompt, trimmed, zero-padded to 512 tokens;
 4. latents: (B, 16, f, H/8, 2W/8) noise, appearance left / geometry right;
 5. condition: Wan-VAE posterior *sample* of the zero-padded control video (left half), zeros
    (right half), plus 4 temporal mask channels -> (B, 20, f, H/8, 2W/8);
 6. CLIP context of condition frame 0;
 7. flow-matching Euler loop with classifier-free guidance, batch order [uncond, cond];
 8. decode: Wan VAE -> RGB; geometry adapter -> VGGT tokens -> camera/depth/point heads;
    depth unprojected with the generated cameras.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from diffusers.hooks.group_offloading import apply_group_offloading
from diffusers.pipelines.pipeline_utils import DiffusionPipeline

from gen3r.atomic import atomic_dir
from gen3r.cameras import (
    TRAJECTORY_PRESETS,
    Cameras,
    load_cameras,
    make_trajectory,
    pack_plucker_for_dit,
    pose_encoding_to_extri_intri,
)
from gen3r.defaults import DEFAULT_NUM_FRAMES, DEFAULT_SIZE
from gen3r.errors import Gen3RError
from gen3r.models.image_encoder import encode_image
from gen3r.models.text_encoder import encode_prompt, pad_prompt_embeds
from gen3r.models.vggt import adapter_output_to_tokens, tokens_to_adapter_input
from gen3r.models.wan_vae import decode_latents, encode_video
from gen3r.pipeline.conditioning import TASKS, condition_from_posterior, condition_indices
from gen3r.pipeline.loading import (
    MINI_MODEL,
    detect_layout,
    load_gen3r_components,
    load_official_components,
    read_call_defaults,
    resolve_checkpoint,
    save_gen3r_components,
)
from gen3r.pipeline.output import Gen3ROutput
from gen3r.pipeline.parallel import from_main
from gen3r.pipeline.preprocess import as_frames, check_size, count_frames
from gen3r.pipeline.tensors import module_dtype, randn
from gen3r.pipeline.vggt_geometry import geometry_from_tokens, reconstruct, run_heads

logger = logging.getLogger(__name__)

#: What ``__call__`` returns: torch tensors, numpy arrays, or the final latent only (nothing decoded).
OUTPUT_TYPES = ("pt", "np", "latent")
#: Sampling defaults of the official checkpoint (spec §7); a checkpoint may declare its own
#: (``model_index.json``, see :func:`gen3r.pipeline.loading.read_call_defaults`).
OFFICIAL_CALL_DEFAULTS: dict[str, Any] = {"num_frames": DEFAULT_NUM_FRAMES, "height": DEFAULT_SIZE,
                                          "width": DEFAULT_SIZE,
                                          "num_inference_steps": 50, "guidance_scale": 5.0}


class Gen3RPipeline(DiffusionPipeline):
    """Gen3R: 1 image, 2 images or a video -> RGB video + depth, cameras and point cloud.

    Components (named like the official checkpoint folders): ``tokenizer`` (UMT5 tokenizer),
    ``text_encoder`` (transformers UMT5EncoderModel), ``clip_image_encoder`` (transformers
    CLIPVisionModel), ``transformer`` (:class:`gen3r.models.transformer.Gen3RTransformer3DModel`),
    ``wan_vae`` (diffusers AutoencoderKLWan), ``geo_adapter``
    (:class:`gen3r.models.geo_adapter.GeometryAdapter`), ``vggt`` (:class:`gen3r.models.vggt.VGGT`),
    ``scheduler`` (FlowMatchEulerDiscreteScheduler).

    Example::

        pipe = Gen3RPipeline.from_pretrained("checkpoints/Gen3R", torch_dtype=torch.bfloat16).to("cuda")
        out = pipe(["room.png"], cameras="zoom_in", prompt="a cosy living room")
        out.rgb.shape  # (1, 49, 560, 560, 3)
    """

    model_cpu_offload_seq = "text_encoder->clip_image_encoder->vggt->transformer->geo_adapter->wan_vae"

    def __init__(self, tokenizer, text_encoder, clip_image_encoder, transformer, wan_vae, geo_adapter,
                 vggt, scheduler):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder,
                              clip_image_encoder=clip_image_encoder, transformer=transformer,
                              wan_vae=wan_vae, geo_adapter=geo_adapter, vggt=vggt, scheduler=scheduler)
        self.text_encoder_device: torch.device | None = None
        #: Defaults of ``num_frames``, ``height``, ``width``, ``num_inference_steps``, ``guidance_scale``.
        self.call_defaults: dict[str, Any] = dict(OFFICIAL_CALL_DEFAULTS)
        #: The folder the pipeline was loaded from (None when built from components).
        self.checkpoint_path: str | None = None
        #: "official" or "gen3r" (our layout) for a loaded checkpoint, None when built from components.
        self.checkpoint_layout: str | None = None
        #: This process's rank info when the transformer runs context-parallel
        #: (:func:`gen3r.pipeline.parallel.enable_context_parallel`), else None.
        self.context_parallel = None

    @property
    def latent_halves(self) -> int:
        """2: the transformer generates [appearance | geometry] latents side by side (Gen3R); 1: an
        appearance-only transformer (the "2-stage" ablation), whose geometry VGGT reconstructs
        from the decoded frames (:meth:`reconstruct_geometry`)."""
        return getattr(self.transformer, "latent_halves", 2)

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(cls, path: str | Path, torch_dtype: torch.dtype | None = None,
                        architecture: str | Path | dict | None = None, **unknown: Any) -> Gen3RPipeline:
        """Load a checkpoint in the official layout (auto-detected) or ours: a local folder,
        ``"gen3r-mini"`` (the embedded mini model) or a Hugging Face Hub id such as
        ``"JaceyH919/Gen3R"`` (huggingface_hub's snapshot download into its cache; offline, the cache
        only). :attr:`checkpoint_path` records the name as given for the last two.

        ``architecture``: for official-layout checkpoints whose sizes the official config files
        cannot express (tiny test models): a dict or JSON file like the fixture's
        ``tiny_arch.json``; a ``gen3r_arch.json`` inside the folder is used when present.
        Loading is strict: any missing/unexpected/mismatched key raises CheckpointError.
        """
        if unknown:
            raise Gen3RError(f"from_pretrained got unknown argument(s) {', '.join(sorted(unknown))}; it takes the "
                             "path, torch_dtype and architecture (move the pipeline with .to(device), offload with "
                             ".enable_offload)")
        name = str(path)
        path = resolve_checkpoint(path)
        if name == MINI_MODEL and torch_dtype is None:
            torch_dtype = torch.float32  # stored in float16 to keep the package small
        layout = detect_layout(path)
        if layout == "official":
            components = load_official_components(path, architecture, torch_dtype)
        else:
            components = load_gen3r_components(path, torch_dtype)
        pipe = cls(**components)
        pipe.checkpoint_path = str(path) if Path(name) == path else name  # "gen3r-mini" / a Hub id as given
        pipe.checkpoint_layout = layout
        pipe.call_defaults.update(read_call_defaults(path))
        return pipe

    def save_converted(self, out: str | Path, overwrite: bool = False) -> None:
        """Write all components in our layout (config + safetensors per component, index), atomically.

        Tensors keep their current dtypes: load with ``from_pretrained(torch_dtype=...)`` first to
        convert (float32 modules such as the DiT time embedding stay float32).
        """
        defaults = {k: v for k, v in self.call_defaults.items() if OFFICIAL_CALL_DEFAULTS.get(k) != v}
        with atomic_dir(out, overwrite=overwrite) as tmp:
            save_gen3r_components(self.components, tmp, call_defaults=defaults)

    # ------------------------------------------------------------------ memory options
    def keep_text_encoder_on_cpu(self, enabled: bool = True) -> None:
        """Run UMT5 on the CPU (saves ~11 GB of accelerator memory in bf16 at full size)."""
        self.text_encoder_device = torch.device("cpu") if enabled else None
        if enabled:
            self.text_encoder.to("cpu")

    def enable_offload(self, onload_device: str | torch.device, offload_type: str = "block_level",
                       num_blocks_per_group: int = 1) -> None:
        """diffusers group offloading for the big modules (weights live on CPU, run on the device)."""
        kwargs: dict[str, Any] = {"onload_device": torch.device(onload_device),
                                  "offload_device": torch.device("cpu"), "offload_type": offload_type}
        if offload_type == "block_level":
            kwargs["num_blocks_per_group"] = num_blocks_per_group
        for name in ("transformer", "text_encoder", "clip_image_encoder", "vggt", "geo_adapter", "wan_vae"):
            module = getattr(self, name)
            apply_group_offloading(module, **kwargs)
        self._offload_device = torch.device(onload_device)

    def enable_vae_tiling(self, **tile_sizes: int) -> None:
        """Tiled Wan-VAE encode/decode (lower memory; not bit-identical to untiled).

        ``tile_sizes`` are diffusers' ``tile_sample_min_height/width`` and
        ``tile_sample_stride_height/width`` in pixels (defaults 256 / 192).
        """
        self.wan_vae.enable_tiling(**tile_sizes)

    @property
    def _exec_device(self) -> torch.device:
        return getattr(self, "_offload_device", None) or self._execution_device

    # ------------------------------------------------------------------ building blocks
    def encode_prompt(self, prompts: Sequence[str], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """UMT5 embeddings (B, 512, D), trimmed to the true lengths then zero-padded (spec §6)."""
        run_device = self.text_encoder_device or device
        embeds = encode_prompt(self.tokenizer, self.text_encoder, list(prompts), device=run_device)
        return pad_prompt_embeds(embeds, 512).to(device=device, dtype=dtype)

    def encode_clip(self, frame0: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """CLIP context (B, 257, D) of condition frame 0 (B, 3, H, W) in [0, 1]."""
        return encode_image(self.clip_image_encoder, frame0).to(dtype)

    @torch.no_grad()
    def estimate_camera_setup(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """VGGT on condition frames (B, Fc, 3, H, W): intrinsics of frame 0 (B, 3, 3) px and one
        scene scale per batch element.

        scene_scale = 0.8 x median of all predicted depths of that element's condition frames
        (torch.median, i.e. the lower middle value), in VGGT's normalised units (spec §5.4).
        """
        height, width = frames.shape[-2:]
        vggt_dtype = module_dtype(self.vggt)
        tokens, start = self.vggt.aggregate(frames.to(vggt_dtype))
        heads = run_heads(self.vggt, tokens, start, (height, width), point_head=False)
        _, intrinsics = pose_encoding_to_extri_intri(heads.poses[-1].float(), (height, width))
        scene_scales = [0.8 * torch.median(d.float()).item() for d in heads.depth]
        return intrinsics[:, 0], scene_scales

    def _warn_if_cpu_is_too_slow(self, device: torch.device, num_frames: int, height: int, width: int,
                                 steps: int) -> None:
        """Say so before a CPU run of a big transformer that will take hours (the full-size model at
        its defaults: 49 x 560 x 560, 50 steps), and what to do instead."""
        if device.type != "cpu":
            return
        params = sum(p.numel() for p in self.transformer.parameters())
        halves = getattr(self.transformer, "latent_halves", 2)
        tokens = ((num_frames - 1) // 4 + 1) * (height // 16) * (halves * width // 16)
        if params * tokens * steps * 2 > 1e15:  # ~2 flops per parameter and token, twice with CFG: > ~30 min
            logger.warning("running a %.1fB-parameter transformer on the CPU for %d frames of %dx%d and %d steps: "
                           "expect hours. Move the pipeline to a GPU (pipe.to('cuda')), or lower --frames / size "
                           "/ --steps, or try the embedded mini model (--checkpoint gen3r-mini)", params / 1e9,
                           num_frames, height, width, steps)

    def resolve_cameras(self, cameras, task: str, frames: torch.Tensor, num_frames: int,
                        height: int, width: int, camera_params: Mapping[str, float] | None = None,
                        ) -> tuple[torch.Tensor | None, dict]:
        """Plücker maps (B, F, 6, H, W) for the DiT on the device of ``frames``, or None (all-zero
        input) for free/allview.

        ``camera_params``: ``angle`` / ``distance`` / ``radius`` of a trajectory preset (see
        :func:`gen3r.cameras.make_trajectory`); an error for anything but a preset.
        """
        batch = frames.shape[0]
        params = dict(camera_params or {})
        if params and not (isinstance(cameras, str) and cameras in TRAJECTORY_PRESETS):
            raise Gen3RError(f"camera_params ({', '.join(params)}) shape a trajectory preset, but cameras is "
                             f"{cameras!r}; pass a preset name (see `gen3r cameras list`) or drop them")
        info: dict[str, Any] = {"cameras": "free" if cameras is None else None}
        if task == "allview" or cameras is None or (isinstance(cameras, str) and cameras == "free"):
            info["cameras"] = "free" if task != "allview" else "ignored (allview)"
            return None, info
        if isinstance(cameras, str) and cameras in TRAJECTORY_PRESETS:
            intrinsics, scales = self.estimate_camera_setup(frames)
            per_batch = [make_trajectory(cameras, num_frames, intrinsics[b].float().cpu(), scene_scale=scales[b],
                                         image_size=(height, width), **params) for b in range(batch)]
            info.update(cameras=cameras, scene_scale=scales[0] if batch == 1 else scales)
            if params:
                info["camera_params"] = params
        else:
            if isinstance(cameras, (str, Path)):
                if not Path(cameras).exists():
                    raise Gen3RError(f"unknown camera preset or missing camera file {cameras!r}; use one of "
                                     f"{', '.join(TRAJECTORY_PRESETS)} or a camera file path")
                info["cameras"] = str(cameras)
                cameras = load_cameras(cameras, image_size=(height, width))
            if not isinstance(cameras, Cameras):
                raise Gen3RError(f"cameras must be None, a preset name, a Cameras or a file path, "
                                 f"got {type(cameras).__name__}")
            if len(cameras) != num_frames:
                raise Gen3RError(f"the camera path has {len(cameras)} frames but num_frames is {num_frames}; "
                                 "give one camera per generated frame")
            if tuple(cameras.image_size) != (height, width):
                cameras = cameras.resize_and_center_crop(tuple(cameras.image_size), (height, width))
            info["cameras"] = info["cameras"] or "user"
            per_batch = [cameras] * batch
        # the rays are built where the frames are (the execution device), not on the CPU
        plucker = torch.stack([c.to(frames.device).relative_to_first().plucker(height, width) for c in per_batch])
        return plucker.float(), info

    def prepare_condition(self, frames: torch.Tensor, task: str, num_frames: int,
                          generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
        """DiT condition ``y`` (B, 20, f, H/8, halves * W/8): [VAE sample | zeros] + 4 mask channels
        (no zeros half for an appearance-only transformer, see :attr:`latent_halves`)."""
        mean, logvar = self.encode_condition_video(frames, task, num_frames)
        return condition_from_posterior(mean, logvar, task, num_frames, generator, self.latent_halves)

    def encode_condition_video(self, frames: torch.Tensor, task: str,
                               num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Wan-VAE posterior (mean, logvar), each (B, 16, f, H/8, W/8), of the control video: the
        condition frames (B, Fc, 3, H, W) at their positions of ``task``, zeros elsewhere."""
        batch, _, _, height, width = frames.shape
        control = torch.zeros(batch, num_frames, 3, height, width, dtype=frames.dtype, device=frames.device)
        control[:, condition_indices(task, num_frames)] = frames
        return encode_video(self.wan_vae, control.to(module_dtype(self.wan_vae)))

    @torch.no_grad()
    def decode_geometry(self, geometry_latents, height: int | None = None,
                        width: int | None = None) -> dict[str, Any]:
        """Geometry latents (B, 16, f, H/8, W/8) -> cameras, depth and points via adapter + VGGT heads.

        ``geometry_latents`` may also be the posterior :meth:`encode_geometry` returns (its mean is
        decoded): ``decode_geometry(encode_geometry(frames))`` is the "VAE only" reconstruction.
        ``height``/``width`` default to 8x the latent grid (the size the latents were made for).

        Returns a dict of tensors: ``extrinsics`` (B, F, 3, 4) OpenCV w2c, ``intrinsics`` (B, F, 3, 3)
        px, ``depth``/``depth_conf`` (B, F, H, W), ``point_map`` (B, F, H, W, 3) / ``point_conf``,
        ``world_points`` (B, F, H, W, 3) float64 (CPU) and ``point_mask`` (B, F, H, W) bool (CPU),
        all in the first generated camera's frame (VGGT normalised units).
        """
        if not isinstance(geometry_latents, torch.Tensor) and isinstance(getattr(geometry_latents, "mean", None),
                                                                         torch.Tensor):
            geometry_latents = geometry_latents.mean
        if not isinstance(geometry_latents, torch.Tensor) or geometry_latents.ndim != 5:
            raise Gen3RError("decode_geometry takes geometry latents (B, 16, f, H/8, W/8) or the posterior of "
                             f"encode_geometry, got {type(geometry_latents).__name__}")
        height = height or 8 * geometry_latents.shape[-2]
        width = width or 8 * geometry_latents.shape[-1]
        adapter_dtype = module_dtype(self.geo_adapter)
        tokens = self.geo_adapter.decode(geometry_latents.to(adapter_dtype))
        special = self.vggt.num_special_tokens
        token_list = adapter_output_to_tokens(tokens.to(module_dtype(self.vggt)), num_special_tokens=special)
        return self.geometry_from_tokens(token_list, special, (height, width))

    @torch.no_grad()
    def reconstruct_geometry(self, frames: torch.Tensor) -> dict[str, Any]:
        """VGGT alone on frames (B, F, 3, H, W) in [0, 1]: the dict of :meth:`decode_geometry`, in the
        first frame's camera frame (VGGT normalised units)."""
        return reconstruct(self.vggt, frames.to(self._exec_device))

    def geometry_from_tokens(self, token_list, patch_start: int, size: tuple[int, int]) -> dict[str, Any]:
        """VGGT heads on aggregated tokens (:func:`gen3r.pipeline.vggt_geometry.geometry_from_tokens`)."""
        return geometry_from_tokens(self.vggt, token_list, patch_start, size)

    @torch.no_grad()
    def encode_geometry(self, frames: torch.Tensor):
        """VGGT tokens of frames (B, F, 3, H, W) in [0, 1] (F = 4k+1) -> adapter posterior.

        Returns the posterior object of :meth:`GeometryAdapter.encode` (``.mean`` normalised,
        ``.logvar``); ``decode_geometry(posterior)`` is the "VAE only" reconstruction.
        """
        height, width = frames.shape[-2:]
        check_size(frames.shape[1], height, width)
        vggt_dtype = module_dtype(self.vggt)
        tokens, start = self.vggt.aggregate(frames.to(self._exec_device, vggt_dtype))
        x = tokens_to_adapter_input(tokens, start, (height // 14, width // 14))
        adapter_dtype = module_dtype(self.geo_adapter)
        return self.geo_adapter.encode(x.to(adapter_dtype))

    # ------------------------------------------------------------------ main call
    @staticmethod
    def check_inputs(num_frames: int, height: int, width: int, num_inference_steps: int, guidance_scale: float,
                     task: str | None = None, num_condition_frames: int | None = None,
                     output_type: str = "pt", prompt: str | Sequence[str] | None = None,
                     negative_prompt: str | Sequence[str] | None = None, batch_size: int | None = None) -> str | None:
        """Every argument check of :meth:`__call__`; it runs first there, before any model or image is
        touched, and the CLI calls it before loading a model. Returns the task (inferred from
        ``num_condition_frames`` when None). Gen3RError names the problem and the fix."""
        check_size(num_frames, height, width)
        for name, texts in (("prompts", prompt), ("negative prompts", negative_prompt)):
            if batch_size is not None and texts is not None and not isinstance(texts, str) \
                    and len(texts) != batch_size:
                raise Gen3RError(f"got {len(texts)} {name} for a batch of {batch_size}; pass one string or one "
                                 "per batch element")
        if isinstance(guidance_scale, bool) or not np.isfinite(guidance_scale) or guidance_scale <= 0:
            raise Gen3RError(f"guidance_scale must be a positive number, got {guidance_scale}")
        if num_inference_steps < 1:
            raise Gen3RError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if output_type not in OUTPUT_TYPES:
            raise Gen3RError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if num_condition_frames is not None:
            task = task or ("1view" if num_condition_frames == 1 else "2view" if num_condition_frames == 2
                            else "allview")
        if task is not None and task not in TASKS:
            raise Gen3RError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        if task is not None and num_condition_frames is not None:
            expected = {"1view": 1, "2view": 2, "allview": num_frames}[task]
            if num_condition_frames != expected:
                raise Gen3RError(f"task {task} needs {expected} condition image(s), got {num_condition_frames}; "
                                 + ("pass the first and the last frame" if task == "2view" else
                                    f"pass exactly {num_frames} video frames or change --frames"))
        return task

    @torch.no_grad()
    def __call__(self, images, task: str | None = None, cameras=None, prompt: str | Sequence[str] = "",
                 negative_prompt: str | Sequence[str] = "bad detailed", num_frames: int | None = None,
                 height: int | None = None, width: int | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None,
                 generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, camera_params: Mapping[str, float] | None = None,
                 callback_on_step_end: Callable[[Gen3RPipeline, int, torch.Tensor, dict], dict | None] | None = None,
                 output_type: str = "pt") -> Gen3ROutput | None:
        """Generate an RGB video and its geometry.

        Args:
            images: condition frames, tensor (B, Fc, 3, H, W) / (Fc, 3, H, W) in [0, 1], or a list of
                paths / PIL images; other sizes are resized (short side, bilinear + antialias) and
                centre-cropped like the official code.
            task: "1view" | "2view" | "allview"; inferred from Fc when None (1, 2, otherwise allview).
            cameras: None / "free" (no camera control), a preset name (see
                :data:`gen3r.cameras.TRAJECTORY_PRESETS`), a :class:`gen3r.cameras.Cameras` or a camera
                file path (any supported format). Ignored for allview (as in the official code).
            camera_params: a preset's ``angle`` (degrees), ``distance`` or ``radius`` (scene units,
                default from the estimated scene scale); see :func:`gen3r.cameras.make_trajectory`.
            prompt, negative_prompt: text (one or one per batch element).
            num_frames: F = 4k+1. height, width: multiples of 112. These, ``num_inference_steps`` and
                ``guidance_scale`` default to :attr:`call_defaults` (the checkpoint's own: 49 x 560 x
                560, 50 steps, CFG 5 for the official model; the mini model's native size).
            generator: CPU torch.Generator (or one per batch element); draws are [initial noise if
                ``latents`` is None, then the condition VAE posterior noise].
            latents: initial joint latent (B, 16, (F-1)/4+1, H/8, 2W/8), appearance left (width W/8
                for an appearance-only transformer, :attr:`latent_halves`).
            callback_on_step_end: called as ``fn(pipe, step, t, {"latents": latents})``; may return
                a dict with a replacement ``latents``.
            output_type: ``"pt"`` (torch tensors), ``"np"`` (numpy arrays) or ``"latent"`` (the final
                latent only, nothing decoded: the other fields are None).

        Returns a :class:`Gen3ROutput`; None on context-parallel ranks other than 0.
        """
        d = self.call_defaults
        num_frames = cast(int, d["num_frames"]) if num_frames is None else num_frames
        height = cast(int, d["height"]) if height is None else height
        width = cast(int, d["width"]) if width is None else width
        num_inference_steps = (cast(int, d["num_inference_steps"]) if num_inference_steps is None
                               else num_inference_steps)
        guidance_scale = cast(float, d["guidance_scale"]) if guidance_scale is None else guidance_scale
        batch, num_cond = count_frames(images)
        task = self.check_inputs(num_frames, height, width, num_inference_steps, guidance_scale, task, num_cond,
                                 output_type, prompt, negative_prompt, batch)
        assert task is not None, "check_inputs infers the task when given the number of condition frames"
        device = self._exec_device
        dit_dtype = module_dtype(self.transformer)
        self._warn_if_cpu_is_too_slow(device, num_frames, height, width, num_inference_steps)

        # 1. inputs
        frames = as_frames(images, height, width).to(device)

        # 2. cameras -> packed Plücker rays (encoders on rank 0 only under context parallelism)
        ranks = self.context_parallel
        plucker, cam_info = from_main(ranks, lambda: self.resolve_cameras(cameras, task, frames, num_frames, height,
                                                                         width, camera_params))
        camera_input = self.pack_camera_input(plucker, batch, num_frames, height, width, device, dit_dtype)

        # 3. text
        prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
        negatives = [negative_prompt] * batch if isinstance(negative_prompt, str) else list(negative_prompt)
        do_cfg = guidance_scale > 1.0

        def text_context() -> torch.Tensor:
            context = self.encode_prompt(prompts, device, dit_dtype)
            if do_cfg:
                context = torch.cat([self.encode_prompt(negatives, device, dit_dtype), context])
            return context

        context = from_main(ranks, text_context)

        # 4. latents
        f, lh, lw = (num_frames - 1) // 4 + 1, height // 8, width // 8
        shape = (batch, 16, f, lh, self.latent_halves * lw)
        if latents is None:
            latents = from_main(ranks, lambda: randn(shape, generator))
        elif tuple(latents.shape) != shape:
            raise Gen3RError(f"latents must have shape {shape} for F={num_frames}, H={height}, W={width}, "
                             f"got {tuple(latents.shape)}")
        elif not torch.isfinite(latents).all():
            raise Gen3RError("latents contain NaN or inf; pass finite initial noise (or none)")
        latents = latents.to(device=device, dtype=torch.float32)

        # 5. condition latents and masks
        y = from_main(ranks, lambda: self.prepare_condition(frames, task, num_frames, generator)).to(device)

        # 6. CLIP context of frame 0
        clip_context = from_main(ranks, lambda: self.encode_clip(frames[:, 0], dit_dtype)).to(device)

        # 7. denoising loop
        self.scheduler.set_timesteps(num_inference_steps, device=device, mu=1)
        timesteps = self.scheduler.timesteps
        repeat = 2 if do_cfg else 1
        y_in = torch.cat([y] * repeat).to(dit_dtype)
        clip_in = torch.cat([clip_context] * repeat)
        cam_in = torch.cat([camera_input] * repeat) if camera_input is not None else None
        # torch.compiler.disable (unannotated) hides diffusers' progress_bar(iterable, total) signature
        with self.progress_bar(total=len(timesteps)) as bar:  # pyright: ignore[reportCallIssue]
            for i, t in enumerate(timesteps):
                x = torch.cat([latents] * repeat).to(dit_dtype)
                t_in = t.expand(x.shape[0]).to(torch.float32)
                velocity = self.transformer(hidden_states=torch.cat([x, y_in], dim=1), timestep=t_in,
                                            encoder_hidden_states=context, encoder_hidden_states_image=clip_in,
                                            camera=cam_in, return_dict=False)[0].float()
                if do_cfg:
                    uncond, cond = velocity.chunk(2)
                    velocity = uncond + guidance_scale * (cond - uncond)
                latents = cast(torch.Tensor, self.scheduler.step(velocity, t, latents, return_dict=False)[0])
                if callback_on_step_end is not None:
                    result = callback_on_step_end(self, i, t, {"latents": latents})
                    if result and "latents" in result:
                        latents = cast(torch.Tensor, result["latents"])
                bar.update()

        # 8. decode appearance and geometry (rank 0 only under context parallelism)
        if ranks is not None and not ranks.is_main:
            return None
        info = {"task": task, "num_frames": num_frames, "height": height, "width": width,
                "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, **cam_info}
        if output_type == "latent":
            return Gen3ROutput(latents=latents.cpu(), info=info)
        appearance, geometry = latents.chunk(2, dim=-1) if self.latent_halves == 2 else (latents, None)
        vae_dtype = module_dtype(self.wan_vae)
        rgb = decode_latents(self.wan_vae, appearance.to(vae_dtype)).float()  # (B, F, 3, H, W)
        if geometry is not None:
            geo = self.decode_geometry(geometry, height, width)
        else:  # 2-stage: VGGT on the generated frames
            geo = self.reconstruct_geometry(rgb.clamp(0, 1))
        out = Gen3ROutput(rgb=rgb.permute(0, 1, 3, 4, 2).contiguous().cpu(), depth=geo["depth"].cpu(),
                           depth_conf=geo["depth_conf"].cpu(), point_map=geo["point_map"].cpu(),
                           point_conf=geo["point_conf"].cpu(),
                           world_points=geo["world_points"], point_mask=geo["point_mask"],
                           extrinsics=geo["extrinsics"].cpu(),
                           intrinsics=geo["intrinsics"].cpu(), latents=latents.cpu(), info=info)
        return out.numpy() if output_type == "np" else out

    def pack_camera_input(self, plucker: torch.Tensor | None, batch: int, num_frames: int, height: int,
                      width: int, device, dtype) -> torch.Tensor | None:
        """(B, F, 6, H, W) Plücker -> (B, 24, f, H, halves * W) DiT camera input on ``device``. None
        (free cameras, allview, camera dropout) stays None: the transformer feeds its camera adapter
        all-zero rays itself, on its own device (no full-resolution zeros built here)."""
        if plucker is None or not getattr(self.transformer.config, "camera_in_channels", 0):
            return None
        return pack_plucker_for_dit(plucker.to(device), self.latent_halves).to(dtype=dtype)
