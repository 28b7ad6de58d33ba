"""fedsim.world acceptance: conservation of requests, determinism (in and across processes),
common random numbers across strategies, the result tables, the token model and scenario
validation.  Fault effects are in test_world_faults.py, queueing theory in
test_world_theory.py."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from pydantic import ValidationError

import fedsim
from fedsim.world import Scenario, run

REPO = Path(__file__).resolve().parents[2]
MODELS = [{"model": "llm", "capabilities": ["generate"]}]
MAX_RETRIES = 3

# A busy two-region world with three gateways, two workloads (one pinned to a gateway), two
# capabilities, attribute mixes, network delays, and faults chosen so every outcome occurs:
# crash (in-flight failures, refusals), error_rate on a whole group (retries, requests that
# exhaust their retries), a hang to the end with no timeout fix (requests still in flight at
# the end), a partition and a random slow fault.
RICH = {
    "name": "rich",
    "duration": 60.0,
    "regions": [{"id": "eu", "traffic_share": 0.6}, {"id": "us", "traffic_share": 0.4}],
    "network": {"rtt": {"eu": {"us": 0.08}}, "intra_region_rtt": 0.002, "partition_timeout": 0.3},
    "gateways": [{"name": "gw-eu-a", "region": "eu"}, {"name": "gw-eu-b", "region": "eu"},
                 {"name": "gw-us", "region": "us"}],
    "nodes": [
        {"name": "eu", "region": "eu", "count": 3, "gpus": 2, "models": MODELS,
         "service": {"*": {"kind": "lognormal", "mean": 0.06, "cv": 1.0}}},
        {"name": "us", "region": "us", "count": 2, "gpus": 2, "models": MODELS,
         "service": {"*": {"kind": "exponential", "mean": 0.05}}},
        {"name": "emb", "region": "us", "count": 1, "gpus": 4,
         "models": [{"model": "e5", "capabilities": ["embed"]}],
         "service": {"embed": {"kind": "gamma", "mean": 0.01, "cv": 0.5}}},
    ],
    "router": {"strategy": "random", "gateway": {"max_retries": MAX_RETRIES}},
    "workloads": [
        {"name": "chat", "arrival": {"kind": "poisson", "rate": 25},
         "capability": {"generate": 0.85, "embed": 0.15},
         "tenant": {"acme": 0.5, "globex": 0.3, "initech": 0.2},
         "privacy": {"internal": 0.7, "public": 0.3},
         "cost_tolerance": {"20": 0.5, "80": 0.5},
         "input_tokens": {"kind": "uniform", "low": 10, "high": 500},
         "output_tokens": {"kind": "exponential", "mean": 100}},
        {"name": "batch", "arrival": {"kind": "poisson", "rate": 5}, "gateway": "gw-eu-b",
         "origin_region": "eu"},
    ],
    "faults": [
        {"kind": "crash", "target": "eu-0", "at": 10.0, "duration": 8.0},
        {"kind": "error_rate", "target": "us", "at": 20.0, "duration": 15.0, "rate": 0.7},
        {"kind": "partition", "regions": ["eu", "us"], "at": 38.0, "duration": 5.0},
        {"kind": "hang", "target": "eu-2", "at": 45.0},
        {"kind": "slow", "target": "eu", "mtbf": 15.0, "mttr": 2.0, "factor": 3.0},
    ],
}

ATTRIBUTES = ["request", "id", "workload", "arrival", "capability", "tenant", "origin_region",
              "privacy", "cost_tolerance", "input_tokens", "output_tokens"]


def rich(**router) -> Scenario:
    spec = json.loads(json.dumps(RICH))
    spec["router"].update(router)
    return Scenario(**spec)


def plain(df):
    """Categorical columns as plain objects (category lists depend on first appearance)."""
    out = df.reset_index(drop=True).copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


def digest(result) -> dict:
    """sha256 of every table (CSV, full float precision) and the gateway stats."""
    out = {}
    for name in ("requests", "attempts", "timeseries", "events"):
        csv = getattr(result, name).to_csv(index=False, float_format="%.17g")
        out[name] = hashlib.sha256(csv.encode()).hexdigest()
    out["gateway_stats"] = repr(sorted(result.gateway_stats.items()))
    out["rows"] = {n: len(getattr(result, n)) for n in ("requests", "attempts", "timeseries", "events")}
    return out


@pytest.fixture(scope="module")
def rich_run():
    return run(rich(), seed=21)


# =========================================================================== conservation


def test_rich_run_exercises_every_outcome(rich_run):
    """Precondition of the conservation tests: the run has successes, failures, requests in
    flight, retries, route errors and several node failure reasons."""
    req, a = rich_run.requests, rich_run.attempts
    counts = req["status"].value_counts()
    assert counts.get("success", 0) > 1000
    assert counts.get("failed", 0) >= 5
    assert counts.get("in_flight", 0) >= 5
    assert (req["attempts"] > 1).sum() >= 50
    assert {"success", "failure", "route_error"} <= set(a["kind"])
    assert {"crashed", "crashed_in_flight", "error_fault", "partitioned"} <= set(a["detail"].dropna())
    assert set(req["gateway"]) == {"gw-eu-a", "gw-eu-b", "gw-us"}


def test_every_request_is_exactly_one_outcome(rich_run):
    req = rich_run.requests
    n = len(req)
    assert list(req["request"]) == list(range(n))
    assert req["id"].is_unique
    assert set(req["status"]) <= {"success", "failed", "in_flight"}
    assert req["status"].notna().all()
    ok, failed, flying = (req[req["status"] == s] for s in ("success", "failed", "in_flight"))
    assert len(ok) + len(failed) + len(flying) == n
    # success: served somewhere, timed, no error
    assert ok["node"].notna().all() and ok["region"].notna().all()
    assert ok["latency"].notna().all() and (ok["latency"] > 0).all()
    assert ok["error"].isna().all()
    assert ok[["queue_wait", "service", "network"]].notna().all().all()
    # failed: an error, a latency, no node; the retry loop used every attempt
    assert failed["error"].notna().all() and failed["latency"].notna().all()
    assert failed["node"].isna().all()
    assert (failed["attempts"] == MAX_RETRIES + 1).all()
    # in flight: unfinished
    assert flying["latency"].isna().all() and flying["error"].isna().all()
    assert flying["node"].isna().all()
    assert (flying["attempts"] <= MAX_RETRIES).all()
    # no token model here: no ttft
    assert req["ttft"].isna().all()
    s = rich_run.summary()
    assert (s["requests"], s["succeeded"], s["failed"], s["in_flight"]) == (
        n, len(ok), len(failed), len(flying))


def test_gateway_stats_match_the_requests_table(rich_run):
    req = rich_run.requests
    assert set(rich_run.gateway_stats) == {"gw-eu-a", "gw-eu-b", "gw-us"}
    for gw, stats in rich_run.gateway_stats.items():
        mine = req[req["gateway"] == gw]
        assert stats.total_requests == len(mine), gw
        assert stats.successful_requests == (mine["status"] == "success").sum(), gw
        assert stats.failed_requests == (mine["status"] == "failed").sum(), gw
        assert len(mine) > 0
    assert sum(s.total_requests for s in rich_run.gateway_stats.values()) == len(req)


def test_attempts_table_matches_requests(rich_run):
    req, a = rich_run.requests, rich_run.attempts
    per_req = a.groupby("request").size().reindex(req["request"], fill_value=0)
    assert (per_req.to_numpy() == req["attempts"].to_numpy()).all()
    assert set(a["request"]) <= set(req["request"])
    # attempt numbers 0..k-1 per request, recorded in order
    seq = a.groupby("request")["attempt"].agg(list)
    assert all(v == list(range(len(v))) for v in seq)
    by_req = req.set_index("request")
    assert (a["gateway"].astype(str).to_numpy()
            == by_req.loc[a["request"], "gateway"].astype(str).to_numpy()).all()
    last = a.sort_values(["request", "attempt"]).groupby("request").tail(1).set_index("request")
    n_success = a[a["kind"] == "success"].groupby("request").size()
    ok = by_req[by_req["status"] == "success"]
    assert (n_success.reindex(ok.index, fill_value=0) == 1).all()
    assert (last.loc[ok.index, "kind"] == "success").all()
    assert (last.loc[ok.index, "node"].astype(str) == ok["node"].astype(str)).all()
    failed = by_req[by_req["status"] == "failed"]
    assert (n_success.reindex(failed.index, fill_value=0) == 0).all()
    # the reference raises the *last* error
    assert (last.loc[failed.index, "error"].astype(str) == failed["error"].astype(str)).all()
    flying = by_req[by_req["status"] == "in_flight"]
    assert (n_success.reindex(flying.index, fill_value=0) == 0).all()
    # kinds, and details only on node failures
    assert set(a["kind"]) <= {"success", "failure", "route_error", "circuit_open"}
    assert a.loc[a["kind"] != "failure", "detail"].isna().all()
    assert a.loc[a["kind"] == "failure", "detail"].notna().all()
    assert set(a["detail"].dropna()) <= {"crashed", "crashed_in_flight", "queue_full",
                                         "error_fault", "partitioned", "timeout"}
    assert a.loc[a["kind"] == "route_error", "node"].isna().all()
    assert (a["end"] >= a["start"]).all()


def test_retry_timing_and_reference_backoff(rich_run):
    """A failed attempt with retries left sleeps 100 ms x (attempt + 1) (Q-BACKOFF); routing
    errors consume an attempt without sleeping; routing takes no simulated time, so the next
    attempt starts exactly at end + backoff."""
    a = rich_run.attempts.sort_values(["request", "attempt"]).reset_index(drop=True)
    fail_retry = (a["kind"] == "failure") & (a["attempt"] < MAX_RETRIES)
    assert fail_retry.sum() > 50
    assert ((a.loc[fail_retry, "backoff"] - 0.1 * (a.loc[fail_retry, "attempt"] + 1)).abs() < 1e-9).all()
    assert (a.loc[~fail_retry, "backoff"] == 0).all()
    nxt = a.groupby("request").shift(-1)
    has_next = nxt["attempt"].notna()
    gap = nxt.loc[has_next, "start"] - (a.loc[has_next, "end"] + a.loc[has_next, "backoff"])
    assert gap.abs().max() < 1e-9


def test_latency_decomposes_for_single_attempt_successes(rich_run):
    req = rich_run.requests
    one = req[(req["status"] == "success") & (req["attempts"] == 1)]
    assert len(one) > 1000
    total = one["network"] + one["queue_wait"] + one["service"]
    assert (one["latency"] - total).abs().max() < 1e-8
    # network = the round trip between the gateway's and the node's regions
    gw_region = one["gateway"].map({"gw-eu-a": "eu", "gw-eu-b": "eu", "gw-us": "us"}).astype(str)
    rtt = (gw_region != one["region"].astype(str)).map({True: 0.08, False: 0.002})
    assert (one["network"] - rtt).abs().max() < 1e-8
    # the workload pinned to gw-eu-b used it; the other used its origin region's gateway
    assert (req.loc[req["workload"] == "batch", "gateway"] == "gw-eu-b").all()
    chat = req[req["workload"] == "chat"]
    assert (chat.loc[chat["origin_region"] == "us", "gateway"] == "gw-us").all()
    assert (chat.loc[chat["origin_region"] == "eu", "gateway"] == "gw-eu-a").all()
    share_eu = (chat["origin_region"] == "eu").mean()
    assert abs(share_eu - 0.6) < 4 * math.sqrt(0.24 / len(chat))


def test_timeseries_one_row_per_sample_node_and_gateway(rich_run):
    ts = rich_run.timeseries
    nodes = {"eu-0", "eu-1", "eu-2", "us-0", "us-1", "emb"}
    gateways = {"gw-eu-a", "gw-eu-b", "gw-us"}
    assert set(ts["node"]) == nodes and set(ts["gateway"]) == gateways
    assert not ts.duplicated(["time", "node", "gateway"]).any()
    times = sorted(set(ts["time"]))
    assert len(ts) == len(times) * len(nodes) * len(gateways)
    assert times == pytest.approx([float(k) for k in range(1, len(times) + 1)])
    assert len(times) >= 59
    assert ts["gpu_utilization"].between(0.0, 1.0).all()
    assert (ts["queue_depth"] >= 0).all() and (ts["in_flight"] >= 0).all()
    gpus = ts["node"].map(lambda n: 4 if n == "emb" else 2)
    assert (ts["busy_gpus"] <= gpus).all()
    # node state is the same whichever gateway reports it
    node_cols = ["queue_depth", "in_flight", "busy_gpus", "gpu_utilization", "up"]
    per_node = ts.groupby(["time", "node"], observed=True)[node_cols].nunique()
    assert (per_node == 1).all().all()
    assert set(ts["circuit"].dropna()) <= {"Closed", "Open", "HalfOpen"}
    assert set(ts["health"].dropna()) <= {"Unknown", "Healthy", "Degraded", "Unhealthy"}


# =========================================================================== determinism


def test_same_seed_same_frames_in_one_process():
    r1, r2 = run(rich(), seed=21), fedsim.run(rich(), seed=21)
    for name in ("requests", "attempts", "timeseries", "events"):
        assert_frame_equal(getattr(r1, name), getattr(r2, name))
    assert r1.gateway_stats == r2.gateway_stats
    assert digest(r1) == digest(r2)


def test_same_seed_same_frames_across_processes(tmp_path, rich_run):
    spec = tmp_path / "scenario.json"
    spec.write_text(json.dumps(RICH))
    script = tmp_path / "run_it.py"
    script.write_text(textwrap.dedent("""
        import hashlib, json, sys
        from fedsim.world import Scenario, run
        spec = json.loads(open(sys.argv[1]).read())
        r = run(Scenario(**spec), seed=21)
        out = {}
        for name in ("requests", "attempts", "timeseries", "events"):
            csv = getattr(r, name).to_csv(index=False, float_format="%.17g")
            out[name] = hashlib.sha256(csv.encode()).hexdigest()
        out["gateway_stats"] = repr(sorted(r.gateway_stats.items()))
        out["rows"] = {n: len(getattr(r, n)) for n in ("requests", "attempts", "timeseries", "events")}
        print(json.dumps(out))
    """))
    outs = []
    for hash_seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed,
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run([sys.executable, str(script), str(spec)], cwd=str(tmp_path),
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    assert outs[0] == digest(rich_run)


def test_strategy_change_keeps_arrivals_and_attributes():
    runs = [run(rich(strategy=s, fixes=f), seed=21) for s, f in
            (("random", []), ("least_latency", []), ("round_robin", ["strategies"]),
             ("power_of_two_choices", []))]
    ref = plain(runs[0].requests[ATTRIBUTES])
    for other in runs[1:]:
        assert_frame_equal(plain(other.requests[ATTRIBUTES]), ref)
    # ... while routing really differed
    assert not runs[0].requests["node"].equals(runs[1].requests["node"])


def test_seed_change_changes_arrivals_and_attributes(rich_run):
    other = run(rich(), seed=22)
    a, b = rich_run.requests, other.requests
    n = min(len(a), len(b))
    assert not a["arrival"][:n].equals(b["arrival"][:n])
    for col in ("capability", "tenant", "origin_region", "privacy", "cost_tolerance",
                "input_tokens", "output_tokens"):
        assert (a[col][:n].astype(str).to_numpy() != b[col][:n].astype(str).to_numpy()).any(), col


def test_request_attributes_follow_their_mixes(rich_run):
    chat = rich_run.requests
    chat = chat[chat["workload"] == "chat"]
    n = len(chat)
    for col, mix in (("capability", {"generate": 0.85, "embed": 0.15}),
                     ("tenant", {"acme": 0.5, "globex": 0.3, "initech": 0.2}),
                     ("privacy", {"internal": 0.7, "public": 0.3}),
                     ("cost_tolerance", {20: 0.5, 80: 0.5})):
        freq = chat[col].value_counts(normalize=True)
        assert set(freq.index[freq > 0]) == set(mix)
        for v, p in mix.items():
            assert abs(freq[v] - p) < 4 * math.sqrt(p * (1 - p) / n), (col, v)
    assert chat["input_tokens"].between(10, 500).all()
    assert (chat["output_tokens"] >= 1).all()
    assert abs(chat["output_tokens"].mean() - 100) < 4 * 100 / math.sqrt(n) + 0.5
    batch = rich_run.requests[rich_run.requests["workload"] == "batch"]
    assert (batch[["input_tokens", "output_tokens"]] == [256, 128]).all().all()  # defaults
    embeds = rich_run.requests[rich_run.requests["capability"] == "embed"]
    assert set(embeds["node"].dropna()) == {"emb"}


# =========================================================================== token model

TOKENS = {"kind": "tokens", "prefill_per_token": 0.0005, "decode_per_token": 0.01,
          "batch_slowdown": 0.5, "overhead": 0.02}


def token_world(rate, slowdown=0.5, duration=300.0):
    svc = dict(TOKENS, batch_slowdown=slowdown)
    return Scenario(duration=duration, regions=[{"id": "eu"}], network={"intra_region_rtt": 0.0},
                    nodes=[{"name": "llm", "region": "eu", "gpus": 1, "max_batch": 64,
                            "models": MODELS, "service": {"generate": svc}}],
                    workloads=[{"arrival": {"kind": "poisson", "rate": rate},
                                "input_tokens": 200, "output_tokens": 40}])


def test_token_model_fills_ttft():
    r = run(token_world(0.5), seed=1)
    ok = r.requests[r.requests["status"] == "success"]
    assert len(ok) > 100
    assert ok["ttft"].notna().all()
    assert (ok["ttft"] < ok["latency"]).all()
    # an idle node: ttft = overhead + prefill x input + one decode iteration
    prefill = TOKENS["overhead"] + TOKENS["prefill_per_token"] * 200
    idle_ttft = prefill + TOKENS["decode_per_token"]
    assert ok["ttft"].iloc[0] == pytest.approx(idle_ttft, abs=1e-8)
    assert ok["latency"].iloc[0] == pytest.approx(prefill + 40 * TOKENS["decode_per_token"], abs=1e-8)
    assert (ok["ttft"] >= idle_ttft - 1e-8).all()
    # slots = gpus x max_batch = 64: continuous batching, nobody queues
    assert (ok["queue_wait"] == 0).all()


def test_batch_slowdown_raises_ttft_with_load():
    low = run(token_world(0.5), seed=1).requests
    high = run(token_world(3.0), seed=1).requests
    low, high = (x[x["status"] == "success"] for x in (low, high))
    assert (high["queue_wait"] == 0).all()
    # with 3 req/s about 2 sequences share the GPU: iteration x (1 + 0.5 x running)
    assert high["ttft"].mean() > low["ttft"].mean() * 1.05
    assert high["service"].mean() > low["service"].mean() * 1.3
    # control: without batch slowdown load does not change ttft at all
    flat = run(token_world(3.0, slowdown=0.0), seed=1).requests
    flat = flat[flat["status"] == "success"]
    idle_ttft = TOKENS["overhead"] + TOKENS["prefill_per_token"] * 200 + TOKENS["decode_per_token"]
    assert (flat["ttft"] - idle_ttft).abs().max() < 1e-8


# =========================================================================== validation


def base_spec(**changes):
    spec = {"duration": 10.0, "regions": [{"id": "eu"}, {"id": "us"}],
            "nodes": [{"name": "gpu", "region": "eu", "count": 2, "models": MODELS}],
            "workloads": [{"arrival": {"kind": "poisson", "rate": 1}}]}
    spec.update(changes)
    return spec


def test_valid_base_spec():
    Scenario(**base_spec())


@pytest.mark.parametrize("changes,needle", [
    ({"bogus": 1}, "bogus"),
    ({"nodes": [{"name": "gpu", "region": "eu", "models": MODELS, "gpu": 2}]}, "gpu"),
    ({"router": {"strategy": "random", "retries": 3}}, "retries"),
    ({"nodes": [{"name": "gpu", "region": "asia", "models": MODELS}]}, "nodes[0].region"),
    ({"nodes": [{"name": "a", "region": "eu", "models": MODELS},
                {"name": "b", "region": "mars", "models": MODELS}]}, "nodes[1].region"),
    ({"gateways": [{"name": "g", "region": "asia"}]}, "gateways[0].region"),
    ({"gateways": [{"name": "g", "region": "eu"}],
      "workloads": [{"arrival": {"kind": "poisson", "rate": 1}, "gateway": "nope"}]},
     "workloads[0].gateway"),
    ({"workloads": [{"arrival": {"kind": "poisson", "rate": 1}, "origin_region": "asia"}]},
     "workloads[0].origin_region"),
    ({"workloads": [{"arrival": {"kind": "poisson", "rate": 1}, "capability": "embed"}]},
     "workloads[0].capability"),
    ({"workloads": [{"arrival": {"kind": "poisson", "rate": 1}},
                    {"arrival": {"kind": "poisson", "rate": 1},
                     "capability": {"generate": 0.5, "embed": 0.5}}]},
     "workloads[1].capability"),
    ({"faults": [{"kind": "crash", "target": "gpu-7", "at": 1}]}, "faults[0].target"),
    ({"faults": [{"kind": "crash", "at": 1}]}, "target"),
    ({"faults": [{"kind": "region_outage", "target": "gpu-0", "at": 1}]}, "faults[0].target"),
    ({"faults": [{"kind": "partition", "regions": ["eu", "asia"], "at": 1}]}, "faults[0].regions"),
    ({"faults": [{"kind": "meteor", "target": "gpu-0", "at": 1}]}, "meteor"),
    ({"network": {"rtt": {"eu": {"asia": 0.1}}}}, "network.rtt.eu.asia"),
    ({"warmup": 10.0}, "warmup"),
    ({"warmup": 12.0}, "warmup"),
    ({"nodes": [{"name": "gpu", "region": "eu", "count": 2, "models": MODELS},
                {"name": "gpu", "region": "us", "count": 2, "models": MODELS}]}, "duplicate"),
])
def test_scenario_rejects(changes, needle):
    with pytest.raises(ValidationError) as exc:
        Scenario(**base_spec(**changes))
    assert needle in str(exc.value)


def test_fault_shape_errors():
    for f, needle in (({"kind": "crash", "target": "gpu-0"}, "scheduled"),
                      ({"kind": "crash", "target": "gpu-0", "at": 1, "mtbf": 5, "mttr": 1}, "scheduled"),
                      ({"kind": "crash", "target": "gpu-0", "mtbf": 5}, "mttr"),
                      ({"kind": "slow", "target": "gpu-0", "at": 1}, "factor"),
                      ({"kind": "gpu_throttle", "target": "gpu-0", "at": 1, "factor": 2}, "factor"),
                      ({"kind": "error_rate", "target": "gpu-0", "at": 1}, "rate"),
                      ({"kind": "flapping", "target": "gpu-0", "at": 1, "period": 2, "down": 3}, "down"),
                      ({"kind": "partition", "regions": ["eu"], "at": 1}, "regions")):
        with pytest.raises(ValidationError) as exc:
            Scenario(**base_spec(faults=[f]))
        assert needle in str(exc.value), (f, str(exc.value))
    # a group name and a node id are both valid targets
    Scenario(**base_spec(faults=[{"kind": "crash", "target": "gpu", "at": 1},
                                 {"kind": "crash", "target": "gpu-1", "at": 2}]))
