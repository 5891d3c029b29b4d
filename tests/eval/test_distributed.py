"""Data-parallel evaluation: `torchrun --nproc-per-node 2 -m gen3r.cli eval` gives the table of one
process (gloo on the CPU, the tiny official-layout checkpoint), and merges what killed ranks left."""

from __future__ import annotations

import json
from pathlib import Path

from gen3r.cli.main import main as gen3r
from gen3r.data.cache import write_eval_layout
from gen3r.eval.runner import latest_records, merge_rank_records
from tests._tiny import ROOT, torchrun

CKPT = ROOT / "tests" / "data" / "official-tiny" / "checkpoint"


def _eval_args(data: Path, out: Path) -> list[str]:
    return ["eval", "--task", "1view", "--dataset", "official", "--root", str(data), "--out", str(out),
            "--checkpoint", str(CKPT), "--frames", "5", "--height", "112", "--width", "112", "--steps", "2",
            "--baselines", "copy_first,vggt", "--num-points", "300"]


def _metrics(out: Path) -> dict:
    return {(r["sequence"], r["method"]): r["metrics"] for r in latest_records(out)}


def test_two_processes_give_the_one_process_table(tmp_path):
    data = write_eval_layout(tmp_path / "data", range(1_000_000, 1_000_005), num_frames=5)
    one, two = tmp_path / "one", tmp_path / "two"
    assert gen3r(_eval_args(data, one)) == 0
    result = torchrun(_eval_args(data, two))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1  # only rank 0 reports
    assert not list(two.glob("metrics.rank*.jsonl"))
    a, b = _metrics(one), _metrics(two)
    assert set(a) == set(b) and len(a) == 15
    for key in a:
        for metric, value in a[key].items():
            if value is None:
                assert b[key][metric] is None
            else:
                assert abs(value - b[key][metric]) <= 1e-5 * max(1.0, abs(value)), (key, metric)
    assert (one / "results.md").read_text().split("\n", 1)[1] == (two / "results.md").read_text().split("\n", 1)[1]
    # the record order does not depend on the number of processes
    def order(folder):
        records = map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
        return [(r["sequence"], r["method"]) for r in records]

    assert order(two) == order(one)


def test_rank_files_of_a_killed_run_are_merged(tmp_path):
    (tmp_path / "metrics.rank1.jsonl").write_text(
        json.dumps({"sequence": "b", "method": "gen3r", "metrics": {}}) + "\n" + '{"sequence": "c", "meth')
    record = {"sequence": "a", "method": "gen3r", "metrics": {}}
    (tmp_path / "metrics.rank0.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"sequence": "z", "method": "gen3r", "metrics": {}}) + "\n")
    assert merge_rank_records(tmp_path, ["a", "b", "c"]) == 2
    assert [r["sequence"] for r in latest_records(tmp_path)] == ["z", "a", "b"]
    assert not list(tmp_path.glob("metrics.rank*"))
