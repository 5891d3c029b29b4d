"""``gen3r eval``: the paper's benchmark (appearance, geometry, camera metrics) on a dataset.

Thin wrapper over :func:`gen3r.eval.runner.evaluate`; the protocol is in ``docs/evaluation.md``
("Running the benchmark"). Everything that can be checked without the models (dataset, root,
split file, sizes, methods, checkpoint layout, LPIPS weights) fails before they are loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gen3r.cli._common import (
    add_pipeline_args,
    check_model_options,
    load_pipeline,
    positive_float,
    positive_int,
    resolve_checkpoint_defaults,
)


def register(sub: argparse._SubParsersAction) -> None:
    from gen3r.eval.protocol import DATASET_NAMES, TASKS

    p = sub.add_parser("eval", help="benchmark a checkpoint on a dataset (paper tables 1-5, 8)",
                       description="Run Gen3R (and baselines) on dataset sequences, write per-sequence metrics "
                                   "to OUT/metrics.jsonl (resumable) and the paper-style table to "
                                   "OUT/results.md and OUT/results.csv. Under `torchrun --nproc-per-node N -m "
                                   "gen3r.cli eval ...` the sequences are shared out over the N processes (one GPU "
                                   "each) and rank 0 writes the table.")
    p.add_argument("--task", required=True, choices=TASKS,
                   help="1view / 2view generation, or recon (all frames, no camera conditions)")
    p.add_argument("--dataset", required=True, metavar="NAME", help=f"one of {', '.join(DATASET_NAMES)}")
    p.add_argument("--root", required=True, type=Path, help="dataset folder")
    p.add_argument("--split", type=Path, default=None, help="file listing the sequences to use (one per line)")
    add_pipeline_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder (an earlier run there is resumed)")
    p.add_argument("--num-sequences", type=positive_int, default=None,
                   help="sample this many sequences with --seed (default: all; paper: 200/300/80)")
    p.add_argument("--stride", type=positive_int, default=1, help="step between clip frames (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sequence sampling and generation seed (default 0)")
    p.add_argument("--prompt", default="", help="text prompt for every sequence (default empty)")
    p.add_argument("--camera-cond", action=argparse.BooleanOptionalAction, default=None,
                   help="condition on the ground-truth cameras (default: yes for 1view/2view, no for recon)")
    p.add_argument("--baselines", default="auto",
                   help="comma list of vggt, two_stage, vae_only (recon only); 'none'; 'auto' = the paper's "
                        "baselines for the task (1view/2view: vggt,two_stage; recon: vggt,vae_only)")
    p.add_argument("--lpips-weights", type=Path, default=None,
                   help="folder with alex.pth/vgg.pth + the torchvision trunk file; without it LPIPS is empty")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex", help="LPIPS trunk (default alex)")
    p.add_argument("--num-points", type=positive_int, default=20000, help="FPS points per cloud (default 20000)")
    p.add_argument("--max-depth", type=positive_float, default=None,
                   help="ground-truth depth beyond this counts as unknown (e.g. TartanAir sky); default: keep all")
    p.add_argument("--max-points", type=positive_int, default=None,
                   help="random pixel subset for the geometry metrics (default: all pixels)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="record sequences whose files cannot be read (shown in the table, retried by the next "
                        "run) instead of stopping at the first one")
    p.set_defaults(func=run)


def parse_methods(text: str, task: str) -> tuple[str, ...]:
    """``gen3r`` plus the baselines named by ``--baselines``."""
    from gen3r.errors import Gen3RError
    from gen3r.eval.protocol import DEFAULT_BASELINES, METHODS

    if text == "auto":
        return ("gen3r", *DEFAULT_BASELINES[task])
    names = [] if text == "none" else [s.strip() for s in text.split(",") if s.strip()]
    allowed = [m for m in METHODS if m != "gen3r"]
    for name in names:
        if name not in allowed:
            raise Gen3RError(f"unknown baseline {name!r}; use a comma list of {', '.join(allowed)}, 'none' or 'auto'")
    return ("gen3r", *names)


def build_reader(dataset: str, root: Path, split: Path | None):
    """The dataset reader for ``--dataset``/``--root``/``--split`` (errors before any model is loaded)."""
    from gen3r.errors import Gen3RError
    from gen3r.eval.runner import DATASETS

    if dataset not in DATASETS:
        raise Gen3RError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise Gen3RError(f"dataset root {root} {problem}; pass the folder of the {dataset} data with --root")
    return DATASETS[dataset](root, split_file=split)


def run(args: argparse.Namespace) -> int:
    from gen3r.distributed import init_distributed, launched_by_torchrun
    from gen3r.eval.runner import evaluate, plan_run

    reader = build_reader(args.dataset, args.root, args.split)
    resolve_checkpoint_defaults(args)
    check_model_options(args)
    ranks = None
    if launched_by_torchrun():  # data-parallel: sequences sharded over ranks, rank 0 merges and writes
        ranks = init_distributed(args.device)
        args.device = str(ranks.device)
    settings = {"methods": parse_methods(args.baselines, args.task), "num_frames": args.frames,
                "stride": args.stride, "height": args.height, "width": args.width,
                "num_sequences": args.num_sequences, "steps": args.steps, "guidance": args.guidance,
                "prompt": args.prompt, "seed": args.seed, "camera_cond": args.camera_cond,
                "num_points": args.num_points, "max_depth": args.max_depth, "max_points": args.max_points,
                "lpips_net": args.lpips_net if args.lpips_weights else None}
    plan = plan_run(reader, args.task, args.out, dataset=args.dataset, skip_unreadable=args.skip_unreadable,
                    checkpoint=args.checkpoint, **settings)  # settings, sequences, pending work: before any model
    lpips_model = None
    if args.lpips_weights is not None:
        from gen3r.errors import Gen3RError
        from gen3r.eval import LPIPS

        if not args.lpips_weights.is_dir():  # a folder: nothing is ever downloaded
            raise Gen3RError(f"--lpips-weights {args.lpips_weights} is not a folder; pass the folder holding "
                             f"{args.lpips_net}.pth and the torchvision trunk file")
        lpips_model = LPIPS.from_pretrained(args.lpips_weights, net=args.lpips_net)
    pipe = load_pipeline(args) if set(plan.todo) - set(plan.unreadable) else None
    if lpips_model is not None and pipe is not None:
        lpips_model.to(pipe._exec_device)
    evaluate(pipe, reader, args.task, args.out, lpips_model=lpips_model, plan=plan)
    if ranks is None or ranks.is_main:
        print((args.out / "results.md").read_text(), end="")
        print(f"wrote {args.out / 'metrics.jsonl'}, {args.out / 'results.md'}, {args.out / 'results.csv'}")
    return 0
