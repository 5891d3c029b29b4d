"""Shared training machinery of both stages: distributed setup, optimiser and schedules, the
accumulate/clip/step loop, per-step randomness, logging and resumable checkpoints.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) a process group is created (``nccl`` on CUDA,
``gloo`` on CPU) and the trainable module is wrapped in ``DistributedDataParallel``; gradients are
averaged across ranks, so parameters stay identical. Every rank draws its own samples and noise.

Randomness of micro-step ``s`` on rank ``r`` comes only from ``(seed, r, s)`` (see
:func:`step_generator`) and the data draws of :class:`gen3r.train.data.DrawSampler`, so a run
resumed from a checkpoint at step ``n`` continues exactly like an uninterrupted run.

Checkpoint layout (``<output_dir>/checkpoint-<step:07d>/``): ``<component>/`` written with
``save_pretrained`` (config.json + diffusion_pytorch_model.safetensors; loadable by the converted
Gen3R layout) and ``training_state.pt`` (step, optimizer and scheduler state, config).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gen3r.atomic import atomic_dir, atomic_path, publish_dir, temporary_dir
from gen3r.distributed import init_distributed
from gen3r.errors import Gen3RError
from gen3r.models._loading import load_strict, read_weights_dir
from gen3r.pipeline import Gen3RPipeline
from gen3r.train.config import RENAMED_KEYS, OptimConfig, TrainConfig, config_to_dict, load_config, validate
from gen3r.train.data import DrawSampler, build_dataset, collate
from gen3r.train.stages import CHECKPOINT_PREFIX, STATE_FILE, list_checkpoints, resolve_component

if TYPE_CHECKING:
    from diffusers.models.modeling_utils import ModelMixin
    from torch.distributed.fsdp import FSDPModule

logger = logging.getLogger(__name__)

T = TypeVar("T")
ModuleT = TypeVar("ModuleT", bound=nn.Module)
#: torch.distributed.checkpoint folder of a ``distributed="fsdp2"`` checkpoint (model + optimizer shards).
SHARDED_DIR = "sharded"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


# ----------------------------------------------------------------------------------- distributed

def step_generator(seed: int, rank: int, micro_step: int, stream: int = 0) -> torch.Generator:
    """CPU generator for micro-step ``micro_step`` of ``rank``; ``stream`` separates independent uses."""
    state = np.random.SeedSequence([seed, rank, micro_step, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# ------------------------------------------------------------------------------ optimiser, schedule

def build_optimizer(params, optim: OptimConfig) -> torch.optim.AdamW:
    beta1, beta2 = optim.betas
    return torch.optim.AdamW(params, lr=optim.lr, betas=(beta1, beta2), eps=optim.eps,
                             weight_decay=optim.weight_decay)


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier at optimizer step ``step``: linear warmup ``(step+1)/warmup``, then cosine from
    1 to ``min_ratio`` over the remaining ``total - warmup`` steps (``CosineAnnealingLR`` with
    ``eta_min = min_ratio * lr`` when ``warmup = 0``)."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def grad_clip_value(step: int, total: int, optim: OptimConfig) -> float:
    """Clip norm at ``step``: ``ratio * max`` decaying linearly to ``max`` over the first
    ``grad_norm_decay_fraction * total`` steps (official stage 2: 0.5 -> 0.25 over 10 %)."""
    ratio = optim.initial_grad_norm_ratio
    if ratio == 1.0:
        return optim.max_grad_norm
    progress = min(1.0, step / max(1.0, optim.grad_norm_decay_fraction * total))
    return optim.max_grad_norm * (ratio - (ratio - 1.0) * progress)


# -------------------------------------------------------------------------------------- loading

def load_pipeline(checkpoint: str | None) -> Gen3RPipeline:
    """The Gen3R pipeline (official or converted layout) whose components the trainers use."""
    if checkpoint is None:
        raise Gen3RError("no Gen3R checkpoint given; set 'checkpoint' in the config or pass --checkpoint DIR")
    if not Path(checkpoint).is_dir():
        raise Gen3RError(f"checkpoint folder {checkpoint} does not exist; pass a Gen3R checkpoint folder")
    return Gen3RPipeline.from_pretrained(checkpoint)


def load_module_weights(module: nn.Module, folder: str | Path, what: str) -> None:
    """Strictly load ``save_pretrained`` weights from ``folder`` into ``module`` (in place)."""
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise Gen3RError(f"{folder} has no {WEIGHTS_FILE}; pass a folder written by save_pretrained")
    load_strict(module, read_weights_dir(folder, [WEIGHTS_FILE]), what)


def seeded(build: Callable[[], T], seed: int) -> T:
    """``build()`` with the global torch RNG seeded by ``seed`` (and restored afterwards): a
    reproducible random initialisation."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def initial_weights(build: Callable[[], ModuleT], seed: int, init: str, component: str) -> ModuleT:
    """The model a base-model stage starts from: ``build()`` seeded by ``seed`` (``init ==
    "random"``), or with the weights of a trained ``component`` loaded strictly from ``init`` (its
    folder, a ``checkpoint-<step>`` folder or a run folder: the newest checkpoint). A run that
    starts from trained weights still starts at step 0, with a fresh optimiser and schedule."""
    model = seeded(build, seed)
    if init != "random":
        folder = resolve_component(init, component)
        logger.info("%s starts from %s", component, folder)
        load_module_weights(model, folder, f"{component} ({folder}; its architecture must match `model`)")
    return model


def init_posterior_logvar(quant_conv: nn.Conv3d, value: float) -> None:
    """Set the log-variance half of a VAE's ``quant_conv`` bias (output ``[mean | logvar]``) to
    ``value`` and zero the matching weights, in place.

    Trained from scratch with a tiny KL weight, a posterior whose log-variance starts at 0 draws
    samples with noise as large as the latents themselves, and Adam moves a bias only about ``lr``
    per step, so reconstructions stay blurred for tens of thousands of steps. Starting at e.g. -8
    (std 0.018) makes the autoencoder nearly deterministic from the first step.
    """
    half = quant_conv.weight.shape[0] // 2
    assert quant_conv.bias is not None, "a VAE's quant_conv has a bias"
    with torch.no_grad():
        quant_conv.weight[half:].zero_()
        quant_conv.bias[half:].fill_(value)


def freeze(*modules: nn.Module) -> None:
    for module in modules:
        module.requires_grad_(False).eval()


#: Config fields a resumed run may change: the schedule's length (the learning rate continues on the
#: schedule of the new ``max_steps`` from the resumed step), the loss weights (a new phase of the
#: same run) and where / how often it logs and saves. Any other change is a new run (``init``).
RESUMABLE_CHANGES = ("max_steps", "loss_weights", "save_every", "keep_last", "log_every", "device", "output_dir")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def read_training_state(checkpoint: str | Path) -> dict[str, Any]:
    """The verified ``training_state.pt`` of a checkpoint folder (its weights file present too);
    Gen3RError names a missing, truncated or foreign file and what to do."""
    checkpoint = Path(checkpoint)
    state_file = checkpoint / STATE_FILE
    if not state_file.is_file():
        raise Gen3RError(f"{checkpoint} is not a training checkpoint (no {STATE_FILE}); "
                         f"pass a {CHECKPOINT_PREFIX}<step> folder")
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...: never resume from it
        raise Gen3RError(f"{state_file} is corrupt or truncated ({type(exc).__name__}); delete {checkpoint} "
                         "to resume from the checkpoint before it") from None
    sharded = isinstance(state, dict) and state.get("sharded")
    needed = ("step", "scheduler", "config") + (() if sharded else ("optimizer",))
    missing = [k for k in needed if not isinstance(state, dict) or k not in state]
    if missing:
        raise Gen3RError(f"{state_file} lacks {', '.join(missing)}; it was not written by gen3r train; delete "
                         f"{checkpoint} to resume from the checkpoint before it")
    weights = [p for p in checkpoint.iterdir() if p.is_dir() and (p / WEIGHTS_FILE).is_file()]
    if not weights:
        raise Gen3RError(f"{checkpoint} holds no model weights ({WEIGHTS_FILE}); delete it to resume from the "
                         "checkpoint before it")
    return state


def resume_point(config: TrainConfig, allow_changes: bool = False) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``config.output_dir`` and its verified state, checked against
    ``config`` before any model is built: no checkpoint, a broken one, or a change outside
    :data:`RESUMABLE_CHANGES` is a Gen3RError naming the fix (``allow_changes``: a deliberate
    change, logged with every key that differs)."""
    output_dir = Path(config.output_dir)
    found = list_checkpoints(output_dir)
    if not found:
        partial = sorted(p.name for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*")) if output_dir.is_dir() else []
        detail = f" (only incomplete {', '.join(partial)}, without {STATE_FILE})" if partial else ""
        raise Gen3RError(f"--resume: {output_dir} holds no checkpoint{detail}; check --out, or drop --resume "
                         "to start a new run there")
    state = read_training_state(found[-1])
    saved, now = _flatten(state["config"]), _flatten(config_to_dict(config))
    saved = {RENAMED_KEYS.get(k, k): v for k, v in saved.items()}  # checkpoints written before a rename
    # a checkpoint written before a setting existed ran with that setting's default
    defaults = _flatten(config_to_dict(type(config)()))
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    changed = sorted(k for k in set(saved) | set(now)
                     if saved.get(k) != now.get(k) and k.split(".")[0] not in RESUMABLE_CHANGES)
    if changed and allow_changes:
        logger.warning("resuming %s with changed settings: %s", found[-1],
                       ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed))
    elif changed:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise Gen3RError(f"--resume: the settings differ from {found[-1].name}'s in {shown}{more}; resume with "
                         f"the run's own settings, pass --resume-with-changes to change them on purpose, or start "
                         f"a new run from its weights (init / --out elsewhere)")
    return found[-1], state


def truncate_metrics(output_dir: str | Path, step: int) -> None:
    """Drop the ``metrics.jsonl`` records after ``step`` (logged by a run that was killed before its
    next checkpoint; the resumed run logs those steps again) and a torn last line, atomically: the
    file then reads as if the run had never stopped."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # torn by the kill
        if isinstance(record, dict) and int(record.get("step", 0)) <= step:
            kept.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in kept))


def check_fresh_output(output_dir: str | Path) -> None:
    """Refuse to start from scratch into an ``output_dir`` that already holds checkpoints."""
    found = list_checkpoints(output_dir)
    if found:
        raise Gen3RError(f"{output_dir} already holds {found[-1].name}; pass --resume to continue "
                         "or choose another output folder")


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.train`: final step, per-step metrics of this run, last checkpoint."""

    step: int
    history: list[dict[str, float]]
    checkpoint: Path | None


# ---------------------------------------------------------------------------------------- trainer

class Trainer:
    """Base trainer; subclasses set :attr:`component` and :attr:`prepared_type`, build :attr:`model`
    (the trainable module, float32) in :meth:`build_model`, turn a data batch into frozen-model
    inputs/targets in :meth:`prepare` (no gradient) and return the loss terms in :meth:`loss` (a dict
    with a scalar tensor ``"loss"``; other entries are logged)."""

    component = ""
    prepared_type: type = type(None)
    #: Whether the stage needs the frozen components of a Gen3R checkpoint (adapter and DiT stages);
    #: the base-model stages (VGGT, VAE) train from scratch without one.
    uses_pipeline = True

    def __init__(self, config: TrainConfig, pipeline=None) -> None:
        self.config = validate(config)
        self.dist = init_distributed(config.device)
        if not self.uses_pipeline:
            self.pipe: Gen3RPipeline | None = None
        else:
            self.pipe = pipeline if pipeline is not None else load_pipeline(config.checkpoint)
        self.device = self.dist.device
        self.model: nn.Module = self.build_model().to(self.device).train()
        self.wrapped = self.wrap()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(params, config.optim)
        o = config.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config.max_steps, o.warmup_steps, o.min_lr_ratio))
        self.step = 0
        self._data_iter = None
        #: The training data (None: built from ``config.data`` when training starts).
        self.dataset = None

    # -- hooks ---------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def find_unused_parameters(self) -> bool:
        """Whether some trainable parameters may get no gradient in a step (DDP must then search)."""
        return False

    def forward_module(self) -> nn.Module:
        """The module run in the forward pass (the DDP-wrappable unit); defaults to :attr:`model`."""
        return self.model

    def prepare(self, batch: dict[str, Any], micro_step: int) -> Any:
        raise NotImplementedError

    def loss(self, prepared: Any, micro_step: int) -> dict[str, Any]:
        raise NotImplementedError

    def compute_loss(self, batch: Any, micro_step: int) -> dict[str, Any]:
        """Loss terms of one micro-batch: a collated data batch, or an already prepared one
        (:attr:`prepared_type`, e.g. to overfit a fixed batch without re-running frozen models).

        The frozen models run in their own dtype (load the pipeline in bf16 to run them in bf16);
        ``mixed_precision="bf16"`` autocasts only the trainable forward and the loss."""
        prepared = batch if isinstance(batch, self.prepared_type) else self.prepare(batch, micro_step)
        with self.autocast():
            return self.loss(prepared, micro_step)

    # -- setup ---------------------------------------------------------------------------------
    def shard_units(self) -> list[nn.Module]:
        """The submodules FSDP2 shards one by one before the root: the model's transformer blocks
        (the classes its ``_no_split_modules`` names)."""
        names = set(getattr(self.model, "_no_split_modules", None) or ())
        return [m for m in self.model.modules() if type(m).__name__ in names]

    @property
    def sharded(self) -> bool:
        """FSDP2 over a process group (``distributed="fsdp2"`` under torchrun)."""
        return self.config.distributed == "fsdp2" and self.dist.distributed

    def wrap(self) -> nn.Module:
        """The forward module: DDP-wrapped, or its trainable model sharded with FSDP2 (in place),
        when distributed."""
        module = self.forward_module()
        if self.sharded:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            policy = MixedPrecisionPolicy()
            if self.device.type == "cuda" and self.config.mixed_precision == "bf16":
                policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            units = self.shard_units()
            for unit in units:
                fully_shard(unit, mp_policy=policy)
            fully_shard(self.model, mp_policy=policy)
            logger.info("FSDP2: %d blocks and the root of the %s sharded over %d processes", len(units),
                        self.component, self.dist.world_size)
            return module
        if not self.dist.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=self.find_unused_parameters())

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.mixed_precision == "bf16")

    def generator(self, micro_step: int, stream: int) -> torch.Generator:
        return step_generator(self.config.seed, self.dist.rank, micro_step, stream)

    def data_loader(self, start_micro_step: int) -> DataLoader:
        d = self.config.data
        dataset = self.dataset if self.dataset is not None else build_dataset(d, self.config.seed)
        sampler = DrawSampler(self.dist.rank, self.dist.world_size, d.batch_size, start_micro_step)
        return DataLoader(dataset, batch_size=d.batch_size, sampler=sampler, num_workers=d.num_workers,
                          collate_fn=collate, persistent_workers=d.num_workers > 0)

    # -- one optimizer step ----------------------------------------------------------------------
    def train_step(self, batches: list[Any]) -> dict[str, float]:
        """Accumulate gradients over ``batches`` (micro-batches, see :meth:`compute_loss`), clip,
        step optimizer + scheduler.

        Returns the micro-batch mean of every loss term (averaged over ranks), ``lr``,
        ``grad_norm`` (before clipping) and ``clip``.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        n = len(batches)
        for i, batch in enumerate(batches):
            micro = self.step * n + i
            sync = i == n - 1 or not self.dist.distributed
            if self.sharded:
                cast("FSDPModule", self.model).set_requires_gradient_sync(sync)
                ctx = contextlib.nullcontext()
            else:  # not in sync: distributed, so wrapped by DDP
                ctx = contextlib.nullcontext() if sync else cast(DistributedDataParallel, self.wrapped).no_sync()
            with ctx:
                terms = self.compute_loss(batch, micro)
                loss = terms["loss"]
                if not torch.isfinite(loss):
                    raise Gen3RError(f"non-finite loss {loss.item()} at step {self.step}; lower the learning "
                                     "rate or check the data")
                (loss / n).backward()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value) / n
        clip = grad_clip_value(self.step, self.config.max_steps, self.config.optim)
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        full_tensor = getattr(norm, "full_tensor", None)  # a DTensor under FSDP2
        grad_norm = float(full_tensor() if full_tensor is not None else norm)
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        metrics = self._average_across_ranks(sums)
        metrics.update(lr=lr, grad_norm=grad_norm, clip=clip)
        return metrics

    def _average_across_ranks(self, values: dict[str, float]) -> dict[str, float]:
        if not self.dist.distributed:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.dist.world_size for k, v in zip(keys, t.tolist())}

    # -- loop ------------------------------------------------------------------------------------
    def next_batches(self) -> list[dict[str, Any]]:
        """The ``grad_accum_steps`` micro-batches of the current step (from the step-indexed sampler)."""
        if self._data_iter is None:
            self._data_iter = iter(self.data_loader(self.step * self.config.grad_accum_steps))
        return [next(self._data_iter) for _ in range(self.config.grad_accum_steps)]

    def train(self, max_steps: int | None = None) -> TrainResult:
        """Train until optimizer step ``max_steps`` (default ``config.max_steps``); checkpoint every
        ``save_every`` steps and at the end. Rank 0 logs every term and appends ``metrics.jsonl``."""
        cfg = self.config
        end = min(cfg.max_steps, max_steps or cfg.max_steps)
        history: list[dict[str, float]] = []
        last: Path | None = None
        bar = tqdm(total=end, initial=self.step, desc=f"train {self.component}", disable=not self.dist.is_main)
        while self.step < end:
            metrics = self.train_step(self.next_batches())
            metrics["step"] = self.step
            history.append(metrics)
            bar.update()
            bar.set_postfix(loss=f"{metrics['loss']:.4g}", lr=f"{metrics['lr']:.3g}")
            if self.dist.is_main and (self.step % cfg.log_every == 0 or self.step == end):
                self._log(metrics)
            if (cfg.save_every and self.step % cfg.save_every == 0) or self.step == end:
                last = self.save_checkpoint()
        bar.close()
        return TrainResult(self.step, history, last)

    def _log(self, metrics: dict[str, float]) -> None:
        logger.info("step %d: %s", metrics["step"],
                    ", ".join(f"{k}={v:.5g}" for k, v in metrics.items() if k != "step"))
        out = Path(self.config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-<step>`` atomically on rank 0 (then prune to ``keep_last``); all ranks wait.

        ``distributed="fsdp2"``: every rank writes its shards of the model and optimizer with
        torch.distributed.checkpoint into ``sharded/`` of the same temporary folder, rank 0 adds the
        full weights (``<component>/``, for inference and ``assemble``) and the state, then renames the
        folder into place."""
        path = Path(self.config.output_dir) / f"{CHECKPOINT_PREFIX}{self.step:07d}"
        if self.config.distributed == "fsdp2":
            return self._save_sharded(path)
        if self.dist.is_main:
            with atomic_dir(path, overwrite=True) as tmp:
                cast("ModelMixin", self.model).save_pretrained(tmp / self.component, safe_serialization=True)
                torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(),
                            "scheduler": self.scheduler.state_dict(), "config": config_to_dict(self.config)},
                           tmp / STATE_FILE)
            self._prune_checkpoints()
            logger.info("saved %s", path)
        if self.dist.distributed:
            dist.barrier()
        return path

    def _prune_checkpoints(self) -> None:
        for old in list_checkpoints(self.config.output_dir)[:-self.config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    def _save_sharded(self, path: Path) -> Path:
        from safetensors.torch import save_file
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict
        from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

        holder: list[str | None] = [str(temporary_dir(path)) if self.dist.is_main else None]
        if self.dist.distributed:
            dist.broadcast_object_list(holder, src=0)
        assert holder[0] is not None, "rank 0 broadcasts the temporary folder"
        tmp = Path(holder[0])
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        dcp_save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(tmp / SHARDED_DIR))
        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.dist.is_main:
            try:
                (tmp / self.component).mkdir()
                cast("ModelMixin", self.model).save_config(tmp / self.component)
                save_file({k: cast(torch.Tensor, v).contiguous() for k, v in full.items()},
                          str(tmp / self.component / WEIGHTS_FILE))
                torch.save({"step": self.step, "scheduler": self.scheduler.state_dict(), "sharded": True,
                            "config": config_to_dict(self.config)}, tmp / STATE_FILE)
                publish_dir(tmp, path)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            self._prune_checkpoints()
            logger.info("saved %s (sharded over %d processes)", path, self.dist.world_size)
        if self.dist.distributed:
            dist.barrier()
        return path

    def resume(self, checkpoint: str | Path | None = None, state: dict[str, Any] | None = None) -> int:
        """Load model, optimizer, scheduler and step from ``checkpoint`` (default: the newest in
        ``output_dir``, which must exist) and its verified ``state`` (read when None); returns the
        step. The learning rate is set to this run's schedule at that step (the same value when
        ``max_steps`` is unchanged; the new schedule's value when it changed)."""
        if checkpoint is None:
            checkpoint, state = resume_point(self.config)
        checkpoint = Path(checkpoint)
        if state is None:
            state = read_training_state(checkpoint)
        if state.get("sharded"):  # torch.distributed.checkpoint: any number of processes
            from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
            from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
            from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

            model_state, optim_state = get_state_dict(self.model, self.optimizer)
            folder = str(checkpoint / SHARDED_DIR)
            dcp_load({"model": model_state}, checkpoint_id=folder)  # every weight, strictly
            # Adam keeps no state for a parameter that never had a gradient (e.g. an unused mask
            # token); the template here has one for every parameter: load what the run saved.
            dcp_load({"optimizer": optim_state}, checkpoint_id=folder,
                     planner=DefaultLoadPlanner(allow_partial_load=True))
            set_state_dict(self.model, self.optimizer, model_state_dict=model_state, optim_state_dict=optim_state)
        else:
            load_module_weights(self.model, checkpoint / self.component, f"{self.component} ({checkpoint})")
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        last = []
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            group["lr"] = base * factor(self.step)
            last.append(group["lr"])
        self.scheduler._last_lr = last
        self._data_iter = None
        if self.dist.is_main:
            truncate_metrics(self.config.output_dir, self.step)
        logger.info("resumed from %s at step %d", checkpoint, self.step)
        return self.step


def run_training(trainer_cls: type, config_cls: type, config, *, pipeline=None, resume: bool = False,
                 max_steps: int | None = None, allow_config_changes: bool = False) -> TrainResult:
    """Build ``trainer_cls`` from a config (object or JSON file) and train; ``resume`` continues
    from the newest checkpoint in ``config.output_dir`` (checked by :func:`resume_point` first;
    otherwise the folder must hold none; ``allow_config_changes``: resume with other settings on
    purpose). The resolved config is written to ``<output_dir>/config.json`` when training starts."""
    if not isinstance(config, config_cls):
        config = load_config(config, config_cls)
    if resume:
        checkpoint, state = resume_point(validate(config), allow_config_changes)  # before any model loads
    else:
        check_fresh_output(config.output_dir)
    dataset = build_dataset(validate(config).data, config.seed)  # data errors before any model loads, too
    trainer = trainer_cls(config, pipeline=pipeline)
    trainer.dataset = dataset
    if trainer.dist.is_main:
        with atomic_path(Path(config.output_dir) / "config.json") as tmp:
            tmp.write_text(json.dumps(config_to_dict(config), indent=1) + "\n")
    if resume:
        trainer.resume(checkpoint, state)
    return trainer.train(max_steps)
