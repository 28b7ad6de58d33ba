"""fedsim.world against queueing theory: M/M/1 under random splitting, and M/M/c (Erlang C).

The worlds here have no network delay (one region, ``intra_region_rtt=0``), no faults and a
health configuration that never matters (``degraded_latency`` far above any latency,
``min_score=0``), so a request's latency is exactly its sojourn time at the node.

Tolerances come from independent replications (fixed seeds): with ``R`` replication means
``m_1..m_R`` we assert ``|mean(m) - theory| < 4 * SE + bias``, ``SE = sd(m) / sqrt(R)``,
where ``bias`` is a small allowance for what replication noise does not cover (the finite
warm-up, nanosecond rounding of service times, the censored tail at the end of the run).
Each test also checks that the tolerance itself stays tight (``4 * SE`` below a few percent of
the theoretical value), so a simulator that became very noisy cannot pass by widening it.
"""

from __future__ import annotations

import math
import statistics

import pytest

from fedsim.world import Scenario, run

REPLICATION_SEEDS = tuple(range(11, 21))  # 10 independent replications


def _rep_stats(values):
    """(mean, standard error of the mean) of replication values."""
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def _assert_close(name, values, theory, bias_rel, max_tol_rel):
    mean, se = _rep_stats(values)
    tol = 4 * se + bias_rel * abs(theory)
    assert 4 * se < max_tol_rel * abs(theory), (
        f"{name}: replications too noisy to be a meaningful check (4*SE={4 * se:.4g}, "
        f"theory {theory:.4g}, values {values})")
    assert abs(mean - theory) < tol, (
        f"{name}: simulated {mean:.5g} vs theory {theory:.5g} (|diff| {abs(mean - theory):.3g} "
        f">= tol {tol:.3g} = 4*SE {4 * se:.3g} + bias); replications {[round(v, 5) for v in values]}")


def _world(*, duration, count, gpus, mean_service, rate, strategy):
    return Scenario(
        duration=duration,
        regions=[{"id": "eu"}],
        network={"intra_region_rtt": 0.0},
        nodes=[{"name": "gpu", "region": "eu", "count": count, "gpus": gpus,
                "models": [{"model": "llm", "capabilities": ["generate"]}],
                "service": {"*": {"kind": "exponential", "mean": mean_service}}}],
        workloads=[{"arrival": {"kind": "poisson", "rate": rate}}],
        router={"strategy": strategy, "max_candidates": max(count, 10), "min_score": 0.0,
                "health": {"degraded_latency": 1e6}},
    )


# --------------------------------------------------------------------------- M/M/1 x N
#
# N = 4 identical single-GPU nodes, exponential service with rate MU = 10/s, Poisson arrivals
# at LAM = 20/s routed uniformly at random: Poisson splitting makes each node an independent
# M/M/1 queue with arrival rate LAM/N = 5/s, load rho = 0.5, mean sojourn W = 1/(MU - LAM/N) =
# 0.2 s, sojourn ~ Exp(MU - LAM/N) so P(T > W) = 1/e and P(T > 2W) = 1/e^2.
#
# Run length: 800 s per replication, 10 replications (~16 000 requests each, 160 000 in all,
# ~9 s of wall time).  The M/M/1 relaxation time at rho = 0.5 is ~1 / (MU (1 - sqrt(rho))^2)
# ~= 1.2 s, so the 50 s warm-up is ~40 relaxation times and each replication ~600 of them.
# Delays in M/M/1 are strongly autocorrelated: the variance of a mean delay over n customers
# is ~10 W^2 / n at rho = 0.5 (measured), so these runs give 4*SE ~= 4 % of W for the pooled
# mean (~8 % per node).  That is enough: a wrong service scale, a wrong routing split (e.g. the
# top-ranked node taking everything) or FIFO/slot bugs move the mean by 20 % or much more.
# Requests arriving in the last 20 s are left out so no long sojourn is censored
# (P(T > 20 s) = e^-100).

MM1_N, MM1_MU, MM1_LAM = 4, 10.0, 20.0
MM1_T, MM1_WARMUP, MM1_TAIL = 800.0, 50.0, 20.0


@pytest.fixture(scope="module")
def mm1_runs():
    out = []
    for seed in REPLICATION_SEEDS:
        sc = _world(duration=MM1_T, count=MM1_N, gpus=1, mean_service=1 / MM1_MU,
                    rate=MM1_LAM, strategy="random")
        out.append(run(sc, seed=seed))
    return out


def _window(req, warmup, duration, tail):
    return req[(req["arrival"] >= warmup) & (req["arrival"] < duration - tail)]


def test_mm1_random_split_mean_sojourn(mm1_runs):
    lam_i = MM1_LAM / MM1_N
    theory = 1.0 / (MM1_MU - lam_i)
    means = []
    for r in mm1_runs:
        req = _window(r.requests, MM1_WARMUP, MM1_T, MM1_TAIL)
        assert len(req) > 0.9 * MM1_LAM * (MM1_T - MM1_WARMUP - MM1_TAIL)
        assert (req["status"] == "success").all()
        assert (req["attempts"] == 1).all()
        assert (req["network"] == 0).all()
        # no network: latency is exactly the sojourn at the node
        assert (req["latency"] - req["queue_wait"] - req["service"]).abs().max() < 1e-8
        means.append(float(req["latency"].mean()))
    _assert_close("M/M/1 mean sojourn", means, theory, bias_rel=0.01, max_tol_rel=0.06)


def test_mm1_random_split_per_node(mm1_runs):
    """Random routing splits evenly and every node is its own M/M/1."""
    lam_i = MM1_LAM / MM1_N
    theory = 1.0 / (MM1_MU - lam_i)
    per_node = {f"gpu-{i}": [] for i in range(MM1_N)}
    shares = {f"gpu-{i}": [] for i in range(MM1_N)}
    for r in mm1_runs:
        req = _window(r.requests, MM1_WARMUP, MM1_T, MM1_TAIL)
        by_node = req.groupby("node", observed=True)["latency"]
        for node in per_node:
            per_node[node].append(float(by_node.get_group(node).mean()))
            shares[node].append(len(by_node.get_group(node)) / len(req))
    for node in per_node:
        # one node has a quarter of the data: 4*SE ~8 % of W, so the guard is 12 %
        _assert_close(f"{node} mean sojourn", per_node[node], theory, bias_rel=0.01,
                      max_tol_rel=0.12)
        _assert_close(f"{node} traffic share", shares[node], 1 / MM1_N, bias_rel=0.0,
                      max_tol_rel=0.05)


def test_mm1_sojourn_tail_is_exponential(mm1_runs):
    """M/M/1 FIFO sojourn ~ Exp(mu - lambda): P(T > W) = 1/e, P(T > 2W) = 1/e^2."""
    lam_i = MM1_LAM / MM1_N
    w = 1.0 / (MM1_MU - lam_i)
    p1, p2 = [], []
    for r in mm1_runs:
        lat = _window(r.requests, MM1_WARMUP, MM1_T, MM1_TAIL)["latency"]
        p1.append(float((lat > w).mean()))
        p2.append(float((lat > 2 * w).mean()))
    _assert_close("P(T > W)", p1, math.exp(-1), bias_rel=0.01, max_tol_rel=0.06)
    _assert_close("P(T > 2W)", p2, math.exp(-2), bias_rel=0.01, max_tol_rel=0.10)


def test_mm1_timeseries_utilization(mm1_runs):
    """timeseries: one row per sample x node x gateway, utilization in [0, 1] and ~= rho."""
    rho = MM1_LAM / MM1_N / MM1_MU
    utils = {f"gpu-{i}": [] for i in range(MM1_N)}
    for r in mm1_runs:
        ts = r.timeseries
        assert set(ts["gateway"]) == {"gw-eu"}
        assert not ts.duplicated(["time", "node", "gateway"]).any()
        times = sorted(set(ts["time"]))
        # samples every sample_interval (1 s) from 1 s on
        assert times == pytest.approx([float(k) for k in range(1, len(times) + 1)])
        assert len(times) in (int(MM1_T) - 1, int(MM1_T))
        assert len(ts) == len(times) * MM1_N * 1
        assert ts["gpu_utilization"].between(0.0, 1.0).all()
        assert ts["busy_gpus"].between(0, 1).all()
        assert ts["up"].all()
        late = ts[ts["time"] > MM1_WARMUP]
        for node, u in late.groupby("node", observed=True)["gpu_utilization"]:
            utils[node].append(float(u.mean()))
    for node, values in utils.items():
        _assert_close(f"{node} utilization", values, rho, bias_rel=0.005, max_tol_rel=0.06)


# --------------------------------------------------------------------------- M/M/c (Erlang C)
#
# One node with C = 4 GPUs, exponential service with rate MU = 10/s, Poisson arrivals at
# LAM = 28/s: offered load a = 2.8 Erlangs, utilization rho = 0.7.  Erlang C gives
# P(wait > 0) = C(c, a) ~= 0.4287, mean wait C(c, a) / (c MU - LAM) ~= 0.0357 s and
# P(wait > t) = C e^{-(c MU - LAM) t}.  800 s x 10 replications (~22 000 requests each, ~10 s
# of wall time); the waiting-time relaxation time is ~1 / (c MU (1 - sqrt(rho))^2) ~= 0.3 s,
# so the 50 s warm-up is ample.  Measured 4*SE: ~3 % of P(wait > 0), ~7 % of the mean wait
# (a small, skewed quantity), ~5 % of P(wait > 0.05); the guards below are set just above.
# Getting c wrong by one GPU moves P(wait > 0) by a factor ~2 (c = 3: 0.88, c = 5: 0.19).

MMC_C, MMC_MU, MMC_LAM = 4, 10.0, 28.0
MMC_T, MMC_WARMUP, MMC_TAIL = 800.0, 50.0, 20.0


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load a = lambda/mu < c."""
    assert a < c
    head = sum(a ** k / math.factorial(k) for k in range(c))
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (head + top)


def test_erlang_c_formula_sanity():
    # c = 1 reduces to M/M/1: P(wait) = rho; known tabulated value C(2, 1) = 1/3
    assert erlang_c(1, 0.6) == pytest.approx(0.6)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(MMC_C, MMC_LAM / MMC_MU) == pytest.approx(0.4287, abs=5e-4)


@pytest.fixture(scope="module")
def mmc_runs():
    out = []
    for seed in REPLICATION_SEEDS:
        sc = _world(duration=MMC_T, count=1, gpus=MMC_C, mean_service=1 / MMC_MU, rate=MMC_LAM,
                    strategy="least_latency")
        out.append(run(sc, seed=seed))
    return out


def test_mmc_erlang_c_wait(mmc_runs):
    a = MMC_LAM / MMC_MU
    pw = erlang_c(MMC_C, a)
    drain = MMC_C * MMC_MU - MMC_LAM
    mean_wait = pw / drain
    t = 0.05
    p_wait, wq, p_tail, util = [], [], [], []
    for r in mmc_runs:
        req = _window(r.requests, MMC_WARMUP, MMC_T, MMC_TAIL)
        assert (req["status"] == "success").all()
        assert (req["queue_wait"] >= 0).all()
        p_wait.append(float((req["queue_wait"] > 0).mean()))
        wq.append(float(req["queue_wait"].mean()))
        p_tail.append(float((req["queue_wait"] > t).mean()))
        ts = r.timeseries
        assert ts["busy_gpus"].between(0, MMC_C).all()
        util.append(float(ts[ts["time"] > MMC_WARMUP]["gpu_utilization"].mean()))
    _assert_close("Erlang C P(wait > 0)", p_wait, pw, bias_rel=0.01, max_tol_rel=0.05)
    _assert_close("Erlang C mean wait", wq, mean_wait, bias_rel=0.01, max_tol_rel=0.11)
    _assert_close("Erlang C P(wait > 0.05)", p_tail, pw * math.exp(-drain * t), bias_rel=0.01,
                  max_tol_rel=0.10)
    _assert_close("M/M/c utilization", util, a / MMC_C, bias_rel=0.005, max_tol_rel=0.05)
