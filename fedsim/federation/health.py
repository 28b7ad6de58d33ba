"""HealthChecker: passive health tracking from request outcomes (spec §3).

Reference behaviour (default): status moves only on ``report_success`` / ``report_failure``;
``latency_p50`` is an integer-millisecond EWMA (alpha 0.1); p99, throughput, GPU utilisation
and queue depth never change; monitoring only sets a flag (Q-NOPROBE), so Unhealthy nodes
never recover through traffic (Q-NORECOVER).

Fixes:

* ``active_probes``: once monitoring is started, every registered node is probed each
  interval through an injected ``prober``; a probe that fails or takes longer than
  ``probe_timeout`` counts as a failure, otherwise as a success with the probe's latency.
  Synchronous users call :meth:`HealthChecker.run_due_probes`; the SimPy world runs
  probes as a process and reports each with :meth:`HealthChecker.apply_probe`.
* ``real_health_metrics``: p50 / p99 are nearest-rank percentiles of the last
  ``metrics_window`` latencies; ``queue_depth`` is the number of requests the gateway has
  in flight on the node; ``throughput`` is tokens/s over the last ``throughput_window``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .clock import WALL_CLOCK, Clock
from .duration import NS_PER_MS, NS_PER_S, seconds
from .errors import FederationError, NodeUnreachable
from .fixes import NO_FIXES, Fixes
from .types import HealthState, HealthStatus, NodeHealth, NodeId


@dataclass(slots=True)
class HealthConfig:
    """Health thresholds (spec §1.13).  ``metrics_window`` and ``throughput_window`` are
    fedsim additions used only by the ``real_health_metrics`` fix."""

    check_interval: int = seconds(10)
    probe_timeout: int = seconds(5)
    failure_threshold: int = 3
    recovery_threshold: int = 2
    degraded_latency: int = seconds(1)
    metrics_window: int = 100
    throughput_window: int = seconds(10)

    def __post_init__(self) -> None:
        for name in ("check_interval", "probe_timeout", "degraded_latency", "failure_threshold",
                     "recovery_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"HealthConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.metrics_window < 1 or self.throughput_window <= 0:
            raise ValueError("HealthConfig.metrics_window and throughput_window must be positive")


@dataclass(slots=True)
class ProbeResult:
    """What a prober returns: whether the node answered, and how long the probe took (ns)."""

    ok: bool
    latency: int = 0


Prober = Callable[[NodeId], Union[ProbeResult, bool]]
HealthListener = Callable[[NodeId, HealthState, HealthState, int], None]
"""Called as ``listener(node, old_status, new_status, now_ns)`` when a status changes."""
ChangeListener = Callable[[NodeId], None]
"""Called as ``listener(node)`` when anything the router reads about ``node`` may have
changed (see :attr:`HealthChecker.listeners`)."""


class _NodeState:
    __slots__ = ("health", "consecutive_failures", "consecutive_successes", "window",
                 "tokens", "in_flight")

    def __init__(self, health: NodeHealth) -> None:
        self.health = health
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.window: Optional[deque[int]] = None
        self.tokens: Optional[deque[tuple[int, int]]] = None
        self.in_flight = 0


_HEALTHY = HealthState.HEALTHY
_DEGRADED = HealthState.DEGRADED


def _nearest_rank(sorted_values: list[int], q: float) -> int:
    return sorted_values[max(math.ceil(q * len(sorted_values)) - 1, 0)]


class HealthChecker:
    """Per-node health from reported outcomes.  Nodes iterate in registration order
    (the reference uses a randomly ordered hash map, Q-ORDER)."""

    def __init__(
        self,
        config: Optional[HealthConfig] = None,
        clock: Clock = WALL_CLOCK,
        fixes: Fixes = NO_FIXES,
        prober: Optional[Prober] = None,
    ) -> None:
        self.config = config if config is not None else HealthConfig()
        self.clock = clock
        self.fixes = fixes
        self.prober = prober
        self._nodes: dict[NodeId, _NodeState] = {}
        self._monitoring = False
        self._probe_interval = self.config.check_interval
        self._next_probe: Optional[int] = None
        self.on_transition: Optional[HealthListener] = None
        self.listeners: list[ChangeListener] = []
        """Change listeners, called as ``listener(node)`` after the node is registered,
        re-registered or deregistered, or a report changes its status, latency_p50 or
        throughput (what the router reads).  Routing indexes use them to rescore only the
        nodes that changed; :attr:`on_transition` (status changes, with old and new state)
        is separate and left to the owner (the world records it)."""
        self.version = 0
        """Incremented whenever anything the router reads (status, p50) may have changed."""

    # ------------------------------------------------------------------ registration
    def register_node(self, node_id: str) -> None:
        """Insert or reset the node: Unknown, p50 0, counters 0 (spec §3.2)."""
        node_id = NodeId(node_id)
        state = _NodeState(NodeHealth(node_id, HealthState.UNKNOWN, 0, 0, 0, None, 0,
                                      self.clock.now_ns()))
        if self.fixes.real_health_metrics:
            state.window = deque(maxlen=self.config.metrics_window)
            state.tokens = deque()
            old = self._nodes.get(node_id)
            if old is not None:  # requests in flight stay in flight across a re-registration
                state.in_flight = old.in_flight
                state.health.queue_depth = old.in_flight
        self._nodes[node_id] = state
        self.version += 1
        for listener in self.listeners:
            listener(node_id)

    def deregister_node(self, node_id: str) -> None:
        if self._nodes.pop(node_id, None) is not None:
            self.version += 1
            for listener in self.listeners:
                listener(NodeId(node_id))

    # ------------------------------------------------------------------ reports
    def report_success(self, node_id: str, latency: int, tokens: Optional[int] = None) -> None:
        """A request (or probe) on ``node_id`` succeeded after ``latency`` ns (spec §3.4).

        ``tokens`` feeds throughput under ``real_health_metrics`` and is otherwise ignored.
        (Runs once per request: module-level state constants, one config read.)"""
        st = self._nodes.get(node_id)
        if st is None:
            return
        h = st.health
        st.consecutive_failures = 0
        successes = st.consecutive_successes = st.consecutive_successes + 1
        now = self.clock.now_ns()
        old_p50 = h.latency_p50
        old_throughput = h.throughput
        if st.window is None:
            p50 = h.latency_p50 = ((old_p50 // NS_PER_MS * 9 + latency // NS_PER_MS) // 10) * NS_PER_MS
        else:
            self._observe(st, latency, tokens, now)
            p50 = h.latency_p50
        h.last_check = now
        cfg = self.config
        old = h.status
        if latency > cfg.degraded_latency:
            new = h.status = _DEGRADED
        elif successes >= cfg.recovery_threshold:
            new = h.status = _HEALTHY
        else:
            new = old
        self.version += 1
        if new is not old:
            if self.on_transition is not None:
                self.on_transition(h.node_id, old, new, now)
        elif p50 == old_p50 and h.throughput == old_throughput:
            return
        for listener in self.listeners:
            listener(h.node_id)

    def report_failure(self, node_id: str) -> None:
        """A request (or probe) on ``node_id`` failed (spec §3.5)."""
        st = self._nodes.get(node_id)
        if st is None:
            return
        st.consecutive_successes = 0
        st.consecutive_failures += 1
        h = st.health
        now = h.last_check = self.clock.now_ns()
        old = h.status
        if st.consecutive_failures >= self.config.failure_threshold:
            h.status = HealthState.UNHEALTHY
        else:
            h.status = HealthState.DEGRADED
        self.version += 1
        if h.status is not old:
            if self.on_transition is not None:
                self.on_transition(h.node_id, old, h.status, now)
            for listener in self.listeners:
                listener(h.node_id)

    def _observe(self, st: _NodeState, latency: int, tokens: Optional[int], now: int) -> None:
        st.window.append(latency)
        ordered = sorted(st.window)
        st.health.latency_p50 = _nearest_rank(ordered, 0.50)
        st.health.latency_p99 = _nearest_rank(ordered, 0.99)
        if tokens:
            st.tokens.append((now, tokens))
        self._refresh_throughput(st, now)

    def _refresh_throughput(self, st: _NodeState, now: int) -> None:
        horizon = now - self.config.throughput_window
        while st.tokens and st.tokens[0][0] <= horizon:
            st.tokens.popleft()
        total = sum(t for _, t in st.tokens)
        st.health.throughput = min(total * NS_PER_S // self.config.throughput_window, 2**32 - 1)

    # ------------------------------------------------------------------ gateway observations
    def request_started(self, node_id: str) -> None:
        """The gateway dispatched a request to ``node_id`` (queue depth under
        ``real_health_metrics``; a no-op otherwise, so the gateway's retry loop calls this
        and :meth:`request_finished` only under that fix)."""
        if not self.fixes.real_health_metrics:
            return
        st = self._nodes.get(node_id)
        if st is not None:
            st.in_flight += 1
            st.health.queue_depth = st.in_flight

    def request_finished(self, node_id: str) -> None:
        if not self.fixes.real_health_metrics:
            return
        st = self._nodes.get(node_id)
        if st is not None and st.in_flight > 0:
            st.in_flight -= 1
            st.health.queue_depth = st.in_flight

    # ------------------------------------------------------------------ queries
    def get_cached_health(self, node_id: str) -> Optional[NodeHealth]:
        h = self.peek(node_id)
        return None if h is None else h.copy()

    def peek(self, node_id: str) -> Optional[NodeHealth]:
        """The live record, not a copy (read-only use on hot paths)."""
        st = self._nodes.get(node_id)
        if st is None:
            return None
        if st.tokens:  # real_health_metrics: age the throughput window on every read
            self._refresh_throughput(st, self.clock.now_ns())
        return st.health

    def check_node(self, node_id: str) -> NodeHealth:
        """The cached record; no probe is made (spec §3.7).  Unknown node: NodeUnreachable."""
        h = self.peek(node_id)
        if h is None:
            raise NodeUnreachable(node_id)
        return h.copy()

    def counters(self, node_id: str) -> Optional[tuple[int, int]]:
        """(consecutive_failures, consecutive_successes), or None if unregistered."""
        st = self._nodes.get(node_id)
        return None if st is None else (st.consecutive_failures, st.consecutive_successes)

    def all_statuses(self) -> list[HealthStatus]:
        return [HealthStatus.from_health(st.health) for st in self._nodes.values()]

    def nodes(self) -> list[NodeId]:
        return list(self._nodes)

    def healthy_count(self) -> int:
        return sum(1 for st in self._nodes.values() if st.health.status is HealthState.HEALTHY)

    def total_count(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    # ------------------------------------------------------------------ monitoring
    def start_monitoring(self, interval: Optional[int] = None) -> None:
        """Reference: only sets a flag.  With ``active_probes``: probes every ``interval``
        (``config.check_interval`` when None), the first round one interval from now."""
        self._monitoring = True
        if interval is not None:
            if interval <= 0:
                raise ValueError("the monitoring interval must be positive")
            self._probe_interval = interval
        if self.fixes.active_probes:
            self._next_probe = self.clock.now_ns() + self._probe_interval

    def stop_monitoring(self) -> None:
        self._monitoring = False
        self._next_probe = None

    def is_monitoring(self) -> bool:
        return self._monitoring

    @property
    def probe_interval(self) -> int:
        return self._probe_interval

    @property
    def next_probe_at(self) -> Optional[int]:
        """Clock reading of the next due probe round, or None when none is scheduled."""
        return self._next_probe

    def apply_probe(self, node_id: str, result: Union[ProbeResult, bool]) -> bool:
        """Report one probe outcome; returns whether it counted as a success."""
        if isinstance(result, bool):
            result = ProbeResult(result, 0)
        if result.ok and result.latency <= self.config.probe_timeout:
            self.report_success(node_id, result.latency)
            return True
        self.report_failure(node_id)
        return False

    def run_due_probes(self) -> int:
        """Run the probe round that is due, if any (synchronous driving of ``active_probes``).

        Rounds missed while nobody called are not replayed: one round runs now and the next
        is scheduled on the original grid after now.  Returns the number of nodes probed."""
        if self._next_probe is None or not self._monitoring or not self.fixes.active_probes:
            return 0
        now = self.clock.now_ns()
        if now < self._next_probe:
            return 0
        if self.prober is None:
            raise ValueError("active_probes needs a prober: HealthChecker(prober=...)")
        nodes = list(self._nodes)
        for node_id in nodes:
            try:
                result = self.prober(node_id)
            except FederationError:
                result = ProbeResult(False, 0)
            self.apply_probe(node_id, result)
        missed = (now - self._next_probe) // self._probe_interval + 1
        self._next_probe += missed * self._probe_interval
        return len(nodes)

    def __repr__(self) -> str:
        return f"HealthChecker({len(self._nodes)} nodes, {self.healthy_count()} healthy)"
