"""Suite-wide settings: offline hub, one torch thread per xdist worker (2 workers on 2 cores).

Also the session-wide tensors of the tiny official fixture (``tests/data/official-tiny``, see its
README.md): ``tiny_inputs``, ``tiny_stages`` and the ``tiny_task`` loader. They are shared by every
test module of a worker, so no test may change them; each is checked against a fresh copy from disk
at the end of the session and an in-place change fails there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from tests._tiny import TINY  # noqa: E402

# Test models are tiny: one intra-op thread is several times faster than two on a shared 2-core
# machine and avoids oversubscription under xdist (2 workers).
torch.set_num_threads(1)

TinyTensors = Mapping[str, torch.Tensor]


def _load_tiny(file_name: str) -> TinyTensors:
    return MappingProxyType(load_file(str(TINY / file_name)))


def _assert_unchanged(file_name: str, tensors: TinyTensors) -> None:
    fresh = load_file(str(TINY / file_name))
    changed = sorted(key for key, value in fresh.items() if not torch.equal(tensors[key], value))
    assert not changed, f"a test changed the shared fixture tensors {changed} of {file_name} in place"


@pytest.fixture(scope="session")
def tiny_inputs() -> Iterator[TinyTensors]:
    """``inputs.safetensors``: the official call's inputs (video, token ids, ...), read-only."""
    tensors = _load_tiny("inputs.safetensors")
    yield tensors
    _assert_unchanged("inputs.safetensors", tensors)


@pytest.fixture(scope="session")
def tiny_stages() -> Iterator[TinyTensors]:
    """``stages.safetensors``: the official per-component intermediate outputs, read-only."""
    tensors = _load_tiny("stages.safetensors")
    yield tensors
    _assert_unchanged("stages.safetensors", tensors)


@pytest.fixture(scope="session")
def tiny_task() -> Iterator[Callable[[str], TinyTensors]]:
    """``tiny_task("1view" | "2view" | "allview")``: that task's ``task_<name>.safetensors``, read once."""
    loaded: dict[str, TinyTensors] = {}

    def load(task: str) -> TinyTensors:
        if task not in loaded:
            loaded[task] = _load_tiny(f"task_{task}.safetensors")
        return loaded[task]

    yield load
    for task, tensors in loaded.items():
        _assert_unchanged(f"task_{task}.safetensors", tensors)
