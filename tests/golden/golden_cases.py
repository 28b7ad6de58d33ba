"""Golden results: digests of whole runs, recorded before the performance work (issue 8).

Every optimisation must leave routing decisions and results unchanged.  ``digest(result)``
hashes every table of a run (floats as integer nanoseconds / 1e-9 units, strings as text),
so any changed decision, timing, retry or recorded value changes the digest.

    python tests/golden/golden_cases.py          # rewrite golden.json (only on purpose!)
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")
LONG = {"scenarios/diurnal_follow_the_sun.yaml", "scenarios/fleet_random_failures.yaml"}


def _scenario_files() -> list[str]:
    files = sorted(p for p in (ROOT / "scenarios").rglob("*.yaml") if "base" not in p.parts)
    return [str(p.relative_to(ROOT)) for p in files]


BENCH_STRATEGIES = ["least_latency", "round_robin", "least_connections", "weighted_random",
                    "consistent_hash", "random", "power_of_two_choices", "least_outstanding",
                    "peak_ewma", "bounded_load_consistent_hash"]


def cases() -> dict[str, tuple[str, list[str]]]:
    """name -> (scenario file, overrides)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for f in _scenario_files():
        out[f] = (f, ["duration=6m", "replications=1"] if f in LONG else ["replications=1"])
    for f in ("scenarios/region_outage_failover.yaml", "scenarios/flapping_node.yaml",
              "scenarios/hung_node_timeout.yaml"):
        out[f + "+all-fixes"] = (f, ["replications=1",
                                     "router.fixes=[all]"])
        out[f + "+strategies"] = (f, ["replications=1",
                                      "router.fixes=[strategies,seeded_weighted_random]",
                                      "router.strategy=least_connections"])
    # zero network delay (hops without timeouts) and exact ties (constant arrivals/service)
    out["zero-rtt:least_outstanding"] = ("scenarios/quickstart.yaml", [
        "network.intra_region_rtt=0s", "network.default_rtt=0s", "network.rtt={}",
        "router.strategy=least_outstanding"])
    out["zero-rtt-ties:round_robin"] = ("scenarios/quickstart.yaml", [
        "network.intra_region_rtt=0s", "network.default_rtt=0s", "network.rtt={}",
        "router.strategy=round_robin", "router.fixes=[strategies]",
        "workloads[0].arrival={kind: constant, rate: 20/s}", "sample_interval=0.5s",
        'nodes[0].service={"*": {kind: constant, value: 100ms}}',
        'nodes[1].service={"*": {kind: constant, value: 100ms}}'])
    for s in BENCH_STRATEGIES:
        out[f"steady:{s}"] = ("scenarios/steady_three_regions.yaml",
                              ["replications=1", f"router.strategy={s}",
                               "router.fixes=[strategies,seeded_weighted_random]"])
    return out


def _canon(col: pd.Series) -> bytes:
    if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
        return "\x1f".join("\x00" if v is None or (isinstance(v, float) and v != v) else str(v)
                           for v in col.tolist()).encode()
    if col.dtype.kind == "f":
        v = col.to_numpy(dtype=np.float64)
        nan = np.isnan(v)
        q = np.round(np.where(nan, 0.0, v) * 1e9).astype(np.int64)
        q[nan] = np.iinfo(np.int64).min
        return q.astype("<i8").tobytes()
    if col.dtype.kind == "b":
        return col.to_numpy(dtype=np.int8).tobytes()
    return col.to_numpy(dtype=np.int64).astype("<i8").tobytes()


def table_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for name in df.columns:
        h.update(name.encode() + b"\x1e")
        h.update(_canon(df[name]))
    return h.hexdigest()[:20]


def digest(result) -> dict:
    return {name: {"rows": len(getattr(result, name)), "sha": table_digest(getattr(result, name))}
            for name in ("requests", "attempts", "timeseries", "events")}


def run_case(name: str, seed: int = 1) -> dict:
    from fedsim.scenario import load_scenario
    from fedsim.world import run

    path, overrides = cases()[name]
    sc = load_scenario(ROOT / path, overrides=overrides).scenario
    return digest(run(sc, seed=seed))


if __name__ == "__main__":
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    doc = {"recorded_at_commit": commit, "seed": 1, "cases": {}}
    for name in cases():
        doc["cases"][name] = run_case(name)
        print(name, doc["cases"][name]["requests"], file=sys.stderr)
    GOLDEN.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
