"""Atomic writes: a file or a whole output folder appears complete or not at all."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

#: ``.<name>.<pid>.<8 random chars>.tmp[<suffix>]``: the temporaries of this module (pid = writer).
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def file_in_the_way(path: str | Path, include_self: bool = False) -> Path | None:
    """The first existing non-folder among ``path``'s parents (and ``path`` itself with
    ``include_self``): what would make creating ``path`` as a folder, or a file below them, fail.
    None when nothing is in the way."""
    path = Path(path)
    candidates = (path, *path.parents) if include_self else path.parents
    return next((p for p in candidates if p.exists() and not p.is_dir()), None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries a killed writer left in ``folder`` (``.<name>.<pid>.<random>.tmp...``
    of :func:`atomic_path` / :func:`atomic_dir` whose process no longer runs; SIGKILL skips their
    cleanup). Returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed:
        logger.info("removed %d temporaries of killed writers in %s", len(removed), folder)
    return removed


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; use normal file permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``.

    With ``overwrite=False`` an existing non-empty ``path`` is an error raised before any write.
    On error the temporary folder is deleted: no half-written output is left behind.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise Gen3RError(f"output {path} is a file; pass a folder path")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise Gen3RError(f"output folder {path} exists and is not empty; choose another --out or pass --overwrite")
    tmp = temporary_dir(path)
    try:
        yield tmp
        publish_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def temporary_dir(path: str | Path) -> Path:
    """A new temporary folder next to ``path``, named for :func:`sweep_stale_temporaries` (the
    writer's pid in it), after sweeping what killed writers left there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))


def publish_dir(tmp: Path, path: str | Path) -> None:
    """Put the finished temporary folder ``tmp`` in place of ``path`` (an existing one is replaced)."""
    path = Path(path)
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; use normal folder permissions
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
