"""Each opt-in fix of ``fedsim.federation.Fixes``: quirk with the fix off, promise with it on.

For every name in ``Fixes.names()`` there is a ``test_fix_<name>_off_*`` test asserting the
reference quirk (spec §8) and a ``test_fix_<name>_on_*`` test asserting the behaviour promised
by ``fixes.FIX_DESCRIPTIONS`` and the module docstrings (health.py, circuit.py, policy.py,
strategies.py, gateway.py).  ``test_every_fix_has_off_and_on_tests`` enforces that.

Plus: ``Fixes()`` and omitted ``fixes`` arguments give identical decisions on a random-ish
operation sequence, and ``Fixes.of`` parsing.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Optional

import pytest

from fedsim.federation import (
    Capability,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    CompositePolicy,
    CostPolicy,
    Failure,
    FederationError,
    FederationGateway,
    Fixes,
    GatewayBuilder,
    GatewayConfig,
    HealthChecker,
    HealthConfig,
    HealthPolicy,
    HealthState,
    InferenceRequest,
    InferenceResponse,
    LoadBalanceStrategy,
    LocalityPolicy,
    ManualClock,
    ModelCatalog,
    NoCapacity,
    NodeUnreachable,
    ProbeResult,
    Router,
    RouterConfig,
    RouteCandidate,
    RouteScores,
    RouteTarget,
    Success,
    Timeout,
    millis,
    seconds,
)

GEN = Capability.GENERATE
NONE = Fixes()
CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN


# --------------------------------------------------------------------------- helpers


class ByNode:
    """A test policy scoring each node by a fixed table (always eligible)."""

    name = "by_node"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score(self, candidate, request):
        return self.scores[candidate.target.node_id]

    def is_eligible(self, candidate, request):
        return True


def make_router(nodes, fixes: Fixes = NONE, *, strategy=LoadBalanceStrategy.LEAST_LATENCY,
                seed: int = 0, policy=None, clock: Optional[ManualClock] = None,
                epoch_ns=None, health: Optional[HealthChecker] = None,
                breaker: Optional[CircuitBreaker] = None, max_candidates: int = 10,
                model: str = "m") -> Router:
    """One model deployed on ``nodes`` ([(node, region)] or [node]), in that order."""
    clock = clock or ManualClock()
    catalog = ModelCatalog()
    for item in nodes:
        node, region = item if isinstance(item, tuple) else (item, "region-1")
        catalog.register(model, node, region, [GEN])
    return Router(
        RouterConfig(max_candidates=max_candidates, strategy=strategy, seed=seed),
        catalog,
        health if health is not None else HealthChecker(clock=clock, fixes=fixes),
        breaker if breaker is not None else CircuitBreaker(clock=clock, fixes=fixes),
        policy=policy,
        clock=clock,
        epoch_ns=epoch_ns if epoch_ns is not None else clock.epoch_ns,
        fixes=fixes,
    )


def failing_executor(failing: dict[str, int]):
    """Nodes in ``failing`` fail with NodeUnreachable after the given ns; others succeed in
    50 ms with 10 tokens.  Every call is logged in ``executor.calls``."""
    calls: list[str] = []

    def run(target, request):
        calls.append(target.node_id)
        if target.node_id in failing:
            return Failure(NodeUnreachable(target.node_id), failing[target.node_id])
        return Success(InferenceResponse(b"ok", target.node_id, millis(50), 10), millis(50))

    run.calls = calls
    return run


def retry_success_gateway(fixes: Fixes, clock: ManualClock, sleeps: list[int],
                          config: Optional[GatewayConfig] = None,
                          breaker_config: Optional[CircuitBreakerConfig] = None):
    """Spec §9.4 scenario 2 (retry_success): llama-70b on us-east-1 then eu-west-1, neither
    registered with the health checker; us-east-1 fails (fail_node)."""
    catalog = ModelCatalog()
    catalog.register("llama-70b", "us-east-1", "us-east", [GEN])
    catalog.register("llama-70b", "eu-west-1", "eu-west", [GEN])
    executor = failing_executor({"us-east-1": 0})

    def sleep(ns):
        sleeps.append(ns)
        clock.advance(ns)

    builder = (GatewayBuilder().catalog(catalog).clock(clock).executor(executor).sleep(sleep)
               .fixes(fixes).epoch_ns(clock.epoch_ns))
    if config is not None:
        builder.config(config)
    if breaker_config is not None:
        builder.circuit_breaker(CircuitBreaker(breaker_config, clock=clock, fixes=fixes))
    return builder.build(), executor


def candidate(node="n", region="r", *, latency_score=0.5, throughput_score=0.5,
              locality_score=0.5, health_score=1.0, state=None) -> RouteCandidate:
    return RouteCandidate(
        RouteTarget(node, region),
        RouteScores(latency_score=latency_score, throughput_score=throughput_score,
                    locality_score=locality_score, health_score=health_score),
        health_state=state,
    )


def open_breaker(fixes: Fixes, clock: ManualClock, node: str = "n1") -> CircuitBreaker:
    """Default config (threshold 5, reset 30 s, 3 half-open successes), opened by 5 failures."""
    cb = CircuitBreaker(clock=clock, fixes=fixes)
    for _ in range(5):
        cb.record_failure(node)
    assert cb.state(node) is OPEN
    return cb


# =========================================================================== strategies


def test_fix_strategies_off_stubs_return_top_candidate():
    """Q-STUB-LB: RoundRobin / LeastConnections / ConsistentHash return pool[0] like LeastLatency."""
    for strategy in ("round_robin", "least_connections", "consistent_hash"):
        router = make_router(["n0", "n1", "n2"], NONE, strategy=strategy)
        router.load.started("n0")
        router.load.started("n0")
        picks = [router.route(InferenceRequest(GEN, session_key=f"k{i}")).node_id
                 for i in range(9)]
        assert picks == ["n0"] * 9, strategy


def test_fix_strategies_on_round_robin_least_connections_consistent_hash():
    """Q-STUB-LB fixed: rotate, fewest outstanding, hash ring on the session key."""
    fx = Fixes(strategies=True)
    rr = make_router(["n0", "n1", "n2"], fx, strategy="round_robin")
    assert [rr.route(InferenceRequest(GEN)).node_id for _ in range(6)] == \
        ["n0", "n1", "n2", "n0", "n1", "n2"]

    lc = make_router(["n0", "n1", "n2"], fx, strategy=LoadBalanceStrategy.LEAST_CONNECTIONS)
    for node, n in (("n0", 2), ("n1", 1), ("n2", 3)):
        for _ in range(n):
            lc.load.started(node)
    assert lc.route(InferenceRequest(GEN)).node_id == "n1"
    lc.load.started("n1")  # n0 = n1 = 2: tie goes to the better-ranked n0
    assert lc.route(InferenceRequest(GEN)).node_id == "n0"

    ch = make_router([f"n{i}" for i in range(5)], fx, strategy="consistent_hash")
    keys = [f"user-{i}" for i in range(200)]
    first = [ch.route(InferenceRequest(GEN, session_key=k)).node_id for k in keys]
    again = [ch.route(InferenceRequest(GEN, session_key=k)).node_id for k in keys]
    assert first == again  # sticky
    assert len(set(first)) == 5  # spread over the ring, not pool[0]
    # no session key: the request id is the hash key
    assert ch.route(InferenceRequest(GEN, request_id="user-7")).node_id == first[7]


# =========================================================================== seeded_weighted_random

# spec §6.4 test vectors: epoch_ns -> r
R_VECTORS = {0: 0.46384582627628995, 1: 0.5359643661987539, 42: 0.26012242544340497,
             1234567890123456789: 0.5865851941607979}


def test_fix_seeded_weighted_random_off_draws_from_epoch_hash():
    """Q-WRANDOM: r = SipHash(epoch_ns); with totals 1.0, 1.0 the pick is n0 iff 2r <= 1."""
    for epoch, r in R_VECTORS.items():
        expected = "n0" if r * 2.0 <= 1.0 else "n1"
        for seed in (0, 1, 99):  # the seed plays no part
            router = make_router(["n0", "n1"], NONE, strategy="weighted_random", seed=seed,
                                 policy=CompositePolicy(), epoch_ns=lambda e=epoch: e)
            assert [router.route(InferenceRequest(GEN)).node_id for _ in range(3)] == \
                [expected] * 3, (epoch, seed)
    # with r(0) = 0.4638 and r(1) = 0.5360 the two epochs pick different nodes
    assert {"n0", "n1"} == {"n0" if R_VECTORS[e] * 2 <= 1 else "n1" for e in (0, 1)}


def test_fix_seeded_weighted_random_on_seeded_and_score_weighted():
    """Fixed: independent of epoch_ns, reproducible per seed, choices follow score weights."""
    fx = Fixes(seeded_weighted_random=True)
    weights = {"n0": 1.0, "n1": 2.0, "n2": 3.0, "n3": 4.0}

    def run(seed, epoch, n=4000):
        router = make_router(list(weights), fx, strategy="weighted_random", seed=seed,
                             policy=ByNode(weights), epoch_ns=lambda: epoch)
        return [router.route(InferenceRequest(GEN)).node_id for _ in range(n)]

    a = run(7, 0)
    assert run(7, 1234567890123456789) == a  # epoch_ns has no influence
    assert run(8, 0) != a  # the seed does
    counts = Counter(a)
    total = sum(weights.values())
    chi2 = sum((counts[nd] - len(a) * w / total) ** 2 / (len(a) * w / total)
               for nd, w in weights.items())
    assert chi2 < 16.27, (counts, chi2)  # chi-square, 3 degrees of freedom, p = 0.001


# =========================================================================== active_probes


def _counting_prober(result: ProbeResult):
    calls: list[str] = []

    def prober(node):
        calls.append(node)
        return result

    prober.calls = calls
    return prober


def test_fix_active_probes_off_monitoring_is_a_flag():
    """Q-NOPROBE / Q-NORECOVER: no probing; an Unhealthy node stays Unhealthy."""
    clock = ManualClock()
    prober = _counting_prober(ProbeResult(True, millis(10)))
    hc = HealthChecker(clock=clock, prober=prober)
    hc.register_node("n1")
    for _ in range(3):
        hc.report_failure("n1")
    hc.start_monitoring()
    assert hc.is_monitoring()
    for _ in range(5):
        clock.advance(seconds(10))
        assert hc.run_due_probes() == 0
    assert prober.calls == []
    assert hc.get_cached_health("n1").status is HealthState.UNHEALTHY


def test_fix_active_probes_on_unhealthy_node_recovers_after_recovery_threshold_rounds():
    """Fixed: probes each check_interval; R = 2 successful rounds bring Unhealthy back to Healthy."""
    clock = ManualClock()
    prober = _counting_prober(ProbeResult(True, millis(10)))
    hc = HealthChecker(HealthConfig(check_interval=seconds(10), recovery_threshold=2),
                       clock=clock, fixes=Fixes(active_probes=True), prober=prober)
    hc.register_node("n1")
    for _ in range(3):
        hc.report_failure("n1")
    assert hc.get_cached_health("n1").status is HealthState.UNHEALTHY
    hc.start_monitoring()
    clock.advance(seconds(10) - 1)
    assert hc.run_due_probes() == 0  # first round one interval after start
    clock.advance(1)
    assert hc.run_due_probes() == 1
    assert hc.get_cached_health("n1").status is HealthState.UNHEALTHY  # 1 < R
    assert hc.run_due_probes() == 0  # not due again yet
    clock.advance(seconds(10))
    assert hc.run_due_probes() == 1
    assert hc.get_cached_health("n1").status is HealthState.HEALTHY
    assert prober.calls == ["n1", "n1"]


def test_fix_active_probes_on_probe_slower_than_timeout_fails():
    """Fixed: 'a probe slower than probe_timeout failing'; exactly probe_timeout is not slower."""
    clock = ManualClock()
    result = ProbeResult(True, seconds(5) + 1)
    hc = HealthChecker(HealthConfig(check_interval=seconds(10), probe_timeout=seconds(5)),
                       clock=clock, fixes=Fixes(active_probes=True), prober=lambda n: result)
    hc.register_node("n1")
    hc.report_success("n1", millis(10))
    hc.report_success("n1", millis(10))
    assert hc.get_cached_health("n1").status is HealthState.HEALTHY
    hc.start_monitoring()
    clock.advance(seconds(10))
    hc.run_due_probes()
    assert hc.counters("n1") == (1, 0)
    assert hc.get_cached_health("n1").status is HealthState.DEGRADED
    result.latency = seconds(5)
    clock.advance(seconds(10))
    hc.run_due_probes()
    assert hc.counters("n1") == (0, 1)


def test_fix_active_probes_on_gateway_infer_runs_due_probes():
    """Fixed: gateway.infer runs the due probe round, so traffic returns once the node recovers."""
    clock = ManualClock()
    fx = Fixes(active_probes=True)
    prober = _counting_prober(ProbeResult(True, millis(10)))
    hc = HealthChecker(clock=clock, fixes=fx, prober=prober)
    catalog = ModelCatalog()
    catalog.register("m", "n1", "r", [GEN])
    gw = GatewayBuilder().catalog(catalog).health(hc).clock(clock).fixes(fx).build()
    hc.register_node("n1")
    for _ in range(3):
        hc.report_failure("n1")
    hc.start_monitoring()
    with pytest.raises(NoCapacity):
        gw.infer(InferenceRequest(GEN))  # nothing due yet
    assert prober.calls == []
    clock.advance(seconds(10))
    with pytest.raises(NoCapacity):
        gw.infer(InferenceRequest(GEN))  # one probe: still Unhealthy (R = 2)
    clock.advance(seconds(10))
    assert gw.infer(InferenceRequest(GEN)).served_by == "n1"
    assert prober.calls == ["n1", "n1"]


# =========================================================================== half_open_single_probe


def test_fix_half_open_single_probe_off_unlimited_and_three_successes():
    """Q-HALFOPEN: every request passes in HalfOpen; closing needs half_open_successes (3)."""
    clock = ManualClock()
    cb = open_breaker(NONE, clock)
    clock.advance(seconds(30))
    assert cb.allow_request("n1") is True
    assert cb.state("n1") is HALF_OPEN
    assert [cb.allow_request("n1") for _ in range(5)] == [True] * 5
    assert cb.is_open("n1") is False
    cb.record_success("n1")
    assert cb.record("n1").as_tuple()[:3] == (HALF_OPEN, 5, 1)
    cb.record_success("n1")
    cb.record_success("n1")
    assert cb.record("n1").as_tuple()[:3] == (CLOSED, 0, 0)


def test_fix_half_open_single_probe_on_one_probe_and_one_success_closes():
    """Fixed: one probe at a time in HalfOpen; its success closes, its failure reopens."""
    fx = Fixes(half_open_single_probe=True)
    clock = ManualClock()
    cb = open_breaker(fx, clock)
    clock.advance(seconds(30))
    assert cb.allow_request("n1") is True  # the probe
    assert cb.state("n1") is HALF_OPEN
    assert cb.is_open("n1") is True  # everyone else waits for the probe's result
    assert cb.allow_request("n1") is False
    clock.advance(seconds(1))
    assert cb.is_open("n1") is True
    cb.record_success("n1")
    assert cb.record("n1").as_tuple()[:3] == (CLOSED, 0, 0)
    assert cb.is_open("n1") is False

    cb2 = open_breaker(fx, clock, "n2")
    clock.advance(seconds(30))
    assert cb2.allow_request("n2") is True
    cb2.record_failure("n2")
    assert cb2.state("n2") is OPEN
    assert cb2.allow_request("n2") is False


def test_fix_half_open_single_probe_on_lost_permit_is_freed_after_reset_timeout():
    """Fixed: 'a permit not answered within reset_timeout is considered lost and freed'."""
    fx = Fixes(half_open_single_probe=True)
    clock = ManualClock()
    cb = open_breaker(fx, clock)
    clock.advance(seconds(30))
    assert cb.allow_request("n1") is True
    clock.advance(seconds(30) - 1)
    assert cb.is_open("n1") is True
    clock.advance(1)
    assert cb.is_open("n1") is False
    assert cb.allow_request("n1") is True
    assert cb.allow_request("n1") is False


# =========================================================================== eager_half_open


def test_fix_eager_half_open_off_lazy_and_restarted_by_failures():
    """Q-LAZY-HALFOPEN: state() stays Open after the timeout; a failure while Open restarts it."""
    clock = ManualClock(start_ns=seconds(100))
    cb = open_breaker(NONE, clock)
    clock.advance(seconds(60))
    assert cb.state("n1") is OPEN
    assert dict(cb.all_states()) == {"n1": OPEN}
    assert cb.is_open("n1") is False  # only is_open moves it
    assert cb.state("n1") is HALF_OPEN

    cb = open_breaker(NONE, clock, "n2")
    opened = clock.now_ns()
    clock.advance(seconds(10))
    cb.record_failure("n2")  # while Open: last_failure moves, the 30 s restart
    clock.set(opened + seconds(30))
    assert cb.is_open("n2") is True
    assert cb.half_open_at("n2") == opened + seconds(40)
    clock.set(opened + seconds(40))
    assert cb.is_open("n2") is False


def test_fix_eager_half_open_on_state_reports_half_open_after_reset_timeout():
    """Fixed: HalfOpen from opened_at + reset_timeout, whoever asks; Open failures don't extend."""
    fx = Fixes(eager_half_open=True)
    clock = ManualClock(start_ns=seconds(100))
    cb = CircuitBreaker(clock=clock, fixes=fx)
    events = []
    cb.on_transition = lambda n, old, new, now: events.append((n, old, new, now))
    for _ in range(5):
        cb.record_failure("n1")
    opened = clock.now_ns()
    assert cb.half_open_at("n1") == opened + seconds(30)
    clock.advance(seconds(10))
    cb.record_failure("n1")  # failure while Open: does not push the deadline back
    assert cb.half_open_at("n1") == opened + seconds(30)
    clock.set(opened + seconds(30) - 1)
    assert cb.state("n1") is OPEN
    clock.set(opened + seconds(45))
    assert cb.state("n1") is HALF_OPEN  # no is_open call needed
    assert dict(cb.all_states()) == {"n1": HALF_OPEN}
    assert events == [("n1", CLOSED, OPEN, opened), ("n1", OPEN, HALF_OPEN, opened + seconds(30))]


def _eager_after_deadline(read_first: bool, event: str):
    fx = Fixes(eager_half_open=True)
    clock = ManualClock()
    cb = open_breaker(fx, clock)
    clock.advance(seconds(40))  # 10 s past opened_at + reset_timeout; nobody asked yet
    if read_first:
        assert cb.state("n1") is HALF_OPEN
    getattr(cb, event)("n1")
    return cb, clock


def test_fix_eager_half_open_on_failure_after_deadline_reopens():
    """Fixed: HalfOpen 'from opened_at + reset_timeout on, whoever asks' -> a later failure reopens."""
    cb, clock = _eager_after_deadline(read_first=False, event="record_failure")
    # the circuit was HalfOpen when the failure came: it must be Open again for reset_timeout
    assert cb.state("n1") is OPEN
    assert cb.half_open_at("n1") == clock.now_ns() + seconds(30)
    # and whether somebody read the state before the failure must not matter
    ref, _ = _eager_after_deadline(read_first=True, event="record_failure")
    assert ref.state("n1") is OPEN
    assert cb.record("n1").as_tuple() == ref.record("n1").as_tuple()


def test_fix_eager_half_open_on_success_after_deadline_is_a_half_open_success():
    """Fixed: 'whoever asks' -- a success after the deadline counts as a HalfOpen success (1 of 3)."""
    ref, _ = _eager_after_deadline(read_first=True, event="record_success")
    assert ref.record("n1").as_tuple()[:3] == (HALF_OPEN, 5, 1)
    cb, _ = _eager_after_deadline(read_first=False, event="record_success")
    assert cb.record("n1").as_tuple() == ref.record("n1").as_tuple()


def test_fix_eager_half_open_on_combines_with_half_open_single_probe():
    """Fixes combine: eager HalfOpen admits exactly one probe, whose success closes the circuit."""
    fx = Fixes(eager_half_open=True, half_open_single_probe=True)
    clock = ManualClock()
    cb = open_breaker(fx, clock)
    clock.advance(seconds(30))
    assert cb.state("n1") is HALF_OPEN
    assert cb.allow_request("n1") is True
    assert cb.allow_request("n1") is False
    cb.record_success("n1")
    assert cb.state("n1") is CLOSED


# =========================================================================== retry_excludes_tried


def test_fix_retry_excludes_tried_off_retry_success_scenario_fails():
    """§9.4 retry_success, reference: unregistered nodes -> all 4 attempts on us-east-1, fails."""
    clock = ManualClock()
    sleeps: list[int] = []
    gw, ex = retry_success_gateway(NONE, clock, sleeps)
    with pytest.raises(NodeUnreachable) as exc:
        gw.infer(InferenceRequest(GEN))
    assert exc.value == NodeUnreachable("us-east-1")
    assert ex.calls == ["us-east-1"] * 4
    assert sleeps == [millis(100), millis(200), millis(300)]
    st = gw.stats()
    assert (st.total_requests, st.successful_requests, st.failed_requests) == (1, 0, 1)


def test_fix_retry_excludes_tried_on_retry_success_scenario_served_by_second_node():
    """Fixed: the retry goes to the untried eu-west-1; retry_count() == 1 as the playbook expects."""
    clock = ManualClock()
    sleeps: list[int] = []
    gw, ex = retry_success_gateway(Fixes(retry_excludes_tried=True), clock, sleeps)
    resp = gw.infer(InferenceRequest(GEN))
    assert resp.served_by == "eu-west-1"
    assert ex.calls == ["us-east-1", "eu-west-1"]
    assert len(ex.calls) - 1 == 1  # retry count
    assert sleeps == [millis(100), millis(50)]  # one backoff, then eu-west-1's 50 ms execution
    st = gw.stats()
    assert (st.total_requests, st.successful_requests, st.failed_requests) == (1, 1, 0)


def test_fix_retry_excludes_tried_on_falls_back_when_no_untried_node():
    """Fixed: exclusion only 'while an untried one is eligible' -- a lone node is retried."""
    clock = ManualClock()
    router = make_router(["solo"], Fixes(retry_excludes_tried=True), clock=clock)
    ex = failing_executor({"solo": 0})
    gw = FederationGateway(router=router, executor=ex)
    with pytest.raises(NodeUnreachable):
        gw.infer(InferenceRequest(GEN))
    assert ex.calls == ["solo"] * 4


# =========================================================================== capped_jittered_backoff


def _backoff_sleeps(fixes: Fixes, seed: int = 0, max_retries: int = 12) -> list[int]:
    clock = ManualClock()
    sleeps: list[int] = []
    gw, ex = retry_success_gateway(
        fixes, clock, sleeps,
        config=GatewayConfig(max_retries=max_retries, seed=seed),
        breaker_config=CircuitBreakerConfig(failure_threshold=1000))
    # only the failing node: keep every attempt an execution failure
    gw.router.catalog.deregister("llama-70b", "eu-west-1")
    with pytest.raises(NodeUnreachable):
        gw.infer(InferenceRequest(GEN))
    assert len(ex.calls) == max_retries + 1
    assert clock.now_ns() == sum(sleeps)
    return sleeps


def test_fix_capped_jittered_backoff_off_linear_uncapped():
    """Q-BACKOFF: attempt i sleeps 100*(i+1) ms, no cap (exceeds 1 s from the 10th sleep)."""
    sleeps = _backoff_sleeps(NONE)
    assert sleeps == [millis(100 * (i + 1)) for i in range(12)]
    assert max(sleeps) > seconds(1)


def test_fix_capped_jittered_backoff_on_capped_jittered_seeded():
    """Fixed: sleep i in [0, min(cap, base*2^i)], total bounded, deterministic per seed."""
    fx = Fixes(capped_jittered_backoff=True)
    sleeps = _backoff_sleeps(fx, seed=3)
    ceilings = [min(seconds(1), millis(100) * 2 ** i) for i in range(12)]
    assert len(sleeps) == 12
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings)), (sleeps, ceilings)
    assert sum(sleeps) <= sum(ceilings)
    assert max(sleeps) <= seconds(1)
    assert sleeps != ceilings  # jittered, not the ceiling itself
    assert len(set(sleeps)) > 1
    assert _backoff_sleeps(fx, seed=3) == sleeps  # reproducible for a GatewayConfig.seed
    assert _backoff_sleeps(fx, seed=4) != sleeps


# =========================================================================== inference_timeout


def _slow_gateway(fixes: Fixes, duration: int):
    clock = ManualClock()
    hc = HealthChecker(clock=clock, fixes=fixes)
    router = make_router(["slow"], fixes, clock=clock, health=hc)
    hc.register_node("slow")

    def executor(target, request):
        return Success(InferenceResponse(b"late", target.node_id, duration, 5), duration)

    gw = FederationGateway(GatewayConfig(max_retries=0), router, executor=executor)
    return gw, clock, hc


def test_fix_inference_timeout_off_no_timeout():
    """Q-TIMEOUT: a 40 s execution succeeds after 40 s; inference_timeout (30 s) is unused."""
    gw, clock, hc = _slow_gateway(NONE, seconds(40))
    assert gw.infer(InferenceRequest(GEN)).served_by == "slow"
    assert clock.now_ns() == seconds(40)
    assert hc.get_cached_health("slow").latency_p50 == millis(4000)  # (0*9 + 40000)//10 ms


def test_fix_inference_timeout_on_fails_at_deadline():
    """Fixed: a 40 s execution fails with Timeout(30 s) after exactly 30 s of clock."""
    fx = Fixes(inference_timeout=True)
    gw, clock, hc = _slow_gateway(fx, seconds(40))
    with pytest.raises(Timeout) as exc:
        gw.infer(InferenceRequest(GEN))
    assert exc.value == Timeout(seconds(30))
    assert str(exc.value) == "Timeout after 30s"
    assert clock.now_ns() == seconds(30)
    assert hc.counters("slow") == (1, 0)  # reported as a failure
    assert gw.circuit_breaker.record("slow").failures == 1
    assert gw.stats().failed_requests == 1
    # not longer than the timeout: succeeds
    gw2, clock2, _ = _slow_gateway(fx, seconds(30))
    assert gw2.infer(InferenceRequest(GEN)).served_by == "slow"
    assert clock2.now_ns() == seconds(30)


# =========================================================================== health_policy_scores


def test_fix_health_policy_scores_off_ignores_configured_scores():
    """Q-HEALTH-POLICY: score = router health_score x weight; Degraded contributes 1.0."""
    req = InferenceRequest(GEN)
    p = HealthPolicy(healthy_score=0.9, degraded_score=0.3)
    assert p.score(candidate(health_score=0.5, state=HealthState.DEGRADED), req) == 1.0
    assert p.score(candidate(health_score=1.0, state=HealthState.HEALTHY), req) == 2.0
    assert HealthPolicy().score(candidate(health_score=0.5, state=HealthState.DEGRADED), req) == 1.0


def test_fix_health_policy_scores_on_degraded_gets_degraded_score():
    """Fixed: Degraded -> degraded_score*weight (0.3*2.0 = 0.6), Healthy -> healthy_score*weight."""
    fx = Fixes(health_policy_scores=True)
    req = InferenceRequest(GEN)
    p = HealthPolicy(fixes=fx)
    assert p.score(candidate(health_score=0.5, state=HealthState.DEGRADED), req) == 0.6
    assert p.score(candidate(health_score=1.0, state=HealthState.HEALTHY), req) == 2.0
    assert p.score(candidate(health_score=0.3, state=HealthState.UNKNOWN), req) == 0.6
    assert HealthPolicy(healthy_score=0.9, fixes=fx).score(
        candidate(health_score=1.0, state=HealthState.HEALTHY), req) == 1.8
    # through the router: a Degraded node's composite total uses 0.6 for the health term
    clock = ManualClock()
    router = make_router(["d"], fx, clock=clock)
    router.health_checker.register_node("d")
    router.health_checker.report_failure("d")  # Degraded, p50 0
    (c,) = router.get_candidates(req)
    assert c.health_state is HealthState.DEGRADED
    # [health, latency, privacy, locality, cost] = [0.6, 1.0, 1.0, 0.65, 0.5] -> mean
    assert c.scores.total == pytest.approx((0.6 + 1.0 + 1.0 + 0.65 + 0.5) / 5, abs=1e-12)
    router_ref = make_router(["d"], NONE, clock=clock)
    router_ref.health_checker.register_node("d")
    router_ref.health_checker.report_failure("d")
    (c_ref,) = router_ref.get_candidates(req)
    assert c_ref.scores.total == pytest.approx((1.0 + 1.0 + 1.0 + 0.65 + 0.5) / 5, abs=1e-12)


# =========================================================================== locality_from_origin


def test_fix_locality_from_origin_off_origin_ignored():
    """Q-LOCALITY: locality is always 0.5 (policy 0.65); a tie goes to the first deployment."""
    router = make_router([("eu-node", "eu-west"), ("us-node", "us-west")], NONE)
    req = InferenceRequest(GEN, origin_region="us-west")
    assert router.route(req).node_id == "eu-node"
    cands = router.get_candidates(req)
    assert [c.scores.locality_score for c in cands] == [0.5, 0.5]
    assert cands[0].scores.total == cands[1].scores.total


def test_fix_locality_from_origin_on_same_region_wins_tie():
    """Fixed: same region locality 1.0 (0.5+0.3 = 0.8), other 0.0 (0.5-0.1 = 0.4)."""
    fx = Fixes(locality_from_origin=True)
    router = make_router([("eu-node", "eu-west"), ("us-node", "us-west")], fx)
    req = InferenceRequest(GEN, origin_region="us-west")
    assert router.route(req).node_id == "us-node"
    by_node = {c.target.node_id: c for c in router.get_candidates(req)}
    assert by_node["us-node"].scores.locality_score == 1.0
    assert by_node["eu-node"].scores.locality_score == 0.0
    loc = LocalityPolicy(fixes=fx)
    assert loc.score(by_node["us-node"], req) == 0.5 + 0.3
    assert loc.score(by_node["eu-node"], req) == 0.5 - 0.1
    # Unknown nodes: [0.6, 0.8, 1.0, loc, 0.5] averaged
    assert by_node["us-node"].scores.total == pytest.approx((0.6 + 0.8 + 1.0 + 0.8 + 0.5) / 5)
    assert by_node["eu-node"].scores.total == pytest.approx((0.6 + 0.8 + 1.0 + 0.4 + 0.5) / 5)
    # without an origin the fix changes nothing
    assert router.route(InferenceRequest(GEN)).node_id == "eu-node"


# =========================================================================== cost_bands


BAND_CASES = [(0, "cheap"), (30, "cheap"), (31, "balanced"), (50, "balanced"),
              (51, "performance"), (70, "performance"), (71, "premium"), (100, "premium")]


def _cost_req(tol: int) -> InferenceRequest:
    req = InferenceRequest(GEN)
    req.qos.cost_tolerance = tol
    return req


def test_fix_cost_bands_off_binary_switch_at_50():
    """Q-COST: tolerance <= 50 scores 1 - cost; >= 51 scores the throughput score."""
    p = CostPolicy().with_region_cost("r", 0.25)
    c = candidate(region="r", latency_score=0.5, throughput_score=0.125)
    for tol, _ in BAND_CASES:
        assert p.score(c, _cost_req(tol)) == (0.75 if tol <= 50 else 0.125), tol


def test_fix_cost_bands_on_four_bands():
    """Fixed: c = 1 - cost, p = latency score: 0-30 c, 31-50 .75c+.25p, 51-70 .25c+.75p, 71+ p."""
    p = CostPolicy(fixes=Fixes(cost_bands=True)).with_region_cost("r", 0.25)
    c = candidate(region="r", latency_score=0.5, throughput_score=0.125)
    expected = {"cheap": 0.75, "balanced": 0.6875, "performance": 0.5625, "premium": 0.5}
    for tol, band in BAND_CASES:
        assert p.score(c, _cost_req(tol)) == expected[band], (tol, band)
    # weight multiplies
    p2 = CostPolicy(weight=2.0, fixes=Fixes(cost_bands=True)).with_region_cost("r", 0.25)
    assert p2.score(c, _cost_req(40)) == 1.375


# =========================================================================== real_health_metrics


def _observing_gateway(fixes: Fixes):
    clock = ManualClock()
    hc = HealthChecker(clock=clock, fixes=fixes)
    router = make_router(["n1"], fixes, clock=clock, health=hc)
    hc.register_node("n1")
    seen = []

    def executor(target, request):
        seen.append(hc.get_cached_health("n1").queue_depth)
        return Success(InferenceResponse(b"x", target.node_id, millis(20), 40), millis(20))

    return FederationGateway(router=router, executor=executor), hc, clock, seen


def test_fix_real_health_metrics_off_thin_metrics():
    """Q-HEALTH-METRICS: p50 is an integer-ms EWMA; p99, throughput, queue depth stay 0."""
    clock = ManualClock()
    hc = HealthChecker(clock=clock)
    hc.register_node("n1")
    for _ in range(3):
        hc.report_success("n1", millis(100), tokens=100)
    h = hc.get_cached_health("n1")
    assert (h.latency_p50, h.latency_p99, h.throughput) == (millis(27), 0, 0)  # 10, 19, 27
    gw, hc2, _, seen = _observing_gateway(NONE)
    gw.infer(InferenceRequest(GEN))
    assert seen == [0]
    assert hc2.get_cached_health("n1").throughput == 0


def test_fix_real_health_metrics_on_nearest_rank_percentiles():
    """Fixed: p50/p99 are nearest-rank percentiles of the last metrics_window latencies."""
    fx = Fixes(real_health_metrics=True)
    clock = ManualClock()
    hc = HealthChecker(clock=clock, fixes=fx)
    hc.register_node("n1")
    lat = [millis(i) for i in range(1, 101)]
    random.Random(5).shuffle(lat)
    for x in lat:
        hc.report_success("n1", x)
    h = hc.get_cached_health("n1")
    # nearest rank: the ceil(q*n)-th smallest of 1..100 ms
    assert (h.latency_p50, h.latency_p99) == (millis(50), millis(99))
    hc2 = HealthChecker(HealthConfig(metrics_window=10), clock=clock, fixes=fx)
    hc2.register_node("n1")
    for i in range(1, 21):
        hc2.report_success("n1", millis(i))
    h2 = hc2.get_cached_health("n1")
    # window = 11..20 ms: 5th smallest 15 ms, 10th smallest 20 ms
    assert (h2.latency_p50, h2.latency_p99) == (millis(15), millis(20))


def test_fix_real_health_metrics_on_queue_depth_and_throughput():
    """Fixed: queue depth = in-flight requests during the executor call; throughput = tokens/s."""
    fx = Fixes(real_health_metrics=True)
    gw, hc, clock, seen = _observing_gateway(fx)
    gw.infer(InferenceRequest(GEN))
    assert seen == [1]
    assert hc.get_cached_health("n1").queue_depth == 0
    # 40 tokens in the 10 s window -> 4 tokens/s
    assert hc.get_cached_health("n1").throughput == 4

    clock2 = ManualClock()
    h = HealthChecker(HealthConfig(throughput_window=seconds(10)), clock=clock2, fixes=fx)
    h.register_node("n1")
    h.report_success("n1", millis(10), tokens=200)
    clock2.advance(seconds(5))
    h.report_success("n1", millis(10), tokens=300)
    assert h.get_cached_health("n1").throughput == 50  # 500 tokens / 10 s
    clock2.advance(seconds(7))  # t = 12 s: the t = 0 report left the window
    h.report_success("n1", millis(10), tokens=100)
    assert h.get_cached_health("n1").throughput == 40  # 400 tokens / 10 s


def test_fix_real_health_metrics_on_throughput_is_over_the_last_window():
    """Fixed: throughput is tokens/s over the *last* throughput_window, also when read later."""
    fx = Fixes(real_health_metrics=True)
    clock = ManualClock()
    h = HealthChecker(HealthConfig(throughput_window=seconds(10)), clock=clock, fixes=fx)
    h.register_node("n1")
    h.report_success("n1", millis(10), tokens=200)
    assert h.get_cached_health("n1").throughput == 20
    clock.advance(seconds(60))  # nothing observed during the last 10 s
    assert h.get_cached_health("n1").throughput == 0
    h.report_failure("n1")  # a failure carries no tokens either
    assert h.get_cached_health("n1").throughput == 0


# =========================================================================== coverage of Fixes.names()


def test_every_fix_has_off_and_on_tests():
    """Every name in Fixes.names() has a test_fix_<name>_off_* and a test_fix_<name>_on_* test."""
    module = sys.modules[__name__]
    tests = [n for n in dir(module) if n.startswith("test_fix_")]
    for name in Fixes.names():
        assert any(t.startswith(f"test_fix_{name}_off_") for t in tests), name
        assert any(t.startswith(f"test_fix_{name}_on_") for t in tests), name
    assert len(Fixes.names()) == 12


# =========================================================================== Fixes() == no fixes argument

CAPS = (Capability.GENERATE, Capability.EMBED)
NODE_NAMES = ("a1", "a2", "a3", "b1", "b2")


def _world(strategy, fixes_arg: Optional[Fixes], via_builder: bool):
    """A gateway over two models; ``fixes_arg`` None means: never pass a fixes argument."""
    clock = ManualClock(start_ns=seconds(1), epoch_base_ns=1_700_000_000_000_000_000)
    kw = {} if fixes_arg is None else {"fixes": fixes_arg}
    catalog = ModelCatalog()
    for node in ("a1", "a2", "a3"):
        catalog.register("gen", node, f"r-{node}", [Capability.GENERATE])
    for node in ("b1", "b2"):
        catalog.register("emb", node, f"r-{node}", [Capability.EMBED])
    health = HealthChecker(HealthConfig(), clock=clock,
                           prober=lambda n: ProbeResult(n != "a1", millis(20)), **kw)
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=4, reset_timeout=seconds(5)),
                             clock=clock, **kw)
    for node in ("a1", "a2", "b1"):
        health.register_node(node)
    executor = failing_executor({"a1": millis(300), "b1": 0, "b2": 0})
    sleeps: list[int] = []

    def sleep(ns):
        sleeps.append(ns)
        clock.advance(ns)

    cfg = RouterConfig(strategy=strategy, seed=11)
    if via_builder:
        b = (GatewayBuilder().catalog(catalog).health(health).circuit_breaker(breaker)
             .router_config(cfg).clock(clock).epoch_ns(clock.epoch_ns).executor(executor)
             .sleep(sleep).config(GatewayConfig(seed=5)))
        if fixes_arg is not None:
            b.fixes(fixes_arg)
        gw = b.build()
    else:
        router = Router(cfg, catalog, health, breaker, clock=clock, epoch_ns=clock.epoch_ns, **kw)
        gw = FederationGateway(GatewayConfig(seed=5), router, executor=executor, sleep=sleep, **kw)
    return gw, clock, sleeps


def _run_sequence(gw: FederationGateway, clock: ManualClock, sleeps: list[int]) -> list:
    rng = random.Random(2024)
    log: list = []
    attempts: list = []
    gw.on_attempt = lambda ev: attempts.append((ev.attempt, ev.kind, ev.node_id, ev.start, ev.end))
    health, breaker, router = gw.health_checker, gw.circuit_breaker, gw.router
    for step in range(250):
        op = rng.choice(["infer", "infer", "infer", "route", "hs", "hf", "bf", "bs", "is_open",
                         "state", "advance", "register", "stream", "probes"])
        node = rng.choice(NODE_NAMES)
        req = InferenceRequest(rng.choice(CAPS), request_id=f"req-{step}",
                               session_key=rng.choice([None, "s1", "s2", "s3"]),
                               origin_region=rng.choice([None, "r-a2", "r-b1"]))
        req.qos.cost_tolerance = rng.choice([10, 40, 60, 90])
        try:
            if op == "infer":
                out = gw.infer(req).served_by
            elif op == "route":
                out = router.route(req).node_id
            elif op == "hs":
                out = health.report_success(node, rng.choice([millis(5), millis(900), seconds(2)]))
            elif op == "hf":
                out = health.report_failure(node)
            elif op == "bf":
                out = breaker.record_failure(node)
            elif op == "bs":
                out = breaker.record_success(node)
            elif op == "is_open":
                out = breaker.is_open(node)
            elif op == "state":
                out = breaker.state(node)
            elif op == "advance":
                out = clock.advance(rng.choice([0, millis(100), seconds(3), seconds(31)]))
            elif op == "register":
                out = health.register_node(node)
            elif op == "stream":
                s = gw.infer_stream(req)
                out = (s.node_id, list(s))
            else:
                health.start_monitoring()
                out = health.run_due_probes()
        except FederationError as err:
            out = ("error", type(err).__name__, str(err))
        log.append((step, op, out, clock.now_ns()))
        cands = router.get_candidates(req)
        log.append([(c.target.node_id, c.scores.total, c.eligible) for c in cands])
    log.append(("attempts", attempts))
    log.append(("sleeps", sleeps))
    log.append(("stats", gw.stats()))
    log.append(("health", [(s.node_id, s.state, s.latency_p50) for s in health.all_statuses()]
                + [(n, health.counters(n)) for n in NODE_NAMES]))
    log.append(("breaker", [(n, r.as_tuple()) for n, r in breaker.records()]))
    return log


@pytest.mark.parametrize("strategy", [LoadBalanceStrategy.LEAST_LATENCY, "round_robin",
                                      "least_connections", "consistent_hash", "weighted_random"])
def test_fixes_none_equals_default_constructors(strategy):
    """Fixes() (and Fixes.of('none')) make exactly the decisions of constructors without fixes."""
    logs = []
    for fixes_arg, via_builder in ((None, False), (Fixes(), False), (None, True),
                                   (Fixes.of("none"), True)):
        gw, clock, sleeps = _world(strategy, fixes_arg, via_builder)
        logs.append(_run_sequence(gw, clock, sleeps))
    assert logs[0] == logs[1]
    assert logs[2] == logs[3]
    assert logs[0] == logs[2]
    # the sequence exercised what it should: successes, failures with backoff, errors
    assert logs[0][-5][0] == "attempts"
    attempts = logs[0][-5][1]
    assert {"success", "failure"} <= {a[1] for a in attempts}
    assert any(isinstance(e[2], tuple) and e[2][0] == "error" for e in logs[0] if
               isinstance(e, tuple) and len(e) == 4)
    assert logs[0][-4][1]  # some backoff happened
    # and fixes do change decisions on the same sequence (the comparison is not vacuous)
    gw, clock, sleeps = _world(strategy, Fixes.all(), False)
    assert _run_sequence(gw, clock, sleeps) != logs[0]


# =========================================================================== Fixes.of


def test_fixes_of_parses_names_all_none_and_rejects_unknown():
    """Fixes.of: comma string or list, 'all', 'none'; unknown names raise with a suggestion."""
    assert Fixes.of("strategies, retry_excludes_tried") == \
        Fixes(strategies=True, retry_excludes_tried=True)
    assert Fixes.of(["cost_bands", "inference_timeout"]) == \
        Fixes(cost_bands=True, inference_timeout=True)
    assert Fixes.of("all") == Fixes.all()
    assert all(getattr(Fixes.of("all"), n) for n in Fixes.names())
    assert Fixes.of("none") == Fixes() == Fixes.none()
    assert not Fixes.of("none")
    assert Fixes.of(None) == Fixes()
    assert Fixes.of("") == Fixes()
    assert Fixes.of("none,eager_half_open") == Fixes(eager_half_open=True)
    assert str(Fixes.of("cost_bands,strategies")) == "strategies,cost_bands"
    assert str(Fixes()) == "none"
    assert Fixes.of("all").enabled() == Fixes.names()
    with pytest.raises(ValueError, match=r"did you mean 'retry_excludes_tried'\?"):
        Fixes.of("retry_exclude_tried")
    with pytest.raises(ValueError, match=r"did you mean 'strategies'\?"):
        Fixes.of(["strategy"])
    with pytest.raises(ValueError, match="xyzzy"):
        Fixes.of("cost_bands,xyzzy")
