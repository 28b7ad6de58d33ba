"""Conformance tests T107-T116 (TUI helpers), spec §10 and §11.8."""

from __future__ import annotations

import pytest

from fedsim.federation import (
    Capability,
    CircuitBreaker,
    FederationApp,
    FederationGateway,
    FederationTab,
    GatewayConfig,
    HealthChecker,
    InferenceRequest,
    ManualClock,
    ModelCatalog,
    NoCapacity,
    Router,
    RouterConfig,
    RoutingRecord,
    millis,
    truncate,
)
from fedsim.federation.tui import gauge_color

GEN = Capability.GENERATE
CODE = Capability.CODE

TITLES = ["Catalog [1]", "Health [2]", "Routing [3]", "Circuits [4]", "Stats [5]",
          "Policies [6]", "Help [?]"]
ORDER = [FederationTab.CATALOG, FederationTab.HEALTH, FederationTab.ROUTING,
         FederationTab.CIRCUITS, FederationTab.STATS, FederationTab.POLICIES,
         FederationTab.HELP]


class Env:
    def __init__(self, with_gateway: bool = False, max_history: int = 100) -> None:
        self.clock = ManualClock()
        self.cat = ModelCatalog()
        self.H = HealthChecker(clock=self.clock)
        self.CB = CircuitBreaker(clock=self.clock)
        self.gw = None
        if with_gateway:
            router = Router(RouterConfig(), self.cat, self.H, self.CB, clock=self.clock)
            self.gw = FederationGateway(GatewayConfig(), router, self.H, self.CB, clock=self.clock)
        self.app = FederationApp(self.cat, self.H, self.CB, self.gw, max_history=max_history)


def test_T107_tabs():
    """T107: titles list; index Catalog=0 .. Help=6; from_index(7/100/2**64-1) -> Help; default tab Catalog."""
    assert FederationTab.titles() == TITLES
    assert [t.title for t in ORDER] == TITLES
    assert [t.index for t in ORDER] == list(range(7))
    for i, t in enumerate(ORDER):
        assert FederationTab.from_index(i) is t
    for i in (7, 100, 2**64 - 1):
        assert FederationTab.from_index(i) is FederationTab.HELP
    assert Env().app.current_tab is FederationTab.CATALOG


def test_T108_tab_navigation():
    """T108: next Catalog -> Health -> Routing; prev -> Health; Help next -> Catalog; Catalog prev -> Help; selected_row reset."""
    app = Env().app
    app.selected_row = 4
    app.next_tab()
    assert app.current_tab is FederationTab.HEALTH and app.selected_row == 0
    app.selected_row = 2
    app.next_tab()
    assert app.current_tab is FederationTab.ROUTING and app.selected_row == 0
    app.selected_row = 3
    app.prev_tab()
    assert app.current_tab is FederationTab.HEALTH and app.selected_row == 0
    app.current_tab = FederationTab.HELP
    app.selected_row = 1
    app.next_tab()
    assert app.current_tab is FederationTab.CATALOG and app.selected_row == 0
    app.selected_row = 7
    app.prev_tab()
    assert app.current_tab is FederationTab.HELP and app.selected_row == 0
    # the full cycle: 7 nexts visit every tab and return to the start
    app.current_tab = FederationTab.CATALOG
    seen = []
    for _ in range(7):
        app.next_tab()
        seen.append(app.current_tab)
    assert seen == ORDER[1:] + ORDER[:1]
    assert FederationTab.CATALOG.next() is FederationTab.HEALTH
    assert FederationTab.CATALOG.prev() is FederationTab.HELP


def test_T109_row_selection():
    """T109: select_next 0 -> 1 -> 2; select_prev at 0 -> 0; from 5 -> 4."""
    app = Env().app
    assert app.selected_row == 0
    app.select_next()
    assert app.selected_row == 1
    app.select_next()
    assert app.selected_row == 2
    app.selected_row = 0
    app.select_prev()
    assert app.selected_row == 0
    app.selected_row = 5
    app.select_prev()
    assert app.selected_row == 4


def test_T110_history_cap():
    """T110: max_history 3, record req-0..req-4 -> history [req-2, req-3, req-4]."""
    app = Env(max_history=3).app
    for i in range(5):
        app.record_routing(RoutingRecord(f"req-{i}", "Generate", "n1", 1.0, "best score", i))
    assert [r.request_id for r in app.routing_history] == ["req-2", "req-3", "req-4"]
    assert Env().app.max_history == 100


@pytest.mark.parametrize("s,n,expected", [
    ("short", 10, "short"),
    ("very long string", 10, "very lo..."),
    ("exactly10", 10, "exactly10"),
    ("", 10, ""),
    ("1234567890", 10, "1234567890"),
    ("12345678901", 10, "1234567..."),
    ("abcdef", 3, "..."),
    ("abcdef", 4, "a..."),
])
def test_T111_truncate(s, n, expected):
    """T111: truncate(s, n) per the spec table."""
    assert truncate(s, n) == expected


def test_T112_success_rate_and_rps():
    """T112: success_rate no gateway 1.0, total 0 1.0, 3 of 4 0.75; requests_per_sec no gateway 0.0, total 3 -> 0.05."""
    no_gw = Env().app
    assert no_gw.success_rate() == 1.0
    assert no_gw.requests_per_sec() == 0.0

    env = Env(with_gateway=True)
    assert env.app.success_rate() == 1.0
    assert env.app.requests_per_sec() == 0.0
    env.cat.register("m", "n1", "r", [GEN])
    for _ in range(3):
        env.gw.infer(InferenceRequest(GEN))
    assert env.app.requests_per_sec() == 0.05
    with pytest.raises(NoCapacity):
        env.gw.infer(InferenceRequest(CODE))
    s = env.gw.stats()
    assert (s.total_requests, s.successful_requests, s.failed_requests) == (4, 3, 1)
    assert env.app.success_rate() == 0.75


def test_T113_policy_rows():
    """T113: default policy rows [health 2.0, latency 1.0, privacy 1.0, locality 1.0, cost 1.0], all Active."""
    app = Env().app
    assert [(p.name, p.weight, p.enabled) for p in app.policies] == [
        ("health", 2.0, True), ("latency", 1.0, True), ("privacy", 1.0, True),
        ("locality", 1.0, True), ("cost", 1.0, True)]
    assert [p.cells()[1:3] for p in app.policies] == [["2.0", "Active"]] + [["1.0", "Active"]] * 4
    assert [p.description for p in app.policies] == [
        "Strongly penalize unhealthy nodes", "Prefer low-latency nodes",
        "Enforce data sovereignty", "Prefer same-region nodes", "Balance cost vs performance"]


def test_T114_empty_title_and_status_bar():
    """T114: empty app title and status bar strings."""
    app = Env().app
    assert app.title_line() == " Federation Gateway v1.0 \u2502 0/0 nodes healthy \u2502 100.0% success "
    assert app.status_bar() == ("Federation Gateway v1.0 \u2502 0/0 nodes healthy \u2502 0.0 req/s "
                                "\u2502 100.0% success")


@pytest.mark.parametrize("rate,colour", [
    (0.99, "green"), (0.985, "yellow"), (0.95, "yellow"), (0.949, "red"), (1.0, "green"),
])
def test_T115_gauge_colour(rate, colour):
    """T115: success gauge colour 0.99 green; 0.985 yellow; 0.95 yellow; 0.949 red."""
    assert gauge_color(rate) == colour


def test_T116_rows():
    """T116: catalog row cells; health row p50 11 ms -> '11ms', P99 '0ms', Queue '0'; Open circuit row -> 'Open', '-', '-', '-'."""
    env = Env()
    env.cat.register("llama-70b-chat", "us-east-gpu-01", "us-east-1", [GEN, CODE])
    assert env.app.catalog_rows() == [
        ["llama-70b-chat", "us-east-gpu-01", "us-east-1", "Generate, Code", "Ready"]]

    env.H.register_node("us-east-gpu-01")
    for _ in range(3):
        env.H.report_success("us-east-gpu-01", millis(45))
    assert env.app.health_rows() == [["us-east-gpu-01", "Healthy", "11ms", "0ms", "0"]]

    for _ in range(5):
        env.CB.record_failure("us-east-gpu-01")
    assert env.app.circuit_rows() == [["us-east-gpu-01", "Open", "-", "-", "-"]]
