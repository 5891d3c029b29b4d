"""User-facing error types.

Every error a user can cause (bad file, bad argument, bad checkpoint) is raised as a
:class:`Gen3RError` whose message is one line that names the problem and the fix. The CLI
turns it into ``gen3r: error: <message>`` and exit code 2.
"""

from __future__ import annotations


class Gen3RError(ValueError):
    """A problem with the user's input; the message says what is wrong and how to fix it."""


class CheckpointError(Gen3RError):
    """A checkpoint folder or file that cannot be loaded strictly."""
