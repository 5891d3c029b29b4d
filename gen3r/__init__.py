"""gen3r: Gen3R (3D scene generation meets feed-forward reconstruction), reimplemented.

``from gen3r import Gen3RPipeline`` is resolved lazily so that ``import gen3r`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gen3r.pipeline import Gen3ROutput, Gen3RPipeline

__version__ = "0.1.0"
__all__ = ["Gen3RPipeline", "Gen3ROutput", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Gen3RPipeline", "Gen3ROutput"):
        from gen3r import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'gen3r' has no attribute {name!r}")
