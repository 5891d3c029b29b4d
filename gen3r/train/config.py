"""Typed training configurations, read from and written to JSON files.

Every field has the official default (spec ``official-gen3r.md`` section 8) unless stated; a JSON
config only needs the fields it changes. Unknown keys and values of the wrong type raise
:class:`~gen3r.errors.Gen3RError` naming the key, so a typo never silently trains with a default.

Example ``adapter.json``::

    {"checkpoint": "checkpoints/Gen3R", "output_dir": "runs/adapter",
     "data": {"root": "data/train", "num_frames": 25},
     "max_steps": 15000, "grad_accum_steps": 4}
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gen3r.defaults import DEFAULT_NUM_FRAMES
from gen3r.errors import Gen3RError

#: Official stage-2 dataset folders and sampling weights (``data_utils.py::create_dataset_config``).
OFFICIAL_DATASET_WEIGHTS: dict[str, float] = {
    "dl3dv": 1.0, "acid": 1.0, "mvimgnet": 0.25, "waymo": 0.5, "co3d": 1.0,
    "re10k": 1.0, "kitti360": 0.5, "vkitti": 0.5, "wildrgbd": 1.0, "tartanair": 1.0,
}


@dataclass
class ProceduralDataConfig:
    """Scenes rendered on the fly by :func:`gen3r.data.procedural.render_scene` (seed ``seed + i``).

    ``render_frames``: frames rendered per scene (clips of ``data.num_frames`` are drawn from them);
    ``render_height``/``render_width`` default to the training size (no resize needed).
    """

    num_scenes: int = 64
    seed: int = 0
    render_frames: int = DEFAULT_NUM_FRAMES
    kind: str = "random"
    trajectory: str = "random"
    render_height: int | None = None
    render_width: int | None = None


@dataclass
class DataConfig:
    """What a training sample is made of.

    ``root``: official-layout root holding ``<dataset>/<split>_videos_dirs.txt`` etc.; ``cache``: a
    pre-rendered scene cache (``gen3r cache``, rendered at ``height x width``; ``max_scenes`` uses
    only its first scenes); with neither, scenes are rendered on the fly (``procedural``). ``weights``:
    dataset folder -> sampling weight (default: the official table, restricted to the folders present).
    ``max_stride``: frame stride drawn from ``1..max_stride`` (stage 1: 2; stage 2: 1, see spec 8.2).
    Frames are resized to cover ``height x width`` and centre-cropped.
    """

    root: str | None = None
    cache: str | None = None
    max_scenes: int | None = None
    split: str = "train"
    weights: dict[str, float] | None = None
    num_frames: int = DEFAULT_NUM_FRAMES
    height: int = 560
    width: int = 560
    max_stride: int = 1
    batch_size: int = 1
    num_workers: int = 0
    procedural: ProceduralDataConfig = field(default_factory=ProceduralDataConfig)


@dataclass
class OptimConfig:
    """AdamW + linear warmup + cosine decay to ``min_lr_ratio * lr``; gradient-norm clipping.

    ``initial_grad_norm_ratio`` > 1 starts the clip value at ``ratio * max_grad_norm`` and decays it
    linearly to ``max_grad_norm`` over the first ``grad_norm_decay_fraction`` of the steps (the
    official stage-2 schedule); 1 keeps it constant.
    """

    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    min_lr_ratio: float = 0.2
    max_grad_norm: float = 0.5
    initial_grad_norm_ratio: float = 1.0
    grad_norm_decay_fraction: float = 0.1


@dataclass
class TrainConfig:
    """Fields shared by both stages.

    ``checkpoint``: Gen3R checkpoint folder (official or converted layout) providing the frozen
    components. ``max_steps``: optimizer steps (each ``grad_accum_steps`` micro-batches per rank).
    ``mixed_precision``: ``"no"`` or ``"bf16"`` (autocast; weights and optimizer stay float32).
    ``save_every``: steps between checkpoints (0 = only at the end); ``keep_last``: checkpoints kept.
    ``log_every``: steps between log lines / ``metrics.jsonl`` records. ``device``: None = the
    local CUDA device when available (``cuda:<LOCAL_RANK>``), else CPU. ``seed``: model init, data
    draws and noise (per rank, per micro-step). ``distributed``: how ``torchrun`` processes share
    the trainable model: ``"ddp"`` (a full copy each, gradients all-reduced) or ``"fsdp2"``
    (``fully_shard`` on each transformer block, then the root; bf16 parameters / fp32 reduction on
    GPU with ``mixed_precision="bf16"``; checkpoints sharded with torch.distributed.checkpoint,
    resumable on another number of processes). Frozen models are never sharded nor optimised.
    """

    checkpoint: str | None = None
    output_dir: str = "runs/gen3r"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    max_steps: int = 1000
    grad_accum_steps: int = 1
    mixed_precision: str = "no"
    seed: int = 42
    save_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    device: str | None = None
    distributed: str = "ddp"


@dataclass
class AdapterTrainConfig(TrainConfig):
    """Stage 1 (geometry adapter; ``train_geo_adapter_pl.sh``): lr 1e-5, wd 1e-4, cosine to 0.2 lr,
    clip 0.5, accumulation 8, frame stride 1..2.

    ``init``: ``"random"`` (official: a fresh adapter with the checkpoint's adapter config, seeded by
    ``seed``), ``"checkpoint"`` (start from the checkpoint's adapter) or the path of a
    ``save_pretrained`` adapter folder (e.g. ``runs/adapter25/checkpoint-0015000/geo_adapter``, to
    continue the 25-frame run at 49 frames). ``init_logvar``: start the posterior log-variance
    there (:func:`gen3r.train.loop.init_posterior_logvar`; None: as initialised, official).
    ``loss_weights``: the
    ``recon``/``similarity``/``kl`` weights of :func:`gen3r.train.losses.adapter_training_loss`.
    """

    output_dir: str = "runs/adapter"
    grad_accum_steps: int = 8
    init: str = "random"
    init_logvar: float | None = None
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"recon": 0.5, "similarity": 0.1, "kl": 2.0})
    data: DataConfig = field(default_factory=lambda: DataConfig(max_stride=2))


@dataclass
class DitTrainConfig(TrainConfig):
    """Stage 2 (DiT fine-tune; ``train_dit.sh``): lr 1e-5, AdamW wd 3e-2 eps 1e-10, warmup 50 +
    cosine, clip 0.5 -> 0.25 over the first 10 % of steps, batch 4 x accumulation 2.

    ``adapter_path``: a stage-1 ``geo_adapter`` folder (``save_pretrained``; or a stage-1 run folder:
    its newest checkpoint) replacing the
    checkpoint's adapter. ``condition_probs``: probabilities of the 1view / allview / 2view
    condition modes (official: u < 1/3 -> 1view, u > 2/3 -> 2view, else allview).
    The geometry half of the condition latent is always zeros (inference, paper, maintainers; see
    docs/training.md for the released training code's discrepancy). ``gradient_checkpointing``:
    diffusers block checkpointing of the transformer. ``latent_cache``: encode every clip of
    ``data.cache`` once (:mod:`gen3r.train.latent_cache`, stored in ``<output_dir>/latents``)
    instead of running the frozen encoders every step; needs whole clips (``data.num_frames`` =
    the cache's frames).
    """

    output_dir: str = "runs/dit"
    grad_accum_steps: int = 2
    adapter_path: str | None = None
    prompt_dropout: float = 0.2
    camera_dropout: float = 0.5
    condition_probs: dict[str, float] = field(
        default_factory=lambda: {"1view": 1 / 3, "allview": 1 / 3, "2view": 1 / 3})
    loss_threshold: float = 50.0
    gradient_checkpointing: bool = True
    latent_cache: bool = False
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        weight_decay=3e-2, eps=1e-10, warmup_steps=50, min_lr_ratio=0.0, max_grad_norm=0.25,
        initial_grad_norm_ratio=2.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=4, max_stride=1))


@dataclass
class VggtTrainConfig(TrainConfig):
    """Base model: a VGGT-style reconstruction model trained from scratch on ground truth (mini scale).

    ``model``: :class:`gen3r.models.vggt.VGGT` constructor arguments (sizes). ``loss_weights``:
    ``camera``, ``depth``, ``point`` weights, the confidence regulariser ``alpha``, the
    ``gradient`` term weight and the camera loss's ``translation`` weight of
    :func:`gen3r.train.losses.vggt_training_loss`. Ground truth comes
    from a scene cache (``data.cache``) or procedural scenes rendered at the training size.
    ``init``: ``"random"`` (seeded by ``seed``) or trained weights to start from (a ``vggt`` folder,
    a checkpoint or a run folder; same ``model`` sizes): a new run from step 0 with its own schedule.
    """

    output_dir: str = "runs/vggt"
    model: dict[str, Any] = field(default_factory=dict)
    init: str = "random"
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"camera": 5.0, "depth": 1.0, "point": 1.0, "alpha": 0.2, "gradient": 1.0,
                                 "translation": 1.0})
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=3e-4, weight_decay=0.05, warmup_steps=100, min_lr_ratio=0.05, max_grad_norm=1.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(num_frames=9, height=112, width=112,
                                                                max_stride=2, batch_size=2))


@dataclass
class VaeTrainConfig(TrainConfig):
    """Base model: a Wan-VAE-style causal video autoencoder (diffusers ``AutoencoderKLWan``) from scratch.

    ``model``: ``AutoencoderKLWan`` constructor arguments (``base_dim``, ``dim_mult``, ...).
    ``crop``: side of the random square crop each clip is cut to (the model is fully
    convolutional; None = whole frames). ``kl_weight``/``gradient_weight``: see
    :func:`gen3r.train.losses.vae_training_loss`. ``init_logvar``: initial posterior log-variance
    (:func:`gen3r.train.loop.init_posterior_logvar`; None keeps the random init). ``init``:
    ``"random"`` or trained weights to start from (a ``wan_vae`` folder, a checkpoint or a run
    folder; same ``model`` sizes; ``init_logvar`` is then not applied): a new run from step 0.
    """

    output_dir: str = "runs/vae"
    model: dict[str, Any] = field(default_factory=dict)
    init: str = "random"
    crop: int | None = 64
    kl_weight: float = 1e-6
    gradient_weight: float = 0.5
    init_logvar: float | None = -8.0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=5e-4, weight_decay=1e-4, warmup_steps=100, min_lr_ratio=0.05, max_grad_norm=1.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(num_frames=5, height=112, width=112,
                                                                max_stride=2, batch_size=4))


C = TypeVar("C", bound=TrainConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a JSON value to the annotated type ``tp``; raise Gen3RError naming ``key``."""
    if tp is Any:
        return value  # free-form JSON (model constructor arguments)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except Gen3RError as exc:
                errors.append(str(exc))
        raise Gen3RError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise Gen3RError(f"config key {key!r} must be an object with fields of {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, key + ".")
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise Gen3RError(f"config key {key!r} must be an object (name -> value), got {value!r}")
        return {str(k): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise Gen3RError(f"config key {key!r} must be a list of {len(args)} numbers, got {value!r}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise Gen3RError(f"config key {key!r} must be {_type_name(tp)}, got {value!r}")


#: Config keys that were renamed: old dotted key -> new one (old configs get a one-line error, old
#: checkpoints resume: :func:`gen3r.train.loop.resume_point` compares under the new names).
RENAMED_KEYS = {"data.procedural.num_frames": "data.procedural.render_frames"}


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """``base`` (default ``cls()``) with the fields given in ``data`` replaced; nested objects are
    merged onto the field's own default, so ``{"optim": {"lr": 2e-5}}`` keeps the stage's optim."""
    base = cls() if base is None else base
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    for old in unknown:
        if f"{prefix}{old}" in RENAMED_KEYS:
            raise Gen3RError(f"config key '{prefix}{old}' was renamed to '{RENAMED_KEYS[prefix + old]}'; rename it in "
                             "your config")
    if unknown:
        raise Gen3RError(f"unknown config key '{prefix}{unknown[0]}'; valid keys of {cls.__name__}: "
                         f"{', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            kwargs[key] = _from_dict(type(current), value, f"{prefix}{key}.", current)
        else:
            kwargs[key] = _convert(value, hints[key], prefix + key)
    return dataclasses.replace(base, **kwargs)


def _check_range(ok: bool, message: str) -> None:
    if not ok:
        raise Gen3RError(message)


def validate(config: C) -> C:
    """Check value ranges; raise Gen3RError naming the first bad key. Returns ``config``."""
    d, o = config.data, config.optim
    _check_range(config.max_steps >= 1, f"max_steps must be >= 1, got {config.max_steps}")
    _check_range(config.grad_accum_steps >= 1, f"grad_accum_steps must be >= 1, got {config.grad_accum_steps}")
    _check_range(config.mixed_precision in ("no", "bf16"),
                 f"mixed_precision must be 'no' or 'bf16', got {config.mixed_precision!r}")
    _check_range(config.distributed in ("ddp", "fsdp2"),
                 f"distributed must be 'ddp' or 'fsdp2', got {config.distributed!r}")
    _check_range(config.save_every >= 0 and config.keep_last >= 1 and config.log_every >= 1,
                 "save_every must be >= 0, keep_last >= 1 and log_every >= 1")
    if isinstance(config, VggtTrainConfig):  # VGGT takes any number of frames
        _check_range(d.num_frames >= 2, f"data.num_frames must be >= 2 for VGGT (cameras are relative), "
                     f"got {d.num_frames}")
    else:
        _check_range(d.num_frames >= 1 and d.num_frames % 4 == 1,
                     f"data.num_frames must be 4k+1 (e.g. 25, 49), got {d.num_frames}")
    multiple = 56 if isinstance(config, AdapterTrainConfig) else 112
    _check_range(d.height > 0 and d.width > 0 and d.height % multiple == 0 and d.width % multiple == 0,
                 f"data.height/width must be positive multiples of {multiple}, got {d.height}x{d.width}")
    _check_range(d.max_scenes is None or d.max_scenes >= 1, f"data.max_scenes must be >= 1, got {d.max_scenes}")
    _check_range(d.batch_size >= 1 and d.max_stride >= 1 and d.num_workers >= 0,
                 "data.batch_size and data.max_stride must be >= 1 and data.num_workers >= 0")
    _check_range(d.weights is None or (bool(d.weights) and all(w > 0 for w in d.weights.values())),
                 f"data.weights must map dataset folders to positive weights, got {d.weights}")
    _check_range(o.lr > 0 and o.eps > 0 and o.weight_decay >= 0 and all(0 <= b < 1 for b in o.betas),
                 "optim: lr and eps must be > 0, weight_decay >= 0, betas in [0, 1)")
    _check_range(0 <= o.min_lr_ratio <= 1 and o.warmup_steps >= 0 and o.max_grad_norm > 0
                 and o.initial_grad_norm_ratio >= 1 and 0 < o.grad_norm_decay_fraction <= 1,
                 "optim: min_lr_ratio in [0, 1], warmup_steps >= 0, max_grad_norm > 0, "
                 "initial_grad_norm_ratio >= 1, grad_norm_decay_fraction in (0, 1]")
    if isinstance(config, AdapterTrainConfig):
        _check_range(config.init in ("random", "checkpoint") or (Path(config.init) / "config.json").is_file(),
                     f"init must be 'random', 'checkpoint' or a geo_adapter folder with config.json, "
                     f"got {config.init!r}")
        _check_range(set(config.loss_weights) <= {"recon", "similarity", "kl"},
                     f"loss_weights keys must be recon, similarity, kl; got {sorted(config.loss_weights)}")
    if isinstance(config, DitTrainConfig):
        probs = config.condition_probs
        _check_range(set(probs) <= {"1view", "2view", "allview"} and all(p >= 0 for p in probs.values())
                     and sum(probs.values()) > 0,
                     f"condition_probs must map 1view/2view/allview to non-negative numbers, got {probs}")
        _check_range(0 <= config.prompt_dropout <= 1 and 0 <= config.camera_dropout <= 1,
                     "prompt_dropout and camera_dropout must be probabilities in [0, 1]")
        _check_range(config.loss_threshold > 0, f"loss_threshold must be > 0, got {config.loss_threshold}")
        _check_range(not config.latent_cache or (d.cache is not None and d.max_stride == 1),
                     "latent_cache needs a scene cache (data.cache) and whole clips (data.max_stride 1)")
    if isinstance(config, VggtTrainConfig):
        _check_range(set(config.loss_weights) <= {"camera", "depth", "point", "alpha", "gradient", "translation"},
                     f"loss_weights keys must be camera, depth, point, alpha, gradient, translation; "
                     f"got {sorted(config.loss_weights)}")
    if isinstance(config, VaeTrainConfig):
        _check_range(config.crop is None or (config.crop > 0 and config.crop % 8 == 0
                                             and config.crop <= min(d.height, d.width)),
                     f"crop must be a multiple of 8 no larger than the frames, got {config.crop}")
        _check_range(config.kl_weight >= 0 and config.gradient_weight >= 0,
                     "kl_weight and gradient_weight must be >= 0")
    return config


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build and validate a config of class ``cls`` from a JSON-like dict."""
    if not isinstance(data, dict):
        raise Gen3RError(f"a training config must be a JSON object, got {type(data).__name__}")
    return validate(_from_dict(cls, data))


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; Gen3RError for a missing file, invalid JSON or a non-object."""
    path = Path(path)
    if not path.is_file():
        raise Gen3RError(f"config file {path} does not exist; pass a JSON file with the training settings")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Gen3RError(f"config file {path} is not valid JSON ({exc}); fix the syntax") from None
    if not isinstance(data, dict):
        raise Gen3RError(f"config file {path} must hold a JSON object, got {type(data).__name__}")
    return data


def load_config(path: str | Path, cls: type[C]) -> C:
    """Read a JSON config file into ``cls`` (fields not given keep their defaults)."""
    return config_from_dict(cls, read_config_json(path))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON-serialisable dict of ``config`` (round-trips through :func:`config_from_dict`)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
