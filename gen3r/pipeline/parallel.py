"""Context-parallel generation: the joint DiT's token sequence split over ``torchrun`` processes with
diffusers' context parallelism (Ulysses all-to-all or ring attention; no runtime of our own).

Usage: ``torchrun --nproc-per-node N -m gen3r.cli generate ... --parallel ulysses|ring`` (one GPU per
process), or in Python :func:`enable_context_parallel` on a pipeline in every process. Then the text,
CLIP and VGGT encoders and the condition latents run on rank 0 only and are broadcast
(:func:`from_main`), every rank runs its part of each transformer call, and only rank 0 decodes and
returns the output (the others get None).

Our transformer keeps diffusers' Wan ``_cp_plan`` (split the RoPE tables and the block input along
the sequence, gather after ``proj_out``): the camera adapter adds to the tokens before ``blocks.0``
and the shared-width RoPE is a table like Wan's, so the plan fits unchanged.

CPU notes (what CI runs, 2 gloo processes): diffusers 0.42.1 computes
``rank % torch.accelerator.device_count()`` when it builds the mesh, which is 0 on a CPU-only machine
(ZeroDivisionError); on the CPU the count reads 1 while :func:`enable_context_parallel` runs. Ring
attention needs an attention backend that returns the log-sum-exp; the only CPU-capable one with
context-parallel support ("native", torch SDPA) raises ``ValueError: Native attention does not
support return_lse=True``, so ring runs on GPUs (flash / _native_cudnn backends) and is refused on
the CPU with that reason. Ulysses runs on the CPU and matches one process exactly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from unittest import mock

import torch
import torch.distributed as dist

from gen3r.distributed import DistInfo, init_distributed
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)
T = TypeVar("T")

KINDS = ("ulysses", "ring")


def check_parallel(kind: str, device: torch.device | str) -> None:
    """What refuses ``--parallel kind`` on ``device`` before any model loads (see the module docstring)."""
    if kind not in KINDS:
        raise Gen3RError(f"--parallel must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "ring" and torch.device(device).type == "cpu":
        raise Gen3RError("--parallel ring needs an attention backend that returns the log-sum-exp; on the CPU "
                         "diffusers' only context-parallel backend (native SDPA) raises 'Native attention does not "
                         "support return_lse=True'. Use --parallel ulysses here, or ring on GPUs")


def enable_context_parallel(pipe, kind: str, device: str | None = None) -> DistInfo:
    """Split ``pipe.transformer``'s sequence over the torchrun processes (``kind``: ulysses | ring).

    Joins the process group (``device``: None = this process's GPU, else CPU), checks that the
    attention heads divide among the processes, moves the pipeline to the device and enables
    diffusers' context parallelism. Returns this process's :class:`DistInfo`."""
    from diffusers.models._modeling_parallel import ContextParallelConfig

    ranks = init_distributed(device)
    check_parallel(kind, ranks.device)
    if not ranks.distributed:
        raise Gen3RError(f"--parallel {kind} splits the transformer over processes: start it with "
                         "`torchrun --nproc-per-node N -m gen3r.cli generate ...` (N >= 2)")
    heads = int(pipe.transformer.config.num_attention_heads)
    if kind == "ulysses" and heads % ranks.world_size:
        raise Gen3RError(f"--parallel ulysses gives each of the {ranks.world_size} processes a share of the "
                         f"{heads} attention heads; use a process count that divides {heads}, or --parallel ring")
    pipe.to(ranks.device)
    config = ContextParallelConfig(ulysses_degree=ranks.world_size) if kind == "ulysses" else \
        ContextParallelConfig(ring_degree=ranks.world_size)
    shim = (mock.patch("torch.accelerator.device_count", lambda: 1) if ranks.device.type == "cpu"
            else contextlib.nullcontext())
    with shim:
        pipe.transformer.enable_parallelism(config=config)
    pipe.context_parallel = ranks
    logger.info("context parallel (%s) over %d processes; this is rank %d", kind, ranks.world_size, ranks.rank)
    return ranks


def from_main(ranks: DistInfo | None, compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, its result sent to every rank (tensors, tuples, dicts; CPU copies
    cross the wire and are moved back to each rank's device). Without context parallelism, just
    ``compute()``."""
    if ranks is None or not ranks.distributed:
        return compute()
    holder = [_to_cpu(compute()) if ranks.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return _to_device(holder[0], ranks.device)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value
