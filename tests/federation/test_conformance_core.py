"""Conformance tests T1-T53 of apr-federation-spec.md §11.1-§11.4 (types, defaults, errors,
ModelCatalog, HealthChecker, CircuitBreaker), plus extra checks of the precise prose of §1-§4.

Every expected value comes from the spec, never from the implementation.
Health tuples are (status, p50 ms, consecutive_failures, consecutive_successes);
breaker tuples are (state, failures, successes_in_half_open, last_failure).
"""

from __future__ import annotations

import pytest

from fedsim.federation import (
    NS_PER_MS,
    AllNodesUnhealthy,
    Capability,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpen,
    CircuitState,
    DeploymentStatus,
    FederationError,
    GatewayConfig,
    GatewayStats,
    HealthChecker,
    HealthConfig,
    HealthState,
    InferenceRequest,
    Internal,
    InternalError,
    LoadBalanceStrategy,
    ManualClock,
    ModelCatalog,
    ModelId,
    NoCapacity,
    NodeId,
    NodeUnreachable,
    PrivacyLevel,
    PrivacyViolation,
    QoSRequirements,
    QoSViolation,
    RegionId,
    RouteScores,
    Router,
    RouterConfig,
    SelectionCriteria,
    Timeout,
    format_duration,
    micros,
    millis,
    seconds,
)

GEN = Capability.GENERATE
UNKNOWN = HealthState.UNKNOWN
HEALTHY = HealthState.HEALTHY
DEGRADED = HealthState.DEGRADED
UNHEALTHY = HealthState.UNHEALTHY
CLOSED = CircuitState.CLOSED
HALF_OPEN = CircuitState.HALF_OPEN
OPEN = CircuitState.OPEN

# A non-zero start makes "last_failure == t0" / "last_check == now" checks meaningful.
T0 = seconds(1000) + 7


# --------------------------------------------------------------------------- helpers


def make_health(config: HealthConfig | None = None, clock: ManualClock | None = None):
    clock = clock if clock is not None else ManualClock(T0)
    return HealthChecker(config if config is not None else HealthConfig(), clock=clock), clock


def make_breaker(config: CircuitBreakerConfig | None = None, clock: ManualClock | None = None):
    clock = clock if clock is not None else ManualClock(T0)
    return CircuitBreaker(config if config is not None else CircuitBreakerConfig(), clock=clock), clock


def htuple(h: HealthChecker, node: str):
    """(status, p50 in whole ms, consecutive_failures, consecutive_successes)."""
    rec = h.get_cached_health(node)
    assert rec is not None, f"{node} not registered"
    # §3.4: the EWMA result is always a whole number of ms.
    assert rec.latency_p50 % NS_PER_MS == 0, rec.latency_p50
    cf, cs = h.counters(node)
    return (rec.status, rec.latency_p50 // NS_PER_MS, cf, cs)


def btuple(cb: CircuitBreaker, node: str):
    rec = cb.record(node)
    assert rec is not None, f"no breaker record for {node}"
    return rec.as_tuple()


def standard_router(cat: ModelCatalog, h: HealthChecker, cb: CircuitBreaker, clock: ManualClock) -> Router:
    return Router(RouterConfig(), cat, h, cb, clock=clock)


def req(cap: Capability) -> InferenceRequest:
    return InferenceRequest(cap)


def oks(h: HealthChecker, node: str, latency_ns: int, n: int):
    """Report ``n`` identical successes; return the health tuple after each."""
    out = []
    for _ in range(n):
        h.report_success(node, latency_ns)
        out.append(htuple(h, node))
    return out


# =========================================================================== §11.1 types


def test_T1_privacy_level_total_order():
    """T1: Public < Internal < Confidential < Restricted (and the reverse > holds)."""
    order = [PrivacyLevel.PUBLIC, PrivacyLevel.INTERNAL, PrivacyLevel.CONFIDENTIAL, PrivacyLevel.RESTRICTED]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            assert (a < b) == (i < j), (a, b)
            assert (a > b) == (i > j), (a, b)
            assert (a == b) == (i == j), (a, b)
    assert PrivacyLevel.PUBLIC < PrivacyLevel.INTERNAL < PrivacyLevel.CONFIDENTIAL < PrivacyLevel.RESTRICTED
    assert PrivacyLevel.RESTRICTED > PrivacyLevel.CONFIDENTIAL > PrivacyLevel.INTERNAL > PrivacyLevel.PUBLIC


def test_T2_qos_defaults():
    """T2: QoSRequirements() -> privacy Internal, prefer_gpu True, cost_tolerance 50, max_latency/min_throughput None."""
    q = QoSRequirements()
    assert q.privacy is PrivacyLevel.INTERNAL
    assert q.prefer_gpu is True
    assert q.cost_tolerance == 50
    assert q.max_latency is None
    assert q.min_throughput is None


def test_T3_route_scores_defaults():
    """T3: RouteScores() -> latency 0.5, throughput 0.5, cost 0.5, locality 0.5, health 1.0, total 0.5."""
    s = RouteScores()
    assert s.latency_score == 0.5
    assert s.throughput_score == 0.5
    assert s.cost_score == 0.5
    assert s.locality_score == 0.5
    assert s.health_score == 1.0
    assert s.total == 0.5


def test_T4_config_defaults():
    """T4: defaults of LoadBalanceStrategy, RouterConfig, GatewayConfig, HealthConfig, CircuitBreakerConfig, SelectionCriteria."""
    assert LoadBalanceStrategy.default() is LoadBalanceStrategy.LEAST_LATENCY

    rc = RouterConfig()
    assert (rc.max_candidates, rc.min_score, rc.strategy) == (10, 0.1, LoadBalanceStrategy.LEAST_LATENCY)

    gc = GatewayConfig()
    assert (gc.max_retries, gc.inference_timeout, gc.enable_tracing) == (3, 30 * 10**9, True)

    hc = HealthConfig()
    assert (hc.check_interval, hc.probe_timeout, hc.failure_threshold, hc.recovery_threshold,
            hc.degraded_latency) == (10 * 10**9, 5 * 10**9, 3, 2, 10**9)

    cc = CircuitBreakerConfig()
    assert (cc.failure_threshold, cc.reset_timeout, cc.half_open_successes) == (5, 30 * 10**9, 3)

    sc = SelectionCriteria()
    assert sc.capability == Capability.GENERATE
    assert sc.min_health is HealthState.DEGRADED
    assert sc.max_latency is None
    assert sc.min_privacy is PrivacyLevel.PUBLIC
    assert sc.preferred_regions == []
    assert sc.excluded_nodes == []


def test_T5_capability_equality():
    """T5: Custom equality by name, Custom != built-in, the seven values pairwise distinct."""
    assert Capability.custom("sentiment") == Capability.custom("sentiment")
    assert Capability.custom("sentiment") != Capability.custom("other")
    assert Capability.TRANSCRIBE != Capability.custom("sentiment")
    seven = [Capability.TRANSCRIBE, Capability.SYNTHESIZE, Capability.GENERATE, Capability.CODE,
             Capability.EMBED, Capability.IMAGE_GEN, Capability.custom("my_cap")]
    for i, a in enumerate(seven):
        for j, b in enumerate(seven):
            if i == j:
                assert a == b
            else:
                assert a != b, (a, b)
                assert not (a == b), (a, b)


@pytest.mark.parametrize(
    "error, message",
    [
        (NoCapacity(Capability.TRANSCRIBE), "No nodes available for capability: Transcribe"),
        (AllNodesUnhealthy(Capability.GENERATE), "All nodes unhealthy for capability: Generate"),
        (NoCapacity(Capability.custom('senti"ment')), 'No nodes available for capability: Custom("senti\\"ment")'),
        (QoSViolation("latency too high"), "QoS requirements cannot be met: latency too high"),
        (PrivacyViolation("data must stay in EU"), "Privacy policy violation: data must stay in EU"),
        (NodeUnreachable("dead-node"), "Node unreachable: dead-node"),
        (Timeout(seconds(30)), "Timeout after 30s"),
        (Timeout(millis(1500)), "Timeout after 1.5s"),
        (Timeout(micros(5)), "Timeout after 5µs"),
        (CircuitOpen("overloaded"), "Circuit breaker open for node: overloaded"),
        (Internal("unexpected state"), "Internal error: unexpected state"),
    ],
    ids=["NoCapacity", "AllNodesUnhealthy", "NoCapacity-custom-quote", "QoSViolation", "PrivacyViolation",
         "NodeUnreachable", "Timeout30s", "Timeout1.5s", "Timeout5us", "CircuitOpen", "Internal"],
)
def test_T6_error_messages(error, message):
    """T6: each FederationError variant's Display message is exactly the reference text."""
    assert isinstance(error, FederationError)
    assert str(error) == message


def test_T7_ids():
    """T7: str(NodeId("gpu-node-01")) == "gpu-node-01"; str(ModelId("")) == ""; {a, b, a} has 2 elements."""
    assert str(NodeId("gpu-node-01")) == "gpu-node-01"
    assert str(ModelId("")) == ""
    assert len({NodeId("a"), NodeId("b"), NodeId("a")}) == 2


def test_T8_gateway_stats_defaults():
    """T8: GatewayStats() -> all counters 0, avg_latency 0, active_streams 0."""
    s = GatewayStats()
    assert s.total_requests == 0
    assert s.successful_requests == 0
    assert s.failed_requests == 0
    assert s.total_tokens == 0
    assert s.avg_latency == 0
    assert s.active_streams == 0


# =========================================================================== §11.2 catalog


def test_T9_register_and_find():
    """T9: reg(whisper-large, node-1, us-west, [Transcribe]) -> find(Transcribe) == [(node-1, us-west)]."""
    cat = ModelCatalog()
    cat.register("whisper-large", "node-1", "us-west", [Capability.TRANSCRIBE])
    assert cat.find_by_capability(Capability.TRANSCRIBE) == [("node-1", "us-west")]


def test_T10_two_deployments_one_model():
    """T10: two deployments of whisper-base -> find order, 2 deployments, list_all has 1 id."""
    cat = ModelCatalog()
    cat.register("whisper-base", "node-1", "us-east", [Capability.TRANSCRIBE])
    cat.register("whisper-base", "node-2", "us-west", [Capability.TRANSCRIBE])
    assert cat.find_by_capability(Capability.TRANSCRIBE) == [("node-1", "us-east"), ("node-2", "us-west")]
    entry = cat.get("whisper-base")
    assert entry is not None
    assert len(entry.deployments) == 2
    assert cat.list_all() == ["whisper-base"]


def test_T11_deregister_last_deployment_removes_entry():
    """T11: deregister(llama-7b, node-1) -> list_all == [], find(Generate) == [], get is None."""
    cat = ModelCatalog()
    cat.register("llama-7b", "node-1", "eu-west", [GEN])
    cat.deregister("llama-7b", "node-1")
    assert cat.list_all() == []
    assert cat.find_by_capability(GEN) == []
    assert cat.get("llama-7b") is None


def test_T12_deregister_unknown_is_noop():
    """T12: deregister(missing, n1) on empty catalog succeeds; deregister(m1, n2) leaves list_all == [m1]."""
    cat = ModelCatalog()
    assert cat.deregister("missing", "n1") is None
    assert cat.list_all() == []
    assert cat.all_entries() == []
    cat.register("m1", "n1", "r1", [GEN])
    cat.deregister("m1", "n2")
    assert cat.list_all() == ["m1"]
    assert [(d.node_id, d.region_id) for d in cat.get("m1").deployments] == [("n1", "r1")]


def test_T13_deregister_one_node_keeps_other():
    """T13: reg m1 on n1 and n2; deregister(m1, n1) -> deployments == [n2/r2]."""
    cat = ModelCatalog()
    cat.register("m1", "n1", "r1", [GEN])
    cat.register("m1", "n2", "r2", [GEN])
    cat.deregister("m1", "n1")
    assert [(d.node_id, d.region_id) for d in cat.get("m1").deployments] == [("n2", "r2")]


def test_T14_custom_capability_lookup():
    """T14: find(Custom("sentiment")) has 1 entry; find(Custom("other")) == []."""
    cat = ModelCatalog()
    cat.register("sentiment-bert", "node-1", "ap-south", [Capability.custom("sentiment")])
    assert cat.find_by_capability(Capability.custom("sentiment")) == [("node-1", "ap-south")]
    assert cat.find_by_capability(Capability.custom("other")) == []


def test_T15_every_capability_kind():
    """T15: t1..t7 each on n1/r1 with one of the seven capabilities -> each find returns exactly 1 entry."""
    caps = [Capability.TRANSCRIBE, Capability.SYNTHESIZE, Capability.GENERATE, Capability.CODE,
            Capability.EMBED, Capability.IMAGE_GEN, Capability.custom("custom_task")]
    cat = ModelCatalog()
    for i, cap in enumerate(caps, start=1):
        cat.register(f"t{i}", "n1", "r1", [cap])
    for cap in caps:
        assert cat.find_by_capability(cap) == [("n1", "r1")], cap


def test_T16_metadata_and_deployment_fields():
    """T16: get_metadata(llama) -> (llama, "llama", "1.0.0", [Generate, Code], 0, None); endpoint "" and Ready."""
    cat = ModelCatalog()
    cat.register("llama", "n1", "us-east", [Capability.GENERATE, Capability.CODE])
    md = cat.get_metadata("llama")
    assert md.model_id == "llama"
    assert md.name == "llama"
    assert md.version == "1.0.0"
    assert md.capabilities == [Capability.GENERATE, Capability.CODE]
    assert md.parameters == 0
    assert md.quantization is None
    (dep,) = cat.get("llama").deployments
    assert dep.node_id == "n1"
    assert dep.region_id == "us-east"
    assert dep.endpoint == ""
    assert dep.status is DeploymentStatus.READY


def test_T17_get_metadata_missing():
    """T17: get_metadata(missing) -> `Internal error: Model not found: ModelId("missing")`."""
    cat = ModelCatalog()
    with pytest.raises(InternalError) as exc:
        cat.get_metadata("missing")
    assert str(exc.value) == 'Internal error: Model not found: ModelId("missing")'
    assert exc.value == Internal('Model not found: ModelId("missing")')


def test_T18_duplicate_capability_duplicates_hits():
    """T18: reg(d, x, r, [Generate, Generate]) -> find(Generate) == [(x, r), (x, r)]."""
    cat = ModelCatalog()
    cat.register("d", "x", "r", [GEN, GEN])
    assert cat.find_by_capability(GEN) == [("x", "r"), ("x", "r")]


def test_T19_stale_index_after_reregistration():
    """T19: reg, deregister, reg again -> find(Generate) == [(n1, r1), (n1, r1)]."""
    cat = ModelCatalog()
    cat.register("m1", "n1", "r1", [GEN])
    cat.deregister("m1", "n1")
    cat.register("m1", "n1", "r1", [GEN])
    assert cat.find_by_capability(GEN) == [("n1", "r1"), ("n1", "r1")]


def _t20_setup():
    """Run T20's steps; returns (catalog, health, breaker, clock)."""
    clock = ManualClock(T0)
    cat = ModelCatalog()
    h = HealthChecker(clock=clock)
    cb = CircuitBreaker(clock=clock)
    h.register_node("reg")
    emb = Capability.EMBED
    cat.register("m", "reg", "r1", [emb])
    cat.register("m", "unreg", "r1", [emb])
    cat.register("m", "reg", "r2", [emb])
    return cat, h, cb, clock


def test_T20_stale_capability_index():
    """T20: find(Embed) through deregistrations; re-register for Code leaves a stale Embed hit but route(Embed) -> NoCapacity."""
    cat, h, cb, clock = _t20_setup()
    emb, code = Capability.EMBED, Capability.CODE
    assert cat.find_by_capability(emb) == [("reg", "r1"), ("unreg", "r1"), ("reg", "r2")]
    cat.deregister("m", "reg")
    assert cat.find_by_capability(emb) == [("unreg", "r1")]
    cat.deregister("m", "unreg")
    assert cat.list_all() == []
    assert cat.find_by_capability(emb) == []
    cat.register("m", "n9", "r9", [code])
    assert cat.find_by_capability(emb) == [("n9", "r9")]
    assert cat.find_by_capability(code) == [("n9", "r9")]
    assert cat.get_metadata("m").capabilities == [code]
    router = standard_router(cat, h, cb, clock)
    with pytest.raises(NoCapacity) as exc:
        router.route(req(emb))
    assert exc.value == NoCapacity(emb)
    assert str(exc.value) == "No nodes available for capability: Embed"


def test_T21_capabilities_frozen_at_first_registration():
    """T21: continuing T20, the index accumulates stale/duplicate ids while metadata stays [Code]."""
    cat, _h, _cb, _clock = _t20_setup()
    emb, code = Capability.EMBED, Capability.CODE
    cat.deregister("m", "reg")
    cat.deregister("m", "unreg")
    cat.register("m", "n9", "r9", [code])
    # T21 proper
    cat.deregister("m", "n9")
    cat.register("m", "n9", "r9", [code])
    assert cat.find_by_capability(code) == [("n9", "r9"), ("n9", "r9")]
    cat.register("m", "n10", "r9", [emb])
    assert cat.get_metadata("m").capabilities == [code]
    assert cat.find_by_capability(emb) == [("n9", "r9"), ("n10", "r9")]
    assert cat.find_by_capability(code) == [("n9", "r9"), ("n10", "r9"), ("n9", "r9"), ("n10", "r9")]


def test_T22_same_model_node_twice():
    """T22: registering the same (model, node) twice -> two deployments and two router candidates; one deregister removes both."""
    clock = ManualClock(T0)
    cat = ModelCatalog()
    h = HealthChecker(clock=clock)
    cb = CircuitBreaker(clock=clock)
    h.register_node("x")
    cat.register("m", "x", "r", [GEN])
    cat.register("m", "x", "r", [GEN])
    deps = cat.get("m").deployments
    assert len(deps) == 2
    assert [(d.node_id, d.region_id, d.endpoint, d.status) for d in deps] == [
        ("x", "r", "", DeploymentStatus.READY)] * 2
    router = standard_router(cat, h, cb, clock)
    cands = router.get_candidates(req(GEN))
    assert [(c.target.node_id, c.target.region_id) for c in cands] == [("x", "r"), ("x", "r")]
    cat.deregister("m", "x")
    assert cat.get("m") is None
    assert cat.list_all() == []
    assert router.get_candidates(req(GEN)) == []


# =========================================================================== §11.3 health


def test_T23_register_and_query():
    """T23: fresh node Unknown/0/0/0/0/None; unknown -> None; check_node(nope) -> `Node unreachable: nope`."""
    h, clock = make_health()
    h.register_node("n")
    rec = h.get_cached_health("n")
    assert rec.node_id == "n"
    assert rec.status is UNKNOWN
    assert rec.latency_p50 == 0
    assert rec.latency_p99 == 0
    assert rec.throughput == 0
    assert rec.queue_depth == 0
    assert rec.gpu_utilization is None
    assert h.get_cached_health("unknown") is None
    with pytest.raises(NodeUnreachable) as exc:
        h.check_node("nope")
    assert str(exc.value) == "Node unreachable: nope"
    checked = h.check_node("n")
    assert checked.status is UNKNOWN
    assert checked == rec


def test_T24_ewma_45ms():
    """T24: ok(a, 45) x3 -> (Unknown, 4, 0, 1), (Healthy, 8, 0, 2), (Healthy, 11, 0, 3)."""
    h, _ = make_health()
    h.register_node("a")
    assert oks(h, "a", millis(45), 3) == [(UNKNOWN, 4, 0, 1), (HEALTHY, 8, 0, 2), (HEALTHY, 11, 0, 3)]


def test_T25_ewma_120ms():
    """T25: ok 120 ms x3 -> p50 12, 22, 31 (Unknown, Healthy, Healthy)."""
    h, _ = make_health()
    h.register_node("n")
    assert oks(h, "n", millis(120), 3) == [(UNKNOWN, 12, 0, 1), (HEALTHY, 22, 0, 2), (HEALTHY, 31, 0, 3)]


def test_T26_ewma_100ms_x12():
    """T26: ok 100 ms x12 -> p50 10, 19, 27, 34, 40, 46, 51, 55, 59, 63, 66, 69; Healthy from the 2nd on."""
    h, _ = make_health()
    h.register_node("n")
    got = oks(h, "n", millis(100), 12)
    p50s = [10, 19, 27, 34, 40, 46, 51, 55, 59, 63, 66, 69]
    expected = [(UNKNOWN if i == 0 else HEALTHY, p, 0, i + 1) for i, p in enumerate(p50s)]
    assert got == expected


@pytest.mark.parametrize(
    "latency_ms, p50s",
    [
        (50, [5, 9, 13]),
        (15, [1, 2, 3]),
        (65, [6, 11, 16]),
        (200, [20, 38, 54]),
        (20, [2, 3, 4, 5, 6]),
        (10, [1]),
    ],
)
def test_T27_ewma_series(latency_ms, p50s):
    """T27: p50 series for 50/15/65/200/20/10 ms; ok 10 ms x1 -> (Unknown, 1, 0, 1)."""
    h, _ = make_health()
    h.register_node("n")
    got = oks(h, "n", millis(latency_ms), len(p50s))
    assert [t[1] for t in got] == p50s
    # Status per §3.6 (all latencies <= 1 s): Unknown after the 1st report, Healthy from the 2nd.
    assert got == [(UNKNOWN if i == 0 else HEALTHY, p, 0, i + 1) for i, p in enumerate(p50s)]
    if latency_ms == 10:
        assert got == [(UNKNOWN, 1, 0, 1)]


def test_T28_slow_success_degrades():
    """T28: ok(x, 2000 ms) on a fresh node -> (Degraded, 200, 0, 1)."""
    h, _ = make_health()
    h.register_node("x")
    h.report_success("x", millis(2000))
    assert htuple(h, "x") == (DEGRADED, 200, 0, 1)


def test_T29_exactly_degraded_threshold_is_not_degraded():
    """T29: ok 1000 ms x3 -> (Unknown, 100, 0, 1), (Healthy, 190, 0, 2), (Healthy, 271, 0, 3)."""
    h, _ = make_health()
    h.register_node("n")
    assert oks(h, "n", millis(1000), 3) == [(UNKNOWN, 100, 0, 1), (HEALTHY, 190, 0, 2), (HEALTHY, 271, 0, 3)]


@pytest.mark.parametrize("latency_ns", [millis(1001), micros(1_000_500)], ids=["1001ms", "1000.5ms"])
def test_T30_degraded_test_full_precision(latency_ns):
    """T30: ok 1001 ms and ok 1000.5 ms -> (Degraded, 100, 0, 1)."""
    h, _ = make_health()
    h.register_node("n")
    h.report_success("n", latency_ns)
    assert htuple(h, "n") == (DEGRADED, 100, 0, 1)


def _t31(h: HealthChecker, node: str):
    out = []
    for _ in range(4):
        h.report_failure(node)
        out.append(htuple(h, node))
    return out


def test_T31_failures():
    """T31: fail x4 -> (Degraded, 0, 1, 0), (Degraded, 0, 2, 0), (Unhealthy, 0, 3, 0), (Unhealthy, 0, 4, 0)."""
    h, _ = make_health()
    h.register_node("n")
    assert _t31(h, "n") == [(DEGRADED, 0, 1, 0), (DEGRADED, 0, 2, 0), (UNHEALTHY, 0, 3, 0), (UNHEALTHY, 0, 4, 0)]


def test_T32_unhealthy_needs_two_fast_successes():
    """T32: continuing T31: ok 10 ms -> (Unhealthy, 1, 0, 1); ok 10 ms -> (Healthy, 1, 0, 2)."""
    h, _ = make_health()
    h.register_node("n")
    _t31(h, "n")
    assert oks(h, "n", millis(10), 2) == [(UNHEALTHY, 1, 0, 1), (HEALTHY, 1, 0, 2)]


def test_T33_slow_success_turns_unhealthy_into_degraded():
    """T33: fail x3 (Unhealthy), then ok 1500 ms -> (Degraded, 150, 0, 1)."""
    h, _ = make_health()
    h.register_node("n")
    for _ in range(3):
        h.report_failure("n")
    assert htuple(h, "n") == (UNHEALTHY, 0, 3, 0)
    h.report_success("n", millis(1500))
    assert htuple(h, "n") == (DEGRADED, 150, 0, 1)


def test_T34_failure_after_healthy():
    """T34: ok 100 x2 (Healthy, 19), fail -> (Degraded, 19, 1, 0), ok 100 -> (Degraded, 27, 0, 1)."""
    h, _ = make_health()
    h.register_node("n")
    assert oks(h, "n", millis(100), 2)[-1] == (HEALTHY, 19, 0, 2)
    h.report_failure("n")
    assert htuple(h, "n") == (DEGRADED, 19, 1, 0)
    h.report_success("n", millis(100))
    assert htuple(h, "n") == (DEGRADED, 27, 0, 1)


def test_T35_reregister_resets():
    """T35: hreg on an existing node resets it -> (Unknown, 0, 0, 0)."""
    h, clock = make_health()
    h.register_node("n")
    oks(h, "n", millis(100), 3)
    h.report_failure("n")
    assert htuple(h, "n") != (UNKNOWN, 0, 0, 0)
    clock.advance(seconds(5))
    h.register_node("n")
    assert htuple(h, "n") == (UNKNOWN, 0, 0, 0)
    assert h.get_cached_health("n").last_check == T0 + seconds(5)
    assert h.total_count() == 1


def test_T36_slow_spike_then_recovery():
    """T36: ok 100 x3 (Healthy, 27), ok 3000 -> (Degraded, 324, 0, 4), ok 100 -> (Healthy, 301, 0, 5)."""
    h, _ = make_health()
    h.register_node("n")
    assert oks(h, "n", millis(100), 3)[-1] == (HEALTHY, 27, 0, 3)
    h.report_success("n", millis(3000))
    assert htuple(h, "n") == (DEGRADED, 324, 0, 4)
    h.report_success("n", millis(100))
    assert htuple(h, "n") == (HEALTHY, 301, 0, 5)


def test_T37_thresholds_of_one():
    """T37: recovery_threshold=1, failure_threshold=1: ok 5 ms -> (Healthy, 0, 0, 1); fail -> (Unhealthy, 0, 1, 0)."""
    h, _ = make_health(HealthConfig(recovery_threshold=1, failure_threshold=1))
    h.register_node("n")
    h.report_success("n", millis(5))
    assert htuple(h, "n") == (HEALTHY, 0, 0, 1)
    h.report_failure("n")
    assert htuple(h, "n") == (UNHEALTHY, 0, 1, 0)


def test_T38_failure_threshold_five():
    """T38: failure_threshold=5: fail x3 -> Degraded; fail x2 more -> Unhealthy."""
    h, _ = make_health(HealthConfig(failure_threshold=5))
    h.register_node("n")
    for _ in range(3):
        h.report_failure("n")
    assert htuple(h, "n") == (DEGRADED, 0, 3, 0)
    h.report_failure("n")
    assert htuple(h, "n") == (DEGRADED, 0, 4, 0)  # cf 4 < F 5 (§3.5)
    h.report_failure("n")
    assert htuple(h, "n") == (UNHEALTHY, 0, 5, 0)


def test_T39_reports_on_unregistered_node_are_ignored():
    """T39: ok/fail on a never-registered node -> no effect; total_count 0."""
    h, _ = make_health()
    h.report_success("ghost", millis(10))
    h.report_failure("ghost")
    assert h.total_count() == 0
    assert h.healthy_count() == 0
    assert h.get_cached_health("ghost") is None
    assert h.counters("ghost") is None
    assert h.all_statuses() == []


def test_T40_counts_and_deregistration():
    """T40: ok(n1, 10) x3 -> healthy_count 1, total_count 2, all_statuses 2 entries; deregister -> total 1."""
    h, _ = make_health()
    h.register_node("n1")
    h.register_node("n2")
    oks(h, "n1", millis(10), 3)
    assert h.healthy_count() == 1
    assert h.total_count() == 2
    statuses = h.all_statuses()
    assert len(statuses) == 2
    assert {(s.node_id, s.state) for s in statuses} == {("n1", HEALTHY), ("n2", UNKNOWN)}
    h.deregister_node("n1")
    assert h.total_count() == 1
    assert h.get_cached_health("n1") is None
    h.deregister_node("unknown")  # no error
    assert h.total_count() == 1


def test_T41_monitoring_flag_only():
    """T41: is_monitoring False -> start(10 s) -> True -> stop -> False; no node state changes."""
    h, clock = make_health()
    h.register_node("a")
    h.register_node("b")
    oks(h, "a", millis(30), 2)
    h.report_failure("b")
    before = {n: (h.get_cached_health(n), h.counters(n)) for n in ("a", "b")}
    assert h.is_monitoring() is False
    h.start_monitoring(seconds(10))
    assert h.is_monitoring() is True
    clock.advance(seconds(60))  # several "intervals": still no probing (§3.7, Q-NOPROBE)
    h.run_due_probes()
    assert {n: (h.get_cached_health(n), h.counters(n)) for n in ("a", "b")} == before
    h.stop_monitoring()
    assert h.is_monitoring() is False
    assert {n: (h.get_cached_health(n), h.counters(n)) for n in ("a", "b")} == before


# =========================================================================== §11.4 breaker


def test_T42_fresh_breaker_queries_create_no_record():
    """T42: fresh breaker: is_open(c) False, state(c) Closed, all_states() == []."""
    cb, _ = make_breaker()
    assert cb.is_open("c") is False
    assert cb.state("c") is CLOSED
    assert cb.all_states() == []
    assert cb.record("c") is None


def _t43(cb: CircuitBreaker):
    out = []
    for _ in range(5):
        cb.record_failure("a")
        out.append(btuple(cb, "a"))
    return out


def test_T43_five_failures_open():
    """T43: record_failure(a) x5 at t0 -> (Closed,1..4), (Open,5), last_failure t0; is_open True."""
    cb, _ = make_breaker()
    assert _t43(cb) == [(CLOSED, 1, 0, T0), (CLOSED, 2, 0, T0), (CLOSED, 3, 0, T0), (CLOSED, 4, 0, T0),
                        (OPEN, 5, 0, T0)]
    assert cb.is_open("a") is True


def _t44(cb: CircuitBreaker, clock: ManualClock):
    _t43(cb)
    cb.is_open("a")
    clock.set(T0 + millis(29_999))
    cb.is_open("a")
    clock.set(T0 + seconds(30))
    cb.is_open("a")


def test_T44_lazy_half_open_at_reset_timeout():
    """T44: t0+29.999 s is_open True; at t0+30 s state Open, is_open False -> (HalfOpen, 5, 0, t0); again False."""
    cb, clock = make_breaker()
    _t43(cb)
    assert cb.is_open("a") is True
    clock.set(T0 + millis(29_999))
    assert cb.is_open("a") is True
    assert cb.state("a") is OPEN
    assert btuple(cb, "a") == (OPEN, 5, 0, T0)
    clock.set(T0 + seconds(30))
    assert cb.state("a") is OPEN  # no time check in state()
    assert btuple(cb, "a") == (OPEN, 5, 0, T0)
    assert cb.is_open("a") is False
    assert btuple(cb, "a") == (HALF_OPEN, 5, 0, T0)
    assert cb.is_open("a") is False
    assert btuple(cb, "a") == (HALF_OPEN, 5, 0, T0)


def _t45(cb: CircuitBreaker, clock: ManualClock):
    _t44(cb, clock)
    cb.record_success("a")
    cb.record_success("a")
    cb.record_failure("a")


def test_T45_failure_in_half_open_reopens():
    """T45: success -> (HalfOpen,5,1); success -> (HalfOpen,5,2); failure -> (Open, 6, 0, t0+30 s)."""
    cb, clock = make_breaker()
    _t44(cb, clock)
    cb.record_success("a")
    assert btuple(cb, "a") == (HALF_OPEN, 5, 1, T0)
    cb.record_success("a")
    assert btuple(cb, "a") == (HALF_OPEN, 5, 2, T0)
    cb.record_failure("a")
    assert btuple(cb, "a") == (OPEN, 6, 0, T0 + seconds(30))


def test_T46_failure_while_open_restarts_timer():
    """T46: t0+40 s failure -> (Open,7,0,t0+40s); t0+65 s is_open True; t0+70 s False (HalfOpen,7,0); 3 successes close."""
    cb, clock = make_breaker()
    _t45(cb, clock)
    clock.set(T0 + seconds(40))
    cb.record_failure("a")
    assert btuple(cb, "a") == (OPEN, 7, 0, T0 + seconds(40))
    clock.set(T0 + seconds(65))
    assert cb.is_open("a") is True
    clock.set(T0 + seconds(70))
    assert cb.is_open("a") is False
    assert btuple(cb, "a")[:3] == (HALF_OPEN, 7, 0)
    got = []
    for _ in range(3):
        cb.record_success("a")
        got.append(btuple(cb, "a")[:3])
    assert got == [(HALF_OPEN, 7, 1), (HALF_OPEN, 7, 2), (CLOSED, 0, 0)]
    assert cb.state("a") is CLOSED
    assert cb.is_open("a") is False


def test_T47_success_resets_and_open_success_closes():
    """T47: fail x4 + success -> (Closed, 0); fail x4 -> (Closed, 4); one more -> (Open, 5); success while Open -> (Closed, 0)."""
    cb, _ = make_breaker()
    for _ in range(4):
        cb.record_failure("b")
    cb.record_success("b")
    assert btuple(cb, "b")[:2] == (CLOSED, 0)
    for _ in range(4):
        cb.record_failure("b")
    assert btuple(cb, "b")[:2] == (CLOSED, 4)
    cb.record_failure("b")
    assert btuple(cb, "b")[:2] == (OPEN, 5)
    cb.record_success("b")
    assert btuple(cb, "b")[:2] == (CLOSED, 0)
    assert cb.is_open("b") is False


def test_T48_zero_config():
    """T48: config (0, 0, 0): failure -> (Open, 1); is_open same instant -> False, HalfOpen; success -> (Closed, 0, 0)."""
    cb, _ = make_breaker(CircuitBreakerConfig(failure_threshold=0, reset_timeout=0, half_open_successes=0))
    cb.record_failure("c")
    assert btuple(cb, "c")[:2] == (OPEN, 1)
    assert cb.is_open("c") is False
    assert cb.state("c") is HALF_OPEN
    cb.record_success("c")
    assert btuple(cb, "c")[:3] == (CLOSED, 0, 0)


def test_T49_threshold_three():
    """T49: threshold 3: record_failure x3 -> is_open True, state Open."""
    cb, _ = make_breaker(CircuitBreakerConfig(failure_threshold=3))
    for i in range(3):
        assert cb.state("n") is CLOSED, i
        cb.record_failure("n")
    assert cb.is_open("n") is True
    assert cb.state("n") is OPEN


def test_T50_short_reset_two_successes():
    """T50: (2, hos 2, reset 10 ms): 2 failures Open; +20 ms is_open False, HalfOpen; 2 successes -> Closed."""
    cb, clock = make_breaker(CircuitBreakerConfig(failure_threshold=2, half_open_successes=2, reset_timeout=millis(10)))
    cb.record_failure("n")
    cb.record_failure("n")
    assert cb.state("n") is OPEN
    clock.advance(millis(20))
    assert cb.is_open("n") is False
    assert cb.state("n") is HALF_OPEN
    cb.record_success("n")
    assert cb.state("n") is HALF_OPEN
    cb.record_success("n")
    assert cb.state("n") is CLOSED


def _t51_half_open(cb: CircuitBreaker, clock: ManualClock, node: str):
    cb.record_failure(node)
    cb.record_failure(node)
    assert cb.state(node) is OPEN
    clock.advance(millis(20))
    assert cb.is_open(node) is False
    assert cb.state(node) is HALF_OPEN


def test_T51_three_half_open_successes_and_failure_variant():
    """T51: (2, hos 3, 10 ms): 2 successes -> HalfOpen, 3rd -> Closed; variant: failure in HalfOpen -> Open."""
    cfg = CircuitBreakerConfig(failure_threshold=2, half_open_successes=3, reset_timeout=millis(10))
    cb, clock = make_breaker(cfg)
    _t51_half_open(cb, clock, "n")
    cb.record_success("n")
    cb.record_success("n")
    assert cb.state("n") is HALF_OPEN
    cb.record_success("n")
    assert cb.state("n") is CLOSED

    cb2, clock2 = make_breaker(cfg)
    _t51_half_open(cb2, clock2, "n")
    cb2.record_failure("n")
    assert cb2.state("n") is OPEN
    assert cb2.is_open("n") is True


def test_T52_all_states():
    """T52: threshold 2: n1 two failures, n2 one success -> all_states() == {(n1, Open), (n2, Closed)}."""
    cb, _ = make_breaker(CircuitBreakerConfig(failure_threshold=2))
    cb.record_failure("n1")
    cb.record_failure("n1")
    cb.record_success("n2")
    cb.is_open("n3")  # queried only: must not appear
    states = cb.all_states()
    assert len(states) == 2
    assert set(states) == {("n1", OPEN), ("n2", CLOSED)}


def test_T53_open_immediately_after_threshold():
    """T53: (threshold 2, reset 60 s): two failures; is_open immediately -> True."""
    cb, _ = make_breaker(CircuitBreakerConfig(failure_threshold=2, reset_timeout=seconds(60)))
    cb.record_failure("n")
    cb.record_failure("n")
    assert cb.is_open("n") is True


# =========================================================================== extras: §1 prose


@pytest.mark.parametrize(
    "raw, debug",
    [
        ("x", '"x"'),
        ("", '""'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb", '"a\\nb"'),
        ("a\tb", '"a\\tb"'),
        ("a\rb", '"a\\rb"'),
        ("a\0b", '"a\\0b"'),
        ("a\x01b", '"a\\u{1}b"'),
        ("a\x1bb", '"a\\u{1b}b"'),
        ("a\x7fb", '"a\\u{7f}b"'),
        ("a\x85b", '"a\\u{85}b"'),
        ("café-日本", '"café-日本"'),
    ],
    ids=["plain", "empty", "quote", "backslash", "newline", "tab", "cr", "nul", "ctrl-01", "esc",
         "del", "c1-nel", "unicode"],
)
def test_extra_id_debug_escaping(raw, debug):
    """§1.1: debug form ModelId/RegionId/NodeId("...") with Rust escaping; display is the bare string."""
    assert repr(NodeId(raw)) == f"NodeId({debug})"
    assert repr(ModelId(raw)) == f"ModelId({debug})"
    assert repr(RegionId(raw)) == f"RegionId({debug})"
    assert str(NodeId(raw)) == raw
    assert Capability.custom(raw).debug_name == f"Custom({debug})"


def test_extra_ids_equality_by_string_case_sensitive():
    """§1.1: equality and hashing by the string, case-sensitive, empty string allowed."""
    assert NodeId("a") == "a"
    assert NodeId("A") != NodeId("a")
    assert hash(NodeId("a")) == hash("a")
    assert {NodeId(""): 1}[""] == 1


def test_extra_get_metadata_escapes_model_id():
    """§2.5 + §1.1: the Internal message embeds the escaped debug form of the model id."""
    cat = ModelCatalog()
    with pytest.raises(InternalError) as exc:
        cat.get_metadata('we"ird\n')
    assert str(exc.value) == 'Internal error: Model not found: ModelId("we\\"ird\\n")'


@pytest.mark.parametrize(
    "ns, text",
    [
        (seconds(30), "30s"),
        (millis(1500), "1.5s"),
        (millis(100), "100ms"),
        (micros(5), "5µs"),
        (0, "0ns"),
    ],
)
def test_extra_format_duration_examples(ns, text):
    """§1.12: Rust Debug of durations: 30s, 1.5s, 100ms, 5µs, 0ns (also inside Timeout messages)."""
    assert format_duration(ns) == text
    assert str(Timeout(ns)) == f"Timeout after {text}"


def test_extra_capability_debug_names_and_messages():
    """§1.2/§1.12: debug names of built-ins; NoCapacity(Custom("sentiment")) message."""
    names = [(Capability.TRANSCRIBE, "Transcribe"), (Capability.SYNTHESIZE, "Synthesize"),
             (Capability.GENERATE, "Generate"), (Capability.CODE, "Code"), (Capability.EMBED, "Embed"),
             (Capability.IMAGE_GEN, "ImageGen")]
    for cap, name in names:
        assert cap.debug_name == name
        assert str(NoCapacity(cap)) == f"No nodes available for capability: {name}"
    assert str(NoCapacity(Capability.custom("sentiment"))) == \
        'No nodes available for capability: Custom("sentiment")'


def test_extra_custom_never_equals_builtin():
    """§1.2/§2.1: Custom("generate") != Generate; Custom("image_gen") has its own index key."""
    assert Capability.custom("generate") != Capability.GENERATE
    assert Capability.custom("image_gen") != Capability.IMAGE_GEN
    cat = ModelCatalog()
    cat.register("m", "n", "r", [Capability.custom("image_gen")])
    assert cat.find_by_capability(Capability.IMAGE_GEN) == []
    assert cat.find_by_capability(Capability.custom("image_gen")) == [("n", "r")]


def test_extra_privacy_numeric_values_and_enum_debug_names():
    """§1.3/§1.6/§1.9: PrivacyLevel values 0..3; debug names of CircuitState and DeploymentStatus."""
    assert [int(p) for p in (PrivacyLevel.PUBLIC, PrivacyLevel.INTERNAL, PrivacyLevel.CONFIDENTIAL,
                             PrivacyLevel.RESTRICTED)] == [0, 1, 2, 3]
    assert [s.debug_name for s in (CLOSED, HALF_OPEN, OPEN)] == ["Closed", "HalfOpen", "Open"]
    assert [s.debug_name for s in (DeploymentStatus.LOADING, DeploymentStatus.READY, DeploymentStatus.DRAINING,
                                   DeploymentStatus.REMOVED)] == ["Loading", "Ready", "Draining", "Removed"]


def test_extra_errors_compare_by_type_and_payload():
    """§1.12 (brief): errors compare equal by type + payload."""
    assert NoCapacity(GEN) == NoCapacity(Capability.GENERATE)
    assert NoCapacity(GEN) != AllNodesUnhealthy(GEN)
    assert NoCapacity(GEN) != NoCapacity(Capability.CODE)
    assert NodeUnreachable("a") == NodeUnreachable("a")
    assert NodeUnreachable("a") != CircuitOpen("a")
    assert str(Timeout(0)) == "Timeout after 0ns"


# =========================================================================== extras: §3 prose


@pytest.mark.parametrize("latency_ms, fixed_point", [(100, 91), (45, 36), (10, 1), (5, 0)])
def test_extra_p50_convergence_from_below(latency_ms, fixed_point):
    """§3.4: a constant latency L reported from p50 = 0 climbs to exactly max(L-9, 0) and stays there."""
    assert fixed_point == max(latency_ms - 9, 0)
    h, _ = make_health()
    h.register_node("n")
    series = [t[1] for t in oks(h, "n", millis(latency_ms), 300)]
    assert all(a <= b for a, b in zip(series, series[1:])), "p50 must climb monotonically"
    assert max(series) == fixed_point
    assert series[-50:] == [fixed_point] * 50


@pytest.mark.parametrize("latency_ms", [100, 45, 10])
def test_extra_p50_convergence_from_above(latency_ms):
    """§3.4: starting above L, p50 descends to exactly L (L is a fixed point)."""
    h, _ = make_health()
    h.register_node("n")
    oks(h, "n", millis(2000), 60)
    start = htuple(h, "n")[1]
    assert start > latency_ms
    series = [t[1] for t in oks(h, "n", millis(latency_ms), 300)]
    assert all(a >= b for a, b in zip(series, series[1:])), "p50 must descend monotonically"
    assert min(series) == latency_ms
    assert series[-50:] == [latency_ms] * 50


def test_extra_p50_uses_truncated_ms_of_both_operands():
    """§3.4: p50' = (ms(p50)*9 + ms(latency)) // 10, latency truncated to whole ms first."""
    h, _ = make_health()
    h.register_node("n")
    h.report_success("n", millis(19) + 999_999)  # 19.999999 ms -> ms 19 -> p50 (0 + 19)//10 = 1
    assert htuple(h, "n")[1] == 1
    h.report_success("n", millis(999) + 999_999)  # ms 999 -> (9 + 999)//10 = 100
    assert htuple(h, "n")[1] == 100


def test_extra_last_check_and_untouched_fields():
    """§3.2/§3.4/§3.5: last_check = now on register/report; failure keeps p50; p99/throughput/gpu/queue never change."""
    h, clock = make_health()
    h.register_node("n")
    assert h.get_cached_health("n").last_check == T0
    clock.advance(millis(250))
    h.report_success("n", millis(300))
    rec = h.get_cached_health("n")
    assert rec.last_check == T0 + millis(250)
    assert rec.latency_p50 == millis(30)
    clock.advance(millis(250))
    h.report_failure("n")
    rec = h.get_cached_health("n")
    assert rec.last_check == T0 + millis(500)
    assert rec.latency_p50 == millis(30)
    assert (rec.latency_p99, rec.throughput, rec.gpu_utilization, rec.queue_depth) == (0, 0, None, 0)


def test_extra_check_node_has_no_side_effect():
    """§3.7: check_node returns the cached record, no probe, no state change."""
    h, clock = make_health()
    h.register_node("n")
    h.report_success("n", millis(40))
    before = (h.get_cached_health("n"), h.counters("n"))
    clock.advance(seconds(100))
    rec = h.check_node("n")
    assert rec == before[0]
    assert (h.get_cached_health("n"), h.counters("n")) == before


def test_extra_get_cached_health_is_a_copy():
    """§3.7: get_cached_health returns a copy of the record."""
    h, _ = make_health()
    h.register_node("n")
    rec = h.get_cached_health("n")
    rec.status = HEALTHY
    rec.latency_p50 = millis(999)
    assert htuple(h, "n") == (UNKNOWN, 0, 0, 0)


def test_extra_custom_degraded_latency_strict():
    """§3.4: the degraded test is latency > degraded_latency (strict), with a configured threshold."""
    h, _ = make_health(HealthConfig(degraded_latency=millis(200)))
    h.register_node("n")
    h.report_success("n", millis(200))
    h.report_success("n", millis(200))
    assert htuple(h, "n") == (HEALTHY, 38, 0, 2)
    h.report_success("n", millis(200) + 1)
    assert htuple(h, "n") == (DEGRADED, 54, 0, 3)


def test_extra_single_failure_degrades_healthy_and_unknown():
    """§3.5: one failure turns Healthy or Unknown into Degraded immediately."""
    h, _ = make_health()
    h.register_node("u")
    h.register_node("ok")
    oks(h, "ok", millis(10), 2)
    h.report_failure("u")
    h.report_failure("ok")
    assert htuple(h, "u") == (DEGRADED, 0, 1, 0)
    assert htuple(h, "ok") == (DEGRADED, 1, 1, 0)


# =========================================================================== extras: §4 prose


def test_extra_breaker_success_on_unseen_node_stores_default_record():
    """§4.1/§4.4: record_success on an unseen node stores (Closed, 0, 0, None)."""
    cb, _ = make_breaker()
    cb.record_success("z")
    assert btuple(cb, "z") == (CLOSED, 0, 0, None)
    assert cb.all_states() == [("z", CLOSED)]


def test_extra_breaker_failures_accumulate_across_cycles():
    """§4.5: failures keep counting across open/half-open cycles (5 -> 6 -> 7)."""
    cb, clock = make_breaker()
    for _ in range(5):
        cb.record_failure("a")
    got = []
    for _ in range(2):
        clock.advance(seconds(30))
        assert cb.is_open("a") is False
        cb.record_failure("a")
        got.append(btuple(cb, "a"))
    assert got == [(OPEN, 6, 0, T0 + seconds(30)), (OPEN, 7, 0, T0 + seconds(60))]


def test_extra_breaker_half_open_admits_everyone():
    """§4.6: HalfOpen places no limit: every is_open call returns False."""
    cb, clock = make_breaker()
    for _ in range(5):
        cb.record_failure("a")
    clock.advance(seconds(30))
    assert [cb.is_open("a") for _ in range(20)] == [False] * 20
    assert btuple(cb, "a") == (HALF_OPEN, 5, 0, T0)
