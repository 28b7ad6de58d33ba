"""CircuitBreaker: per-node Closed / Open / HalfOpen (spec §4).

Reference behaviour (default): Open turns HalfOpen lazily, only inside :meth:`is_open`, once
``reset_timeout`` has passed since the *last* failure (Q-LAZY-HALFOPEN); HalfOpen admits every
request and needs ``half_open_successes`` successes to close (Q-HALFOPEN); a success while Open
closes at once (Q-OPEN-SUCCESS).  Reading never creates a record.

Fixes:

* ``eager_half_open``: the circuit is HalfOpen from ``opened_at + reset_timeout`` on, whoever
  asks (``state()`` and ``all_states()`` included); failures while Open do not push it back.
* ``half_open_single_probe``: a HalfOpen circuit admits one request at a time (the gateway
  takes the permit with :meth:`allow_request`); its success closes the circuit, its failure
  reopens it.  A permit not answered within ``reset_timeout`` is considered lost and freed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .clock import WALL_CLOCK, Clock
from .duration import seconds
from .fixes import NO_FIXES, Fixes
from .types import CircuitState, NodeId

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN

TransitionListener = Callable[[NodeId, CircuitState, CircuitState, int], None]
"""Called as ``listener(node, old_state, new_state, now_ns)`` on every state change."""


@dataclass(slots=True)
class CircuitBreakerConfig:
    failure_threshold: int = 5
    reset_timeout: int = seconds(30)
    half_open_successes: int = 3

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "reset_timeout", "half_open_successes"):
            if getattr(self, name) < 0:
                raise ValueError(f"CircuitBreakerConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(slots=True)
class CircuitRecord:
    """Stored breaker state of one node.  ``opened_at`` and ``probe_started`` are fedsim
    bookkeeping for the fixes; they do not influence reference behaviour."""

    state: CircuitState = CLOSED
    failures: int = 0
    successes_in_half_open: int = 0
    last_failure: Optional[int] = None
    opened_at: Optional[int] = None
    probe_started: Optional[int] = None

    def as_tuple(self) -> tuple[CircuitState, int, int, Optional[int]]:
        """(state, failures, successes_in_half_open, last_failure), as the spec writes them."""
        return (self.state, self.failures, self.successes_in_half_open, self.last_failure)


class CircuitBreaker:
    """Per-node circuit breaker.  Records iterate in creation order (Q-ORDER refinement)."""

    def __init__(
        self,
        config: Optional[CircuitBreakerConfig] = None,
        clock: Clock = WALL_CLOCK,
        fixes: Fixes = NO_FIXES,
    ) -> None:
        self.config = config if config is not None else CircuitBreakerConfig()
        self.clock = clock
        self.fixes = fixes
        self._records: dict[NodeId, CircuitRecord] = {}
        self.on_transition: Optional[TransitionListener] = None
        self.listeners: list[TransitionListener] = []
        """Further transition listeners, called like :attr:`on_transition` after it.  The
        owner (the world) keeps ``on_transition``; routing indexes add themselves here to
        learn which circuits are not Closed."""
        self.version = 0
        """Incremented on every state change (routing caches key on it)."""

    # ------------------------------------------------------------------ internals
    def _set_state(self, node_id: str, rec: CircuitRecord, new: CircuitState, now: int) -> None:
        old = rec.state
        if old is new:
            return
        rec.state = new
        if new is OPEN:
            rec.opened_at = now
        rec.probe_started = None
        self.version += 1
        if self.on_transition is not None:
            self.on_transition(NodeId(node_id), old, new, now)
        for listener in self.listeners:
            listener(NodeId(node_id), old, new, now)

    def _eager_check(self, node_id: str, rec: CircuitRecord, now: int) -> None:
        if (rec.state is OPEN and rec.opened_at is not None
                and now - rec.opened_at >= self.config.reset_timeout):
            rec.successes_in_half_open = 0
            self._set_state(node_id, rec, HALF_OPEN, rec.opened_at + self.config.reset_timeout)

    # ------------------------------------------------------------------ queries
    def is_open(self, node_id: str) -> bool:
        """Whether to skip the node.  May move Open → HalfOpen (spec §4.2)."""
        rec = self._records.get(node_id)
        if rec is None:
            return False
        state = rec.state
        if state is CLOSED:
            return False
        now = self.clock.now_ns()
        fixes = self.fixes
        if fixes.eager_half_open:
            self._eager_check(node_id, rec, now)
        elif state is OPEN and rec.last_failure is not None \
                and now - rec.last_failure >= self.config.reset_timeout:
            rec.successes_in_half_open = 0
            self._set_state(node_id, rec, HALF_OPEN, now)
            return False
        if rec.state is OPEN:
            return True
        # HalfOpen
        if fixes.half_open_single_probe and rec.probe_started is not None:
            if now - rec.probe_started < self.config.reset_timeout:
                return True
            rec.probe_started = None  # the probe never answered: free the permit
        return False

    def allow_request(self, node_id: str) -> bool:
        """The gateway's pre-dispatch check: ``not is_open(node)``, and under
        ``half_open_single_probe`` it also takes the HalfOpen probe permit."""
        rec = self._records.get(node_id)
        if rec is None or rec.state is CLOSED:  # is_open's answer, inline: False, no side effect
            return True
        if self.is_open(node_id):
            return False
        if self.fixes.half_open_single_probe:
            rec = self._records.get(node_id)
            if rec is not None and rec.state is HALF_OPEN:
                rec.probe_started = self.clock.now_ns()
        return True

    def state(self, node_id: str) -> CircuitState:
        """Stored state; no time check in the reference (spec §4.3)."""
        rec = self._records.get(node_id)
        if rec is None:
            return CLOSED
        if self.fixes.eager_half_open:
            self._eager_check(node_id, rec, self.clock.now_ns())
        return rec.state

    def record(self, node_id: str) -> Optional[CircuitRecord]:
        """The stored record (live object) or None; never creates one."""
        return self._records.get(node_id)

    def records(self) -> list[tuple[NodeId, CircuitRecord]]:
        """Stored (node, record) pairs, in creation order; no time check, no side effect."""
        return list(self._records.items())

    def all_states(self) -> list[tuple[NodeId, CircuitState]]:
        return [(NodeId(n), self.state(n)) for n in list(self._records)]

    def half_open_at(self, node_id: str) -> Optional[int]:
        """When an Open circuit becomes eligible for HalfOpen (clock reading), else None."""
        rec = self._records.get(node_id)
        if rec is None or rec.state is not OPEN:
            return None
        base = rec.opened_at if self.fixes.eager_half_open else rec.last_failure
        return None if base is None else base + self.config.reset_timeout

    # ------------------------------------------------------------------ events
    def record_success(self, node_id: str) -> None:
        rec = self._records.get(node_id)
        if rec is None:
            rec = self._records[NodeId(node_id)] = CircuitRecord()
        elif self.fixes.eager_half_open:  # an event after the deadline meets a HalfOpen circuit
            self._eager_check(node_id, rec, self.clock.now_ns())
        state = rec.state
        if state is HALF_OPEN:
            rec.successes_in_half_open += 1
            rec.probe_started = None
            if (self.fixes.half_open_single_probe
                    or rec.successes_in_half_open >= self.config.half_open_successes):
                rec.failures = 0
                rec.successes_in_half_open = 0
                self._set_state(node_id, rec, CLOSED, self.clock.now_ns())
        elif state is CLOSED:
            rec.failures = 0
        else:  # Open: closes at once (Q-OPEN-SUCCESS)
            rec.failures = 0
            self._set_state(node_id, rec, CLOSED, self.clock.now_ns())

    def record_failure(self, node_id: str) -> None:
        rec = self._records.get(node_id)
        now = self.clock.now_ns()
        if rec is None:
            rec = self._records[NodeId(node_id)] = CircuitRecord()
        elif self.fixes.eager_half_open:
            self._eager_check(node_id, rec, now)
        rec.failures += 1
        rec.last_failure = now
        state = rec.state
        if state is CLOSED:
            if rec.failures >= self.config.failure_threshold:
                self._set_state(node_id, rec, OPEN, now)
        elif state is HALF_OPEN:
            rec.successes_in_half_open = 0
            self._set_state(node_id, rec, OPEN, now)
        # Open stays Open; last_failure moved forward (the lazy timer restarts)

    def __repr__(self) -> str:
        return f"CircuitBreaker({len(self._records)} records)"
