"""fedsim.world.service: distribution and token service models, and their registry."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from fedsim.world.distributions import DISTRIBUTIONS, Constant, Exponential, Gamma, LogNormal
from fedsim.world.service import (
    SERVICE_MODELS,
    DistributionService,
    ServiceModel,
    ServiceTime,
    TokenService,
    make_service_model,
    register_service_model,
)

US = [1e-9, 0.1, 0.5, 0.9, 1 - 1e-9]


def test_service_time_defaults_and_frozen():
    st = ServiceTime(1.5)
    assert (st.total, st.ttft, st.tpot) == (1.5, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.total = 2.0


# ------------------------------------------------------------------ DistributionService

def test_distribution_service_is_the_inverse_cdf():
    m = DistributionService(Exponential(0.5))
    assert isinstance(m, ServiceModel)
    for u in US:
        st = m.service(u, 100, 20, 3)
        assert st.total == pytest.approx(-0.5 * math.log1p(-u), rel=1e-12)
        assert st.ttft is None and st.tpot is None


def test_distribution_service_ignores_tokens_and_batch():
    m = DistributionService(LogNormal(1.0, 2.0))
    ref = m.service(0.3, 1, 1, 0).total
    for args in [(0, 0, 0), (4000, 1000, 0), (10, 10, 50)]:
        assert m.service(0.3, *args).total == ref


def test_distribution_service_accepts_specs():
    assert DistributionService({"kind": "constant", "value": 0.2}).dist == Constant(0.2)
    assert DistributionService(0.75).service(0.5, 1, 1, 0).total == 0.75


@pytest.mark.parametrize("spec", [-0.1, {"kind": "uniform", "low": -1, "high": 1},
                                  {"kind": "normal", "mean": 1, "sd": 1, "minimum": -0.5}])
def test_distribution_service_rejects_negative_times(spec):
    with pytest.raises(ValueError, match="negative"):
        DistributionService(spec)


def test_distribution_service_accepts_zero_floor():
    m = DistributionService({"kind": "normal", "mean": 0.1, "sd": 1.0})  # minimum 0
    assert m.service(0.01, 1, 1, 0).total == 0.0


# ------------------------------------------------------------------ TokenService

def test_token_service_hand_computed():
    m = TokenService(prefill_per_token=0.001, decode_per_token=0.02, batch_slowdown=0.1,
                     overhead=0.05)
    st = m.service(0.5, input_tokens=200, output_tokens=50, running=3)
    # iteration = 0.02 * (1 + 0.1*3) = 0.026; prefill = 0.05 + 0.001*200 = 0.25
    assert st.tpot == pytest.approx(0.026)
    assert st.ttft == pytest.approx(0.276)
    assert st.total == pytest.approx(0.25 + 50 * 0.026)  # 1.55


def test_token_service_defaults_and_zero_output():
    m = TokenService(0.002, 0.01)
    st = m.service(0.5, input_tokens=100, output_tokens=0, running=7)  # no slowdown by default
    assert st.tpot == pytest.approx(0.01)
    assert st.ttft == pytest.approx(0.21)
    assert st.total == pytest.approx(0.21)  # max(0, 1) = 1 iteration: total == ttft
    assert m.service(0.5, 100, 1, 7) == st


def test_token_service_ignores_u():
    m = TokenService(0.001, 0.02, 0.2, 0.01)
    assert len({m.service(u, 300, 40, 2) for u in US}) == 1


@settings(max_examples=150, deadline=None)
@given(p=hs.floats(0, 0.01), d=hs.floats(0, 0.1), s=hs.floats(0, 1), o=hs.floats(0, 1),
       inp=hs.integers(0, 8192), out=hs.integers(0, 4096), running=hs.integers(0, 256))
def test_token_service_invariants(p, d, s, o, inp, out, running):
    st = TokenService(p, d, s, o).service(0.5, inp, out, running)
    assert st.tpot == pytest.approx(d * (1 + s * running), rel=1e-12, abs=1e-300)
    assert st.ttft <= st.total * (1 + 1e-12)
    assert st.total == pytest.approx(st.ttft + (max(out, 1) - 1) * st.tpot, rel=1e-9, abs=1e-12)
    assert st.total >= 0


def test_batch_slowdown_monotone_in_running():
    m = TokenService(0.001, 0.02, batch_slowdown=0.05)
    sts = [m.service(0.5, 500, 100, r) for r in range(20)]
    for a, b in zip(sts, sts[1:]):
        assert b.total > a.total and b.ttft > a.ttft and b.tpot > a.tpot
    flat = TokenService(0.001, 0.02)
    assert len({flat.service(0.5, 500, 100, r) for r in range(20)}) == 1


def test_monotone_in_tokens():
    m = TokenService(0.001, 0.02, 0.1, 0.01)
    by_in = [m.service(0.5, i, 10, 2).total for i in range(0, 2000, 100)]
    by_out = [m.service(0.5, 10, o, 2).total for o in range(1, 200, 10)]
    assert all(b > a for a, b in zip(by_in, by_in[1:]))
    assert all(b > a for a, b in zip(by_out, by_out[1:]))


@pytest.mark.parametrize("param", ["prefill_per_token", "decode_per_token", "batch_slowdown",
                                   "overhead"])
@pytest.mark.parametrize("value", [-0.001, math.nan, math.inf, "0.1"])
def test_token_service_validation_names_parameter(param, value):
    kwargs = dict(prefill_per_token=0.001, decode_per_token=0.02)
    kwargs[param] = value
    with pytest.raises(ValueError, match=param):
        TokenService(**kwargs)


@pytest.mark.parametrize("args", [(-1, 10, 0), (10, -1, 0), (10, 10, -1)])
def test_token_service_rejects_negative_counts(args):
    with pytest.raises(ValueError, match=">= 0"):
        TokenService(0.001, 0.02).service(0.5, *args)


# ------------------------------------------------------------------ registry

def test_make_service_model_from_objects_and_numbers():
    tok = TokenService(0.001, 0.02)
    assert make_service_model(tok) is tok
    g = Gamma(1.0, 0.5)
    m = make_service_model(g)
    assert isinstance(m, DistributionService) and m.dist is g
    c = make_service_model(0.3)
    assert all(c.service(u, 5, 5, 5).total == 0.3 for u in US)
    for bad in (True, "tokens", None):
        with pytest.raises(ValueError, match="cannot make a service model"):
            make_service_model(bad)


def test_make_service_model_from_distribution_dict():
    m = make_service_model({"kind": "exponential", "mean": 2.0})
    assert isinstance(m, DistributionService) and m.dist == Exponential(2.0)
    assert m.service(0.5, 1, 1, 0).total == pytest.approx(2.0 * math.log(2))
    with pytest.raises(ValueError, match="lognormal.*'cv'"):
        make_service_model({"kind": "lognormal", "mean": 1.0})


def test_make_service_model_tokens():
    spec = {"kind": "tokens", "prefill_per_token": 0.001, "decode_per_token": 0.02,
            "batch_slowdown": 0.1}
    m = make_service_model(spec)
    assert m == TokenService(0.001, 0.02, 0.1, 0.0)
    assert SERVICE_MODELS["tokens"][0] is TokenService and SERVICE_MODELS["tokens"][1]
    assert spec["kind"] == "tokens"


@pytest.mark.parametrize("spec,words", [
    ({"kind": "tokens", "decode_per_token": 0.02}, ["tokens", "'prefill_per_token'"]),
    ({"kind": "tokens", "prefill_per_token": 0, "decode_per_token": -1},
     ["tokens", "decode_per_token must be >= 0"]),
    ({"kind": "tokens", "prefill_per_token": 0, "decode_per_token": 1, "slowdown": 1},
     ["tokens", "'slowdown'", "did you mean 'batch_slowdown'"]),
    ({"kind": "tokns"}, ["did you mean 'tokens'", "exponential"]),
    ({"kind": "expon", "mean": 1}, ["did you mean 'exponential'"]),
    ({"decode_per_token": 1}, ["'kind'"]),
])
def test_bad_service_specs(spec, words):
    with pytest.raises(ValueError) as exc:
        make_service_model(spec)
    for w in words:
        assert w in str(exc.value)


class _Fixed:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def service(self, u, input_tokens, output_tokens, running):
        return ServiceTime(self.seconds)


def test_custom_service_model_registration():
    try:
        register_service_model("fixed_test", _Fixed, "test-only")
        m = make_service_model({"kind": "fixed_test", "seconds": 0.4})
        assert isinstance(m, _Fixed) and isinstance(m, ServiceModel)
        assert m.service(0.5, 1, 1, 0).total == 0.4
        with pytest.raises(ValueError, match="already registered"):
            register_service_model("fixed_test", _Fixed, "again")
        register_service_model("fixed_test", lambda: _Fixed(1.0), "one second", replace=True)
        assert make_service_model({"kind": "fixed_test"}).seconds == 1.0
    finally:
        SERVICE_MODELS.pop("fixed_test", None)


def test_service_model_may_not_silently_shadow_a_distribution():
    assert "gamma" in DISTRIBUTIONS
    with pytest.raises(ValueError, match="distribution kind"):
        register_service_model("gamma", _Fixed, "shadow")
    assert "gamma" not in SERVICE_MODELS
    assert isinstance(make_service_model({"kind": "gamma", "mean": 1, "cv": 1}),
                      DistributionService)
