"""fedsim.world.distributions: sampling moments, exact inverse CDFs, validation, registry."""

from __future__ import annotations

import dataclasses
import math
import pickle
import random
import statistics

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from fedsim.world import distributions as dmod
from fedsim.world.distributions import (
    DISTRIBUTIONS,
    Constant,
    Distribution,
    Empirical,
    Exponential,
    Gamma,
    LogNormal,
    Normal,
    Uniform,
    make_distribution,
    register_distribution,
)

N = 20_000
U_GRID = [1e-12, 1e-6, 1e-3, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1 - 1e-6, 1 - 1e-12]


def _lognormal_ref(mean: float, cv: float):
    sigma = math.sqrt(math.log(1 + cv * cv))
    return st.lognorm(s=sigma, scale=math.exp(math.log(mean) - sigma * sigma / 2))


def _gamma_ref(mean: float, cv: float):
    return st.gamma(a=1 / cv**2, scale=mean * cv**2)


# ------------------------------------------------------------------ sample() moments

# (distribution, theoretical mean, theoretical sd), all derived by hand from the parameters.
MOMENT_CASES = [
    (Exponential(2.0), 2.0, 2.0),
    (LogNormal(1.5, 0.8), 1.5, 1.2),
    (Gamma(3.0, 0.5), 3.0, 1.5),
    (Gamma(0.5, 2.0), 0.5, 1.0),
    (Uniform(1.0, 5.0), 3.0, 4.0 / math.sqrt(12)),
    (Empirical([1, 2, 2, 10]), 3.75, statistics.pstdev([1, 2, 2, 10])),
    (Normal(10.0, 2.0), 10.0, 2.0),  # minimum 0 is 5 sd away: clipping is negligible
]


@pytest.mark.parametrize("dist,mean,sd", MOMENT_CASES, ids=lambda x: repr(x)[:40])
def test_sample_mean_matches_theory(dist, mean, sd):
    assert dist.mean == pytest.approx(mean, rel=1e-12)
    rng = random.Random(12345)
    xs = [dist.sample(rng) for _ in range(N)]
    assert abs(statistics.fmean(xs) - mean) < 4 * sd / math.sqrt(N)


def test_constant_is_constant():
    d = Constant(0.25)
    rng = random.Random(1)
    assert {d.sample(rng) for _ in range(50)} == {0.25}
    assert {d.ppf(u) for u in U_GRID} == {0.25}
    assert d.mean == 0.25


def test_normal_clipping_sample_mean_is_clipped_mean():
    d = Normal(0.5, 1.0)  # minimum 0: about 31% of the mass is clipped
    assert d.mean == 0.5  # documented: the pre-clip mean
    # E[max(0, X)] by numerical integration, independently of the closed form.
    ref = st.norm(0.5, 1.0).expect(lambda x: max(0.0, x), lb=-12, ub=13)
    assert d.clipped_mean == pytest.approx(ref, rel=1e-7)
    rng = random.Random(7)
    xs = [d.sample(rng) for _ in range(N)]
    assert min(xs) == 0.0
    assert abs(statistics.fmean(xs) - d.clipped_mean) < 4 * 1.0 / math.sqrt(N)


@pytest.mark.parametrize("dist,ref", [
    (Exponential(2.0), st.expon(scale=2.0)),
    (LogNormal(1.5, 0.8), _lognormal_ref(1.5, 0.8)),
    (Gamma(3.0, 0.5), _gamma_ref(3.0, 0.5)),
    (Uniform(1.0, 5.0), st.uniform(1.0, 4.0)),
    (Normal(10.0, 2.0), st.norm(10.0, 2.0)),
], ids=lambda x: repr(x)[:30])
def test_sample_follows_the_same_distribution_as_ppf(dist, ref):
    rng = random.Random(2024)
    xs = [dist.sample(rng) for _ in range(5000)]
    assert st.kstest(xs, ref.cdf).pvalue > 1e-3


# ------------------------------------------------------------------ ppf exactness

PPF_CASES = [
    (Exponential(0.05), st.expon(scale=0.05)),
    (Exponential(3.0), st.expon(scale=3.0)),
    (LogNormal(0.8, 0.3), _lognormal_ref(0.8, 0.3)),
    (LogNormal(2.0, 3.0), _lognormal_ref(2.0, 3.0)),
    (Gamma(1.0, 0.1), _gamma_ref(1.0, 0.1)),
    (Gamma(0.2, 1.0), _gamma_ref(0.2, 1.0)),
    (Gamma(5.0, 3.0), _gamma_ref(5.0, 3.0)),
    (Uniform(1.0, 4.0), st.uniform(1.0, 3.0)),
    (Uniform(0.5, 0.5000001), st.uniform(0.5, 0.5000001 - 0.5)),
]


@pytest.mark.parametrize("dist,ref", PPF_CASES, ids=lambda x: repr(x)[:30])
def test_ppf_matches_scipy(dist, ref):
    for u in U_GRID:
        assert math.isclose(dist.ppf(u), float(ref.ppf(u)), rel_tol=1e-9), u
    # the parametrisation by mean (and cv) is the one scipy's distribution has
    assert math.isclose(dist.mean, float(ref.mean()), rel_tol=1e-9)
    if hasattr(dist, "cv"):
        assert math.isclose(float(ref.std()), dist.cv * dist.mean, rel_tol=1e-9)


def test_normal_ppf_is_the_clipped_normal_quantile():
    d = Normal(1.0, 2.0, minimum=0.5)
    ref = st.norm(1.0, 2.0)
    for u in U_GRID:
        assert math.isclose(d.ppf(u), max(0.5, float(ref.ppf(u))), rel_tol=1e-9), u
    assert d.ppf(0.1) == 0.5  # ref.ppf(0.1) is about -1.56


@settings(max_examples=60, deadline=None)
@given(mean=hs.floats(1e-3, 1e3), cv=hs.floats(0.05, 5.0))
def test_lognormal_median_closed_form(mean, cv):
    # The median of a lognormal is exp(mu) = mean / sqrt(1 + cv^2).
    assert math.isclose(LogNormal(mean, cv).ppf(0.5), mean / math.sqrt(1 + cv * cv), rel_tol=1e-12)


ALL_KINDS = [
    Constant(1.0), Exponential(1.0), LogNormal(1.0, 2.0), Gamma(1.0, 0.7), Gamma(1.0, 4.0),
    Uniform(0.0, 2.0), Empirical([3, 1, 4, 1, 5, 9, 2, 6]), Normal(1.0, 1.0), Normal(5.0, 1.0),
]
CONTINUOUS = (Exponential, LogNormal, Gamma, Uniform)


@pytest.mark.parametrize("dist", ALL_KINDS, ids=repr)
def test_ppf_monotone(dist):
    us = [1e-15, 1e-9] + [i / 2000 for i in range(1, 2000)] + [1 - 1e-9, 1 - 1e-15]
    xs = [dist.ppf(u) for u in us]
    assert all(b >= a for a, b in zip(xs, xs[1:]))
    if isinstance(dist, CONTINUOUS) and dist.ppf(0.5) > 0:
        mid = xs[2:-2]
        assert all(b > a for a, b in zip(mid, mid[1:]))


@pytest.mark.parametrize("dist", ALL_KINDS, ids=repr)
@pytest.mark.parametrize("u", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_ppf_rejects_u_outside_open_unit_interval(dist, u):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        dist.ppf(u)


# ------------------------------------------------------------------ empirical

def test_empirical_nearest_rank_by_hand():
    d = Empirical([40, 10, 30, 20])  # sorted: 10 20 30 40; rank = ceil(4u)
    assert d.samples == (10.0, 20.0, 30.0, 40.0)
    assert d.mean == 25.0
    cases = {1e-9: 10, 0.25: 10, 0.2500001: 20, 0.5: 20, 0.5000001: 30, 0.75: 30,
             0.76: 40, 1 - 1e-9: 40}
    for u, want in cases.items():
        assert d.ppf(u) == want, u


def test_empirical_with_ties():
    d = Empirical([5, 1, 1])  # sorted 1 1 5
    assert d.ppf(0.6) == 1  # ceil(1.8) = 2nd smallest
    assert d.ppf(0.7) == 5  # ceil(2.1) = 3rd smallest
    assert d.mean == pytest.approx(7 / 3)


def test_empirical_ppf_agrees_with_numpy_inverted_cdf():
    rng = random.Random(99)
    for _ in range(200):
        samples = [rng.randint(0, 50) for _ in range(rng.randint(1, 12))]
        d = Empirical(samples)
        for _ in range(10):
            u = rng.uniform(1e-6, 1 - 1e-6)
            assert d.ppf(u) == np.quantile(samples, u, method="inverted_cdf"), (samples, u)


def test_empirical_sample_draws_every_value_uniformly():
    d = Empirical([1, 2, 3, 4])
    rng = random.Random(5)
    xs = [d.sample(rng) for _ in range(8000)]
    counts = [xs.count(v) for v in (1.0, 2.0, 3.0, 4.0)]
    assert sum(counts) == len(xs)  # nothing outside the samples
    assert st.chisquare(counts).pvalue > 1e-3


# ------------------------------------------------------------------ validation

BAD = [
    (Constant, dict(value=math.nan), "value"),
    (Constant, dict(value="1"), "value"),
    (Exponential, dict(mean=0), "mean"),
    (Exponential, dict(mean=-1.0), "mean"),
    (Exponential, dict(mean=math.inf), "mean"),
    (LogNormal, dict(mean=0, cv=1), "mean"),
    (LogNormal, dict(mean=1, cv=0), "cv"),
    (LogNormal, dict(mean=1, cv=-0.5), "cv"),
    (Gamma, dict(mean=-2, cv=1), "mean"),
    (Gamma, dict(mean=1, cv=0.0), "cv"),
    (Gamma, dict(mean=1, cv=True), "cv"),
    (Uniform, dict(low=2, high=1), "low"),
    (Uniform, dict(low=0, high=math.inf), "high"),
    (Empirical, dict(samples=[]), "samples"),
    (Empirical, dict(samples=5), "samples"),
    (Empirical, dict(samples=[1, math.nan]), r"samples\[1\]"),
    (Normal, dict(mean=1, sd=0), "sd"),
    (Normal, dict(mean=1, sd=-1), "sd"),
    (Normal, dict(mean=math.nan, sd=1), "mean"),
    (Normal, dict(mean=1, sd=1, minimum=-math.inf), "minimum"),
]


@pytest.mark.parametrize("cls,kwargs,param", BAD, ids=lambda x: str(x)[:30])
def test_invalid_parameters_name_the_parameter(cls, kwargs, param):
    with pytest.raises(ValueError, match=rf"\b{param}"):
        cls(**kwargs)


def test_valid_edge_parameters_are_accepted():
    assert Uniform(2, 2).ppf(0.3) == 2.0
    assert Constant(0).mean == 0.0
    assert Normal(-1.0, 1.0, minimum=-5.0).mean == -1.0
    assert Empirical(np.array([2, 1])).samples == (1.0, 2.0)


def test_frozen_and_picklable():
    g = Gamma(2.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.mean = 3.0
    g2 = pickle.loads(pickle.dumps(g))
    assert g2 == g and g2.ppf(0.3) == g.ppf(0.3)
    assert hash(Empirical([1, 2])) == hash(Empirical([2, 1]))


# ------------------------------------------------------------------ registry

BUILTIN = {
    "constant": (Constant, {"value": 1}),
    "exponential": (Exponential, {"mean": 1}),
    "lognormal": (LogNormal, {"mean": 1, "cv": 1}),
    "gamma": (Gamma, {"mean": 1, "cv": 1}),
    "uniform": (Uniform, {"low": 0, "high": 1}),
    "empirical": (Empirical, {"samples": [1, 2]}),
    "normal": (Normal, {"mean": 1, "sd": 1}),
}


@pytest.mark.parametrize("kind", sorted(BUILTIN))
def test_builtin_kinds_by_dict_spec(kind):
    cls, params = BUILTIN[kind]
    assert DISTRIBUTIONS[kind][0] is cls and DISTRIBUTIONS[kind][1]
    spec = {"kind": kind, **params}
    d = make_distribution(spec)
    assert type(d) is cls and d.name == kind and d == cls(**params)
    assert isinstance(d, Distribution)
    assert spec["kind"] == kind  # the caller's spec is not consumed


def test_instances_and_numbers():
    e = Exponential(1.0)
    assert make_distribution(e) is e
    assert make_distribution(2.5) == Constant(2.5)
    assert make_distribution(3) == Constant(3.0)
    assert make_distribution(np.int64(4)) == Constant(4.0)
    for bad in (True, "exponential", None, [1, 2]):
        with pytest.raises(ValueError, match="cannot make a distribution"):
            make_distribution(bad)


@pytest.mark.parametrize("typo,suggestion", [("expo", "exponential"), ("gama", "gamma"),
                                             ("LogNormal", "lognormal"), ("uniforn", "uniform")])
def test_unknown_kind_suggests_and_lists(typo, suggestion):
    with pytest.raises(ValueError) as exc:
        make_distribution({"kind": typo, "mean": 1})
    msg = str(exc.value)
    assert f"did you mean {suggestion!r}" in msg
    assert all(k in msg for k in BUILTIN)


def test_unknown_kind_without_close_match_still_lists():
    with pytest.raises(ValueError, match="known kinds: constant") as exc:
        make_distribution({"kind": "zipf"})
    assert "did you mean" not in str(exc.value)


@pytest.mark.parametrize("spec,words", [
    ({"mean": 1}, ["'kind'"]),
    ({"kind": 3}, ["kind"]),
    ({"kind": "lognormal", "mean": 1}, ["lognormal", "'cv'"]),
    ({"kind": "exponential", "mean": 1, "scale": 2}, ["exponential", "'scale'"]),
    ({"kind": "gamma", "mean": 1, "cvv": 2}, ["gamma", "'cvv'", "did you mean 'cv'"]),
    ({"kind": "gamma", "mean": 1, "cv": -1}, ["gamma", "cv must be > 0"]),
    ({"kind": "uniform", "low": 3, "high": 1}, ["uniform", "low", "high"]),
    ({"kind": "empirical", "samples": []}, ["empirical", "samples"]),
])
def test_bad_dict_specs_name_kind_and_parameter(spec, words):
    with pytest.raises(ValueError) as exc:
        make_distribution(spec)
    for w in words:
        assert w in str(exc.value)


@dataclasses.dataclass(frozen=True)
class _Pareto:
    """Test-only kind: Pareto(alpha, xm) with a closed-form ppf."""

    alpha: float
    xm: float = 1.0
    name = "pareto_test"

    def __post_init__(self):
        if self.alpha <= 1:
            raise ValueError(f"alpha must be > 1, got {self.alpha}")

    @property
    def mean(self) -> float:
        return self.alpha * self.xm / (self.alpha - 1)

    def sample(self, rng):
        return self.ppf(1 - rng.random())

    def ppf(self, u):
        return self.xm * (1 - u) ** (-1 / self.alpha)


def test_custom_registration():
    assert "pareto_test" not in DISTRIBUTIONS
    try:
        register_distribution("pareto_test", _Pareto, "heavy tail for tests")
        assert DISTRIBUTIONS["pareto_test"] == (_Pareto, "heavy tail for tests")
        d = make_distribution({"kind": "pareto_test", "alpha": 3})
        assert isinstance(d, _Pareto) and isinstance(d, Distribution)
        assert d.mean == 1.5 and d.ppf(0.875) == 2.0  # (1/8)^(-1/3) = 2
        with pytest.raises(ValueError, match="pareto_test.*alpha must be > 1"):
            make_distribution({"kind": "pareto_test", "alpha": 0.5})
        with pytest.raises(ValueError, match="already registered"):
            register_distribution("pareto_test", _Pareto, "again")
        register_distribution("pareto_test", lambda alpha: _Pareto(alpha, 2.0), "xm=2",
                              replace=True)
        assert make_distribution({"kind": "pareto_test", "alpha": 2}).xm == 2.0
    finally:
        DISTRIBUTIONS.pop("pareto_test", None)
    assert "pareto_test" not in dmod.DISTRIBUTIONS


def test_registration_rejects_bad_arguments():
    with pytest.raises(ValueError, match="already registered"):
        register_distribution("gamma", Gamma, "dup")
    with pytest.raises(ValueError, match="non-empty"):
        register_distribution("", Gamma, "x")
    with pytest.raises(ValueError, match="callable"):
        register_distribution("not_callable_test", 3, "x")
    assert "not_callable_test" not in DISTRIBUTIONS
