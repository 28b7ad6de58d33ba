"""``FederationGateway.infer_with``: the retry loop run through caller-supplied runners.

``infer`` / ``infer_steps`` are covered by the spec's conformance cases (T83-T106); these
tests check what only a runner-driven caller (the SimPy world) sees: the runners' calls and
arguments, their yields passing through untouched, their return value as the attempt's
outcome, and the same decisions as ``infer_steps``.
"""

from __future__ import annotations

import pytest

from fedsim.federation import (
    Capability,
    CircuitBreaker,
    FederationGateway,
    GatewayConfig,
    HealthChecker,
    InferenceRequest,
    InferenceResponse,
    ManualClock,
    ModelCatalog,
    NoCapacity,
    NodeUnreachable,
    Router,
    RouterConfig,
)
from fedsim.federation.executor import Execute, Failure, Sleep, Success

GEN = Capability.GENERATE


def gateway(nodes=("n1", "n2")):
    clock = ManualClock()
    cat = ModelCatalog()
    health = HealthChecker(clock=clock)
    for n in nodes:
        cat.register("m", n, "r", [GEN])
        health.register_node(n)
    router = Router(RouterConfig(), cat, health, CircuitBreaker(clock=clock), clock=clock)
    return FederationGateway(GatewayConfig(), router, clock=clock), clock


def drive(gen, sent=None):
    """Collect everything ``gen`` yields (sending ``sent`` back) and its return value."""
    yielded = []
    try:
        item = next(gen)
        while True:
            yielded.append(item)
            item = gen.send(sent)
    except StopIteration as stop:
        return yielded, stop.value


def test_runners_get_context_and_arguments_and_their_yields_pass_through():
    gw, clock = gateway()
    calls = []
    failing = {("n1", 0)}

    def execute(context, target, request, attempt, timeout):
        calls.append(("execute", context, str(target.node_id), attempt, timeout))
        yield ("wait", attempt)
        clock.advance(5_000_000)
        node = target.node_id
        if (str(node), attempt) in failing:
            return Failure(NodeUnreachable(node), 5_000_000)
        return Success(InferenceResponse(b"x", node, 5_000_000, 7), 5_000_000)

    def sleep(context, duration):
        calls.append(("sleep", context, duration))
        yield ("sleeping", duration)

    request = InferenceRequest(GEN, request_id="r1")
    yielded, response = drive(gw.infer_with(request, execute, sleep, context="ctx"))
    # n1 ranks first and fails its first attempt; Degraded (0.5) it still outranks the
    # Unknown n2 (0.3), so the retry goes to n1 again (the reference does not exclude it).
    assert calls == [("execute", "ctx", "n1", 0, None), ("sleep", "ctx", 100_000_000),
                     ("execute", "ctx", "n1", 1, None)]
    assert yielded == [("wait", 0), ("sleeping", 100_000_000), ("wait", 1)]
    assert str(response.served_by) == "n1" and response.tokens == 7
    stats = gw.stats()
    assert (stats.total_requests, stats.successful_requests, stats.failed_requests) == (1, 1, 0)


def test_last_error_raised_when_every_attempt_fails():
    gw, _ = gateway(nodes=("n1",))
    calls = []

    def execute(context, target, request, attempt, timeout):
        calls.append(("execute", attempt))
        return Failure(NodeUnreachable(target.node_id), 0)
        yield  # a generator

    def sleep(context, duration):
        calls.append(("sleep", duration))
        return
        yield

    # Three failures make the only node Unhealthy, so the fourth attempt finds no
    # candidate: the last error (NoCapacity) is raised, after no final backoff.
    with pytest.raises(NoCapacity):
        drive(gw.infer_with(InferenceRequest(GEN), execute, sleep))
    assert calls == [("execute", 0), ("sleep", 100_000_000), ("execute", 1),
                     ("sleep", 200_000_000), ("execute", 2), ("sleep", 300_000_000)]
    assert gw.stats().failed_requests == 1


def test_same_decisions_as_infer_steps():
    """The Execute/Sleep step protocol is infer_with with step-yielding runners: the same
    sequence of targets, attempts and backoffs for the same outcomes."""
    outcomes = [False, False, True]

    def run_steps():
        gw, _ = gateway(nodes=("n1", "n2", "n3"))
        seen, it = [], iter(outcomes)
        gen = gw.infer_steps(InferenceRequest(GEN))
        step = next(gen)
        try:
            while True:
                if isinstance(step, Execute):
                    seen.append(("execute", str(step.target.node_id), step.attempt))
                    ok = next(it)
                    node = step.target.node_id
                    step = gen.send(Success(InferenceResponse(b"", node, 0, 1), 0) if ok
                                    else Failure(NodeUnreachable(node), 0))
                else:
                    assert isinstance(step, Sleep)
                    seen.append(("sleep", step.duration))
                    step = next(gen)
        except StopIteration as stop:
            return seen, str(stop.value.served_by)

    def run_with():
        gw, _ = gateway(nodes=("n1", "n2", "n3"))
        seen, it = [], iter(outcomes)

        def execute(context, target, request, attempt, timeout):
            seen.append(("execute", str(target.node_id), attempt))
            node = target.node_id
            if next(it):
                return Success(InferenceResponse(b"", node, 0, 1), 0)
            return Failure(NodeUnreachable(node), 0)
            yield

        def sleep(context, duration):
            seen.append(("sleep", duration))
            return
            yield

        _, response = drive(gw.infer_with(InferenceRequest(GEN), execute, sleep))
        return seen, str(response.served_by)

    steps, with_ = run_steps(), run_with()
    assert steps == with_
    assert [s[0] for s in steps[0]] == ["execute", "sleep", "execute", "sleep", "execute"]


@pytest.mark.parametrize("excludes", [False, True])
def test_shared_targets_same_decisions_and_no_copy(excludes):
    """``share_targets``: the runner gets the router's shared target (no copy per attempt),
    and the loop decides exactly as with copies, over a run with failures, retries and
    (with retry_excludes_tried) exclusions."""
    from fedsim.federation import Fixes

    def run(share):
        clock = ManualClock()
        cat = ModelCatalog()
        fixes = Fixes(retry_excludes_tried=excludes)
        health = HealthChecker(clock=clock, fixes=fixes)
        for n in ("n1", "n2", "n3", "n4"):
            cat.register("m", n, "r", [GEN])
            health.register_node(n)
        router = Router(RouterConfig(strategy="least_outstanding", seed=3), cat, health,
                        CircuitBreaker(clock=clock, fixes=fixes), clock=clock, fixes=fixes)
        gw = FederationGateway(GatewayConfig(), router, clock=clock, fixes=fixes)
        gw.share_targets = share
        seen, targets = [], []

        def execute(context, target, request, attempt, timeout):
            targets.append(target)
            clock.advance(1_000_000 * (1 + (context * 7 + attempt) % 5))
            node = target.node_id
            seen.append((context, str(node), attempt, target.estimated_latency, target.score))
            if (context + attempt) % 3 == 0:
                return Failure(NodeUnreachable(node), 1_000_000)
            return Success(InferenceResponse(b"", node, 1_000_000, 1), 1_000_000)
            yield

        def sleep(context, duration):
            clock.advance(duration)
            return
            yield

        for i in range(60):
            try:
                drive(gw.infer_with(InferenceRequest(GEN, request_id=f"r{i}"), execute, sleep,
                                    context=i))
            except Exception as err:  # noqa: BLE001 - the error is part of the decisions
                seen.append((i, type(err).__name__))
        return seen, targets, router

    copied, copies, _ = run(False)
    shared, shares, router = run(True)
    assert copied == shared
    assert router.routes_indexed > 0
    # shared: some target object is handed out more than once; copies: never
    assert len({id(t) for t in shares}) < len(shares)
    assert len({id(t) for t in copies}) == len(copies)


def test_router_keeps_latency_ewma_only_for_a_strategy_that_reads_it():
    from fedsim.federation.load import LoadTracker
    from fedsim.federation.strategies import PeakEwma

    def router(strategy, load=None):
        clock = ManualClock()
        return Router(RouterConfig(strategy=strategy), ModelCatalog(), HealthChecker(clock=clock),
                      CircuitBreaker(clock=clock), clock=clock, load=load)

    lo = router("least_outstanding")
    assert lo.load.latency is False
    lo.load.started("n1")
    lo.load.finished("n1", 5_000_000, 10)
    assert lo.load.count("n1") == 0 and lo.load.ewma_ms("n1") is None
    assert router("peak_ewma").load.latency is True
    # switching to a strategy that reads it starts the EWMA from then on
    lo.strategy = PeakEwma()
    assert lo.load.latency is True
    lo.load.started("n1")
    lo.load.finished("n1", 5_000_000, 20)
    assert lo.load.ewma_ms("n1") == 5.0
    # a tracker passed in is used as it is (tracks by default)
    own = LoadTracker()
    assert router("least_outstanding", load=own).load is own and own.latency is True

    class Custom:  # a user strategy that says nothing: assumed to read it
        name = "custom"

        def select(self, pool, request, router):
            return pool[0]

    r = router("least_outstanding")
    r.strategy = Custom()
    assert r.load.latency is True
