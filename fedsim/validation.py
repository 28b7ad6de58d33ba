"""Theory validation: fedsim's own world and strategies against exact queueing results.

Every case below is a :class:`fedsim.world.Scenario` run by the real simulator (nodes, gateway,
router, strategy), with the network switched off (one region, ``intra_region_rtt: 0``) so a
request's latency is exactly its sojourn time at the node.  The theory is computed here,
independently of the simulator, with numpy/scipy.

Cases (service rate ``mu = 10/s`` per GPU, mean service 0.1 s; ``load`` = per-server
utilisation rho):

``mm1_random``      4 single-GPU nodes, ``random`` routing: Poisson splitting makes every node
                    an M/M/1 queue; sojourn ~ Exp(mu - lambda_node): mean, p50, p90, p99.
``mmc_erlang_c``    one node with c = 4 GPUs: M/M/c, Erlang C probability of waiting, mean
                    wait and wait percentiles ``P(W > t) = C exp(-(c mu - lambda) t)``.
``md1_pk``          one single-GPU node, deterministic service: M/D/1, Pollaczek-Khinchine
                    mean wait ``lambda E[S^2] / (2 (1 - rho))``, and ``P(wait > 0) = rho``.
``mg1_lognormal_pk`` the same with lognormal service (cv 1.5): M/G/1, P-K mean wait.
``gim1_round_robin`` 4 nodes, ``round_robin`` with the ``strategies`` fix (strict rotation):
                    every node sees Erlang-4 interarrival times, a GI/M/1 queue; with sigma the
                    root of ``sigma = A*(mu (1 - sigma))`` (A* the Laplace transform of the
                    interarrival time) the sojourn time is Exp(mu (1 - sigma)) and an arrival
                    waits with probability sigma.
``pod2_supermarket``, ``pod3_supermarket``
                    100 nodes, ``power_of_two_choices`` (d = 2) and the same strategy class
                    with d = 3 (registered as ``power_of_three_choices``): the supermarket
                    model, mean sojourn ``(1/mu) sum_{i>=1} rho^((d^i - d)/(d - 1))`` for
                    N -> infinity, and its refined mean-field value for N = 100 (Gast & Van
                    Houdt 2017: the O(1/N) term, computed below from the drift's Jacobian and
                    Hessian and a Lyapunov equation; it also covers sampling without
                    replacement).  The N -> infinity comparison's tolerance is the finite-N
                    allowance ``|refined - mean field| + 1 %``.
``jsq_bounds``      100 nodes, ``least_outstanding`` (join the shortest queue on the gateway's
                    outstanding counts): mean sojourn bounded below by M/M/N (a central queue,
                    Erlang C) and above by the power-of-two supermarket value.

Every run is also checked against Little's law: the time-average number in the nodes, from
the ``timeseries`` table (``in_flight`` summed over nodes at every sample), against the
arrival rate times the mean sojourn time measured from the ``requests`` table, as the ratio
``L / (lambda W)`` per replication (theory 1).

Statistics.  Each (case, load) runs ``seeds`` independent replications (20 for the single
queues, 10 for the 100-node pools; fixed seeds).  Every replication starts empty, drops a
warm-up of five relaxation times (:meth:`Case.warmup`) and the requests arriving in a final
``tail`` (so no sojourn is cut short by the end of the run), and measures the ``customers``
in between; the replication values give a 99.9 % Student-t interval
(:func:`fedsim.analysis.replication_summary`; 99.9 % because a suite makes ~50 checks).  A
metric passes when the theoretical value lies in ``[ci_low - tolerance, ci_high +
tolerance]``, where ``tolerance`` is a small stated allowance for what replication noise does
not cover: 1 % of theory (residual warm-up bias, nanosecond rounding, quantile-estimator
bias; all far smaller) and, for the N -> infinity supermarket value, the finite-N allowance
above.  It also fails when the interval is wider than :func:`max_halfwidth` of the
theoretical value, so a noisy run cannot pass by being vague.  A bound (JSQ) passes when the
interval widened by the tolerance reaches the bound's side.

Run lengths.  Near saturation the variance of a mean delay grows like (1 - rho)^-2 per
customer (M/M/1: ~ 2 (1 + rho) / (1 - rho)^2 / n relative), so each case lists its measured
customers per replication by load (``Case.sizes``, sized from measured per-customer
variances so the interval stays inside the width limit); the output states them with the
simulated seconds and the warm-up (``customers``, ``sim_seconds``, ``warmup`` columns and the
table's header lines).

    from fedsim.validation import run_validation, format_table
    df = run_validation(quick=True)
    print(format_table(df))
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

__all__ = [
    "CASES", "LOADS_FULL", "LOADS_QUICK", "COLUMNS",
    "mm1_sojourn_mean", "mm1_sojourn_quantile", "erlang_b", "erlang_c", "mmc_mean_wait",
    "mmc_wait_quantile", "mmc_mean_sojourn", "pk_mean_wait", "erlang_laplace", "gim1_sigma",
    "gim1_sojourn_mean", "supermarket_mean_sojourn", "supermarket_refined",
    "run_validation", "format_table", "format_markdown", "validate_theory_main", "write_results",
    "max_halfwidth",
]

LOADS_QUICK: tuple[float, ...] = (0.5, 0.8)
LOADS_FULL: tuple[float, ...] = (0.5, 0.8, 0.9)

#: Columns of :func:`run_validation`'s table (in this order).
COLUMNS = ["case", "load", "metric", "check", "simulated", "theory", "ci_low", "ci_high",
           "tolerance", "passed", "seeds", "customers", "sim_seconds", "warmup", "note"]

#: Confidence of the replication intervals: 99.9 % two-sided Student t.  A suite makes ~50
#: checks; at 95 % one of them would fail by chance in most runs, at 99.9 % (Bonferroni for
#: a 5 % family-wise rate over 50 checks) a correct simulator passes ~19 runs in 20 or more.
CONFIDENCE = 0.999
MU = 10.0  # service rate per GPU (1/s): mean service time 0.1 s
BIAS_REL = 0.01  # allowance for biases replications do not see (warm-up, rounding, quantiles)
BIG_N = 100  # nodes in the power-of-d and JSQ cases


# =============================================================================== theory
# Pure functions of the model parameters; nothing here touches the simulator.


def mm1_sojourn_mean(lam: float, mu: float) -> float:
    """M/M/1 mean sojourn time 1 / (mu - lambda)."""
    _stable(lam, mu)
    return 1.0 / (mu - lam)


def mm1_sojourn_quantile(lam: float, mu: float, p: float) -> float:
    """p-quantile of the M/M/1 (FIFO) sojourn time, Exp(mu - lambda)."""
    _stable(lam, mu)
    return float(stats.expon(scale=1.0 / (mu - lam)).ppf(p))


def erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability B(c, a) = P(Poisson(a) = c) / P(Poisson(a) <= c)."""
    return float(np.exp(stats.poisson.logpmf(c, a) - stats.poisson.logcdf(c, a)))


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability that an arrival waits in M/M/c, offered load a = lambda/mu < c."""
    if not 0 <= a < c:
        raise ValueError(f"Erlang C needs 0 <= a < c, got a={a}, c={c}")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def mmc_mean_wait(c: int, lam: float, mu: float) -> float:
    """M/M/c mean time in queue C(c, a) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_mean_sojourn(c: int, lam: float, mu: float) -> float:
    return mmc_mean_wait(c, lam, mu) + 1.0 / mu


def mmc_wait_quantile(c: int, lam: float, mu: float, p: float) -> float:
    """p-quantile of the M/M/c waiting time: P(W > t) = C exp(-(c mu - lambda) t), so 0 when
    p <= 1 - C (the atom at zero), else ln(C / (1 - p)) / (c mu - lambda)."""
    pw = erlang_c(c, lam / mu)
    if p <= 1.0 - pw:
        return 0.0
    return math.log(pw / (1.0 - p)) / (c * mu - lam)


def pk_mean_wait(lam: float, mean: float, second_moment: float) -> float:
    """Pollaczek-Khinchine: M/G/1 mean time in queue lambda E[S^2] / (2 (1 - rho))."""
    rho = lam * mean
    if not 0 <= rho < 1:
        raise ValueError(f"M/G/1 needs rho < 1, got {rho}")
    return lam * second_moment / (2.0 * (1.0 - rho))


def erlang_laplace(n: int, lam: float) -> Callable[[float], float]:
    """Laplace-Stieltjes transform of an Erlang-n interarrival time (n phases of rate lam):
    the gaps seen by one of n nodes when a Poisson(lam) stream is dealt round robin."""
    return lambda s: (lam / (lam + s)) ** n


def gim1_sigma(laplace: Callable[[float], float], mu: float, mean_interarrival: float) -> float:
    """The GI/M/1 root: sigma in (0, 1) with sigma = A*(mu (1 - sigma)); needs rho =
    1 / (mu E[A]) < 1.  sigma is also the probability that an arrival finds the server busy."""
    rho = 1.0 / (mu * mean_interarrival)
    if not 0 < rho < 1:
        raise ValueError(f"GI/M/1 needs 0 < rho < 1, got {rho}")
    f = lambda s: laplace(mu * (1.0 - s)) - s  # noqa: E731 - f(0) > 0, f(1-) < 0
    hi = 1.0 - 1e-9
    while f(hi) >= 0:  # pragma: no cover - only for rho extremely close to 1
        hi = 1.0 - (1.0 - hi) / 10
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps))


def gim1_sojourn_mean(n: int, lam: float, mu: float) -> float:
    """Mean sojourn at one of n round-robin nodes fed by Poisson(lam): 1 / (mu (1 - sigma))."""
    sigma = gim1_sigma(erlang_laplace(n, lam), mu, n / lam)
    return 1.0 / (mu * (1.0 - sigma))


def supermarket_mean_sojourn(load: float, d: int, mu: float = 1.0, terms: int = 64) -> float:
    """Mean sojourn time of the supermarket model (N -> infinity, Poisson arrivals at rate
    load*N, each joins the shortest of d queues sampled at random, Exp(mu) service):
    ``(1/mu) sum_{i>=1} load^((d^i - d)/(d - 1))`` (Mitzenmacher; Vvedenskaya et al.)."""
    if not 0 <= load < 1 or d < 2:
        raise ValueError(f"need 0 <= load < 1 and d >= 2, got load={load}, d={d}")
    total = 0.0
    for i in range(1, terms + 1):
        e = (d ** i - d) // (d - 1)
        term = load ** e
        total += term
        if term < 1e-18:
            break
    return total / mu


def _supermarket_levels(load: float, d: int, eps: float = 1e-16) -> int:
    k = 1
    while load ** ((d ** k - 1) // (d - 1)) > eps and k < 60:
        k += 1
    return k + 2


def supermarket_refined(load: float, d: int, n: int, mu: float = 1.0) -> dict:
    """The supermarket model at finite N, to O(1/N): the refined mean field (Gast & Van Houdt,
    "A refined mean field approximation", SIGMETRICS 2017).

    State x_i = fraction of servers with at least i jobs (x_0 = 1).  With d distinct servers
    sampled (without replacement, as fedsim's strategy does) an arrival joins a queue of
    length >= i with probability h_N(x_i) = prod_k (N x_i - k)/(N - k) = x_i^d + g(x_i)/N +
    O(1/N^2), g(x) = -d(d-1)/2 x^(d-1) (1 - x).  Drift (mu = 1, time in service times):
    f_i = load (x_{i-1}^d - x_i^d) - (x_i - x_{i+1}).  At the fixed point pi (pi_i =
    load^((d^i - 1)/(d - 1))), with A the Jacobian, W the Lyapunov solution of A W + W A^T +
    Q = 0 (Q the diffusion matrix, diagonal: arrival plus departure rates) and H the Hessian:
    E[X^N] = pi + V/N + O(1/N^2), V = -A^{-1} (H:W / 2 + load (g(pi_{i-1}) - g(pi_i))).

    Returns ``mean_field`` and ``refined`` mean sojourn times (in units of 1/mu), the 1/N
    ``correction`` and ``relaxation`` (1 / the slowest decay rate of the linearised fluid
    model, in units of 1/mu)."""
    if n < d:
        raise ValueError(f"need N >= d, got N={n}, d={d}")
    lam = load
    k = _supermarket_levels(load, d)
    pi = np.array([lam ** ((d ** i - 1) // (d - 1)) for i in range(1, k + 1)], dtype=float)
    prev = np.concatenate(([1.0], pi[:-1]))  # x_{i-1}
    nxt = np.concatenate((pi[1:], [0.0]))  # x_{i+1}
    # Jacobian of f at pi
    a = np.zeros((k, k))
    for i in range(k):
        a[i, i] = -lam * d * pi[i] ** (d - 1) - 1.0
        if i + 1 < k:
            a[i, i + 1] = 1.0
        if i >= 1:
            a[i, i - 1] = lam * d * prev[i] ** (d - 1)
    q = np.diag(lam * (prev ** d - pi ** d) + (pi - nxt))
    w = linalg.solve_continuous_lyapunov(a, -q)
    # (1/2) sum_{jk} d2 f_i / dx_j dx_k W_jk: only x_{i-1}^d and x_i^d are non-linear
    hw = np.zeros(k)
    for i in range(k):
        hw[i] = -lam * d * (d - 1) * pi[i] ** (d - 2) * w[i, i] / 2.0
        if i >= 1:
            hw[i] += lam * d * (d - 1) * prev[i] ** (d - 2) * w[i - 1, i - 1] / 2.0

    def g(x):
        return -d * (d - 1) / 2.0 * x ** (d - 1) * (1.0 - x)

    f1 = lam * (g(prev) - g(pi))
    v = -np.linalg.solve(a, hw + f1)
    mean_field = float(pi.sum()) / lam
    correction = float(v.sum()) / lam
    relax = 1.0 / float(np.min(np.abs(np.linalg.eigvals(a).real)))
    return {"mean_field": mean_field / mu, "refined": (mean_field + correction / n) / mu,
            "correction": correction / n / mu, "relaxation": relax / mu}


def _stable(lam: float, mu: float) -> None:
    if not 0 <= lam < mu:
        raise ValueError(f"need 0 <= lambda < mu, got lambda={lam}, mu={mu}")


def _relaxation_mm1(rho: float, rate: float) -> float:
    """Relaxation time 1 / (rate (1 - sqrt(rho))^2) of a single queue with total service
    rate ``rate`` (Morse; Cohen), a scale for warm-up lengths."""
    return 1.0 / (rate * (1.0 - math.sqrt(rho)) ** 2)


# =============================================================================== cases


@dataclass(frozen=True)
class Metric:
    """One checked quantity.  ``stat`` names a per-replication statistic (see _measure);
    ``check``: ``=`` (theory within the interval +- tolerance), ``>=`` (simulated is at least
    the bound), ``<=`` (at most the bound)."""

    name: str
    stat: str
    theory: float
    tol_rel: float = BIAS_REL
    check: str = "="
    note: str = ""


@dataclass(frozen=True)
class Plan:
    """How much to simulate for one (case, load): measured customers per replication (after
    the warm-up, before the tail) and the number of replications (seeds)."""

    customers: int
    seeds: int


def _growth(load: float, pooled: bool) -> float:
    """How the per-customer variance of a mean delay grows with load (M/M/1:
    2 (1 + rho) / (1 - rho)^2; a pool of many servers with short queues: ~ 1 / (1 - rho))."""
    return 1.0 / (1.0 - load) if pooled else (1.0 + load) / (1.0 - load) ** 2


@dataclass(frozen=True)
class Case:
    """One validation case: a world (``nodes`` x ``gpus``, a service spec, a strategy) and
    its theory (``metrics(case, load)``).  ``sizes`` maps a load to the measured customers
    per replication (quick, full); other loads scale the nearest entry by :func:`_growth`."""

    name: str
    title: str
    nodes: int
    gpus: int
    service: dict
    strategy: str
    metrics: Callable[["Case", float], list] = field(repr=False)
    sizes: dict = field(repr=False)
    seeds: tuple = (20, 20)  # quick, full
    fixes: tuple = ()
    second_moment: float = 0.0  # E[S^2] of the service time (s^2)
    relax_factor: float = 1.0  # relaxation time relative to the M/M/c value

    @property
    def pooled(self) -> bool:
        return self.nodes >= BIG_N

    def arrival_rate(self, load: float) -> float:
        return load * self.nodes * self.gpus * MU

    def relaxation(self, load: float) -> float:
        """Relaxation time (s) of the queue started empty: for one queue ~1 / (c mu (1 -
        sqrt(rho))^2) (x ``relax_factor``); for the big pools the slowest decay rate of the
        linearised supermarket fluid model (d = 2), at least 1 / (mu (1 - rho))."""
        if self.pooled:
            return max(supermarket_refined(load, 2, self.nodes)["relaxation"],
                       1.0 / (1.0 - load)) / MU
        return _relaxation_mm1(load, self.gpus * MU) * self.relax_factor

    def warmup(self, load: float) -> float:
        """Five relaxation times, and at least 2 s (20 mean service times).  Started empty,
        the bias left in a mean after the warm-up is ~ (initial deficit) x relaxation x e^-5
        / (window x mean): below 0.01 % here, well inside the 1 % allowance."""
        return max(2.0, 5.0 * self.relaxation(load))

    def tail(self, load: float) -> float:
        """Requests arriving in the last ``tail`` seconds are not measured, so no sojourn is
        cut short by the end of the run: 60 mean sojourn times, at least 10 s, for one queue
        (P(sojourn > 60 W) ~ e^-60 for M/M/1; the lognormal tail needs the margin); 15 mean
        sojourn times, at least 2 s, for the big pools (queues of a few jobs at most)."""
        means = [m.theory for m in self.metrics(self, load) if m.stat == "mean_sojourn"]
        mean = max(means, default=1.0 / MU)
        return max(2.0, 15.0 * mean) if self.pooled else max(10.0, 60.0 * mean)

    def plan(self, load: float, quick: bool) -> Plan:
        col = 0 if quick else 1
        if load in self.sizes:
            customers = self.sizes[load][col]
        else:
            near = min(self.sizes, key=lambda x: abs(x - load))
            customers = int(round(self.sizes[near][col] * _growth(load, self.pooled)
                                  / _growth(near, self.pooled), -3))
        return Plan(max(customers, 1000), self.seeds[col])

    def scenario(self, load: float, customers: int):
        """The Scenario of one replication measuring ``customers`` requests, and its tail."""
        from .world import Scenario

        lam = self.arrival_rate(load)
        warmup, tail = self.warmup(load), self.tail(load)
        duration = warmup + customers / lam + tail
        # timeseries rows (samples x nodes) about half the requests: cheap, and plenty for L
        samples = min(max(customers // (2 * self.nodes), 200), 20000)
        return Scenario(
            name=f"validation-{self.name}-{load:g}",
            duration=duration,
            warmup=warmup,
            sample_interval=duration / samples,
            regions=[{"id": "eu"}],
            network={"intra_region_rtt": 0.0},
            nodes=[{"name": "gpu", "region": "eu", "count": self.nodes, "gpus": self.gpus,
                    "models": [{"model": "llm", "capabilities": ["generate"]}],
                    "service": {"*": dict(self.service)}}],
            workloads=[{"arrival": {"kind": "poisson", "rate": lam}}],
            router={"strategy": self.strategy, "fixes": list(self.fixes),
                    # one policy scoring every node 1: the pool is every node, in catalog order
                    "policy": [{"kind": "privacy"}],
                    "max_candidates": max(self.nodes, 10), "min_score": 0.0,
                    "health": {"degraded_latency": 1e6}},
        ), tail


def _mm1_metrics(case: Case, load: float) -> list:
    lam = load * MU
    out = [Metric("mean sojourn", "mean_sojourn", mm1_sojourn_mean(lam, MU))]
    for p in (50, 90, 99):
        out.append(Metric(f"p{p} sojourn", f"p{p}_sojourn", mm1_sojourn_quantile(lam, MU, p / 100)))
    return out


def _mmc_metrics(case: Case, load: float) -> list:
    c = case.gpus
    lam = case.arrival_rate(load)
    out = [Metric("P(wait > 0)", "p_wait", erlang_c(c, lam / MU)),
           Metric("mean wait", "mean_wait", mmc_mean_wait(c, lam, MU)),
           Metric("mean sojourn", "mean_sojourn", mmc_mean_sojourn(c, lam, MU))]
    for p in (90, 99):
        out.append(Metric(f"p{p} wait", f"p{p}_wait", mmc_wait_quantile(c, lam, MU, p / 100)))
    return out


def _mg1_metrics(case: Case, load: float) -> list:
    lam = case.arrival_rate(load)
    wq = pk_mean_wait(lam, 1.0 / MU, case.second_moment)
    return [Metric("P(wait > 0)", "p_wait", load),
            Metric("mean wait (P-K)", "mean_wait", wq),
            Metric("mean sojourn", "mean_sojourn", wq + 1.0 / MU)]


def _gim1_metrics(case: Case, load: float) -> list:
    n = case.nodes
    lam = case.arrival_rate(load)
    sigma = gim1_sigma(erlang_laplace(n, lam), MU, n / lam)
    rate = MU * (1.0 - sigma)
    return [Metric("P(wait > 0) = sigma", "p_wait", sigma),
            Metric("mean sojourn", "mean_sojourn", 1.0 / rate),
            Metric("p90 sojourn", "p90_sojourn", float(stats.expon(scale=1 / rate).ppf(0.9))),
            Metric("p99 sojourn", "p99_sojourn", float(stats.expon(scale=1 / rate).ppf(0.99)))]


def _pod_metrics(d: int):
    def metrics(case: Case, load: float) -> list:
        r = supermarket_refined(load, d, case.nodes, MU)
        mf = supermarket_mean_sojourn(load, d, MU)
        allowance = abs(r["refined"] - mf) / mf + BIAS_REL
        return [
            Metric("mean sojourn (mean field, N->inf)", "mean_sojourn", mf, allowance,
                   note=f"finite-N allowance {allowance:.2%} = |refined - mean field| + 1%"),
            Metric(f"mean sojourn (refined, N={case.nodes})", "mean_sojourn", r["refined"],
                   note="O(1/N^2) left out: 1% allowance"),
        ]
    return metrics


def _jsq_metrics(case: Case, load: float) -> list:
    n = case.nodes
    lam = case.arrival_rate(load)
    return [
        Metric("mean sojourn >= M/M/N (Erlang C)", "mean_sojourn", mmc_mean_sojourn(n, lam, MU),
               check=">="),
        Metric("mean sojourn <= power-of-two (mean field)", "mean_sojourn",
               supermarket_mean_sojourn(load, 2, MU), check="<="),
    ]


_LOGNORMAL_CV = 1.5

_EXP = {"kind": "exponential", "mean": 1 / MU}

# Measured customers per replication {load: (quick, full)}, from the per-customer variance of
# each case's noisiest metric (see docs/validation.md): enough that the 99.9 % interval's
# half-width stays well inside max_halfwidth.
CASES: dict[str, Case] = {c.name: c for c in [
    Case("mm1_random", "M/M/1 per node: 4 nodes, random routing", 4, 1, _EXP, "random",
         _mm1_metrics, {0.5: (2_000, 6_000), 0.8: (19_000, 100_000), 0.9: (60_000, 115_000)}),
    Case("mmc_erlang_c", "M/M/c: one node with 4 GPUs (Erlang C)", 1, 4, _EXP, "random",
         _mmc_metrics, {0.5: (7_000, 64_000), 0.8: (10_000, 75_000), 0.9: (13_000, 150_000)}),
    Case("md1_pk", "M/D/1: deterministic service (Pollaczek-Khinchine)", 1, 1,
         {"kind": "constant", "value": 1 / MU}, "random", _mg1_metrics,
         {0.5: (2_000, 7_000), 0.8: (2_000, 18_000), 0.9: (9_000, 30_000)},
         second_moment=(1 / MU) ** 2, relax_factor=0.5),
    Case("mg1_lognormal_pk", f"M/G/1: lognormal service, cv {_LOGNORMAL_CV} (Pollaczek-Khinchine)",
         1, 1, {"kind": "lognormal", "mean": 1 / MU, "cv": _LOGNORMAL_CV}, "random", _mg1_metrics,
         {0.5: (7_000, 68_000), 0.8: (23_000, 220_000), 0.9: (27_000, 340_000)},
         second_moment=(1 + _LOGNORMAL_CV ** 2) / MU ** 2,
         relax_factor=(1 + _LOGNORMAL_CV ** 2) / 2),
    Case("gim1_round_robin", "GI/M/1: 4 nodes, round_robin + 'strategies' fix (Erlang-4 arrivals)",
         4, 1, _EXP, "round_robin", _gim1_metrics,
         {0.5: (2_000, 5_000), 0.8: (3_500, 20_000), 0.9: (18_000, 40_000)},
         fixes=("strategies",)),
    Case("pod2_supermarket", f"power of two choices, N={BIG_N} (supermarket model, d=2)", BIG_N,
         1, _EXP, "power_of_two_choices", _pod_metrics(2),
         {0.5: (1_000, 4_000), 0.8: (2_500, 24_000), 0.9: (6_000, 21_000)}, seeds=(10, 10)),
    Case("pod3_supermarket", f"power of three choices, N={BIG_N} (supermarket model, d=3)", BIG_N,
         1, _EXP, "power_of_three_choices", _pod_metrics(3),
         {0.5: (1_000, 3_000), 0.8: (2_000, 15_000), 0.9: (5_000, 18_000)}, seeds=(10, 10)),
    Case("jsq_bounds", f"join the shortest queue (least_outstanding), N={BIG_N}", BIG_N, 1, _EXP,
         "least_outstanding", _jsq_metrics,
         {0.5: (1_000, 5_000), 0.8: (1_000, 5_000), 0.9: (1_000, 5_000)}, seeds=(10, 10)),
]}

#: Little's law on every run: L = time-average in_flight (summed over nodes) sampled from the
#: timeseries, lambda W from the requests table; the ratio per replication should be 1.
LITTLE = Metric("Little: L / (lambda W)", "little_ratio", 1.0)


@contextmanager
def _extra_strategies():
    """``power_of_three_choices`` (fedsim's PowerOfTwoChoices strategy class with d = 3),
    registered for the duration of a run only, so the registry that ``fedsim list`` shows
    is left as it was."""
    from .federation.strategies import STRATEGIES, PowerOfTwoChoices, register_strategy

    name = "power_of_three_choices"
    added = name not in STRATEGIES
    if added:
        class PowerOfThreeChoices(PowerOfTwoChoices):
            def __init__(self) -> None:
                super().__init__(d=3)

        PowerOfThreeChoices.name = name
        register_strategy(name, PowerOfThreeChoices,
                          "three random candidates, the least loaded wins (theory validation)")
    try:
        yield
    finally:
        if added:
            STRATEGIES.pop(name, None)


# =============================================================================== one replication


def _measure(result, warmup: float, end: float) -> dict:
    """Per-replication statistics of requests arriving in [warmup, end)."""
    req = result.requests
    win = req[(req["arrival"] >= warmup) & (req["arrival"] < end)]
    bad = int((win["status"] != "success").sum())
    lat = win["latency"].to_numpy(dtype=float)
    wq = win["queue_wait"].to_numpy(dtype=float)
    out = {"customers": len(win), "not_success": bad,
           "mean_sojourn": float(np.mean(lat)), "mean_wait": float(np.mean(wq)),
           "p_wait": float(np.mean(wq > 0))}
    for p in (50, 90, 99):
        out[f"p{p}_sojourn"] = float(np.quantile(lat, p / 100))
        out[f"p{p}_wait"] = float(np.quantile(wq, p / 100))
    # Little's law: L from the node state sampled every sample_interval, lambda W from requests
    ts = result.timeseries
    gw = ts["gateway"].iloc[0]
    ts = ts[(ts["gateway"] == gw) & (ts["time"] >= warmup) & (ts["time"] < end)]
    samples = ts["time"].nunique()
    little_l = float(ts["in_flight"].sum()) / samples
    lam_hat = len(win) / (end - warmup)
    out["little_L"] = little_l
    out["little_ratio"] = little_l / (lam_hat * out["mean_sojourn"])
    return out


def _replicate(job: tuple) -> dict:
    """Worker: run one (case, load, seed, customers) and return its statistics (a small dict)."""
    name, load, seed, customers = job
    from .world import World

    case = CASES[name]
    with _extra_strategies():
        scenario, tail = case.scenario(load, customers)
        started = time.perf_counter()
        result = World(scenario, seed).run()
    stats_ = _measure(result, scenario.warmup, scenario.duration - tail)
    stats_.update(case=name, load=load, seed=seed, sim_seconds=result.simulated_seconds,
                  wall=time.perf_counter() - started, warmup=scenario.warmup, tail=tail)
    return stats_


# =============================================================================== the suite


def _jobs(cases: Sequence[str], loads: Sequence[float], quick: bool) -> list[tuple]:
    """(case, load, seed, customers) per replication, the most expensive first so the
    workers finish together.  Seeds are fixed: the k-th case of CASES at load x, replication
    j -> 1000 (k + 1) + 1000 x + j, so a case's results do not depend on which others run."""
    jobs = []
    for name in cases:
        case = CASES[name]
        k = list(CASES).index(name)
        for load in loads:
            plan = case.plan(load, quick)
            for j in range(plan.seeds):
                jobs.append((name, float(load), 1000 * (k + 1) + 10 * int(round(load * 100)) + j,
                             plan.customers))
    cost = lambda j: j[3] * (5 if CASES[j[0]].pooled else 1)  # noqa: E731 - routing over 100 nodes
    return sorted(jobs, key=cost, reverse=True)


def run_validation(quick: bool = False, loads: Optional[Sequence[float]] = None,
                   cases: Optional[Sequence[str]] = None,
                   progress: Optional[Callable[[int, int, str], None]] = None,
                   workers: Optional[int] = None) -> pd.DataFrame:
    """Run the validation cases and compare them with theory.

    ``quick``: fewer seeds and customers (the CI suite); ``loads``: default 0.5 and 0.8
    (quick) or 0.5, 0.8 and 0.9 (full); ``cases``: names from :data:`CASES` (default all);
    ``progress(done, total, label)`` after each replication; ``workers``: processes (default
    the CPU count; 1 runs in this process).

    Returns one row per (case, load, metric), columns :data:`COLUMNS`: ``simulated`` (mean
    over the replications), ``theory``, ``ci_low``/``ci_high`` (99.9 % t-interval),
    ``tolerance`` (absolute allowance), ``passed``, ``check`` (``=``, or ``>=``/``<=`` for a
    bound), ``seeds``, ``customers`` (measured requests, all seeds), ``sim_seconds``
    (simulated seconds, all seeds), ``warmup`` (seconds dropped per seed), ``note`` (the
    tolerance's reason, or why a check failed).  ``df.attrs`` holds ``wall_seconds``,
    ``workers``, ``quick`` and ``replications`` (the per-seed statistics)."""
    from .analysis import replication_summary

    names = list(CASES) if cases is None else list(cases)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    loads = tuple(LOADS_QUICK if quick else LOADS_FULL) if loads is None else tuple(loads)
    for load in loads:
        if not 0 < load < 1:
            raise ValueError(f"loads must be in (0, 1), got {load}")
    jobs = _jobs(names, loads, quick)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    started = time.perf_counter()
    rows: list[dict] = []

    def done(stats_: dict) -> None:
        rows.append(stats_)
        if progress is not None:
            progress(len(rows), len(jobs),
                     f"{stats_['case']} load {stats_['load']:g} seed {stats_['seed']}")

    if workers == 1:
        for job in jobs:
            done(_replicate(job))
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            futures = [pool.submit(_replicate, job) for job in jobs]
            for fut in as_completed(futures):
                done(fut.result())
        except BaseException:  # Ctrl-C or a failed run: do not wait for the queued runs
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    reps = pd.DataFrame(rows).sort_values(["case", "load", "seed"]).reset_index(drop=True)

    records = []
    for name in names:
        case = CASES[name]
        for load in loads:
            sub = reps[(reps["case"] == name) & (reps["load"] == load)]
            metrics = [*case.metrics(case, load), LITTLE]
            summary = replication_summary(sub, sorted({m.stat for m in metrics}),
                                          confidence=CONFIDENCE).set_index("metric")
            for m in metrics:
                records.append(_judge(case, load, m, summary.loc[m.stat], sub, quick))
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    df.attrs.update(wall_seconds=time.perf_counter() - started, workers=workers, quick=quick,
                    replications=reps)
    return df


def max_halfwidth(m: Metric, load: float, quick: bool) -> float:
    """The widest 99.9 % interval (half-width / theory) a check may have and still pass:
    a vague result is not a validation.  Quick: 20 % (quantiles 30 %); full: 6 % (quantiles
    12 %) up to load 0.8, 10 % (20 %) above; Little's ratio 5 % (its L is sampled from the
    timeseries, a few hundred samples per replication in the quick suite)."""
    if m.stat == "little_ratio":
        return 0.05
    quantile = m.stat[1:3].isdigit()
    if quick:
        return 0.30 if quantile else 0.20
    if load <= 0.8:
        return 0.12 if quantile else 0.06
    return 0.20 if quantile else 0.10


def _judge(case: Case, load: float, m: Metric, s, sub: pd.DataFrame, quick: bool) -> dict:
    """One table row: metric ``m`` of (case, load) from its replication summary ``s`` and the
    per-seed statistics ``sub``."""
    tol = m.tol_rel * abs(m.theory)
    lo, hi, mean = float(s["ci_low"]), float(s["ci_high"]), float(s["mean"])
    notes = [m.note] if m.note else []
    if m.check == "=":
        ok = lo - tol <= m.theory <= hi + tol
        limit = max_halfwidth(m, load, quick)
        half = (hi - lo) / 2
        if m.theory > 0 and half > limit * m.theory:
            ok = False
            notes.append(f"interval too wide: half-width {half / m.theory:.1%} > {limit:.0%}")
    elif m.check == ">=":
        ok = hi + tol >= m.theory
    else:
        ok = lo - tol <= m.theory
    bad = int(sub["not_success"].sum())
    if bad:
        ok = False
        notes.append(f"{bad} measured requests did not succeed")
    if not np.isfinite([lo, hi]).all():
        ok = False
    return {"case": case.name, "load": load, "metric": m.name, "check": m.check,
            "simulated": mean, "theory": m.theory, "ci_low": lo, "ci_high": hi,
            "tolerance": tol, "passed": bool(ok), "seeds": int(len(sub)),
            "customers": int(sub["customers"].sum()),
            "sim_seconds": float(sub["sim_seconds"].sum()),
            "warmup": float(sub["warmup"].iloc[0]), "note": "; ".join(notes)}


# =============================================================================== output


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100 or abs(x) < 1e-3:
        return f"{x:.4g}"
    return f"{x:.4f}"


def format_table(df: pd.DataFrame) -> str:
    """The results as text: per case a header (title, run length), then per load and metric
    the simulated mean, the theoretical value, the 99.9 % interval, the tolerance and
    PASS/FAIL (with the reason when it fails)."""
    lines = []
    head = f"  {'load':>4}  {'metric':<40} {'simulated':>10} {'':2} {'theory':>10}  " \
           f"{'99.9% CI':<22} {'tol':>8}  result"
    for name, sub in df.groupby("case", sort=False):
        case = CASES.get(name)
        lines.append(f"{name}: {case.title if case else ''}")
        for load, ls in sub.groupby("load", sort=False):
            r0 = ls.iloc[0]
            per_seed = r0["customers"] / max(r0["seeds"], 1)
            lines.append(f"  load {load:g}: {r0['seeds']} seeds x {per_seed:,.0f} customers "
                         f"measured, {r0['sim_seconds'] / r0['seeds']:,.0f} simulated s per seed "
                         f"(warm-up {r0['warmup']:,.0f} s dropped)")
        lines.append(head)
        for _, r in sub.iterrows():
            rel = {"=": "vs", ">=": ">=", "<=": "<="}[r["check"]]
            ci = f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
            lines.append(f"  {r['load']:>4g}  {r['metric']:<40} {_num(r['simulated']):>10} {rel:2} "
                         f"{_num(r['theory']):>10}  {ci:<22} {_num(r['tolerance']):>8}  "
                         f"{'PASS' if r['passed'] else 'FAIL'}"
                         + (f"  ({r['note']})" if r["note"] and not r["passed"] else ""))
        for note in dict.fromkeys(n for n in sub.loc[sub["passed"], "note"] if n):
            lines.append(f"  note: {note}")
        lines.append("")
    n_fail = int((~df["passed"]).sum())
    wall = df.attrs.get("wall_seconds")
    tail = f" in {wall:.0f} s wall with {df.attrs.get('workers')} worker(s)" if wall else ""
    lines.append(f"{len(df) - n_fail}/{len(df)} checks passed{tail}.  PASS: theory within "
                 "[ci_low - tol, ci_high + tol] of the 99.9% t-interval over replications (bounds: "
                 "the interval +- tol reaches the bound's side), and the interval no wider than "
                 "the limit (max_halfwidth).")
    return "\n".join(lines)


def format_markdown(df: pd.DataFrame) -> str:
    """The results as a Markdown table (one row per check) followed by the run lengths."""
    lines = ["| case | load | metric | simulated | theory | 99.9% CI | tol | result |",
             "|---|---:|---|---:|---:|---|---:|---|"]
    for _, r in df.iterrows():
        rel = {"=": "", ">=": "≥ ", "<=": "≤ "}[r["check"]]
        lines.append(f"| `{r['case']}` | {r['load']:g} | {r['metric']} | {_num(r['simulated'])} | "
                     f"{rel}{_num(r['theory'])} | [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | "
                     f"{_num(r['tolerance'])} | {'pass' if r['passed'] else '**FAIL**'} |")
    lines += ["", "Run lengths:", "",
              "| case | load | seeds | customers measured per seed | simulated s per seed | "
              "warm-up (s) |", "|---|---:|---:|---:|---:|---:|"]
    for (name, load), sub in df.groupby(["case", "load"], sort=False):
        r = sub.iloc[0]
        lines.append(f"| `{name}` | {load:g} | {r['seeds']} | {r['customers'] / r['seeds']:,.0f} | "
                     f"{r['sim_seconds'] / r['seeds']:,.0f} | {r['warmup']:,.1f} |")
    return "\n".join(lines)


def write_results(df: pd.DataFrame, out: str) -> list[Path]:
    """Write ``df`` to ``out``: a ``.csv`` or ``.json`` file, or a directory (both files,
    ``validation.csv`` and ``validation.json``).  Returns the paths written."""
    path = Path(out)
    meta = {"quick": df.attrs.get("quick"), "wall_seconds": df.attrs.get("wall_seconds"),
            "workers": df.attrs.get("workers"), "python": sys.version.split()[0],
            "machine": platform.platform(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    targets = [path] if path.suffix in (".csv", ".json") else \
        [path / "validation.csv", path / "validation.json"]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        if t.suffix == ".csv":
            df.to_csv(t, index=False)
        else:
            records = json.loads(df.to_json(orient="records"))
            t.write_text(json.dumps({"meta": meta, "results": records}, indent=2) + "\n")
    return targets


def validate_theory_main(quick: bool, out: Optional[str] = None,
                         cases: Optional[list] = None) -> int:
    """Entry point for ``fedsim validate-theory [--quick]``: run, print the table, write
    ``out`` if given (see :func:`write_results`); 1 if any check failed, else 0."""
    def progress(done: int, total: int, label: str) -> None:
        if sys.stderr.isatty():
            print(f"\r[{done}/{total}] {label:<50}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    try:
        df = run_validation(quick=quick, cases=cases, progress=progress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(df))
    if out:
        for p in write_results(df, out):
            print(f"wrote {p}")
    return 0 if bool(df["passed"].all()) else 1
