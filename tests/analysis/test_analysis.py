"""fedsim.analysis: every metric against numbers worked out by hand on small synthetic tables
(the reasoning is next to each expected value), percentiles against numpy on a large table,
replication intervals against a manual t interval, paired comparisons with a known shift, the
privacy alarm, and one real run whose outcomes must agree with the gateways' own counters."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fedsim import analysis as A
from fedsim.federation import PrivacyLevel
from fedsim.world import Scenario, run

NAN = math.nan


def cat(df: pd.DataFrame) -> pd.DataFrame:
    """String columns as categoricals, like the world's recorder produces them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = pd.Categorical(out[c])
    return out


def requests_table(rows: list[dict]) -> pd.DataFrame:
    base = {"request": 0, "arrival": 0.0, "gateway": "gw-a", "status": "success", "error": None,
            "latency": NAN, "ttft": NAN, "attempts": 1, "node": None, "region": None,
            "privacy": "internal"}
    recs = [{**base, "request": i, **r} for i, r in enumerate(rows)]
    return cat(pd.DataFrame.from_records(recs, columns=list(base)))


def attempts_table(rows: list[tuple]) -> pd.DataFrame:
    """rows: (request, gateway, kind, node, start[, error, detail])."""
    recs, count = [], {}
    for row in rows:
        req, gw, kind, node, start, *rest = row
        err, detail = (rest + [None, None])[:2]
        n = count.get(req, 0)
        count[req] = n + 1
        recs.append({"request": req, "attempt": n, "gateway": gw, "kind": kind, "node": node,
                     "error": err, "detail": detail, "start": start, "end": start + 0.1,
                     "backoff": 0.0})
    return cat(pd.DataFrame.from_records(recs))


def events_table(rows: list[tuple]) -> pd.DataFrame:
    return cat(pd.DataFrame.from_records(
        rows, columns=["time", "category", "source", "subject", "old", "new"]))


def row(df: pd.DataFrame, **where) -> pd.Series:
    m = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        m &= (df[k] == v).to_numpy()
    assert m.sum() == 1, (where, m.sum())
    return df[m].iloc[0]


# =========================================================================== percentiles

# gw-a: successes 1, 2, 3, 4 (arrivals 10-13) and 7 (arrival 27), a failure (latency 99);
# gw-b: successes 10, 20 (arrivals 15, 16), one in flight, and a success of 500 before warm-up.
LAT = requests_table([
    {"arrival": 10.0, "latency": 1.0, "ttft": 0.1},
    {"arrival": 11.0, "latency": 2.0},
    {"arrival": 12.0, "latency": 3.0, "ttft": 0.3},
    {"arrival": 13.0, "latency": 4.0},
    {"arrival": 14.0, "latency": 99.0, "status": "failed", "error": "Timeout"},
    {"arrival": 27.0, "latency": 7.0, "ttft": 0.5},
    {"arrival": 15.0, "latency": 10.0, "gateway": "gw-b"},
    {"arrival": 16.0, "latency": 20.0, "gateway": "gw-b"},
    {"arrival": 17.0, "status": "in_flight", "gateway": "gw-b"},
    {"arrival": 1.0, "latency": 500.0, "gateway": "gw-b"},
])


def test_percentiles_by_group_hand_computed():
    out = A.latency_percentiles(LAT, by="gateway", percentiles=(50, 90), warmup=5.0)
    assert list(out.columns) == ["gateway", "count", "p50", "p90", "max", "mean"]
    assert list(out["gateway"]) == ["gw-a", "gw-b"]
    a, b = out.iloc[0], out.iloc[1]
    # gw-a sorted [1, 2, 3, 4, 7], n - 1 = 4: p50 -> index ceil(2.0) = 2 -> 3;
    # p90 -> index ceil(3.6) = 4 -> 7.  The failure (99) does not count.
    assert (a["count"], a["p50"], a["p90"], a["max"], a["mean"]) == (5, 3.0, 7.0, 7.0, 3.4)
    # gw-b [10, 20] (500 arrived before warm-up, one in flight): p50 -> index ceil(0.5) = 1 -> 20
    assert (b["count"], b["p50"], b["p90"], b["max"], b["mean"]) == (2, 20.0, 20.0, 20.0, 15.0)


def test_percentiles_overall_default_columns_and_warmup():
    out = A.latency_percentiles(LAT, warmup=5.0)
    assert list(out.columns) == ["count", "p50", "p90", "p95", "p99", "p99_9", "max", "mean"]
    r = out.iloc[0]
    # [1, 2, 3, 4, 7, 10, 20], n - 1 = 6: p50 -> idx 3 -> 4; p90 -> ceil(5.4) = 6 -> 20;
    # p95, p99, p99.9 -> idx 6 -> 20
    assert (r["count"], r["p50"], r["p90"], r["p95"], r["p99"], r["p99_9"]) == (7, 4.0, 20.0, 20.0, 20.0, 20.0)
    # without warm-up the 500 ms outlier is the maximum
    assert A.latency_percentiles(LAT)["max"].iloc[0] == 500.0


def test_percentile_windows_include_empty_ones():
    out = A.latency_percentiles(LAT, by="gateway", percentiles=(50,), warmup=5.0, window=5.0)
    assert list(out.columns) == ["gateway", "window_start", "window_end", "count", "p50", "max", "mean"]
    # arrivals after warm-up span 10..27 -> windows [10,15) [15,20) [20,25) [25,30) per gateway
    assert list(out["window_start"]) == [10.0, 15.0, 20.0, 25.0] * 2
    assert list(out["window_end"]) == [15.0, 20.0, 25.0, 30.0] * 2
    assert list(out["count"]) == [4, 0, 0, 1, 0, 2, 0, 0]
    # gw-a [10,15): [1,2,3,4], n-1 = 3, p50 -> idx ceil(1.5) = 2 -> 3
    assert out["p50"].iloc[0] == 3.0 and out["p50"].iloc[3] == 7.0 and out["p50"].iloc[5] == 20.0
    assert out["p50"].iloc[[1, 2, 4, 6, 7]].isna().all()
    # no grouping: one row per window; [15, 20) holds gw-b's 10 and 20 -> p50 20
    flat = A.latency_percentiles(LAT, percentiles=(50,), warmup=5.0, window=5.0)
    assert list(flat["count"]) == [4, 2, 0, 1] and list(flat["p50"].iloc[[0, 1, 3]]) == [3.0, 20.0, 7.0]


def test_ttft_percentiles_are_nan_aware():
    out = A.latency_percentiles(LAT, by="gateway", column="ttft", percentiles=(50,), warmup=5.0)
    # gw-a ttft values [0.1, 0.3, 0.5] (NaN elsewhere): p50 -> idx ceil(1.0) = 1 -> 0.3
    a, b = out.iloc[0], out.iloc[1]
    assert (a["count"], a["p50"], a["max"]) == (3, 0.3, 0.5)
    assert b["count"] == 0 and math.isnan(b["p50"])  # gw-b has no ttft at all


def test_percentile_labels_and_validation():
    assert [A.percentile_label(p) for p in (50, 99.9, 99.99, 0.5)] == ["p50", "p99_9", "p99_99", "p0_5"]
    with pytest.raises(ValueError):
        A.latency_percentiles(LAT, percentiles=(50, 101))
    with pytest.raises(ValueError):
        A.latency_percentiles(LAT, window=0)
    with pytest.raises(ValueError, match="no column"):
        A.latency_percentiles(LAT, by="strategy")


def test_percentiles_match_numpy_higher_on_a_large_table():
    rng = np.random.default_rng(7)
    n = 200_000
    df = pd.DataFrame({
        "request": np.arange(n),
        "arrival": rng.uniform(0, 1000, n),
        "status": pd.Categorical(rng.choice(["success", "failed", "in_flight"], n, p=[0.9, 0.08, 0.02])),
        "latency": rng.lognormal(-3, 1, n),
        "strategy": rng.choice(["a", "b", "c", "d"], n),
    })
    ps = (0, 1, 33.3, 50, 90, 99, 99.9, 99.99, 100)
    out = A.latency_percentiles(df, by="strategy", percentiles=ps, warmup=100.0)
    assert len(out) == 4
    for strategy, r in out.set_index("strategy").iterrows():
        v = df.loc[(df["strategy"] == strategy) & (df["status"] == "success")
                   & (df["arrival"] >= 100.0), "latency"].to_numpy()
        expected = np.percentile(v, ps, method="higher")
        assert r["count"] == len(v)
        assert [r[A.percentile_label(p)] for p in ps] == list(expected)
        assert r["max"] == v.max()
        assert np.isin(expected, v).all()  # always an observed latency


# =========================================================================== outcomes

# arrivals = request number; duration 20 s.
#  gw-a: r0 ok (1 attempt), r1 ok (3), r2 failed NodeUnreachable (4), r3 in flight (2)
#  gw-b: r4 ok (2), r5 failed AllNodesUnhealthy (4), r6 ok (3), r7 ok (1)
OUT_REQ = requests_table([
    {"arrival": 0.0, "attempts": 1, "node": "n1", "region": "eu", "latency": 1.0},
    {"arrival": 1.0, "attempts": 3, "node": "n1", "region": "eu", "latency": 1.0},
    {"arrival": 2.0, "attempts": 4, "status": "failed", "error": "NodeUnreachable", "latency": 1.0},
    {"arrival": 3.0, "attempts": 2, "status": "in_flight"},
    {"arrival": 4.0, "attempts": 2, "gateway": "gw-b", "node": "n2", "region": "us", "latency": 1.0},
    {"arrival": 5.0, "attempts": 4, "gateway": "gw-b", "status": "failed",
     "error": "AllNodesUnhealthy", "latency": 1.0},
    {"arrival": 6.0, "attempts": 3, "gateway": "gw-b", "node": "n1", "region": "eu", "latency": 1.0},
    {"arrival": 7.0, "attempts": 1, "gateway": "gw-b", "node": "n1", "region": "eu", "latency": 1.0},
])
OUT_ATT = attempts_table([
    (0, "gw-a", "success", "n1", 0.0),
    (1, "gw-a", "failure", "n2", 1.0, "NodeUnreachable", "crashed"),
    (1, "gw-a", "failure", "n2", 1.2, "NodeUnreachable", "crashed"),
    (1, "gw-a", "success", "n1", 1.5),
    (2, "gw-a", "failure", "n2", 2.0, "NodeUnreachable", "crashed"),
    (2, "gw-a", "route_error", None, 2.2, "AllNodesUnhealthy"),
    (2, "gw-a", "circuit_open", "n2", 2.3, "CircuitOpen"),
    (2, "gw-a", "failure", "n2", 2.4, "NodeUnreachable", "partitioned"),
    (3, "gw-a", "failure", "n2", 3.0, "InternalError", "queue_full"),
    (3, "gw-a", "failure", "n2", 3.2, "InternalError", "queue_full"),
    (4, "gw-b", "route_error", None, 4.0, "AllNodesUnhealthy"),
    (4, "gw-b", "success", "n2", 4.1),
    (5, "gw-b", "failure", "n1", 5.0, "Timeout", "timeout"),
    (5, "gw-b", "failure", "n1", 5.2, "Timeout", "timeout"),
    (5, "gw-b", "failure", "n1", 5.4, "Timeout", "timeout"),
    (5, "gw-b", "failure", "n1", 5.6, "Timeout", "timeout"),
    (6, "gw-b", "circuit_open", "n2", 6.0, "CircuitOpen"),
    (6, "gw-b", "failure", "n2", 6.1, "InternalError", "error_fault"),
    (6, "gw-b", "success", "n1", 6.3),
    (7, "gw-b", "success", "n1", 7.0),
])


def test_outcomes_by_gateway_hand_computed():
    out = A.outcomes(OUT_REQ, OUT_ATT, by="gateway", duration=20.0)
    a, b = row(out, gateway="gw-a"), row(out, gateway="gw-b")
    # gw-a: 2 ok of 3 finished (r3 still in flight) -> 2/3; of all 4 -> 1/2; 2 ok / 20 s
    assert (a["requests"], a["succeeded"], a["failed"], a["in_flight"]) == (4, 2, 1, 1)
    assert a["success_rate"] == pytest.approx(2 / 3) and a["success_rate_total"] == 0.5
    assert a["goodput"] == pytest.approx(0.1)
    # attempts 1+3+4+2 = 10; retries (0+2+3+1)/4 = 1.5
    assert (a["attempts"], a["attempts_per_request"], a["retries_per_request"]) == (10, 2.5, 1.5)
    # retried and finished: r1 (ok), r2 (failed); r3 is in flight -> 1 of 2
    assert (a["retried"], a["retried_succeeded"], a["retry_effectiveness"]) == (2, 1, 0.5)
    # kinds: failures r1 2 + r2 2 + r3 2; one route error and one circuit rejection (r2)
    assert (a["attempt_failures"], a["route_errors"], a["circuit_rejections"]) == (6, 1, 1)
    # gw-b: 3 ok of 4; attempts 2+4+3+1 = 10; retries (1+3+2+0)/4 = 1.5; retried r4 ok, r5
    # failed, r6 ok -> 2/3
    assert (b["requests"], b["succeeded"], b["failed"], b["in_flight"]) == (4, 3, 1, 0)
    assert b["success_rate"] == 0.75 and b["success_rate_total"] == 0.75
    assert b["goodput"] == pytest.approx(0.15)
    assert (b["attempts"], b["retries_per_request"]) == (10, 1.5)
    assert (b["retried"], b["retried_succeeded"]) == (3, 2)
    assert b["retry_effectiveness"] == pytest.approx(2 / 3)
    assert (b["attempt_failures"], b["route_errors"], b["circuit_rejections"]) == (5, 1, 1)


def test_outcomes_overall_warmup_and_without_attempts():
    out = A.outcomes(OUT_REQ, OUT_ATT, duration=20.0).iloc[0]
    # 5 ok of 7 finished, of 8 total; 5 / 20 s; retried 5 (r1 r2 r4 r5 r6), 3 ok
    assert (out["requests"], out["succeeded"], out["failed"], out["in_flight"]) == (8, 5, 2, 1)
    assert out["success_rate"] == pytest.approx(5 / 7) and out["success_rate_total"] == 5 / 8
    assert out["goodput"] == 0.25 and out["retry_effectiveness"] == pytest.approx(0.6)
    # warm-up 1.5 drops r0, r1 (arrivals 0 and 1): gw-a keeps r2 failed and r3 in flight;
    # goodput over 20 - 1.5 s
    w = A.outcomes(OUT_REQ, OUT_ATT, by="gateway", warmup=1.5, duration=20.0)
    a = row(w, gateway="gw-a")
    assert (a["requests"], a["succeeded"], a["failed"], a["in_flight"]) == (2, 0, 1, 1)
    assert a["success_rate"] == 0.0 and a["goodput"] == 0.0
    assert (a["attempt_failures"], a["route_errors"]) == (4, 1)  # r2's 2 + r3's 2
    assert row(w, gateway="gw-b")["goodput"] == pytest.approx(3 / 18.5)
    # no attempts table: the kind counts are NaN, the rest unchanged
    bare = A.outcomes(OUT_REQ, by="gateway", duration=20.0)
    assert bare["attempt_failures"].isna().all()
    assert list(bare["retries_per_request"]) == [1.5, 1.5]
    # duration inferred from the tables: the last answer, r7 at 7.0 + 1.0 (later than the
    # last attempt end, 7.0 + 0.1)
    assert A.outcomes(OUT_REQ, OUT_ATT)["goodput"].iloc[0] == pytest.approx(5 / 8.0)


def test_error_and_attempt_breakdown():
    out = A.error_breakdown(OUT_REQ, by="gateway")
    assert list(out.columns) == ["gateway", "error", "count", "share_of_failed", "share_of_requests"]
    assert out.values.tolist() == [["gw-a", "NodeUnreachable", 1, 1.0, 0.25],
                                   ["gw-b", "AllNodesUnhealthy", 1, 1.0, 0.25]]
    overall = A.error_breakdown(OUT_REQ)
    assert overall.values.tolist() == [["AllNodesUnhealthy", 1, 0.5, 0.125],
                                       ["NodeUnreachable", 1, 0.5, 0.125]]
    att = A.attempt_breakdown(OUT_ATT, by="gateway")
    a = att[att["gateway"] == "gw-a"]
    # gw-a: 10 attempts: 3 crashed, 1 partitioned, 2 queue_full, 1 route error, 1 circuit open
    got = {(k, e, None if pd.isna(d) else d): (c, s) for k, e, d, c, s in
           a[["kind", "error", "detail", "count", "share_of_attempts"]].itertuples(index=False)}
    assert got == {("circuit_open", "CircuitOpen", None): (1, 0.1),
                   ("failure", "InternalError", "queue_full"): (2, 0.2),
                   ("failure", "NodeUnreachable", "crashed"): (3, 0.3),
                   ("failure", "NodeUnreachable", "partitioned"): (1, 0.1),
                   ("route_error", "AllNodesUnhealthy", None): (1, 0.1)}
    b = att[att["gateway"] == "gw-b"]
    assert int(b.loc[b["detail"] == "timeout", "count"].iloc[0]) == 4


# =========================================================================== privacy

PRIV_REQ = requests_table([
    {"privacy": "internal", "region": "us", "node": "u"},        # public < internal: violation
    {"privacy": "restricted", "region": "eu", "node": "e"},      # confidential < restricted: violation
    {"privacy": "internal", "region": "eu", "node": "e"},        # fine
    {"privacy": "public", "region": "us", "node": "u", "gateway": "gw-b"},  # fine
    {"privacy": "restricted", "status": "failed", "error": "X"},  # not served: not judged
])
REGION_PRIVACY = {"eu": "confidential", "us": PrivacyLevel.PUBLIC}


def test_privacy_violations_warn_loudly():
    with pytest.warns(A.PrivacyViolationWarning, match="2 of 4 served"):
        out = A.report_privacy_violations(PRIV_REQ, REGION_PRIVACY, by="gateway")
    assert out.values.tolist() == [["gw-a", 3, 2, True], ["gw-b", 1, 0, False]]
    bad = A.privacy_violations(PRIV_REQ, REGION_PRIVACY)
    assert list(bad["request"]) == [0, 1]
    assert list(bad["region_privacy"]) == ["public", "confidential"]
    assert list(bad["privacy"]) == ["internal", "restricted"]
    with pytest.warns(A.PrivacyViolationWarning):
        o = A.outcomes(PRIV_REQ, None, region_privacy=REGION_PRIVACY)
    assert o["privacy_violations"].iloc[0] == 2


def test_no_privacy_violation_is_silent_and_unknown_regions_raise():
    clean = PRIV_REQ[PRIV_REQ["request"] >= 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = A.report_privacy_violations(clean, REGION_PRIVACY)
    assert out.values.tolist() == [[2, 0, False]]
    with pytest.raises(ValueError, match="'us'"):
        A.report_privacy_violations(PRIV_REQ, {"eu": 2})


# =========================================================================== faults

NODES = pd.DataFrame({"node": ["n1", "n2", "n3"], "group": ["g", "g", "h"],
                      "region": ["r1", "r1", "r2"]})
EVENTS = events_table([
    (0.5, "health", "gw-a", "n1", "Unknown", "Healthy"),
    (0.5, "health", "gw-b", "n1", "Unknown", "Healthy"),
    (1.0, "circuit", "gw-a", "n1", "Closed", "Open"),
    (2.0, "circuit", "gw-a", "n1", "Open", "HalfOpen"),
    (2.5, "circuit", "gw-a", "n1", "HalfOpen", "Closed"),
    (10.0, "fault", "crash", "n1", "start", ""),
    (11.0, "health", "gw-a", "n1", "Healthy", "Degraded"),
    (12.0, "health", "gw-a", "n1", "Degraded", "Unhealthy"),
    (12.5, "circuit", "gw-b", "n1", "Closed", "Open"),
    (13.0, "circuit", "gw-b", "n1", "Open", "HalfOpen"),
    (13.2, "circuit", "gw-b", "n1", "HalfOpen", "Open"),
    (20.0, "fault", "crash", "n1", "end", ""),
    (21.0, "health", "gw-a", "n1", "Unhealthy", "Healthy"),
    (22.0, "circuit", "gw-b", "n1", "Open", "HalfOpen"),
    (23.0, "circuit", "gw-b", "n1", "HalfOpen", "Closed"),
    (30.0, "fault", "region_outage", "r2", "start", ""),     # never ends
    (31.0, "health", "gw-a", "n3", "Unknown", "Unhealthy"),
    (35.0, "fault", "hang", "n3", "start", ""),
    (36.0, "fault", "hang", "n3", "end", ""),
    (40.0, "fault", "partition", "r1<->r2", "start", ""),
    (41.0, "fault", "partition", "r1<->r2", "end", ""),
    (50.0, "fault", "slow", "g", "start", ""),
    (55.0, "fault", "slow", "g", "end", ""),
])
GATEWAYS = {"gw-a": "r1", "gw-b": "r2"}
# requests: gw-a 1..6, gw-b 7..11
FAULT_ATT = attempts_table([
    (1, "gw-a", "success", "n1", 9.0),
    (2, "gw-a", "failure", "n1", 10.5), (2, "gw-a", "failure", "n1", 11.5),
    (2, "gw-a", "route_error", None, 11.7), (2, "gw-a", "circuit_open", "n1", 11.8),
    (3, "gw-a", "success", "n2", 10.1), (4, "gw-a", "success", "n2", 10.3),
    (5, "gw-a", "success", "n1", 21.5), (6, "gw-a", "success", "n3", 29.0),
    (7, "gw-b", "failure", "n1", 10.2), (7, "gw-b", "failure", "n1", 11.0),
    (8, "gw-b", "failure", "n1", 12.4), (8, "gw-b", "circuit_open", "n1", 12.6),
    (9, "gw-b", "success", "n1", 25.0),
    (10, "gw-b", "failure", "n3", 30.5), (11, "gw-b", "failure", "n3", 35.5),
])


def test_fault_windows_pair_starts_and_ends():
    w = A.fault_windows(EVENTS)
    assert list(w.columns) == ["fault", "kind", "subject", "start", "end", "duration"]
    assert list(w["kind"]) == ["crash", "region_outage", "hang", "partition", "slow"]
    assert list(w["start"]) == [10.0, 30.0, 35.0, 40.0, 50.0]
    assert w["end"].tolist()[0] == 20.0 and math.isnan(w["end"].iloc[1])
    assert w["duration"].tolist()[2:] == [1.0, 1.0, 5.0]
    # flapping cycles on one node pair first-in first-out
    flap = events_table([(t, "fault", "flapping", "n1", what, "") for t, what in
                         [(1, "start"), (2, "end"), (5, "start"), (6.5, "end"), (9, "start")]])
    f = A.fault_windows(flap)
    assert f[["start", "end"]].values.tolist()[:2] == [[1.0, 2.0], [5.0, 6.5]]
    assert f["start"].iloc[2] == 9.0 and math.isnan(f["end"].iloc[2])


def test_detection_times_hand_computed():
    d = A.detection_times(EVENTS, FAULT_ATT, nodes=NODES, gateways=GATEWAYS)
    # crash n1 at 10: gw-a turns it Unhealthy at 12 (its earlier 1.0-2.5 circuit episode had
    # closed); it sent 10.5 and 11.5 before (the 11.8 circuit rejection never left)
    a = row(d, fault=0, gateway="gw-a")
    assert (a["node"], a["excluded_at_start"], a["unhealthy_at"], a["detected_at"],
            a["time_to_detect"], a["first_failure_at"], a["attempts_before_detect"]) == (
        "n1", False, 12.0, 12.0, 2.0, 10.5, 2)
    assert math.isnan(a["circuit_open_at"])
    # gw-b: its circuit opens at 12.5; it sent 10.2, 11.0 and 12.4 before
    b = row(d, fault=0, gateway="gw-b")
    assert (b["circuit_open_at"], b["detected_at"], b["time_to_detect"], b["first_failure_at"],
            b["attempts_before_detect"]) == (12.5, 12.5, 2.5, 10.2, 3)
    assert math.isnan(b["unhealthy_at"])
    # region outage r2 (node n3) from 30, never ending: gw-a detects at 31; gw-b never does
    # and keeps sending (30.5, 35.5)
    a = row(d, fault=1, gateway="gw-a")
    assert (a["node"], a["time_to_detect"], a["attempts_before_detect"]) == ("n3", 1.0, 0)
    assert math.isnan(a["first_failure_at"])
    b = row(d, fault=1, gateway="gw-b")
    assert math.isnan(b["detected_at"]) and b["attempts_before_detect"] == 2
    assert b["first_failure_at"] == 30.5
    # hang n3 35-36: gw-a already has n3 Unhealthy -> detected at the start, 0 s
    a = row(d, fault=2, gateway="gw-a")
    assert a["excluded_at_start"] and a["detected_at"] == 35.0 and a["time_to_detect"] == 0.0
    b = row(d, fault=2, gateway="gw-b")
    assert math.isnan(b["time_to_detect"]) and b["attempts_before_detect"] == 1  # 35.5
    # partition r1<->r2: gw-a (r1) loses n3, gw-b (r2) loses n1 and n2
    p = d[d["fault"] == 3]
    assert sorted(zip(p["gateway"], p["node"])) == [("gw-a", "n3"), ("gw-b", "n1"), ("gw-b", "n2")]
    # slow on group g: n1 and n2 for both gateways, nobody notices
    s = d[d["fault"] == 4]
    assert sorted(zip(s["node"], s["gateway"])) == [("n1", "gw-a"), ("n1", "gw-b"),
                                                    ("n2", "gw-a"), ("n2", "gw-b")]
    assert s["detected_at"].isna().all()


def test_unresolvable_faults_are_skipped_with_a_warning():
    with pytest.warns(UserWarning, match="partition 'r1<->r2'"):
        d = A.detection_times(EVENTS, FAULT_ATT, nodes=NODES)  # no gateway regions
    assert 3 not in set(d["fault"]) and {0, 1, 2, 4} == set(d["fault"])
    with pytest.warns(UserWarning, match="region_outage 'r2'"):
        d = A.detection_times(EVENTS, FAULT_ATT, kinds=["crash", "region_outage"])
    assert set(d["fault"]) == {0}


def test_recovery_times_and_circuit_episodes():
    r = A.recovery_times(EVENTS, FAULT_ATT, nodes=NODES, gateways=GATEWAYS)
    # crash ends at 20: gw-a's first success on n1 after it starts at 21.5; Healthy at 21;
    # its only circuit episode (1.0-2.5) closed before the fault -> no circuit recovery
    a = row(r, fault=0, gateway="gw-a")
    assert (a["back_at"], a["time_to_recover"], a["healthy_at"], a["time_to_healthy"]) == (
        21.5, 1.5, 21.0, 1.0)
    assert math.isnan(a["circuit_recovery"])
    # gw-b: back at 25 (5 s); health never left Healthy -> 0 s; circuit Open 12.5 -> Closed 23
    b = row(r, fault=0, gateway="gw-b")
    assert (b["back_at"], b["time_to_recover"], b["healthy_at"], b["time_to_healthy"]) == (
        25.0, 5.0, 20.0, 0.0)
    assert (b["circuit_open_at"], b["circuit_closed_at"], b["circuit_recovery"]) == (12.5, 23.0, 10.5)
    # the outage never ended: nothing to recover from
    assert r.loc[r["fault"] == 1, ["back_at", "time_to_recover", "healthy_at"]].isna().all().all()
    # hang n3 ended at 36: gw-a has n3 Unhealthy for good and never uses it again
    a = row(r, fault=2, gateway="gw-a")
    assert math.isnan(a["back_at"]) and math.isnan(a["healthy_at"])
    ep = A.circuit_episodes(EVENTS)
    assert list(ep.columns) == ["gateway", "node", "opened_at", "closed_at", "duration", "reopens"]
    assert ep.values.tolist() == [["gw-a", "n1", 1.0, 2.5, 1.5, 0], ["gw-b", "n1", 12.5, 23.0, 10.5, 1]]


def test_traffic_to_down_nodes_hand_computed():
    t = A.traffic_to_down_nodes(FAULT_ATT, EVENTS, by="gateway", nodes=NODES)
    assert list(t.columns) == ["gateway", "attempts", "to_down", "share", "requests",
                               "requests_to_down", "request_share"]
    # down: n1 [10, 20) (crash), n3 [30, end) (outage) and [35, 36) (hang); slow is not down.
    # gw-a sent 7 (route error and circuit rejection never left): 10.5 and 11.5 to crashed
    # n1; requests 1..6, only r2 hit a down node
    a, b = row(t, gateway="gw-a"), row(t, gateway="gw-b")
    assert (a["attempts"], a["to_down"], a["requests"], a["requests_to_down"]) == (7, 2, 6, 1)
    assert a["share"] == pytest.approx(2 / 7) and a["request_share"] == pytest.approx(1 / 6)
    # gw-b sent 6: 10.2, 11.0, 12.4 to n1 and 30.5, 35.5 to n3 are down; 25.0 is not;
    # requests 7..11, all but r9 hit a down node
    assert (b["attempts"], b["to_down"], b["requests"], b["requests_to_down"]) == (6, 5, 5, 4)
    overall = A.traffic_to_down_nodes(FAULT_ATT, EVENTS, nodes=NODES).iloc[0]
    assert (overall["attempts"], overall["to_down"], overall["requests"],
            overall["requests_to_down"]) == (13, 7, 11, 5)
    # only crashes: 5 attempts
    assert A.traffic_to_down_nodes(FAULT_ATT, EVENTS, kinds=["crash"])["to_down"].iloc[0] == 5


# =========================================================================== load, GPU, cost


def test_load_imbalance_hand_computed():
    req = requests_table([{"node": "n1", "region": "eu"}] * 6 + [{"node": "n2", "region": "eu"}] * 2
                         + [{"status": "failed", "error": "X"}] * 3)
    # served [6, 2]: mean 4, population std 2 -> cv 0.5, max/mean 1.5
    r = A.load_imbalance(req).iloc[0]
    assert (r["nodes"], r["total"], r["mean"], r["std"], r["cv"], r["min"], r["max"],
            r["max_over_mean"]) == (2, 8, 4.0, 2.0, 0.5, 2.0, 6.0, 1.5)
    # with idle n3: [6, 2, 0]: mean 8/3, std sqrt(((10/3)^2 + (2/3)^2 + (8/3)^2) / 3)
    # = sqrt(56) / 3, cv = sqrt(56) / 8, max/mean = 6 / (8/3) = 2.25
    r = A.load_imbalance(req, all_nodes=["n1", "n2", "n3"]).iloc[0]
    assert r["nodes"] == 3 and r["mean"] == pytest.approx(8 / 3)
    assert r["std"] == pytest.approx(math.sqrt(56) / 3)
    assert r["cv"] == pytest.approx(math.sqrt(56) / 8) and r["max_over_mean"] == pytest.approx(2.25)
    # attempts: served = successes; sent = successes and failures
    att = attempts_table([(0, "g", "success", "n1", 0.0), (1, "g", "failure", "n2", 0.0),
                          (1, "g", "failure", "n2", 0.0), (1, "g", "success", "n1", 0.0),
                          (2, "g", "route_error", None, 0.0)])
    served = A.load_imbalance(att, all_nodes=["n1", "n2"]).iloc[0]
    assert (served["total"], served["max"], served["max_over_mean"]) == (2, 2.0, 2.0)  # [2, 0]
    sent = A.load_imbalance(att, load="sent").iloc[0]
    assert (sent["total"], sent["cv"]) == (4, 0.0)  # [2, 2]
    with pytest.raises(ValueError):
        A.load_imbalance(req, load="sent")


def test_gpu_utilization_deduplicates_gateways():
    rows = []
    util = {"A": [0.2, 0.4, 0.6, 0.8], "B": [1.0, 0.0, 0.5, 0.5]}
    up = {"A": [True] * 4, "B": [True, False, True, True]}
    for i, t in enumerate([1.0, 2.0, 3.0, 4.0]):
        for node in "AB":
            for gw in ("gw-a", "gw-b", "gw-c"):  # node state repeats per gateway
                rows.append({"time": t, "node": node, "gateway": gw, "queue_depth": i,
                             "in_flight": 0, "busy_gpus": 2 * i, "gpu_utilization": util[node][i],
                             "up": up[node][i], "health": "Healthy", "circuit": "Closed",
                             "latency_estimate": 0.1})
    ts = cat(pd.DataFrame(rows))
    out = A.gpu_utilization(ts)
    assert list(out.columns) == ["node", "samples", "gpu_utilization", "gpu_utilization_max",
                                 "busy_gpus_mean", "queue_depth_mean", "up_share"]
    a, b = row(out, node="A"), row(out, node="B")
    assert a["samples"] == 4 and a["gpu_utilization"] == pytest.approx(0.5)  # (0.2+...+0.8)/4
    assert a["gpu_utilization_max"] == 0.8 and a["busy_gpus_mean"] == 3.0  # (0+2+4+6)/4
    assert b["gpu_utilization"] == pytest.approx(0.5) and b["up_share"] == 0.75
    # warm-up 2: samples at 3 and 4 cover (2, 3] and (3, 4] -> A (0.6 + 0.8) / 2
    w = A.gpu_utilization(ts, warmup=2.0)
    assert row(w, node="A")["gpu_utilization"] == pytest.approx(0.7) and row(w, node="A")["samples"] == 2


def test_cost_per_request():
    req = requests_table([{"region": "eu", "node": "e"}] * 3 + [{"region": "us", "node": "u"}]
                         + [{"status": "failed", "error": "X"}])
    out = A.cost_per_request(req, {"eu": 0.8, "us": 0.2}).iloc[0]
    # 3 x 0.8 + 0.2 = 2.6 over 4 served; the failure costs nothing
    assert (out["requests"], out["served"]) == (5, 4)
    assert out["total_cost"] == pytest.approx(2.6) and out["cost_per_request"] == pytest.approx(0.65)
    with pytest.raises(ValueError, match="'us'"):
        A.cost_per_request(req, {"eu": 0.8})


# =========================================================================== replications


def test_replication_summary_matches_a_manual_t_interval():
    df = pd.DataFrame({"strategy": ["a"] * 5 + ["b"] * 3,
                       "p99": [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 12.0, NAN],
                       "rate": [0.9, 0.8, 1.0, 0.9, 0.9, 0.5, 0.5, 0.5]})
    out = A.replication_summary(df, ["p99", "rate"], by="strategy", confidence=0.95)
    assert list(out.columns) == ["strategy", "metric", "n", "mean", "std", "sem", "ci_low", "ci_high"]
    a = row(out, strategy="a", metric="p99")
    # mean 3, sample std sqrt(10/4), t(0.975, 4) = 2.7764451 (table value)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (a["n"], a["mean"]) == (5, 3.0) and a["std"] == pytest.approx(math.sqrt(2.5))
    assert a["ci_low"] == pytest.approx(3 - half) and a["ci_high"] == pytest.approx(3 + half)
    # b's p99 has a NaN: n = 2, mean 11, std sqrt(2), t(0.975, 1) = 12.7062047
    b = row(out, strategy="b", metric="p99")
    assert (b["n"], b["mean"]) == (2, 11.0)
    assert b["ci_high"] - b["mean"] == pytest.approx(12.706204736174707 * math.sqrt(2) / math.sqrt(2))
    # zero spread: a point interval
    r = row(out, strategy="b", metric="rate")
    assert (r["std"], r["ci_low"], r["ci_high"]) == (0.0, 0.5, 0.5)
    # a random case against scipy's own interval
    v = np.random.default_rng(3).normal(10, 2, 17)
    got = A.replication_summary(pd.DataFrame({"x": v}), "x", confidence=0.9).iloc[0]
    lo, hi = stats.t.interval(0.9, 16, loc=v.mean(), scale=stats.sem(v))
    assert got["ci_low"] == pytest.approx(lo) and got["ci_high"] == pytest.approx(hi)
    one = A.replication_summary(pd.DataFrame({"x": [1.0]}), "x").iloc[0]
    assert one["n"] == 1 and one["mean"] == 1.0 and math.isnan(one["ci_low"])


def _paired_frame():
    rng = np.random.default_rng(11)
    seeds = np.arange(20)
    base = rng.normal(100, 10, 20)  # the seed's luck, shared by every variant (CRN)
    shift = base + 5.0 + rng.normal(0, 1, 20)
    sym = np.array([1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, -0.5, 4.0, -4.0] * 2)
    rows = [{"strategy": s, "seed": int(k), "p99": float(v)}
            for s, vals in (("A", base), ("B", shift), ("C", base + sym))
            for k, v in zip(seeds, vals)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1), base, shift, base + sym


def test_paired_comparison_known_shift_and_no_shift():
    df, base, shift, same = _paired_frame()
    out = A.paired_comparison(df, "p99", "strategy", "A")
    assert set(out["variant"]) == {"B", "C"} and set(out["baseline"]) == {"A"}
    b, c = row(out, variant="B"), row(out, variant="C")
    d = shift - base
    half = stats.t.ppf(0.975, 19) * d.std(ddof=1) / math.sqrt(20)
    assert b["n"] == 20 and b["mean_diff"] == pytest.approx(d.mean())
    assert b["ci_low"] == pytest.approx(d.mean() - half) and b["ci_high"] == pytest.approx(d.mean() + half)
    assert b["ci_low"] < 5.0 < b["ci_high"] and b["ci_low"] > 0  # covers the true shift, excludes 0
    assert b["p_value"] == pytest.approx(stats.ttest_rel(shift, base).pvalue)
    assert b["p_value"] < 1e-10 and b["wilcoxon_p_value"] < 1e-4 and b["significant"]
    assert b["baseline_mean"] == pytest.approx(base.mean())
    assert b["relative_diff"] == pytest.approx(d.mean() / base.mean())
    # C differs from A by +x/-x pairs: mean difference exactly 0, nothing to see
    assert c["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert c["p_value"] > 0.9 and c["wilcoxon_p_value"] > 0.9 and not c["significant"]
    assert c["ci_low"] < 0 < c["ci_high"]


def test_paired_comparison_small_n_degenerate_and_errors():
    df = pd.DataFrame({"v": ["A", "A", "A", "B", "B", "B"], "seed": [1, 2, 3, 1, 2, 3],
                       "m": [1.0, 2.0, 3.0, 2.0, 3.0, 4.0]})
    r = A.paired_comparison(df, "m", "v", "A", confidence=0.95).iloc[0]
    # every difference is exactly +1: CI [1, 1], p = 0; fewer than 6 pairs: no Wilcoxon
    assert (r["n"], r["mean_diff"], r["ci_low"], r["ci_high"], r["p_value"]) == (3, 1.0, 1.0, 1.0, 0.0)
    assert math.isnan(r["wilcoxon_p_value"])
    with pytest.raises(ValueError, match=r"only in baseline \[3\]"):
        A.paired_comparison(df.iloc[:-1], "m", "v", "A")
    with pytest.raises(ValueError, match="more than one row"):
        A.paired_comparison(pd.concat([df, df.iloc[:1]]), "m", "v", "A")
    with pytest.raises(ValueError, match="baseline 'Z'"):
        A.paired_comparison(df, "m", "v", "Z")
    # by: pairs are formed inside each group
    two = pd.concat([df.assign(scenario="x"), df.assign(scenario="y", m=df["m"] * 2)])
    g = A.paired_comparison(two, "m", "v", "A", by="scenario")
    assert list(g["scenario"]) == ["x", "y"] and list(g["mean_diff"]) == [1.0, 2.0]


# =========================================================================== a real run

MODELS = [{"model": "llm", "capabilities": ["generate"]}]


@pytest.fixture(scope="module")
def real():
    sc = Scenario(
        duration=40.0,
        regions=[{"id": "eu", "privacy": "confidential", "cost": 0.8},
                 {"id": "us", "privacy": "public", "cost": 0.2}],
        network={"intra_region_rtt": 0.0, "rtt": {"eu": {"us": 0.02}}},
        gateways=[{"name": "gw-eu", "region": "eu"}, {"name": "gw-us", "region": "us"}],
        nodes=[{"name": "eu", "region": "eu", "count": 2, "gpus": 2, "models": MODELS},
               {"name": "us", "region": "us", "count": 2, "gpus": 2, "models": MODELS}],
        router={"strategy": "random", "min_score": 0.0, "fixes": ["active_probes"],
                "health": {"check_interval": 1.0}, "gateway": {"max_retries": 1}},
        workloads=[{"arrival": {"kind": "poisson", "rate": 30},
                    "privacy": {"public": 0.4, "internal": 0.4, "confidential": 0.2}}],
        faults=[{"kind": "crash", "target": "eu-0", "at": 10.0, "duration": 6.0},
                {"kind": "region_outage", "target": "us", "at": 25.0, "duration": 4.0}])
    return sc, run(sc, seed=3)


def test_real_run_outcomes_agree_with_gateway_stats(real):
    sc, res = real
    out = A.outcomes(res.requests, res.attempts, by="gateway", duration=res.simulated_seconds)
    assert set(out["gateway"]) == set(res.gateway_stats) == {"gw-eu", "gw-us"}
    for r in out.itertuples():
        s = res.gateway_stats[r.gateway]
        assert (r.requests, r.succeeded, r.failed) == (s.total_requests, s.successful_requests,
                                                       s.failed_requests)
        assert r.success_rate_total == pytest.approx(s.successful_requests / s.total_requests)
        assert r.goodput == pytest.approx(s.successful_requests / 40.0)
        assert r.attempts == (res.attempts["gateway"] == r.gateway).sum()
    assert out["failed"].sum() > 0 and out["retried"].sum() > 0  # the faults bite
    overall = A.outcomes(res.requests, res.attempts, duration=res.simulated_seconds).iloc[0]
    summary = res.summary()
    assert overall["success_rate"] == pytest.approx(summary["success_rate"])
    assert overall["retries_per_request"] == pytest.approx(summary["retries_per_request"])
    lat = A.latency_percentiles(res.requests).iloc[0]
    assert (lat["p50"], lat["p90"], lat["p99"], lat["p99_9"]) == (
        summary["latency_p50"], summary["latency_p90"], summary["latency_p99"], summary["latency_p999"])
    # the enterprise policy honours region privacy: no violation, no warning
    regions = A.regions_table(sc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        priv = A.report_privacy_violations(res.requests, dict(zip(regions["region"], regions["privacy"])))
    assert priv["privacy_violations"].iloc[0] == 0 and priv["served"].iloc[0] == summary["succeeded"]
    cost = A.cost_per_request(res.requests, dict(zip(regions["region"], regions["cost"]))).iloc[0]
    assert 0.2 <= cost["cost_per_request"] <= 0.8


def test_real_run_fault_metrics_are_consistent(real):
    sc, res = real
    nodes, gws = A.nodes_table(sc), A.gateways_table(sc)
    assert nodes.values.tolist() == [["eu-0", "eu", "eu", 2, "confidential", 0.8],
                                     ["eu-1", "eu", "eu", 2, "confidential", 0.8],
                                     ["us-0", "us", "us", 2, "public", 0.2],
                                     ["us-1", "us", "us", 2, "public", 0.2]]
    assert gws.values.tolist() == [["gw-eu", "eu"], ["gw-us", "us"]]
    # without gateways the world puts one per region, named gw-<region>
    assert A.gateways_table(sc.model_copy(update={"gateways": []}))["gateway"].tolist() == ["gw-eu", "gw-us"]
    det = A.detection_times(res.events, res.attempts, nodes=nodes, gateways=gws)
    # crash eu-0 (2 gateways) + outage us (2 nodes x 2 gateways)
    assert len(det) == 6
    # active probes every second with failure threshold 3 find every dead node within ~3 s
    assert det["time_to_detect"].between(0.0, 4.0).all()
    rec = A.recovery_times(res.events, res.attempts, nodes=nodes, gateways=gws)
    assert rec["time_to_recover"].notna().all() and (rec["time_to_recover"] >= 0).all()
    assert (rec["back_at"] >= rec["end"]).all()
    # with no delay inside a region an attempt reaches a node of its gateway's region at its
    # start: those sent to a down node are exactly those the node refused as crashed
    down = A.traffic_to_down_nodes(res.attempts, res.events, by=["gateway", "node"], nodes=nodes)
    a = res.attempts
    crashed = a[a["detail"] == "crashed"].groupby(["gateway", "node"], observed=True).size()
    local = [r for r in down.itertuples() if r.gateway[3:] == r.node[:2]]
    assert len(local) == 4
    for r in local:
        assert r.to_down == crashed.get((r.gateway, r.node), 0)
    assert sum(r.to_down for r in local) > 0
    total = A.traffic_to_down_nodes(a, res.events, nodes=nodes).iloc[0]
    assert total["to_down"] == down["to_down"].sum() and total["attempts"] == a["kind"].isin(["success", "failure"]).sum()
    load = A.load_imbalance(res.requests, all_nodes=nodes["node"]).iloc[0]
    assert load["nodes"] == 4 and load["total"] == res.summary()["succeeded"]
    gpu = A.gpu_utilization(res.timeseries)
    assert list(gpu["node"]) == ["eu-0", "eu-1", "us-0", "us-1"]
    # one sample per second at 1..39 (the run stops at 40 before sampling), whatever the
    # number of gateways repeating it
    assert gpu["samples"].eq(39).all() and gpu["gpu_utilization"].between(0, 1).all()
    assert 0 < gpu["gpu_utilization"].min()
    # eu-0 was down from 10 to 16: the crash (scheduled first) lands before the sample at 10,
    # the repair before the sample at 16, so 6 of 39 samples are down
    assert row(gpu, node="eu-0")["up_share"] == pytest.approx(33 / 39)
