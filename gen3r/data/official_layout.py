"""The index files of the official Gen3R data layout, read in one place for training and evaluation.

A dataset folder ``<root>/<dataset>`` lists its scenes per split in ``<split>_videos_dirs.txt`` (the
frame folders), ``<split>_cameras_paths.txt`` (each scene's ``transforms.json``, OpenCV c2w) and
``<split>_captions_paths.txt``, one scene per line, paths absolute or relative to the dataset
folder (:func:`gen3r.data.writers.write_official` writes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gen3r.errors import Gen3RError

INDEX_KEYS = ("videos_dirs", "cameras_paths", "captions_paths")


@dataclass(frozen=True)
class OfficialScene:
    """One scene of the index: its frame folder, camera file and caption file (None when the split
    has no caption index and none was required)."""

    images: Path
    transforms: Path
    captions: Path | None

    @property
    def name(self) -> str:
        """The scene's folder name (the folder of its ``transforms.json``)."""
        return self.transforms.parent.name


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise Gen3RError(f"index file {path} is missing; the official layout needs "
                         f"<dataset>/<split>_{{{','.join(INDEX_KEYS)}}}.txt")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_official_index(folder: str | Path, split: str, require_captions: bool = True) -> list[OfficialScene]:
    """The scenes of ``split`` in the dataset folder ``folder``; Gen3RError names a missing folder or
    index file, index files of different lengths, or an empty split."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Gen3RError(f"dataset folder {folder} does not exist; pass the folder that holds "
                         f"{split}_videos_dirs.txt and {split}_cameras_paths.txt")
    keys = INDEX_KEYS if require_captions or (folder / f"{split}_captions_paths.txt").is_file() else INDEX_KEYS[:2]
    lists = [_read_lines(folder / f"{split}_{key}.txt") for key in keys]
    if len({len(lst) for lst in lists}) != 1:
        raise Gen3RError(f"{folder}: the {split}_*.txt index files list different numbers of scenes "
                         f"({', '.join(str(len(lst)) for lst in lists)}); regenerate them")
    if not lists[0]:
        raise Gen3RError(f"{folder}/{split}_videos_dirs.txt lists no scenes")

    def resolve(text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else folder / path

    return [OfficialScene(resolve(row[0]), resolve(row[1]), resolve(row[2]) if len(row) > 2 else None)
            for row in zip(*lists)]
