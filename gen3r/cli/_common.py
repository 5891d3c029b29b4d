"""Argument types and pipeline options shared by the subcommands (all failures are one-line argparse errors)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from gen3r.defaults import DEFAULT_NUM_FRAMES

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # --dtype choice -> torch dtype name


def _number_type(name: str, convert: type, minimum: int, inclusive: bool,
                 expected: str) -> Callable[[str], int | float]:
    """An argparse ``type``: ``convert(text)``, which must be >= ``minimum`` (``inclusive``) or > it."""

    def parse(text: str) -> int | float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum) or value == float("inf"):  # NaN fails both
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"Parse {expected} (argparse type)."
    return parse


positive_int = _number_type("positive_int", int, 0, False, "a positive integer")
non_negative_int = _number_type("non_negative_int", int, 0, True, "an integer >= 0")
positive_float = _number_type("positive_float", float, 0, False, "a positive finite number")
thread_count = _number_type("thread_count", int, 0, False, "a positive number of threads")


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def bounded(name: str, convert: type, low: float, high: float, what: str, *,
            open_low: bool = False, open_high: bool = False) -> Callable[[str], int | float]:
    """An argparse ``type``: ``convert(text)`` within ``[low, high]`` (``open_*``: that end excluded);
    NaN and infinities are refused. The error reads ``expected {what} in [low, high], got ...``."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def parse(text: str) -> int | float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} in {interval}, got {text!r}") from None
        inside = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
        if not inside:  # NaN compares false: refused too
            raise argparse.ArgumentTypeError(f"expected {what} in {interval}, got {text}")
        return value

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"Parse {what} in {interval} (argparse type)."
    return parse


field_of_view = bounded("field_of_view", float, 0, 180, "a field of view in degrees", open_low=True, open_high=True)


#: Trajectory preset parameters settable from the command line: name -> help.
TRAJECTORY_PARAMS = {"angle": "degrees (pan / tilt / orbit presets; default 15)",
                     "distance": "scene units (dolly / truck / pedestal presets; default the scene scale)",
                     "radius": "scene units (orbit presets; default the scene scale)"}


def add_trajectory_params(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--{prefix}angle``, ``--{prefix}distance``, ``--{prefix}radius``: a preset's shape (default:
    the preset's own, scaled by the scene); which preset takes which: `gen3r cameras list`."""
    for name, unit in TRAJECTORY_PARAMS.items():
        p.add_argument(f"--{prefix}{name}", dest=f"trajectory_{name}", type=_finite_float, default=None,
                       metavar=name.upper(), help=f"the camera preset's {name}, {unit}")


def trajectory_params(args: argparse.Namespace) -> dict[str, float]:
    """The trajectory parameters given on the command line (see :func:`add_trajectory_params`)."""
    return {name: getattr(args, f"trajectory_{name}") for name in TRAJECTORY_PARAMS
            if getattr(args, f"trajectory_{name}", None) is not None}


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """The options every pipeline-running subcommand shares: checkpoint, sizes, sampling, dtype and memory.

    ``--out``, ``--seed`` and ``--prompt`` mean different things per subcommand, so each adds its own.
    """
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint folder (official layout or `gen3r convert` output); default: the embedded "
                        "mini model gen3r-mini")
    p.add_argument("--architecture", type=Path, default=None,
                   help="JSON with sizes the official configs cannot express (tiny test checkpoints)")
    own = "(default: the checkpoint's own; official model {}, gen3r-mini its native size)"
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames F = 4k+1 " + own.format(DEFAULT_NUM_FRAMES))
    p.add_argument("--height", type=positive_int, default=None, help="multiple of 112 " + own.format(560))
    p.add_argument("--width", type=positive_int, default=None, help="multiple of 112 " + own.format(560))
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps " + own.format(50))
    p.add_argument("--guidance", type=positive_float, default=None, help="CFG scale " + own.format(5))
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights/compute dtype")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--offload", action="store_true",
                   help="group offloading: weights on CPU, blocks moved to the device when used")
    p.add_argument("--text-encoder-cpu", action="store_true", help="run the 5.7B UMT5 on the CPU")
    p.add_argument("--vae-tiling", action="store_true", help="tiled Wan-VAE decode (less memory)")


#: CLI option -> pipeline call argument whose checkpoint default it takes.
_DEFAULTED = {"frames": "num_frames", "height": "height", "width": "width", "steps": "num_inference_steps",
              "guidance": "guidance_scale"}


def resolve_checkpoint_defaults(args: argparse.Namespace) -> None:
    """Fill ``--checkpoint`` (the mini model when absent) and every unset size / sampling option
    from the checkpoint's own defaults, before any model is loaded. Errors name the problem."""
    from gen3r.pipeline.loading import MINI_MODEL, detect_layout, read_call_defaults, resolve_checkpoint
    from gen3r.pipeline.pipeline_gen3r import OFFICIAL_CALL_DEFAULTS

    args.checkpoint = str(args.checkpoint) if args.checkpoint is not None else MINI_MODEL
    folder = resolve_checkpoint(args.checkpoint)
    detect_layout(folder)
    defaults = {**OFFICIAL_CALL_DEFAULTS, **read_call_defaults(folder)}
    for option, key in _DEFAULTED.items():
        if getattr(args, option) is None:
            setattr(args, option, defaults[key])


def load_pipeline(args: argparse.Namespace):
    """The :class:`~gen3r.pipeline.Gen3RPipeline` that the :func:`add_pipeline_args` options describe."""
    import torch

    from gen3r.pipeline import Gen3RPipeline

    dtype = getattr(torch, DTYPES[args.dtype])
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.device = device  # resolved, so config.json records it
    pipe = Gen3RPipeline.from_pretrained(args.checkpoint, torch_dtype=dtype, architecture=args.architecture)
    if args.offload:
        pipe.enable_offload(device)
    else:
        pipe.to(device)
    if args.text_encoder_cpu:
        pipe.keep_text_encoder_on_cpu()
    if args.vae_tiling:
        pipe.enable_vae_tiling()
    return pipe


def check_model_options(args: argparse.Namespace) -> None:
    """What loading the models would reject late (after minutes at full size): a non-finite
    guidance, a bad architecture file, an unknown device, an --out below a file."""
    import math

    from gen3r.atomic import file_in_the_way
    from gen3r.errors import Gen3RError
    from gen3r.pipeline.loading import check_device, read_architecture, resolve_checkpoint

    if not math.isfinite(args.guidance):
        raise Gen3RError(f"--guidance must be a finite number, got {args.guidance}")
    read_architecture(resolve_checkpoint(args.checkpoint), args.architecture)
    check_device(args.device)
    blocked = file_in_the_way(args.out) if getattr(args, "out", None) is not None else None
    if blocked is not None:
        raise Gen3RError(f"--out {args.out} cannot be created: {blocked} is a file; pass another folder path")


def add_server_args(p: argparse.ArgumentParser, default_port: int) -> None:
    """``--host`` (default 127.0.0.1: this machine only) and ``--port`` of a server subcommand."""
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=bounded("port", int, 1, 65535, "a port number"), default=default_port,
                   help=f"port (default {default_port})")
