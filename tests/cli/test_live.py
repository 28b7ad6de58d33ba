"""``fedsim run --live``: the LiveDashboard's panels and figures (spec §10 with Q-TUI fixed),
its pacing, and that watching a run does not change it."""

from __future__ import annotations

import io
import re
import time

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from rich.console import Console

import fedsim.live as live
from fedsim.live import LiveDashboard
from fedsim.world import Scenario, World

MODELS = [{"model": "llm", "capabilities": ["generate"]}]
DURATION = 30.0
CRASH_AT = 10.0
RESET = 30.0  # breaker reset_timeout (default)
TITLES = ["MODEL CATALOG", "NODE HEALTH", "ROUTING DECISIONS", "CIRCUIT BREAKERS",
          "GATEWAY STATS", "ACTIVE POLICIES"]


def scenario(duration=DURATION, **router) -> Scenario:
    """Three monitored GPU nodes and one node ("bare") the health checker does not know, so
    only its circuit breaker reacts when it crashes at 10 s. No retries: the crash shows up
    as failed requests."""
    r = {"strategy": "random", "gateway": {"max_retries": 0}}
    r.update(router)
    service = {"*": {"kind": "exponential", "mean": 0.05}}
    return Scenario(
        duration=duration, regions=[{"id": "eu"}], network={"intra_region_rtt": 0.0},
        nodes=[{"name": "gpu", "region": "eu", "count": 3, "gpus": 2, "models": MODELS,
                "service": service},
               {"name": "bare", "region": "eu", "count": 1, "gpus": 2, "models": MODELS,
                "register_health": False, "service": service}],
        workloads=[{"arrival": {"kind": "poisson", "rate": 20}}],
        router=r, faults=[{"kind": "crash", "target": "bare", "at": CRASH_AT}])


def quiet_console(**kw) -> Console:
    return Console(file=io.StringIO(), width=160, force_terminal=False, **kw)


def text_of(renderable, **kw) -> str:
    con = quiet_console(**kw)
    con.print(renderable)
    return con.file.getvalue()


def plain(df):
    out = df.reset_index(drop=True).copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


@pytest.fixture(scope="module")
def watched():
    """A run with the dashboard as its progress callback, plus per-step checks of the
    requests/s figure against the world's own arrival counter."""
    world = World(scenario(), seed=5)
    dash = LiveDashboard(speed=0, console=quiet_console())
    started = {}   # simulated ns -> requests started by then
    shown = {}     # simulated ns -> dashboard figure

    def progress(w):
        dash.update(w)
        started[w.env.now] = w.requests_started
        shown[w.env.now] = dash.requests_per_second(w)

    result = world.run(progress=progress, step=0.5)
    dash.close()
    return world, dash, result, started, shown


def test_frame_has_every_panel_and_the_status_line(watched):
    world, dash, result, _, _ = watched
    text = text_of(dash.render(world))
    for title in TITLES:
        assert title in text
    assert "Federation Gateway v1.0 \u2502 3/3 nodes healthy \u2502 " in text
    assert "t=30.0s / 30.0s" in text and "speed max" in text
    # the non-terminal console got the final frame once, when the dashboard closed
    out = dash.console.file.getvalue()
    assert out.count("CIRCUIT BREAKERS") == 1 and "t=30.0s / 30.0s" in out


def test_requests_per_second_is_a_sliding_window_rate(watched):
    world, dash, result, started, shown = watched
    # end of run, independently from the request table: arrivals in the last 10 s / 10
    arrivals = result.requests["arrival"]
    n = int((arrivals > DURATION - 10.0).sum())
    assert 100 < n < 300
    text = text_of(dash.render(world))
    assert f"\u2502 {n / 10.0:.1f} req/s \u2502" in text
    assert dash.requests_per_second(world) == pytest.approx(n / 10.0)
    # during the run: since the start while shorter than 10 s, then the last 10 s
    step = 500_000_000
    for t, value in shown.items():
        if t <= 10 * 10**9:
            expected = started[t] / (t / 1e9)
        else:
            expected = (started[t] - started[t - 20 * step]) / 10.0
        assert value == pytest.approx(expected), t
    # not the reference's total / 60
    assert dash.requests_per_second(world) != pytest.approx(len(result.requests) / 60.0)


def test_success_rate_and_stats_match_the_gateway(watched):
    world, dash, result, _, _ = watched
    s = result.gateway_stats["gw-eu"]
    assert s.failed_requests >= 5  # the crash, without retries
    rate = s.successful_requests / (s.successful_requests + s.failed_requests)
    assert rate < 1.0
    text = text_of(dash.render(world))
    assert f"\u2502 {rate * 100:.1f}% success" in text
    for label, value in [("Total Requests:", s.total_requests),
                         ("Successful:", s.successful_requests),
                         ("Failed:", s.failed_requests), ("Total Tokens:", s.total_tokens),
                         ("Avg Latency:", f"{s.avg_latency // 1_000_000}ms")]:
        assert re.search(rf"{label}\s+{value}\b", text), label
    assert s.successful_requests == (result.requests["status"] == "success").sum()


def test_circuit_row_shows_open_with_failures_last_failure_and_reset_in(watched):
    world, dash, result, _, _ = watched
    a = result.attempts
    on_bare = a[a["node"] == "bare"]
    last_ok = on_bare.loc[on_bare["kind"] == "success", "end"].max()
    fails = on_bare[(on_bare["kind"] == "failure") & (on_bare["end"] > last_ok)]
    assert len(fails) >= 5  # threshold 5 opens the circuit
    rec = world.gateways["gw-eu"].breaker.record("bare")
    assert rec.state.debug_name == "Open" and rec.failures == len(fails)
    last = fails["end"].max()
    ago = DURATION - last
    reset_in = last + RESET - DURATION  # reference: lazy timer from the last failure
    assert 0 < reset_in < RESET
    text = text_of(dash.render(world))
    m = re.search(r"gw-eu\s+bare\s+Open\s+(\d+)\s+(\S+) ago\s+(\S+)", text)
    assert m, text
    assert int(m.group(1)) == len(fails)
    assert m.group(2) == f"{ago:.1f}s"
    assert m.group(3) == f"{reset_in:.1f}s"
    # monitored nodes are Closed with a count and "-" for reset
    assert re.search(r"gw-eu\s+gpu-\d\s+Closed\s+\d+\s+\S+.*?\s+-\s", text)
    # NODE HEALTH: the unmonitored crashed node is shown as such, with the real node's figures
    assert re.search(r"gw-eu\s+bare \(down\)\s+unmonitored\s+-\s+\d+ms\s+0\s+0", text)
    assert len(re.findall(r"gw-eu\s+gpu-\d\s+Healthy\s+\d+ms\s+\d+ms\s+\d+\s+\d+", text)) == 3


def test_routing_decisions_come_from_the_gateway(watched):
    world, dash, result, _, _ = watched
    a = result.attempts
    assert len(dash.decisions) == dash.decisions.maxlen
    newest = dash.decisions[-1]
    last = a.iloc[-1]
    assert newest.attempt == last["attempt"] and newest.node == last["node"]
    assert newest.request_id == result.requests.set_index("request").loc[last["request"], "id"]
    text = text_of(dash.render(world))
    line = next(ln for ln in text.splitlines() if newest.request_id in ln)
    assert newest.node in line and "generate" in line and "ok " in line
    # the bounded history is exactly the last attempts the gateway recorded, in order
    ids = result.requests.set_index("request")["id"]
    tail = a.iloc[-len(dash.decisions):]
    assert [(d.request_id, d.attempt, d.node, d.kind, d.error) for d in dash.decisions] == [
        (ids[r.request], r.attempt, None if pd.isna(r.node) else r.node, r.kind,
         None if pd.isna(r.error) else r.error) for r in tail.itertuples()]
    assert [d.time for d in dash.decisions] == [round(e * 1e9) for e in tail["end"]]


def test_watching_does_not_change_the_run_and_hooks_are_restored(watched):
    world, dash, result, _, _ = watched
    replica = world.gateways["gw-eu"]
    assert replica.gateway.on_attempt == world.attempt
    assert "register" not in world.__dict__
    plain_run = World(scenario(), seed=5).run()
    for name in ("requests", "attempts", "events"):
        assert_frame_equal(plain(getattr(result, name)), plain(getattr(plain_run, name)))
    assert result.gateway_stats == plain_run.gateway_stats


def test_policies_panel_reads_the_router():
    sc = scenario(duration=2.0, strategy="round_robin",
                  policy=[{"kind": "latency", "weight": 2.5}, {"kind": "health", "weight": 0.5}],
                  fixes=["retry_excludes_tried", "eager_half_open"])
    world = World(sc, seed=1)
    dash = LiveDashboard(speed=0, console=quiet_console())
    world.run(progress=dash.update)
    dash.close()
    text = text_of(dash.render(world))
    assert re.search(r"latency\s+2\.5\s+Active\s+max_latency=5000ms", text)
    assert re.search(r"health\s+0\.5\s+Active", text)
    assert "locality" not in text.split("ACTIVE POLICIES")[1]
    assert "Strategy: round_robin" in text
    assert "Fixes: retry_excludes_tried, eager_half_open" in text or \
        "Fixes: eager_half_open, retry_excludes_tried" in text


def test_large_lists_show_first_rows_and_a_more_line(watched):
    world, _, _, _, _ = watched
    dash = LiveDashboard(speed=0, console=quiet_console(), max_rows=2)
    text = text_of(dash.render(world))  # never attached: figures from the world's records
    assert "+2 more" in text  # catalog: 4 deployments, health: 4 nodes, circuits: 4 records
    assert re.search(r"gw-eu\s+bare\s+Open", text)  # Open circuits come first
    assert "No routing decisions recorded yet." in text


def test_terminal_frame_fits_the_screen():
    world = World(scenario(duration=5.0), seed=2)
    con = Console(file=io.StringIO(), width=160, height=40, force_terminal=True)
    dash = LiveDashboard(speed=0, console=con)
    world.run(progress=dash.update)
    dash.close()
    assert "CIRCUIT BREAKERS" in con.file.getvalue()
    frame = Console(file=io.StringIO(), width=160, force_terminal=False)
    frame.print(dash.render(world))
    assert len(frame.file.getvalue().splitlines()) <= 40


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def test_pacing_sleeps_add_up_to_simulated_time_over_speed(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(live, "_clock", clock.now)
    monkeypatch.setattr(live, "_sleep", clock.sleep)
    world = World(scenario(duration=2.0), seed=3)
    dash = LiveDashboard(speed=100, console=quiet_console())
    world.run(progress=dash.update)  # 200 steps of 10 ms simulated
    dash.close()
    # anchored at the first step: 199 steps of 10 ms at 100x
    assert len(clock.sleeps) == 199
    assert sum(clock.sleeps) == pytest.approx(1.99 / 100)
    assert all(s == pytest.approx(1e-4) for s in clock.sleeps)


@pytest.mark.parametrize("speed", [0, -1, float("inf")])
def test_speed_zero_or_infinite_never_sleeps(monkeypatch, speed):
    calls = []
    monkeypatch.setattr(live, "_sleep", calls.append)
    world = World(scenario(duration=1.0), seed=3)
    dash = LiveDashboard(speed=speed, console=quiet_console())
    world.run(progress=dash.update)
    dash.close()
    assert calls == []


def test_pacing_in_real_time():
    world = World(scenario(duration=2.0), seed=3)
    dash = LiveDashboard(speed=100, console=quiet_console())
    t0 = time.perf_counter()
    world.run(progress=dash.update)
    wall = time.perf_counter() - t0
    dash.close()
    assert wall >= 1.99 / 100


def test_crash_failures_are_recorded_as_decisions():
    world = World(scenario(duration=12.0), seed=5)
    dash = LiveDashboard(speed=0, console=quiet_console(), history=100_000)
    result = world.run(progress=dash.update)
    dash.close()
    bare = [d for d in dash.decisions if d.node == "bare" and d.kind == "failure"]
    assert bare and {d.error for d in bare} == {"NodeUnreachable"}
    assert all(d.time >= CRASH_AT * 1e9 for d in bare)
    # attached at the first step: every attempt of every request that started later is there
    first_step = 12.0 / 200
    req = result.requests
    later = set(req.loc[req["arrival"] > first_step, "request"])
    a = result.attempts
    assert len(dash.decisions) == a["request"].isin(later).sum() > 200


def test_ctrl_c_keeps_the_last_state_on_screen():
    world = World(scenario(), seed=5)
    con = quiet_console()
    dash = LiveDashboard(speed=0, console=con)

    def ctrl_c():  # "pressed" between two progress steps (every 0.15 s)
        yield world.env.timeout(7_777_000_000)
        raise KeyboardInterrupt

    world.env.process(ctrl_c())
    result = world.run(progress=dash.update)
    dash.close()
    assert result.interrupted and result.simulated_seconds == pytest.approx(7.777)
    out = con.file.getvalue()
    # close() drew the state at the interrupt, not the last progress step (7.65 s)
    assert out.count("GATEWAY STATS") == 1 and "t=7.8s / 30.0s" in out
