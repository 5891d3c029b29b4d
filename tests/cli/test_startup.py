"""`gen3r --help` and argument errors answer without loading the model code."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "gen3r.eval.runner", "gen3r.pipeline", "gen3r.train.loop", "diffusers", "transformers")


def test_building_the_parser_imports_no_model_code():
    """The parser lists datasets, tasks, methods, presets and trajectories from light modules; the
    pipeline, the evaluation runner, diffusers, transformers and torch itself load only when a command
    runs (gen3r.cameras.names, gen3r.data.names and the procedural scene names are torch-free)."""
    code = ("import sys; from gen3r.cli.main import build_parser; build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_light_dataset_names_are_the_runners_readers():
    """`gen3r eval --help` lists gen3r.eval.protocol's names; the runner has a reader for each, in that order."""
    from gen3r.eval.protocol import DATASET_NAMES
    from gen3r.eval.runner import DATASETS

    assert tuple(DATASETS) == DATASET_NAMES
