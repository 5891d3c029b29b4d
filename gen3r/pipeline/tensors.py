"""Tensor helpers below the pipeline, its loaders and the trainers: a module's compute dtype and
seeded float32 noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gen3r.errors import Gen3RError


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """Compute dtype of a module: the dtype of its first weight outside ``_keep_in_fp32_modules``."""
    keep = getattr(module, "_keep_in_fp32_modules", None) or []
    for name, param in module.named_parameters():
        if param.is_floating_point() and not any(k in name.split(".") for k in keep):
            return param.dtype
    return torch.float32


def randn(shape: Sequence[int], generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """Float32 CPU normal noise; a list of generators draws batch element b from ``generator[b]``,
    so each element of a batch equals a batch-1 run with that generator."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    if len(generator) != shape[0]:
        raise Gen3RError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per element")
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in generator])
