"""gen3r.geometry._sort.argsort_keys (parallel LSD radix sort) against np.argsort(kind="stable")."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from gen3r.geometry import _sort
from gen3r.geometry._sort import argsort_keys

LARGE = _sort._MIN_KEYS  # from here on the radix sort runs


def _check(keys: np.ndarray) -> None:
    """Exact equality with numpy's stable argsort, with and without the sorted keys; input kept."""
    before = keys.copy()
    want = np.argsort(keys, kind="stable")
    order = argsort_keys(keys)
    assert order.dtype == np.int64 and order.shape == keys.shape
    np.testing.assert_array_equal(order, want)
    order2, sorted_keys = argsort_keys(keys, return_sorted=True)
    np.testing.assert_array_equal(order2, want)
    assert sorted_keys.dtype == np.int64
    np.testing.assert_array_equal(sorted_keys, keys[want])
    np.testing.assert_array_equal(keys, before)  # the caller's array is never written
    assert keys.dtype == before.dtype


def _key_sets(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    wide = rng.integers(0, 2**62, 7, endpoint=True)
    return {
        "uniform_small": rng.integers(0, 1000, n),
        "many_duplicates": rng.integers(0, 7, n),  # long runs of equal keys: stability matters
        "wide": rng.integers(0, 2**62, n, endpoint=True),  # six 11-bit passes
        "wide_duplicates": wide[rng.integers(0, wide.size, n)],  # equal keys through every pass
        "max_key": np.where(rng.random(n) < 0.5, 2**62, rng.integers(0, 3, n)),
        "int64_max": np.where(rng.random(n) < 0.3, np.iinfo(np.int64).max, rng.integers(0, 2**62, n)),
        "single_key": np.full(n, 123_456_789),
        "all_zero": np.zeros(n, dtype=np.int64),
        "sorted": np.sort(rng.integers(0, 5000, n)),
        "reversed": np.sort(rng.integers(0, 5000, n))[::-1].copy(),
        "one_bit_per_pass": ((rng.integers(0, 2, n) << 10) | (rng.integers(0, 2, n) << 21)
                             | (rng.integers(0, 2, n) << 32)),
    }


@pytest.mark.parametrize("n", [1, 2, 3, 1000, LARGE - 1])
def test_small_inputs_use_numpy_and_equal_it(n: int) -> None:
    for keys in _key_sets(np.random.default_rng(n), n).values():
        _check(keys)


@pytest.mark.parametrize("n", [LARGE, LARGE + 1, 150_001])
def test_large_inputs_radix_sort_equals_stable_argsort(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    passes = []
    radix_pass = _sort._radix_pass
    monkeypatch.setattr(_sort, "_radix_pass", lambda *args: passes.append(args[4]) or radix_pass(*args))
    for name, keys in _key_sets(np.random.default_rng(n), n).items():
        assert keys.min() >= 0, name
        passes.clear()
        _check(keys)
        assert passes, name  # the radix sort ran (not numpy)


def test_radix_sort_on_tiny_inputs_and_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The radix path itself on sizes below the numpy cutoff (fewer keys than threads, ...)."""
    monkeypatch.setattr(_sort, "_MIN_KEYS", 1)
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 5, 17, 2049, 5000):
        for keys in _key_sets(rng, n).values():
            _check(keys)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        for keys in _key_sets(rng, 3000).values():
            _check(keys)
    finally:
        numba.set_num_threads(threads)


def test_other_integer_dtypes_and_strided_input() -> None:
    rng = np.random.default_rng(12)
    base = rng.integers(0, 300, 2 * LARGE + 10)
    for keys in (base.astype(np.int32), base.astype(np.uint16), base.astype(np.uint32), base[::2], base[1::3]):
        _check(keys)


def test_large_input_is_not_modified_even_when_int64_contiguous() -> None:
    keys = np.random.default_rng(13).integers(0, 2**40, LARGE + 5)
    before = keys.copy()
    order, sorted_keys = argsort_keys(keys, return_sorted=True)
    assert not np.shares_memory(sorted_keys, keys)
    np.testing.assert_array_equal(keys, before)
    np.testing.assert_array_equal(sorted_keys, np.sort(before, kind="stable"))
    np.testing.assert_array_equal(order, np.argsort(before, kind="stable"))


def test_negative_keys_raise_on_both_paths() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        argsort_keys(np.array([3, -1, 2]))
    keys = np.random.default_rng(14).integers(0, 100, LARGE)
    keys[LARGE // 2] = -1
    with pytest.raises(ValueError, match="non-negative"):
        argsort_keys(keys)
    keys[LARGE // 2] = np.iinfo(np.int64).min
    with pytest.raises(ValueError, match="non-negative"):
        argsort_keys(keys, return_sorted=True)
