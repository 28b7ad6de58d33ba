"""fedsim.testing: regression-test routing quality - SLO assertions, baselines, test helpers.

Three layers, each usable on its own:

* **Assertions** (the ``assertions:`` section of a scenario file, parsed by
  :mod:`fedsim.world.assertions`): :func:`run_and_check` runs every replication (and every
  sweep point) of a scenario and evaluates them; :func:`evaluate` does it for results you
  already have.  :func:`format_table` and :func:`junit_xml` report them.
* **Baselines**: :func:`save_baseline` stores the summary metrics of a scenario, per seed
  and with their confidence intervals, in a small diff-friendly JSON file meant to be
  committed; :func:`compare_baseline` reruns the scenario on the same seeds and says, per
  metric, whether the change is a significant regression, an improvement or noise.
* **Helpers for hand-written tests** (also pytest fixtures, see :mod:`fedsim.pytest_plugin`):
  :func:`run_scenario`, :func:`assert_slo`, :func:`assert_no_regression`,
  :func:`assert_beats`.

Entry points for the command line (plain functions returning an exit status):
:func:`check_main`, :func:`baseline_save_main`, :func:`baseline_compare_main`.

Statistics.  With several seeds a metric has one value per seed; an assertion without a
statistic uses their mean, ``metric.lower95`` / ``metric.upper95`` the bounds of the Student-t
interval.  Baseline comparisons pair the values seed by seed (paired t-test) when the seeds
are the same and the *world* is unchanged - everything but the ``router`` section, the
name and the assertions: the simulator's random streams depend only on the seed and the
world (:mod:`fedsim.world.randomness`), so both runs see the same arrivals, service demands
and faults (common random numbers) and the paired test cancels each seed's luck.  Otherwise
they are compared as independent samples (Welch's t-test).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shlex
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from scipy import stats

from .scenario import LoadedScenario, ScenarioError, SweepPoint, load_scenario, parse_path, set_path
from .world import Result, Scenario
from .world.assertions import METRICS, Check, MetricInfo, parse_check
from .world.scenario import AssertionSpec
from .world.units import parse_duration

__all__ = [
    "AssertionOutcome", "CheckReport", "BaselineError", "BaselineReport", "MetricComparison",
    "BeatsResult", "RunSet", "DEFAULT_BASELINE_METRICS", "evaluate", "run_and_check",
    "junit_xml", "format_table", "save_baseline", "compare_baseline", "run_scenario",
    "assert_slo", "assert_no_regression", "assert_beats", "metric_values", "prepare",
    "check_main", "baseline_save_main", "baseline_compare_main",
]

Source = Union[str, Path, dict, Scenario, LoadedScenario]

#: Metrics a baseline stores by default (ungrouped; those of the scenario's assertions are
#: added).  routing_latency is left out: it is always 0 in simulated time.
DEFAULT_BASELINE_METRICS: tuple[str, ...] = (
    "p50_latency", "p90_latency", "p99_latency", "p999_latency", "mean_latency",
    "success_rate", "success_rate_total", "goodput", "retries_per_request",
    "retry_effectiveness", "traffic_to_down_nodes", "load_imbalance_cv",
    "load_imbalance_max_over_mean", "gpu_utilization", "privacy_violations",
    "circuit_recovery_time", "time_to_detect", "time_to_recover",
)
BASELINE_FORMAT = "fedsim-baseline/1"


# =============================================================================== formatting


def format_value(kind: str, v: Optional[float], signed: bool = False) -> str:
    """A metric value in its unit: durations in ms (s from 10 s), fractions as numbers,
    rates per second."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        if kind == "duration" and not signed:
            return "never" if v > 0 else "-inf"
        return ("+" if v > 0 and signed else "") + ("inf" if v > 0 else "-inf")
    sign = "+" if signed else ""
    if kind == "duration":
        return f"{v * 1e3:{sign}.1f} ms" if abs(v) < 1 else f"{v:{sign}.2f} s"
    if kind == "fraction":
        return f"{v:{sign}.4f}"
    if kind == "rate":
        return f"{v:{sign}.2f}/s"
    if kind == "count":
        return f"{v:{sign}.0f}" if float(v).is_integer() else f"{v:{sign}.2f}"
    return f"{v:{sign}.4g}"


def _unit(kind: str) -> str:
    return {"duration": "s", "fraction": "", "rate": "1/s", "count": "", "number": ""}[kind]


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# =============================================================================== loading


@dataclass
class Prepared:
    """A scenario ready to run: where it came from, the overrides applied, its sweep points."""

    scenario: Scenario
    path: Optional[Path] = None
    points: list[SweepPoint] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    seed: Optional[int] = None

    @property
    def name(self) -> str:
        return self.scenario.name

    def seeds(self) -> list[int]:
        return [self.scenario.seed + i for i in range(self.scenario.replications)]

    def configurations(self) -> list[tuple[Optional[str], dict, Scenario]]:
        """(point name, point parameters, scenario) of every sweep point, or of the scenario
        alone (point None) when there is no sweep."""
        if self.points:
            return [(p.name, dict(p.params), p.scenario) for p in self.points]
        return [(None, {}, self.scenario)]


def _override_text(key: str, value: Any) -> str:
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={json.dumps(value)}"


def _kw_overrides(kw: Mapping[str, Any]) -> list[str]:
    """``router__strategy="random"`` -> ``router.strategy=random``."""
    return [_override_text(k.replace("__", "."), v) for k, v in kw.items()]


def _shorten(scenario: Scenario, duration: Any) -> list[str]:
    """Overrides that shorten a run to ``duration`` (never lengthen it); the warm-up shrinks
    by the same factor."""
    d = parse_duration(duration)
    if not d > 0:
        raise ValueError(f"duration must be > 0, got {duration!r}")
    if d >= scenario.duration:
        return []
    warmup = scenario.warmup * d / scenario.duration
    return [f"duration={d:.9g}s", f"warmup={warmup:.9g}s"]


def _validate_data(data: dict, where: str) -> Scenario:
    from .scenario.loader import validate
    from .scenario.source import Positions

    return validate(data, Positions(), where)


def _apply_overrides(data: dict, overrides: Sequence[str], where: str) -> dict:
    import yaml

    from .scenario.errors import Issue

    data = copy.deepcopy(data)
    issues = []
    for text in overrides:
        if "=" not in text:
            issues.append(Issue(f"--set {text}", None, None, "", "expected KEY.PATH=VALUE"))
            continue
        key, raw = text.split("=", 1)
        try:
            set_path(data, parse_path(key), yaml.safe_load(raw) if raw.strip() else "")
        except (ValueError, KeyError, yaml.YAMLError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            issues.append(Issue(f"--set {text}", None, None, key.strip(), str(msg)))
    if issues:
        raise ScenarioError(issues)
    return data


def prepare(source: Source, overrides: Sequence[str] = (), seed: Optional[int] = None,
            duration: Any = None) -> Prepared:
    """Load ``source`` (a scenario file, a dict in the file's form, a Scenario or a
    LoadedScenario) with ``--set``-style ``overrides`` (``"key.path=value"``), a first
    ``seed`` and a shorter ``duration`` (the warm-up shrinks in proportion).  Raises
    :class:`fedsim.scenario.ScenarioError` for bad input."""
    overrides = list(overrides)
    if isinstance(source, LoadedScenario):
        source = source.path
    if isinstance(source, (str, Path)):
        loaded = load_scenario(source, overrides=overrides, seed=seed)
        if duration is not None:
            extra = _shorten(loaded.scenario, duration)
            if extra:
                overrides = overrides + extra
                loaded = load_scenario(source, overrides=overrides, seed=seed)
        return Prepared(loaded.scenario, _relative(Path(source)), list(loaded.points), overrides,
                        seed)
    if isinstance(source, Scenario):
        if not overrides and seed is None and duration is None:
            return Prepared(source, None, [], [], None)
        data, where = source.model_dump(mode="json"), f"<scenario {source.name}>"
    elif isinstance(source, dict):
        data, where = source, "<dict>"
        if "extends" in data:
            raise ScenarioError([_issue(where, "extends", "extends: needs a file; load the "
                                        "base file and merge (fedsim.scenario.merge) instead")])
    else:
        raise TypeError(f"expected a scenario file path, a dict, a Scenario or a LoadedScenario; "
                        f"got {type(source).__name__}")
    data = _apply_overrides(data, overrides, where)
    if seed is not None:
        data["seed"] = seed
    sweep = data.pop("sweep", None)
    scenario = _validate_data(data, where)
    if duration is not None:
        extra = _shorten(scenario, duration)
        if extra:
            overrides = overrides + extra
            data = _apply_overrides(data, extra, where)
            scenario = _validate_data(data, where)
    points = []
    if sweep is not None:
        from .scenario.loader import _sweep_points
        from .scenario.source import Positions

        points = _sweep_points(sweep, data, Positions(), where)
    return Prepared(scenario, None, points, overrides, seed)


def _relative(path: Path) -> Path:
    """``path`` relative to the working directory when it is below it (shorter messages,
    reproduce commands that work from here)."""
    if not path.is_absolute():
        return path
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _issue(where: str, path: str, message: str):
    from .scenario.errors import Issue

    return Issue(where, None, None, path, message)


# =============================================================================== metrics


_PERCENTILE_COLUMN = {"p50_latency": "p50", "p90_latency": "p90", "p95_latency": "p95",
                      "p99_latency": "p99", "p999_latency": "p99_9", "mean_latency": "mean"}
_OUTCOME_METRICS = ("success_rate", "success_rate_total", "goodput", "retries_per_request",
                    "retry_effectiveness")
_REQUEST_COLUMN = {"capability": "capability", "tenant": "tenant", "gateway": "gateway",
                   "region": "origin_region"}


def _plain(s: pd.Series) -> pd.Series:
    return s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s


class _RunMetrics:
    """Metric values of one Result, per group (cached per run)."""

    def __init__(self, result: Result, scenario: Optional[Scenario] = None) -> None:
        self.result = result
        self.scenario = scenario if scenario is not None else result.scenario
        self.warmup = float(getattr(self.scenario, "warmup", 0.0))
        self.end = float(result.simulated_seconds or self.scenario.duration)
        self._cache: dict = {}

    # ------------------------------------------------------------------ tables
    def _memo(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def nodes(self) -> pd.DataFrame:
        from . import analysis

        return self._memo("nodes", lambda: analysis.nodes_table(self.scenario))

    @property
    def node_region(self) -> dict[str, str]:
        return dict(zip(self.nodes["node"].astype(str), self.nodes["region"].astype(str)))

    @property
    def strategy(self) -> str:
        return str(self.scenario.router.strategy)

    # ------------------------------------------------------------------ values
    def value(self, metric: str, by: Optional[str] = None) -> dict[Optional[str], float]:
        """{group value (None without ``by``): metric value}; NaN means no data."""
        key = ("value", metric, by)
        if key not in self._cache:
            if by == "strategy":
                inner = self.value(metric, None)
                self._cache[key] = {self.strategy: inner.get(None, math.nan)}
            else:
                self._cache[key] = {(None if k is None else str(k)): (math.nan if _nan(v) else float(v))
                                    for k, v in self._compute(metric, by).items()}
        return self._cache[key]

    def _compute(self, metric: str, by: Optional[str]) -> dict:
        from . import analysis

        r = self.result.requests
        if metric in _PERCENTILE_COLUMN or metric in _OUTCOME_METRICS or metric in (
                "privacy_violations", "routing_latency"):
            col = _REQUEST_COLUMN.get(by) if by else None
            if metric in _PERCENTILE_COLUMN:
                t = self._memo(("lat", col), lambda: analysis.latency_percentiles(
                    r, by=col, warmup=self.warmup))
                return self._rows(t, col, _PERCENTILE_COLUMN[metric])
            if metric in _OUTCOME_METRICS:
                t = self._memo(("out", col), lambda: analysis.outcomes(
                    r, by=col, warmup=self.warmup, duration=self.end))
                return self._rows(t, col, metric)
            if metric == "privacy_violations":
                privacy = {reg.id: reg.privacy.name.lower() for reg in self.scenario.regions}
                with warnings.catch_warnings():  # the assertion is the loud report here
                    warnings.simplefilter("ignore", analysis.PrivacyViolationWarning)
                    t = analysis.report_privacy_violations(r, privacy, by=col, warmup=self.warmup)
                return self._rows(t, col, "privacy_violations")
            # routing_latency: the reference does no I/O while routing: 0 in simulated time
            t = self._memo(("out", col), lambda: analysis.outcomes(
                r, by=col, warmup=self.warmup, duration=self.end))
            return {k: 0.0 for k in self._rows(t, col, "requests")} or {None: 0.0}
        if metric in ("load_imbalance_cv", "load_imbalance_max_over_mean"):
            column = "cv" if metric == "load_imbalance_cv" else "max_over_mean"
            nodes = list(self.nodes["node"].astype(str))
            if by == "region":
                out = {}
                for region in self.scenario.regions:
                    members = [n for n in nodes if self.node_region[n] == region.id]
                    sub = r[_plain(r["node"]).isin(members).to_numpy()]
                    t = analysis.load_imbalance(sub, by="node", all_nodes=members,
                                                warmup=self.warmup)
                    out[region.id] = t[column].iloc[0] if len(t) else math.nan
                return out
            t = analysis.load_imbalance(r, by="node", all_nodes=nodes, warmup=self.warmup,
                                        group_by="gateway" if by == "gateway" else None)
            return self._rows(t, "gateway" if by == "gateway" else None, column)
        if metric == "gpu_utilization":
            ts = self.result.timeseries
            if not len(ts):
                return {None: math.nan} if by is None else {}
            t = analysis.gpu_utilization(ts, by="node", warmup=self.warmup)
            if by == "region":
                t = t.assign(region=_plain(t["node"]).astype(str).map(self.node_region))
                return {k: float(g["gpu_utilization"].mean()) for k, g in t.groupby("region")}
            return {None: float(t["gpu_utilization"].mean()) if len(t) else math.nan}
        if metric == "traffic_to_down_nodes":
            a = self.result.attempts
            col = None
            if by in ("capability", "tenant"):
                extra = _plain(r.set_index("request")[by])
                a = a.assign(**{by: _plain(a["request"]).map(extra).to_numpy()})
                col = by
            elif by == "region":
                a = a.assign(node_region=_plain(a["node"]).map(self.node_region).to_numpy())
                col = "node_region"
            elif by == "gateway":
                col = "gateway"
            t = analysis.traffic_to_down_nodes(a, self.result.events, by=col, nodes=self.nodes,
                                               warmup=self.warmup)
            return self._rows(t, col, "share")
        if metric == "circuit_recovery_time":
            eps = analysis.circuit_episodes(self.result.events)
            dur = eps["duration"].to_numpy(dtype=float, copy=True)
            dur[np.isnan(dur)] = math.inf  # never closed within the run
            return self._fault_groups(eps.assign(_v=dur), by)
        if metric == "time_to_detect":
            t = self._memo("detect", lambda: analysis.detection_times(
                self.result.events, self.result.attempts, nodes=self.nodes,
                gateways=analysis.gateways_table(self.scenario)))
            used = t["detected_at"].notna() | (t["attempts_before_detect"] > 0)
            t = t[used.to_numpy()]
            # undetected: offered for the whole fault, or never detected while it lasted
            undetected = (t["end"] - t["start"]).fillna(math.inf).to_numpy(dtype=float)
            v = np.where(t["time_to_detect"].notna(), t["time_to_detect"].to_numpy(dtype=float),
                         undetected)
            return self._fault_groups(t.assign(_v=v), by)
        if metric == "time_to_recover":
            t = self._memo("detect", lambda: analysis.detection_times(
                self.result.events, self.result.attempts, nodes=self.nodes,
                gateways=analysis.gateways_table(self.scenario)))
            t = t[t["end"].notna().to_numpy()]
            rows = []
            for g, n, start, end in zip(t["gateway"], t["node"], t["start"], t["end"]):
                v = self._exclusion(str(g), str(n)).recovery(float(start), float(end))
                if v is not None:
                    rows.append({"gateway": g, "node": n, "_v": v})
            return self._fault_groups(pd.DataFrame(rows, columns=["gateway", "node", "_v"]), by)
        raise ValueError(f"unknown metric {metric!r}")

    def _exclusion(self, gateway: str, node: str) -> "_Exclusion":
        timelines = self._memo("exclusion", lambda: _Exclusion.build(self.result.events))
        return timelines.get((gateway, node), _Exclusion([], []))

    def _fault_groups(self, t: pd.DataFrame, by: Optional[str]) -> dict:
        if by is None:
            return {None: float(t["_v"].mean()) if len(t) else math.nan}
        if by == "gateway":
            keys = _plain(t["gateway"]).astype(str)
        else:  # region of the node
            keys = _plain(t["node"]).astype(str).map(self.node_region)
        return {k: float(g["_v"].mean()) for k, g in t.assign(_k=keys.to_numpy()).groupby("_k")}

    @staticmethod
    def _rows(t: pd.DataFrame, col: Optional[str], column: str) -> dict:
        if col is None:
            return {None: (t[column].iloc[0] if len(t) else math.nan)}
        return {k: v for k, v in zip(t[col], t[column]) if not _nan(k)}


class _Exclusion:
    """When one gateway's router may not route to one node: its health view is Unhealthy
    or its circuit Open (the router drops both from its candidates, spec §6.2), from the
    events table."""

    def __init__(self, times: list[float], excluded: list[bool]) -> None:
        self.times = np.asarray(times, dtype=float)
        self.excluded = np.asarray(excluded, dtype=bool)

    @staticmethod
    def build(events: pd.DataFrame) -> dict[tuple[str, str], "_Exclusion"]:
        e = events[_plain(events["category"]).isin(["health", "circuit"]).to_numpy()]
        e = e.sort_values("time", kind="stable")
        state: dict[tuple[str, str], list] = {}
        out: dict[tuple[str, str], tuple[list, list]] = {}
        for t, cat, g, n, new in zip(e["time"], _plain(e["category"]), _plain(e["source"]),
                                     _plain(e["subject"]), _plain(e["new"])):
            key = (str(g), str(n))
            st = state.setdefault(key, ["Unknown", "Closed"])
            st[0 if cat == "health" else 1] = str(new)
            times, flags = out.setdefault(key, ([], []))
            times.append(float(t))
            flags.append(st[0] == "Unhealthy" or st[1] == "Open")
        return {k: _Exclusion(*v) for k, v in out.items()}

    def _at(self, t: float) -> bool:
        i = int(np.searchsorted(self.times, t, side="right"))
        return bool(self.excluded[i - 1]) if i else False

    def recovery(self, start: float, end: float) -> Optional[float]:
        """Seconds from ``end`` until the node is routable again for this gateway (0 if it
        already is), inf if never within the run; None if the gateway never excluded the
        node during [start, end] (nothing to recover from)."""
        i = int(np.searchsorted(self.times, start, side="left"))
        j = int(np.searchsorted(self.times, end, side="right"))
        if not (self._at(start) or self.excluded[i:j].any()):
            return None
        if not self._at(end):
            return 0.0
        later = np.flatnonzero(~self.excluded[j:])
        return float(self.times[j + later[0]] - end) if len(later) else math.inf


def metric_values(results: Union[Result, Sequence[Result]], metric: str,
                  by: Optional[str] = None) -> pd.DataFrame:
    """The value of ``metric`` per seed (and per ``by`` group) over ``results``: the
    numbers assertions and baselines are made of.  Columns: ``seed``, [``group``], ``value``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    rows = []
    for r in _as_results(results):
        for k, v in _RunMetrics(r).value(metric, by).items():
            rows.append({"seed": r.seed, **({"group": k} if by else {}), "value": v})
    return pd.DataFrame(rows, columns=["seed", *(["group"] if by else []), "value"])


def _as_results(results) -> list[Result]:
    if isinstance(results, Result):
        return [results]
    out = list(results)
    if not out:
        raise ValueError("no results to evaluate")
    for r in out:
        if not isinstance(r, Result):
            raise TypeError(f"expected fedsim Result objects, got {type(r).__name__}")
    return out


# =============================================================================== statistics


def _t_interval(v: np.ndarray, level: float) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval; NaN bounds below two values."""
    n = len(v)
    if not n:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _statistic(values: Sequence[float], check: Check) -> tuple[float, str]:
    """The measured value of ``check`` over per-seed values, and a note on how."""
    v = np.array([x for x in values if not _nan(x)], dtype=float)
    n = len(v)
    if not n:
        return math.nan, "no data"
    stat = check.stat
    never = int(np.isinf(v).sum())
    if never:
        note = f"never, in {never} of {n} seed{'s' if n != 1 else ''} with data"
        if stat in ("min", "lower") or (stat or "").startswith("lower"):
            return float(v.min()), note + "; lowest seed"
        return math.inf, note
    if stat is None:
        return (float(v[0]), "") if n == 1 else (float(v.mean()), f"mean of {n} seeds")
    if stat == "mean":
        return float(v.mean()), f"mean of {n} seed{'s' if n != 1 else ''}"
    if stat == "min":
        return float(v.min()), f"lowest of {n} seed{'s' if n != 1 else ''}"
    if stat == "max":
        return float(v.max()), f"highest of {n} seed{'s' if n != 1 else ''}"
    if n < 2:
        return math.nan, (f"a confidence bound needs values from >= 2 seeds, found {n}: run "
                          "more replications (replications: 5) or assert on the mean")
    level = check.confidence
    mean, lo, hi = _t_interval(v, level)
    side = "lower" if stat.startswith("lower") else "upper"
    note = (f"{side} bound of the {level * 100:g}% t-interval over {n} seeds, mean "
            f"{format_value(check.info.kind, mean)}")
    return (lo if side == "lower" else hi), note


# =============================================================================== assertions


@dataclass
class AssertionOutcome:
    """One assertion evaluated over one group (or the whole run).

    ``measured`` is the value compared with ``bound`` (the mean over seeds, or the statistic
    the check names); ``margin`` the headroom in the metric's unit (negative: violated by
    that much); ``values`` the per-seed values (NaN: no data in that seed)."""

    name: str
    group: Optional[str]
    metric: str
    op: str
    bound: float
    measured: float
    margin: float
    passed: bool
    critical_failed: bool
    seeds: list[int]
    values: list[float] = field(default_factory=list)
    check: str = ""
    critical: Optional[str] = None
    kind: str = "number"
    worst_seed: Optional[int] = None
    note: str = ""
    scenario: str = ""
    path: Optional[str] = None
    point: Optional[str] = None
    reproduce: Optional[str] = None

    @property
    def vacuous(self) -> bool:
        """Passed because there was nothing to judge (e.g. no circuit ever opened)."""
        return self.passed and _nan(self.measured)

    @property
    def status(self) -> str:
        if self.passed:
            return "pass (no data)" if self.vacuous else "PASS"
        return "FAIL (critical)" if self.critical_failed else "FAIL"

    def fmt(self, v: Optional[float], signed: bool = False) -> str:
        return format_value(self.kind, v, signed)

    @property
    def relative_margin(self) -> float:
        if _nan(self.margin) or not self.bound:
            return math.nan
        return self.margin / abs(self.bound)

    def describe_measured(self) -> str:
        text = f"{self.metric} = {self.fmt(self.measured)}"
        if self.note:
            text += f" ({self.note})"
        if len(self.values) > 1:
            per = ", ".join(f"{s}: {self.fmt(v)}" for s, v in zip(self.seeds, self.values))
            text += f"; per seed {per}"
        return text

    def message(self) -> str:
        """A readable multi-line account: measured, bound, margin, seed to reproduce."""
        where = f" [{self.group}]" if self.group else ""
        lines = [f"{self.name}{where}: {self.status}  ({self.check}"
                 + (f"; critical {self.critical}" if self.critical else "") + ")"]
        lines.append(f"  measured:  {self.describe_measured()}")
        lines.append(f"  bound:     {self.op} {self.fmt(self.bound)}")
        if _nan(self.measured):
            lines.append("  margin:    - (" + ("nothing to judge: passes)" if self.passed
                                               else "cannot be judged: fails)"))
        else:
            rel = self.relative_margin
            how = ("headroom" if self.margin >= 0 else "violated by")
            extra = (f", {how} {abs(rel):.1%} of the bound"
                     if not _nan(rel) and not math.isinf(rel) else "")
            lines.append(f"  margin:    {self.fmt(self.margin, signed=True)}{extra}")
        if self.critical and self.critical_failed:
            lines.append(f"  critical:  {self.critical} fails too")
        if self.worst_seed is not None:
            lines.append(f"  reproduce: worst seed {self.worst_seed}"
                         + (f": {self.reproduce}" if self.reproduce else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        from .runner import clean

        d = asdict(self)
        d["status"] = self.status
        return clean(d)


def _reproduce(path: Optional[Path], seed: int, overrides: Sequence[str],
               params: Mapping[str, Any]) -> Optional[str]:
    if path is None:
        return None
    sets = ["replications=1", *overrides, *(_override_text(str(k), v) for k, v in params.items())]
    return " ".join(["fedsim", "run", shlex.quote(str(path)), "--seed", str(seed),
                     *(f"--set {shlex.quote(s)}" for s in sets)])


def _worst(seeds: Sequence[int], values: Sequence[float], check: Check) -> Optional[int]:
    pairs = [(s, v) for s, v in zip(seeds, values) if not _nan(v)]
    if not pairs:
        return seeds[0] if seeds else None
    if check.op in ("<=", "<"):
        return max(pairs, key=lambda p: p[1])[0]
    if check.op in (">=", ">"):
        return min(pairs, key=lambda p: p[1])[0]
    return max(pairs, key=lambda p: abs(p[1] - check.bound))[0]


@dataclass
class _Config:
    """One configuration's runs: a sweep point (or the scenario) and its results."""

    point: Optional[str]
    params: dict
    scenario: Scenario
    results: list[Result]


def _evaluate(assertions: Sequence[AssertionSpec], configs: Sequence[_Config],
              path: Optional[Path] = None, overrides: Sequence[str] = ()) -> list[AssertionOutcome]:
    outcomes: list[AssertionOutcome] = []
    metrics = {id(c): [_RunMetrics(r, c.scenario) for r in c.results] for c in configs}
    for a in assertions:
        check, crit = a.check, a.critical
        info: MetricInfo = check.info
        for c in configs:
            runs = metrics[id(c)]
            seeds = [r.seed for r in c.results]
            per_seed = [rm.value(check.metric, a.by) for rm in runs]
            keys: list = []
            for d in per_seed:
                keys += [k for k in d if k not in keys]
            if not keys:
                keys = [None]
            if a.by:
                keys = sorted(keys, key=lambda k: (k is None, str(k)))
            for k in keys:
                values = [d.get(k, math.nan) for d in per_seed]
                measured, note = _statistic(values, check)
                if _nan(measured):
                    passed = info.empty == "pass" and note == "no data"
                    critical_failed = crit is not None and not passed
                    if note == "no data":
                        note = "no data: nothing to judge" if passed else "no data"
                else:
                    critical_failed = False
                    if crit is not None:
                        cm, _ = _statistic(values, crit)
                        critical_failed = not crit.holds(cm)
                    passed = check.holds(measured) and not critical_failed
                parts = []
                if c.point is not None and len(configs) > 1:
                    parts.append(f"point {c.point}")
                if a.by and k is not None:
                    parts.append(f"{a.by}={k}")
                worst = _worst(seeds, values, check)
                outcomes.append(AssertionOutcome(
                    name=a.title, group="; ".join(parts) or None, metric=check.subject,
                    op=check.op, bound=check.bound, measured=measured,
                    margin=check.margin(measured), passed=bool(passed),
                    critical_failed=bool(critical_failed), seeds=seeds, values=values,
                    check=str(check), critical=_critical_text(check, crit),
                    kind=info.kind, worst_seed=worst, note=note, scenario=c.scenario.name,
                    path=None if path is None else str(path), point=c.point,
                    reproduce=_reproduce(path, worst, overrides, c.params) if worst is not None else None))
    return outcomes


def _critical_text(check: Check, crit: Optional[Check]) -> Optional[str]:
    if crit is None:
        return None
    text = str(crit)
    return text if text.startswith(check.metric) else f"{crit.subject} {text}"


def _specs(assertions: Union[None, str, AssertionSpec, Sequence[Any]]) -> list[AssertionSpec]:
    """Assertion specs from strings / mappings / specs (presets expanded)."""
    from pydantic import TypeAdapter, ValidationError

    from .world.scenario import Assertions

    if assertions is None:
        return []
    if isinstance(assertions, (str, dict, AssertionSpec)):
        assertions = [assertions]
    try:
        return TypeAdapter(Assertions).validate_python(list(assertions))
    except ValidationError as exc:
        items = list(assertions)
        msgs = []
        for e in exc.errors():
            loc = [p for p in e["loc"] if not (isinstance(p, str) and (
                p.startswith("function") or p == "AssertionSpec"))]
            what = ""
            if loc and isinstance(loc[0], int) and loc[0] < len(items):
                what = f"{items[loc[0]]!r}: " if len(items) > 1 or loc[1:] == ["check"] else ""
                rest = [str(p) for p in loc[1:] if p != "check"]
                what += "".join(f"{p}: " for p in rest)
            msgs.append(what + e["msg"].removeprefix("Value error, "))
        raise ValueError("; ".join(msgs)) from None


def evaluate(scenario_or_loaded: Union[Scenario, LoadedScenario, Prepared, None],
             results: Union[Result, Sequence[Result]],
             assertions: Union[None, str, Sequence[Any]] = None) -> list[AssertionOutcome]:
    """Evaluate the scenario's assertions (or ``assertions``: strings such as
    ``"p99_latency <= 800ms"``, mappings or specs) over the ``results`` of one configuration
    (one Result per seed).  ``scenario_or_loaded`` may be None: the results' scenario is
    used.  Returns one :class:`AssertionOutcome` per assertion and group."""
    results = _as_results(results)
    path = None
    if isinstance(scenario_or_loaded, (LoadedScenario, Prepared)):
        path = scenario_or_loaded.path
        scenario = scenario_or_loaded.scenario
    else:
        scenario = scenario_or_loaded if scenario_or_loaded is not None else results[0].scenario
    specs = _specs(assertions) if assertions is not None else list(scenario.assertions)
    overrides = scenario_or_loaded.overrides if isinstance(scenario_or_loaded, Prepared) else ()
    return _evaluate(specs, [_Config(None, {}, scenario, results)], path, overrides)


@dataclass
class CheckReport:
    """The assertions of one scenario (every sweep point) and how they came out."""

    scenario: str
    path: Optional[str]
    outcomes: list[AssertionOutcome]
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)
    duration: float = math.nan
    points: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False
    assertion_names: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes) and not self.interrupted

    @property
    def failures(self) -> list[AssertionOutcome]:
        return [o for o in self.outcomes if not o.passed]

    def by_assertion(self) -> dict[str, list[AssertionOutcome]]:
        """Outcomes per assertion name, in file order."""
        out: dict[str, list[AssertionOutcome]] = {n: [] for n in self.assertion_names}
        for o in self.outcomes:
            out.setdefault(o.name, []).append(o)
        return out

    def assertion_passed(self, name: str) -> bool:
        return all(o.passed for o in self.by_assertion().get(name, []))

    def summary_line(self, name: str) -> str:
        """One line on assertion ``name``'s first failing group: measured, bound, margin,
        worst seed (empty when it passed)."""
        outs = self.by_assertion().get(name, [])
        bad = [o for o in outs if not o.passed]
        if not bad:
            return ""
        o = bad[0]
        return (f"{o.metric} = {o.fmt(o.measured)}, bound {o.op} {o.fmt(o.bound)}, margin "
                f"{o.fmt(o.margin, signed=True)}" + (f" [{o.group}]" if o.group else "")
                + (f", worst seed {o.worst_seed}" if o.worst_seed is not None else "")
                + (" (critical)" if o.critical_failed else "")
                + (f"; {len(bad) - 1} more failing group(s)" if len(bad) > 1 else ""))

    def failure_message(self, name: str) -> str:
        """Every failing group of assertion ``name``, readable (empty when it passed): a
        summary line, then per group the measured value, bound, margin and the command that
        reproduces the worst seed."""
        outs = self.by_assertion().get(name, [])
        bad = [o for o in outs if not o.passed]
        if not bad:
            return ""
        head = (f"{self.path or self.scenario}: {name!r} failed in {len(bad)} of {len(outs)} "
                f"group(s); seeds {_seeds_text(self.seeds)}"
                + (f"; overrides {' '.join(self.overrides)}" if self.overrides else ""))
        return "\n".join([self.summary_line(name), head] + [o.message() for o in bad])

    def to_dict(self) -> dict:
        from .runner import clean

        return clean({"scenario": self.scenario, "path": self.path, "seeds": self.seeds,
                      "overrides": self.overrides, "duration": self.duration,
                      "points": self.points, "passed": self.passed,
                      "interrupted": self.interrupted, "wall_seconds": self.wall_seconds,
                      "outcomes": [o.to_dict() for o in self.outcomes]})


def _seeds_text(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _run_configs(prep: Prepared, seeds: Optional[Sequence[int]] = None, monitor_for=None
                 ) -> tuple[list[_Config], bool]:
    from .runner import run_replications

    seeds = list(seeds) if seeds is not None else prep.seeds()
    configs, interrupted = [], False
    for i, (point, params, sc) in enumerate(prep.configurations()):
        mon = monitor_for(i, point, sc, seeds) if monitor_for else None
        outcome = run_replications(sc, seeds, mon)
        configs.append(_Config(point, params, sc, outcome.results))
        if outcome.interrupted:
            interrupted = True
            break
    return configs, interrupted


def run_and_check(path_or_scenario: Source, overrides: Sequence[str] = (),
                  seed: Optional[int] = None, duration: Any = None,
                  monitor_for=None) -> CheckReport:
    """Run every replication (of every sweep point) of a scenario and evaluate its
    assertions.  ``duration`` shortens the run (e.g. ``"30s"`` for CI; never lengthens it;
    the warm-up shrinks in proportion).  Raises :class:`fedsim.scenario.ScenarioError` on bad
    input.  A Ctrl-C stops the runs: the report then has ``interrupted=True`` and evaluates
    what finished."""
    prep = prepare(path_or_scenario, overrides, seed, duration)
    started = time.perf_counter()
    configs, interrupted = _run_configs(prep, monitor_for=monitor_for)
    configs = [c for c in configs if c.results]
    outcomes = _evaluate(prep.scenario.assertions, configs, prep.path, prep.overrides) if configs else []
    return CheckReport(
        scenario=prep.name, path=None if prep.path is None else str(prep.path),
        outcomes=outcomes, seeds=prep.seeds(), overrides=list(prep.overrides),
        duration=prep.scenario.duration, points=[p.name for p in prep.points],
        wall_seconds=time.perf_counter() - started, interrupted=interrupted,
        assertion_names=[a.title for a in prep.scenario.assertions])


# =============================================================================== reports


def format_table(reports: Union[CheckReport, Sequence[CheckReport]], failures: bool = True) -> str:
    """A pass/fail table (scenario, assertion, group, measured, bound, margin, seeds, result)
    followed, with ``failures``, by a readable account of every failure."""
    if isinstance(reports, CheckReport):
        reports = [reports]
    rows = []
    for rep in reports:
        for o in rep.outcomes:
            rows.append([rep.scenario, o.name, o.group or "", o.fmt(o.measured),
                         f"{o.op} {o.fmt(o.bound)}", o.fmt(o.margin, signed=True),
                         _seeds_text(o.seeds), o.status])
    lines = _table(["scenario", "assertion", "group", "measured", "bound", "margin", "seeds",
                    "result"], rows, left=3) if rows else ["(no assertions)"]
    if failures:
        for rep in reports:
            if rep.failures:
                lines += ["", f"{rep.path or rep.scenario}: {len(rep.failures)} failing "
                              f"group(s)"]
                for o in rep.failures:
                    lines += [o.message()]
    return "\n".join(lines)


def junit_xml(reports: Union[CheckReport, Sequence[CheckReport]], path: Union[str, Path, None]
              ) -> str:
    """Write JUnit XML (one testsuite per scenario, one testcase per assertion; a failure
    names the measured value, the bound, the margin and the seed to reproduce) to ``path``
    (None: only return the text)."""
    if isinstance(reports, CheckReport):
        reports = [reports]
    root = ET.Element("testsuites", name="fedsim check")
    total = failed = 0
    total_time = 0.0
    for rep in reports:
        groups = rep.by_assertion()
        n_fail = sum(1 for outs in groups.values() if not all(o.passed for o in outs))
        each = rep.wall_seconds / max(len(groups), 1)
        suite = ET.SubElement(root, "testsuite", name=rep.scenario, tests=str(len(groups)),
                              failures=str(n_fail), errors="0", skipped="0",
                              time=f"{rep.wall_seconds:.3f}",
                              timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
        if rep.path:
            suite.set("file", rep.path)
        props = ET.SubElement(suite, "properties")
        for k, v in (("seeds", _seeds_text(rep.seeds)), ("duration", f"{rep.duration:g}"),
                     ("overrides", " ".join(rep.overrides))):
            ET.SubElement(props, "property", name=k, value=v)
        for name, outs in groups.items():
            case = ET.SubElement(suite, "testcase", classname=f"fedsim.{rep.scenario}",
                                 name=name, time=f"{each:.3f}")
            if rep.path:
                case.set("file", rep.path)
            cprops = ET.SubElement(case, "properties")
            for o in outs:
                label = f"{o.group}: " if o.group else ""
                ET.SubElement(cprops, "property", name=f"{label}measured",
                              value=f"{o.fmt(o.measured)} ({o.op} {o.fmt(o.bound)}, margin "
                                    f"{o.fmt(o.margin, signed=True)})")
            bad = [o for o in outs if not o.passed]
            if bad:
                fail = ET.SubElement(case, "failure", message=rep.summary_line(name),
                                     type="CriticalSLOViolation" if any(o.critical_failed for o in bad)
                                     else "SLOViolation")
                fail.text = rep.failure_message(name)
        total += len(groups)
        failed += n_fail
        total_time += rep.wall_seconds
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    text = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return text


# =============================================================================== baselines


class BaselineError(ValueError):
    """A baseline file that cannot be read or does not fit the scenario."""


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scenario_hashes(scenario: Scenario) -> tuple[str, str]:
    """(scenario hash, world hash).  The scenario hash covers everything but the
    assertions; the world hash also leaves out the router section, the name, the seed and
    the replications: runs of the same world on the same seed draw the same random numbers
    whatever the router does (common random numbers)."""
    data = scenario.model_dump(mode="json")
    data.pop("assertions", None)
    full = _hash(data)
    for k in ("router", "name", "seed", "replications"):
        data.pop(k, None)
    return full, _hash(data)


def _round(v: Any) -> Union[float, str, None]:
    """A value for the baseline file: 6 significant digits, None for no data, "inf" for
    never (JSON has no infinity)."""
    if _nan(v):
        return None
    if math.isinf(float(v)):
        return "inf" if v > 0 else "-inf"
    return float(f"{float(v):.6g}")


def _number(v: Any) -> float:
    """A baseline value back as a float (None: NaN, "inf": infinity)."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v)
    return float(v)


def _metric_entry(info: MetricInfo, values: Sequence[Any], confidence: float) -> dict:
    v = np.array([_number(x) for x in values if x is not None], dtype=float)
    if np.isinf(v).any():
        mean, lo, hi = float(v.mean()), math.nan, math.nan
    else:
        mean, lo, hi = _t_interval(v, confidence)
    return {"better": info.better, "unit": _unit(info.kind), "n": int(len(v)),
            "mean": _round(mean),
            "ci": [_round(lo), _round(hi)] if len(v) > 1 and not _nan(lo) else None,
            "values": list(values)}


def _baseline_metrics(prep: Prepared, metrics: Optional[Sequence[str]]) -> list[str]:
    names = list(metrics) if metrics is not None else list(DEFAULT_BASELINE_METRICS)
    if metrics is None:
        for a in prep.scenario.assertions:
            if a.metric not in names and a.metric != "routing_latency":
                names.append(a.metric)
    for m in names:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r} (metrics: {', '.join(METRICS)})")
    return names


def _config_metrics(c: _Config, names: Sequence[str], confidence: float) -> dict:
    runs = [_RunMetrics(r, c.scenario) for r in c.results]
    out = {}
    for m in names:
        values = [_round(rm.value(m, None).get(None, math.nan)) for rm in runs]
        out[m] = _metric_entry(METRICS[m], values, confidence)
    return out


def _dumps_baseline(doc: dict) -> str:
    """JSON with sorted keys, indent 2, and each metric on one line (small diffs)."""
    slots: dict[str, str] = {}

    def compact(metrics: dict) -> dict:
        out = {}
        for k, v in metrics.items():
            token = f"@@{len(slots)}@@"
            slots[token] = json.dumps(v, sort_keys=True)
            out[k] = token
        return out

    doc = copy.deepcopy(doc)
    for key in ("seeds", "overrides"):
        if isinstance(doc.get(key), list):
            token = f"@@{len(slots)}@@"
            slots[token] = json.dumps(doc[key])
            doc[key] = token
    if "metrics" in doc:
        doc["metrics"] = compact(doc["metrics"])
    for p in (doc.get("points") or {}).values():
        p["metrics"] = compact(p["metrics"])
    text = json.dumps(doc, indent=2, sort_keys=True)
    for token, value in slots.items():
        text = text.replace(f'"{token}"', value)
    return text + "\n"


def save_baseline(path_or_scenario: Source, to_file: Union[str, Path, None],
                  overrides: Sequence[str] = (), seed: Optional[int] = None,
                  duration: Any = None, metrics: Optional[Sequence[str]] = None,
                  confidence: float = 0.95) -> dict:
    """Run the scenario (every replication, every sweep point) and write its summary
    metrics to ``to_file`` (None: only return the document): the scenario's name and
    hashes, the seeds, the overrides used, and per metric its mean, ``confidence`` t-interval
    (``ci``) and per-seed ``values``.  Sorted keys, one metric per line: meant to be
    committed and diffed."""
    prep = prepare(path_or_scenario, overrides, seed, duration)
    names = _baseline_metrics(prep, metrics)
    configs, interrupted = _run_configs(prep)
    if interrupted:
        raise KeyboardInterrupt
    from . import __version__

    doc: dict[str, Any] = {
        "format": BASELINE_FORMAT, "fedsim": __version__, "scenario": prep.name,
        "file": None if prep.path is None else str(prep.path), "overrides": list(prep.overrides),
        "seeds": prep.seeds(), "duration": prep.scenario.duration,
        "warmup": prep.scenario.warmup, "confidence": confidence,
    }
    if prep.points:
        doc["points"] = {}
        for c in configs:
            full, world = scenario_hashes(c.scenario)
            doc["points"][c.point] = {"params": {str(k): v for k, v in c.params.items()},
                                      "scenario_hash": full, "world_hash": world,
                                      "metrics": _config_metrics(c, names, confidence)}
    else:
        full, world = scenario_hashes(prep.scenario)
        doc.update(scenario_hash=full, world_hash=world,
                   metrics=_config_metrics(configs[0], names, confidence))
    if to_file is not None:
        to_file = Path(to_file)
        to_file.parent.mkdir(parents=True, exist_ok=True)
        to_file.write_text(_dumps_baseline(doc), encoding="utf-8")
    return doc


def load_baseline(path: Union[str, Path]) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{path}: baseline file not found (create it with `fedsim "
                            "baseline save SCENARIO --to FILE`)") from None
    except OSError as err:
        raise BaselineError(f"{path}: cannot read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise BaselineError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"{path}: not a fedsim baseline (expected \"format\": "
                            f"\"{BASELINE_FORMAT}\")")
    if "metrics" not in doc and "points" not in doc:
        raise BaselineError(f"{path}: no metrics in the baseline")
    if not isinstance(doc.get("seeds"), list) or not doc["seeds"]:
        raise BaselineError(f"{path}: no seeds in the baseline")
    return doc


@dataclass
class MetricComparison:
    """One metric, baseline vs now.  ``verdict``: ``regression`` (significant and worse by
    more than the tolerance: fails; or "never" in more seeds), ``minor regression``
    (significant, within the tolerance), ``improvement``, ``noise`` (not significant),
    ``unchanged`` (identical values), ``changed`` (significant on a metric with no good
    direction, or data on one side only), ``untested`` (fewer than 2 values to test),
    ``no data``, ``missing`` (the baseline's sweep point is gone)."""

    metric: str
    point: Optional[str]
    test: str
    n: int
    baseline_mean: float
    current_mean: float
    diff: float
    ci_low: float
    ci_high: float
    relative: float
    p_value: float
    verdict: str
    tolerance: float
    better: Optional[str]
    kind: str
    baseline_values: list = field(default_factory=list)
    current_values: list = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.verdict == "regression"


def _welch_df(a: np.ndarray, b: np.ndarray) -> float:
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    den = va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)
    return (va + vb) ** 2 / den if den > 0 else float(len(a) + len(b) - 2)


def _compare_values(old: Sequence, new: Sequence, paired: bool, confidence: float
                    ) -> tuple[str, int, float, float, float, float, float, float]:
    """(test, n, old mean, new mean, diff, ci low, ci high, p value)."""
    o = np.array([_number(x) for x in old], dtype=float)
    w = np.array([_number(x) for x in new], dtype=float)
    nan = math.nan
    if paired:
        keep = ~(np.isnan(o) | np.isnan(w))
        o, w = o[keep], w[keep]
        d = w - o
        n = len(d)
        if not n:
            return "paired", 0, nan, nan, nan, nan, nan, nan
        mean, lo, hi = _t_interval(d, confidence)
        if np.all(d == 0):
            p = 1.0
        elif n < 2:
            p = nan
        elif np.all(d == d[0]):
            p = 0.0
        else:
            p = float(stats.ttest_rel(w, o).pvalue)
        return "paired", n, float(o.mean()), float(w.mean()), mean, lo, hi, p
    o, w = o[~np.isnan(o)], w[~np.isnan(w)]
    n = min(len(o), len(w))
    om = float(o.mean()) if len(o) else nan
    wm = float(w.mean()) if len(w) else nan
    if not len(o) or not len(w):
        return "welch", n, om, wm, nan, nan, nan, nan
    diff = wm - om
    if len(o) < 2 or len(w) < 2:
        return "welch", n, om, wm, diff, nan, nan, (1.0 if diff == 0 and np.all(o == o[0])
                                                     and np.all(w == w[0]) else nan)
    if o.var() == 0 and w.var() == 0:
        p = 1.0 if diff == 0 else 0.0
        return "welch", n, om, wm, diff, diff, diff, p
    p = float(stats.ttest_ind(w, o, equal_var=False).pvalue)
    se = math.sqrt(o.var(ddof=1) / len(o) + w.var(ddof=1) / len(w))
    half = float(stats.t.ppf(0.5 + confidence / 2, _welch_df(o, w))) * se
    return "welch", n, om, wm, diff, diff - half, diff + half, p


def _tolerance_for(tolerance: Union[float, Mapping[str, float]], metric: str) -> float:
    if isinstance(tolerance, Mapping):
        return float(tolerance.get(metric, tolerance.get("*", 0.05)))
    return float(tolerance)


def _compare_metric(metric: str, point: Optional[str], old: dict, new: dict, paired: bool,
                    tolerance: float, confidence: float) -> MetricComparison:
    info = METRICS[metric]
    old_vals, new_vals = old.get("values", []), new.get("values", [])
    o_never = sum(1 for x in old_vals if x is not None and math.isinf(_number(x)))
    n_never = sum(1 for x in new_vals if x is not None and math.isinf(_number(x)))
    if o_never or n_never:  # "never" in some seed: compare how often, then the rest
        if paired and list(old_vals) == list(new_vals):
            verdict = "unchanged"
        elif n_never != o_never:
            worse = n_never > o_never
            if info.better == "higher":
                worse = not worse
            verdict = "regression" if worse else "improvement"
        else:  # as often: compare the finite values (pairs with a "never" dropped)
            def finite(x):
                return x is None or not math.isinf(_number(x))
            if paired and len(old_vals) == len(new_vals):
                pairs = [(a, b) for a, b in zip(old_vals, new_vals) if finite(a) and finite(b)]
                keep_o, keep_n = [a for a, _ in pairs], [b for _, b in pairs]
            else:
                keep_o = [x for x in old_vals if finite(x)]
                keep_n = [x for x in new_vals if finite(x)]
            if keep_o or keep_n:
                verdict = _compare_metric(metric, point, {"values": keep_o}, {"values": keep_n},
                                          paired and len(old_vals) == len(new_vals), tolerance,
                                          confidence).verdict
            else:
                verdict = "unchanged"
        om = float(np.mean([_number(x) for x in old_vals if x is not None])) if old_vals else math.nan
        nm = float(np.mean([_number(x) for x in new_vals if x is not None])) if new_vals else math.nan
        return MetricComparison(metric, point, f"never: {o_never} -> {n_never} seeds",
                                max(len(old_vals), len(new_vals)), om, nm, math.nan, math.nan,
                                math.nan, math.nan, math.nan, verdict, tolerance, info.better,
                                info.kind, list(old_vals), list(new_vals))
    test, n, om, nm, diff, lo, hi, p = _compare_values(old_vals, new_vals, paired, confidence)
    if _nan(om) or _nan(nm):
        relative = math.nan
    elif om == 0:
        relative = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        relative = diff / abs(om)
    identical = (list(old_vals) == list(new_vals)) if paired else False
    if _nan(om) and _nan(nm):
        verdict = "no data"
    elif _nan(om) or _nan(nm):  # data on one side only (e.g. retries that did not happen)
        verdict = "changed"
    elif identical or (not _nan(diff) and diff == 0 and p == 1.0):
        verdict = "unchanged"
    elif _nan(p):
        verdict = "untested"
    elif p >= 1.0 - confidence:
        verdict = "noise"
    elif info.better is None:
        verdict = "changed"
    else:
        worse = diff > 0 if info.better == "lower" else diff < 0
        if not worse:
            verdict = "improvement"
        else:
            verdict = "regression" if abs(relative) > tolerance else "minor regression"
    return MetricComparison(metric, point, test, n, om, nm, diff, lo, hi, relative, p, verdict,
                            tolerance, info.better, info.kind, list(old_vals), list(new_vals))


@dataclass
class BaselineReport:
    """A rerun against a baseline file: per metric, regression / improvement / noise."""

    scenario: str
    baseline_file: str
    rows: list[MetricComparison]
    seeds: list[int]
    paired: dict
    notes: list[str]
    tolerance: Union[float, Mapping[str, float]]
    confidence: float
    path: Optional[str] = None

    @property
    def regressions(self) -> list[MetricComparison]:
        """Significant regressions beyond the tolerance (the ones that fail)."""
        return [r for r in self.rows if r.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def format(self) -> str:
        lines = [f"{self.path or self.scenario} against {self.baseline_file}: seeds "
                 f"{_seeds_text(self.seeds)}, confidence {self.confidence:.0%}, tolerance "
                 + (f"{self.tolerance:.0%}" if not isinstance(self.tolerance, Mapping)
                    else ", ".join(f"{k} {v:.0%}" for k, v in self.tolerance.items()))]
        lines += [f"  {n}" for n in self.notes]
        points = list(dict.fromkeys(r.point for r in self.rows))
        headers = (["point"] if points != [None] else []) + [
            "metric", "baseline", "now", "change", "relative", "p", "test", "verdict"]
        rows = []
        for r in self.rows:
            cells = [r.metric, format_value(r.kind, r.baseline_mean),
                     format_value(r.kind, r.current_mean), format_value(r.kind, r.diff, signed=True),
                     "-" if _nan(r.relative) else (f"{r.relative:+.1%}" if not math.isinf(r.relative)
                                                   else ("+inf" if r.relative > 0 else "-inf")),
                     "-" if _nan(r.p_value) else (f"{r.p_value:.3f}" if r.p_value >= 0.001
                                                  else f"{r.p_value:.1e}"),
                     r.test, r.verdict.upper() if r.failed else r.verdict]
            rows.append(([str(r.point)] if points != [None] else []) + cells)
        lines += _table(headers, rows, left=1 + (points != [None]))
        bad = self.regressions
        lines.append("")
        if bad:
            lines.append(f"{len(bad)} significant regression(s) beyond the tolerance: "
                         + ", ".join(r.metric + (f" [{r.point}]" if r.point else "") for r in bad))
        else:
            lines.append("no significant regression beyond the tolerance")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        from .runner import clean

        return clean({"scenario": self.scenario, "baseline": self.baseline_file,
                      "seeds": self.seeds, "paired": self.paired, "notes": self.notes,
                      "confidence": self.confidence, "exit_code": self.exit_code,
                      "rows": [asdict(r) for r in self.rows]})


def compare_baseline(path_or_scenario: Source, against_file: Union[str, Path],
                     tolerance: Union[float, Mapping[str, float]] = 0.05,
                     confidence: float = 0.95, overrides: Sequence[str] = (),
                     seed: Optional[int] = None, duration: Any = None) -> BaselineReport:
    """Rerun the scenario on the baseline's seeds (with the baseline's overrides first, then
    ``overrides``) and compare every metric of the baseline.

    Per metric: a paired t-test on the per-seed values when the seeds match and the world
    is unchanged (common random numbers), else Welch's t-test; *significant* means p <
    1 - ``confidence``.  A significant change in the metric's bad direction by more than
    ``tolerance`` (relative to the baseline mean; a float, or {metric: tolerance, "*":
    default}) is a regression and makes ``exit_code`` 1."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    base = load_baseline(against_file)
    prep = prepare(path_or_scenario, [*base.get("overrides", []), *overrides], seed, duration)
    seeds = prep.seeds() if seed is not None else [int(s) for s in base["seeds"]]
    configs, interrupted = _run_configs(prep, seeds=seeds)
    if interrupted:
        raise KeyboardInterrupt
    by_point = {c.point: c for c in configs}
    old_points = ({None: base} if "metrics" in base
                  else {k: v for k, v in (base.get("points") or {}).items()})
    notes, paired_info, rows = [], {}, []
    same_seeds = [int(s) for s in base["seeds"]] == seeds
    for point, old in old_points.items():
        c = by_point.get(point)
        if c is None:
            for m, entry in old.get("metrics", {}).items():
                info = METRICS.get(m)
                rows.append(MetricComparison(m, point, "-", 0, entry.get("mean") or math.nan,
                                             math.nan, math.nan, math.nan, math.nan, math.nan,
                                             math.nan, "missing", _tolerance_for(tolerance, m),
                                             info.better if info else None,
                                             info.kind if info else "number"))
            notes.append(f"point {point!r} of the baseline is not in the scenario any more")
            continue
        full, world = scenario_hashes(c.scenario)
        paired = same_seeds and old.get("world_hash") == world
        where = f"point {point}: " if point is not None else ""
        if paired:
            what = ("scenario unchanged" if old.get("scenario_hash") == full
                    else "router settings changed, same world")
            notes.append(f"{where}paired t-test on common random numbers ({what}, same seeds)")
        elif not same_seeds:
            notes.append(f"{where}Welch's t-test: seeds differ from the baseline's "
                         f"({_seeds_text(base['seeds'])})")
        else:
            notes.append(f"{where}Welch's t-test: the world changed since the baseline "
                         f"(world hash {old.get('world_hash')} -> {world}), so seeds do not pair")
        paired_info[str(point) if point is not None else ""] = paired
        order = list(METRICS)
        names = sorted((m for m in old.get("metrics", {}) if m in METRICS), key=order.index)
        unknown = [m for m in old.get("metrics", {}) if m not in METRICS]
        if unknown:
            notes.append(f"{where}metrics not known to this fedsim, skipped: {', '.join(unknown)}")
        current = _config_metrics(c, names, confidence)
        for m in names:
            rows.append(_compare_metric(m, point, old["metrics"][m], current[m], paired,
                                        _tolerance_for(tolerance, m), confidence))
    return BaselineReport(prep.name, str(_relative(Path(against_file))), rows, seeds, paired_info, notes,
                          tolerance, confidence, None if prep.path is None else str(prep.path))


# =============================================================================== helpers


class RunSet(list):
    """The Results of one scenario, one per seed (a list), with the scenario and how it was
    run: ``scenario``, ``path``, ``seeds``, ``overrides``."""

    def __init__(self, results: Iterable[Result], scenario: Scenario,
                 path: Optional[Path] = None, overrides: Sequence[str] = ()) -> None:
        super().__init__(results)
        self.scenario = scenario
        self.path = path
        self.overrides = list(overrides)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self]

    def summary(self) -> dict:
        from .runner import aggregate

        return aggregate(self.scenario, self)

    def metric(self, metric: str, by: Optional[str] = None) -> pd.DataFrame:
        """Per-seed values of ``metric`` (see :func:`metric_values`)."""
        return metric_values(self, metric, by)


def run_scenario(scenario: Source, *, seed: Optional[int] = None,
                 replications: Optional[int] = None, duration: Any = None,
                 overrides: Sequence[str] = (), **kw: Any) -> RunSet:
    """Run a scenario (file, dict, Scenario) on all its seeds and return the Results.

    Keyword overrides use ``__`` for dots: ``run_scenario("s.yaml",
    router__strategy="power_of_two_choices", duration="30s")``; ``overrides`` takes
    ``--set``-style strings for paths that are not identifiers (``"nodes[0].gpus=8"``).  A
    sweep in the file is ignored (the base scenario runs; see :func:`run_and_check`)."""
    sets = list(overrides) + _kw_overrides(kw)
    if replications is not None:
        sets.append(f"replications={int(replications)}")
    prep = prepare(scenario, sets, seed, duration)
    configs, interrupted = _run_configs(Prepared(prep.scenario, prep.path, [], prep.overrides))
    if interrupted:
        raise KeyboardInterrupt
    return RunSet(configs[0].results, prep.scenario, prep.path, prep.overrides)


class SLOViolation(AssertionError):
    """An SLO assertion failed; ``outcomes`` holds every evaluated group."""

    def __init__(self, message: str, outcomes: list[AssertionOutcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def assert_slo(result_or_results: Union[Result, Sequence[Result]],
               check: Union[str, dict, Sequence[Union[str, dict]]], by: Optional[str] = None,
               critical: Optional[str] = None, name: Optional[str] = None
               ) -> list[AssertionOutcome]:
    """Assert ``check`` (``"p99_latency <= 800ms"``, a mapping, or a list of them) over one
    Result or several (one per seed; a :class:`RunSet`).  Raises :class:`SLOViolation` (an
    AssertionError) with the measured value, bound, margin and worst seed; returns the
    outcomes otherwise."""
    __tracebackhide__ = True  # pytest: show the failure, not these frames
    results = _as_results(result_or_results)
    if isinstance(check, str) and (by or critical or name):
        check = {"check": check, **({"by": by} if by else {}),
                 **({"critical": critical} if critical else {}), **({"name": name} if name else {})}
    specs = _specs(check)
    path = getattr(result_or_results, "path", None)
    overrides = getattr(result_or_results, "overrides", ())
    scenario = getattr(result_or_results, "scenario", None) or results[0].scenario
    outcomes = _evaluate(specs, [_Config(None, {}, scenario, results)], path, overrides)
    bad = [o for o in outcomes if not o.passed]
    if bad:
        raise SLOViolation("\n".join(o.message() for o in bad), outcomes)
    return outcomes


def assert_no_regression(path: Source, baseline_file: Union[str, Path],
                         tolerance: Union[float, Mapping[str, float]] = 0.05,
                         confidence: float = 0.95, overrides: Sequence[str] = (),
                         duration: Any = None) -> BaselineReport:
    """Rerun ``path`` against ``baseline_file`` (see :func:`compare_baseline`); raise an
    AssertionError with the comparison table on a significant regression beyond the
    tolerance."""
    __tracebackhide__ = True  # pytest: show the failure, not these frames
    report = compare_baseline(path, baseline_file, tolerance=tolerance, confidence=confidence,
                              overrides=overrides, duration=duration)
    if report.exit_code:
        raise AssertionError(report.format())
    return report


@dataclass
class BeatsResult:
    """A vs B on one metric, seed by seed (common random numbers)."""

    metric: str
    a: str
    b: str
    seeds: list[int]
    a_values: list[float]
    b_values: list[float]
    mean_diff: float  # a - b
    ci_low: float
    ci_high: float
    p_value: float    # one-sided: A better than B
    confidence: float
    better: str
    kind: str

    @property
    def a_beats_b(self) -> bool:
        return not _nan(self.p_value) and self.p_value < 1.0 - self.confidence

    def format(self) -> str:
        f = lambda v: format_value(self.kind, v)  # noqa: E731
        return (f"{self.metric} ({self.better} is better) over seeds {_seeds_text(self.seeds)}:\n"
                f"  A {self.a}: mean {f(float(np.nanmean(self.a_values)))}\n"
                f"  B {self.b}: mean {f(float(np.nanmean(self.b_values)))}\n"
                f"  A - B: {format_value(self.kind, self.mean_diff, signed=True)} "
                f"({self.confidence:.0%} CI {format_value(self.kind, self.ci_low, signed=True)} .. "
                f"{format_value(self.kind, self.ci_high, signed=True)}), one-sided paired "
                f"p = {self.p_value:.3g}")


def _variant_overrides(variant: Mapping[str, Any]) -> list[str]:
    """Router overrides (``{"strategy": "random"}``) or full key paths."""
    out = []
    for k, v in variant.items():
        k = str(k).replace("__", ".")
        first = parse_path(k)[0]
        key = k if first in Scenario.model_fields else f"router.{k}"
        out.append(_override_text(key, v))
    return out


def _label(variant: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in variant.items()) or "(scenario as is)"


def assert_beats(scenario: Source, metric: str, a: Mapping[str, Any], b: Mapping[str, Any],
                 confidence: float = 0.95, seeds: Union[int, Sequence[int], None] = None,
                 duration: Any = None, overrides: Sequence[str] = ()) -> BeatsResult:
    """Assert that router setting ``a`` beats ``b`` on ``metric`` (in the metric's good
    direction), by a one-sided paired t-test over the same seeds (common random numbers) at
    ``confidence``.  ``a``/``b`` are router overrides (``{"strategy":
    "power_of_two_choices", "fixes": ["all"]}``) or full key paths.  ``seeds``: a count or a
    list (default: the scenario's replications; at least 2 needed).  Returns the
    :class:`BeatsResult`; raises AssertionError when A does not significantly beat B."""
    __tracebackhide__ = True  # pytest: show the failure, not these frames
    if metric not in METRICS:
        parse_check(f"{metric} <= 0")  # raises with the closest metric
    info = METRICS[metric]
    if info.better is None:
        raise ValueError(f"{metric} has no better direction; cannot say which one beats the other")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    base = prepare(scenario, overrides, None, duration)
    if seeds is None:
        seed_list = base.seeds()
    elif isinstance(seeds, int):
        seed_list = [base.scenario.seed + i for i in range(seeds)]
    else:
        seed_list = [int(s) for s in seeds]
    if len(seed_list) < 2:
        raise ValueError("a paired test needs at least 2 seeds (seeds=5 or replications: 5)")
    values = {}
    for label, variant in (("a", a), ("b", b)):
        prep = prepare(scenario, [*base.overrides, *_variant_overrides(variant)])
        configs, interrupted = _run_configs(Prepared(prep.scenario, prep.path, [], prep.overrides),
                                            seeds=seed_list)
        if interrupted:
            raise KeyboardInterrupt
        values[label] = [_RunMetrics(r, prep.scenario).value(metric, None).get(None, math.nan)
                         for r in configs[0].results]
    av, bv = np.array(values["a"], dtype=float), np.array(values["b"], dtype=float)
    keep = ~(np.isnan(av) | np.isnan(bv))
    d = av[keep] - bv[keep]
    mean, lo, hi = _t_interval(d, confidence)
    alternative = "less" if info.better == "lower" else "greater"
    if len(d) < 2:
        p = math.nan
    elif np.all(d == d[0]):
        good = d[0] < 0 if info.better == "lower" else d[0] > 0
        p = 0.0 if good else 1.0
    else:
        p = float(stats.ttest_rel(av[keep], bv[keep], alternative=alternative).pvalue)
    res = BeatsResult(metric, _label(a), _label(b), seed_list, list(av), list(bv), mean, lo, hi,
                      p, confidence, info.better, info.kind)
    if not res.a_beats_b:
        raise AssertionError(f"A does not beat B at {confidence:.0%} confidence\n{res.format()}")
    return res


# =============================================================================== CLI entry points


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _monitor_for(quiet: bool):
    """A progress line on stderr per configuration when it is a terminal."""
    if quiet:
        return None
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from .runner import LineMonitor

    def make(i, point, sc, seeds):
        return LineMonitor(sc.duration, seeds, prefix=f"[{sc.name}{' ' + point if point else ''}] ")
    return make


def check_main(paths: Sequence[Union[str, Path]], junit: Union[str, Path, None] = None,
               overrides: Sequence[str] = (), quiet: bool = False, seed: Optional[int] = None,
               duration: Any = None, json_out: bool = False) -> int:
    """``fedsim check SCENARIO... [--junit FILE] [--set k=v ...]``: run each scenario,
    evaluate its assertions, print a pass/fail table with measured values and margins (and
    each failure in detail), write JUnit XML if asked.  Exit status: 0 all passed, 1 an
    assertion failed (or a simulation failed), 2 bad input (scenario errors are printed with
    file:line:column; also when no file has an assertion), 130 interrupted."""
    reports: list[CheckReport] = []
    bad_input = False
    for p in paths:
        try:
            prep = prepare(p, overrides, seed, duration)
        except ScenarioError as err:
            _err(str(err))
            bad_input = True
            continue
        except (ValueError, TypeError) as err:
            _err(f"{p}: error: {err}")
            bad_input = True
            continue
        if not prep.scenario.assertions:
            _err(f"{p}: note: no assertions: section, nothing to check")
            continue
        try:
            rep = run_and_check(p, overrides, seed, duration, monitor_for=_monitor_for(quiet))
        except KeyboardInterrupt:
            _err("interrupted")
            return 130
        except Exception as err:  # a failure inside the simulation, not bad input
            _err(f"{p}: the simulation failed: {type(err).__name__}: {err}")
            return 1
        reports.append(rep)
        if rep.interrupted:
            break
    if bad_input:
        return 2
    if not reports:
        _err("fedsim check: no assertions found in " + ", ".join(map(str, paths))
             + "; add an assertions: section (e.g. assertions: [\"p99_latency <= 800ms\"])")
        return 2
    if json_out:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    elif not quiet:
        for rep in reports:
            extra = f", {len(rep.points)} sweep points" if rep.points else ""
            print(f"{rep.path or rep.scenario}: {rep.scenario}, {rep.duration:g} s simulated, "
                  f"seeds {_seeds_text(rep.seeds)}{extra}"
                  + (f", overrides {' '.join(rep.overrides)}" if rep.overrides else ""))
        print(format_table(reports))
    else:
        for rep in reports:
            for o in rep.failures:
                print(f"{rep.path or rep.scenario}: {o.message()}")
    if junit:
        try:
            junit_xml(reports, junit)
        except OSError as err:
            _err(f"--junit {junit}: cannot write ({err.strerror})")
            return 2
    n = sum(len(r.by_assertion()) for r in reports)
    failed = sum(1 for r in reports for name in r.by_assertion() if not r.assertion_passed(name))
    if not json_out:
        summary = (f"{failed} of {n} assertion(s) failed" if failed
                   else f"all {n} assertion(s) passed")
        print(("" if quiet else "\n") + summary + (f"; JUnit XML: {junit}" if junit else ""))
    if any(r.interrupted for r in reports):
        _err("interrupted: the table covers the runs that finished")
        return 130
    return 1 if failed else 0


def baseline_save_main(path: Union[str, Path], to: Union[str, Path],
                       overrides: Sequence[str] = (), seed: Optional[int] = None,
                       duration: Any = None, quiet: bool = False) -> int:
    """``fedsim baseline save SCENARIO --to FILE [--set k=v ...]``: run and write the
    baseline.  Exit status 0, 1 if the simulation failed, 2 bad input, 130 interrupted."""
    try:
        doc = save_baseline(path, to, overrides=overrides, seed=seed, duration=duration)
    except ScenarioError as err:
        _err(str(err))
        return 2
    except (ValueError, TypeError) as err:
        _err(f"{path}: error: {err}")
        return 2
    except OSError as err:
        _err(f"--to {to}: cannot write ({err.strerror})")
        return 2
    except KeyboardInterrupt:
        _err("interrupted: no baseline written")
        return 130
    except Exception as err:
        _err(f"{path}: the simulation failed: {type(err).__name__}: {err}")
        return 1
    if not quiet:
        n_metrics = len(doc.get("metrics") or next(iter(doc.get("points", {}).values()), {}).get("metrics", {}))
        points = f", {len(doc['points'])} sweep points" if "points" in doc else ""
        print(f"wrote {to}: {doc['scenario']}, seeds {_seeds_text(doc['seeds'])}, "
              f"{n_metrics} metrics{points}")
        if "metrics" in doc:
            rows = [[m, format_value(METRICS[m].kind, e["mean"]),
                     "-" if not e["ci"] else f"{format_value(METRICS[m].kind, e['ci'][0])} .. "
                                             f"{format_value(METRICS[m].kind, e['ci'][1])}"]
                    for m, e in doc["metrics"].items()]
            print("\n".join(_table(["metric", "mean", f"{doc['confidence']:.0%} CI"], rows)))
    return 0


def baseline_compare_main(path: Union[str, Path], against: Union[str, Path],
                          tolerance: float = 0.05, overrides: Sequence[str] = (),
                          confidence: float = 0.95, seed: Optional[int] = None,
                          duration: Any = None, json_out: bool = False) -> int:
    """``fedsim baseline compare SCENARIO --against FILE [--tolerance X] [--set k=v ...]``:
    rerun and print, per metric, regression / improvement / noise.  Exit status: 0, 1 on a
    significant regression beyond the tolerance (or a failed simulation), 2 bad input
    (scenario or baseline file), 130 interrupted."""
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        _err(f"--tolerance must be a number >= 0 (a relative change, 0.05 = 5%), got {tolerance}")
        return 2
    try:
        report = compare_baseline(path, against, tolerance=tolerance, confidence=confidence,
                                  overrides=overrides, seed=seed, duration=duration)
    except ScenarioError as err:
        _err(str(err))
        return 2
    except BaselineError as err:
        _err(str(err))
        return 2
    except (ValueError, TypeError) as err:
        _err(f"{path}: error: {err}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as err:
        _err(f"{path}: the simulation failed: {type(err).__name__}: {err}")
        return 1
    if json_out:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return report.exit_code
