"""A gateway replica: the real router and retry loop, driven in simulated time.

Each replica owns its catalog view, health checker, circuit breaker and router, so replicas
see different, stale views of the nodes, as in production.  Requests run through
``FederationGateway.infer_with`` (the same retry loop as the synchronous ``infer``); this
driver's attempt runner is the network hop, queueing and service at the node and the hop
back, and its backoff runner a simulated sleep.  With ``inference_timeout`` the
attempt races a timer; with ``active_probes`` a process probes every node each interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..federation import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CompositePolicy,
    CostPolicy,
    Failure,
    FederationError,
    FederationGateway,
    GatewayConfig,
    HealthChecker,
    HealthConfig,
    InferenceResponse,
    InternalError,
    ModelCatalog,
    NodeUnreachable,
    PrivacyPolicy,
    ProbeResult,
    Router,
    RouterConfig,
    Success,
    Timeout,
    make_policy,
)
from ..federation.types import Capability
from .clock import SimClock, ns
from .node import ERROR_FAULT, QUEUE_FULL, Node
from .scenario import policy_params
from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    from .simulation import World

_NODE_ERRORS = {
    "crashed": lambda n: NodeUnreachable(n),
    "crashed_in_flight": lambda n: NodeUnreachable(n),
    "partitioned": lambda n: NodeUnreachable(n),
    QUEUE_FULL: lambda n: InternalError(f"node {n} queue full"),
    ERROR_FAULT: lambda n: InternalError(f"inference failed on {n}"),
}


def build_policy(spec, world: "World", fixes):
    """The router policy of a scenario (see RouterSpec.policy)."""
    if spec == "reference":
        return CompositePolicy.enterprise_default(fixes)
    if spec == "enterprise":
        policy = CompositePolicy.enterprise_default(fixes)
        for p in policy.policies:
            if isinstance(p, PrivacyPolicy):
                for r in world.scenario.regions:
                    p.with_region(r.id, r.privacy)
            elif isinstance(p, CostPolicy):
                for r in world.scenario.regions:
                    p.with_region_cost(r.id, r.cost)
        return policy
    return CompositePolicy([make_policy(item["kind"], **policy_params(item, world.scenario, fixes))
                            for item in spec])


class GatewayReplica:
    def __init__(self, world: "World", name: str, region: str, index: int) -> None:
        self.world = world
        self.env = world.env
        self.name = name
        self.region = region
        sc = world.scenario
        rs = sc.router
        fixes = rs.fix_set()
        self.fixes = fixes
        self.clock = SimClock(world.env)
        h = rs.health
        self.health = HealthChecker(
            HealthConfig(ns(h.check_interval), ns(h.probe_timeout), h.failure_threshold,
                         h.recovery_threshold, ns(h.degraded_latency)),
            self.clock, fixes)
        b = rs.breaker
        self.breaker = CircuitBreaker(
            CircuitBreakerConfig(b.failure_threshold, ns(b.reset_timeout), b.half_open_successes),
            self.clock, fixes)
        self.catalog = ModelCatalog()
        seed = world.streams.rng("router-seed", name).getrandbits(63)
        self.router = Router(RouterConfig(rs.max_candidates, rs.min_score, rs.strategy, seed),
                             self.catalog, self.health, self.breaker,
                             policy=build_policy(rs.policy, world, fixes), clock=self.clock,
                             fixes=fixes)
        g = rs.gateway
        self.gateway = FederationGateway(
            GatewayConfig(g.max_retries, ns(g.inference_timeout), True, ns(g.backoff_base),
                          ns(g.backoff_cap), seed),
            self.router, clock=self.clock, fixes=fixes)
        self.gateway.on_attempt = world.attempt  # records the attempt
        self.gateway.share_targets = True  # the runners only read target.node_id
        # bound once: the per-request start passes them on
        self._infer = self.gateway.infer_with
        self._exit = world.exit
        self._run_attempt = self._attempt
        self._run_backoff = self._backoff
        for grp in sc.nodes:
            for node_id in grp.node_ids():
                for m in grp.models:
                    self.catalog.register(m.model, node_id, grp.region,
                                          [Capability.parse(c) for c in m.capabilities])
                if grp.register_health:
                    self.health.register_node(node_id)
        rec = world.recorder
        self.health.on_transition = lambda n, a, b, t: rec.event(
            t, "health", self.name, str(n), a.debug_name, b.debug_name)
        self.breaker.on_transition = lambda n, a, b, t: rec.event(
            t, "circuit", self.name, str(n), a.debug_name, b.debug_name)
        # hot-path caches: nodes, base one-way delays (static), keyed-uniform functions
        self._net = net = world.network
        # node id -> (node, base one-way delay there, and back)
        self._hops = {n: (node, net.base_one_way(region, node.region),
                          net.base_one_way(node.region, region))
                      for n, node in world.nodes.items()}
        self._u_service = world.streams.uniform_fn("service")
        self._u_jitter = world.streams.uniform_fn("jitter")
        if fixes.active_probes:
            self.health.start_monitoring(ns(h.check_interval))
            self.env.process(self._probe_loop())

    # ------------------------------------------------------------------ requests
    def start(self, req) -> None:
        """Start one request through the retry loop as a :class:`Task` nobody waits for
        (open-loop arrivals; the same contract as a Task: the caller's last action before
        it yields).  The request is recorded when the loop ends (:meth:`World.exit`)."""
        Task(self.env, self._infer(req.request, self._run_attempt, self._run_backoff, req),
             self._exit, req)

    def handle(self, req):
        """Process: one request through the retry loop; records it when done (for
        closed-loop clients, which wait for it)."""
        try:
            yield from self._infer(req.request, self._run_attempt, self._run_backoff, req)
        except FederationError as err:
            self._exit(req, None, err)
        else:
            self._exit(req, None, None)

    def _backoff(self, req, duration: int):
        """Backoff runner of the retry loop: simulated sleep, noted on the attempt row."""
        if duration > 0:
            if req.last_attempt_row >= 0:
                self.world.recorder.attempts.set(req.last_attempt_row, "backoff", duration / 1e9)
            yield self.env.timeout(duration)

    def _execute_with_timeout(self, req, target, attempt: int, timeout: int):
        """``inference_timeout``: the attempt races a timer; on timeout it goes on at the
        node and its answer is dropped."""
        proc = self.env.process(self._attempt(req, target, None, attempt, None, False))
        timer = self.env.timeout(timeout)
        yield proc | timer
        if not proc.triggered:
            req.fail_reason = "timeout"
            return Failure(Timeout(timeout), timeout)
        outcome, detail = proc.value
        _settle(req, outcome, detail)
        return outcome

    def _attempt(self, req, target, request, attempt: int, timeout, settle: bool = True):
        """Attempt runner of the retry loop (see ``FederationGateway.infer_with``): network
        hop, queue and service at the node, hop back.

        With ``settle`` (the runner's call) the attempt's result goes straight onto ``req``
        (as :func:`_settle` would copy it) and the Outcome is returned; a ``timeout`` races
        the attempt against a timer (:meth:`_execute_with_timeout`, which runs this without
        ``settle``: then (Outcome, detail) is returned, to count only if it beats the timer).

        Hot path.  Two exact shortcuts: a keyed uniform is drawn only when it is used
        (jitter only with a jitter distribution, the error draw only under an error-rate
        fault; the values depend on the key alone, so skipping unused ones changes
        nothing), and a zero-delay hop is not a ``timeout(0)`` when no other event is due
        at this instant (the process would have been the next to run anyway)."""
        if timeout is not None:
            return (yield from self._execute_with_timeout(req, target, attempt, timeout))
        env = self.env
        node_id = target.node_id
        node, out, back = self._hops[node_id]
        net = self._net
        key = req.key
        start = env._now
        if net._partitions and net.is_partitioned(self.region, node.region):
            yield env.timeout(net.partition_timeout_ns)
            outcome = Failure(NodeUnreachable(node_id), env._now - start)
            if settle:
                req.fail_reason = "partitioned"
                return outcome
            return outcome, "partitioned"
        jitter = net.jitter
        if jitter is not None:
            out = net.one_way(self.region, node.region, self._u_jitter(key, 2 * attempt))
        queue = env._queue  # env.peek(), inlined
        if out or (queue and queue[0][0] <= start):
            yield env.timeout(out)
        reason, wait, service, ttft, _ = yield from node.serve(
            req.cap_key, self._u_service(key, attempt), key, attempt,
            req.input_tokens, req.output_tokens)
        if jitter is not None:
            back = net.one_way(node.region, self.region, self._u_jitter(key, 2 * attempt + 1))
        now = env._now
        if back or (queue and queue[0][0] <= now):
            yield env.timeout(back)
            now = env._now
        elapsed = now - start
        if reason is not None:
            outcome = Failure(_NODE_ERRORS[reason](node_id), elapsed)
            if settle:
                req.fail_reason = reason
                return outcome
            return outcome, reason
        if ttft is not None:
            ttft = (start - req.arrival) + out + wait + ttft + back
        outcome = Success(InferenceResponse(b"", node_id, elapsed, req.output_tokens), elapsed)
        if settle:
            req.node = node_id
            req.region = node.region
            req.queue_wait = wait
            req.service = service
            req.network = out + back
            if ttft is not None:
                req.ttft = ttft
            return outcome
        return outcome, (node_id, node.region, wait, service, out + back, ttft)

    # ------------------------------------------------------------------ probes
    def _probe_loop(self):
        env = self.env
        interval = self.health.probe_interval
        while True:
            yield env.timeout(interval)
            if not self.health.is_monitoring():
                return
            for node_id in self.health.nodes():
                node = self.world.nodes.get(node_id)
                if node is not None:
                    env.process(self._probe(node))

    def _probe(self, node: Node):
        env, net = self.env, self.world.network
        timeout = self.health.config.probe_timeout
        start = env.now
        if net.is_partitioned(self.region, node.region):
            yield env.timeout(min(net.partition_timeout_ns, timeout))
            self.health.apply_probe(node.node_id, ProbeResult(False, env.now - start))
            return
        rtt = net.one_way(self.region, node.region) + net.one_way(node.region, self.region)
        if node.hung and not node.crashed:
            yield env.timeout(timeout)
            self.health.apply_probe(node.node_id, ProbeResult(False, timeout))
            return
        yield env.timeout(min(rtt, timeout))
        ok = node.up and rtt <= timeout
        self.health.apply_probe(node.node_id, ProbeResult(ok, env.now - start))


def _settle(req, outcome, detail) -> None:
    """Copy what the retry loop will use of an attempt's result onto ``req``."""
    if type(outcome) is Success:
        (req.node, req.region, req.queue_wait, req.service, req.network, ttft) = detail
        if ttft is not None:
            req.ttft = ttft
    else:
        req.fail_reason = detail
