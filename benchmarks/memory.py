"""Peak memory of a big streamed run: 10 million requests in under 1.5 GiB.

``run(requests)`` simulates the 16-node benchmark world (:mod:`world`: Poisson arrivals at
160 req/s, exponential service, 16 nodes; ``requests / 160`` simulated seconds, so 10
million requests are 62,500 simulated seconds) with its tables streamed to parquet
(``World(..., stream_to=DIR)``) in a fresh subprocess, and reports that process's peak
resident set size (``ru_maxrss``) and wall time.  The parquet files go to a temporary
folder, removed afterwards unless ``keep`` names a folder.

    python benchmarks/memory.py [--requests 10000000] [--no-stream] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve().parent
LIMIT_MIB = 1536.0  # the bound: 1.5 GiB

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, {here!r})
    from world import RATE, scenario
    from fedsim.world import World

    requests, out = int(sys.argv[1]), sys.argv[2]
    sc = scenario(requests / RATE)
    t0 = time.perf_counter()
    result = World(sc, 1, stream_to=out if out != "-" else None).run()
    summary = result.summary()
    wall = time.perf_counter() - t0
    # VmHWM: this process's own peak.  ru_maxrss would also count the parent's resident size
    # at fork time (Linux keeps it across exec), e.g. a parent that just ran a big benchmark.
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:
        with open("/proc/self/status") as status:
            peak_kib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        pass
    print(json.dumps({{"requests": result.request_count, "simulated_seconds": sc.duration,
                      "wall_seconds": wall, "peak_rss_kib": peak_kib,
                      "rows": result.stream.rows if result.stream else None,
                      "latency_p50": summary["latency_p50"], "latency_p99": summary["latency_p99"],
                      "percentile_relative_error": summary.get("percentile_relative_error")}}))
""")


def run(requests: int = 10_000_000, stream: bool = True, keep: Optional[str] = None,
        timeout: Optional[float] = None) -> dict:
    """One run of about ``requests`` requests in a subprocess.  Returns ``requests``,
    ``simulated_seconds``, ``stream``, ``wall_seconds`` (of the simulation, in the child),
    ``process_seconds`` (the child process, start-up and imports included),
    ``us_per_request``, ``peak_rss_mib`` (the child's ru_maxrss), ``limit_mib`` (1536),
    ``within_limit``, ``parquet_mib`` (size of the four files), ``rows`` (per table),
    ``latency_p50`` / ``latency_p99`` (from the sketches, within
    ``percentile_relative_error``)."""
    with tempfile.TemporaryDirectory(prefix="fedsim-memory-") as tmp:
        out = Path(keep) if keep else Path(tmp) / "run"
        script = Path(tmp) / "child.py"
        script.write_text(CHILD.format(here=str(HERE)))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), str(int(requests)),
                               str(out) if stream else "-"],
                              capture_output=True, text=True, timeout=timeout)
        process_seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the benchmark run failed:\n{proc.stderr[-4000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in out.glob("*.parquet")) if stream else 0
    peak = row.pop("peak_rss_kib") / 1024.0
    row.update({
        "stream": stream,
        "process_seconds": process_seconds,
        "us_per_request": row["wall_seconds"] / max(row["requests"], 1) * 1e6,
        "peak_rss_mib": peak,
        "limit_mib": LIMIT_MIB,
        "within_limit": peak < LIMIT_MIB,
        "parquet_mib": size / 2**20,
    })
    return row


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--no-stream", dest="stream", action="store_false",
                    help="keep the tables in memory (the comparison; needs a lot of it)")
    ap.add_argument("--keep", metavar="DIR", help="write the parquet files to DIR and keep them")
    args = ap.parse_args(argv)
    row = run(args.requests, stream=args.stream, keep=args.keep)
    print(f"{row['requests']:,} requests ({row['simulated_seconds']:,.0f} simulated s), "
          f"{'streamed' if row['stream'] else 'kept in memory'}: peak RSS "
          f"{row['peak_rss_mib']:,.0f} MiB (limit {row['limit_mib']:,.0f}), wall "
          f"{row['wall_seconds']:,.0f} s ({row['us_per_request']:.1f} us/request), parquet "
          f"{row['parquet_mib']:,.0f} MiB")
    print(json.dumps(row, indent=2))
    return 0 if row["within_limit"] or not row["stream"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
