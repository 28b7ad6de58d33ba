"""The ``fedsim`` command line.

    fedsim run SCENARIO [--out DIR] [--seed N] [--set key.path=value ...] [--quiet] [--json]
               [--live] [--speed X]
    fedsim compare SCENARIO --strategies a,b,c | --fixes none,all,name,a+b
    fedsim sweep SCENARIO [--workers N] [--out DIR] [--executor local|inline|dask]
                 [--scheduler tcp://host:8786] [--connect-timeout S]
    fedsim report RESULTS_DIR
    fedsim validate SCENARIO...
    fedsim list
    fedsim schema [--out FILE]
    fedsim demo

Exit status: 0 ok, 1 a run or a sweep point failed, 2 bad input (never a traceback),
130 interrupted (Ctrl-C; what finished is written).  ``run``, ``compare`` and ``sweep`` end
by writing report.html and report.md into their output folder (``--no-report`` skips it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

from . import __version__


class UserError(Exception):
    """Bad input: the message goes to stderr and the exit status is 2."""


# --------------------------------------------------------------------------- shared


def _progress_wanted(args) -> bool:
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _note(args, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _load(args):
    from .scenario import load_scenario

    return load_scenario(args.scenario, overrides=args.set or [], seed=args.seed)


def _out_dir(args, name: str, kind: str = "") -> Path:
    from .runner import default_out

    out = Path(args.out) if args.out else default_out(name, kind)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create it ({err.strerror})") from None
    return out


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return out


def _ms(v) -> str:
    from .runner import fmt_ms

    return fmt_ms(v)


def _pct(v) -> str:
    from .runner import fmt_pct

    return fmt_pct(v)


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def _signed_ms(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v * 1e3:+.1f}"


def _auto_report(args, out: Path, rc: int, files=()) -> int:
    """Write the report of ``out`` after run / compare / sweep (unless --no-report); a
    failing report is reported on stderr and turns a 0 exit status into 1.  The PNG plots in
    ``files`` were just drawn by the runner and are embedded as they are."""
    if getattr(args, "no_report", False):
        return rc
    from .report import ReportError, build_report

    try:
        rep = build_report(out, reuse=[f for f in files if f.endswith(".png")])
        html_path, md_path = rep.write()
    except ReportError as err:
        _note(args, f"note: no report: {err}")
        return rc
    except Exception as err:  # a report must not lose the results written above
        print(f"fedsim {args.command}: could not write the report: {type(err).__name__}: {err}",
              file=sys.stderr)
        return rc or 1
    for alert in rep.alerts:
        print(f"fedsim {args.command}: {alert}", file=sys.stderr)
    for problem in rep.problems:
        _note(args, f"report: {problem}")
    if args.json:
        _note(args, f"report: {html_path}")
    else:
        print(f"report: {html_path} (and {md_path.name})")
    return rc


# --------------------------------------------------------------------------- run


def _stream_wanted(args, scenario, runs: int, out: Path) -> bool:
    """--stream / --no-stream, else streamed when the scenario is expected to make more than
    STREAM_THRESHOLD requests over all its runs (said in a one-line note)."""
    from .runner import STREAM_THRESHOLD, expected_requests

    if args.stream is not None:
        return args.stream
    per_run = expected_requests(scenario)
    if per_run is None or per_run * runs <= STREAM_THRESHOLD:
        return False
    _note(args, f"note: about {per_run * runs:,.0f} requests expected (over {STREAM_THRESHOLD:,}): "
                f"streaming the tables to {out}/ and computing percentiles from sketches "
                "(+-0.5% relative); --no-stream keeps everything in memory")
    return True


def _cmd_run(args) -> int:
    from .runner import (REPORT_ROW_LIMIT, LineMonitor, LiveMonitor, Monitor, run_replications,
                         summary_rows, write_run)

    if args.speed is not None and not (args.speed >= 0 and math.isfinite(args.speed)):
        raise UserError("--speed must be a number >= 0 (simulated seconds per wall second; "
                        "0: as fast as possible)")
    if args.speed is not None and not args.live:
        raise UserError("--speed sets the pace of --live; add --live")
    loaded = _load(args)
    scenario = loaded.scenario
    seeds = loaded.seeds()
    if loaded.points:
        _note(args, f"note: {args.scenario} has a sweep of {len(loaded.points)} points; "
                    "`fedsim run` runs the scenario without it (use `fedsim sweep`)")
    if args.live:
        try:
            monitor: Monitor = LiveMonitor(10.0 if args.speed is None else args.speed, scenario.duration)
        except ImportError as err:
            print(f"fedsim run: --live is not available ({err})", file=sys.stderr)
            return 1
    elif _progress_wanted(args):
        monitor = LineMonitor(scenario.duration, seeds)
    else:
        monitor = Monitor()
    out = _out_dir(args, loaded.name)
    stream = _stream_wanted(args, scenario, len(seeds), out)
    try:
        outcome = run_replications(scenario, seeds, monitor, stream_to=out if stream else None)
    except Exception as err:  # a failure inside the simulation, not bad input
        print(f"fedsim run: the simulation failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    meta = {"command": "run", "file": str(loaded.path), "overrides": list(args.set or []),
            "seed_option": args.seed, "out": str(out)}
    doc = write_run(out, outcome, meta)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        fixes = doc["fixes"]
        print(f"{doc['scenario']}: strategy {doc['strategy']}, fixes {fixes}; "
              f"{scenario.duration:g} s simulated ({scenario.warmup:g} s warm-up), "
              f"{len(seeds)} replication{'s' if len(seeds) != 1 else ''} "
              f"(seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))})")
        headers = ["run", "requests", "success", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                   "retries/req"]
        rows = [[label, str(s.get("requests", 0)), _pct(s.get("success_rate")),
                 _ms(s.get("latency_p50")), _ms(s.get("latency_p90")), _ms(s.get("latency_p99")),
                 _ms(s.get("latency_p999")), _num(s.get("retries_per_request"))]
                for label, s in summary_rows(doc)]
        print("\n".join(_table(headers, rows)))
        if doc.get("streamed"):
            err = doc["percentiles"]["relative_error"]
            print(f"percentiles from streaming sketches: each within +-{err:.1%} relative "
                  f"(p99 +-{err:.1%} relative); counts and rates exact")
        print(f"\nwrote {out}/ ({', '.join(doc['files'])})")
    if doc.get("streamed") and doc["rows"]["requests"] > REPORT_ROW_LIMIT \
            and not getattr(args, "no_report", False):
        _note(args, f"note: no report for this streamed run ({doc['rows']['requests']:,} requests; "
                    f"the report loads every table into memory): `fedsim report {out}` builds it")
        rc = 0
    else:
        rc = _auto_report(args, out, 0, doc["files"])
    if outcome.interrupted:
        print(f"interrupted: kept {len(outcome.results)} of {len(seeds)} replication(s) "
              f"(the last one partial) in {out}", file=sys.stderr)
        return 130
    return rc


# --------------------------------------------------------------------------- compare


def _cmd_compare(args) -> int:
    from .runner import LineMonitor, compare, parse_variants, write_compare

    if args.strategies is None and args.fixes is None:
        raise UserError("give --strategies a,b,... and/or --fixes none,all,name,...")
    try:
        variants = parse_variants(args.strategies, args.fixes)
    except ValueError as err:
        raise UserError(str(err)) from None
    loaded = _load(args)
    seeds = loaded.seeds()
    progress = _progress_wanted(args)

    def monitor_for(i, v):
        if not progress:
            return None
        return LineMonitor(loaded.scenario.duration, seeds,
                           prefix=f"[{v.label}, {i + 1}/{len(variants)}] ")

    out = _out_dir(args, loaded.name, "compare")
    doc = compare(loaded.scenario, variants, seeds, monitor_for)
    meta = {"command": "compare", "scenario": loaded.name, "file": str(loaded.path),
            "overrides": list(args.set or []), "seeds": seeds, "out": str(out),
            "baseline": variants[0].label}
    full = write_compare(out, doc, meta, loaded.scenario)
    if args.json:
        print(json.dumps(full, indent=2))
    else:
        n = len(seeds)
        print(f"{loaded.name}: {len(variants)} variants on the same {n} seed"
              f"{'s' if n != 1 else ''} ({', '.join(map(str, seeds))}); "
              f"differences are paired per seed against {variants[0].label!r}")
        headers = ["variant", "requests", "success", "p50 ms", "p99 ms", "Δp99 ms", "95% CI"]
        rows = []
        for i, e in enumerate(full["variants"]):
            a = e["aggregate"]
            d = e["p99_diff"]
            if i == 0:
                diff, ci = "baseline", ""
            else:
                diff = _signed_ms(d["mean"]) if d["n"] else "-"
                ci = (f"[{_signed_ms(d['ci_low'])}, {_signed_ms(d['ci_high'])}]"
                      if d["ci_low"] is not None else "n/a (1 seed)" if d["n"] <= 1 else "n/a")
            rows.append([e["variant"], str(a.get("requests", 0)), _pct(a.get("success_rate")),
                         _ms(a.get("latency_p50")), _ms(a.get("latency_p99")), diff, ci])
        print("\n".join(_table(headers, rows)))
        print("\nΔp99: mean over seeds of (variant p99 - baseline p99); 95% CI: t-interval "
              "over seeds")
        print(f"wrote {out}/ ({', '.join(full['files'])})")
    rc = _auto_report(args, out, 0, full["files"])
    if full["interrupted"]:
        print(f"interrupted: kept the variants that ran in {out}", file=sys.stderr)
        return 130
    return rc


# --------------------------------------------------------------------------- sweep


def _cmd_sweep(args) -> int:
    from .executors import ExecutorError, make_executor
    from .runner import sweep_tasks

    name = args.executor or ("dask" if args.scheduler else "local")
    try:
        executor = make_executor(name, workers=args.workers, scheduler=args.scheduler,
                                 timeout=args.connect_timeout)
    except ExecutorError as err:
        raise UserError(str(err)) from None
    loaded = _load(args)
    if not loaded.points:
        raise UserError(f"{args.scenario}: no sweep: section to run; add one "
                        "(sweep: {grid: {key.path: [values, ...]}} or "
                        "sweep: {points: [{key.path: value}, ...]}) or use `fedsim run`")
    seeds = loaded.seeds()
    tasks = sweep_tasks(loaded.points, seeds)
    params = {p.name: p.params for p in loaded.points}
    try:
        executor.open(len(tasks))
    except ExecutorError as err:
        raise UserError(str(err)) from None
    try:
        return _sweep_with(args, executor, loaded, seeds, tasks, params)
    finally:
        executor.close()


def _sweep_with(args, executor, loaded, seeds, tasks, params) -> int:
    from .runner import ProgressLine, run_sweep, sweep_frame, sweep_point_table, write_sweep

    where = executor.describe()
    if executor.name == "dask":
        hint = "" if args.scheduler else " (started for this sweep; give --scheduler ADDRESS " \
                                         "to use a running cluster)"
        _note(args, f"running {len(tasks)} runs {where}{hint}")
        if getattr(executor, "nthreads", 0) > getattr(executor, "nworkers", 0):
            _note(args, "note: the Dask workers run several threads each; a run is pure Python, "
                        "so the threads of one worker share one core (start workers with "
                        "`dask worker ADDRESS --nworkers auto --nthreads 1` to use every core)")
    out = _out_dir(args, loaded.name, "sweep")
    line = ProgressLine(1.0) if _progress_wanted(args) else None
    failed = []
    done = [0]

    def on_done(i, res):
        done[0] += 1
        if not res.get("ok"):
            point, _, seed = tasks[i]
            failed.append((point, seed, res.get("error", "failed")))
            if line:
                line.close()
            at = ", ".join(f"{k}={v}" for k, v in params[point].items()) or point
            print(f"fedsim sweep: point {at} (seed {seed}) failed: {res.get('error')}",
                  file=sys.stderr)
        if line:
            line.tasks(done[0], len(tasks), len(failed))

    if line:
        line.tasks(0, len(tasks))
    outcome = run_sweep(tasks, on_done=on_done, executor=executor,
                        tick=(lambda: line.tasks(done[0], len(tasks), len(failed))) if line else None)
    if line:
        line.close()
    frame = sweep_frame(loaded.points, outcome)
    info = outcome.executor
    meta = {"command": "sweep", "scenario": loaded.name, "file": str(loaded.path),
            "overrides": list(args.set or []), "seeds": seeds,
            "executor": info.get("executor"), "workers": info.get("workers"),
            "scheduler": info.get("scheduler"),
            "points": [{"name": p.name, "params": p.params} for p in loaded.points],
            "runs": len(tasks), "finished": len(outcome.outputs),
            "failed": [{"point": n, "params": params[n], "seed": s, "error": e}
                       for n, s, e in failed],
            "interrupted": outcome.interrupted, "out": str(out)}
    doc = write_sweep(out, frame, meta)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{loaded.name}: {len(loaded.points)} points x {len(seeds)} replication"
              f"{'s' if len(seeds) != 1 else ''} {where}")
        table = sweep_point_table(frame)
        headers = ["point", "runs", "requests", "success", "p50 ms", "p99 ms", "retries/req"]
        rows = [[str(name), str(r["runs"]), str(int(r["requests"])), _pct(r["success_rate"]),
                 _ms(r["latency_p50"]), _ms(r["latency_p99"]), _num(r["retries_per_request"])]
                for name, r in table.iterrows()]
        print("\n".join(_table(headers, rows)))
        print("(means over seeds)")
        print(f"wrote {out}/ ({', '.join(doc['files'])})")
    rc = _auto_report(args, out, 0)
    if outcome.interrupted:
        print(f"interrupted: kept {len(outcome.outputs)} of {len(tasks)} runs in {out}",
              file=sys.stderr)
        return 130
    if failed:
        print(f"fedsim sweep: {len(failed)} of {len(tasks)} runs failed (see above); "
              f"the others are in {out}", file=sys.stderr)
        return 1
    return rc


# --------------------------------------------------------------------------- report


def _cmd_report(args) -> int:
    from .report import ReportError, build_report

    try:
        rep = build_report(args.results_dir)
    except ReportError as err:
        raise UserError(str(err)) from None
    html_path, md_path = rep.write()
    for alert in rep.alerts:
        print(f"fedsim report: {alert}", file=sys.stderr)
    for problem in rep.problems:
        _note(args, f"fedsim report: {problem}")
    print(f"wrote {html_path} and {md_path}")
    return 0


# --------------------------------------------------------------------------- validate / list / schema


def _cmd_validate(args) -> int:
    from .scenario import ScenarioError, load_scenario

    bad = 0
    for path in args.scenarios:
        try:
            loaded = load_scenario(path)
        except ScenarioError as err:
            bad += 1
            print(str(err), file=sys.stderr)
            continue
        n = max(len(loaded.points), 1)
        r = loaded.replications
        print(f"ok  {path} ({n} point{'s' if n != 1 else ''}, "
              f"{r} replication{'s' if r != 1 else ''})")
    return 2 if bad else 0


def _fault_descriptions() -> dict[str, str]:
    """Fault kinds with the one-line effects from fedsim.world.faults' table."""
    from .world import FAULT_KINDS
    from .world import faults

    table = {}
    for m in re.finditer(r"^\|\s*(\w+)\s*\|\s*(.+?)\s*\|\s*$", faults.__doc__ or "", re.M):
        table[m.group(1)] = m.group(2).replace("``", "`")
    return {k: table.get(k, "") for k in FAULT_KINDS}


def _cmd_check(args) -> int:
    from .testing import check_main

    return check_main(args.scenarios, junit=args.junit, overrides=args.set, quiet=args.quiet,
                      seed=args.seed, duration=args.duration, json_out=args.json)


def _cmd_baseline_save(args) -> int:
    from .testing import baseline_save_main

    return baseline_save_main(args.scenario, args.to, overrides=args.set, seed=args.seed,
                              duration=args.duration, quiet=args.quiet)


def _cmd_baseline_compare(args) -> int:
    from .testing import baseline_compare_main

    if not 0 <= args.tolerance < 10:
        print("fedsim baseline compare: --tolerance is a fraction, e.g. 0.05", file=sys.stderr)
        return 2
    return baseline_compare_main(args.scenario, args.against, tolerance=args.tolerance,
                                 overrides=args.set, confidence=args.confidence, seed=args.seed,
                                 duration=args.duration, json_out=args.json)


def _cmd_validate_theory(args) -> int:
    from .validation import validate_theory_main

    return validate_theory_main(args.quick, out=args.out, cases=args.case or None)


def _cmd_list(args) -> int:
    from .federation import FIX_DESCRIPTIONS, POLICIES, STRATEGIES
    from .world import ARRIVALS, DISTRIBUTIONS, SERVICE_MODELS

    def section(title, items):
        print(f"{title}:")
        for name, desc in items:
            print(f"  {name:<30} {desc}")

    section("strategies", ((n, d) for n, (_, d) in STRATEGIES.items()))
    section("policies", ((n, d) for n, (_, d) in POLICIES.items()))
    section("fixes", FIX_DESCRIPTIONS.items())
    section("fault kinds", _fault_descriptions().items())
    section("service models (any distribution is also a service-time model)",
            ((n, d) for n, (_, d) in SERVICE_MODELS.items()))
    section("distributions", ((n, d) for n, (_, d) in DISTRIBUTIONS.items()))
    section("arrival processes", ((n, d) for n, (_, d) in ARRIVALS.items()))
    from .executors import EXECUTORS, executor_names

    section("sweep executors (fedsim sweep --executor)",
            ((n, EXECUTORS[n][1]) for n in executor_names()))
    return 0


def _cmd_schema(args) -> int:
    from .scenario import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as err:
            raise UserError(f"--out {args.out}: cannot write ({err.strerror})") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    if args.requests <= 0:
        print("fedsim demo: --requests must be positive", file=sys.stderr)
        return 2
    run_demo(Path(args.out), requests=args.requests, seed=args.seed)
    return 0


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage errors: status 2, no traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _scenario_options(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("scenario", metavar="SCENARIO", help="scenario file (YAML)")
    p.add_argument("--out", metavar="DIR", help=out_help)
    p.add_argument("--seed", type=int, metavar="N",
                   help="first replication seed (default: the scenario's seed)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", default=[],
                   help="override a scenario value, e.g. --set router.strategy=random "
                        "(repeatable; the value is YAML)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or notes on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-report", action="store_true",
                   help="do not write report.html / report.md into the output folder")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fedsim", description="Simulate and benchmark federated "
                "model-inference routing with the APR Federation router.",
                epilog="exit status: 0 ok, 1 a run failed, 2 bad input, 130 interrupted")
    p.add_argument("--version", action="version", version=f"fedsim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario's replications; write tables, plots, summary",
                       description="Run every replication of SCENARIO and write requests/"
                       "attempts/timeseries/events.parquet, summary.json, summary.md, plots and "
                       "report.html / report.md.")
    _scenario_options(r, "output folder (default: results/<scenario>-<YYYYmmdd-HHMMSS>)")
    r.add_argument("--live", action="store_true", help="show a live dashboard while it runs")
    r.add_argument("--speed", type=float, metavar="X",
                   help="with --live: simulated seconds per wall second (default 10; 0: as fast "
                        "as possible)")
    r.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="write the tables to parquet in chunks while the runs go on and compute "
                        "percentiles from streaming sketches (+-0.5%% relative), for big runs in "
                        "little memory; default: on when the scenario is expected to make more "
                        "than 2,000,000 requests")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("compare", help="paired comparison of strategies and/or fixes",
                       description="Run each variant on the same seeds (common random numbers) "
                       "and compare them against the first one.")
    _scenario_options(c, "output folder (default: results/<scenario>-compare-<time>)")
    c.add_argument("--strategies", metavar="A,B,...", help="strategies to compare")
    c.add_argument("--fixes", metavar="F,...",
                   help="fix variants: none, all, a fix name, or a+b (several fixes at once)")
    c.set_defaults(func=_cmd_compare)

    s = sub.add_parser("sweep", help="run the sweep grid x replications in parallel",
                       description="Run every sweep point and replication on an executor "
                       "(local worker processes, this process, or a Dask cluster) and write one "
                       "combined table (sweep.csv, sweep.parquet), ordered by point and seed "
                       "whatever the executor.")
    _scenario_options(s, "output folder (default: results/<scenario>-sweep-<time>)")
    s.add_argument("--executor", metavar="NAME",
                   help="where the runs go: local (worker processes on this machine; the "
                        "default), inline (this process, one run after the other) or dask (a "
                        "Dask cluster; default when --scheduler is given), or one a package "
                        "registers (entry-point group fedsim.executors)")
    s.add_argument("--workers", type=int, metavar="N",
                   help=f"local: worker processes (default: the number of cores, "
                        f"{os.cpu_count()}); dask: with --scheduler, wait for N workers "
                        f"(default 1), without it, the size of the local Dask cluster")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask: address of a running Dask scheduler, e.g. tcp://host:8786 "
                        "(without it, a local Dask cluster is started for the sweep)")
    s.add_argument("--connect-timeout", type=float, metavar="S",
                   help="dask: seconds to wait for the scheduler and its workers (default 10)")
    s.set_defaults(func=_cmd_sweep)

    rp = sub.add_parser("report", help="write report.html and report.md for a results folder",
                        description="Read the outputs of `fedsim run`, `compare` or `sweep` in "
                        "RESULTS_DIR and write a self-contained report.html (plots embedded) and "
                        "report.md (with the plots as PNG files) into it.")
    rp.add_argument("results_dir", metavar="RESULTS_DIR", help="a folder written by run, "
                    "compare or sweep")
    rp.add_argument("--quiet", "-q", action="store_true", help="no notes on stderr")
    rp.set_defaults(func=_cmd_report)

    v = sub.add_parser("validate", help="check scenario files (sweep points included)")
    v.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    v.set_defaults(func=_cmd_validate)

    def _check_options(p) -> None:
        p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", default=[],
                       help="override a scenario value (repeatable; the value is YAML)")
        p.add_argument("--seed", type=int, metavar="N", help="first replication seed")
        p.add_argument("--duration", metavar="D", help="run each scenario for D (e.g. 30s) "
                       "instead of its own duration")

    ck = sub.add_parser("check", help="run scenarios and evaluate their assertions:",
                        description="Run each SCENARIO, evaluate its assertions: section and "
                        "print a pass/fail table with measured values and margins; exit 1 if "
                        "any assertion fails.")
    ck.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    ck.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    ck.add_argument("--quiet", "-q", action="store_true", help="only the failures")
    ck.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    _check_options(ck)
    ck.set_defaults(func=_cmd_check)

    bl = sub.add_parser("baseline", help="save or compare against a metrics baseline",
                        description="Baselines: summary metrics with replication intervals in "
                        "a small JSON file meant to be committed.")
    bsub = bl.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=_Parser)
    bs = bsub.add_parser("save", help="run SCENARIO and store its metrics")
    bs.add_argument("scenario", metavar="SCENARIO")
    bs.add_argument("--to", required=True, metavar="FILE", help="baseline file to write")
    bs.add_argument("--quiet", "-q", action="store_true")
    _check_options(bs)
    bs.set_defaults(func=_cmd_baseline_save)
    bc = bsub.add_parser("compare", help="rerun SCENARIO and compare with a baseline",
                         description="Rerun SCENARIO and report per metric a significant "
                         "regression, an improvement or noise; exit 1 on a significant "
                         "regression beyond the tolerance.")
    bc.add_argument("scenario", metavar="SCENARIO")
    bc.add_argument("--against", required=True, metavar="FILE", help="baseline file")
    bc.add_argument("--tolerance", type=float, default=0.05, metavar="X",
                    help="relative worsening allowed before a significant change fails "
                         "(default 0.05)")
    bc.add_argument("--confidence", type=float, default=0.95, metavar="C",
                    help="confidence level of the tests (default 0.95)")
    bc.add_argument("--json", action="store_true", help="print the report as JSON")
    _check_options(bc)
    bc.set_defaults(func=_cmd_baseline_compare)
    bl.set_defaults(func=lambda a: (bl.print_help(), 2)[1])

    vt = sub.add_parser("validate-theory", help="check the simulator against queueing theory",
                        description="Run the validation cases (M/M/1, M/M/c, M/G/1, round robin "
                        "GI/M/1, power-of-d and JSQ, Little's law) with fedsim's own world and "
                        "print simulated vs theoretical values with confidence intervals; exit 1 "
                        "on a failure.")
    vt.add_argument("--quick", action="store_true", help="the reduced suite that runs in CI")
    vt.add_argument("--out", metavar="PATH", help="write the table as CSV/JSON (a .csv or .json "
                    "file, or a folder for both)")
    vt.add_argument("--case", action="append", metavar="NAME",
                    help="run only this case (repeatable)")
    vt.set_defaults(func=_cmd_validate_theory)

    ls = sub.add_parser("list", help="list strategies, policies, fixes, fault kinds, models, ...")
    ls.set_defaults(func=_cmd_list)

    sc = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    sc.add_argument("--out", metavar="FILE", help="write it to FILE instead")
    sc.set_defaults(func=_cmd_schema)

    d = sub.add_parser("demo", help="run the router demo and write its summary")
    d.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    d.add_argument("--requests", type=int, default=3000, help="requests per variant (default 3000)")
    d.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from .scenario import ScenarioError
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    try:
        return args.func(args)
    except ScenarioError as err:
        print(str(err), file=sys.stderr)
        return 2
    except UserError as err:
        print(f"fedsim {args.command}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `fedsim list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
