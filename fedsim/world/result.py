"""The outcome of one run: pandas tables and a summary.

Columns (times in seconds from the run start, durations in seconds):

* ``requests``: one row per request: ``request`` (index), ``id``, ``workload``, ``arrival``,
  ``capability``, ``tenant``, ``origin_region``, ``privacy``, ``cost_tolerance``, ``gateway``,
  ``status`` (success / failed / in_flight), ``error`` (FederationError variant), ``latency``
  (end to end, arrival to answer), ``ttft`` (token models), ``attempts``, ``node`` and
  ``region`` that served it, ``queue_wait``, ``service``, ``network`` (of the serving attempt),
  ``input_tokens``, ``output_tokens``.
* ``attempts``: one row per attempt: ``request``, ``attempt``, ``gateway``, ``kind``
  (success / failure / route_error / circuit_open), ``node``, ``error``, ``detail`` (crashed,
  crashed_in_flight, queue_full, error_fault, partitioned, timeout), ``start``, ``end``,
  ``backoff`` (sleep after it).
* ``timeseries``: per sample time, node and gateway: ``queue_depth``, ``in_flight``,
  ``busy_gpus``, ``gpu_utilization`` (time-weighted over the interval), ``up``, ``health``
  and ``circuit`` (as that gateway sees the node), ``latency_estimate`` (the router's p50).
* ``events``: ``time``, ``category`` (fault / health / circuit), ``source`` (fault kind or
  gateway), ``subject`` (target or node), ``old``/``new`` (states; for faults start/end).

**Streamed runs** (``World(scenario, seed, stream_to=DIR)``; ``fedsim run --stream``) write
the four tables to ``DIR/<table>.parquet`` chunk by chunk while they run and keep none of
them: the Result's four DataFrames are then empty (with their columns), ``stream`` says where
the files are (``result.stream.read("requests")`` loads one), and ``stats``
(:class:`RunStats`) holds counters and quantile sketches of the requests, from which
``summary()`` is computed.  Its percentiles are then within a relative error of
``stats.alpha`` (0.5 %) of the exact ones (see :mod:`fedsim.sketch`); counts, rates, means
and retries stay exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from ..federation import GatewayStats
from ..sketch import DEFAULT_ALPHA, QuantileSketch

# request columns with a sketch per value in streamed runs (a request without a value, e.g.
# the node of a failed request, is in no group of that column)
GROUP_COLUMNS = ("workload", "gateway", "origin_region", "region", "node", "tenant",
                 "capability", "privacy")
SUMMARY_PERCENTILES = (("latency_p50", 0.50), ("latency_p90", 0.90), ("latency_p99", 0.99),
                       ("latency_p999", 0.999))


class GroupStats:
    """Counters and sketches of the requests of one group that arrived after the warm-up:
    ``requests``, ``succeeded``, ``failed``, ``in_flight``, ``extra_attempts`` (attempts
    beyond the first, summed) exactly; ``latency`` and ``ttft`` of successful requests as
    :class:`~fedsim.sketch.QuantileSketch` (exact count, mean, min, max; quantiles within
    ``alpha``)."""

    __slots__ = ("requests", "succeeded", "failed", "in_flight", "extra_attempts", "latency",
                 "ttft")

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        self.requests = self.succeeded = self.failed = self.in_flight = 0
        self.extra_attempts = 0
        self.latency = QuantileSketch(alpha)
        self.ttft = QuantileSketch(alpha)

    def add(self, ok: np.ndarray, failed: np.ndarray, in_flight: np.ndarray, extra: np.ndarray,
            latency: np.ndarray, ttft: np.ndarray) -> None:
        self.requests += len(ok)
        self.succeeded += int(ok.sum())
        self.failed += int(failed.sum())
        self.in_flight += int(in_flight.sum())
        self.extra_attempts += int(extra.sum())
        lat = latency[ok]
        self.latency.add(lat[~np.isnan(lat)])
        t = ttft[ok]
        self.ttft.add(t[~np.isnan(t)])

    def merge(self, other: "GroupStats") -> "GroupStats":
        self.requests += other.requests
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.in_flight += other.in_flight
        self.extra_attempts += other.extra_attempts
        self.latency.merge(other.latency)
        self.ttft.merge(other.ttft)
        return self

    def summary(self) -> dict:
        """The outcome keys of ``Result.summary()`` (percentiles from the sketch)."""
        n, lat = self.requests, self.latency
        done = self.succeeded + self.failed
        out = {"requests": n, "succeeded": self.succeeded, "failed": self.failed,
               "in_flight": self.in_flight,
               "success_rate": self.succeeded / done if done else math.nan,
               "latency_mean": lat.mean}
        for key, q in SUMMARY_PERCENTILES:
            out[key] = lat.quantile(q)
        out["retries_per_request"] = self.extra_attempts / n if n else math.nan
        return out


class RunStats:
    """What a streamed run keeps of its requests instead of the table: :class:`GroupStats`
    overall (``total``) and per value of each of ``by`` (``groups[column][value]``), over
    requests that arrived at or after ``warmup``; ``recorded`` counts every request row.

    Fed chunk by chunk (``add_chunk``, vectorised); two RunStats of the same warm-up and
    ``alpha`` merge (``merge``) into exactly the stats of both runs' requests together."""

    def __init__(self, warmup: float = 0.0, alpha: float = DEFAULT_ALPHA,
                 by: Sequence[str] = GROUP_COLUMNS) -> None:
        self.warmup = float(warmup)
        self.alpha = float(alpha)
        self.by = tuple(by)
        self.total = GroupStats(alpha)
        self.groups: dict[str, dict[str, GroupStats]] = {c: {} for c in self.by}
        self.recorded = 0

    @property
    def relative_error(self) -> float:
        return self.alpha

    def add_chunk(self, chunk) -> None:
        """Add a converted chunk of the requests table (a :class:`fedsim.world.recorder.Chunk`)."""
        self.recorded += chunk.n
        keep = chunk.numeric("arrival") >= self.warmup
        if not keep.any():
            return
        sel = None if keep.all() else np.flatnonzero(keep)

        def col(a: np.ndarray) -> np.ndarray:
            return a if sel is None else a[sel]

        status, values = chunk.codes("status")
        status = col(status)

        def code(name: str) -> int:
            return values.index(name) if name in values else -2

        ok, failed, in_flight = (status == code("success"), status == code("failed"),
                                 status == code("in_flight"))
        extra = np.maximum(col(chunk.numeric("attempts")) - 1, 0)
        lat, ttft = col(chunk.numeric("latency")), col(chunk.numeric("ttft"))
        self.total.add(ok, failed, in_flight, extra, lat, ttft)
        for name in self.by:
            codes, keys = chunk.codes(name)
            codes = col(codes)
            order = np.argsort(codes, kind="stable")
            sc = codes[order]
            starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]) if len(sc) else []
            ends = list(starts[1:]) + [len(sc)]
            groups = self.groups[name]
            for s, e in zip(starts, ends):
                c = int(sc[s])
                if c < 0:  # no value (e.g. the node of a failed request): in no group
                    continue
                rows = order[s:e]
                key = str(keys[c])
                g = groups.get(key)
                if g is None:
                    g = groups[key] = GroupStats(self.alpha)
                g.add(ok[rows], failed[rows], in_flight[rows], extra[rows], lat[rows],
                      ttft[rows])

    def merge(self, other: "RunStats") -> "RunStats":
        if other.warmup != self.warmup or other.alpha != self.alpha:
            raise ValueError("cannot merge RunStats with different warm-up or alpha")
        self.total.merge(other.total)
        for name, groups in other.groups.items():
            mine = self.groups.setdefault(name, {})
            for key, g in groups.items():
                mine.setdefault(key, GroupStats(self.alpha)).merge(g)
        self.recorded += other.recorded
        return self

    @classmethod
    def merged(cls, stats: Iterable["RunStats"]) -> "RunStats":
        stats = list(stats)
        if not stats:
            return cls()
        out = cls(stats[0].warmup, stats[0].alpha, stats[0].by)
        for s in stats:
            out.merge(s)
        return out

    def group_rows(self, name: str) -> list[dict]:
        """Per value of ``name``: the summary keys plus TTFT p50/p99 (sorted by value)."""
        rows = []
        for key in sorted(self.groups.get(name, {})):
            g = self.groups[name][key]
            row = {name: key, **g.summary()}
            row["ttft_p50"] = g.ttft.quantile(0.5)
            row["ttft_p99"] = g.ttft.quantile(0.99)
            rows.append(row)
        return rows


@dataclass
class StreamInfo:
    """Where a streamed run's tables are: ``directory/<table>.parquet``, ``rows`` written
    per table by this run, ``seed`` set when the files hold several runs (a ``seed``
    column)."""

    directory: Path
    rows: dict[str, int]
    seed: Optional[int] = None

    def path(self, table: str) -> Path:
        return Path(self.directory) / f"{table}.parquet"

    def read(self, table: str, columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
        """Load one table of this run (all of it is read into memory)."""
        from .recorder import read_table

        df = read_table(self.path(table), columns, seed=self.seed)
        if table == "requests" and "request" in df.columns:
            df = df.sort_values("request", kind="stable").reset_index(drop=True)
        return df


@dataclass
class Result:
    scenario: Any
    seed: int
    requests: pd.DataFrame
    attempts: pd.DataFrame
    timeseries: pd.DataFrame
    events: pd.DataFrame
    gateway_stats: dict[str, GatewayStats] = field(default_factory=dict)
    wall_seconds: float = 0.0
    interrupted: bool = False
    simulated_seconds: float = 0.0
    stats: Optional[RunStats] = None       # streamed runs: counters and sketches
    stream: Optional[StreamInfo] = None    # streamed runs: where the tables went

    @property
    def streamed(self) -> bool:
        return self.stats is not None

    @property
    def request_count(self) -> int:
        """Requests recorded (rows of the requests table, written or kept)."""
        return self.stats.recorded if self.stats is not None else len(self.requests)

    def summary(self, warmup: Optional[float] = None) -> dict:
        """Headline numbers over requests that arrived after the warm-up.

        Streamed runs: from ``stats``, with the percentiles within ``+-stats.alpha``
        (relative) of the exact ones, said by ``percentile_relative_error``."""
        if warmup is None:
            warmup = getattr(self.scenario, "warmup", 0.0)
        if self.stats is not None:
            if float(warmup) != self.stats.warmup:
                raise ValueError(f"this streamed run kept statistics after the "
                                 f"{self.stats.warmup:g} s warm-up only, not {warmup:g} s")
            return {"scenario": getattr(self.scenario, "name", ""), "seed": self.seed,
                    **self.stats.total.summary(),
                    "wall_seconds": self.wall_seconds,
                    "simulated_seconds": self.simulated_seconds,
                    "interrupted": self.interrupted,
                    "percentile_method": "sketch",
                    "percentile_relative_error": self.stats.alpha}
        r = self.requests
        r = r[r["arrival"] >= warmup]
        n = len(r)
        done = r[r["status"] != "in_flight"]
        ok = r[r["status"] == "success"]
        lat = ok["latency"]

        def q(p: float) -> float:
            return float(lat.quantile(p, interpolation="higher")) if len(lat) else math.nan

        return {
            "scenario": getattr(self.scenario, "name", ""),
            "seed": self.seed,
            "requests": n,
            "succeeded": int(len(ok)),
            "failed": int((r["status"] == "failed").sum()),
            "in_flight": int((r["status"] == "in_flight").sum()),
            "success_rate": (len(ok) / len(done)) if len(done) else math.nan,
            "latency_mean": float(lat.mean()) if len(lat) else math.nan,
            "latency_p50": q(0.50),
            "latency_p90": q(0.90),
            "latency_p99": q(0.99),
            "latency_p999": q(0.999),
            "retries_per_request": float((r["attempts"] - 1).clip(lower=0).mean()) if n else math.nan,
            "wall_seconds": self.wall_seconds,
            "simulated_seconds": self.simulated_seconds,
            "interrupted": self.interrupted,
        }
