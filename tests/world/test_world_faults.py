"""fedsim.world faults: every fault kind shows its documented effect, the router reacts as the
reference does (health / breaker), and Q-NORECOVER plays out in simulated time.

Worlds use ``intra_region_rtt=0`` (and explicit cross-region RTTs) so attempt start / end
times can be related exactly to fault times.  Where a fault should be observed over many
attempts, the health and breaker thresholds are raised out of reach so the router keeps
sending traffic to the faulty node (otherwise the reference would drop it for good after
three failures, Q-NORECOVER).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from fedsim.world import Scenario, run

MODELS = [{"model": "llm", "capabilities": ["generate"]}]
NEVER = 10 ** 6  # a failure threshold the runs below cannot reach
EPS = 1e-9       # DataFrame times are ns / 1e9


def world(*, duration=60.0, count=3, gpus=2, mean=0.05, rate=20.0, router=None, faults=(),
          node=None, **extra) -> Scenario:
    grp = {"name": "gpu", "region": "eu", "count": count, "gpus": gpus, "models": MODELS,
           "service": {"*": {"kind": "exponential", "mean": mean}}}
    grp.update(node or {})
    return Scenario(duration=duration, regions=[{"id": "eu"}], network={"intra_region_rtt": 0.0},
                    nodes=[grp], workloads=[{"arrival": {"kind": "poisson", "rate": rate}}],
                    router=router or {}, faults=list(faults), **extra)


def sticky(strategy="random", **more):
    """A router that keeps routing to a failing node (thresholds out of reach)."""
    r = {"strategy": strategy, "min_score": 0.0,
         "health": {"failure_threshold": NEVER, "degraded_latency": 1e6},
         "breaker": {"failure_threshold": NEVER}}
    r.update(more)
    return r


def two_regions(*, duration=60.0, rate=20.0, mean=0.05, router=None, faults=(), rtt=0.02,
                **extra) -> Scenario:
    return Scenario(
        duration=duration,
        regions=[{"id": "eu"}, {"id": "us"}],
        network={"intra_region_rtt": 0.0, "rtt": {"eu": {"us": rtt}}, **extra.pop("network", {})},
        nodes=[{"name": "eu", "region": "eu", "count": 2, "gpus": 2, "models": MODELS,
                "service": {"*": {"kind": "exponential", "mean": mean}}},
               {"name": "us", "region": "us", "count": 2, "gpus": 2, "models": MODELS,
                "service": {"*": {"kind": "exponential", "mean": mean}}}],
        workloads=[{"arrival": {"kind": "poisson", "rate": rate}}],
        router=router or {"strategy": "random", "min_score": 0.0},
        faults=list(faults), **extra)


def plain(df):
    """Categorical columns as plain objects (category lists differ between runs), index reset."""
    out = df.reset_index(drop=True).copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


def hot_node(result, t0, window=5.0):
    """The node the (least-latency) router was sending traffic to just before t0."""
    a = result.attempts
    a = a[(a["start"] >= t0 - window) & (a["start"] < t0)]
    return str(a["node"].value_counts().idxmax())


def fault_events(result):
    e = result.events
    return e[e["category"] == "fault"].reset_index(drop=True)


def health_events(result, node, gateway=None):
    e = result.events
    e = e[(e["category"] == "health") & (e["subject"] == node)]
    if gateway is not None:
        e = e[e["source"] == gateway]
    return e.reset_index(drop=True)


# =========================================================================== crash

T0, DUR = 20.0, 10.0


@pytest.fixture(scope="module")
def reference_baseline():
    """Reference router (least_latency, no fixes), no faults; 3 nodes, 20 req/s."""
    r = run(world(duration=90.0), seed=3)
    return r, hot_node(r, T0)


def test_crash_fails_in_flight_refuses_new_and_marks_unhealthy(reference_baseline):
    base, hot = reference_baseline
    r = run(world(duration=90.0, faults=[{"kind": "crash", "target": hot, "at": T0,
                                          "duration": DUR}]), seed=3)
    a, b = r.attempts, base.attempts
    # before the crash both runs are the same run
    assert_frame_equal(plain(a[a["end"] < T0]), plain(b[b["end"] < T0]))

    # in flight on the node at the crash instant: exactly the baseline's attempts spanning T0
    spanning = b[(b["node"] == hot) & (b["start"] < T0) & (b["end"] > T0)]
    assert len(spanning) >= 1, "scenario must have requests in the node at the crash"
    cif = a[a["detail"] == "crashed_in_flight"]
    assert set(cif["request"]) == set(spanning["request"])
    assert (cif["node"] == hot).all() and (cif["kind"] == "failure").all()
    assert (cif["error"] == "NodeUnreachable").all()
    assert ((cif["end"] - T0).abs() < EPS).all()

    # new arrivals during the crash are refused at once
    during = a[(a["node"] == hot) & (a["start"] >= T0) & (a["start"] < T0 + DUR)]
    assert len(during) >= 1
    assert (during["kind"] == "failure").all()
    assert (during["detail"] == "crashed").all()
    assert ((during["end"] - during["start"]).abs() < EPS).all()
    # no success on the node overlaps the crash
    ok = a[(a["node"] == hot) & (a["kind"] == "success")]
    assert ((ok["end"] <= T0 + EPS) | (ok["start"] >= T0 + DUR)).all()

    # health: Degraded at the first failure, Unhealthy at the third (failure_threshold = 3)
    fails = a[(a["node"] == hot) & (a["kind"] == "failure")].sort_values("end", kind="stable")
    assert len(fails) >= 3
    h = health_events(r, hot, "gw-eu")
    h = h[h["time"] >= T0].reset_index(drop=True)
    assert list(h["new"][:2]) == ["Degraded", "Unhealthy"]
    assert h["time"][0] == pytest.approx(fails["end"].iloc[0], abs=EPS)
    assert h["time"][1] == pytest.approx(fails["end"].iloc[2], abs=EPS)
    # the victims were retried and served elsewhere
    victims = r.requests.set_index("request").loc[sorted(set(fails["request"]))]
    assert (victims["status"] == "success").all()
    assert (victims["node"] != hot).all()
    assert (victims["attempts"] >= 2).all()


def test_crash_fault_events(reference_baseline):
    _, hot = reference_baseline
    r = run(world(duration=90.0, faults=[{"kind": "crash", "target": hot, "at": T0,
                                          "duration": DUR}]), seed=3)
    ev = fault_events(r)
    assert list(ev["time"]) == pytest.approx([T0, T0 + DUR])
    assert list(ev["old"]) == ["start", "end"]
    assert set(ev["source"]) == {"crash"} and set(ev["subject"]) == {hot}
    ts = r.timeseries
    node_ts = ts[ts["node"] == hot]
    inside = node_ts[(node_ts["time"] > T0) & (node_ts["time"] < T0 + DUR)]
    outside = node_ts[(node_ts["time"] < T0) | (node_ts["time"] > T0 + DUR)]
    assert len(inside) > 0 and not inside["up"].any()
    assert outside["up"].all()
    assert ts[ts["node"] != hot]["up"].all()


# =========================================================================== hang


def test_hang_without_timeout_fix_leaves_requests_in_flight(reference_baseline):
    _, hot = reference_baseline
    duration = 60.0
    r = run(world(duration=duration, faults=[{"kind": "hang", "target": hot, "at": T0,
                                              "duration": DUR}]), seed=3)
    req = r.requests
    stuck = req[(req["status"] == "in_flight") & (req["arrival"] < duration - 1.0)]
    # the reference never times an execution out (Q-TIMEOUT): the black hole keeps them
    assert len(stuck) >= 20
    assert stuck["arrival"].between(T0, T0 + DUR).all()
    assert (stuck["attempts"] == 0).all()  # no attempt ever completed
    # the hung node never reports, so the router never learns anything about it
    a = r.attempts
    assert not ((a["node"] == hot) & (a["kind"] != "success")).any()
    assert health_events(r, hot)["time"].max() < T0
    # the node itself still holds them after the hang ended
    ts = r.timeseries
    last = ts[(ts["node"] == hot) & (ts["time"] == ts["time"].max())]
    assert int(last["in_flight"].iloc[0]) >= len(stuck)


def test_hang_with_inference_timeout_fix_times_out_and_retries(reference_baseline):
    _, hot = reference_baseline
    duration, timeout = 60.0, 0.5
    r = run(world(duration=duration,
                  router={"fixes": ["inference_timeout"], "gateway": {"inference_timeout": timeout}},
                  faults=[{"kind": "hang", "target": hot, "at": T0, "duration": DUR}]), seed=3)
    a, req = r.attempts, r.requests
    on_hot = a[(a["node"] == hot) & (a["start"] >= T0) & (a["start"] < T0 + DUR)]
    assert len(on_hot) >= 3
    assert (on_hot["kind"] == "failure").all()
    assert (on_hot["error"] == "Timeout").all()
    assert (on_hot["detail"] == "timeout").all()
    timed_out = a[a["detail"] == "timeout"]
    assert (timed_out["error"] == "Timeout").all()
    assert ((timed_out["end"] - timed_out["start"] - timeout).abs() < EPS).all()
    # nothing stays stuck: every request that had time for its 4 attempts finished
    # (4 x 0.5 s timeouts + 0.1 + 0.2 + 0.3 s reference backoff = 2.6 s)
    early = req[req["arrival"] < duration - 3.0]
    assert (early["status"] != "in_flight").all()
    hit = req.set_index("request").loc[sorted(set(on_hot["request"]))]
    assert (hit["status"] == "success").all()
    assert (hit["node"] != hot).all()


# =========================================================================== slow / throttle


@pytest.mark.parametrize("kind,factor,scale", [("slow", 5.0, 5.0), ("gpu_throttle", 0.5, 2.0),
                                               ("gpu_throttle", 0.25, 4.0)])
def test_slow_and_gpu_throttle_scale_service_time(kind, factor, scale):
    """Common random numbers: a request's service demand does not depend on the node or on
    the fault, so the faulted run's service must be exactly ``scale`` x the baseline's for
    requests that *started service* on the target during the fault, and equal otherwise."""
    at, dur, target = 20.0, 20.0, "gpu-1"
    kw = dict(duration=60.0, gpus=1, rate=30.0, mean=0.03, router=sticky())
    base = run(world(**kw), seed=5)
    r = run(world(**kw, faults=[{"kind": kind, "target": target, "at": at, "duration": dur,
                                 "factor": factor}]), seed=5)
    cols = ["request", "status", "attempts", "node", "arrival", "queue_wait", "service"]
    m = r.requests[cols].merge(base.requests[cols], on="request", suffixes=("", "_base"))
    m = m[(m["status"] == "success") & (m["status_base"] == "success")
          & (m["attempts"] == 1) & (m["attempts_base"] == 1)]
    start = m["arrival"] + m["queue_wait"]  # no network: service starts after the queue
    hit = (m["node"] == target) & (start >= at) & (start < at + dur)
    assert hit.sum() >= 100
    assert (~hit).sum() >= 500
    # equal up to the nanosecond rounding of each service time
    diff = m["service"] - m["service_base"] * hit.map({True: scale, False: 1.0})
    assert diff.abs().max() <= (scale + 1) * 0.5e-9 + 1e-12
    # and from the faulted run alone: the node's mean service during the fault ~= scale x mean
    s = m.loc[hit, "service"]
    se = 0.03 * scale / math.sqrt(len(s))  # exponential: sd = mean
    assert abs(s.mean() - 0.03 * scale) < 4 * se


# =========================================================================== error_rate


def test_error_rate_fails_that_fraction_of_attempts():
    at, dur, rate, target = 10.0, 60.0, 0.2, "gpu-1"
    r = run(world(duration=80.0, gpus=1, mean=0.02, rate=60.0, router=sticky(),
                  faults=[{"kind": "error_rate", "target": target, "at": at, "duration": dur,
                           "rate": rate}]), seed=7)
    a = r.attempts
    served = a[(a["node"] == target) & a["kind"].isin(["success", "failure"])]
    # the error is decided when service ends, which is the attempt's end (no network)
    inside = served[(served["end"] >= at) & (served["end"] < at + dur)]
    n = len(inside)
    assert n >= 1000
    errs = inside["detail"] == "error_fault"
    p_hat = errs.mean()
    assert abs(p_hat - rate) < 4 * math.sqrt(rate * (1 - rate) / n), (p_hat, n)
    assert set(inside.loc[errs, "error"]) == {"Internal"}
    # no error_fault anywhere else: not outside the window, not on other nodes
    assert (a["detail"] == "error_fault").sum() == errs.sum()
    # every failed attempt with retries left was retried
    ef = inside[errs & (inside["attempt"] < 3)]
    nxt = set(zip(a["request"], a["attempt"]))
    assert all((q, k + 1) in nxt for q, k in zip(ef["request"], ef["attempt"]))


# =========================================================================== flapping


def test_flapping_alternates_with_the_period():
    at, period, down, dur, target = 10.25, 4.0, 1.5, 40.0, "gpu-0"
    r = run(world(duration=60.0, router=sticky(),
                  faults=[{"kind": "flapping", "target": target, "at": at, "duration": dur,
                           "period": period, "down": down}]), seed=2)
    ev = fault_events(r)
    assert set(ev["source"]) == {"flapping"} and set(ev["subject"]) == {target}
    # up for period - down, then down for down, until at + duration
    starts = [at + (period - down) + k * period for k in range(10)]
    assert list(ev["old"]) == ["start", "end"] * 10
    assert list(ev["time"][0::2]) == pytest.approx(starts)
    assert list(ev["time"][1::2]) == pytest.approx([s + down for s in starts])
    windows = list(zip(starts, [s + down for s in starts]))

    def in_down(t):
        return any(s <= t < e for s, e in windows)

    ts = r.timeseries
    node_ts = ts[ts["node"] == target]
    assert list(node_ts["up"]) == [not in_down(t) for t in node_ts["time"]]
    assert ts[ts["node"] != target]["up"].all()
    # attempts that reach the node while it is down are refused; none succeed then
    a = r.attempts
    on = a[a["node"] == target]
    refused = on[on["start"].map(in_down)]
    assert len(refused) >= 10
    assert (refused["detail"] == "crashed").all()
    ok = on[on["kind"] == "success"]
    for st, en in zip(ok["start"], ok["end"]):
        assert all(en <= s + EPS or st >= e for s, e in windows), (st, en)
    # the node serves again between the down windows
    for s, e in windows[:-1]:
        assert ((ok["start"] >= e) & (ok["start"] < e + period - down)).any()


# =========================================================================== region outage


def test_region_outage_takes_down_every_node_of_the_region():
    at, dur = 20.0, 15.0
    r = run(two_regions(mean=0.3, faults=[{"kind": "region_outage", "target": "us", "at": at,
                                           "duration": dur}]), seed=4)
    ev = fault_events(r)
    assert list(ev["time"]) == pytest.approx([at, at + dur])
    assert list(ev["old"]) == ["start", "end"] and set(ev["subject"]) == {"us"}
    ts = r.timeseries
    us_ts = ts[ts["node"].isin(["us-0", "us-1"])]
    inside = us_ts[(us_ts["time"] > at) & (us_ts["time"] < at + dur)]
    assert len(inside) > 0 and not inside["up"].any()
    assert us_ts[(us_ts["time"] < at) | (us_ts["time"] > at + dur)]["up"].all()
    assert ts[ts["node"].isin(["eu-0", "eu-1"])]["up"].all()

    a = r.attempts.copy()
    gw_region = a["gateway"].map({"gw-eu": "eu", "gw-us": "us"})
    node_region = a["node"].map(lambda n: None if pd.isna(n) else str(n)[:2])
    one_way = (gw_region != node_region).astype(float) * 0.01  # half the 20 ms RTT
    a["at_node"] = a["start"] + one_way          # arrival at the node
    a["left_node"] = a["end"] - one_way          # departure from the node
    us = a[node_region == "us"]
    refused = us[(us["at_node"] >= at) & (us["at_node"] < at + dur)]
    assert len(refused) >= 3
    assert (refused["kind"] == "failure").all()
    assert (refused["detail"] == "crashed").all()
    cif = us[us["detail"] == "crashed_in_flight"]
    assert len(cif) >= 1
    assert ((cif["left_node"] - at).abs() < 1e-8).all()
    assert (cif["at_node"] < at).all()
    for n in ("us-0", "us-1"):  # both nodes of the region went down
        assert ((us["node"] == n) & us["detail"].isin(["crashed", "crashed_in_flight"])).any()
    ok = us[us["kind"] == "success"]
    assert ((ok["left_node"] <= at + 1e-8) | (ok["at_node"] >= at + dur)).all()
    assert not a[node_region == "eu"]["detail"].isin(["crashed", "crashed_in_flight"]).any()


# =========================================================================== partition


def test_partition_blocks_only_the_partitioned_pair():
    at, dur, pt = 20.0, 15.0, 0.5
    r = run(two_regions(network={"partition_timeout": pt},
                        faults=[{"kind": "partition", "regions": ["eu", "us"], "at": at,
                                 "duration": dur}]), seed=4)
    ev = fault_events(r)
    assert list(ev["time"]) == pytest.approx([at, at + dur])
    assert set(ev["source"]) == {"partition"}
    a = r.attempts
    gw_region = a["gateway"].map({"gw-eu": "eu", "gw-us": "us"})
    node_region = a["node"].map(lambda n: None if pd.isna(n) else str(n)[:2])
    window = (a["start"] >= at) & (a["start"] < at + dur)
    cross = a[window & (gw_region != node_region) & node_region.notna()]
    for gw in ("gw-eu", "gw-us"):
        assert (cross["gateway"] == gw).sum() >= 3
    assert (cross["kind"] == "failure").all()
    assert (cross["detail"] == "partitioned").all()
    assert (cross["error"] == "NodeUnreachable").all()
    assert ((cross["end"] - cross["start"] - pt).abs() < EPS).all()
    same = a[window & (gw_region == node_region)]
    assert len(same) >= 100
    assert (same["kind"] == "success").all()
    assert (a["detail"] == "partitioned").sum() == len(cross)
    # each gateway replica has its own view: the far region is Unhealthy from where the
    # partition cut it off, the near one is not
    ts = r.timeseries
    snap = ts[ts["time"] == at + dur - 1]
    for gw, near, far in (("gw-eu", "eu", "us"), ("gw-us", "us", "eu")):
        view = snap[snap["gateway"] == gw].set_index("node")["health"]
        assert all(view[f"{far}-{i}"] == "Unhealthy" for i in range(2)), view
        assert all(view[f"{near}-{i}"] != "Unhealthy" for i in range(2)), view


# =========================================================================== random faults


def _random_fault_world(strategy, fixes=()):
    return world(duration=150.0, router={"strategy": strategy, "fixes": list(fixes)},
                 faults=[{"kind": "crash", "target": "gpu", "mtbf": 20.0, "mttr": 3.0}])


def test_random_faults_start_and_end_and_do_not_depend_on_routing():
    runs = [run(_random_fault_world(s, f), seed=9) for s, f in
            (("least_latency", ()), ("random", ()), ("round_robin", ("strategies",)))]
    ev = fault_events(runs[0])
    assert set(ev["subject"]) == {"gpu-0", "gpu-1", "gpu-2"}
    for node, e in ev.groupby("subject", observed=True):
        # per node: start, end, start, end, ... (the last start may be open)
        assert list(e["old"]) == (["start", "end"] * len(e))[:len(e)]
        assert (e["time"].diff().dropna() > 0).all()
        assert (e["old"] == "start").sum() >= 2
    for other in runs[1:]:
        assert_frame_equal(plain(fault_events(other)), plain(ev))
    # routing did differ between the runs
    assert not runs[0].requests["node"].equals(runs[1].requests["node"])
    # another seed, other fault times
    assert not fault_events(run(_random_fault_world("random"), seed=10))["time"].equals(ev["time"])
    # the node is down exactly between start and end
    ts = runs[0].timeseries
    for node, e in ev.groupby("subject", observed=True):
        times = list(e["time"]) + [math.inf]
        windows = list(zip(times[0::2], times[1::2]))
        node_ts = ts[ts["node"] == node]
        expected = [not any(s <= t < en for s, en in windows) for t in node_ts["time"]]
        assert list(node_ts["up"]) == expected


# =========================================================================== circuit breaker


def test_breaker_opens_after_five_failures_on_a_node_without_health():
    at = 20.0
    r = run(world(router={"strategy": "random"}, node={"register_health": False},
                  faults=[{"kind": "crash", "target": "gpu-2", "at": at}]), seed=3)
    assert not (r.events["category"] == "health").any()
    assert r.timeseries["health"].isna().all()
    a = r.attempts
    fails = a[(a["node"] == "gpu-2") & (a["kind"] == "failure")].sort_values("end", kind="stable")
    c = r.events[(r.events["category"] == "circuit")].reset_index(drop=True)
    assert set(c["subject"]) == {"gpu-2"} and set(c["source"]) == {"gw-eu"}
    assert (c["old"][0], c["new"][0]) == ("Closed", "Open")
    # failure_threshold = 5 consecutive failures (nothing succeeds on a crashed node)
    assert c["time"][0] == pytest.approx(fails["end"].iloc[4], abs=EPS)
    # reference lazy half-open: not before reset_timeout (30 s) after the last failure
    assert (c["old"][1], c["new"][1]) == ("Open", "HalfOpen")
    assert c["time"][1] >= c["time"][0] + 30.0 - EPS
    assert (c["old"][2], c["new"][2]) == ("HalfOpen", "Open")  # still down: reopens
    quiet = a[(a["node"] == "gpu-2") & (a["start"] > c["time"][0] + EPS)
              & (a["start"] < c["time"][1] - EPS)]
    assert quiet.empty
    ts = r.timeseries
    node_ts = ts[(ts["node"] == "gpu-2") & (ts["time"] > c["time"][0]) & (ts["time"] < c["time"][1])]
    assert len(node_ts) > 20 and (node_ts["circuit"] == "Open").all()


# =========================================================================== Q-NORECOVER


def _norecover(router, seed=3, duration=90.0):
    base = run(world(duration=duration, router=router), seed=seed)
    hot = hot_node(base, T0)
    r = run(world(duration=duration, router=router,
                  faults=[{"kind": "crash", "target": hot, "at": T0, "duration": DUR}]), seed=seed)
    return r, hot


def test_q_norecover_reference_router_never_uses_the_node_again():
    r, hot = _norecover({})
    req, a = r.requests, r.attempts
    after = req[req["arrival"] >= T0 + DUR]
    assert len(after) > 1000 and (after["status"] == "success").mean() > 0.99  # steady traffic
    assert not (after["node"] == hot).any()
    h = health_events(r, hot, "gw-eu")
    unhealthy_at = h[h["new"] == "Unhealthy"]["time"].min()
    assert T0 <= unhealthy_at < T0 + DUR
    assert not (a["node"] == hot)[a["start"] > unhealthy_at].any()
    assert (h["time"] <= unhealthy_at).all()  # never leaves Unhealthy
    ts = r.timeseries
    late = ts[(ts["node"] == hot) & (ts["time"] > unhealthy_at)]
    assert (late["health"] == "Unhealthy").all()


def test_q_norecover_active_probes_bring_the_node_back():
    r, hot = _norecover({"fixes": ["active_probes"], "health": {"check_interval": 2.0}})
    req = r.requests
    ok = req[(req["status"] == "success") & (req["node"] == hot)]
    assert not ok["arrival"].between(T0, T0 + DUR).any()
    assert (ok["arrival"] > T0 + DUR).sum() >= 20
    h = health_events(r, hot, "gw-eu")
    down = h[(h["new"] == "Unhealthy") & (h["time"] >= T0)]["time"].min()
    back = h[(h["old"] == "Unhealthy") & (h["time"] > T0 + DUR)]
    assert down < T0 + DUR
    assert len(back) >= 1 and back["new"].iloc[0] == "Healthy"


@pytest.mark.parametrize("probes", [False, True])
def test_q_norecover_round_robin_share(probes):
    """With rotation, a routable node gets 1/3 of the traffic; after a transient crash the
    reference never routes to it again, while active probes restore its share."""
    router = {"strategy": "round_robin", "fixes": ["strategies"] + (["active_probes"] if probes else []),
              "health": {"check_interval": 2.0}}
    r = run(world(duration=90.0, router=router,
                  faults=[{"kind": "crash", "target": "gpu-1", "at": T0, "duration": DUR}]), seed=3)
    req = r.requests
    before = req[req["arrival"] < T0]
    assert (before["node"] == "gpu-1").mean() == pytest.approx(1 / 3, abs=0.02)
    late = req[req["arrival"] > T0 + DUR + 10.0]
    share = (late["node"] == "gpu-1").mean()
    if probes:
        assert share == pytest.approx(1 / 3, abs=0.02)
    else:
        assert share == 0.0
