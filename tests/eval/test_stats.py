"""Bootstrap intervals: analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gen3r.errors import Gen3RError
from gen3r.eval.stats import bootstrap_interval


def test_constant_values_have_a_zero_width_interval():
    assert bootstrap_interval([2.5] * 10) == (2.5, 2.5, 2.5)


def test_interval_matches_the_normal_approximation():
    x = np.random.default_rng(0).normal(3.0, 2.0, 400)
    mean, low, high = bootstrap_interval(x, resamples=4000)
    half = 1.96 * x.std() / math.sqrt(len(x))  # standard error of the mean
    assert mean == pytest.approx(x.mean())
    assert low == pytest.approx(mean - half, abs=0.03) and high == pytest.approx(mean + half, abs=0.03)


def test_deterministic_and_ignores_missing_values():
    a = bootstrap_interval([1.0, 2.0, None, float("nan"), 4.0], seed=3)
    assert a == bootstrap_interval([1.0, 2.0, 4.0], seed=3) and a[0] == pytest.approx(7 / 3)
    assert all(math.isnan(v) for v in bootstrap_interval([]))
    with pytest.raises(Gen3RError, match="level"):
        bootstrap_interval([1.0], level=1.0)
