"""Wall time of the README's main job, `gen3r demo` (mini model, one bundled image -> every output file).

Each run is a fresh process (`python -m gen3r.cli.main demo`), so imports and model loading count.

    python benchmarks/bench_demo.py [--runs 3] [--example room]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--example", default="room")
    args = parser.parse_args()
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "gen3r.cli.main", "demo", "--example", args.example,
                                   "--out", f"{tmp}/demo"], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
        parts = dict(re.findall(r"(load|generate|export) ([0-9.]+) s", done.stdout))
        rows.append((wall, *(float(parts[k]) for k in ("load", "generate", "export"))))
    print("| run | wall (s) | load (s) | generate (s) | export (s) |\n|---|---|---|---|---|")
    for i, row in enumerate(rows, 1):
        print(f"| {i} | " + " | ".join(f"{v:.1f}" for v in row) + " |")


if __name__ == "__main__":
    main()
