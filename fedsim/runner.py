"""Running scenarios for the command line: replications, paired comparisons, sweeps, and
writing their outputs (parquet tables, summary.json, summary.md, plots, CSV).

Everything here is plain functions over :class:`fedsim.world.Scenario` and
:class:`fedsim.world.Result`; :mod:`fedsim.cli` adds argument parsing and printing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence

import pandas as pd

from .world import Result, Scenario, World

TABLES = ("requests", "attempts", "timeseries", "events")
# summary() keys that describe the outcome (wall time excluded: it is not reproducible)
METRICS = ("requests", "succeeded", "failed", "in_flight", "success_rate", "latency_mean",
           "latency_p50", "latency_p90", "latency_p99", "latency_p999", "retries_per_request",
           "simulated_seconds", "interrupted")


# --------------------------------------------------------------------------- helpers


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(clean(data), indent=2) + "\n")
    return path


def default_out(name: str, kind: str = "") -> Path:
    """``results/<name>[-kind]-<YYYYmmdd-HHMMSS>`` (a suffix if that exists already)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "scenario"
    stem = f"{safe}-{kind}" if kind else safe
    base = Path("results") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, i = base, 2
    while out.exists():
        out = base.with_name(f"{base.name}-{i}")
        i += 1
    return out


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean and a t-interval over ``values`` (NaNs dropped); the interval is None with
    fewer than two values."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    out = {"n": n, "mean": math.nan, "sd": math.nan, "ci_low": None, "ci_high": None}
    if not n:
        return out
    mean = sum(xs) / n
    out["mean"] = mean
    if n < 2:
        return out
    from scipy import stats

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    out.update(sd=sd, ci_low=mean - half, ci_high=mean + half)
    return out


def strategy_and_fixes(scenario: Scenario) -> tuple[str, str]:
    return scenario.router.strategy, str(scenario.fixes())


# --------------------------------------------------------------------------- progress


class ProgressLine:
    """A one-line progress report on stderr, rewritten in place with a carriage return:
    simulated time, wall time, requests done and an ETA."""

    def __init__(self, total_sim: float, runs: int = 1, stream=None, min_interval: float = 0.1):
        self.total_sim = max(total_sim, 1e-12)
        self.runs = max(runs, 1)
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self.started = time.perf_counter()
        self.last = 0.0
        self.width = 0
        self.done_runs = 0
        self.done_requests = 0

    def world_callback(self, index: int, label: str) -> Callable[[World], None]:
        def update(world: World) -> None:
            now = time.perf_counter()
            sim = world.env.now / 1e9
            if now - self.last < self.min_interval and sim < self.total_sim:
                return
            self.last = now
            wall = now - self.started
            frac = (index * self.total_sim + sim) / (self.runs * self.total_sim)
            eta = wall * (1 - frac) / frac if frac > 0 else math.nan
            self.write(f"{label}sim {_fmt_time(sim)}/{_fmt_time(self.total_sim)}  "
                       f"wall {_fmt_time(wall)}  "
                       f"{self.done_requests + world.requests_done:,} requests done  "
                       f"ETA {_fmt_time(eta)}")
        return update

    def finished_run(self, requests: int) -> None:
        self.done_runs += 1
        self.done_requests += requests

    def tasks(self, done: int, total: int, failed: int = 0) -> None:
        wall = time.perf_counter() - self.started
        eta = wall * (total - done) / done if done else math.nan
        extra = f", {failed} failed" if failed else ""
        self.write(f"{done}/{total} runs done{extra}  wall {_fmt_time(wall)}  ETA {_fmt_time(eta)}")

    def write(self, text: str) -> None:
        pad = max(self.width - len(text), 0)
        self.width = len(text)
        try:
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self.width:
            try:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.width = 0


def _fmt_time(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


class Monitor:
    """What watches replications as they run: nothing, a progress line, or a live view."""

    def callback(self, index: int, seed: int, world: World) -> Optional[Callable[[World], None]]:
        return None

    step: Optional[float] = None

    def finished(self, index: int, result: Result) -> None:
        pass

    def close(self) -> None:
        pass


class LineMonitor(Monitor):
    def __init__(self, duration: float, seeds: Sequence[int], prefix: str = ""):
        self.line = ProgressLine(duration, len(seeds))
        self.seeds = list(seeds)
        self.prefix = prefix

    def callback(self, index, seed, world):
        label = self.prefix
        if len(self.seeds) > 1:
            label += f"[seed {seed}, {index + 1}/{len(self.seeds)}] "
        return self.line.world_callback(index, label)

    def finished(self, index, result):
        self.line.finished_run(result.request_count)

    def close(self):
        self.line.close()


class LiveMonitor(Monitor):
    """A :class:`fedsim.live.LiveDashboard` per replication, paced at ``speed`` simulated
    seconds per wall second (0: as fast as possible)."""

    def __init__(self, speed: float, duration: float):
        from .live import LiveDashboard  # noqa: F401  (fail early if unavailable)

        self.speed = speed
        self.duration = duration
        self.dash = None
        # about ten progress steps per wall second when paced
        self.step = speed / 10.0 if speed > 0 and math.isfinite(speed) else None

    def callback(self, index, seed, world):
        from .live import LiveDashboard

        self.close()
        self.dash = LiveDashboard(self.speed)
        return self.dash.update

    def finished(self, index, result):
        self.close()

    def close(self):
        if self.dash is not None:
            dash, self.dash = self.dash, None
            dash.close()


# --------------------------------------------------------------------------- replications


@dataclass
class RunOutcome:
    scenario: Scenario
    seeds: list[int]
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False

    @property
    def finished_seeds(self) -> list[int]:
        return [r.seed for r in self.results]


def run_replications(scenario: Scenario, seeds: Iterable[int],
                     monitor: Optional[Monitor] = None,
                     stream_to: Optional[Path] = None) -> RunOutcome:
    """Run ``scenario`` once per seed.  Ctrl-C stops cleanly: the outcome keeps every
    finished replication plus the interrupted one (its Result has ``interrupted=True``).

    ``stream_to=DIR``: every run streams its tables into ``DIR/<table>.parquet`` (with a
    leading ``seed`` column when there are several seeds) and keeps counters and quantile
    sketches instead (see :func:`fedsim.world.run`); :func:`write_run` then writes the rest."""
    from .world.recorder import ParquetSink

    monitor = monitor or Monitor()
    outcome = RunOutcome(scenario, list(seeds))
    sink = None if stream_to is None else ParquetSink(stream_to,
                                                      seed_column=len(outcome.seeds) > 1)
    try:
        for i, seed in enumerate(outcome.seeds):
            world = World(scenario, seed) if sink is None else World(scenario, seed, stream_to=sink)
            cb = monitor.callback(i, seed, world)
            result = world.run(progress=cb, step=monitor.step if cb is not None else None)
            outcome.results.append(result)
            monitor.finished(i, result)
            if result.interrupted:
                outcome.interrupted = True
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        monitor.close()
        if sink is not None:
            sink.close()
    return outcome


# a scenario expected to make more requests than this (over all its seeds) is run streamed
# by `fedsim run` unless --no-stream: its tables would take gigabytes in memory
STREAM_THRESHOLD = 2_000_000
# `fedsim run` builds the report (which loads every table) of a streamed run up to this size
REPORT_ROW_LIMIT = 2_000_000


def expected_requests(scenario: Scenario) -> Optional[float]:
    """Requests the scenario is expected to make in one run: the open-loop workloads' mean
    arrival rate over the duration times the duration, plus, for closed-loop clients, one
    request per client per mean think time (an upper bound: service time is ignored; a
    client with no think time counts one request per millisecond).  None if unknown."""
    from .world.arrivals import make_arrival
    from .world.distributions import make_distribution

    total = 0.0
    duration = float(scenario.duration)
    try:
        for w in scenario.workloads:
            if w.arrival is not None:
                total += make_arrival(w.arrival).mean_rate(0.0, duration) * duration
            elif w.clients:
                think = float(make_distribution(w.think_time).mean)
                total += w.clients * duration / max(think, 1e-3)
    except Exception:  # a kind without a mean rate: do not guess
        return None
    return total


def combined(results: Sequence[Result], table: str) -> pd.DataFrame:
    """One table over replications, with a leading ``seed`` column when there are several."""
    frames = [getattr(r, table) for r in results]
    if len(frames) == 1:
        return frames[0]
    if not frames:
        return pd.DataFrame()
    parts = []
    for r, f in zip(results, frames):
        f = f.copy()
        f.insert(0, "seed", r.seed)
        parts.append(f)
    out = pd.concat(parts, ignore_index=True)
    for col in out.columns:  # categories differ between runs: keep them categorical
        if any(isinstance(f[col].dtype, pd.CategoricalDtype) for f in frames if col in f):
            out[col] = out[col].astype("category")
    return out


def pooled_stats(results: Sequence[Result]):
    """Streamed runs: the merged :class:`fedsim.world.RunStats` of every replication (the
    sketches of all requests together); None unless every result is streamed."""
    from .world.result import RunStats

    if not results or any(r.stats is None for r in results):
        return None
    return RunStats.merged(r.stats for r in results)


def pooled_summary(scenario: Scenario, results: Sequence[Result]) -> dict:
    """Summary over the requests of every replication together."""
    if not results:
        return {}
    stats = pooled_stats(results)
    pooled = Result(scenario=scenario, seed=None,
                    requests=combined(results, "requests") if stats is None else pd.DataFrame(),
                    attempts=pd.DataFrame(), timeseries=pd.DataFrame(), events=pd.DataFrame(),
                    wall_seconds=sum(r.wall_seconds for r in results),
                    interrupted=any(r.interrupted for r in results),
                    simulated_seconds=sum(r.simulated_seconds for r in results),
                    stats=stats)
    out = pooled.summary()
    out.pop("seed", None)
    out["replications"] = len(results)
    return out


def aggregate(scenario: Scenario, results: Sequence[Result]) -> dict:
    """Pooled summary plus, per headline metric, its mean over seeds with a 95% t-interval."""
    agg = pooled_summary(scenario, results)
    if len(results) > 1:
        per = [r.summary() for r in results]
        agg["across_seeds"] = {m: mean_ci([s[m] for s in per])
                               for m in ("success_rate", "latency_p50", "latency_p99",
                                         "latency_p999", "retries_per_request")}
    return agg


def write_run(out: Path, outcome: RunOutcome, meta: dict, plots: bool = True) -> dict:
    """Write the four parquet tables, summary.json, the plots and summary.md; return the
    summary document."""
    out.mkdir(parents=True, exist_ok=True)
    results = outcome.results
    scenario = outcome.scenario
    streamed = bool(results) and all(r.stats is not None for r in results)
    rows = {}
    for table in TABLES:
        if streamed:  # written while the runs went on (by run_replications' sink)
            rows[table] = sum(r.stream.rows[table] for r in results)
            continue
        frame = combined(results, table) if results else _empty(table)
        write_frame(frame, out / f"{table}.parquet", table, seed_column="seed" in frame.columns)
        rows[table] = len(frame)
    strategy, fixes = strategy_and_fixes(scenario)
    doc = dict(meta)
    doc.update({
        "scenario": scenario.name,
        "strategy": strategy,
        "fixes": fixes,
        "seeds": outcome.seeds,
        "finished_seeds": outcome.finished_seeds,
        "interrupted": outcome.interrupted,
        "duration": scenario.duration,
        "warmup": scenario.warmup,
        "rows": rows,
        "replications": [r.summary() for r in results],
        "aggregate": aggregate(scenario, results),
        "gateway_stats": [{"seed": r.seed, **{g: _stats(s) for g, s in r.gateway_stats.items()}}
                          for r in results],
    })
    if streamed:
        stats = pooled_stats(results)
        doc["streamed"] = True
        doc["percentiles"] = {
            "method": "sketch",
            "relative_error": stats.alpha,
            "note": f"tables streamed to parquet; latency percentiles from mergeable quantile "
                    f"sketches (fedsim.sketch), each within +-{stats.alpha:.1%} (relative) of "
                    f"the exact value; counts, rates, means and retries are exact"}
        doc["aggregate"]["by"] = {name: stats.group_rows(name) for name in stats.by}
    write_json(out / "scenario.json", scenario.model_dump(mode="json"))
    files = [f"{t}.parquet" for t in TABLES] + ["scenario.json", "summary.json"]
    if plots and results:
        files += (write_sketch_plots(out, scenario, results) if streamed
                  else write_run_plots(out, scenario, results))
    files.append("summary.md")
    doc["files"] = files
    write_json(out / "summary.json", doc)
    write_summary_md(out / "summary.md", doc)
    return clean(doc)


def write_frame(frame: pd.DataFrame, path: Path, table: str, seed_column: bool = False) -> Path:
    """Write a table as parquet with the column types of streamed files (strings as
    dictionary<int32, string>), so streamed and kept runs read back alike."""
    import pyarrow.parquet as pq

    from .world import simulation
    from .world.recorder import arrow_schema

    schema = arrow_schema(getattr(simulation, table.upper()), seed_column)
    pq.write_table(pa_table(frame, schema), path)
    return path


def pa_table(frame: pd.DataFrame, schema):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _empty(table: str) -> pd.DataFrame:
    from .world import simulation

    schema = getattr(simulation, table.upper())
    return pd.DataFrame({c: pd.Series(dtype={"f": "float64", "i": "int64", "b": "bool",
                                             "s": "object"}[k]) for c, k in schema.items()})


def _stats(s) -> dict:
    try:
        from dataclasses import asdict

        return asdict(s)
    except TypeError:
        return {k: v for k, v in vars(s).items() if not k.startswith("_")}


def successful_latencies(result: Result, warmup: float) -> pd.Series:
    r = result.requests
    return r.loc[(r["status"] == "success") & (r["arrival"] >= warmup), "latency"]


def write_run_plots(out: Path, scenario: Scenario, results: Sequence[Result]) -> list[str]:
    """latency_percentiles.png (mean over seeds with a confidence band when there are several)
    and timeline.png (the first seed)."""
    from . import plots

    fig = plots.latency_percentile_plot(
        combined(results, "requests"), warmup=scenario.warmup,
        title=f"{scenario.name}: latency by percentile (after {scenario.warmup:g} s warm-up"
              + (f", mean of {len(results)} seeds, shaded 95% CI)" if len(results) > 1 else ")"))
    plots.save(fig, out / "latency_percentiles", formats=("png",))
    first = results[0]
    fig = plots.timeline_plot(first.timeseries, first.events, first.attempts,
                              end=first.simulated_seconds or scenario.duration,
                              title=f"{scenario.name}: timeline (seed {first.seed})")
    plots.save(fig, out / "timeline", formats=("png",))
    return ["latency_percentiles.png", "timeline.png"]


def write_sketch_plots(out: Path, scenario: Scenario, results: Sequence[Result]) -> list[str]:
    """Streamed runs: latency_percentiles.png from the sketches (one line per seed when
    several, and all seeds pooled); no timeline (its tables were not kept)."""
    import numpy as np

    from . import plots

    stats = pooled_stats(results)
    grid = plots.percentile_grid(99.99, 300)
    fig = plots._figure()
    ax = fig.add_subplot()
    lines = [(f"seed {r.seed}", r.stats.total.latency) for r in results] if len(results) > 1 else []
    lines.append(("all seeds" if len(results) > 1 else f"seed {results[0].seed}",
                  stats.total.latency))
    colors = plots._colors(len(lines))
    drawn = False
    for (label, sk), color in zip(lines, colors):
        if not sk.count:
            continue
        top = 100.0 * (1.0 - 1.0 / sk.count) if sk.count > 1 else 0.0
        ps = grid[grid <= top + 1e-12]
        if not len(ps):
            ps = grid[:1]
        ys = np.array([sk.percentile(p) for p in ps]) * 1e3
        x = 1.0 / (1.0 - ps / 100.0)
        pooled_line = label in ("all seeds",) or len(lines) == 1
        ax.plot(x, ys, color=color, linewidth=2.2 if pooled_line else 1.0,
                alpha=1.0 if pooled_line else 0.6, label=label,
                marker="o" if len(x) == 1 else None)
        drawn = True
    ax.set_xscale("log")
    ticks = list(plots.PERCENTILE_TICKS)
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p in ticks])
    ax.set_xticklabels([plots._pct_text(p) for p in ticks])
    ax.xaxis.set_minor_locator(plots._null_locator())
    ax.set_xlim(1.0, 1.0 / (1.0 - 99.99 / 100.0))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("percentile (log scale of 1/(1-p))")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{scenario.name}: latency by percentile (after {scenario.warmup:g} s warm-up; "
                 f"streaming sketch, +-{stats.alpha:.1%} relative)")
    ax.grid(True, which="major", alpha=0.3)
    if drawn:
        plots._legend(ax, loc="upper left")
    else:
        plots._no_data(ax, "no successful requests")
    plots.save(fig, out / "latency_percentiles", formats=("png",))
    return ["latency_percentiles.png"]


def fmt_ms(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v * 1e3:.1f}"


def fmt_pct(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2%}"


def summary_rows(doc: dict) -> list[tuple[str, dict]]:
    """Rows of the summary table: one per replication when several, then the pooled one."""
    reps = doc.get("replications") or []
    rows = []
    if len(reps) > 1:
        rows += [(f"seed {s['seed']}" + (" (interrupted)" if s.get("interrupted") else ""), s)
                 for s in reps]
        rows.append(("all seeds", doc["aggregate"]))
    elif reps:
        s = reps[0]
        rows.append((f"seed {s['seed']}" + (" (interrupted)" if s.get("interrupted") else ""), s))
    return rows


def write_summary_md(path: Path, doc: dict) -> Path:
    lines = [f"# {doc['scenario']}", ""]
    lines.append(f"- file: `{doc.get('file', '')}`")
    lines.append(f"- strategy: `{doc['strategy']}`, fixes: `{doc['fixes']}`")
    lines.append(f"- duration {doc['duration']:g} s, warm-up {doc['warmup']:g} s; "
                 f"seeds {', '.join(str(s) for s in doc['seeds'])}")
    if doc.get("overrides"):
        lines.append(f"- overrides: {', '.join(f'`{o}`' for o in doc['overrides'])}")
    if doc.get("interrupted"):
        lines.append(f"- **interrupted**: finished seeds {doc['finished_seeds']} "
                     "(the last one partial)")
    lines += ["", "| run | requests | success | p50 ms | p90 ms | p99 ms | p99.9 ms | retries/req |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, s in summary_rows(doc):
        lines.append(f"| {label} | {s.get('requests', 0)} | {fmt_pct(s.get('success_rate'))} | "
                     f"{fmt_ms(s.get('latency_p50'))} | {fmt_ms(s.get('latency_p90'))} | "
                     f"{fmt_ms(s.get('latency_p99'))} | {fmt_ms(s.get('latency_p999'))} | "
                     f"{_num(s.get('retries_per_request'))} |")
    lines += ["", "Latency is end to end for successful requests that arrived after the warm-up.",
              ""]
    if doc.get("streamed"):
        err = (doc.get("percentiles") or {}).get("relative_error")
        lines += [f"Streamed run: the tables were written to parquet while it ran; percentiles "
                  f"come from streaming quantile sketches, each within +-{err:.1%} (relative) "
                  f"of the exact value (p99 +-{err:.1%} relative); counts, rates, means and "
                  f"retries are exact.  No timeline plot.", ""]
    for png, caption in (("latency_percentiles.png", "Latency by percentile"),
                         ("timeline.png", "Queue depth per node, faults shaded")):
        if png in doc.get("files", []):
            lines += [f"![{caption}]({png})", ""]
    lines.append("Tables: " + ", ".join(f"`{t}.parquet` ({doc['rows'][t]} rows)" for t in TABLES))
    path.write_text("\n".join(lines) + "\n")
    return path


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}"


# --------------------------------------------------------------------------- compare


@dataclass
class Variant:
    label: str
    strategy: Optional[str]
    fixes: Optional[list[str]]

    def apply(self, scenario: Scenario) -> Scenario:
        data = scenario.model_dump(mode="json")
        if self.strategy is not None:
            data["router"]["strategy"] = self.strategy
        if self.fixes is not None:
            data["router"]["fixes"] = list(self.fixes)
        return Scenario.model_validate(data)


def parse_variants(strategies: Optional[str], fixes: Optional[str]) -> list[Variant]:
    """Variants from ``--strategies a,b`` and/or ``--fixes none,all,a+b``; both given: every
    combination.  Unknown names raise ValueError with the closest valid one."""
    from .federation import Fixes
    from .federation.strategies import make_strategy

    s_items = _items(strategies)
    f_items = _items(fixes)
    for s in s_items:
        make_strategy(s)
    f_lists = []
    for item in f_items:
        names = [n.strip() for n in item.split("+") if n.strip()]
        Fixes.of(names)
        f_lists.append([n for n in names if n != "none"])
    if strategies is not None and not s_items:
        raise ValueError("--strategies: expected a comma-separated list of strategy names")
    if fixes is not None and not f_items:
        raise ValueError("--fixes: expected a comma-separated list (none, all, a fix name, a+b)")
    out = []
    if s_items and f_items:
        for s in s_items:
            for item, fl in zip(f_items, f_lists):
                out.append(Variant(f"{s} / fixes={item}", s, fl))
    elif s_items:
        out = [Variant(s, s, None) for s in s_items]
    else:
        out = [Variant(f"fixes={item}", None, fl) for item, fl in zip(f_items, f_lists)]
    labels = [v.label for v in out]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise ValueError(f"variant listed twice: {', '.join(sorted(dup))}")
    return out


def _items(text: Optional[str]) -> list[str]:
    if text is None:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


def compare(scenario: Scenario, variants: Sequence[Variant], seeds: Sequence[int],
            monitor_for: Optional[Callable[[int, Variant], Monitor]] = None) -> dict:
    """Run every variant on the same seeds; return the comparison document (``variants``
    with per-seed summaries, pooled numbers, and paired p99 differences against the first
    variant) plus ``interrupted``.  The latencies of successful requests after the warm-up,
    for plotting, under ``_latencies`` (a DataFrame: ``variant``, ``seed``, ``latency``)."""
    entries = []
    interrupted = False
    latencies = []
    for i, v in enumerate(variants):
        sc = v.apply(scenario)
        mon = monitor_for(i, v) if monitor_for else None
        outcome = run_replications(sc, seeds, mon)
        strategy, fixes = strategy_and_fixes(sc)
        entries.append({
            "variant": v.label, "strategy": strategy, "fixes": fixes,
            "seeds": outcome.finished_seeds,
            "runs": [r.summary() for r in outcome.results],
            "aggregate": pooled_summary(sc, outcome.results),
        })
        for r in outcome.results:
            lat = successful_latencies(r, sc.warmup).to_numpy()
            latencies.append(pd.DataFrame({"variant": v.label, "seed": r.seed, "latency": lat}))
        if outcome.interrupted:
            interrupted = True
            break
    base = entries[0] if entries else None
    for e in entries:
        e["p99_diff"] = _paired(base, e, "latency_p99")
        e["p50_diff"] = _paired(base, e, "latency_p50")
        e["success_rate_diff"] = _paired(base, e, "success_rate")
    frame = (pd.concat(latencies, ignore_index=True) if latencies
             else pd.DataFrame({"variant": [], "seed": [], "latency": []}))
    return {"variants": entries, "interrupted": interrupted, "_latencies": frame}


def _paired(base: dict, other: dict, metric: str) -> dict:
    """Mean per-seed difference ``other - base`` of ``metric`` over the seeds both finished
    (uninterrupted), with a 95% t-interval (None with one seed)."""
    b = {s["seed"]: s[metric] for s in base["runs"] if not s["interrupted"]}
    o = {s["seed"]: s[metric] for s in other["runs"] if not s["interrupted"]}
    diffs = [o[k] - b[k] for k in b if k in o]
    return mean_ci(diffs)


COMPARISON_COLUMNS = ("variant", "strategy", "fixes", "seeds", "requests", "success_rate",
                      "latency_p50", "latency_p90", "latency_p99", "latency_p999",
                      "retries_per_request", "p99_diff_mean", "p99_diff_ci_low",
                      "p99_diff_ci_high")


def comparison_frame(doc: dict) -> pd.DataFrame:
    rows = []
    for e in doc["variants"]:
        a = e["aggregate"]
        d = e["p99_diff"]
        rows.append({
            "variant": e["variant"], "strategy": e["strategy"], "fixes": e["fixes"],
            "seeds": len(e["seeds"]), "requests": a.get("requests"),
            "success_rate": a.get("success_rate"), "latency_p50": a.get("latency_p50"),
            "latency_p90": a.get("latency_p90"), "latency_p99": a.get("latency_p99"),
            "latency_p999": a.get("latency_p999"),
            "retries_per_request": a.get("retries_per_request"),
            "p99_diff_mean": d["mean"] if d["n"] else math.nan,
            "p99_diff_ci_low": d["ci_low"], "p99_diff_ci_high": d["ci_high"],
        })
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def write_compare(out: Path, doc: dict, meta: dict, scenario: Scenario) -> dict:
    """comparison.csv, latencies.parquet (``variant``, ``seed``, ``latency`` of every successful
    request after the warm-up), scenario.json (the base scenario), summary.json and the
    percentile plot."""
    out.mkdir(parents=True, exist_ok=True)
    latencies = doc.pop("_latencies", None)
    frame = comparison_frame(doc)
    frame.to_csv(out / "comparison.csv", index=False)
    full = dict(meta)
    full.update(doc)
    files = ["comparison.csv", "summary.json", "scenario.json"]
    write_json(out / "scenario.json", scenario.model_dump(mode="json"))
    if latencies is not None and len(latencies):
        from . import plots

        latencies.to_parquet(out / "latencies.parquet", index=False)
        files.append("latencies.parquet")
        fig = plots.latency_percentile_plot(
            latencies, variant_col="variant", warmup=0.0,
            title=f"{scenario.name}: latency by percentile per variant"
                  + (" (mean over seeds, shaded 95% CI)" if latencies["seed"].nunique() > 1 else ""))
        plots.save(fig, out / "latency_percentiles", formats=("png",))
        files.append("latency_percentiles.png")
    full["files"] = files
    write_json(out / "summary.json", full)
    return clean(full)


# --------------------------------------------------------------------------- sweep


def _worker_init() -> None:
    """Worker processes leave Ctrl-C to the parent, which cancels and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SweepTask(NamedTuple):
    """One run of a sweep, self-contained so that any worker can run it: the point's name,
    the resolved scenario as JSON (trace files inlined, see :func:`portable_scenario`) and
    the seed."""

    point: str
    scenario: str
    seed: int


def sweep_task(task: SweepTask) -> dict:
    """Run one task; a small dict back: ``{"ok": True, "summary": {metric: value}}`` or
    ``{"ok": False, "error": "...", "traceback": "..."}``, with the run's ``wall_s`` and
    ``cpu_s`` (not part of the results: they vary).  Never raises for a failing point;
    Ctrl-C during the run (in this process) raises KeyboardInterrupt."""
    name, dump, seed = task
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        scenario = Scenario.model_validate_json(dump)
        result = World(scenario, seed).run()
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failure inside one point must not lose the others
        return {"ok": False, "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
                "wall_s": time.perf_counter() - wall, "cpu_s": time.thread_time() - cpu}
    if result.interrupted:  # World.run stops cleanly on Ctrl-C; a partial run is no result
        raise KeyboardInterrupt
    summary = result.summary()
    return {"ok": True, "summary": {m: summary[m] for m in METRICS},
            "wall_s": time.perf_counter() - wall, "cpu_s": time.thread_time() - cpu}


def _run_inline(task) -> Optional[dict]:
    """:func:`sweep_task` in this process; None when Ctrl-C interrupted it."""
    try:
        return sweep_task(task)
    except KeyboardInterrupt:
        return None


def portable_scenario(scenario: Scenario) -> dict:
    """The scenario as plain data that needs none of this machine's files: every trace
    arrival read from a CSV file (``path``) becomes the same trace with its ``timestamps``
    inlined (values identical to what the file gives, so the runs are too)."""
    from .world.arrivals import Trace

    data = scenario.model_dump(mode="json")

    def inline(obj):
        if isinstance(obj, dict):
            if obj.get("kind") == "trace" and obj.get("path") is not None:
                trace = Trace(path=obj["path"], column=obj.get("column", "time"))
                # offset 0 from time 0: times() yields the recorded timestamps themselves
                stamps = list(trace.times(None, 0.0, math.inf))
                out = {k: v for k, v in obj.items() if k not in ("path", "column")}
                out["timestamps"] = stamps
                return out
            return {k: inline(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [inline(v) for v in obj]
        return obj

    return inline(data)


@dataclass
class SweepOutcome:
    tasks: list[SweepTask]
    outputs: dict[int, dict] = field(default_factory=dict)  # task index -> sweep_task result
    interrupted: bool = False
    executor: dict = field(default_factory=dict)  # SweepExecutor.info() of the run


def sweep_tasks(points, seeds: Sequence[int]) -> list[SweepTask]:
    """Every (point, seed) in order: points as the sweep lists them, seeds ascending.  Each
    task carries its resolved scenario (as JSON, trace files inlined)."""
    tasks = []
    for p in points:
        dump = json.dumps(portable_scenario(p.scenario), separators=(",", ":"))
        tasks.extend(SweepTask(p.name, dump, seed) for seed in seeds)
    return tasks


def run_sweep(tasks: Sequence[SweepTask], workers: Optional[int] = None,
              on_done: Optional[Callable[[int, dict], None]] = None,
              tick: Optional[Callable[[], None]] = None, *,
              executor: "str | Any" = "local", scheduler: Optional[str] = None,
              timeout: Optional[float] = None,
              fn: Optional[Callable[[Any], dict]] = None) -> SweepOutcome:
    """Run ``tasks`` on an executor (a name from :data:`fedsim.executors.EXECUTORS`, built
    with ``workers`` / ``scheduler`` / ``timeout``, or an opened
    :class:`fedsim.executors.SweepExecutor`, which the caller closes).  ``on_done(index,
    result)`` is called as each task finishes, ``tick()`` now and then while none does.
    Ctrl-C cancels what has not finished and stops the workers; finished tasks are kept.
    Raises :class:`fedsim.executors.ExecutorError` when the executor cannot start."""
    from .executors import make_executor

    outcome = SweepOutcome(list(tasks))
    own = isinstance(executor, str)
    ex = make_executor(executor, workers=workers, scheduler=scheduler, timeout=timeout) \
        if own else executor
    try:
        if own:
            ex.open(len(outcome.tasks))
        outcome.executor = ex.info()
        stream = ex.run(outcome.tasks, fn or sweep_task)
        try:
            for item in stream:
                if item is None:
                    if tick:
                        tick()
                    continue
                i, res = item
                outcome.outputs[i] = res
                if on_done:
                    on_done(i, res)
        except KeyboardInterrupt:
            outcome.interrupted = True
            ex.cancel()
        finally:
            stream.close()
    finally:
        if own:
            ex.close()
    return outcome


def _cell(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return "+".join(str(x) for x in v) if all(isinstance(x, str) for x in v) else json.dumps(v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def sweep_frame(points, outcome: SweepOutcome) -> pd.DataFrame:
    """One row per finished (point, seed), in task order (points as the sweep lists them,
    then seeds), whatever executor ran them and in whatever order they finished: ``point``,
    the point's parameters (one column per key path), ``seed``, the summary metrics and
    ``error`` (empty when ok)."""
    params_by_name = {p.name: p.params for p in points}
    keys: list[str] = []
    for p in points:
        for k in p.params:
            if str(k) not in keys:
                keys.append(str(k))
    rows = []
    for i, (name, _, seed) in enumerate(outcome.tasks):
        res = outcome.outputs.get(i)
        if res is None:
            continue
        row: dict[str, Any] = {"point": name}
        params = {str(k): v for k, v in params_by_name.get(name, {}).items()}
        for k in keys:
            row[k] = _cell(params.get(k))
        row["seed"] = seed
        summary = res.get("summary") or {}
        for m in METRICS:
            row[m] = summary.get(m, math.nan if m != "interrupted" else None)
        row["error"] = "" if res.get("ok") else res.get("error", "failed")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["point", *keys, "seed", *METRICS, "error"])
    for k in keys:  # parquet needs one type per column
        kinds = {type(v) for v in frame[k] if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[k] = frame[k].map(lambda v: None if v is None else str(v))
    for m in ("requests", "succeeded", "failed", "in_flight"):
        frame[m] = pd.to_numeric(frame[m], errors="coerce").astype("Int64")
    frame["interrupted"] = frame["interrupted"].astype("boolean")
    return frame


def sweep_point_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per point: runs, mean success rate and latency percentiles over its seeds."""
    ok = frame[frame["error"] == ""]
    g = ok.groupby("point", sort=False)
    table = pd.DataFrame({
        "runs": g.size(),
        "requests": g["requests"].sum(),
        "success_rate": g["success_rate"].mean(),
        "latency_p50": g["latency_p50"].mean(),
        "latency_p99": g["latency_p99"].mean(),
        "retries_per_request": g["retries_per_request"].mean(),
    })
    order = list(dict.fromkeys(frame["point"]))
    return table.reindex([p for p in order if p in table.index])


def write_sweep(out: Path, frame: pd.DataFrame, meta: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "sweep.csv", index=False)
    frame.to_parquet(out / "sweep.parquet", index=False)
    doc = dict(meta)
    doc["rows"] = len(frame)
    doc["files"] = ["sweep.csv", "sweep.parquet", "summary.json"]
    write_json(out / "summary.json", doc)
    return clean(doc)


def cpu_count() -> int:
    return os.cpu_count() or 1
