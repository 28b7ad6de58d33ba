"""The reference TUI's model, without a terminal (spec §10).

:class:`FederationApp` computes what each panel of the reference dashboard shows (rows,
title, status bar, gauge colour) as plain strings, so reports and fedsim's own live view
can mirror it.  Figures are the reference's, quirks included: ``requests_per_sec`` is
``total_requests / 60`` and circuit Failures / Last Failure / Reset In show "-" (Q-TUI).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from .catalog import ModelCatalog
from .circuit import CircuitBreaker
from .duration import NS_PER_MS
from .health import HealthChecker
from .types import HealthState

SEP = "\u2502"


class FederationTab(Enum):
    CATALOG = (0, "Catalog [1]")
    HEALTH = (1, "Health [2]")
    ROUTING = (2, "Routing [3]")
    CIRCUITS = (3, "Circuits [4]")
    STATS = (4, "Stats [5]")
    POLICIES = (5, "Policies [6]")
    HELP = (6, "Help [?]")

    @property
    def index(self) -> int:
        return self.value[0]

    @property
    def title(self) -> str:
        return self.value[1]

    @classmethod
    def titles(cls) -> list[str]:
        return [t.title for t in cls]

    @classmethod
    def from_index(cls, i: int) -> "FederationTab":
        """0-5 map to the tabs in order; anything else is Help."""
        for t in cls:
            if t.index == i and i < 6:
                return t
        return cls.HELP

    def next(self) -> "FederationTab":
        return FederationTab.from_index((self.index + 1) % 7)

    def prev(self) -> "FederationTab":
        return FederationTab.from_index((self.index + 6) % 7)


@dataclass(slots=True)
class RoutingRecord:
    request_id: str
    capability: str
    selected_node: str
    score: float
    reason: str
    timestamp: int = 0


@dataclass(slots=True)
class PolicyRow:
    name: str
    weight: float
    enabled: bool
    description: str

    def cells(self) -> list[str]:
        return [self.name, f"{self.weight:.1f}", "Active" if self.enabled else "Disabled",
                self.description]


DEFAULT_POLICY_ROWS = (
    ("health", 2.0, "Strongly penalize unhealthy nodes"),
    ("latency", 1.0, "Prefer low-latency nodes"),
    ("privacy", 1.0, "Enforce data sovereignty"),
    ("locality", 1.0, "Prefer same-region nodes"),
    ("cost", 1.0, "Balance cost vs performance"),
)


def truncate(s: str, n: int) -> str:
    """``s`` if it fits in ``n``, else its first ``n - 3`` characters and ``...``.

    The reference slices bytes and would panic inside a multi-byte character; fedsim
    slices characters (identical on ASCII)."""
    if len(s) <= n:
        return s
    return s[: max(n - 3, 0)] + "..."


def gauge_color(success_rate: float) -> str:
    """Success gauge colour: green at >= 0.99, yellow at >= 0.95, else red."""
    if success_rate >= 0.99:
        return "green"
    if success_rate >= 0.95:
        return "yellow"
    return "red"


HEALTH_COLORS = {HealthState.HEALTHY: "green", HealthState.DEGRADED: "yellow",
                 HealthState.UNHEALTHY: "red", HealthState.UNKNOWN: "dark_gray"}


class FederationApp:
    """Dashboard state over shared catalog / health / breaker and an optional gateway."""

    def __init__(self, catalog: ModelCatalog, health: HealthChecker, breaker: CircuitBreaker,
                 gateway=None, max_history: int = 100) -> None:
        self.catalog = catalog
        self.health = health
        self.breaker = breaker
        self.gateway = gateway
        self.max_history = max_history
        self.current_tab = FederationTab.CATALOG
        self.routing_history: list[RoutingRecord] = []
        self.policies = [PolicyRow(n, w, True, d) for n, w, d in DEFAULT_POLICY_ROWS]
        self.should_quit = False
        self.status_message: Optional[str] = None
        self.selected_row = 0

    # navigation
    def next_tab(self) -> None:
        self.current_tab = self.current_tab.next()
        self.selected_row = 0

    def prev_tab(self) -> None:
        self.current_tab = self.current_tab.prev()
        self.selected_row = 0

    def select_next(self) -> None:
        self.selected_row += 1

    def select_prev(self) -> None:
        self.selected_row = max(self.selected_row - 1, 0)

    def record_routing(self, record: RoutingRecord) -> None:
        self.routing_history.append(record)
        if len(self.routing_history) > self.max_history:
            del self.routing_history[0: len(self.routing_history) - self.max_history]

    # derived metrics
    def healthy_node_count(self) -> int:
        return self.health.healthy_count()

    def total_node_count(self) -> int:
        return self.health.total_count()

    def success_rate(self) -> float:
        if self.gateway is None:
            return 1.0
        s = self.gateway.stats()
        if s.total_requests == 0:
            return 1.0
        return s.successful_requests / s.total_requests

    def requests_per_sec(self) -> float:
        """The reference's figure: ``total_requests / 60`` (not a measured rate)."""
        if self.gateway is None:
            return 0.0
        return self.gateway.stats().total_requests / 60.0

    # text
    def title_line(self) -> str:
        return (f" Federation Gateway v1.0 {SEP} {self.healthy_node_count()}/"
                f"{self.total_node_count()} nodes healthy {SEP} "
                f"{self.success_rate() * 100:.1f}% success ")

    def status_bar(self) -> str:
        return (f"Federation Gateway v1.0 {SEP} {self.healthy_node_count()}/"
                f"{self.total_node_count()} nodes healthy {SEP} {self.requests_per_sec():.1f} "
                f"req/s {SEP} {self.success_rate() * 100:.1f}% success")

    def catalog_rows(self) -> list[list[str]]:
        rows = []
        for entry in self.catalog.all_entries():
            caps = ", ".join(c.debug_name for c in entry.metadata.capabilities)
            for d in entry.deployments:
                rows.append([str(entry.model_id), str(d.node_id), str(d.region_id), caps,
                             d.status.debug_name])
        return rows

    def health_rows(self) -> list[list[str]]:
        return [[str(s.node_id), s.state.debug_name, f"{s.latency_p50 // NS_PER_MS}ms",
                 f"{s.latency_p99 // NS_PER_MS}ms", str(s.queue_depth)]
                for s in self.health.all_statuses()]

    def routing_rows(self) -> list[list[str]]:
        return [[truncate(r.request_id, 12), r.capability, r.selected_node, f"{r.score:.2f}",
                 truncate(r.reason, 30)]
                for r in reversed(self.routing_history[-20:])]

    def circuit_rows(self) -> list[list[str]]:
        # The stored state: an Open circuit past its timeout still shows Open.
        return [[str(n), rec.state.debug_name, "-", "-", "-"] for n, rec in self.breaker.records()]

    def stats_lines(self) -> list[str]:
        s = self.gateway.stats() if self.gateway is not None else None
        vals = (0, 0, 0, 0, 0, 0) if s is None else (
            s.total_requests, s.successful_requests, s.failed_requests, s.total_tokens,
            s.avg_latency // NS_PER_MS, s.active_streams)
        return [f"Total Requests: {vals[0]}", f"Successful: {vals[1]}", f"Failed: {vals[2]}",
                f"Total Tokens: {vals[3]}", f"Avg Latency: {vals[4]}ms",
                f"Active Streams: {vals[5]}"]

    def success_gauge(self) -> tuple[float, str, str]:
        """(ratio, label, colour)."""
        r = self.success_rate()
        return r, f"{r * 100:.1f}%", gauge_color(r)
