"""Conformance tests T83-T106 (gateway), spec §7 and §11.7.

The reference stub executor is replaced (§7.6, §11 conventions) by a recording executor:
a node marked failing raises NodeUnreachable(node) instantly; any other node succeeds after
its stated latency (default 0 ms) with tokens 10.  Backoff sleeps are recorded and advance a
ManualClock.  Traces list "exec X" (executor calls) and "sleep N" (sleeps, N in ms).
"""

from __future__ import annotations

import io

import pytest

from fedsim.federation import (
    Capability,
    CircuitBreaker,
    CircuitState,
    FederationError,
    FederationGateway,
    GatewayBuilder,
    GatewayConfig,
    HealthChecker,
    HealthState,
    InferenceRequest,
    InferenceResponse,
    InternalError,
    LoggingMiddleware,
    ManualClock,
    Middleware,
    ModelCatalog,
    NoCapacity,
    NodeId,
    NodeUnreachable,
    RateLimitMiddleware,
    RouteTarget,
    Router,
    RouterConfig,
    Success,
    millis,
    ms,
    seconds,
)
from fedsim.federation.executor import reference_stub_executor

GEN = Capability.GENERATE
EMBED = Capability.EMBED
TRANSCRIBE = Capability.TRANSCRIBE

HEALTHY = HealthState.HEALTHY
DEGRADED = HealthState.DEGRADED
UNHEALTHY = HealthState.UNHEALTHY
UNKNOWN = HealthState.UNKNOWN
CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN


# --------------------------------------------------------------------------- helpers


class World:
    """cat / H / CB on a ManualClock, a standard router and a standard gateway (§11)
    whose executor and sleep record into ``trace``."""

    def __init__(self, gw_config: GatewayConfig | None = None, router_config=None,
                 gateway_breaker: CircuitBreaker | None = None) -> None:
        self.clock = ManualClock()
        self.trace: list[str] = []
        self.failing: set[str] = set()
        self.latency_ms: dict[str, int] = {}
        self.default_latency_ms = 0
        self.cat = ModelCatalog()
        self.H = HealthChecker(clock=self.clock)
        self.CB = CircuitBreaker(clock=self.clock)
        self.router = Router(router_config or RouterConfig(), self.cat, self.H, self.CB,
                             clock=self.clock)
        self.gw = FederationGateway(
            gw_config or GatewayConfig(), self.router, self.H,
            gateway_breaker if gateway_breaker is not None else self.CB,
            executor=self.execute, clock=self.clock, sleep=self.sleep)

    # executor / sleep ---------------------------------------------------------
    def execute(self, target, request):
        node = str(target.node_id)
        self.trace.append(f"exec {node}")
        if node in self.failing:
            raise NodeUnreachable(node)
        lat = millis(self.latency_ms.get(node, self.default_latency_ms))
        return Success(InferenceResponse(b"out", target.node_id, lat, 10), lat)

    def sleep(self, ns: int) -> None:
        assert ns % 1_000_000 == 0
        self.trace.append(f"sleep {ns // 1_000_000}")
        self.clock.advance(ns)

    # setup shorthands ---------------------------------------------------------
    def reg(self, m, n, r, caps):
        self.cat.register(m, n, r, caps)

    def hreg(self, n):
        self.H.register_node(n)

    def ok(self, n, x_ms, times=1):
        for _ in range(times):
            self.H.report_success(n, millis(x_ms))

    # observations -------------------------------------------------------------
    def health(self, n):
        h = self.H.get_cached_health(n)
        return (h.status, ms(h.latency_p50), *self.H.counters(n))

    def breaker(self, n, cb=None):
        rec = (cb or self.CB).record(n)
        return None if rec is None else rec.as_tuple()

    def stats3(self):
        s = self.gw.stats()
        return (s.total_requests, s.successful_requests, s.failed_requests)

    def take_trace(self):
        t, self.trace[:] = list(self.trace), []
        return t


def req(cap=GEN, request_id=""):
    return InferenceRequest(cap, request_id=request_id)


def count_routes(router: Router) -> list[int]:
    """Wrap ``router.route`` on the instance; returns a one-element call counter."""
    calls = [0]
    inner = router.route

    def route(request, exclude=None):
        calls[0] += 1
        return inner(request, exclude)

    router.route = route
    return calls


class Recorder(Middleware):
    def __init__(self, name, trace, fail_before=None, fail_after=None):
        self.name, self.trace = name, trace
        self.fail_before, self.fail_after = fail_before, fail_after

    def before_route(self, request):
        self.trace.append(f"{self.name}.before_route")
        if self.fail_before is not None:
            raise self.fail_before

    def after_infer(self, request, response):
        self.trace.append(f"{self.name}.after_infer")
        if self.fail_after is not None:
            raise self.fail_after

    def on_error(self, request, error):
        self.trace.append(f"{self.name}.on_error({error})")


# --------------------------------------------------------------------------- tests


def test_T83_builder_no_retries_no_capacity():
    """T83: GatewayConfig(max_retries=0), nothing registered -> 'No nodes available for capability: Generate'; stats (1, 0, 1)."""
    clock = ManualClock()
    trace = []
    gw = (GatewayBuilder().config(GatewayConfig(max_retries=0)).clock(clock)
          .executor(lambda t, r: trace.append("exec") or reference_stub_executor(t, r))
          .sleep(lambda ns: trace.append(f"sleep {ns}")).build())
    with pytest.raises(NoCapacity) as ei:
        gw.infer(req(GEN))
    assert str(ei.value) == "No nodes available for capability: Generate"
    s = gw.stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests) == (1, 0, 1)
    assert trace == []


def test_T84_default_builder_four_route_attempts():
    """T84: default builder, nothing registered -> 4 routing attempts, no exec, no backoff, NoCapacity, stats (1, 0, 1)."""
    clock = ManualClock(start_ns=seconds(7))
    trace = []
    gw = (GatewayBuilder().clock(clock)
          .executor(lambda t, r: trace.append("exec") or reference_stub_executor(t, r))
          .sleep(lambda ns: (trace.append(f"sleep {ns}"), clock.advance(ns))).build())
    calls = count_routes(gw.router)
    with pytest.raises(NoCapacity) as ei:
        gw.infer(req(GEN))
    assert ei.value == NoCapacity(GEN)
    assert calls[0] == 4
    assert trace == []
    assert clock.now_ns() == seconds(7)
    s = gw.stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests) == (1, 0, 1)


def test_T85_basic_success():
    """T85: one node -> infer served_by node-1; stats (1, 1, 0), total_tokens 10."""
    w = World()
    w.reg("test-model", "node-1", "us-west", [GEN])
    w.hreg("node-1")
    w.ok("node-1", 10)
    resp = w.gw.infer(req(GEN))
    assert resp.served_by == "node-1"
    assert resp.tokens == 10
    assert w.stats3() == (1, 1, 0)
    assert w.gw.stats().total_tokens == 10
    assert w.trace == ["exec node-1"]


def test_T86_three_infers():
    """T86: Embed model on node-1, 3 infers -> total 3, successful 3, failed 0."""
    w = World()
    w.reg("embedder", "node-1", "us-west", [EMBED])
    w.hreg("node-1")
    w.ok("node-1", 10)
    for _ in range(3):
        assert w.gw.infer(req(EMBED)).served_by == "node-1"
    assert w.stats3() == (3, 3, 0)
    assert w.trace == ["exec node-1"] * 3


def test_T87_measured_latency_stats():
    """T87: latency 40 ms x3 then 45 ms -> successful 4, tokens 40, avg_latency 41 ms; health a (Healthy, 13, 0, 6)."""
    w = World()
    w.reg("m", "a", "r", [GEN])
    w.hreg("a")
    w.ok("a", 10, 2)
    assert w.health("a") == (HEALTHY, 1, 0, 2)
    w.latency_ms["a"] = 40
    for _ in range(3):
        w.gw.infer(req(GEN))
    w.latency_ms["a"] = 45
    w.gw.infer(req(GEN))
    s = w.gw.stats()
    assert s.successful_requests == 4
    assert s.total_tokens == 40
    assert s.avg_latency == millis(41)
    assert w.health("a") == (HEALTHY, 13, 0, 6)
    assert w.clock.now_ns() == millis(165)


def test_T88_single_failing_node():
    """T88: failing f -> exec f, sleep 100, exec f, sleep 200, exec f, sleep 300, NoCapacity; +600 ms; f (Unhealthy, 1, 3, 0); breaker (Closed, 3); stats (1, 0, 1)."""
    w = World()
    w.reg("m", "f", "r", [GEN])
    w.hreg("f")
    w.ok("f", 10, 2)
    w.failing.add("f")
    with pytest.raises(NoCapacity) as ei:
        w.gw.infer(req(GEN))
    assert str(ei.value) == "No nodes available for capability: Generate"
    assert w.trace == ["exec f", "sleep 100", "exec f", "sleep 200", "exec f", "sleep 300"]
    assert w.clock.now_ns() == millis(600)
    assert w.health("f") == (UNHEALTHY, 1, 3, 0)
    # third failure reported at t0 + 300 ms (after sleeps 100 and 200, §7.7)
    assert w.breaker("f") == (CLOSED, 3, 0, millis(300))
    assert w.stats3() == (1, 0, 1)


def test_T89_healthy_peer_takes_over():
    """T89: p failing, q healthy -> exec p, sleep 100, exec q; p (Degraded, 1, 1, 0); q (Healthy, 0, 0, 3); stats (1, 1, 0)."""
    w = World()
    for n in ("p", "q"):
        w.reg("m", n, "r", [GEN])
        w.hreg(n)
        w.ok(n, 10, 2)
    w.failing.add("p")
    resp = w.gw.infer(req(GEN))
    assert resp.served_by == "q"
    assert w.trace == ["exec p", "sleep 100", "exec q"]
    assert w.health("p") == (DEGRADED, 1, 1, 0)
    assert w.health("q") == (HEALTHY, 0, 0, 3)
    assert w.stats3() == (1, 1, 0)


def test_T90_unknown_peers_retry_same_node():
    """T90: u1 failing among Unknown peers -> u1 x3 (sleeps 100, 200, 300), then u2; u1 (Unhealthy, 0, 3, 0), breaker (Closed, 3); u2 (Unknown, 0, 0, 1)."""
    w = World()
    for n in ("u1", "u2"):
        w.reg("m", n, "r", [GEN])
        w.hreg(n)
    w.failing.add("u1")
    resp = w.gw.infer(req(GEN))
    assert resp.served_by == "u2"
    assert w.trace == ["exec u1", "sleep 100", "exec u1", "sleep 200", "exec u1",
                       "sleep 300", "exec u2"]
    assert w.health("u1") == (UNHEALTHY, 0, 3, 0)
    assert w.breaker("u1") == (CLOSED, 3, 0, millis(300))
    assert w.health("u2") == (UNKNOWN, 0, 0, 1)
    assert w.stats3() == (1, 1, 0)


def test_T91_unregistered_nodes_until_breaker_opens():
    """T91: x1 failing, unknown to H: request 1 -> x1 x4 -> 'Node unreachable: x1', breaker (Closed, 4); request 2 -> exec x1 (Open, 5), sleep 100, exec x2."""
    w = World()
    for n in ("x1", "x2"):
        w.reg("m", n, "r", [GEN])
    w.failing.add("x1")
    with pytest.raises(NodeUnreachable) as ei:
        w.gw.infer(req(GEN))
    assert str(ei.value) == "Node unreachable: x1"
    assert w.take_trace() == ["exec x1", "sleep 100", "exec x1", "sleep 200", "exec x1",
                              "sleep 300", "exec x1"]
    assert w.breaker("x1") == (CLOSED, 4, 0, millis(600))
    assert w.stats3() == (1, 0, 1)
    assert w.H.get_cached_health("x1") is None

    resp = w.gw.infer(req(GEN))
    assert resp.served_by == "x2"
    assert w.take_trace() == ["exec x1", "sleep 100", "exec x2"]
    assert w.breaker("x1") == (OPEN, 5, 0, millis(600))
    assert w.stats3() == (2, 1, 1)


def test_T92_two_failing_healthy_nodes():
    """T92: n1, n2 failing, n3 fine (all Healthy) -> exec n1, sleep 100, exec n2, sleep 200, exec n3; candidates [n3 1.03, n1 0.82996, n2 0.82996]."""
    w = World()
    for n in ("n1", "n2", "n3"):
        w.reg("m", n, "r", [GEN])
        w.hreg(n)
        w.ok(n, 10, 2)
    w.failing.update({"n1", "n2"})
    resp = w.gw.infer(req(GEN))
    assert resp.served_by == "n3"
    assert w.trace == ["exec n1", "sleep 100", "exec n2", "sleep 200", "exec n3"]
    cands = w.router.get_candidates(req(GEN))
    assert [(str(c.target.node_id), c.scores.total) for c in cands] == [
        ("n3", 1.03), ("n1", 0.82996), ("n2", 0.82996)]


def test_T93_two_requests_unknown_nodes():
    """T93: node-1, node-2 failing (hreg only): request 1 ends 'Node unreachable: node-2'; request 2 served by node-3; final health/breakers per spec."""
    w = World()
    for i in (1, 2, 3):
        w.reg("asr", f"node-{i}", "r", [TRANSCRIBE])
        w.hreg(f"node-{i}")
    w.failing.update({"node-1", "node-2"})

    with pytest.raises(NodeUnreachable) as ei:
        w.gw.infer(req(TRANSCRIBE))
    assert str(ei.value) == "Node unreachable: node-2"
    assert w.take_trace() == ["exec node-1", "sleep 100", "exec node-1", "sleep 200",
                              "exec node-1", "sleep 300", "exec node-2"]
    assert w.stats3() == (1, 0, 1)

    resp = w.gw.infer(req(TRANSCRIBE))
    assert resp.served_by == "node-3"
    assert w.take_trace() == ["exec node-2", "sleep 100", "exec node-2", "sleep 200",
                              "exec node-3"]
    assert w.stats3() == (2, 1, 1)

    assert w.health("node-1") == (UNHEALTHY, 0, 3, 0)
    assert w.health("node-2") == (UNHEALTHY, 0, 3, 0)
    assert w.breaker("node-1")[:3] == (CLOSED, 3, 0)
    assert w.breaker("node-2")[:3] == (CLOSED, 3, 0)
    assert w.health("node-3") == (UNKNOWN, 0, 0, 1)


def test_T94_two_requests_unregistered_nodes():
    """T94: as T93 with no node in H: req 1 -> node-1 x4; req 2 -> node-1 (Open), node-2 x3; req 3 -> node-2 x2 (Open), node-3; stats (3, 1, 2)."""
    w = World()
    for i in (1, 2, 3):
        w.reg("asr", f"node-{i}", "r", [TRANSCRIBE])
    w.failing.update({"node-1", "node-2"})

    with pytest.raises(NodeUnreachable) as ei:
        w.gw.infer(req(TRANSCRIBE))
    assert str(ei.value) == "Node unreachable: node-1"
    assert w.take_trace() == ["exec node-1", "sleep 100", "exec node-1", "sleep 200",
                              "exec node-1", "sleep 300", "exec node-1"]

    with pytest.raises(NodeUnreachable) as ei:
        w.gw.infer(req(TRANSCRIBE))
    assert str(ei.value) == "Node unreachable: node-2"
    assert w.take_trace() == ["exec node-1", "sleep 100", "exec node-2", "sleep 200",
                              "exec node-2", "sleep 300", "exec node-2"]
    assert w.breaker("node-1")[:2] == (OPEN, 5)

    resp = w.gw.infer(req(TRANSCRIBE))
    assert resp.served_by == "node-3"
    assert w.take_trace() == ["exec node-2", "sleep 100", "exec node-2", "sleep 200",
                              "exec node-3"]
    assert w.stats3() == (3, 1, 2)
    assert w.breaker("node-1")[:3] == (OPEN, 5, 0)
    assert w.breaker("node-2")[:3] == (OPEN, 5, 0)
    assert w.breaker("node-3") == (CLOSED, 0, 0, None)


def test_T95_middleware_hook_order():
    """T95: m1.before_route, m2.before_route, exec, m1.after_infer, m2.after_infer; stats (1, 1, 0)."""
    w = World()
    w.reg("m", "n", "r", [GEN])
    w.hreg("n")
    w.ok("n", 10, 2)
    w.gw.with_middleware(Recorder("m1", w.trace)).with_middleware(Recorder("m2", w.trace))
    w.gw.infer(req(GEN))
    assert w.trace == ["m1.before_route", "m2.before_route", "exec n", "m1.after_infer",
                       "m2.after_infer"]
    assert w.stats3() == (1, 1, 0)


def test_T96_before_route_failure():
    """T96: m1.before_route fails Internal('m1 rejects') -> 'Internal error: m1 rejects'; m2 not called; no exec; stats (1, 0, 0)."""
    w = World()
    w.reg("m", "n", "r", [GEN])
    w.hreg("n")
    w.gw.with_middleware(Recorder("m1", w.trace, fail_before=InternalError("m1 rejects")))
    w.gw.with_middleware(Recorder("m2", w.trace))
    with pytest.raises(InternalError) as ei:
        w.gw.infer(req(GEN))
    assert str(ei.value) == "Internal error: m1 rejects"
    assert w.trace == ["m1.before_route"]
    assert w.stats3() == (1, 0, 0)


def test_T97_after_infer_failure():
    """T97: m1.after_infer fails Internal('m1 post') -> error; m2.after_infer not called; stats (1, 1, 0), tokens 10."""
    w = World()
    w.reg("m", "n", "r", [GEN])
    w.hreg("n")
    w.gw.with_middleware(Recorder("m1", w.trace, fail_after=InternalError("m1 post")))
    w.gw.with_middleware(Recorder("m2", w.trace))
    with pytest.raises(InternalError) as ei:
        w.gw.infer(req(GEN))
    assert str(ei.value) == "Internal error: m1 post"
    assert w.trace == ["m1.before_route", "m2.before_route", "exec n", "m1.after_infer"]
    assert w.stats3() == (1, 1, 0)
    assert w.gw.stats().total_tokens == 10


def test_T98_on_error_hooks_and_no_final_backoff():
    """T98: max_retries 1, failing a -> before_routes, exec a, on_errors, sleep 100, exec a, on_errors; 'Node unreachable: a'; failed 1."""
    w = World(gw_config=GatewayConfig(max_retries=1))
    w.reg("m", "a", "r", [GEN])
    w.hreg("a")
    w.failing.add("a")
    w.gw.with_middleware(Recorder("m1", w.trace)).with_middleware(Recorder("m2", w.trace))
    with pytest.raises(NodeUnreachable) as ei:
        w.gw.infer(req(GEN))
    assert str(ei.value) == "Node unreachable: a"
    e = "Node unreachable: a"
    assert w.trace == ["m1.before_route", "m2.before_route",
                       "exec a", f"m1.on_error({e})", f"m2.on_error({e})",
                       "sleep 100",
                       "exec a", f"m1.on_error({e})", f"m2.on_error({e})"]
    assert w.stats3() == (1, 0, 1)
    assert w.clock.now_ns() == millis(100)


def test_T99_separate_gateway_breaker():
    """T99: router over clean CB1, gateway CB2 with a Open -> 4 CircuitOpen attempts, no exec, no backoff -> 'Circuit breaker open for node: a'; stats (1, 0, 1)."""
    clock_probe = ManualClock()
    cb2 = CircuitBreaker(clock=clock_probe)
    for _ in range(5):
        cb2.record_failure("a")
    assert cb2.state("a") is OPEN
    w = World(gateway_breaker=cb2)
    w.reg("m", "a", "r", [GEN])
    w.hreg("a")
    calls = count_routes(w.router)
    with pytest.raises(FederationError) as ei:
        w.gw.infer(req(GEN))
    assert str(ei.value) == "Circuit breaker open for node: a"
    assert calls[0] == 4
    assert w.trace == []
    assert w.clock.now_ns() == 0
    assert w.stats3() == (1, 0, 1)
    assert w.CB.record("a") is None  # the router's breaker was never written


def test_T100_stream():
    """T100: 10 tokens token_1..token_10, then None; health s (Unknown, 5, 0, 1); breaker (Closed, 0, 0, None); stats total 1, 0, 0, tokens 0, active_streams 1."""
    w = World()
    w.reg("m", "s", "r", [GEN])
    w.hreg("s")
    stream = w.gw.infer_stream(req(GEN))
    tokens = [stream.next_token() for _ in range(10)]
    assert tokens == [f"token_{i}".encode() for i in range(1, 11)]
    # nothing reported before the consumer pulls past the last token
    assert w.health("s") == (UNKNOWN, 0, 0, 0)
    assert w.breaker("s") is None
    assert stream.next_token() is None
    assert stream.next_token() is None
    assert stream.next_token() is None
    assert w.health("s") == (UNKNOWN, 5, 0, 1)
    assert w.breaker("s") == (CLOSED, 0, 0, None)
    s = w.gw.stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests, s.total_tokens,
            s.active_streams) == (1, 0, 0, 0, 1)
    assert w.trace == []  # streams never call the executor


def test_T101_stream_route_error():
    """T101: after T100, infer_stream(Embed) -> NoCapacity(Embed); total 2, active_streams 2, failed 0."""
    w = World()
    w.reg("m", "s", "r", [GEN])
    w.hreg("s")
    stream = w.gw.infer_stream(req(GEN))
    while stream.next_token() is not None:
        pass
    with pytest.raises(NoCapacity) as ei:
        w.gw.infer_stream(req(EMBED))
    assert ei.value == NoCapacity(EMBED)
    s = w.gw.stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests,
            s.active_streams) == (2, 0, 0, 2)


@pytest.mark.parametrize("read", [1, 2])
def test_T102_stream_cancel(read):
    """T102: read 1 (or 2) tokens, cancel -> next_token None; no health/breaker report."""
    w = World()
    w.reg("m", "s", "r", [GEN])
    w.hreg("s")
    stream = w.gw.infer_stream(req(GEN))
    got = [stream.next_token() for _ in range(read)]
    assert got == [f"token_{i}".encode() for i in range(1, read + 1)]
    stream.cancel()
    for _ in range(12):
        assert stream.next_token() is None
    assert w.health("s") == (UNKNOWN, 0, 0, 0)
    assert w.breaker("s") is None


def test_T103_builder():
    """T103: builder with config (5, 60 s, False) and one Logging middleware -> max_retries 5, 1 middleware; default builder stats all zero."""
    gw = (GatewayBuilder()
          .config(GatewayConfig(max_retries=5, inference_timeout=seconds(60), enable_tracing=False))
          .middleware(LoggingMiddleware("test")).build())
    assert gw.config.max_retries == 5
    assert gw.config.inference_timeout == seconds(60)
    assert gw.config.enable_tracing is False
    assert len(gw.middlewares) == 1
    assert isinstance(gw.middlewares[0], LoggingMiddleware)
    s = GatewayBuilder().build().stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests, s.total_tokens,
            s.avg_latency, s.active_streams) == (0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("node", [NodeId("n1"), "n1"], ids=["NodeId", "plain_str"])
def test_T104_logging_lines_direct(node):
    """T104: '[gw] Routing request req-1 for Generate'; '... served by NodeId("n1") in 50ms'; '... failed: Node unreachable: n1'."""
    # Ids may be given as plain strings anywhere (API brief); the log line must still use
    # the NodeId debug form of §7.5.
    buf = io.StringIO()
    mw = LoggingMiddleware("gw", stream=buf)
    r = req(GEN, request_id="req-1")
    stub = reference_stub_executor(RouteTarget(node, "r"), r)
    mw.before_route(r)
    mw.after_infer(r, stub.response)
    mw.on_error(r, NodeUnreachable("n1"))
    assert buf.getvalue().splitlines() == [
        "[gw] Routing request req-1 for Generate",
        '[gw] Request req-1 served by NodeId("n1") in 50ms',
        "[gw] Request req-1 failed: Node unreachable: n1",
    ]


def test_T104_logging_through_gateway_stderr(capsys):
    """T104: through the gateway with the stub executor, the default stream is stderr."""
    clock = ManualClock()
    cat = ModelCatalog()
    cat.register("m", "n1", "r", [GEN])
    gw = GatewayBuilder().catalog(cat).clock(clock).middleware(LoggingMiddleware("gw")).build()
    gw.infer(req(GEN, request_id="req-1"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "[gw] Routing request req-1 for Generate",
        '[gw] Request req-1 served by NodeId("n1") in 50ms',
    ]


def test_T104_logging_on_error_through_gateway():
    """T104: a failed execution logs '[gw] Request req-1 failed: Node unreachable: n1'."""
    buf = io.StringIO()
    w = World(gw_config=GatewayConfig(max_retries=0))
    w.reg("m", "n1", "r", [GEN])
    w.failing.add("n1")
    w.gw.with_middleware(LoggingMiddleware("gw", stream=buf))
    with pytest.raises(NodeUnreachable):
        w.gw.infer(req(GEN, request_id="req-1"))
    assert buf.getvalue().splitlines() == [
        "[gw] Routing request req-1 for Generate",
        "[gw] Request req-1 failed: Node unreachable: n1",
    ]


def test_T105_rate_limit_is_inert():
    """T105: RateLimitMiddleware(100): every hook succeeds, no effect, for any number of requests."""
    rl = RateLimitMiddleware(100)
    r = req(GEN)
    for _ in range(5):
        assert rl.before_route(r) is None
        assert rl.after_infer(r, InferenceResponse(b"", "n", 0, None)) is None
        assert rl.on_error(r, NodeUnreachable("n")) is None
    w = World()
    w.reg("m", "n", "r", [GEN])
    w.hreg("n")
    w.gw.with_middleware(rl)
    for _ in range(250):  # far beyond 100 requests within the same instant
        assert w.gw.infer(req(GEN)).served_by == "n"
    assert w.stats3() == (250, 250, 0)
    assert w.clock.now_ns() == 0


def test_T106_reference_stub():
    """T106: stub -> b'simulated output', served_by routed node, latency 50 ms, tokens 10; p50 11 ms -> 9 ms after one success."""
    clock = ManualClock()
    cat = ModelCatalog()
    H = HealthChecker(clock=clock)
    CB = CircuitBreaker(clock=clock)
    router = Router(RouterConfig(), cat, H, CB, clock=clock)
    gw = FederationGateway(GatewayConfig(), router, H, CB, clock=clock)
    cat.register("m", "n1", "r", [GEN])
    H.register_node("n1")
    for _ in range(3):
        H.report_success("n1", millis(45))
    assert ms(H.get_cached_health("n1").latency_p50) == 11
    resp = gw.infer(req(GEN))
    assert resp.output == b"simulated output"
    assert resp.served_by == "n1"
    assert resp.latency == millis(50)
    assert resp.tokens == 10
    assert ms(H.get_cached_health("n1").latency_p50) == 9
    s = gw.stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests, s.total_tokens,
            s.avg_latency) == (1, 1, 0, 10, 0)
    assert clock.now_ns() == 0
