"""The scenario library (scenarios/): every file loads, runs at a reduced duration, and the
playbook scenarios show the outcome their comments (and spec §9.4) document.

Each file's header comment may carry two CI hints, read by this module:

    # ci-duration: 60s                        run length for the test (default 30s)
    # ci-set: faults[0].at=20s faults[0].duration=30s     extra --set overrides

The run uses ``duration=<ci-duration>``, ``warmup=0s`` and the ci-set overrides, and every
scheduled fault must still start inside it.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path

import pytest

from fedsim.scenario import load_scenario
from fedsim.world import World

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"
FILES = sorted(LIBRARY.rglob("*.yaml"))
IDS = [str(p.relative_to(LIBRARY)) for p in FILES]

REQUIRED = [
    "quickstart.yaml", "steady_three_regions.yaml", "region_outage_failover.yaml",
    "flapping_node.yaml", "gray_node.yaml", "thundering_herd.yaml",
    "privacy_routing_constrained.yaml", "cost_tiers.yaml", "gpu_saturation_ramp.yaml",
    "diurnal_follow_the_sun.yaml", "gateway_replicas_stale_views.yaml",
    "playbook/happy_path.yaml", "playbook/retry_success.yaml",
    "playbook/circuit_breaker_trip.yaml", "playbook/multi_region_routing.yaml",
    "playbook/privacy_routing.yaml", "playbook/graceful_degradation.yaml",
]

_HINT = re.compile(r"^#\s*(ci-duration|ci-set):\s*(.*?)\s*$")


def header(path: Path) -> list[str]:
    """The leading comment block (lines starting with '#')."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def ci_overrides(path: Path) -> list[str]:
    duration, extra = "30s", []
    for line in header(path):
        m = _HINT.match(line)
        if m and m.group(1) == "ci-duration":
            duration = m.group(2)
        elif m:
            extra.extend(m.group(2).split())
    return [f"duration={duration}", "warmup=0s", *extra]


@lru_cache(maxsize=None)
def ci_load(rel: str):
    return load_scenario(LIBRARY / rel, overrides=ci_overrides(LIBRARY / rel))


@lru_cache(maxsize=None)
def ci_results(rel: str) -> dict:
    """{point name or 'base': Result} at the CI duration (every sweep point, or the base
    scenario when the file has no sweep)."""
    loaded = ci_load(rel)
    runs = [(p.name, p.scenario) for p in loaded.points] or [("base", loaded.scenario)]
    return {name: World(sc).run() for name, sc in runs}


def result_for(rel: str, params: dict | None = None):
    """Result of the base scenario (params None) or of the sweep point with these params,
    run at full duration (playbook scenarios are tiny)."""
    return _full_results(rel)[_key(params)]


def _key(params: dict | None):
    return None if params is None else tuple(sorted((k, repr(v)) for k, v in params.items()))


@lru_cache(maxsize=None)
def _full_results(rel: str) -> dict:
    loaded = load_scenario(LIBRARY / rel)
    out = {None: World(loaded.scenario).run()}
    for p in loaded.points:
        out[_key(p.params)] = World(p.scenario).run()
    return out


# ---------------------------------------------------------------------------- the library


def test_library_has_the_required_files_extends_and_sweeps():
    assert len(FILES) >= 18
    missing = [r for r in REQUIRED if not (LIBRARY / r).exists()]
    assert not missing, missing
    texts = {p: p.read_text(encoding="utf-8") for p in FILES}
    extends = [p for p, t in texts.items() if re.search(r"^extends:", t, re.M)]
    sweeps = [p for p, t in texts.items() if re.search(r"^sweep:", t, re.M)]
    assert len(extends) >= 2 and len(sweeps) >= 2


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_file_starts_with_a_comment_block(path):
    block = header(path)
    text = "\n".join(block)
    assert len(block) >= 5, "start the file with a comment: what it teaches, what to look at, runtime"
    assert "Runtime:" in text
    assert re.search(r"what to look at", text, re.I)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_file_loads_with_every_sweep_point(path):
    loaded = load_scenario(path)
    assert loaded.scenario.duration > 0
    if re.search(r"^sweep:", path.read_text(encoding="utf-8"), re.M):
        assert loaded.points, "a sweep section yields at least one point"
    names = [p.name for p in loaded.points]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_file_runs_at_ci_duration_with_its_faults_inside(path):
    rel = str(path.relative_to(LIBRARY))
    loaded = ci_load(rel)
    for sc in [loaded.scenario] + [p.scenario for p in loaded.points]:
        for f in sc.faults:
            if f.at is not None:
                first = f.at + (f.period - f.down if f.kind == "flapping" else 0.0)
                assert first < sc.duration, f"fault {f.kind} on {f.target} starts after the CI run"
    for name, result in ci_results(rel).items():
        assert len(result.requests) > 0, name
        assert result.simulated_seconds == pytest.approx(loaded.scenario.duration)
        assert not result.interrupted


# ---------------------------------------------------------------------------- quickstart


def test_quickstart_runs_in_a_couple_of_seconds_at_full_duration():
    started = time.perf_counter()
    loaded = load_scenario(LIBRARY / "quickstart.yaml")
    assert not loaded.points
    result = World(loaded.scenario).run()
    wall = time.perf_counter() - started
    assert wall < 3.0, f"quickstart took {wall:.2f} s"
    assert len(result.requests) > 500
    assert {g.region for g in result.scenario.nodes} == {"us-east", "eu-west"}
    assert result.scenario.faults
    # its lesson (Q-NORECOVER): use-0 never serves again after its crash...
    rq = result.requests
    served = rq[(rq.status == "success") & (rq.node == "use-0")]
    assert len(served) > 0 and served.arrival.max() < 21.0
    # ...unless the commented-out fix is switched on
    fixed = World(load_scenario(LIBRARY / "quickstart.yaml",
                                ["router.fixes=[active_probes]"]).scenario).run().requests
    back = fixed[(fixed.status == "success") & (fixed.node == "use-0")]
    assert (back.arrival > 35.0).any()


# ---------------------------------------------------------------------------- playbook


def _attempt_nodes(result, request=0):
    a = result.attempts
    return [None if n != n else str(n) for n in a[a.request == request].node]


def test_playbook_happy_path_completes_one_request():
    r = result_for("playbook/happy_path.yaml")
    rq = r.requests
    assert len(rq) == 1
    assert rq.status[0] == "success" and rq.node[0] == "us-west-1" and rq.attempts[0] == 1
    assert rq.latency[0] == pytest.approx(0.05)
    stats = r.gateway_stats["gateway"]
    assert stats.total_requests == 1 and stats.successful_requests == 1


def test_playbook_retry_success_does_not_hold_in_the_reference():
    rel = "playbook/retry_success.yaml"
    # unregistered nodes: all 4 attempts hit us-east-1 and the request fails
    r = result_for(rel)
    assert r.requests.status[0] == "failed" and r.requests.error[0] == "NodeUnreachable"
    assert _attempt_nodes(r) == ["us-east-1"] * 4
    # registered but unreported: 3 failures on us-east-1, eu-west-1 serves (retry count 3)
    r = result_for(rel, {"nodes[0].register_health": True, "nodes[1].register_health": True})
    assert r.requests.status[0] == "success" and r.requests.node[0] == "eu-west-1"
    assert _attempt_nodes(r) == ["us-east-1"] * 3 + ["eu-west-1"]
    # the playbook's retry_count() == 1 only with retry_excludes_tried
    r = result_for(rel, {"router.fixes": ["retry_excludes_tried"]})
    assert r.requests.status[0] == "success" and r.requests.attempts[0] == 2
    assert _attempt_nodes(r) == ["us-east-1", "eu-west-1"]


def test_playbook_circuit_breaker_trip_opens_the_circuit():
    rel = "playbook/circuit_breaker_trip.yaml"
    r = result_for(rel)
    ev = r.events[r.events.category == "circuit"]
    first = ev.iloc[0]
    assert (first.subject, first.old, first.new) == ("node-1", "Closed", "Open")
    assert first.time == pytest.approx(2.0)
    assert (r.attempts.kind == "failure").sum() == 6  # 4 + 1 before opening, 1 half-open probe
    # Q-LAZY-HALFOPEN: still reported Open after the 30 s reset timeout, until asked at t=45s
    ts = r.timeseries
    assert set(ts[(ts.time >= 3) & (ts.time < 45)].circuit) == {"Open"}
    assert [(e.old, e.new) for e in ev.itertuples()][1:] == [("Open", "HalfOpen"), ("HalfOpen", "Open")]
    assert ev.time.iloc[1] == pytest.approx(45.0)
    # Q-CB-SHADOWED: a health-registered node is Unhealthy after 3 failures, the circuit never opens
    r = result_for(rel, {"nodes[0].register_health": True})
    assert not (r.events.category == "circuit").any()
    h = r.events[r.events.category == "health"]
    assert h.new.iloc[-1] == "Unhealthy"
    assert (r.attempts.kind == "failure").sum() == 3
    # eager_half_open: HalfOpen exactly reset_timeout after opening
    r = result_for(rel, {"router.fixes": ["eager_half_open"]})
    ev = r.events[r.events.category == "circuit"]
    assert (ev.old.iloc[1], ev.new.iloc[1]) == ("Open", "HalfOpen")
    assert ev.time.iloc[1] == pytest.approx(32.0)


def test_playbook_multi_region_routing_picks_us_west_by_order_not_latency():
    rel = "playbook/multi_region_routing.yaml"
    r = result_for(rel)
    assert list(r.requests.node.astype(str)) == ["us-west"] * 5
    # swap the speeds: us-west still wins (deployment order, not latency)
    swapped = result_for(rel, {"nodes[0].service": {"*": "120ms"}, "nodes[1].service": {"*": "50ms"}})
    assert list(swapped.requests.node.astype(str)) == ["us-west"] * 5
    assert swapped.requests.latency.min() == pytest.approx(0.12)
    # registered (Unknown, 0 ms): the untried eu-west looks faster once us-west has 5 ms
    reg = result_for(rel, {"nodes[0].register_health": True, "nodes[1].register_health": True})
    assert list(reg.requests.node.astype(str)) == ["us-west", "eu-west", "us-west", "us-west", "us-west"]


def test_playbook_privacy_routing_needs_region_privacy_levels():
    rel = "playbook/privacy_routing.yaml"
    r = result_for(rel)
    rq = r.requests
    conf = rq[rq.privacy == "confidential"]
    assert len(conf) == 3
    assert set(conf.status) == {"success"} and set(conf.node.astype(str)) == {"private-dc"}
    pub = rq[rq.privacy == "public"]
    assert set(pub.node.astype(str)) == {"public-cloud"}
    # the enterprise default as shipped knows no regions: every confidential request fails
    ref = result_for(rel, {"router.policy": "reference"}).requests
    conf = ref[ref.privacy == "confidential"]
    assert set(conf.status) == {"failed"} and set(conf.error) == {"AllNodesUnhealthy"}
    assert set(ref[ref.privacy == "public"].status) == {"success"}


def test_playbook_graceful_degradation_ends_on_node_3():
    rel = "playbook/graceful_degradation.yaml"
    registered = {f"nodes[{i}].register_health": True for i in range(3)}
    cases = [
        (None, 2),                                        # unregistered: 2 failed requests
        (registered, 1),                                  # registered, unreported: 1
        ({**registered, "router.fixes": ["active_probes"],
          "router.health.check_interval": "1s"}, 0),      # health already knows: node-3 at once
    ]
    for params, failed in cases:
        rq = result_for(rel, params).requests
        assert list(rq.status[:failed]) == ["failed"] * failed, params
        rest = rq.iloc[failed:]
        assert set(rest.status) == {"success"} and set(rest.node.astype(str)) == {"node-3"}, params
    # unregistered: the third request reaches node-3 after node-2's 4th and 5th failures
    r = result_for(rel)
    assert _attempt_nodes(r, 0) == ["node-1"] * 4
    assert _attempt_nodes(r, 1) == ["node-1", "node-2", "node-2", "node-2"]
    assert _attempt_nodes(r, 2) == ["node-2", "node-2", "node-3"]


# ---------------------------------------------------------------------------- other lessons (CI scale)


def _ci_point(rel: str, **params):
    """The CI result of the sweep point with these params (``router__fixes`` stands for
    the key ``router.fixes``)."""
    loaded = ci_load(rel)
    results = ci_results(rel)
    for p in loaded.points:
        if all(p.params.get(k.replace("__", ".")) == v for k, v in params.items()):
            return results[p.name]
    raise KeyError(params)


def test_region_outage_fail_back_needs_active_probes():
    rel = "region_outage_failover.yaml"   # CI: us-east down from 20 s to 50 s of 80 s
    for fixes, comes_back in (([], False), (["active_probes"], True)):
        rq = _ci_point(rel, router__fixes=fixes).requests
        ok = rq[rq.status == "success"]
        after = ok[ok.arrival > 55.0]
        assert after.region.astype(str).eq("us-east").any() == comes_back, fixes
        assert not ok[(ok.arrival > 21.0) & (ok.arrival < 50.0)].region.astype(str).eq("us-east").any()


def test_privacy_constrained_keeps_data_where_it_is_allowed():
    rel = "privacy_routing_constrained.yaml"
    allowed = {"public": {"public-cloud", "corp-dc", "private-dc", "sovereign"},
               "internal": {"corp-dc", "private-dc", "sovereign"},
               "confidential": {"private-dc", "sovereign"}, "restricted": {"sovereign"}}
    rq = _ci_point(rel, router__policy="enterprise").requests
    ok = rq[rq.status == "success"]
    for level, regions in allowed.items():
        served = set(ok[ok.privacy == level].region.astype(str))
        assert served and served <= regions, level
    ref = _ci_point(rel, router__policy="reference").requests
    secret = ref[ref.privacy.isin(["confidential", "restricted"])]
    assert len(secret) and set(secret.status) == {"failed"}
    assert "public-cloud" in set(ref[(ref.privacy == "internal") & (ref.status == "success")].region.astype(str))
