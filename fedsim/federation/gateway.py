"""FederationGateway: the retry loop, stats, middlewares and streams (spec §7).

The retry loop is written once, as the generator :meth:`FederationGateway.infer_with`, which
runs attempts and backoffs through runner generators: :meth:`FederationGateway.infer_steps`
turns them into Execute/Sleep steps, which :meth:`FederationGateway.infer` drives
synchronously (executor + sleep function); the SimPy world passes runners that spend
simulated time.  Reference behaviour by default: retries do not
exclude tried nodes (Q-RETRY-NOEXCLUDE), routing errors and circuit-open skips consume
attempts without backoff and the *last* error is raised (Q-RETRY-ERRORS), backoff is linear
100·(i+1) ms (Q-BACKOFF), no timeout is enforced (Q-TIMEOUT).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Callable, Generator, Optional

from .catalog import ModelCatalog
from .circuit import CircuitBreaker
from .clock import WALL_CLOCK, Clock, EpochSource
from .duration import NS_PER_MS, millis, seconds
from .errors import CircuitOpen, FederationError
from .executor import (
    Execute,
    NodeExecutor,
    Outcome,
    Sleep,
    Step,
    Success,
    reference_stub_executor,
    run_sync,
)
from .fixes import Fixes
from .health import HealthChecker
from .load import LoadTracker
from .middleware import GatewayMiddleware
from .policy import RoutingPolicy
from .router import Router, RouterConfig
from .types import GatewayStats, InferenceRequest, InferenceResponse, NodeId


@dataclass(slots=True)
class GatewayConfig:
    """Gateway settings (spec §1.13).  ``backoff_base``, ``backoff_cap`` and ``seed`` are
    fedsim additions read only by the ``capped_jittered_backoff`` fix."""

    max_retries: int = 3
    inference_timeout: int = seconds(30)
    enable_tracing: bool = True
    backoff_base: int = millis(100)
    backoff_cap: int = seconds(1)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"GatewayConfig.max_retries must be >= 0, got {self.max_retries}")
        if self.inference_timeout < 0 or self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("GatewayConfig durations must be >= 0")


@dataclass(slots=True)
class AttemptEvent:
    """One attempt of one request, for observers (``FederationGateway.on_attempt``).

    ``kind``: ``route_error`` | ``circuit_open`` | ``success`` | ``failure``.
    ``context`` is the ``context`` given to :meth:`FederationGateway.infer_with` (a driver's
    per-request state; None through ``infer`` / ``infer_steps``)."""

    request: InferenceRequest
    attempt: int
    kind: str
    node_id: Optional[NodeId]
    start: int
    end: int
    error: Optional[FederationError] = None
    context: Any = None


AttemptRunner = Callable[..., Generator[Any, Any, Outcome]]
"""``execute(context, target, request, attempt, timeout)``: runs one attempt (a generator
whose return value is the Outcome); see :meth:`FederationGateway.infer_with`."""
BackoffRunner = Callable[[Any, int], Generator[Any, Any, None]]
"""``sleep(context, duration_ns)``: spends one backoff (a generator)."""


def _execute_step(context, target, request, attempt, timeout):
    """The attempt runner of :meth:`FederationGateway.infer_steps`: yield the step, get
    the outcome sent back."""
    return (yield Execute(target, request, attempt, timeout))


def _sleep_step(context, duration):
    yield Sleep(duration)


class TokenStream:
    """The reference's fake stream: ``token_1`` … ``token_10``, then one 50 ms success
    reported to the gateway's health checker and breaker (Q-STREAM)."""

    def __init__(self, node_id: NodeId, health: HealthChecker, breaker: CircuitBreaker) -> None:
        self.node_id = node_id
        self._health = health
        self._breaker = breaker
        self.tokens_generated = 0
        self.finished = False

    def next_token(self) -> Optional[bytes]:
        if self.finished:
            return None
        self.tokens_generated += 1
        if self.tokens_generated > 10:
            self.finished = True
            self._health.report_success(self.node_id, millis(50))
            self._breaker.record_success(self.node_id)
            return None
        return f"token_{self.tokens_generated}".encode()

    def cancel(self) -> None:
        self.finished = True

    def __iter__(self):
        while (tok := self.next_token()) is not None:
            yield tok


class FederationGateway:
    """Entry point for inference requests.

    ``health_checker`` / ``circuit_breaker`` default to the router's (the normal shared
    setup).  ``executor`` runs requests on nodes (default: the reference stub); ``sleep``
    spends durations (default: ``clock.sleep``).  ``fixes`` default to the router's."""

    def __init__(
        self,
        config: Optional[GatewayConfig] = None,
        router: Optional[Router] = None,
        health_checker: Optional[HealthChecker] = None,
        circuit_breaker: Optional[CircuitBreaker] = None,
        *,
        executor: Optional[NodeExecutor] = None,
        clock: Optional[Clock] = None,
        sleep: Optional[Callable[[int], None]] = None,
        fixes: Optional[Fixes] = None,
    ) -> None:
        self.config = config if config is not None else GatewayConfig()
        self.router = router if router is not None else Router(clock=clock)
        self.health_checker = health_checker if health_checker is not None else self.router.health_checker
        self.circuit_breaker = circuit_breaker if circuit_breaker is not None else self.router.circuit_breaker
        self.clock = clock if clock is not None else self.router.clock
        self.sleep = sleep if sleep is not None else self.clock.sleep
        self.executor: NodeExecutor = executor if executor is not None else reference_stub_executor
        self.fixes = fixes if fixes is not None else self.router.fixes
        self.middlewares: list[GatewayMiddleware] = []
        self.on_attempt: Optional[Callable[[AttemptEvent], None]] = None
        self.share_targets = False
        """The attempt runners treat targets as read-only, so the retry loop may hand them
        the router's shared target (``Router.route_shared``) instead of a copy."""
        self._stats = GatewayStats()
        self._latency_sum_ms = 0
        self._rng = random.Random(self.config.seed)

    @property
    def load(self) -> LoadTracker:
        return self.router.load

    def with_middleware(self, middleware: GatewayMiddleware) -> "FederationGateway":
        self.middlewares.append(middleware)
        return self

    # ------------------------------------------------------------------ stats
    def stats(self) -> GatewayStats:
        s = replace(self._stats)
        ok = s.successful_requests
        s.avg_latency = (self._latency_sum_ms // ok) * NS_PER_MS if ok else 0
        return s

    # ------------------------------------------------------------------ backoff
    def backoff(self, attempt: int) -> int:
        """Sleep after failed attempt ``attempt`` (0-based), in ns."""
        cfg = self.config
        if self.fixes.capped_jittered_backoff:
            ceiling = min(cfg.backoff_cap, cfg.backoff_base * (1 << min(attempt, 62)))
            return int(self._rng.random() * ceiling)
        return 100 * (attempt + 1) * NS_PER_MS

    # ------------------------------------------------------------------ the retry loop
    def infer_steps(self, request: InferenceRequest) -> Generator[Step, Outcome, InferenceResponse]:
        """The retry loop of spec §7.2 as a generator of steps (see :mod:`.executor`).

        Returns the response or raises the last error."""
        return (yield from self.infer_with(request, _execute_step, _sleep_step))

    def infer_with(self, request: InferenceRequest, execute: AttemptRunner,
                   sleep: BackoffRunner, context: Any = None) -> Generator[Any, Any, InferenceResponse]:
        """The retry loop of spec §7.2, running each attempt through ``execute`` and each
        backoff through ``sleep``: generator functions, called as ``execute(context,
        target, request, attempt, timeout)`` (its return value is the attempt's Outcome)
        and ``sleep(context, duration_ns)``; whatever they yield passes through.

        :meth:`infer_steps` passes runners that yield :class:`Execute` / :class:`Sleep`
        steps; a driver that lives in a generator world (the SimPy world) passes its own,
        so an attempt costs no step object and no round trip through the driver.
        ``context`` is handed to the runners and observers (:attr:`AttemptEvent.context`)
        as is: the driver's per-request state.
        Returns the response or raises the last error."""
        stats = self._stats
        stats.total_requests += 1
        middlewares = self.middlewares
        for m in middlewares:
            m.before_route(request)
        # (methods are called on their objects rather than bound once: a call through
        # LOAD_METHOD allocates nothing, binding allocates a method object per request)
        router, health, breaker, clock = self.router, self.health_checker, self.circuit_breaker, self.clock
        share = self.share_targets
        load = router.load
        # request_started / request_finished count in-flight requests only under
        # real_health_metrics and are no-ops otherwise: skip the calls then
        in_flight = health.fixes.real_health_metrics
        fixes = self.fixes
        excludes = fixes.retry_excludes_tried
        observe = self.on_attempt
        max_retries = self.config.max_retries
        timeout = self.config.inference_timeout if fixes.inference_timeout else None
        last_error: Optional[FederationError] = None
        tried: list[NodeId] = []
        for attempt in range(max_retries + 1):
            try:
                exclude = set(tried) if excludes else None
                target = (router.route_shared(request, exclude) if share
                          else router.route(request, exclude))
            except FederationError as err:
                last_error = err
                if observe is not None:
                    t = clock.now_ns()
                    observe(AttemptEvent(request, attempt, "route_error", None, t, t, err,
                                         context))
                continue
            node = target.node_id
            if not breaker.allow_request(node):
                last_error = CircuitOpen(node)
                tried.append(node)
                if observe is not None:
                    t = clock.now_ns()
                    observe(AttemptEvent(request, attempt, "circuit_open", node, t, t, last_error,
                                         context))
                continue
            start = clock.now_ns()
            if in_flight:
                health.request_started(node)
            load.started(node)
            outcome = yield from execute(context, target, request, attempt, timeout)
            now = clock.now_ns()
            latency = now - start
            load.finished(node, latency, now)
            if in_flight:
                health.request_finished(node)
            if type(outcome) is Success:
                response = outcome.response
                health.report_success(node, latency, response.tokens)
                breaker.record_success(node)
                stats.successful_requests += 1
                self._latency_sum_ms += latency // NS_PER_MS
                if response.tokens is not None:
                    stats.total_tokens += response.tokens
                if observe is not None:
                    observe(AttemptEvent(request, attempt, "success", node, start, now, None,
                                         context))
                for m in middlewares:
                    m.after_infer(request, response)
                return response
            error = outcome.error
            health.report_failure(node)
            breaker.record_failure(node)
            for m in middlewares:
                m.on_error(request, error)
            last_error = error
            tried.append(node)
            if observe is not None:
                observe(AttemptEvent(request, attempt, "failure", node, start, now, error, context))
            if attempt < max_retries:
                yield from sleep(context, self.backoff(attempt))
        stats.failed_requests += 1
        assert last_error is not None  # the reference's "All retries exhausted" is unreachable
        raise last_error

    def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Run a request synchronously through the executor; raises the final error."""
        if self.fixes.active_probes:
            self.health_checker.run_due_probes()
        return run_sync(self.infer_steps(request), self.executor, self.sleep)

    def infer_stream(self, request: InferenceRequest) -> TokenStream:
        """The reference's streaming path: no retries, no middlewares, and a leaked
        ``active_streams`` count (spec §7.4, Q-STREAM)."""
        self._stats.total_requests += 1
        self._stats.active_streams += 1
        target = self.router.route(request)
        return TokenStream(target.node_id, self.health_checker, self.circuit_breaker)

    def __repr__(self) -> str:
        s = self._stats
        return (f"FederationGateway(total={s.total_requests}, ok={s.successful_requests}, "
                f"failed={s.failed_requests})")


class GatewayBuilder:
    """Fluent construction (spec §7.1).  Missing catalog / health / breaker are fresh
    defaults; without a router, one is built over them.  With a router but no health or
    breaker, the gateway gets fresh ones the router never reads, as in the reference
    (Q-BUILDER).  ``router_config`` and ``policy`` are fedsim conveniences."""

    def __init__(self) -> None:
        self._config: Optional[GatewayConfig] = None
        self._catalog: Optional[ModelCatalog] = None
        self._health: Optional[HealthChecker] = None
        self._breaker: Optional[CircuitBreaker] = None
        self._router: Optional[Router] = None
        self._middlewares: list[GatewayMiddleware] = []
        self._router_config: Optional[RouterConfig] = None
        self._policy: Optional[RoutingPolicy] = None
        self._clock: Optional[Clock] = None
        self._epoch: Optional[EpochSource] = None
        self._executor: Optional[NodeExecutor] = None
        self._sleep: Optional[Callable[[int], None]] = None
        self._fixes: Fixes = Fixes()

    def config(self, config: GatewayConfig) -> "GatewayBuilder":
        self._config = config
        return self

    def catalog(self, catalog: ModelCatalog) -> "GatewayBuilder":
        self._catalog = catalog
        return self

    def health(self, health: HealthChecker) -> "GatewayBuilder":
        self._health = health
        return self

    def circuit_breaker(self, breaker: CircuitBreaker) -> "GatewayBuilder":
        self._breaker = breaker
        return self

    def router(self, router: Router) -> "GatewayBuilder":
        self._router = router
        return self

    def middleware(self, middleware: GatewayMiddleware) -> "GatewayBuilder":
        self._middlewares.append(middleware)
        return self

    def router_config(self, config: RouterConfig) -> "GatewayBuilder":
        self._router_config = config
        return self

    def policy(self, policy: RoutingPolicy) -> "GatewayBuilder":
        self._policy = policy
        return self

    def clock(self, clock: Clock) -> "GatewayBuilder":
        self._clock = clock
        return self

    def epoch_ns(self, source: EpochSource) -> "GatewayBuilder":
        self._epoch = source
        return self

    def executor(self, executor: NodeExecutor) -> "GatewayBuilder":
        self._executor = executor
        return self

    def sleep(self, sleep: Callable[[int], None]) -> "GatewayBuilder":
        self._sleep = sleep
        return self

    def fixes(self, fixes: Fixes) -> "GatewayBuilder":
        self._fixes = fixes
        return self

    def build(self) -> FederationGateway:
        clock = self._clock or WALL_CLOCK
        fixes = self._fixes
        catalog = self._catalog if self._catalog is not None else ModelCatalog()
        health = self._health if self._health is not None else HealthChecker(clock=clock, fixes=fixes)
        breaker = self._breaker if self._breaker is not None else CircuitBreaker(clock=clock, fixes=fixes)
        router = self._router
        if router is None:
            router = Router(self._router_config or RouterConfig(), catalog, health, breaker,
                            policy=self._policy, clock=clock, epoch_ns=self._epoch, fixes=fixes)
        gw = FederationGateway(self._config or GatewayConfig(), router, health, breaker,
                               executor=self._executor, clock=clock, sleep=self._sleep, fixes=fixes)
        for m in self._middlewares:
            gw.with_middleware(m)
        return gw
