"""`gen3r --threads` and the warning about CPU jobs sharing cores."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from gen3r.cli import main as cli_main
from gen3r.cli.main import main


@pytest.fixture
def restore_threads():
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


def test_threads_sets_torch_and_worker_threads(restore_threads, capsys):
    assert main(["--threads", "1", "cameras", "list"]) == 0
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_bad_thread_count_is_one_line(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main([f"--threads={bad}", "cameras", "list"])
    assert exc.value.code == 2
    assert "positive number of threads" in capsys.readouterr().err


def test_busy_cpu_warns_model_runs_only(monkeypatch, caplog, restore_threads):
    monkeypatch.setattr(cli_main.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cli_main.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with caplog.at_level(logging.WARNING, logger="gen3r"):
        cli_main.configure_threads(None, "generate")
        assert "already busy (load 1.9 on 2 cores)" in caplog.text and "--threads" in caplog.text
        caplog.clear()
        cli_main.configure_threads(None, "cameras")  # not a model run
        assert caplog.text == ""
        monkeypatch.setattr(cli_main.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
        cli_main.configure_threads(1, "train")       # one busy core + 1 thread: fits 2 cores
        assert caplog.text == ""
        monkeypatch.delenv("OMP_NUM_THREADS")        # (--threads exported it for worker processes)
        cli_main.configure_threads(None, "train")    # one busy core + every core: shared
        assert "already busy" in caplog.text
        caplog.clear()
    monkeypatch.setattr(cli_main.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    with caplog.at_level(logging.WARNING, logger="gen3r"):
        cli_main.configure_threads(None, "generate")
    assert caplog.text == ""


def test_a_multiline_library_error_prints_as_one_line(monkeypatch, capsys):
    from gen3r.cli import cameras
    from gen3r.errors import Gen3RError

    def fail(args):
        raise Gen3RError("first part\n  second part\n")

    monkeypatch.setattr(cameras, "run_list", fail)
    assert main(["cameras", "list"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["gen3r: error: first part; second part"]


@pytest.mark.parametrize("flag", ["--guidance=inf", "--guidance=nan", "--fps=0"])
def test_generate_numbers_must_be_finite(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["generate", str(tmp_path / "x.png"), flag, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err
