"""The candidate index's per-class candidate cache (fedsim/federation/index.py) never hands
out a stale candidate.

Candidates are reused when a deployment's node comes back to a (status, p50, throughput) it
had before; the pool a strategy sees must still equal, candidate by candidate and field by
field, the pool the full path builds.  The differential test in test_incremental_routing.py
covers whole decisions (with the cache tiny in some examples); here the pools themselves are
compared, over health histories in which values recur, so reuse is certain to happen.
"""

from __future__ import annotations

import random

import pytest

import fedsim.federation.index as index_mod
from fedsim.federation import (
    Capability,
    CircuitBreaker,
    CompositePolicy,
    CostPolicy,
    Fixes,
    HealthChecker,
    InferenceRequest,
    ManualClock,
    ModelCatalog,
    PrivacyLevel,
    PrivacyPolicy,
    QoSRequirements,
    Router,
    RouterConfig,
    millis,
    seconds,
)

NODES = [f"n{i}" for i in range(6)]
LATENCIES_MS = [5, 20, 20, 40, 40, 40, 900, 1500, 4000, 6000]  # > 1 s: Degraded


class Record:
    """LeastLatency's choice, recording every pool it is given (as values and objects)."""

    name = "record"

    def __init__(self) -> None:
        self.pools: list[list] = []

    def select(self, pool, request, router):
        self.pools.append(list(pool))
        return pool[0]


def _fields(c) -> tuple:
    t, s = c.target, c.scores
    return (t.node_id, t.region_id, t.endpoint, t.estimated_latency, t.score,
            s.latency_score, s.throughput_score, s.cost_score, s.locality_score,
            s.health_score, s.total, c.eligible, c.rejection_reason, c.health_state)


def _stack(incremental: bool, fixes: Fixes):
    clock = ManualClock(start_ns=seconds(10))
    catalog = ModelCatalog()
    health = HealthChecker(clock=clock, fixes=fixes)
    breaker = CircuitBreaker(clock=clock, fixes=fixes)
    for i, node in enumerate(NODES):
        # n5 is deployed twice (two positions, one node) and n4 is unknown to health
        catalog.register("m", node, f"r{i % 3}", [Capability.GENERATE])
        if node != "n4":
            health.register_node(node)
    catalog.register("m2", "n5", "r2", [Capability.GENERATE])
    policy = CompositePolicy.enterprise_default(fixes)
    for p in policy.policies:
        if isinstance(p, PrivacyPolicy):
            p.with_region("r0", PrivacyLevel.PUBLIC)
        elif isinstance(p, CostPolicy):
            p.with_region_cost("r0", 0.2).with_region_cost("r1", 0.9)
    router = Router(RouterConfig(incremental=incremental, max_candidates=5, min_score=0.1),
                    catalog, health, breaker, policy=policy, clock=clock, fixes=fixes)
    router.strategy = Record()
    return router


def _run(seed: int, fixes: Fixes, steps: int = 600) -> tuple[int, int]:
    """Random reports and routes on two stacks; every pool compared.  Returns (candidates
    seen, how many of them were objects the index had handed out before)."""
    rng = random.Random(seed)
    inc, full = _stack(True, fixes), _stack(False, fixes)
    seen_ids: set[int] = set()
    reused = total = 0
    for _ in range(steps):
        op = rng.random()
        node = rng.choice(NODES)
        if op < 0.55:
            latency = millis(rng.choice(LATENCIES_MS))
            for r in (inc, full):
                r.health_checker.report_success(node, latency)
        elif op < 0.6:
            for r in (inc, full):
                r.health_checker.report_failure(node)
        else:
            req = InferenceRequest(Capability.GENERATE, qos=QoSRequirements(
                privacy=PrivacyLevel(rng.choice([0, 1, 1, 2])),
                cost_tolerance=rng.choice([10, 50, 90])))
            results = []
            for r in (inc, full):
                try:
                    results.append(r.route(req))
                except Exception as err:  # NoCapacity / AllNodesUnhealthy
                    results.append((type(err).__name__, str(err)))
            assert results[0] == results[1]
            if isinstance(results[0], tuple):
                continue
            got, want = inc.strategy.pools[-1], full.strategy.pools[-1]
            assert [_fields(c) for c in got] == [_fields(c) for c in want]
            for c in got:
                total += 1
                reused += id(c) in seen_ids
                seen_ids.add(id(c))
    assert inc.routes_full == 0
    return total, reused


@pytest.mark.parametrize("fixes", [Fixes(), Fixes(health_policy_scores=True, cost_bands=True)],
                         ids=["reference", "fixes"])
def test_reused_candidates_equal_the_full_paths(fixes):
    total, reused = _run(1, fixes)
    assert reused > total // 4  # objects are handed out again, not rebuilt


def test_a_tiny_cache_is_cleared_and_stays_exact(monkeypatch):
    monkeypatch.setattr(index_mod, "_CACHE_SIZE", 2)
    total, reused = _run(2, Fixes())
    assert total > 0


def test_a_recurring_value_returns_the_same_candidate():
    """p50 P -> Q -> P: the candidate built for P is handed out again, unchanged."""
    router = _stack(True, Fixes())
    h = router.health_checker
    for node in NODES:
        for _ in range(3):
            h.report_success(node, millis(400))
    req = InferenceRequest(Capability.GENERATE)

    def n1():
        router.route(req)
        return next(c for c in router.strategy.pools[-1] if c.target.node_id == "n1")

    first = n1()
    values = _fields(first)
    p = h.peek("n1").latency_p50 // millis(1)
    h.report_success("n1", millis(1))
    q = h.peek("n1").latency_p50 // millis(1)
    other = n1()
    assert q != p and other is not first and _fields(other) != values
    h.report_success("n1", millis(10 * p - 9 * q))  # the EWMA back to p
    assert h.peek("n1").latency_p50 == millis(p)
    again = n1()
    assert again is first and _fields(again) == values
