"""Load a Gen3R checkpoint folder: the official layout or our converted layout.

Official layout (``Gen3RPipeline.save_pretrained`` of the official code, spec §1): sub-folders
``tokenizer, text_encoder, transformer, clip_image_encoder, scheduler, geo_adapter, wan_vae,
vggt`` with original Wan / VideoX-Fun / VGGT key names. Sizes that its config files cannot
express (tiny test checkpoints) come from an optional ``gen3r_arch.json`` in the folder
(same format as the fixture's ``tiny_arch.json``) or the ``architecture=`` argument.

Our layout (written by ``gen3r convert``): the same sub-folders, each with our own config and
safetensors in our own key names, and ``model_index.json`` carrying ``"_gen3r_layout"``.
Every component loads strictly: missing, unexpected or mismatched keys raise CheckpointError.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models._loading import (
    cast_model,
    check_materialised,
    load_strict,
    read_config_json,
    read_weights_dir,
    restore_unsaved_state,
)
from gen3r.models.geo_adapter import GeometryAdapter
from gen3r.models.image_encoder import load_official_image_encoder
from gen3r.models.text_encoder import load_official_text_encoder, load_tokenizer
from gen3r.models.transformer import Gen3RTransformer3DModel
from gen3r.models.vggt import VGGT
from gen3r.models.wan_vae import load_official_wan_vae
from gen3r.pipeline.tensors import module_dtype

logger = logging.getLogger(__name__)

COMPONENTS = ("tokenizer", "text_encoder", "clip_image_encoder", "transformer",
              "wan_vae", "geo_adapter", "vggt", "scheduler")
GEN3R_LAYOUT_KEY = "_gen3r_layout"
GEN3R_LAYOUT_VERSION = 1
#: ``model_index.json`` key of a checkpoint's own sampling defaults (frames, size, steps, guidance).
CALL_DEFAULTS_KEY = "_gen3r_call_defaults"
#: Name of the embedded mini model (shipped inside the package; the default checkpoint).
MINI_MODEL = "gen3r-mini"
MINI_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / MINI_MODEL


#: A Hugging Face Hub model id: ``owner/name`` (letters, digits, ``-``, ``_``, ``.``).
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def resolve_checkpoint(path: str | Path | None) -> Path:
    """The checkpoint folder ``path`` names: None or ``"gen3r-mini"`` -> the embedded mini model; an
    existing folder -> itself; otherwise a Hub id ``owner/name`` (e.g. ``JaceyH919/Gen3R``) -> its
    snapshot in the huggingface_hub cache, downloaded there first unless offline
    (``HF_HUB_OFFLINE=1``: the cache only)."""
    if path is None or str(path) == MINI_MODEL:
        if not (MINI_MODEL_DIR / "model_index.json").is_file():
            raise CheckpointError(f"the embedded mini model is missing from {MINI_MODEL_DIR}; reinstall gen3r "
                                  "or pass --checkpoint DIR")
        return MINI_MODEL_DIR
    if Path(path).exists() or not _HUB_ID.fullmatch(str(path)):
        return Path(path)
    return _hub_snapshot(str(path))


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    by_hand = (f"download it by hand (`huggingface-cli download {repo_id} --local-dir checkpoints/"
               f"{repo_id.split('/')[1]}`) and pass that folder")
    try:
        folder = Path(snapshot_download(repo_id=repo_id))
    except LocalEntryNotFoundError:
        where = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise CheckpointError(f"{repo_id} is no local folder and not in the Hugging Face cache "
                              f"({constants.HF_HUB_CACHE}), and {where}; {by_hand}") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot download {repo_id} from the Hugging Face Hub "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); {by_hand}") \
            from None
    logger.info("checkpoint %s: %s", repo_id, folder)
    return folder


def read_call_defaults(path: str | Path) -> dict[str, Any]:
    """The sampling defaults a checkpoint declares in its ``model_index.json`` (empty for the official
    layout, whose defaults are the pipeline's own)."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return {}
    try:
        data = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{index} is not valid JSON ({exc}); re-download the checkpoint") from exc
    defaults = data.get(CALL_DEFAULTS_KEY, {}) if isinstance(data, dict) else {}
    if not isinstance(defaults, dict):
        raise CheckpointError(f"{index}: {CALL_DEFAULTS_KEY} must be an object")
    return defaults


def detect_layout(path: str | Path) -> str:
    """Return ``"gen3r"`` for our converted layout, ``"official"`` for the official one."""
    path = Path(path)
    if not path.is_dir():
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise CheckpointError(f"checkpoint folder {path} {problem}; pass the folder that holds "
                              "model_index.json and the component sub-folders")
    index = path / "model_index.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{index} is not valid JSON ({exc}); re-download the checkpoint") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{index} is not a JSON object; re-download the checkpoint")
        if GEN3R_LAYOUT_KEY in data:
            return "gen3r"
        return "official"
    if all((path / name).is_dir() for name in ("transformer", "wan_vae", "geo_adapter", "vggt")):
        return "official"
    raise CheckpointError(f"{path} is not a Gen3R checkpoint (no model_index.json and no component "
                          "folders); clone the official checkpoint or run `gen3r convert`")


def read_architecture(path: str | Path, architecture: str | Path | dict | None) -> dict:
    """Architecture overrides for an official-layout checkpoint (``None`` -> full size)."""
    if isinstance(architecture, dict):
        return architecture
    if architecture is None:
        candidate = Path(path) / "gen3r_arch.json"
        if not candidate.is_file():
            return {}
        architecture = candidate
    architecture = Path(architecture)
    if not architecture.is_file():
        raise CheckpointError(f"architecture file {architecture} does not exist; pass a JSON file "
                              "in the format of tiny_arch.json or omit it for the full-size model")
    try:
        data = json.loads(architecture.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"architecture file {architecture} is not valid JSON ({exc})") from exc
    sized = ("clip_image_encoder", "transformer", "wan_vae", "geo_adapter", "vggt")  # read with arch.get
    bad = [name for name in sized if not isinstance(data, dict) or not isinstance(data.get(name, {}), dict)]
    if bad:
        raise CheckpointError(f"architecture file {architecture} must map each component to an object of sizes "
                              f"('{bad[0]}' does not); use the format of tiny_arch.json")
    return data


def check_device(device: str | None, option: str = "--device") -> None:
    """Raise Gen3RError unless ``device`` (None: automatic) is a torch device this machine has: checked
    before any model is loaded or moved there."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise Gen3RError(f"{option} {device!r} is not a torch device; pass cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Gen3RError(f"{option} {device}: CUDA is not available on this machine; pass cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise Gen3RError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                         "pass cuda:0 or another index that exists")


def _load_tokenizer(folder: Path):
    """The tokenizer of ``folder``; its error on one line (transformers' messages span several)."""
    try:
        return load_tokenizer(folder)
    except (OSError, ValueError) as exc:
        raise CheckpointError(" ".join(str(exc).split())) from None


def _require(path: Path, name: str) -> Path:
    folder = path / name
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint component '{name}' is missing: no folder {folder}; "
                              "use a complete checkpoint (official clone or `gen3r convert` output)")
    return folder


def load_scheduler(folder: Path):
    from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler

    cfg = folder / "scheduler_config.json"
    config = read_config_json(cfg, "scheduler")  # a malformed file is a CheckpointError too
    name = config.get("_class_name", "FlowMatchEulerDiscreteScheduler")
    if name != "FlowMatchEulerDiscreteScheduler":
        raise CheckpointError(f"scheduler {name} in {cfg} is not supported; Gen3R uses "
                              "FlowMatchEulerDiscreteScheduler")
    try:
        return FlowMatchEulerDiscreteScheduler.from_config(config)
    except (TypeError, ValueError) as exc:  # values the scheduler cannot use, e.g. a negative step count
        raise CheckpointError(f"cannot build the scheduler from {cfg} ({' '.join(str(exc).split())}); "
                              "re-download the checkpoint") from None


def load_official_components(path: str | Path, architecture: str | Path | dict | None = None,
                             torch_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Load every component of an official-layout checkpoint (strictly)."""
    path = Path(path)
    arch = read_architecture(path, architecture)
    folders = {name: _require(path, name) for name in COMPONENTS}
    logger.info("loading official-layout checkpoint %s", path)
    return {
        "tokenizer": _load_tokenizer(folders["tokenizer"]),
        "text_encoder": load_official_text_encoder(folders["text_encoder"], torch_dtype=torch_dtype),
        "clip_image_encoder": load_official_image_encoder(
            folders["clip_image_encoder"], arch=arch.get("clip_image_encoder"), torch_dtype=torch_dtype),
        "transformer": Gen3RTransformer3DModel.load_official(
            folders["transformer"], arch=arch.get("transformer"), torch_dtype=torch_dtype),
        "wan_vae": load_official_wan_vae(folders["wan_vae"], arch=arch.get("wan_vae"), torch_dtype=torch_dtype),
        "geo_adapter": GeometryAdapter.load_official(
            folders["geo_adapter"], arch=arch.get("geo_adapter"), torch_dtype=torch_dtype),
        "vggt": VGGT.load_official(folders["vggt"], arch=arch.get("vggt"), torch_dtype=torch_dtype),
        "scheduler": load_scheduler(folders["scheduler"]),
    }


def load_diffusers_model(cls, folder: Path, torch_dtype: torch.dtype | None):
    """Our layout: config.json + diffusion_pytorch_model.safetensors, loaded strictly.

    The module is built without allocating parameters (non-persistent buffers such as RoPE
    tables stay real), then the checked state dict is assigned.
    """
    from accelerate import init_empty_weights

    config = cls.load_config(str(folder))
    with init_empty_weights(include_buffers=False):
        model = cls.from_config(config)
    state = read_weights_dir(folder, ["diffusion_pytorch_model.safetensors"])
    load_strict(model, state, f"{folder.name} ({cls.__name__})", assign=True)
    check_materialised(model, folder.name)
    model.eval()
    return cast_model(model, torch_dtype)


def _load_transformers_model(cls, config_cls, folder: Path, torch_dtype: torch.dtype | None):
    """Our layout for transformers models: config.json + model.safetensors, strict, no random init.

    Built on the meta device, the checked tensors are assigned (cast while reading), then the
    state that lives outside the state dict is restored: UMT5's tied input embedding and CLIP's
    non-persistent position ids.
    """
    config = config_cls.from_pretrained(str(folder))
    with torch.device("meta"):
        model = cls(config)
    state = read_weights_dir(folder, ["model.safetensors"], dtype=torch_dtype)
    load_strict(model, state, f"{folder.name} ({cls.__name__})", assign=True)
    restore_unsaved_state(model)
    check_materialised(model, folder.name)
    return model.eval()


def load_gen3r_components(path: str | Path, torch_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Load every component of our converted layout (strictly)."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    path = Path(path)
    folders = {name: _require(path, name) for name in COMPONENTS}
    logger.info("loading gen3r-layout checkpoint %s", path)
    return {
        "tokenizer": _load_tokenizer(folders["tokenizer"]),
        "text_encoder": _load_transformers_model(UMT5EncoderModel, UMT5Config, folders["text_encoder"], torch_dtype),
        "clip_image_encoder": _load_transformers_model(CLIPVisionModel, CLIPVisionConfig,
                                                       folders["clip_image_encoder"], torch_dtype),
        "transformer": load_diffusers_model(Gen3RTransformer3DModel, folders["transformer"], torch_dtype),
        "wan_vae": load_diffusers_model(AutoencoderKLWan, folders["wan_vae"], torch_dtype),
        "geo_adapter": load_diffusers_model(GeometryAdapter, folders["geo_adapter"], torch_dtype),
        "vggt": load_diffusers_model(VGGT, folders["vggt"], torch_dtype),
        "scheduler": load_scheduler(folders["scheduler"]),
    }


def save_gen3r_components(components: dict[str, Any], out: Path, call_defaults: dict[str, Any] | None = None) -> None:
    """Write components in our layout into the (empty, temporary) folder ``out`` (with the
    checkpoint's own sampling defaults ``call_defaults`` when given).

    Tensors are written in the dtype they have (load with ``torch_dtype`` to convert: that keeps
    each model's ``_keep_in_fp32_modules`` in float32, like the official loaders).
    """
    from safetensors.torch import save_file

    index: dict[str, Any] = {"_class_name": "Gen3RPipeline", GEN3R_LAYOUT_KEY: GEN3R_LAYOUT_VERSION,
                             "dtype": str(module_dtype(components["transformer"])).replace("torch.", "")}
    if call_defaults:
        index[CALL_DEFAULTS_KEY] = dict(call_defaults)
    for name in COMPONENTS:
        comp = components[name]
        folder = out / name
        folder.mkdir(parents=True)
        index[name] = [type(comp).__module__, type(comp).__name__]
        if name in ("tokenizer", "scheduler"):
            comp.save_pretrained(str(folder))
            continue
        state = {k: v.contiguous() for k, v in comp.state_dict().items()}
        if name in ("text_encoder", "clip_image_encoder"):
            comp.config.save_pretrained(str(folder))
            _save_untied(save_file, state, folder / "model.safetensors")
        else:
            comp.save_config(str(folder))
            _save_untied(save_file, state, folder / "diffusion_pytorch_model.safetensors")
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def _save_untied(save_file, state: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors refuses shared storage: clone tensors that alias another entry."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        ptr = value.untyped_storage().data_ptr() if value.numel() else id(value)
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    save_file(out, str(path))
