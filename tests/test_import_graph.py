"""The import graph (scripts/import_graph.py): no cycles, no upward imports between the parts of
gen3r, library modules import at the top; and the checker finds each kind of problem it claims to."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests._tiny import ROOT

SCRIPT = ROOT / "scripts" / "import_graph.py"


def _checker():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_cycles_and_no_upward_imports():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "no cycles, no upward imports" in proc.stdout
    assert "  models       -> errors\n" in proc.stdout  # the graph is printed, part by part


def test_the_checker_finds_cycles_upward_and_lazy_imports():
    graph = _checker()
    sources = {
        "gen3r": "",
        "gen3r.errors": "",
        "gen3r.models": "",
        "gen3r.models.a": "from gen3r.pipeline.p import x\n",                      # upward (models < pipeline)
        "gen3r.pipeline": "",
        "gen3r.pipeline.p": "from gen3r.pipeline.q import y\n",
        "gen3r.pipeline.q": "def f():\n    from gen3r.pipeline.p import x\n",  # a cycle hidden in a function
        "gen3r.cli": "",
        "gen3r.cli.main": "def main():\n    from gen3r.pipeline.p import x\n",  # entry points may import late
        "gen3r.io": "from gen3r.io.b import z\n",                                 # a package face is no cycle
        "gen3r.io.b": "import gen3r.io.c\n",
        "gen3r.io.c": "from gen3r.io import z\n",
    }
    top, lazy, problems = graph.check(sources)
    assert problems == [
        "import cycle: gen3r.pipeline.p -> gen3r.pipeline.q -> gen3r.pipeline.p",
        "lazy import in a library module: gen3r.pipeline.q imports gen3r.pipeline.p inside a function",
        "upward import: gen3r.models.a (models, layer 2) imports gen3r.pipeline.p (pipeline, layer 4)",
    ]
    assert top["models"] == {"pipeline"} and lazy["cli"] == {"pipeline"}
