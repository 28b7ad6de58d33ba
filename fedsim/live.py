"""``fedsim run --live``: a terminal dashboard over a running World (spec §10, with Q-TUI fixed).

The panels mirror the reference TUI (MODEL CATALOG, NODE HEALTH, ROUTING DECISIONS, CIRCUIT
BREAKERS, GATEWAY STATS, ACTIVE POLICIES, and the title / status line). Unlike the reference,
the figures are computed from what actually happens (Q-TUI):

* requests/s is a real rate: the requests that arrived in the last 10 simulated seconds,
  divided by 10 (by the time since the start while that is shorter);
* circuit rows show the breaker record's failure count, the last failure as "Xs ago" and, for
  an Open circuit, the time left until it may go HalfOpen (``breaker.half_open_at``);
* NODE HEALTH adds the real node's queue depth and in-flight count;
* ROUTING DECISIONS are recorded from the gateways' ``on_attempt`` observers;
* ACTIVE POLICIES are read from each router's policy, strategy and fixes;
* every time comes from the simulation clock (``world.env.now``, ns).

Use::

    dash = LiveDashboard(speed=10)
    try:
        result = World(scenario, seed).run(progress=dash.update)
    finally:
        dash.close()

``update(world)`` redraws (at most ``refresh_per_second`` times per wall second, always for the
last frame) and then sleeps so that simulated time advances at ``speed`` simulated seconds per
wall second. ``speed <= 0`` or ``inf`` runs as fast as possible. ``render(world)`` builds the
frame without side effects.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Optional

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .federation.duration import NS_PER_MS
from .federation.policy import CompositePolicy
from .federation.strategies import strategy_name
from .federation.tui import HEALTH_COLORS, SEP, gauge_color, truncate
from .federation.types import CircuitState, DeploymentStatus, HealthState

__all__ = ["LiveDashboard", "RoutingDecision", "RATE_WINDOW"]

NS_PER_S = 1_000_000_000
RATE_WINDOW = 10 * NS_PER_S
"""Sliding window (simulated ns) of the requests/s figure."""
MAX_LAG = 0.5
"""Wall seconds the pacing may fall behind before it gives up catching up (re-anchors)."""

# Hooks for tests: the wall clock and the sleep used for pacing.
_clock = time.perf_counter
_sleep = time.sleep

_STATUS_COLORS = {DeploymentStatus.READY: "green", DeploymentStatus.LOADING: "yellow",
                  DeploymentStatus.DRAINING: "yellow", DeploymentStatus.REMOVED: "red"}
_CIRCUIT_COLORS = {CircuitState.CLOSED: "green", CircuitState.HALF_OPEN: "yellow",
                   CircuitState.OPEN: "red"}
# Problems first when a panel has more rows than it can show.
_HEALTH_ORDER = {HealthState.UNHEALTHY: 0, HealthState.DEGRADED: 1, HealthState.UNKNOWN: 2,
                 None: 3, HealthState.HEALTHY: 4}
_CIRCUIT_ORDER = {CircuitState.OPEN: 0, CircuitState.HALF_OPEN: 1, CircuitState.CLOSED: 2}
_RICH_HEALTH_COLORS = {k: ("bright_black" if v == "dark_gray" else v)
                       for k, v in HEALTH_COLORS.items()}


@dataclass(slots=True)
class RoutingDecision:
    """One attempt seen by a gateway's ``on_attempt`` observer."""

    time: int            # attempt end (simulated ns)
    gateway: str
    request_id: str
    capability: str
    attempt: int
    node: Optional[str]
    kind: str            # success | failure | circuit_open | route_error
    error: Optional[str]
    latency: int         # ns (0 for skips and routing errors)


def _fmt_s(t_ns: float) -> str:
    """A duration for humans: 850ms, 12.3s, 4m05s."""
    s = t_ns / NS_PER_S
    if s < 1.0:
        return f"{t_ns / NS_PER_MS:.0f}ms"
    if s < 120.0:
        return f"{s:.1f}s"
    m, rest = divmod(int(s), 60)
    return f"{m}m{rest:02d}s"


def _ms(t_ns: int) -> str:
    return f"{t_ns // NS_PER_MS}ms"


def _p99(values) -> Optional[int]:
    """Nearest-rank 99th percentile, or None without samples."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


def _more(n: int) -> Text:
    return Text(f"+{n} more", style="dim italic")


class LiveDashboard:
    """The live view of a World, driven by ``World.run(progress=dashboard.update)``."""

    def __init__(self, speed: float = 10.0, console: Optional[Console] = None,
                 refresh_per_second: float = 8, *, max_rows: Optional[int] = None,
                 history: int = 100, latency_window: int = 100) -> None:
        self.speed = speed
        self.console = console if console is not None else Console()
        self.refresh_per_second = refresh_per_second
        self.max_rows = max_rows
        """Rows per list panel; None: fit a terminal's height (10 when not a terminal)."""
        self.decisions: deque[RoutingDecision] = deque(maxlen=history)
        self._latency_window = latency_window
        self._latencies: dict[tuple[str, str], deque[int]] = {}
        self._arrivals: deque[int] = deque()
        self._world = None
        self._hooks: list[tuple[Any, Any]] = []  # (gateway, original on_attempt)
        self._register_hook = None
        self._live = None
        self._last_draw: Optional[float] = None
        self._draw_cost = 0.0
        self._behind = False
        self._anchor: Optional[tuple[float, int]] = None  # (wall s, simulated ns)
        self._wall_start: Optional[float] = None

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (<= 0 or inf: as fast as possible). Changing it
        mid-run takes effect from the next step."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._speed = value
        self._anchor = None  # re-anchor the pacing at the next step

    # ------------------------------------------------------------------ wiring
    def attach(self, world) -> None:
        """Start observing ``world``: chain each gateway's ``on_attempt`` and the world's
        request registration. ``update`` does this on its first call; calling it before
        ``world.run`` also catches the decisions of the first progress step."""
        if self._world is world:
            return
        self.detach()
        self._world = world
        self.decisions.clear()
        self._latencies.clear()
        now = world.env.now
        # requests that arrived before we were attached (finished ones and those in flight)
        past = [r.arrival for r in world.in_flight.values()]
        if len(world.recorder.requests):
            past.extend(int(round(a * NS_PER_S))
                        for a in world.recorder.requests.frame()["arrival"])
        self._arrivals = deque(sorted(t for t in past if t > now - RATE_WINDOW))
        original_register = world.register
        arrivals = self._arrivals
        env = world.env

        def register(req):
            arrivals.append(env.now)
            return original_register(req)

        world.register = register
        self._register_hook = register
        for name, replica in world.gateways.items():
            gw = replica.gateway
            original = gw.on_attempt
            gw.on_attempt = self._observer(name, original)
            self._hooks.append((gw, original))
        self._anchor = (_clock(), now)
        self._wall_start = _clock()

    def _observer(self, gateway: str, original):
        decisions, latencies, window = self.decisions, self._latencies, self._latency_window

        def on_attempt(ev) -> None:
            if original is not None:
                original(ev)
            node = None if ev.node_id is None else str(ev.node_id)
            latency = ev.end - ev.start
            decisions.append(RoutingDecision(
                ev.end, gateway, str(ev.request.request_id), ev.request.capability.key,
                ev.attempt, node, ev.kind, None if ev.error is None else ev.error.variant,
                latency))
            if ev.kind == "success":
                q = latencies.get((gateway, node))
                if q is None:
                    q = latencies[(gateway, node)] = deque(maxlen=window)
                q.append(latency)

        on_attempt.__wrapped__ = original  # type: ignore[attr-defined]
        return on_attempt

    def detach(self) -> None:
        """Restore the observers and registration of the attached world (its state stays
        available to ``render``)."""
        for gw, original in self._hooks:
            if getattr(gw.on_attempt, "__wrapped__", object()) is original:
                gw.on_attempt = original
        self._hooks.clear()
        world = self._world
        if world is not None and world.__dict__.get("register") is self._register_hook:
            del world.__dict__["register"]
        self._register_hook = None

    # ------------------------------------------------------------------ driving
    def update(self, world) -> None:
        """Progress callback: redraw, then sleep to keep ``speed``."""
        if self._world is not world:
            self.attach(world)
        now = world.env.now
        cutoff = now - RATE_WINDOW
        arrivals = self._arrivals
        while arrivals and arrivals[0] <= cutoff:
            arrivals.popleft()
        final = now >= self._end(world)
        wall = _clock()
        if final or self._last_draw is None or wall - self._last_draw >= self._interval():
            self._draw(world)
            done = _clock()
            self._draw_cost = done - wall
            self._last_draw = done
        self._pace(world)

    def _interval(self) -> float:
        """Wall seconds between frames: 1 / refresh_per_second, stretched while the run is
        not held back by pacing so that drawing takes at most ~10% of the wall time."""
        rps = self.refresh_per_second
        base = 1.0 / rps if rps and rps > 0 else 0.0
        if self._paced() and not self._behind:
            return base
        return max(base, 9.0 * self._draw_cost)

    def _paced(self) -> bool:
        speed = self.speed
        return speed is not None and speed > 0 and not math.isinf(speed)

    def _draw(self, world) -> None:
        frame = self.render(world)
        if self._live is None:
            from rich.live import Live

            self._live = Live(frame, console=self.console, auto_refresh=False,
                              transient=False)
            self._live.start(refresh=True)
        else:
            self._live.update(frame, refresh=True)

    def _pace(self, world) -> None:
        if not self._paced():
            return
        speed = self.speed
        if self._anchor is None:
            self._anchor = (_clock(), world.env.now)
        wall0, sim0 = self._anchor
        target = wall0 + (world.env.now - sim0) / NS_PER_S / speed
        delay = target - _clock()
        self._behind = delay <= 0
        if delay < -MAX_LAG:  # the simulation cannot keep up: do not burst to catch up later
            self._anchor = (_clock(), world.env.now)
        elif delay > 0:
            _sleep(delay)

    def close(self) -> None:
        """Draw the last state (e.g. after Ctrl-C), stop the live display, restore hooks."""
        try:
            if self._live is not None:
                if self._world is not None:
                    self._live.update(self.render(self._world), refresh=True)
                self._live.stop()
        finally:
            self._live = None
            self.detach()

    def __enter__(self) -> "LiveDashboard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ figures
    @staticmethod
    def _end(world) -> int:
        return int(round(world.scenario.duration * NS_PER_S))

    def requests_per_second(self, world) -> float:
        """Requests that arrived in the last RATE_WINDOW simulated ns, per second (over the
        time since the start while that is shorter)."""
        now = world.env.now
        span = min(now, RATE_WINDOW)
        if span <= 0:
            return 0.0
        cutoff = now - RATE_WINDOW
        if self._world is world:
            n = len(self._arrivals)
            for t in self._arrivals:  # sorted: only the stale head is skipped
                if t > cutoff:
                    break
                n -= 1
        else:  # not attached: count from the world's records
            n = sum(1 for r in world.in_flight.values() if r.arrival > cutoff)
            if len(world.recorder.requests):
                arr = world.recorder.requests.frame()["arrival"]
                n += int((arr > cutoff / NS_PER_S).sum())
        return n / (span / NS_PER_S)

    @staticmethod
    def totals(world) -> tuple[int, int, int]:
        """(total, successful, failed) over every gateway's stats."""
        total = ok = failed = 0
        for replica in world.gateways.values():
            s = replica.gateway.stats()
            total += s.total_requests
            ok += s.successful_requests
            failed += s.failed_requests
        return total, ok, failed

    @staticmethod
    def success_rate(ok: int, failed: int) -> float:
        """Successful over finished requests (1.0 before any finishes). The reference divides
        by total_requests, which counts requests still in flight as not successful."""
        done = ok + failed
        return 1.0 if done == 0 else ok / done

    @staticmethod
    def node_counts(world) -> tuple[int, int]:
        """(healthy, monitored): nodes registered with any gateway's health checker, and those
        of them Healthy in every gateway that monitors them (with one gateway: the reference's
        healthy_count / total_count)."""
        verdict: dict[str, bool] = {}
        for replica in world.gateways.values():
            for st in replica.health.all_statuses():
                n = str(st.node_id)
                verdict[n] = verdict.get(n, True) and st.state is HealthState.HEALTHY
        return sum(verdict.values()), len(verdict)

    # ------------------------------------------------------------------ rendering
    def _rows(self) -> int:
        if self.max_rows is not None:
            return max(self.max_rows, 1)
        con = self.console
        if not con.is_terminal:
            return 10
        # title 3 + stats/policies row ~12; two list rows of (borders 2 + header 1 + more 1)
        return max(3, (con.size.height - 15) // 2 - 4)

    def render(self, world):
        """The whole frame for ``world`` (no side effects on the world)."""
        rows = self._rows()
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(self._catalog_panel(world, rows), self._health_panel(world, rows))
        grid.add_row(self._routing_panel(world, rows), self._circuit_panel(world, rows))
        grid.add_row(self._stats_panel(world), self._policies_panel(world))
        return Group(self._title_panel(world), grid)

    def status_line(self, world) -> str:
        healthy, monitored = self.node_counts(world)
        _, ok, failed = self.totals(world)
        return (f"Federation Gateway v1.0 {SEP} {healthy}/{monitored} nodes healthy {SEP} "
                f"{self.requests_per_second(world):.1f} req/s {SEP} "
                f"{self.success_rate(ok, failed) * 100:.1f}% success")

    def _title_panel(self, world) -> Panel:
        now = world.env.now
        end = self._end(world)
        pace = f"{self.speed:g}x" if self._paced() else "max"
        extra = f" {SEP} t={_fmt_s(now)} / {_fmt_s(end)} {SEP} speed {pace}"
        if self._world is world and self._wall_start is not None:
            extra += f" (wall {_clock() - self._wall_start:.1f}s)"
        text = Text(self.status_line(world), style="bold")
        text.append(extra, style="cyan")
        total, ok, failed = self.totals(world)
        counts = f" {total} started · {ok + failed} done · {total - ok - failed} in flight "
        return Panel(text, box=box.ROUNDED, padding=(0, 1), subtitle=counts,
                     subtitle_align="right")
        return Panel(text, box=box.ROUNDED, padding=(0, 1))

    @staticmethod
    def _table(*columns: str) -> Table:
        t = Table(box=None, expand=True, show_edge=False, pad_edge=False, header_style="bold")
        for c in columns:
            t.add_column(c, no_wrap=True, overflow="ellipsis")
        return t

    def _catalog_panel(self, world, rows: int) -> Panel:
        replica = next(iter(world.gateways.values()), None)
        entries = [] if replica is None else replica.catalog.all_entries()
        total = sum(len(e.deployments) for e in entries)
        if total == 0:
            body: Any = Text("No models registered.", style="dim")
        else:
            t = self._table("Model", "Node", "Region", "Capabilities", "Status")

            def cells():
                for e in entries:
                    caps = ", ".join(c.debug_name for c in e.metadata.capabilities)
                    for d in e.deployments:
                        yield e, d, caps

            for e, d, caps in islice(cells(), rows):
                t.add_row(str(e.model_id), str(d.node_id), str(d.region_id), caps,
                          Text(d.status.debug_name, style=_STATUS_COLORS.get(d.status, "")))
            if total > rows:
                t.add_row(_more(total - rows))
            body = t
        return Panel(body, title=" MODEL CATALOG ", title_align="left")

    def _health_panel(self, world, rows: int) -> Panel:
        items = []
        for gname, replica in world.gateways.items():
            real = replica.fixes.real_health_metrics
            statuses = {str(s.node_id): s for s in replica.health.all_statuses()}
            for node_id, node in world.nodes.items():
                st = statuses.get(node_id)
                items.append((_HEALTH_ORDER[None if st is None else st.state], gname, node_id,
                              node, st, real))
        items.sort(key=lambda x: x[0])  # stable: problems first, then gateway / node order
        t = self._table("Gateway", "Node", "State", "P50", "P99", "Queue", "In-flight")
        for _, gname, node_id, node, st, real in items[:rows]:
            name = Text(node_id)
            if not node.up:
                name.append(" (down)", style="bold red")
            if st is None:
                state = Text("unmonitored", style="dim")
                p50 = "-"
            else:
                state = Text(st.state.debug_name, style=_RICH_HEALTH_COLORS[st.state])
                p50 = _ms(st.latency_p50)
            if st is not None and real:
                p99 = _ms(st.latency_p99)
            else:  # the reference's p99 is always 0: measure it from the attempts we saw
                v = _p99(self._latencies.get((gname, node_id), ()))
                p99 = "-" if v is None else _ms(v)
            t.add_row(gname, name, state, p50, p99, str(node.queue_depth), str(node.in_flight))
        if len(items) > rows:
            t.add_row(_more(len(items) - rows))
        body: Any = t if items else Text("No nodes.", style="dim")
        return Panel(body, title=" NODE HEALTH ", title_align="left")

    def _routing_panel(self, world, rows: int) -> Panel:
        if not self.decisions:
            return Panel(Text("No routing decisions recorded yet.", style="dim"),
                         title=" ROUTING DECISIONS ", title_align="left")
        t = self._table("Time", "Gateway", "Request", "Capability", "Try", "Selected", "Outcome")
        for d in islice(reversed(self.decisions), rows):
            if d.kind == "success":
                outcome = Text(f"ok {_ms(d.latency)}", style="green")
            elif d.kind == "failure":
                outcome = Text(f"failed {d.error} {_ms(d.latency)}", style="red")
            elif d.kind == "circuit_open":
                outcome = Text("skipped: circuit open", style="yellow")
            else:
                outcome = Text(f"no route: {d.error}", style="red")
            t.add_row(f"{d.time / NS_PER_S:.2f}s", d.gateway, truncate(d.request_id, 16),
                      d.capability, str(d.attempt + 1), d.node or "-", outcome)
        return Panel(t, title=" ROUTING DECISIONS ", title_align="left")

    def circuit_rows(self, world) -> list[list[str]]:
        """[gateway, node, state, failures, last failure, reset in] per breaker record, Open
        first. Reset In: time left until an Open circuit may go HalfOpen ("due" when that
        time has passed but no request has asked yet), "-" for other states."""
        now = world.env.now
        items = []
        for gname, replica in world.gateways.items():
            br = replica.breaker
            for node_id, rec in br.records():
                last = "-" if rec.last_failure is None else f"{_fmt_s(now - rec.last_failure)} ago"
                reset = "-"
                if rec.state is CircuitState.OPEN:
                    at = br.half_open_at(node_id)
                    if at is not None:
                        reset = _fmt_s(at - now) if at > now else "due"
                items.append((_CIRCUIT_ORDER[rec.state],
                              [gname, str(node_id), rec.state.debug_name, str(rec.failures),
                               last, reset]))
        items.sort(key=lambda x: x[0])
        return [cells for _, cells in items]

    def _circuit_panel(self, world, rows: int) -> Panel:
        all_rows = self.circuit_rows(world)
        if not all_rows:
            return Panel(Text("No circuit breakers active.", style="dim"),
                         title=" CIRCUIT BREAKERS ", title_align="left")
        t = self._table("Gateway", "Node", "State", "Failures", "Last Failure", "Reset In")
        states = {s.debug_name: s for s in CircuitState}
        for g, n, state, failures, last, reset in all_rows[:rows]:
            t.add_row(g, n, Text(state, style=_CIRCUIT_COLORS[states[state]]), failures, last,
                      reset)
        if len(all_rows) > rows:
            t.add_row(_more(len(all_rows) - rows))
        return Panel(t, title=" CIRCUIT BREAKERS ", title_align="left")

    def _stats_panel(self, world) -> Panel:
        names = list(world.gateways)
        shown = names[:3]
        stats = {n: world.gateways[n].gateway.stats() for n in names}
        cols = [("all", list(stats.values()))] if len(names) > 1 else []
        cols = [(n, [stats[n]]) for n in shown] + cols
        t = self._table("", *[n for n, _ in cols])
        t.expand = False
        for i in range(1, len(cols) + 1):
            t.columns[i].justify = "right"

        def agg(group, attr):
            return sum(getattr(s, attr) for s in group)

        def avg_latency(group):
            ok = agg(group, "successful_requests")
            return "0ms" if ok == 0 else _ms(
                sum(s.avg_latency * s.successful_requests for s in group) // ok)

        def rate(group):
            return self.success_rate(agg(group, "successful_requests"),
                                     agg(group, "failed_requests"))

        lines = [
            ("Total Requests", lambda g: str(agg(g, "total_requests"))),
            ("Successful", lambda g: str(agg(g, "successful_requests"))),
            ("Failed", lambda g: str(agg(g, "failed_requests"))),
            ("In Flight", lambda g: str(agg(g, "total_requests") - agg(g, "successful_requests")
                                        - agg(g, "failed_requests"))),
            ("Total Tokens", lambda g: str(agg(g, "total_tokens"))),
            ("Avg Latency", avg_latency),
            ("Active Streams", lambda g: str(agg(g, "active_streams"))),
        ]
        if len(cols) > 1:
            lines.append(("Success Rate", lambda g: Text(f"{rate(g) * 100:.1f}%",
                                                          style=gauge_color(rate(g)))))
        for label, fn in lines:
            t.add_row(label + ":", *[fn(g) for _, g in cols])
        total, ok, failed = self.totals(world)
        r = self.success_rate(ok, failed)
        colour = gauge_color(r)
        gauge = Table.grid(expand=True, padding=(0, 1))
        gauge.add_column(no_wrap=True)
        gauge.add_column(ratio=1)
        gauge.add_column(no_wrap=True)
        gauge.add_row("Success Rate",
                      ProgressBar(total=1.0, completed=r, complete_style=colour,
                                  finished_style=colour),
                      Text(f"{r * 100:.1f}%", style=f"bold {colour}"))
        parts: list[Any] = [t, gauge]
        if len(names) > len(shown):
            parts.insert(1, _more(len(names) - len(shown)))
        return Panel(Group(*parts), title=" GATEWAY STATS ", title_align="left")

    @staticmethod
    def policy_rows(router) -> list[list[str]]:
        """[policy, weight, settings] for the router's actual policy (a composite's members)."""
        policy = router.policy
        members = policy.policies if isinstance(policy, CompositePolicy) else [policy]
        rows = []
        for p in members:
            name = getattr(p, "name", None) or type(p).__name__
            weight = getattr(p, "weight", None)
            rows.append([str(name), "-" if weight is None else f"{weight:.1f}",
                         _policy_settings(p)])
        return rows

    def _policies_panel(self, world) -> Panel:
        groups: dict[tuple, list[str]] = {}
        for gname, replica in world.gateways.items():
            router = replica.router
            fixes = router.fixes
            on = [f for f in fixes.names() if getattr(fixes, f)]
            key = (tuple(map(tuple, self.policy_rows(router))), type(router.policy).__name__,
                   strategy_name(router.config.strategy), tuple(on))
            groups.setdefault(key, []).append(gname)
        parts: list[Any] = []
        for (rows, kind, strategy, on), gws in groups.items():
            if len(groups) > 1:
                parts.append(Text(", ".join(gws), style="bold"))
            t = self._table("Policy", "Weight", "Status", "Settings")
            for name, weight, settings in rows:
                t.add_row(name, weight, Text("Active", style="green"), settings)
            if not rows:
                t.add_row(Text("(none: every candidate scores 1.0)", style="dim"))
            parts.append(t)
            combine = "mean of members" if kind == "CompositePolicy" else kind
            parts.append(Text.assemble(("Combined: ", "bold"), combine, "   ",
                                       ("Strategy: ", "bold"), strategy))
            parts.append(Text.assemble(("Fixes: ", "bold"),
                                       ", ".join(on) if on else "none (reference behaviour)"))
        return Panel(Group(*parts), title=" ACTIVE POLICIES ", title_align="left")


def _policy_settings(p) -> str:
    """The policy's parameters other than weight, briefly."""
    out = []
    for attr in getattr(type(p), "__slots__", ()):
        if attr in ("weight", "fixes", "policies") or attr.startswith("_"):
            continue
        v = getattr(p, attr, None)
        if isinstance(v, dict):
            out.append(f"{attr}: {len(v)} regions")
        elif attr.endswith("latency") and isinstance(v, int):
            out.append(f"{attr}={_ms(v)}")
        elif isinstance(v, float):
            out.append(f"{attr}={v:g}")
        elif v is not None:
            out.append(f"{attr}={v}")
    return ", ".join(out)
