"""fedsim.sketch.QuantileSketch: every quantile within the stated relative error of numpy's
exact ``method="higher"`` quantile, merging equals sketching the union, edge cases."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from fedsim.sketch import DEFAULT_ALPHA, QuantileSketch

QS = np.concatenate([np.linspace(0, 1, 201), [0.999, 0.9999, 0.99999, 1e-4, 1 - 1e-12]])


def distributions(seed: int, n: int = 50_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "lognormal(0, 2)": rng.lognormal(0.0, 2.0, n),
        "pareto(1.1) heavy tail": rng.pareto(1.1, n) + 1e-3,
        "exponential(50 ms)": rng.exponential(0.05, n),
        "weibull(0.5)": rng.weibull(0.5, n) + 1e-9,
        "mixture with a 1% 100x tail": np.where(rng.random(n) < 0.01, 100.0, 1.0)
                                       * rng.gamma(2.0, 0.1, n),
        "latencies in ns units": np.round(rng.lognormal(-2, 1, n) * 1e9) / 1e9,
        "few distinct values": rng.choice([0.001, 0.01, 0.5, 2.0], n),
        "signed with zeros": np.concatenate([-rng.lognormal(0, 1, n // 4), np.zeros(100),
                                             rng.lognormal(0, 1, n // 2)]),
        "tiny n": rng.lognormal(0, 1, 7),
    }


def relative_errors(sketch: QuantileSketch, x: np.ndarray, qs=QS) -> np.ndarray:
    exact = np.quantile(x, qs, method="higher")
    est = sketch.quantiles(qs)
    scale = np.abs(exact)
    err = np.abs(est - exact)
    return np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), err)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("alpha", [DEFAULT_ALPHA, 0.01, 0.001])
def test_quantiles_within_relative_error_of_numpy(seed, alpha):
    for name, x in distributions(seed).items():
        s = QuantileSketch(alpha)
        for part in np.array_split(x, 7):  # fed in chunks, like a streamed run
            s.add(part)
        err = relative_errors(s, x)
        assert err.max() <= alpha * (1 + 1e-9), (name, float(err.max()))
        assert s.count == len(x)
        assert s.min == x.min() and s.max == x.max()
        assert s.mean == pytest.approx(x.mean(), rel=1e-9, abs=1e-12)
        assert s.quantile(0.0) == x.min() and s.quantile(1.0) == x.max()


def test_percentile_follows_np_percentile_arithmetic():
    """np.percentile divides by 100 first (99.9 / 100 != 0.999 in floats): percentile()
    picks the same order statistic as np.percentile, quantile() the one of np.quantile /
    pandas' Series.quantile."""
    x = np.arange(1001, dtype=float) + 1.0  # n - 1 = 1000: the two rules differ at p99.9
    s = QuantileSketch(1e-4).add(x)
    assert np.percentile(x, 99.9, method="higher") != np.quantile(x, 0.999, method="higher")
    assert s.percentile(99.9) == pytest.approx(np.percentile(x, 99.9, method="higher"), rel=1e-4)
    assert s.quantile(0.999) == pytest.approx(np.quantile(x, 0.999, method="higher"), rel=1e-4)


@pytest.mark.parametrize("seed", [4, 5])
def test_merge_equals_sketching_the_union(seed):
    for name, x in distributions(seed).items():
        cut = len(x) // 3
        a = QuantileSketch().add(x[:cut])
        b = QuantileSketch().add(x[cut:])
        union = QuantileSketch().add(x)
        merged = a.copy().merge(b)
        assert merged.same_buckets(union), name
        np.testing.assert_array_equal(merged.quantiles(QS), union.quantiles(QS))
        assert merged.sum == pytest.approx(union.sum, rel=1e-12, abs=1e-12)
        # merging is commutative and merged() of many is the union too
        assert b.copy().merge(a).same_buckets(union)
        parts = [QuantileSketch().add(p) for p in np.array_split(x, 5)]
        assert QuantileSketch.merged(parts).same_buckets(union)


def test_empty_and_invalid():
    s = QuantileSketch()
    assert math.isnan(s.quantile(0.5)) and math.isnan(s.mean) and s.count == 0
    s.add([])
    assert s.count == 0
    with pytest.raises(ValueError, match="finite"):
        s.add([1.0, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        s.add([float("inf")])
    with pytest.raises(ValueError):
        s.quantile(1.5)
    with pytest.raises(ValueError):
        QuantileSketch(0.0)
    with pytest.raises(ValueError, match="different alpha"):
        QuantileSketch(0.01).merge(QuantileSketch(0.02))
    merged = QuantileSketch().merge(QuantileSketch())
    assert merged.count == 0 and math.isnan(merged.quantile(0.99))


def test_state_round_trip_and_pickle():
    x = np.random.default_rng(9).lognormal(0, 1, 10_000)
    s = QuantileSketch().add(x).add(-x[:10]).add([0.0])
    for copy in (QuantileSketch.from_state(s.state()), pickle.loads(pickle.dumps(s))):
        assert copy.same_buckets(s)
        np.testing.assert_array_equal(copy.quantiles(QS), s.quantiles(QS))


def test_memory_grows_with_the_range_not_the_count():
    rng = np.random.default_rng(11)
    s = QuantileSketch()
    for _ in range(20):
        s.add(rng.uniform(1e-3, 10.0, 100_000))  # 4 decades
    assert s.count == 2_000_000
    # log(1e4) / log(gamma) buckets, gamma = 1.01005: about 920
    assert s.buckets < 1_000
    assert s.describe_error() == "+-0.5 % relative"
