"""Single entry point for fedsim's benchmarks: one table (metric, fedsim, baseline, ratio,
target, pass/fail), printed and saved as JSON with the machine it ran on.

    python benchmarks/run.py                 # everything, ~15 min on 2 cores (10M-request run included)
    python benchmarks/run.py --quick         # short measurements; memory at 1M requests
    python benchmarks/run.py --only routing,world
    python benchmarks/run.py --markdown benchmarks/results/latest.json   # the README table

Every ratio is measured side by side in this one process (or its children), so load from
other work on the machine affects both sides; the JSON keeps every raw measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTIONS = ("world", "routing", "scaling", "memory", "sweep")


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:  # the model name is more telling than "x86_64"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": cpu,
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }


def row(metric: str, fedsim: float, baseline: float, unit: str, target: str,
        ok: bool, ratio: float | None = None, note: str = "") -> dict:
    return {"metric": metric, "fedsim": fedsim, "baseline": baseline, "unit": unit,
            "ratio": (fedsim / baseline if baseline else float("nan")) if ratio is None else ratio,
            "target": target, "pass": bool(ok), "note": note}


def bench_world(quick: bool) -> tuple[list[dict], dict]:
    import world

    sim = world.run_benchmark(duration=60.0 if quick else 300.0, repeat=5)
    s, b = sim["whole_stack"], sim["bare_simpy_mmc"]
    r = row("whole stack, simulated requests/s (16 nodes, Poisson, exp. service, metrics on)",
            s["requests_per_s"], b["requests_per_s"], "req/s", ">= 0.5", sim["ratio"] >= 0.5,
            note="baseline: bare SimPy M/M/c (one Resource, 16 servers), same arrivals and service")
    return [r], sim


def bench_routing(quick: bool) -> tuple[list[dict], list]:
    import routing

    rows = routing.run(min_seconds=0.3 if quick else 2.0)
    by = {r["nodes"]: r for r in rows}
    inc = by[1024]["us_per_decision"] / by[16]["us_per_decision"]
    full = by[1024]["us_per_decision_full"] / by[16]["us_per_decision_full"]
    out = [
        row("routing cost per decision at 1,024 vs 16 nodes (incremental index)",
            by[1024]["us_per_decision"], by[16]["us_per_decision"], "us/decision", "<= 2.0",
            inc <= 2.0, inc, note="each decision followed by the health/breaker report it causes"),
        row("routing cost per decision at 1,024 vs 16 nodes (full rebuild, reference algorithm)",
            by[1024]["us_per_decision_full"], by[16]["us_per_decision_full"], "us/decision",
            "(before)", True, full, note="the spec's algorithm, kept as RouterConfig(incremental=False)"),
        row("routing at 1,024 nodes: full rebuild (fedsim column) vs index (baseline column)",
            by[1024]["us_per_decision_full"], by[1024]["us_per_decision"], "us/decision",
            "(info: speed-up)", True, note="full-path cost / index cost"),
    ]
    return out, rows


def bench_scaling(quick: bool) -> tuple[list[dict], list]:
    import scaling

    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    rows = scaling.run(sizes=sizes)
    small, big = rows[0], rows[-1]
    rel = big["cpu_us_per_request"] / small["cpu_us_per_request"]
    out = [row(f"CPU cost per request at {big['requests']:,} vs {small['requests']:,} requests",
               big["cpu_us_per_request"], small["cpu_us_per_request"], "us/request",
               "<= 1.25 (linear)", rel <= 1.25, rel,
               note="whole stack incl. the final tables and summary")]
    return out, rows


def bench_memory(quick: bool) -> tuple[list[dict], dict]:
    import memory

    n = 1_000_000 if quick else 10_000_000
    r = memory.run(requests=n)
    out = [row(f"peak memory of a {n:,}-request run (streamed to parquet)",
               r["peak_rss_mib"], r["limit_mib"], "MiB", "< 1.0 (1.5 GiB)",
               r["peak_rss_mib"] < r["limit_mib"],
               note=f"{r['requests']:,} requests in {r['wall_seconds']:.0f} s; "
                    "percentiles from sketches, +-0.5 % relative")]
    return out, r


def bench_sweep(quick: bool) -> tuple[list[dict], list]:
    import sweep

    rows = sweep.run(points=4 if quick else 16, workers=(1, 2),
                     duration=60.0 if quick else 240.0, dask=True)
    local2 = next(r for r in rows if r["executor"] == "local" and r["workers"] == 2)
    dask = next(r for r in rows if r["executor"] == "dask")
    out = [
        row("sweep speed-up, 2 local worker processes vs 1", local2["speedup"], 2.0, "x",
            ">= 0.8 of linear", local2["efficiency"] >= 0.8, local2["efficiency"],
            note=f"{local2['runs']} runs; load average before: {local2['loadavg_1m']:.1f}"),
        row("sweep on a local Dask cluster (2 workers): speed-up vs 1 local worker, same results",
            dask["speedup"], 2.0, "x", "identical results", bool(dask["identical"]),
            dask["efficiency"], note="combined table equal to the local run's"),
    ]
    return out, rows


def render(report: dict) -> str:
    """The table as Markdown (for the README)."""
    lines = ["| metric | fedsim | baseline | ratio | target | pass |",
             "|---|---:|---:|---:|---|:---:|"]
    for r in report["table"]:
        unit = r["unit"]
        lines.append(f"| {r['metric']} | {_num(r['fedsim'])} {unit} | {_num(r['baseline'])} {unit} "
                     f"| {r['ratio']:.2f} | {r['target']} | {'yes' if r['pass'] else '**no**'} |")
    m = report["machine"]
    lines.append("")
    lines.append(f"Measured {report['when'][:10]} on {m['cpus']} CPUs ({m['processor']}, "
                 f"{m['system']}), {m['implementation']} {m['python']}.")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short measurements (minutes, not ~15)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--markdown", metavar="JSON", help="print the README table of a saved run")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other sections of an existing --out file (rerun some only)")
    args = ap.parse_args(argv)
    if args.markdown:
        print(render(json.loads(Path(args.markdown).read_text())))
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    funcs = {"world": bench_world, "routing": bench_routing, "scaling": bench_scaling,
             "memory": bench_memory, "sweep": bench_sweep}
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "quick": args.quick, "table": [], "raw": {}}
    sections: dict[str, list] = {}
    if args.merge and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        sections = old.get("sections", {})
        report["raw"] = {k: v for k, v in old.get("raw", {}).items() if k not in only}
    for name in SECTIONS:
        if name not in only:
            continue
        t0 = time.perf_counter()
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        try:
            rows, raw = funcs[name](args.quick)
        except Exception as err:  # one broken section must not lose the others' numbers
            print(f"[{name}] FAILED: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            rows = [row(f"{name}: benchmark failed ({type(err).__name__})", float("nan"),
                        float("nan"), "", "runs", False, float("nan"), note=str(err)[:300])]
            raw = {"error": f"{type(err).__name__}: {err}"}
        sections[name] = rows
        report["raw"][name] = raw
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    report["sections"] = {name: sections[name] for name in SECTIONS if name in sections}
    report["table"] = [r for name in SECTIONS for r in sections.get(name, [])]
    width = max(len(r["metric"]) for r in report["table"])
    print(f"\n{'metric':<{width}}  {'fedsim':>12}  {'baseline':>12}  {'ratio':>6}  {'target':<18} pass")
    for r in report["table"]:
        print(f"{r['metric']:<{width}}  {_num(r['fedsim']):>12}  {_num(r['baseline']):>12}  "
              f"{r['ratio']:>6.2f}  {r['target']:<18} {'PASS' if r['pass'] else 'FAIL'}")
    m = report["machine"]
    print(f"\n{m['cpus']} CPUs, {m['processor']}, {m['system']}, {m['implementation']} {m['python']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
