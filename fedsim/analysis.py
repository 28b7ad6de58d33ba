"""fedsim.analysis: the numbers behind a comparison, computed from a run's tables.

Every function takes the pandas tables of :class:`fedsim.world.Result` (``requests``,
``attempts``, ``timeseries``, ``events``; columns in :mod:`fedsim.world.result`) and returns a
DataFrame whose columns are listed in its docstring, so results of several runs concatenate
and compare.  Pure pandas / numpy / scipy: nothing here needs the simulator.

Conventions (shared by every function):

* Times are seconds from the run start.  ``warmup`` drops requests that *arrived* before it
  (attempts: that *started* before it; timeseries: samples whose interval began before it), so
  start-up transients do not bias the numbers.
* ``by`` is a column name or a list of them (``"gateway"``, ``"tenant"``, or a column you add
  such as ``"strategy"`` / ``"seed"`` before concatenating runs).  Output rows are sorted by
  it; key values are plain Python values (categoricals are decoded).  Tables of several runs
  must carry a run key (e.g. ``seed``) in ``by``, since request numbers repeat across runs.
* Ratios whose denominator is 0 are NaN, not 0 or 1, so "no data" never looks like a result.
* Fault-related functions work on one run's tables: they pair fault start/end rows and relate
  them to health / circuit rows by position in the (time-ordered) events table.

Functions: :func:`latency_percentiles`, :func:`outcomes`, :func:`error_breakdown`,
:func:`attempt_breakdown`, :func:`privacy_violations`, :func:`report_privacy_violations`,
:func:`fault_windows`, :func:`detection_times`, :func:`recovery_times`,
:func:`circuit_episodes`, :func:`traffic_to_down_nodes`, :func:`load_imbalance`,
:func:`gpu_utilization`, :func:`cost_per_request`, :func:`replication_summary`,
:func:`paired_comparison`; scenario helpers :func:`nodes_table`, :func:`regions_table`,
:func:`gateways_table`.  Streamed runs keep no tables: :func:`sketch_latency_percentiles` reads
their percentiles from the quantile sketches of ``result.stats``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "DEFAULT_PERCENTILES", "DOWN_KINDS", "PRIVACY_LEVELS", "PrivacyViolationWarning",
    "percentile_label", "latency_percentiles", "outcomes", "error_breakdown",
    "attempt_breakdown", "privacy_violations", "report_privacy_violations", "fault_windows",
    "detection_times", "recovery_times", "circuit_episodes", "traffic_to_down_nodes",
    "load_imbalance", "gpu_utilization", "cost_per_request", "replication_summary",
    "paired_comparison", "nodes_table", "regions_table", "gateways_table",
    "sketch_latency_percentiles",
]

By = Union[str, Sequence[str], None]

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99, 99.9)
#: Fault kinds during which a node cannot answer (flapping crashes the node while "down").
DOWN_KINDS: tuple[str, ...] = ("crash", "hang", "region_outage", "flapping")
#: PrivacyLevel order of the router (spec §1.3): Public < Internal < Confidential < Restricted.
PRIVACY_LEVELS: dict[str, int] = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
_SENT = ("success", "failure")  # attempt kinds that actually reached a node


class PrivacyViolationWarning(UserWarning):
    """A request was served by a region not cleared for its privacy level.  Must never happen."""


# =============================================================================== helpers


def _keys(by: By) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _require(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table has no column(s) {missing}; it has {list(df.columns)}")


def _plain(s: pd.Series) -> pd.Series:
    """Categoricals as plain object values, so groups and merges do not depend on category lists."""
    return s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s


def _plain_keys(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    if not keys:
        return df
    return df.assign(**{k: _plain(df[k]) for k in keys})


def _groups(df: pd.DataFrame, keys: Sequence[str]) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """(key tuple, rows) per group; one group ``()`` holding everything when ``keys`` is empty."""
    if not keys:
        yield (), df
        return
    for key, sub in _plain_keys(df, keys).groupby(list(keys), dropna=False, sort=True,
                                                   observed=True):
        yield (key if isinstance(key, tuple) else (key,)), sub


def _frame(records: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=list(columns))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def _eq(s: pd.Series, value: str) -> np.ndarray:
    return (_plain(s) == value).to_numpy(dtype=bool)


def _level(v: Any) -> int:
    """A privacy level as its order: PrivacyLevel, its int value, or its name in any case."""
    if isinstance(v, str):
        try:
            return PRIVACY_LEVELS[v.lower()]
        except KeyError:
            raise ValueError(f"unknown privacy level {v!r}; expected one of "
                             f"{', '.join(PRIVACY_LEVELS)}") from None
    return int(v)


def _level_name(i: int) -> str:
    return {v: k for k, v in PRIVACY_LEVELS.items()}.get(i, str(i))


def percentile_label(p: float) -> str:
    """Column name of percentile ``p``: 50 -> ``p50``, 99.9 -> ``p99_9``, 99.99 -> ``p99_99``."""
    return "p" + f"{float(p):g}".replace(".", "_")


# =============================================================================== latency


def latency_percentiles(requests: pd.DataFrame, by: By = None, column: str = "latency",
                        percentiles: Sequence[float] = DEFAULT_PERCENTILES, warmup: float = 0.0,
                        window: Optional[float] = None) -> pd.DataFrame:
    """Tail latency per group (and per time window): what users feel, p50 to p99.9.

    Only successful requests that arrived at or after ``warmup`` and have a value in
    ``column`` count (``ttft`` is NaN without a token model: it then gives count 0 and NaN).
    Estimator: numpy's ``method="higher"``: with the n values sorted, percentile p is the
    value at 0-based index ``ceil((n - 1) * p / 100)``, i.e. the first observed value at or
    above the linearly interpolated position.  It is always an observed latency and never
    below the interpolated estimate, so tails are not flattered; it is the same rule as
    ``Result.summary()``.  (It differs from the textbook nearest rank ``ceil(n * p / 100)``.)

    ``window`` (seconds) splits by arrival time into ``[k * window, (k + 1) * window)``
    windows aligned to t = 0; every window from the first to the last request after warm-up
    is present, empty ones (say, during an outage) with count 0 and NaN.

    Columns: ``by`` columns, [``window_start``, ``window_end``], ``count``, one ``pXX`` per
    percentile (:func:`percentile_label`: p50, p90, p95, p99, p99_9), ``max``, ``mean``.
    Groups come from every request after warm-up, so a group with no success shows count 0.
    """
    keys = _keys(by)
    _require(requests, ["arrival", "status", column, *keys], "requests")
    ps = [float(p) for p in percentiles]
    if not ps or any(not 0.0 <= p <= 100.0 for p in ps):
        raise ValueError(f"percentiles must be a non-empty list of values in [0, 100], got {ps}")
    labels = [percentile_label(p) for p in ps]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate percentiles in {ps}")
    if window is not None and not window > 0:
        raise ValueError(f"window must be > 0 seconds, got {window}")

    r = _plain_keys(requests.loc[requests["arrival"] >= warmup, [*keys, "arrival", "status", column]], keys)
    ok = r[_eq(r["status"], "success") & r[column].notna().to_numpy()]
    group_cols = list(keys)
    grid = r[keys].drop_duplicates() if keys else pd.DataFrame(index=[0])
    if window is not None:
        group_cols.append("_w")
        ok = ok.assign(_w=np.floor(ok["arrival"].to_numpy() / window).astype(np.int64))
        if len(r):
            w = np.floor(r["arrival"].to_numpy() / window).astype(np.int64)
            wins = pd.DataFrame({"_w": np.arange(w.min(), w.max() + 1, dtype=np.int64)})
        else:
            wins = pd.DataFrame({"_w": np.empty(0, np.int64)})
        grid = grid.merge(wins, how="cross")

    value_cols = ["count", *labels, "max", "mean"]
    records = []
    for key, sub in _groups(ok, group_cols):
        v = sub[column].to_numpy(dtype=float)
        if not len(v):
            continue
        q = np.percentile(v, ps, method="higher")
        records.append({**dict(zip(group_cols, key)), "count": len(v),
                        **dict(zip(labels, (float(x) for x in q))),
                        "max": float(v.max()), "mean": float(v.mean())})
    found = _frame(records, [*group_cols, *value_cols])
    if group_cols:
        out = grid.merge(found, on=group_cols, how="left")
    else:
        out = found if len(found) else _frame([{}], value_cols)
    out["count"] = out["count"].fillna(0).astype(np.int64)
    if keys:  # a missing key with no success (e.g. node of failed requests) is not a group
        out = out[~(out[keys].isna().any(axis=1) & (out["count"] == 0))]
    if window is not None:
        out.insert(len(keys), "window_start", out["_w"] * float(window))
        out.insert(len(keys) + 1, "window_end", (out["_w"] + 1) * float(window))
        out = out.drop(columns="_w")
    sort = [*keys, *(["window_start"] if window is not None else [])]
    if sort:
        out = out.sort_values(sort, na_position="last", kind="stable")
    cols = [*keys, *(["window_start", "window_end"] if window is not None else []), *value_cols]
    return out[cols].reset_index(drop=True)


def sketch_latency_percentiles(stats: Any, by: Optional[str] = None, column: str = "latency",
                               percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> pd.DataFrame:
    """:func:`latency_percentiles` of a streamed run, from its sketches.

    ``stats``: a streamed :class:`fedsim.world.Result` or its ``stats``
    (:class:`fedsim.world.result.RunStats`; merge several runs' with ``RunStats.merged``).
    ``by``: None or one of ``stats.by`` (workload, gateway, origin_region, region, node,
    tenant, capability, privacy); ``column``: ``latency`` or ``ttft``.  Same columns and
    order as :func:`latency_percentiles` (``by``, ``count``, ``pXX``..., ``max``, ``mean``),
    over the successful requests after the run's warm-up; ``count``, ``max`` and ``mean``
    are exact, each ``pXX`` is within ``stats.alpha`` (relative, 0.5 % by default) of the
    exact ``method="higher"`` percentile, and ``df.attrs["relative_error"]`` says so."""
    stats = getattr(stats, "stats", None) or stats
    if column not in ("latency", "ttft"):
        raise ValueError(f"sketches are kept for 'latency' and 'ttft', not {column!r}")
    ps = [float(p) for p in percentiles]
    if not ps or any(not 0.0 <= p <= 100.0 for p in ps):
        raise ValueError(f"percentiles must be a non-empty list of values in [0, 100], got {ps}")
    labels = [percentile_label(p) for p in ps]
    if by is None:
        groups = [({}, stats.total)]
    else:
        if by not in stats.groups:
            raise ValueError(f"no sketches by {by!r}; kept: {', '.join(stats.groups)}")
        groups = [({by: key}, g) for key, g in sorted(stats.groups[by].items())]
    records = []
    for key, g in groups:
        sk = getattr(g, column)
        rec = {**key, "count": sk.count}
        rec.update({lab: sk.percentile(p) for lab, p in zip(labels, ps)})
        rec["max"] = sk.max if sk.count else math.nan
        rec["mean"] = sk.mean
        records.append(rec)
    out = pd.DataFrame(records, columns=[*([by] if by else []), "count", *labels, "max", "mean"])
    out["count"] = out["count"].astype(np.int64)
    out.attrs["relative_error"] = stats.alpha
    return out


# =============================================================================== outcomes


def _infer_end(requests: pd.DataFrame, attempts: Optional[pd.DataFrame]) -> float:
    times = [requests["arrival"].max(), (requests["arrival"] + requests["latency"]).max()]
    if attempts is not None and len(attempts):
        times.append(attempts["end"].max())
    times = [t for t in times if pd.notna(t)]
    return float(max(times)) if times else math.nan


def _attempt_kind_counts(requests: pd.DataFrame, attempts: pd.DataFrame,
                         keys: Sequence[str]) -> pd.DataFrame:
    """Attempts per request by kind, aligned to ``requests`` rows (joined on request and any
    ``by`` column both tables have, e.g. seed)."""
    join = ["request", *[k for k in keys if k in attempts.columns and k != "request"]]
    kinds = ["failure", "route_error", "circuit_open"]
    a = _plain_keys(attempts[[*join, "kind"]], [*join, "kind"])
    counts = (a.assign(_one=1).pivot_table(index=join, columns="kind", values="_one",
                                           aggfunc="sum", fill_value=0)
              if len(a) else pd.DataFrame(columns=join).set_index(join))
    counts = counts.reindex(columns=kinds, fill_value=0).reset_index()
    left = _plain_keys(requests[join], join).reset_index(drop=True)
    merged = left.merge(counts, on=join, how="left")
    return merged[kinds].fillna(0).astype(np.int64).set_index(requests.index)


def outcomes(requests: pd.DataFrame, attempts: Optional[pd.DataFrame] = None, by: By = None,
             warmup: float = 0.0, duration: Optional[float] = None,
             region_privacy: Optional[Mapping[str, Any]] = None) -> pd.DataFrame:
    """Did requests succeed, how much useful work per second, and what did retries buy.

    Over requests that arrived at or after ``warmup``, per ``by`` group:

    * ``requests``, ``succeeded``, ``failed``, ``in_flight`` (unfinished at the end).
    * ``success_rate`` = succeeded / (succeeded + failed): requests still in flight have no
      outcome yet and are left out (as in ``Result.summary()``).
    * ``success_rate_total`` = succeeded / requests: the gateway counters' reading
      (``GatewayStats.successful_requests / total_requests``, spec §9.3), in-flight as not ok.
    * ``goodput``: successes per simulated second, succeeded / (``duration`` - ``warmup``).
      Pass ``duration=result.simulated_seconds``; without it the end of the run is taken as
      the last arrival / answer / attempt end seen in the tables.
    * ``attempts``, ``attempts_per_request``, ``retries_per_request`` = mean of
      max(attempts - 1, 0) (every attempt after the first, route errors included).
    * ``retried`` (finished requests that needed >= 1 retry), ``retried_succeeded`` and
      ``retry_effectiveness`` = retried_succeeded / retried (spec §9.3 "retry_success_rate":
      share of requests needing >= 1 retry that finally succeeded; in-flight ones excluded).
    * ``attempt_failures``, ``route_errors``, ``circuit_rejections``: attempts by kind
      (``failure`` / ``route_error`` / ``circuit_open``); NaN without ``attempts``.
    * ``privacy_violations`` (only with ``region_privacy``, a region -> privacy level map):
      served requests whose region is below the request's privacy; any non-zero count also
      raises a :class:`PrivacyViolationWarning` (see :func:`report_privacy_violations`).

    Error types are in :func:`error_breakdown`.
    """
    keys = _keys(by)
    _require(requests, ["request", "arrival", "status", "attempts", *keys], "requests")
    if attempts is not None:
        _require(attempts, ["request", "kind"], "attempts")
    end = float(duration) if duration is not None else _infer_end(requests, attempts)
    span = end - warmup
    r = requests[requests["arrival"] >= warmup]
    r = r.assign(_ok=_eq(r["status"], "success"), _failed=_eq(r["status"], "failed"),
                 _flying=_eq(r["status"], "in_flight"))
    if attempts is not None:
        r = pd.concat([r, _attempt_kind_counts(r, attempts, keys)], axis=1)
    if region_privacy is not None:
        r = r.assign(_violation=_violation_mask(r, region_privacy))

    cols = [*keys, "requests", "succeeded", "failed", "in_flight", "success_rate",
            "success_rate_total", "goodput", "attempts", "attempts_per_request",
            "retries_per_request", "retried", "retried_succeeded", "retry_effectiveness",
            "attempt_failures", "route_errors", "circuit_rejections"]
    if region_privacy is not None:
        cols.append("privacy_violations")
    records = []
    for key, sub in _groups(r, keys):
        n = len(sub)
        ok, failed, flying = int(sub["_ok"].sum()), int(sub["_failed"].sum()), int(sub["_flying"].sum())
        att = sub["attempts"].to_numpy(dtype=np.int64)
        retried = (att >= 2) & ~sub["_flying"].to_numpy()
        rec = {**dict(zip(keys, key)), "requests": n, "succeeded": ok, "failed": failed,
               "in_flight": flying, "success_rate": _ratio(ok, ok + failed),
               "success_rate_total": _ratio(ok, n),
               "goodput": ok / span if span > 0 else math.nan,
               "attempts": int(att.sum()), "attempts_per_request": _ratio(att.sum(), n),
               "retries_per_request": _ratio(np.clip(att - 1, 0, None).sum(), n),
               "retried": int(retried.sum()),
               "retried_succeeded": int((retried & sub["_ok"].to_numpy()).sum()),
               "retry_effectiveness": _ratio((retried & sub["_ok"].to_numpy()).sum(), retried.sum())}
        for col, kind in (("attempt_failures", "failure"), ("route_errors", "route_error"),
                          ("circuit_rejections", "circuit_open")):
            rec[col] = int(sub[kind].sum()) if attempts is not None else math.nan
        if region_privacy is not None:
            rec["privacy_violations"] = int(sub["_violation"].sum())
        records.append(rec)
    out = _frame(records, cols)
    if region_privacy is not None and out["privacy_violations"].sum() > 0:
        _warn_privacy(int(out["privacy_violations"].sum()), int(out["succeeded"].sum()))
    return out


def error_breakdown(requests: pd.DataFrame, by: By = None, warmup: float = 0.0) -> pd.DataFrame:
    """Why requests failed: final error type (FederationError variant) counts per group.

    Columns: ``by`` columns, ``error``, ``count``, ``share_of_failed`` (count / failed requests
    of the group), ``share_of_requests`` (count / all requests of the group after warm-up).
    One row per (group, error) that occurred; a group without failures has no row.
    """
    keys = _keys(by)
    _require(requests, ["arrival", "status", "error", *keys], "requests")
    r = requests[requests["arrival"] >= warmup]
    records = []
    for key, sub in _groups(r, keys):
        failed = sub[_eq(sub["status"], "failed")]
        for err, count in _plain(failed["error"]).value_counts(dropna=False).sort_index().items():
            records.append({**dict(zip(keys, key)), "error": err, "count": int(count),
                            "share_of_failed": _ratio(count, len(failed)),
                            "share_of_requests": _ratio(count, len(sub))})
    return _frame(records, [*keys, "error", "count", "share_of_failed", "share_of_requests"])


def attempt_breakdown(attempts: pd.DataFrame, by: By = None, warmup: float = 0.0) -> pd.DataFrame:
    """What went wrong attempt by attempt: unsuccessful attempts by kind, error and detail
    (crashed, queue_full, timeout, ...), which requests' final errors hide behind retries.

    Attempts that started at or after ``warmup``.  Columns: ``by`` columns, ``kind``,
    ``error``, ``detail`` (missing where not applicable), ``count``, ``share_of_attempts``
    (count / all attempts of the group, successes included).
    """
    keys = _keys(by)
    _require(attempts, ["start", "kind", "error", "detail", *keys], "attempts")
    a = attempts[attempts["start"] >= warmup]
    records = []
    for key, sub in _groups(a, keys):
        bad = _plain_keys(sub[~_eq(sub["kind"], "success")], ["kind", "error", "detail"])
        counts = bad.groupby(["kind", "error", "detail"], dropna=False, observed=True).size()
        for (kind, err, detail), count in counts.sort_index().items():
            records.append({**dict(zip(keys, key)), "kind": kind, "error": err,
                            "detail": detail, "count": int(count),
                            "share_of_attempts": _ratio(count, len(sub))})
    return _frame(records, [*keys, "kind", "error", "detail", "count", "share_of_attempts"])


# =============================================================================== privacy


def _region_levels(region_privacy: Mapping[str, Any]) -> dict[str, int]:
    items = region_privacy.items() if hasattr(region_privacy, "items") else region_privacy
    return {str(k): _level(v) for k, v in items}


def _violation_mask(requests: pd.DataFrame, region_privacy: Mapping[str, Any]) -> np.ndarray:
    _require(requests, ["status", "privacy", "region"], "requests")
    levels = _region_levels(region_privacy)
    served = _eq(requests["status"], "success") & requests["region"].notna().to_numpy()
    regions = _plain(requests["region"])[served].astype(str)
    unknown = sorted({str(x) for x in pd.unique(regions)} - set(levels))
    if unknown:
        raise ValueError(f"region_privacy has no level for region(s) {unknown} that served "
                         "requests; a violation cannot be judged without it (the router "
                         "treats unknown regions as internal: pass that explicitly if meant)")
    mask = np.zeros(len(requests), dtype=bool)
    if served.any():
        region_level = regions.map(levels).to_numpy(dtype=np.int64)
        privacy = _plain(requests["privacy"])[served]
        wanted_of = {v: _level(v) for v in pd.unique(privacy)}
        wanted = privacy.map(wanted_of).to_numpy(dtype=np.int64)
        mask[served] = region_level < wanted
    return mask


def privacy_violations(requests: pd.DataFrame, region_privacy: Mapping[str, Any],
                       warmup: float = 0.0) -> pd.DataFrame:
    """The requests served by a region not cleared for their privacy level (should be none).

    ``region_privacy`` maps region -> level (PrivacyLevel, its int, or its name; see
    :func:`regions_table`).  Only served (successful) requests are judged: the router applies
    the same PrivacyPolicy to every attempt, so a violating attempt shows up as a violating
    success too.  Columns: ``request``, ``arrival``, ``gateway``, ``privacy`` (the request's),
    ``region``, ``region_privacy`` (the serving region's level name).
    """
    _require(requests, ["request", "arrival", "gateway"], "requests")
    r = requests[requests["arrival"] >= warmup]
    bad = r[_violation_mask(r, region_privacy)]
    levels = _region_levels(region_privacy)
    out = pd.DataFrame({
        "request": bad["request"].to_numpy(), "arrival": bad["arrival"].to_numpy(),
        "gateway": _plain(bad["gateway"]).to_numpy(), "privacy": _plain(bad["privacy"]).to_numpy(),
        "region": _plain(bad["region"]).to_numpy(),
        "region_privacy": [_level_name(levels[str(x)]) for x in _plain(bad["region"])]})
    return out


def report_privacy_violations(requests: pd.DataFrame, region_privacy: Mapping[str, Any],
                              by: By = None, warmup: float = 0.0) -> pd.DataFrame:
    """Privacy check per group, loud on failure: any violation is a routing bug, never noise.

    Columns: ``by`` columns, ``served``, ``privacy_violations``, ``violation`` (bool flag,
    True when the group has any).  When the total is not 0 a :class:`PrivacyViolationWarning`
    is issued with the count; list the requests with :func:`privacy_violations`.
    """
    keys = _keys(by)
    _require(requests, ["arrival", "status", *keys], "requests")
    r = requests[requests["arrival"] >= warmup]
    r = r.assign(_violation=_violation_mask(r, region_privacy), _ok=_eq(r["status"], "success"))
    records = []
    for key, sub in _groups(r, keys):
        v = int(sub["_violation"].sum())
        records.append({**dict(zip(keys, key)), "served": int(sub["_ok"].sum()),
                        "privacy_violations": v, "violation": v > 0})
    out = _frame(records, [*keys, "served", "privacy_violations", "violation"])
    total = int(out["privacy_violations"].sum())
    if total:
        _warn_privacy(total, int(out["served"].sum()))
    return out


def _warn_privacy(count: int, served: int) -> None:
    warnings.warn(f"PRIVACY VIOLATION: {count} of {served} served requests went to a region "
                  "below their privacy level (must be 0); see fedsim.analysis.privacy_violations",
                  PrivacyViolationWarning, stacklevel=3)


# =============================================================================== faults


def _events_sorted(events: pd.DataFrame) -> pd.DataFrame:
    _require(events, ["time", "category", "source", "subject", "old", "new"], "events")
    e = events.sort_values("time", kind="stable").reset_index(drop=True)
    e = _plain_keys(e, ["category", "source", "subject", "old", "new"])
    return e.assign(_pos=np.arange(len(e)))


def _fault_windows(e: pd.DataFrame) -> pd.DataFrame:
    """Fault start rows paired first-in first-out with the end rows of the same kind and subject."""
    f = e[e["category"] == "fault"]
    open_: dict[tuple, list[dict]] = {}
    rows: list[dict] = []
    for t, kind, subject, what, pos in zip(f["time"], f["source"], f["subject"], f["old"], f["_pos"]):
        k = (kind, subject)
        if what == "start":
            row = {"kind": kind, "subject": subject, "start": float(t), "end": math.nan,
                   "_spos": int(pos), "_epos": math.inf}
            rows.append(row)
            open_.setdefault(k, []).append(row)
        elif what == "end" and open_.get(k):
            row = open_[k].pop(0)
            row["end"], row["_epos"] = float(t), int(pos)
    out = _frame(rows, ["kind", "subject", "start", "end", "_spos", "_epos"])
    out.insert(0, "fault", np.arange(len(out), dtype=np.int64))
    out.insert(5, "duration", out["end"] - out["start"])
    return out


def fault_windows(events: pd.DataFrame) -> pd.DataFrame:
    """One row per fault occurrence (each flapping down-cycle and random failure counts once).

    Columns: ``fault`` (0, 1, ... by start), ``kind``, ``subject`` (node, node group, region,
    or ``a<->b`` for a partition), ``start``, ``end`` (NaN: still active at the end of the run),
    ``duration``.
    """
    return _fault_windows(_events_sorted(events)).drop(columns=["_spos", "_epos"])


def _known_nodes(events: pd.DataFrame, attempts: Optional[pd.DataFrame]) -> set[str]:
    # unique values first: converting millions of strings one by one is the slow part
    known = {str(x) for x in pd.unique(events.loc[events["category"].isin(["health", "circuit"]),
                                                  "subject"])}
    if attempts is not None:
        known |= {str(x) for x in pd.unique(_plain(attempts["node"]).dropna())}
    return known


def _targets(windows: pd.DataFrame, nodes: Optional[pd.DataFrame],
             gateways: Mapping[str, Optional[str]], known: set[str],
             stacklevel: int = 3) -> pd.DataFrame:
    """Expand faults to (fault, node, gateway) rows: the nodes each gateway loses to the fault.

    A partition ``a<->b`` affects, for a gateway in region a, the nodes of region b and the
    other way round; other faults affect their nodes for every gateway."""
    region_of: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    if nodes is not None:
        _require(nodes, ["node", "region"], "nodes")
        region_of = dict(zip(nodes["node"].astype(str), nodes["region"].astype(str)))
        if "group" in nodes.columns:
            for n, g in zip(nodes["node"].astype(str), nodes["group"].astype(str)):
                groups.setdefault(g, []).append(n)
    rows, unresolved = [], []
    for w in windows.to_dict("records"):
        kind, subject = w["kind"], str(w["subject"])
        pairs: list[tuple[str, str]] = []
        if kind == "partition":
            a, _, b = subject.partition("<->")
            if not region_of or any(r is None for r in gateways.values()):
                unresolved.append((kind, subject, "nodes and gateway regions"))
                continue
            for g, gr in gateways.items():
                side = b if gr == a else a if gr == b else None
                pairs += [(n, g) for n, r in region_of.items() if side is not None and r == side]
        else:
            if kind == "region_outage":
                if not region_of:
                    unresolved.append((kind, subject, "nodes (node -> region)"))
                    continue
                targets = [n for n, r in region_of.items() if r == subject]
            elif subject in region_of or (not region_of and subject in known):
                targets = [subject]
            elif subject in groups:
                targets = groups[subject]
            else:
                unresolved.append((kind, subject, "nodes (with a group column)"))
                continue
            pairs = [(n, g) for n in targets for g in gateways]
        rows += [{**w, "node": n, "gateway": g} for n, g in pairs]
    if unresolved:
        warnings.warn("faults skipped, cannot tell which nodes they hit: "
                      + "; ".join(f"{k} {s!r} (pass {need}, e.g. nodes=nodes_table(scenario), "
                                  "gateways=gateways_table(scenario))" for k, s, need in unresolved),
                      UserWarning, stacklevel=stacklevel)
    return _frame(rows, [*windows.columns, "node", "gateway"])


def _gateway_regions(gateways: Union[pd.DataFrame, Mapping[str, str], None], e: pd.DataFrame,
                     attempts: Optional[pd.DataFrame]) -> dict[str, Optional[str]]:
    if gateways is None:
        names = set(e.loc[e["category"].isin(["health", "circuit"]), "source"].astype(str))
        if attempts is not None:
            names |= set(_plain(attempts["gateway"]).dropna().astype(str))
        return {g: None for g in sorted(names)}
    if isinstance(gateways, pd.DataFrame):
        _require(gateways, ["gateway", "region"], "gateways")
        return dict(zip(gateways["gateway"].astype(str), gateways["region"].astype(str)))
    return {str(k): (None if v is None else str(v)) for k, v in gateways.items()}


class _Timeline:
    """Health / circuit transitions per (gateway, node), searchable by events-table position."""

    def __init__(self, e: pd.DataFrame) -> None:
        self._by: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        sc = e[e["category"].isin(["health", "circuit"])]
        for (cat, g, n), sub in sc.groupby(["category", "source", "subject"], sort=False):
            self._by[(cat, str(g), str(n))] = (sub["_pos"].to_numpy(), sub["time"].to_numpy(),
                                               sub["new"].astype(str).to_numpy())

    def state_before(self, cat: str, g: str, n: str, pos: float, initial: str) -> str:
        pos_, _, new = self._by.get((cat, g, n), (np.empty(0), None, None))
        i = int(np.searchsorted(pos_, pos, side="left"))
        return initial if i == 0 else str(new[i - 1])

    def first(self, cat: str, g: str, n: str, states: Sequence[str], after: float,
              before: float = math.inf) -> tuple[float, float]:
        """(time, position) of the first transition into one of ``states`` strictly between
        the two positions; NaN when there is none."""
        pos_, time, new = self._by.get((cat, g, n), (np.empty(0), None, None))
        i = int(np.searchsorted(pos_, after, side="right"))
        for j in range(i, len(pos_)):
            if pos_[j] >= before:
                break
            if new[j] in states:
                return float(time[j]), float(pos_[j])
        return math.nan, math.nan


class _Attempts:
    """Attempts per (gateway, node), sorted by start."""

    def __init__(self, attempts: Optional[pd.DataFrame]) -> None:
        self._by: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        if attempts is None:
            return
        _require(attempts, ["gateway", "node", "kind", "start"], "attempts")
        a = _plain_keys(attempts[["gateway", "node", "kind", "start"]], ["gateway", "node", "kind"])
        a = a[a["node"].notna()].sort_values("start", kind="stable")
        for (g, n), sub in a.groupby(["gateway", "node"], sort=False):
            self._by[(str(g), str(n))] = (sub["start"].to_numpy(), sub["kind"].astype(str).to_numpy())

    def get(self, g: str, n: str) -> tuple[np.ndarray, np.ndarray]:
        return self._by.get((g, n), (np.empty(0), np.empty(0, dtype=object)))

    def first(self, g: str, n: str, kinds: Sequence[str], t0: float, t1: float = math.inf) -> float:
        start, kind = self.get(g, n)
        i, j = np.searchsorted(start, t0, side="left"), np.searchsorted(start, t1, side="left")
        hit = np.flatnonzero(np.isin(kind[i:j], list(kinds)))
        return float(start[i + hit[0]]) if len(hit) else math.nan

    def count(self, g: str, n: str, kinds: Sequence[str], t0: float, t1: float) -> int:
        start, kind = self.get(g, n)
        i, j = np.searchsorted(start, t0, side="left"), np.searchsorted(start, t1, side="left")
        return int(np.isin(kind[i:j], list(kinds)).sum())


def _prepare(events: pd.DataFrame, attempts: Optional[pd.DataFrame], nodes, gateways,
             kinds: Optional[Sequence[str]]):
    e = _events_sorted(events)
    windows = _fault_windows(e)
    if kinds is not None:
        windows = windows[windows["kind"].isin(list(kinds))]
    gw = _gateway_regions(gateways, e, attempts)
    return e, _targets(windows, nodes, gw, _known_nodes(e, attempts), stacklevel=4)


_FAULT_COLS = ["fault", "kind", "subject", "node", "gateway", "start", "end"]


def detection_times(events: pd.DataFrame, attempts: Optional[pd.DataFrame] = None,
                    nodes: Optional[pd.DataFrame] = None,
                    gateways: Union[pd.DataFrame, Mapping[str, str], None] = None,
                    kinds: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """How long each gateway kept offering a faulty node to its router.

    Definition (per fault, affected node and gateway, because every gateway replica has its
    own view): **detected** = the first moment after the fault start at which that gateway's
    router stops routing to the node, i.e. the first health transition of the node to
    ``Unhealthy`` or circuit transition to ``Open`` (the router drops Unhealthy nodes and open
    circuits from its candidates, spec §6.2).  If the node was already Unhealthy or Open when
    the fault started, detected = start.  Only transitions recorded after the fault's start row
    and before its end row count: a fault that ended unnoticed has detected NaN.  (The first
    attempt routed to *another* node is not used: with random strategies or retries that avoid
    tried nodes it happens at once whether anything was detected or not.)

    ``nodes`` (:func:`nodes_table`) resolves group targets and region outages; ``gateways``
    (:func:`gateways_table`) is needed for partitions, where a gateway loses the nodes on the
    other side.  Faults that cannot be resolved are skipped with a warning.  ``kinds`` keeps
    only those fault kinds.

    Columns: ``fault``, ``kind``, ``subject``, ``node``, ``gateway``, ``start``, ``end``,
    ``excluded_at_start`` (bool), ``unhealthy_at``, ``circuit_open_at``, ``detected_at``,
    ``time_to_detect`` (detected_at - start), ``first_failure_at`` (first failed attempt of
    that gateway on the node in the fault window), ``attempts_before_detect`` (attempts that
    gateway sent to the node from the start until detection, or until the end if undetected).
    """
    e, t = _prepare(events, attempts, nodes, gateways, kinds)
    tl, at = _Timeline(e), _Attempts(attempts)
    records = []
    for w in t.to_dict("records"):
        g, n, spos, epos = w["gateway"], w["node"], w["_spos"], w["_epos"]
        end = w["end"] if not math.isnan(w["end"]) else math.inf
        excluded = (tl.state_before("health", g, n, spos, "Unknown") == "Unhealthy"
                    or tl.state_before("circuit", g, n, spos, "Closed") == "Open")
        unhealthy, _ = tl.first("health", g, n, ("Unhealthy",), spos, epos)
        opened, _ = tl.first("circuit", g, n, ("Open",), spos, epos)
        detected = w["start"] if excluded else float(np.fmin(unhealthy, opened))
        until = detected if not math.isnan(detected) else end
        records.append({**{c: w[c] for c in _FAULT_COLS}, "excluded_at_start": excluded,
                        "unhealthy_at": unhealthy, "circuit_open_at": opened,
                        "detected_at": detected, "time_to_detect": detected - w["start"],
                        "first_failure_at": at.first(g, n, ("failure",), w["start"], end),
                        "attempts_before_detect": at.count(g, n, _SENT, w["start"], until)})
    return _frame(records, [*_FAULT_COLS, "excluded_at_start", "unhealthy_at", "circuit_open_at",
                            "detected_at", "time_to_detect", "first_failure_at",
                            "attempts_before_detect"])


def _episodes(e: pd.DataFrame) -> pd.DataFrame:
    c = e[e["category"] == "circuit"]
    open_: dict[tuple, dict] = {}
    rows: list[dict] = []
    for t, g, n, new, pos in zip(c["time"], c["source"], c["subject"], c["new"], c["_pos"]):
        k = (str(g), str(n))
        ep = open_.get(k)
        if new == "Open":
            if ep is None:
                ep = open_[k] = {"gateway": k[0], "node": k[1], "opened_at": float(t),
                                 "closed_at": math.nan, "reopens": 0, "_opos": int(pos),
                                 "_cpos": math.inf}
                rows.append(ep)
            else:
                ep["reopens"] += 1
        elif new == "Closed" and ep is not None:
            ep["closed_at"], ep["_cpos"] = float(t), int(pos)
            del open_[k]
    out = _frame(rows, ["gateway", "node", "opened_at", "closed_at", "reopens", "_opos", "_cpos"])
    out.insert(4, "duration", out["closed_at"] - out["opened_at"])
    return out


def circuit_episodes(events: pd.DataFrame) -> pd.DataFrame:
    """Every period a circuit spent away from Closed: the breaker's recovery time (spec §9.3
    ``mean_recovery_time`` is the mean of ``duration``).

    An episode starts when the circuit of a node, as one gateway sees it, turns Open and ends
    at its next transition to Closed (HalfOpen -> Open in between counts in ``reopens``).
    Columns: ``gateway``, ``node``, ``opened_at``, ``closed_at`` (NaN: never closed),
    ``duration``, ``reopens``.
    """
    return _episodes(_events_sorted(events)).drop(columns=["_opos", "_cpos"])


def recovery_times(events: pd.DataFrame, attempts: Optional[pd.DataFrame] = None,
                   nodes: Optional[pd.DataFrame] = None,
                   gateways: Union[pd.DataFrame, Mapping[str, str], None] = None,
                   kinds: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """How long after a fault ends each gateway takes to use the node again (Q-NORECOVER shows
    up as NaN: without active probes an Unhealthy node is never tried again).

    Per fault, affected node and gateway (resolved as in :func:`detection_times`):

    * ``back_at``: start of the first successful attempt of that gateway on the node starting
      at or after the fault end ("back in rotation"); ``time_to_recover`` = back_at - end.
    * ``healthy_at``: when that gateway's health view of the node is Healthy again (the end
      itself if it already was, else its first transition to Healthy after the end row);
      ``time_to_healthy`` = healthy_at - end.
    * ``circuit_open_at`` / ``circuit_closed_at`` / ``circuit_recovery``: the circuit episode
      (see :func:`circuit_episodes`) in progress at the fault start or opened during the fault,
      its close time and length (Open -> Closed); NaN if the circuit never opened.

    Faults still active at the end of the run have NaN recovery columns.  Columns:
    ``fault``, ``kind``, ``subject``, ``node``, ``gateway``, ``start``, ``end``, ``back_at``,
    ``time_to_recover``, ``healthy_at``, ``time_to_healthy``, ``circuit_open_at``,
    ``circuit_closed_at``, ``circuit_recovery``.
    """
    e, t = _prepare(events, attempts, nodes, gateways, kinds)
    tl, at = _Timeline(e), _Attempts(attempts)
    eps = _episodes(e)
    ep_by = {k: sub for k, sub in eps.groupby(["gateway", "node"], sort=False)} if len(eps) else {}
    records = []
    for w in t.to_dict("records"):
        g, n, spos, epos, end = w["gateway"], w["node"], w["_spos"], w["_epos"], w["end"]
        back = healthy = math.nan
        if not math.isnan(end):
            back = at.first(g, n, ("success",), end)
            if tl.state_before("health", g, n, epos, "Unknown") == "Healthy":
                healthy = end
            else:
                healthy, _ = tl.first("health", g, n, ("Healthy",), epos)
        opened = closed = math.nan
        sub = ep_by.get((g, n))
        if sub is not None:
            hit = sub[(sub["_cpos"] > spos) & (sub["_opos"] < epos)]
            if len(hit):
                opened, closed = float(hit["opened_at"].iloc[0]), float(hit["closed_at"].iloc[0])
        records.append({**{c: w[c] for c in _FAULT_COLS}, "back_at": back,
                        "time_to_recover": back - end, "healthy_at": healthy,
                        "time_to_healthy": healthy - end, "circuit_open_at": opened,
                        "circuit_closed_at": closed, "circuit_recovery": closed - opened})
    return _frame(records, [*_FAULT_COLS, "back_at", "time_to_recover", "healthy_at",
                            "time_to_healthy", "circuit_open_at", "circuit_closed_at",
                            "circuit_recovery"])


def traffic_to_down_nodes(attempts: pd.DataFrame, events: pd.DataFrame, by: By = None,
                          nodes: Optional[pd.DataFrame] = None,
                          kinds: Sequence[str] = DOWN_KINDS, warmup: float = 0.0) -> pd.DataFrame:
    """How much traffic the routers wasted on nodes that could not answer.

    An attempt is *sent* when it reached a node (kind success or failure; route errors and
    circuit rejections never left the gateway).  It went to a down node when its start lies in
    ``[start, end)`` of a fault of one of ``kinds`` (default crash, hang, region_outage,
    flapping) on that node (end NaN: to the end of the run).  Attempts that started before
    ``warmup`` are left out.  ``nodes`` (:func:`nodes_table`) resolves group targets and
    region outages.

    Columns: ``by`` columns (attempts columns, e.g. ``gateway`` or ``node``), ``attempts``
    (sent), ``to_down``, ``share`` (to_down / attempts), ``requests`` (with >= 1 sent attempt),
    ``requests_to_down`` (with >= 1 attempt sent to a down node), ``request_share``.
    """
    keys = _keys(by)
    _require(attempts, ["request", "node", "kind", "start", *keys], "attempts")
    e = _events_sorted(events)
    windows = _fault_windows(e)
    windows = windows[windows["kind"].isin(list(kinds))]
    t = _targets(windows, nodes, {"*": None}, _known_nodes(e, attempts), stacklevel=3)
    a = attempts[np.isin(_plain(attempts["kind"]).to_numpy(), _SENT)
                 & attempts["node"].notna().to_numpy() & (attempts["start"] >= warmup).to_numpy()]
    down = np.zeros(len(a), dtype=bool)
    node = _plain(a["node"]).astype(str).to_numpy()
    start = a["start"].to_numpy()
    for n, s, f in zip(t["node"], t["start"], t["end"]):
        f = math.inf if math.isnan(f) else f
        down |= (node == n) & (start >= s) & (start < f)
    a = a.assign(_down=down)
    records = []
    for key, sub in _groups(a, keys):
        per_req = sub.groupby("request")["_down"].any()
        records.append({**dict(zip(keys, key)), "attempts": len(sub),
                        "to_down": int(sub["_down"].sum()), "share": _ratio(sub["_down"].sum(), len(sub)),
                        "requests": len(per_req), "requests_to_down": int(per_req.sum()),
                        "request_share": _ratio(per_req.sum(), len(per_req))})
    return _frame(records, [*keys, "attempts", "to_down", "share", "requests",
                            "requests_to_down", "request_share"])


# =============================================================================== load & cost


def load_imbalance(table: pd.DataFrame, by: str = "node", all_nodes: Optional[Sequence[str]] = None,
                   group_by: By = None, warmup: float = 0.0, load: str = "served") -> pd.DataFrame:
    """How evenly the routers spread work: a perfect balancer has cv 0 and max/mean 1.

    ``table`` is ``requests`` (load = successful requests served by each ``by`` value, after
    warm-up by arrival) or ``attempts`` (recognised by its ``kind`` column; after warm-up by
    start; ``load="served"`` counts successful attempts, ``load="sent"`` every attempt that
    reached a node, failures included).  ``all_nodes`` lists every node (or region, for
    ``by="region"``) so idle ones count as zero load; otherwise only values seen in the table
    count.  The standard deviation is the population one (ddof 0): the nodes are the whole
    population, not a sample.  ``group_by`` computes it per group (e.g. ``seed``, ``gateway``).

    Columns: ``group_by`` columns, ``nodes``, ``total``, ``mean``, ``std``, ``cv`` (std /
    mean), ``min``, ``max``, ``max_over_mean``.
    """
    keys = _keys(group_by)
    is_attempts = "kind" in table.columns
    time_col = "start" if is_attempts else "arrival"
    _require(table, [by, time_col, *keys, *([] if is_attempts else ["status"])],
             "attempts" if is_attempts else "requests")
    if load not in ("served", "sent"):
        raise ValueError(f"load must be 'served' or 'sent', got {load!r}")
    if load == "sent" and not is_attempts:
        raise ValueError("load='sent' needs the attempts table (requests only record the "
                         "serving node)")
    t = table[table[time_col] >= warmup]
    if is_attempts:
        counted = np.isin(_plain(t["kind"]).to_numpy(), ["success"] if load == "served" else _SENT)
    else:
        counted = _eq(t["status"], "success")
    universe = set(_plain(t[by]).dropna().astype(str))
    if all_nodes is not None:
        universe |= {str(x) for x in all_nodes}
    universe_list = sorted(universe)
    t = t[counted & t[by].notna().to_numpy()]
    records = []
    for key, sub in _groups(t, keys):
        counts = _plain(sub[by]).astype(str).value_counts().reindex(universe_list, fill_value=0)
        v = counts.to_numpy(dtype=float)
        mean = v.mean() if len(v) else math.nan
        std = v.std(ddof=0) if len(v) else math.nan
        records.append({**dict(zip(keys, key)), "nodes": len(v), "total": int(v.sum()),
                        "mean": mean, "std": std, "cv": _ratio(std, mean) if len(v) else math.nan,
                        "min": v.min() if len(v) else math.nan, "max": v.max() if len(v) else math.nan,
                        "max_over_mean": _ratio(v.max(), mean) if len(v) else math.nan})
    return _frame(records, [*keys, "nodes", "total", "mean", "std", "cv", "min", "max",
                            "max_over_mean"])


def gpu_utilization(timeseries: pd.DataFrame, by: By = "node", warmup: float = 0.0,
                    interval: Optional[float] = None) -> pd.DataFrame:
    """How busy each node's GPUs were (time-weighted share of GPU slots in use).

    Node state is sampled once per gateway, so rows are first de-duplicated on (time, node,
    other ``by`` columns such as seed); a sample describes the ``interval`` before its time
    (inferred as the smallest gap between sample times when not given) and counts only if
    that interval began at or after ``warmup``.  Columns: ``by`` columns, ``samples``,
    ``gpu_utilization`` (mean), ``gpu_utilization_max``, ``busy_gpus_mean``,
    ``queue_depth_mean``, ``up_share`` (share of samples the node was up).
    """
    keys = _keys(by)
    _require(timeseries, ["time", "node", "gpu_utilization", "busy_gpus", "queue_depth", "up", *keys],
             "timeseries")
    ts = _plain_keys(timeseries, ["node", *keys])
    ts = ts.drop_duplicates(list(dict.fromkeys(["time", "node", *keys])))
    if interval is None:
        times = np.unique(ts["time"].to_numpy())
        gaps = np.diff(times)
        interval = float(gaps[gaps > 0].min()) if (gaps > 0).any() else (float(times[0]) if len(times) else 0.0)
    ts = ts[ts["time"] - interval >= warmup - 1e-9]
    records = []
    for key, sub in _groups(ts, keys):
        records.append({**dict(zip(keys, key)), "samples": len(sub),
                        "gpu_utilization": float(sub["gpu_utilization"].mean()),
                        "gpu_utilization_max": float(sub["gpu_utilization"].max()),
                        "busy_gpus_mean": float(sub["busy_gpus"].mean()),
                        "queue_depth_mean": float(sub["queue_depth"].mean()),
                        "up_share": float(sub["up"].astype(float).mean())})
    return _frame(records, [*keys, "samples", "gpu_utilization", "gpu_utilization_max",
                            "busy_gpus_mean", "queue_depth_mean", "up_share"])


def cost_per_request(requests: pd.DataFrame, region_costs: Mapping[str, float], by: By = None,
                     warmup: float = 0.0) -> pd.DataFrame:
    """What a served request costs, from the region costs the CostPolicy trades against.

    Each successful request costs its serving region's cost (``region_costs``: region ->
    cost, e.g. from :func:`regions_table`); failed attempts are not charged.  Columns: ``by``
    columns, ``requests`` (after warm-up), ``served``, ``total_cost``, ``cost_per_request``
    (total_cost / served).
    """
    keys = _keys(by)
    _require(requests, ["arrival", "status", "region", *keys], "requests")
    costs = {str(k): float(v) for k, v in region_costs.items()}
    r = requests[requests["arrival"] >= warmup]
    ok = _eq(r["status"], "success") & r["region"].notna().to_numpy()
    regions = _plain(r["region"])[ok].astype(str)
    unknown = sorted(set(regions) - set(costs))
    if unknown:
        raise ValueError(f"region_costs has no cost for region(s) {unknown}")
    cost = np.zeros(len(r))
    cost[ok] = regions.map(costs).to_numpy(dtype=float)
    r = r.assign(_ok=ok, _cost=cost)
    records = []
    for key, sub in _groups(r, keys):
        served, total = int(sub["_ok"].sum()), float(sub["_cost"].sum())
        records.append({**dict(zip(keys, key)), "requests": len(sub), "served": served,
                        "total_cost": total, "cost_per_request": _ratio(total, served)})
    return _frame(records, [*keys, "requests", "served", "total_cost", "cost_per_request"])


# =============================================================================== replications


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float, float, float]:
    """(mean, std, sem, low, high) of a Student t interval; NaN spread below two values."""
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    sem = std / math.sqrt(n)
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sem
    return mean, std, sem, mean - half, mean + half


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def replication_summary(df: pd.DataFrame, metric_columns: Union[str, Sequence[str]], by: By = None,
                        confidence: float = 0.95) -> pd.DataFrame:
    """Mean and Student-t confidence interval across replications (one row of ``df`` per seed),
    so a number comes with how much it moves between seeds.

    NaN values are left out (``n`` counts the rest).  With fewer than 2 values std and the
    interval are NaN.  Columns: ``by`` columns, ``metric``, ``n``, ``mean``, ``std`` (ddof 1),
    ``sem``, ``ci_low``, ``ci_high``.
    """
    _check_confidence(confidence)
    metrics = [metric_columns] if isinstance(metric_columns, str) else list(metric_columns)
    keys = _keys(by)
    _require(df, [*metrics, *keys], "replications")
    records = []
    for key, sub in _groups(df, keys):
        for m in metrics:
            v = sub[m].to_numpy(dtype=float)
            v = v[~np.isnan(v)]
            mean, std, sem, lo, hi = _t_interval(v, confidence)
            records.append({**dict(zip(keys, key)), "metric": m, "n": len(v), "mean": mean,
                            "std": std, "sem": sem, "ci_low": lo, "ci_high": hi})
    return _frame(records, [*keys, "metric", "n", "mean", "std", "sem", "ci_low", "ci_high"])


def paired_comparison(df: pd.DataFrame, metric: str, variant_col: str, baseline: Any,
                      seed_col: str = "seed", confidence: float = 0.95, by: By = None) -> pd.DataFrame:
    """Variant minus baseline, seed by seed: with common random numbers both see the same
    arrivals, so the paired difference cancels the seed's luck and "B beats A" gets an interval.

    ``df`` has one row per (variant, seed) [per ``by`` group]; variants are reported in the
    order they first appear.  Every variant must have
    exactly the baseline's seeds (else ValueError naming the unmatched ones); pairs where
    either value is NaN are dropped.  Per variant: the mean difference with its Student-t
    interval, the paired t-test (``scipy.stats.ttest_rel``) and, with at least 6 pairs, the
    Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, NaN below 6).  When every difference
    is equal the tests are degenerate: p = 1 if they are all 0, else 0.

    Columns: ``by`` columns, ``variant``, ``baseline``, ``n`` (pairs), ``baseline_mean``,
    ``variant_mean``, ``mean_diff`` (variant - baseline), ``std_diff``, ``ci_low``,
    ``ci_high``, ``relative_diff`` (mean_diff / baseline_mean), ``t_statistic``,
    ``p_value``, ``wilcoxon_statistic``, ``wilcoxon_p_value``, ``significant`` (p_value <
    1 - confidence).
    """
    _check_confidence(confidence)
    keys = _keys(by)
    _require(df, [metric, variant_col, seed_col, *keys], "replications")
    cols = [*keys, "variant", "baseline", "n", "baseline_mean", "variant_mean", "mean_diff",
            "std_diff", "ci_low", "ci_high", "relative_diff", "t_statistic", "p_value",
            "wilcoxon_statistic", "wilcoxon_p_value", "significant"]
    records = []
    for key, sub in _groups(_plain_keys(df, [variant_col, seed_col]), keys):
        where = f" in group {dict(zip(keys, key))}" if keys else ""
        dup = sub.duplicated([variant_col, seed_col])
        if dup.any():
            bad = sub.loc[dup, [variant_col, seed_col]].drop_duplicates().values.tolist()
            raise ValueError(f"more than one row per ({variant_col}, {seed_col}){where}: {bad}; "
                             "aggregate first or add the distinguishing column to by")
        table = sub.set_index([variant_col, seed_col])[metric]
        variants = list(dict.fromkeys(sub[variant_col]))
        if baseline not in variants:
            raise ValueError(f"baseline {baseline!r} not found in {variant_col}{where} "
                             f"(have {variants})")
        base = table.xs(baseline, level=variant_col)
        for v in variants:
            if v == baseline:
                continue
            other = table.xs(v, level=variant_col)
            only_b = sorted(set(base.index) - set(other.index))
            only_v = sorted(set(other.index) - set(base.index))
            if only_b or only_v:
                raise ValueError(f"seeds do not pair up between {v!r} and baseline {baseline!r}"
                                 f"{where}: only in baseline {only_b}, only in {v!r} {only_v}")
            b = base.to_numpy(dtype=float)
            x = other.reindex(base.index).to_numpy(dtype=float)
            keep = ~(np.isnan(b) | np.isnan(x))
            b, x = b[keep], x[keep]
            d = x - b
            n = len(d)
            mean, std, _, lo, hi = _t_interval(d, confidence)
            t_stat = p = w_stat = w_p = math.nan
            if n >= 2:
                if np.all(d == d[0]):
                    t_stat = 0.0 if d[0] == 0 else math.copysign(math.inf, d[0])
                    p = 1.0 if d[0] == 0 else 0.0
                else:
                    res = stats.ttest_rel(x, b)
                    t_stat, p = float(res.statistic), float(res.pvalue)
            if n >= 6:
                if np.all(d == 0):
                    w_stat, w_p = 0.0, 1.0
                elif np.all(d == d[0]):
                    w_stat, w_p = 0.0, 0.0
                else:
                    res = stats.wilcoxon(x, b)
                    w_stat, w_p = float(res.statistic), float(res.pvalue)
            bmean = float(b.mean()) if n else math.nan
            records.append({**dict(zip(keys, key)), "variant": v, "baseline": baseline, "n": n,
                            "baseline_mean": bmean, "variant_mean": float(x.mean()) if n else math.nan,
                            "mean_diff": mean, "std_diff": std, "ci_low": lo, "ci_high": hi,
                            "relative_diff": _ratio(mean, bmean) if n else math.nan,
                            "t_statistic": t_stat, "p_value": p, "wilcoxon_statistic": w_stat,
                            "wilcoxon_p_value": w_p,
                            "significant": bool(p < 1.0 - confidence) if not math.isnan(p) else False})
    return _frame(records, cols)


# =============================================================================== scenario helpers


def nodes_table(scenario: Any) -> pd.DataFrame:
    """The nodes of a Scenario, to resolve fault targets and list idle nodes.

    Columns: ``node``, ``group``, ``region``, ``gpus``, ``privacy`` (region's level name),
    ``cost`` (region's cost).
    """
    regions = {r.id: r for r in scenario.regions}
    rows = [{"node": n, "group": g.name, "region": g.region, "gpus": g.gpus,
             "privacy": regions[g.region].privacy.name.lower(), "cost": float(regions[g.region].cost)}
            for g in scenario.nodes for n in g.node_ids()]
    return _frame(rows, ["node", "group", "region", "gpus", "privacy", "cost"])


def regions_table(scenario: Any) -> pd.DataFrame:
    """Region privacy levels and costs of a Scenario; ``dict(zip(t.region, t.privacy))`` is the
    ``region_privacy`` map and ``dict(zip(t.region, t.cost))`` the ``region_costs`` map.

    Columns: ``region``, ``privacy`` (level name), ``cost``.
    """
    rows = [{"region": r.id, "privacy": r.privacy.name.lower(), "cost": float(r.cost)}
            for r in scenario.regions]
    return _frame(rows, ["region", "privacy", "cost"])


def gateways_table(scenario: Any) -> pd.DataFrame:
    """Gateway replicas of a Scenario and their regions (one ``gw-<region>`` per region when
    the scenario lists none, as the world does).  Columns: ``gateway``, ``region``."""
    specs = scenario.gateways or []
    rows = ([{"gateway": g.name, "region": g.region} for g in specs] if specs
            else [{"gateway": f"gw-{r.id}", "region": r.id} for r in scenario.regions])
    return _frame(rows, ["gateway", "region"])
