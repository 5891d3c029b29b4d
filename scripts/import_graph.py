"""The import graph of the gen3r package: which top-level parts import which, checked against the layers.

    python scripts/import_graph.py                 # this checkout
    python scripts/import_graph.py --ref a3746cb^  # any commit (read with git show, nothing checked out)

Prints the graph between the top-level parts (``gen3r.<part>``; "lazy" = imported inside a function),
then checks, exiting 1 on a violation:

* no import cycle between modules, counting imports inside functions too (a lazy import hides a
  cycle, it does not remove it);
* no upward import: a part imports only parts of a lower layer (:data:`LAYERS`);
* library modules import gen3r at the top: only the entry points (``cli``, ``app``) and the package
  face import inside functions (start-up time of the command line).

Standard library only, so it runs before the environment exists. tests/test_import_graph.py runs it.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# low to high: a part may import the parts of lower layers only
LAYERS = (
    ("(face)", "errors", "defaults"),  # the face only imports lazily (gen3r.Gen3RPipeline)
    ("atomic", "distributed"),
    ("geometry", "models", "cameras"),
    ("data", "io"),
    ("pipeline",),
    ("train", "eval"),
    ("app", "cli"),
)
ENTRY_POINTS = {"cli", "app", "(face)"}  # may import anything inside functions (start-up time)


def read_sources(ref: str | None) -> dict[str, str]:
    """Module name -> source of every ``gen3r/**/*.py`` in the work tree or at git ``ref``."""
    if ref is None:
        return {_module(p.relative_to(ROOT).as_posix()): p.read_text() for p in (ROOT / "gen3r").rglob("*.py")}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "gen3r"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    return {_module(n): subprocess.run(["git", "show", f"{ref}:{n}"], cwd=ROOT, check=True, capture_output=True,
                                       text=True).stdout for n in names if n.endswith(".py")}


def _module(path: str) -> str:
    name = path[:-3].replace("/", ".")
    return name.removesuffix(".__init__")


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(face)"


def imports(sources: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(importer, imported module, at top level) for every absolute or relative gen3r import."""
    found = []
    for module, text in sources.items():
        tree = ast.parse(text)
        top = {id(node) for node in tree.body}
        top |= {id(n) for node in tree.body if isinstance(node, (ast.If, ast.Try)) for n in ast.walk(node)}
        package = module if module in {m.rsplit(".", 1)[0] for m in sources if "." in m} else module.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # "from gen3r.x import y" may import the submodule gen3r.x.y
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
            else:
                continue
            if isinstance(node, ast.ImportFrom) and _type_checking_only(tree, node):
                continue
            for name in names:
                if name.startswith("gen3r") and name != module:
                    found.append((module, name, id(node) in top))
    return found


def _type_checking_only(tree: ast.Module, node: ast.AST) -> bool:
    """Imports under ``if TYPE_CHECKING:`` never run."""
    return any(isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               and any(n is node for n in ast.walk(block)) for block in tree.body)


def cycles(edges: list[tuple[str, str, bool]], sources: dict[str, str]) -> list[list[str]]:
    """Module cycles (each reported once, as a path); imports inside the functions of entry points
    are left out (they run after every module has loaded)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, at_top in edges:
        if at_top or _part(src) not in ENTRY_POINTS:
            graph[src].add(dst)
            # importing a.b.c runs a and a.b first
            parents = {".".join(dst.split(".")[:i]) for i in range(2, len(dst.split(".")))} & set(sources)
            graph[src] |= {p for p in parents if not src.startswith(p + ".") and p != src}
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                if not _is_package_face(cycle):
                    found.append(cycle)
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def _is_package_face(cycle: list[str]) -> bool:
    """A package's ``__init__`` re-exporting its own submodules, which import from each other through
    it (``gen3r.data.procedural`` -> ``.render`` -> ``gen3r.data.procedural``), is the package's face,
    not a cycle between parts of the code: every module of the cycle lies inside one package of it."""
    return any(all(m == face or m.startswith(face + ".") for m in cycle) for face in cycle)


def layer_of(part: str) -> int | None:
    return next((i for i, names in enumerate(LAYERS) if part in names), None)


def check(sources: dict[str, str]) -> tuple[dict[str, set[str]], dict[str, set[str]], list[str]]:
    """(part -> parts imported at the top, part -> parts imported only in functions, problems)."""
    edges = imports(sources)
    top: dict[str, set[str]] = defaultdict(set)
    lazy: dict[str, set[str]] = defaultdict(set)
    for src, dst, at_top in edges:
        a, b = _part(src), _part(dst)
        if a != b:
            (top if at_top else lazy)[a].add(b)
    problems = [f"import cycle: {' -> '.join(c)}" for c in cycles(edges, sources)]
    for src, dst, at_top in edges:
        a, b = _part(src), _part(dst)
        if not at_top and a not in ENTRY_POINTS:
            problems.append(f"lazy import in a library module: {src} imports {dst} inside a function")
        if a == b or (a in ENTRY_POINTS and not at_top) or b == "(face)":
            continue
        la, lb = layer_of(a), layer_of(b)
        if la is None or lb is None:
            problems.append(f"{src} imports {dst}: part {a if la is None else b} has no layer in LAYERS")
        elif lb >= la:
            problems.append(f"upward import: {src} ({a}, layer {la}) imports {dst} ({b}, layer {lb})"
                            + ("" if at_top else " inside a function"))
    return top, lazy, sorted(set(problems))


def report(ref: str | None) -> tuple[str, list[str]]:
    top, lazy, problems = check(read_sources(ref))
    lines = [f"import graph of gen3r at {ref or 'the work tree'} (part -> parts it imports)"]
    for part in sorted(set(top) | set(lazy)):
        extra = sorted(lazy[part] - top[part])
        lazy_text = f"   lazy: {', '.join(extra)}" if extra else ""
        lines.append(f"  {part:<12} -> {', '.join(sorted(top[part])) or '-'}{lazy_text}")
    lines.append("layers (low to high): " + " < ".join("/".join(names) for names in LAYERS))
    lines += [f"  {p}" for p in problems] or ["  no cycles, no upward imports"]
    return "\n".join(lines), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default=None, help="a git commit to read instead of the work tree")
    args = parser.parse_args(argv)
    text, problems = report(args.ref)
    print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
