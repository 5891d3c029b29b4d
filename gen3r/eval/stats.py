"""Uncertainty of benchmark numbers: percentile bootstrap over scenes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gen3r.errors import Gen3RError


def bootstrap_interval(values: Sequence[float], level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` (one per scene) and its percentile-bootstrap ``level`` interval.

    Scenes are resampled with replacement ``resamples`` times (fixed ``seed``: the same numbers on
    every run); the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    resampled means. NaNs are dropped first. Returns ``(mean, low, high)``; all NaN without values.
    """
    if not 0 < level < 1:
        raise Gen3RError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise Gen3RError(f"resamples must be >= 1, got {resamples}")
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(low), float(high)
