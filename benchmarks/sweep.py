"""Sweep wall time on 1, 2, ... local worker processes (and optionally a local Dask cluster):
speed-up and parallel efficiency of ``fedsim sweep``.

The sweep is CPU-bound and evenly loaded: ``points`` points (strategies x arrival rates) of a
16-node world, one replication each, every run a few seconds.  Each row is one complete sweep
as a user waits for it, worker start-up included (process spawn and imports; for Dask, the
local cluster's start and close).  ``speedup`` is the 1-worker wall time (the runs one after
the other in this process, as ``fedsim sweep --workers 1`` does) over the row's wall time;
``efficiency`` is speedup / workers.  Every row's combined table is checked against the first
one (``identical``): the executor must not change results.

    python benchmarks/sweep.py [--points 8] [--workers 1,2] [--duration 240] [--dask] [--repeat 3]

From Python (the caller's main module needs the ``if __name__ == "__main__":`` guard, since
worker processes are spawned): ``sweep.run(points=8, workers=(1, 2), repeat=3)`` returns the
rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from typing import Sequence

from fedsim.runner import run_sweep, sweep_frame, sweep_tasks
from fedsim.scenario.loader import SweepPoint
from fedsim.world import Scenario

NODES = 16
SERVICE_MEAN = 0.05  # s: each node serves 20 req/s, 320 req/s in all
STRATEGIES = ("random", "round_robin", "power_of_two_choices", "least_outstanding")
RATES = (150.0, 160.0, 170.0, 140.0)  # req/s, about half the capacity


def scenario(duration: float, strategy: str, rate: float) -> Scenario:
    return Scenario(
        name="bench-sweep", duration=duration, seed=1,
        regions=[{"id": "r"}], network={"intra_region_rtt": 0.0},
        nodes=[{"name": "gpu", "region": "r", "count": NODES,
                "models": [{"model": "llm", "capabilities": ["generate"]}],
                "service": {"*": {"kind": "exponential", "mean": SERVICE_MEAN}}}],
        router={"strategy": strategy, "fixes": ["strategies"]},
        workloads=[{"arrival": {"kind": "poisson", "rate": rate}}],
    )


def sweep_points(n: int, duration: float) -> list[SweepPoint]:
    """``n`` sweep points: every strategy at the first rate, then at the next rate, ..."""
    out = []
    for i in range(n):
        strategy = STRATEGIES[i % len(STRATEGIES)]
        rate = RATES[(i // len(STRATEGIES)) % len(RATES)] + 0.5 * (i // (len(STRATEGIES) * len(RATES)))
        params = {"router.strategy": strategy, "workloads[0].arrival.rate": rate}
        name = ",".join(f"{k}={v}" for k, v in params.items())
        out.append(SweepPoint(name, params, scenario(duration, strategy, rate)))
    return out


def _time_sweep(pts, executor: str, workers: int) -> tuple[float, float, "object"]:
    tasks = sweep_tasks(pts, [1])
    started = time.perf_counter()
    outcome = run_sweep(tasks, workers=workers, executor=executor)
    wall = time.perf_counter() - started
    if outcome.interrupted or len(outcome.outputs) != len(tasks):
        raise RuntimeError("the benchmark sweep did not finish")
    bad = [r["error"] for r in outcome.outputs.values() if not r.get("ok")]
    if bad:
        raise RuntimeError(f"a benchmark run failed: {bad[0]}")
    cpu = sum(r.get("cpu_s", 0.0) for r in outcome.outputs.values())
    return wall, cpu, sweep_frame(pts, outcome)


def run(points: int = 8, workers: Sequence[int] = (1, 2), duration: float = 240.0,
        dask: bool = False, repeat: int = 3) -> list[dict]:
    """Time the same sweep on the local executor with each number of ``workers`` (and, with
    ``dask``, on a local Dask cluster of the largest number), ``repeat`` rounds, the
    configurations alternating within each round; each row keeps its fastest round (other
    processes on the machine only ever slow a sweep down).  One row per configuration:

    ``executor``, ``workers``, ``runs``, ``wall_s`` (fastest whole sweep, start-up included),
    ``wall_s_all`` (every round), ``runs_per_s``, ``speedup`` (1-worker wall_s / wall_s),
    ``efficiency`` (speedup / workers), ``cpu_s`` (CPU seconds of the runs themselves in the
    fastest round, summed), ``busy`` (cpu_s / (wall_s x workers): the share of the workers'
    wall time spent simulating; well below 1 when other processes take the cores, or when
    start-up dominates), ``identical`` (every round's combined table equals the first one),
    ``cpus``, ``loadavg_1m`` (the 1-minute load average before the fastest round: other work
    skews the numbers) and ``when`` (UTC, the fastest round).  Without 1 in ``workers`` a
    1-worker row is added first (the baseline)."""
    pts = sweep_points(points, duration)
    plan = [("local", w) for w in workers]
    if dask:
        plan.append(("dask", max(workers)))
    if not any(w == 1 for _, w in plan):
        plan.insert(0, ("local", 1))  # the baseline
    rows = {key: None for key in plan}
    walls: dict = {key: [] for key in plan}
    first = None
    identical = True
    for _ in range(max(1, repeat)):
        for executor, w in plan:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            wall, cpu, frame = _time_sweep(pts, executor, w)
            if first is None:
                first = frame
            identical = identical and bool(frame.equals(first))
            walls[(executor, w)].append(wall)
            best = rows[(executor, w)]
            if best is None or wall < best["wall_s"]:
                rows[(executor, w)] = {
                    "executor": executor, "workers": w, "runs": len(frame), "wall_s": wall,
                    "runs_per_s": len(frame) / wall, "cpu_s": cpu, "busy": cpu / (wall * w),
                    "cpus": os.cpu_count(), "loadavg_1m": load,
                    "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
    base = rows[next(k for k in plan if k == ("local", 1))]["wall_s"]
    out = []
    for key in plan:
        r = rows[key]
        r["wall_s_all"] = walls[key]
        r["speedup"] = base / r["wall_s"]
        r["efficiency"] = r["speedup"] / r["workers"]
        r["identical"] = identical
        out.append(r)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--duration", type=float, default=240.0, help="simulated seconds per run")
    ap.add_argument("--dask", action="store_true", help="also time a local Dask cluster")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each row keeps its fastest")
    args = ap.parse_args(argv)
    workers = tuple(int(w) for w in args.workers.split(","))
    rows = run(points=args.points, workers=workers, duration=args.duration, dask=args.dask,
               repeat=args.repeat)
    print(f"sweep of {args.points} runs ({args.duration:g} simulated s each, {NODES} nodes), "
          f"{os.cpu_count()} cpus, fastest of {args.repeat} rounds")
    print(f"{'executor':<8} {'workers':>7} {'wall s':>8} {'runs/s':>7} {'speed-up':>9} "
          f"{'efficiency':>10} {'cpu s':>7} {'busy':>5} {'load':>5} {'same':>5}")
    for r in rows:
        print(f"{r['executor']:<8} {r['workers']:>7} {r['wall_s']:>8.2f} {r['runs_per_s']:>7.2f} "
              f"{r['speedup']:>8.2f}x {r['efficiency']:>10.2f} {r['cpu_s']:>7.2f} "
              f"{r['busy']:>5.2f} {r['loadavg_1m']:>5.2f} {'yes' if r['identical'] else 'NO':>5}")
    print("busy: CPU time of the runs / (wall time x workers); load: 1-minute load average "
          "before the sweep")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
