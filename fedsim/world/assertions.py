"""SLO assertions in scenario files: the metric catalogue and the ``assertions:`` syntax.

An assertion is a string ``METRIC[.STAT] OP VALUE`` or a mapping::

    assertions:
      - p99_latency <= 800ms
      - success_rate >= 0.99
      - p99_latency.upper95 <= 800ms          # the 95% upper confidence bound across seeds
      - privacy_violations == 0
      - {name: eu latency, check: "p99_latency <= 300ms", by: region}
      - {check: "success_rate >= 0.99", critical: "success_rate >= 0.95"}
      - playbook                               # the reference playbook's four (spec §9.3)

This module only parses and validates (so errors are reported at load time, with the file,
line and column of the offending item); :mod:`fedsim.testing` evaluates assertions over the
results of a run.  Values take units (:mod:`.units`): durations ``800ms``, ``60s`` (a plain
number is seconds), fractions ``0.99`` or ``99%``, rates ``5/s``.

``STAT`` addresses the spread across replications (one value per seed): ``mean``,
``lower95`` / ``upper95`` (any level: ``lower90``, ``upper99``; Student-t interval), ``min``,
``max`` (the best / worst seed).  Without it the single seed's value is used, or with several
seeds their mean.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

from .units import parse_duration, parse_fraction, parse_rate

__all__ = ["METRICS", "GROUPS", "OPERATORS", "PRESETS", "MetricInfo", "Check", "parse_check",
           "parse_critical", "parse_stat", "metric_names"]

#: Groupings an assertion can be stated per (``by:``).
GROUPS: tuple[str, ...] = ("capability", "region", "strategy", "gateway", "tenant")
#: Comparison operators, in the order they are tried.
OPERATORS: tuple[str, ...] = ("<=", ">=", "==", "<", ">")

_REQUEST_GROUPS = frozenset(GROUPS)
_NODE_GROUPS = frozenset({"region", "strategy", "gateway"})
_GPU_GROUPS = frozenset({"region", "strategy"})
_FAULT_GROUPS = frozenset({"region", "strategy", "gateway"})


@dataclass(frozen=True)
class MetricInfo:
    """What an assertion can measure.

    ``kind`` says how bounds are written (``duration``: seconds or ``800ms``; ``fraction``:
    ``0.99`` or ``99%``; ``rate``: per second or ``5/s``; ``count`` and ``number``: plain).
    ``better`` is the good direction (``lower`` / ``higher``; None: neither, e.g.
    utilisation), used by baselines to tell a regression from an improvement.
    ``empty``: what an assertion concludes when a run has no data for the metric (no circuit
    ever opened, no request needed a retry): ``pass`` (nothing to judge) or ``fail``.
    ``region`` says which region ``by: region`` means: the requests' origin region or the
    nodes' region.
    """

    name: str
    kind: Literal["duration", "fraction", "rate", "count", "number"]
    better: Optional[Literal["lower", "higher"]]
    groups: frozenset
    empty: Literal["pass", "fail"]
    description: str
    region: Literal["origin", "node"] = "origin"


def _m(name, kind, better, groups, empty, description, region="origin") -> MetricInfo:
    return MetricInfo(name, kind, better, groups, empty, description, region)


_LAT = "latency of successful requests (end to end, arrival to answer) after the warm-up"
METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    _m("p50_latency", "duration", "lower", _REQUEST_GROUPS, "fail", f"median {_LAT}"),
    _m("p90_latency", "duration", "lower", _REQUEST_GROUPS, "fail", f"90th percentile {_LAT}"),
    _m("p95_latency", "duration", "lower", _REQUEST_GROUPS, "fail", f"95th percentile {_LAT}"),
    _m("p99_latency", "duration", "lower", _REQUEST_GROUPS, "fail", f"99th percentile {_LAT}"),
    _m("p999_latency", "duration", "lower", _REQUEST_GROUPS, "fail", f"99.9th percentile {_LAT}"),
    _m("mean_latency", "duration", "lower", _REQUEST_GROUPS, "fail", f"mean {_LAT}"),
    _m("success_rate", "fraction", "higher", _REQUEST_GROUPS, "fail",
       "succeeded / finished requests (in-flight ones at the end have no outcome yet and are "
       "left out, as in `fedsim run`)"),
    _m("success_rate_total", "fraction", "higher", _REQUEST_GROUPS, "fail",
       "succeeded / all requests, in-flight at the end counted as not ok: the gateway "
       "counters' successful_requests / total_requests (spec §9.3 reading)"),
    _m("goodput", "rate", "higher", _REQUEST_GROUPS, "fail",
       "successful requests per simulated second after the warm-up"),
    _m("retries_per_request", "number", "lower", _REQUEST_GROUPS, "fail",
       "mean attempts after the first, per request"),
    _m("retry_effectiveness", "fraction", "higher", _REQUEST_GROUPS, "pass",
       "share of finished requests that needed >= 1 retry and finally succeeded (spec §9.3 "
       "retry_success_rate); no data when no request was retried"),
    _m("circuit_recovery_time", "duration", "lower", _FAULT_GROUPS, "pass",
       "mean time from a circuit turning Open to its next Closed (spec §9.3 "
       "mean_recovery_time); a circuit still open at the end of the run never recovered "
       "(infinite); no data when no circuit opened", "node"),
    _m("time_to_detect", "duration", "lower", _FAULT_GROUPS, "pass",
       "mean time from a fault's start until a gateway that sends to the node (or probes "
       "it) stops routing to it (Unhealthy or circuit Open); a fault that ended undetected "
       "counts its whole length, one still undetected at the end of the run never "
       "(infinite); no data without faults", "node"),
    _m("time_to_recover", "duration", "lower", _FAULT_GROUPS, "pass",
       "mean time from a fault's end until a gateway whose router dropped the node during "
       "the fault (Unhealthy or circuit Open) may route to it again; never within the run "
       "(Q-NORECOVER) is infinite; no data when no gateway dropped a node", "node"),
    _m("privacy_violations", "count", "lower", _REQUEST_GROUPS, "fail",
       "requests served by a region below their privacy level (must be 0)"),
    _m("load_imbalance_cv", "number", "lower", _NODE_GROUPS, "fail",
       "coefficient of variation of successful requests per node, idle nodes included "
       "(0: perfectly even)", "node"),
    _m("load_imbalance_max_over_mean", "number", "lower", _NODE_GROUPS, "fail",
       "busiest node's successful requests over the mean per node (1: perfectly even)", "node"),
    _m("gpu_utilization", "fraction", None, _GPU_GROUPS, "fail",
       "mean time-weighted GPU utilisation over nodes", "node"),
    _m("traffic_to_down_nodes", "fraction", "lower", _REQUEST_GROUPS, "pass",
       "share of attempts sent to a node that was down (crash, hang, region outage, "
       "flapping) when the attempt started; no data when no attempt was sent", "node"),
    _m("routing_latency", "duration", "lower", _REQUEST_GROUPS, "fail",
       "time the router takes to decide (spec §9.3 routing_latency_ms): the reference does "
       "no I/O while routing, so in simulated time it is always 0"),
]}

#: Ready-made sets, written as a single string item (``assertions: [playbook]``).
#: ``playbook``: the performance assertions of the reference playbook (spec §9.3) under the
#: playbook's names, with the spec's proposed readings of its undefined functions.
PRESETS: dict[str, list[dict[str, str]]] = {
    "playbook": [
        {"name": "routing_latency", "check": "routing_latency <= 10ms",
         "critical": "routing_latency <= 50ms"},
        {"name": "success_rate", "check": "success_rate_total >= 0.99",
         "critical": "success_rate_total >= 0.95"},
        {"name": "circuit_recovery", "check": "circuit_recovery_time <= 60s"},
        {"name": "retry_effectiveness", "check": "retry_effectiveness >= 0.8"},
    ],
}


def metric_names() -> list[str]:
    return list(METRICS)


# ----------------------------------------------------------------------------- parsing

_HEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_.]*))?\s*")
_OP = re.compile(r"[<>=!≤≥≠:~]+")
_STAT = re.compile(r"^(lower|upper)(\d{1,2}(?:\.\d+)?)$")
_EXAMPLE = "e.g. 'p99_latency <= 800ms' or 'success_rate >= 0.99'"


@dataclass(frozen=True)
class Check:
    """A parsed condition ``metric[.stat] op bound``; ``text`` is what the file says."""

    metric: str
    stat: Optional[str]
    op: str
    bound: float
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def info(self) -> MetricInfo:
        return METRICS[self.metric]

    @property
    def subject(self) -> str:
        """``metric`` or ``metric.stat``."""
        return self.metric + (f".{self.stat}" if self.stat else "")

    @property
    def confidence(self) -> Optional[float]:
        """The interval level of a ``lowerNN``/``upperNN`` stat (0.95 for upper95)."""
        m = _STAT.match(self.stat or "")
        return float(m.group(2)) / 100.0 if m else None

    def holds(self, measured: float) -> bool:
        if measured is None or math.isnan(measured):
            return False
        b = self.bound
        if self.op == "<=":
            return measured <= b or math.isclose(measured, b, rel_tol=1e-9, abs_tol=1e-12)
        if self.op == ">=":
            return measured >= b or math.isclose(measured, b, rel_tol=1e-9, abs_tol=1e-12)
        if self.op == "<":
            return measured < b
        if self.op == ">":
            return measured > b
        return math.isclose(measured, b, rel_tol=1e-9, abs_tol=1e-12)

    def margin(self, measured: float) -> float:
        """Headroom in the metric's unit: positive when the check holds with room to spare,
        negative by how much it is violated (``==``: minus the distance)."""
        if measured is None or math.isnan(measured):
            return math.nan
        if self.op in ("<=", "<"):
            return self.bound - measured
        if self.op in (">=", ">"):
            return measured - self.bound
        return -abs(measured - self.bound) + 0.0  # no "-0"


def _closest_metric(name: str) -> str:
    close = difflib.get_close_matches(name, list(METRICS), n=1, cutoff=0.0)
    if not close:  # cutoff 0 always finds one, but be safe
        return ""
    return f"; did you mean {close[0]!r}?"


def _unknown_metric(name: str) -> ValueError:
    preset = f" (or a preset: {', '.join(PRESETS)})" if name in ("play", "playbooks") else ""
    return ValueError(f"unknown metric {name!r}{_closest_metric(name)}{preset} "
                      f"(metrics: {', '.join(METRICS)})")


def parse_stat(stat: Optional[str]) -> Optional[str]:
    if stat is None:
        return None
    if stat in ("mean", "min", "max"):
        return stat
    m = _STAT.match(stat)
    if m and 0 < float(m.group(2)) < 100:
        return stat
    close = difflib.get_close_matches(stat, ["mean", "lower95", "upper95", "min", "max"], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown statistic {stat!r}{hint} (after the metric: .mean, .lower95, "
                     ".upper95 - any level, e.g. .upper99 - .min or .max, across seeds)")


def parse_bound(info: MetricInfo, raw: str) -> float:
    """A bound for ``info``'s metric, with its units."""
    text = raw.strip()
    if not text:
        raise ValueError("missing value after the operator")
    value: Any = text
    try:
        value = float(text)
    except ValueError:
        pass
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("the value is NaN; expected a number")
    try:
        if info.kind == "duration":
            return parse_duration(value)
        if info.kind == "fraction":
            return parse_fraction(value)
        if info.kind == "rate":
            return parse_rate(value)
    except ValueError as err:
        raise ValueError(f"{info.name}: {err}") from None
    if not isinstance(value, float):
        raise ValueError(f"{info.name} is a {'count' if info.kind == 'count' else 'plain number'}; "
                         f"expected a number, found {text!r}")
    return value


def parse_check(text: Any, metric: Optional[str] = None) -> Check:
    """Parse ``METRIC[.STAT] OP VALUE``.  With ``metric`` given, ``OP VALUE`` alone is
    accepted too (the metric is then ``metric``).  Raises ValueError with a message that
    says what is wrong and, for an unknown metric, the closest known one."""
    if isinstance(text, Check):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a check like {_EXAMPLE}; found {text!r}")
    original = text.strip()
    if not original:
        raise ValueError(f"empty check; expected {_EXAMPLE}")
    head = _HEAD.match(original)
    if head is None or (metric is not None and _OP.match(original)):
        if metric is None:
            raise ValueError(f"malformed check {original!r}: expected METRIC OP VALUE, {_EXAMPLE}")
        name, stat, rest = metric, None, original
    else:
        name, stat, rest = head.group(1), head.group(2), original[head.end():]
    if name in PRESETS:
        raise ValueError(f"{name!r} is a preset; write it as a list item on its own "
                         f"(assertions: [{name}])")
    if name not in METRICS:
        raise _unknown_metric(name)
    stat = parse_stat(stat)
    op_match = _OP.match(rest)
    if op_match is None:
        raise ValueError(f"missing operator in {original!r}: expected METRIC OP VALUE with OP one "
                         f"of {', '.join(OPERATORS)}, {_EXAMPLE}")
    op = op_match.group(0)
    if op not in OPERATORS:
        suggest = {"=<": "<=", "=>": ">=", "≤": "<=", "≥": ">=", "=": "=="}.get(op)
        hint = f"; did you mean {suggest!r}?" if suggest else ""
        raise ValueError(f"bad operator {op!r} in {original!r}{hint} (operators: "
                         f"{', '.join(OPERATORS)})")
    bound = parse_bound(METRICS[name], rest[op_match.end():])
    return Check(name, stat, op, bound, original)


def parse_critical(text: Any, check: Check) -> Check:
    """The ``critical:`` condition of an assertion: a full check on the same metric
    (``success_rate >= 0.95``) or just ``OP VALUE`` (``>= 0.95``)."""
    crit = parse_check(text, metric=check.metric)
    if crit.metric != check.metric:
        raise ValueError(f"critical must be on the assertion's metric {check.metric!r}, "
                         f"found {crit.metric!r}")
    return crit


def check_group(metric: str, by: Optional[str]) -> Optional[str]:
    if by is None:
        return None
    if by not in GROUPS:
        close = difflib.get_close_matches(str(by), GROUPS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown group {by!r}{hint} (by: one of {', '.join(GROUPS)})")
    info = METRICS[metric]
    if by not in info.groups:
        raise ValueError(f"{metric} cannot be grouped by {by}; it can be by "
                         f"{', '.join(g for g in GROUPS if g in info.groups)}")
    return by
