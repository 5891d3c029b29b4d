"""gen3r: Gen3R (3D scene generation meets feed-forward reconstruction), reimplemented."""

__version__ = "0.1.0"
