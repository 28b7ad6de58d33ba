"""Single entry point for fedsim's benchmarks: prints a table and saves it as JSON.

    python benchmarks/run.py [--quick] [--out benchmarks/results/latest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import routing  # noqa: E402
import world  # noqa: E402


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.2 s per measurement instead of 2 s")
    ap.add_argument("--out", default="benchmarks/results/latest.json")
    args = ap.parse_args(argv)
    seconds = 0.2 if args.quick else 2.0
    rows = routing.run(min_seconds=seconds)
    base = rows[0]["us_per_decision"]
    print("routing decisions (reference semantics: enterprise policy, LeastLatency)")
    print(f"{'nodes':>6} {'decisions/s':>12} {'us/decision':>12} {'cost vs 16':>11}")
    for r in rows:
        print(f"{r['nodes']:>6} {r['decisions_per_s']:>12,.0f} {r['us_per_decision']:>12.1f} "
              f"{r['us_per_decision'] / base:>10.1f}x")
    sim = world.run_benchmark(duration=60.0 if args.quick else 300.0)
    print("\nwhole-stack simulation vs bare SimPy M/M/c (16 servers, Poisson 160/s, exp. service 50 ms)")
    print(f"{'model':<28} {'requests':>9} {'wall s':>8} {'sim req/s':>10}")
    for label, key in (("fedsim world (reference)", "whole_stack"), ("bare SimPy M/M/c", "bare_simpy_mmc")):
        r = sim[key]
        print(f"{label:<28} {r['requests']:>9,} {r['seconds']:>8.2f} {r['requests_per_s']:>10,.0f}")
    print(f"ratio (fedsim / bare): {sim['ratio']:.2f}")
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "routing": rows,
        "world": sim,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
