"""Strict, safe weight loading shared by every model in :mod:`gen3r.models`.

Rules: weights come from safetensors (or ``torch.load(weights_only=True)`` for ``.pth``);
a state dict is applied only when it matches the module exactly, otherwise one
:class:`~gen3r.errors.CheckpointError` lists the missing, unexpected and shape-mismatched keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from gen3r.errors import CheckpointError

if TYPE_CHECKING:
    from diffusers.configuration_utils import ConfigMixin

logger = logging.getLogger(__name__)
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
ConfigT = TypeVar("ConfigT", bound="ConfigMixin")

_MAX_LISTED = 8


def _fmt(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    head = ", ".join(keys[:_MAX_LISTED])
    return head + (f", ... (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def read_weights(path: str | Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Read one weight file (``.safetensors``, or ``.pth``/``.bin`` with ``weights_only=True``).

    With ``dtype``, floating tensors are cast one by one as they are read (safetensors), so the
    peak memory is the cast size plus one tensor, not the full file in its stored dtype.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file {path} does not exist; check the checkpoint path")
    try:
        if path.suffix == ".safetensors":
            if dtype is None:
                return load_file(str(path))
            out = {}
            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    out[key] = _cast(fh.get_tensor(key), dtype)
            return out
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"cannot read weights from {path} ({exc.__class__.__name__}: {exc}); "
                              "re-download or re-convert the checkpoint") from exc
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict; re-download the checkpoint")
    return {k: _cast(v, dtype) for k, v in sd.items()}


def read_weights_dir(folder: str | Path, names: Iterable[str] = (),
                     dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Read the weights of one component folder.

    ``names`` are tried in order; when none exists, every ``*.safetensors`` in the folder is
    merged (sharded checkpoints), as the official loaders do.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint component folder {folder} does not exist; "
                              "point --checkpoint at the folder that holds it")
    for name in names:
        if (folder / name).is_file():
            return read_weights(folder / name, dtype)
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise CheckpointError(f"no weights (*.safetensors) in {folder}; the checkpoint is incomplete")
    merged: dict[str, torch.Tensor] = {}
    for shard in shards:
        merged.update(read_weights(shard, dtype))
    return merged


def check_state_dict(expected: Mapping[str, tuple[int, ...] | torch.Size],
                     state_dict: Mapping[str, torch.Tensor], component: str) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the expected keys/shapes."""
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    mismatched = [f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k])}"
                  for k in sorted(set(expected) & set(state_dict))
                  if tuple(state_dict[k].shape) != tuple(expected[k])]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing [{_fmt(missing)}]")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected [{_fmt(unexpected)}]")
        if mismatched:
            parts.append(f"{len(mismatched)} shape-mismatched [{_fmt(mismatched)}]")
        raise CheckpointError(f"{component}: weights do not match the model: " + "; ".join(parts)
                              + "; use the matching checkpoint/architecture config")


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], component: str,
                assign: bool = False) -> None:
    """Load ``state_dict`` into ``module`` after an exact key/shape check (persistent entries only)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    check_state_dict(expected, state_dict, component)
    module.load_state_dict(dict(state_dict), strict=True, assign=assign)


def from_config(cls: type[ConfigT], config: dict[str, Any]) -> ConfigT:
    """``cls.from_config(config)``. diffusers annotates it as maybe a ``(model, unused kwargs)`` pair,
    which it returns only with ``return_unused_kwargs=True``."""
    return cast(ConfigT, cls.from_config(config))


def load_config(cls: type[ConfigMixin], folder: str | Path) -> dict[str, Any]:
    """``cls.load_config(folder)``. diffusers annotates it as a ``(config, unused kwargs)`` pair, which it
    returns only with ``return_unused_kwargs=True``."""
    return cast(dict[str, Any], cls.load_config(folder))


def cast_model(model: ModuleT, torch_dtype: torch.dtype | None) -> ModuleT:
    """Cast floating parameters/buffers to ``torch_dtype`` except ``model._keep_in_fp32_modules``.

    Same rule as diffusers' ``from_pretrained(torch_dtype=...)``: a tensor stays float32 when one
    of the dotted components of its name is listed in ``_keep_in_fp32_modules``.
    """
    if torch_dtype is None:
        return model
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point():
            target = torch.float32 if any(k in name.split(".") for k in keep) else torch_dtype
            tensor.data = tensor.data.to(target)
    return model


def read_config_json(path: str | Path, component: str) -> dict:
    """Read a checkpoint's JSON config; one :class:`CheckpointError` when missing or malformed."""
    import json

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{component}: {path} does not exist; the {component} folder needs its "
                              f"{path.name} (re-download the checkpoint)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{component}: {path} is not valid JSON ({exc}); re-download the checkpoint") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{component}: {path} is not a JSON object; re-download the checkpoint")
    return data


def restore_unsaved_state(model: torch.nn.Module) -> None:
    """After an ``assign=True`` load on the meta device, rebuild what state dicts don't carry:
    UMT5's input embedding is re-tied to ``shared``; CLIP's non-persistent ``position_ids`` are
    recreated."""
    if hasattr(model, "shared") and hasattr(model, "encoder"):
        embed_tokens = cast(torch.nn.Embedding, cast(torch.nn.Module, model.encoder).embed_tokens)
        embed_tokens.weight = cast(torch.nn.Embedding, model.shared).weight
    for module in model.modules():
        if isinstance(getattr(module, "position_ids", None), torch.Tensor) and hasattr(module, "num_positions"):
            module.position_ids = torch.arange(cast(int, module.num_positions)).expand((1, -1))


def check_materialised(model: torch.nn.Module, component: str) -> None:
    """Raise :class:`CheckpointError` if any parameter or buffer is still on the meta device."""
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"{component}: {len(left)} tensors were not loaded ({', '.join(left[:5])}); "
                              "the checkpoint or this gen3r version is incomplete")
