"""The names of the dataset layouts :mod:`gen3r.data.writers` writes, without torch: the command
line's parser lists them before any model code loads."""

from __future__ import annotations

#: Layouts ``gen3r scene --format`` writes, one ``write_<name>`` each in :mod:`gen3r.data.writers`.
FORMATS: tuple[str, ...] = ("official", "re10k", "nerfstudio", "npz")
