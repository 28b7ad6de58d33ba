"""Cost of the whole stack against run size, and of recording one row.

``run(sizes)`` simulates the 16-node benchmark world (:mod:`world`: Poisson 160 req/s,
exponential service, 16 nodes) for ``size / 160`` simulated seconds at each size and reports
the cost per request.  Linear cost (no hidden quadratic work) shows as a flat cost per
request across sizes: ``relative`` is each size's cost per request over the smallest
size's.  CPU seconds of this process (``time.process_time``) are reported next to wall
seconds: on a machine shared with other work they are the steadier measure.

``recorder_append(rows)`` times recording rows of the requests table's 22 columns with the
current recorder (row tuples, bulk conversion per chunk) and with the previous per-cell
recorder (one ``array.array`` per column, kept here as ``CellTable`` for the comparison),
appends plus the final ``frame()``, in the same process, alternating, best of ``repeat``.

    python benchmarks/scaling.py [--sizes 10000,100000,1000000] [--stream]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world import RATE, scenario  # noqa: E402

from fedsim.world import World  # noqa: E402
from fedsim.world.recorder import Table  # noqa: E402
from fedsim.world.simulation import REQUESTS  # noqa: E402


def run_once(requests: int, stream: bool = False, seed: int = 1) -> dict:
    """One run of about ``requests`` requests; the whole stack, summary included."""
    sc = scenario(requests / RATE)
    with tempfile.TemporaryDirectory(prefix="fedsim-scaling-") as tmp:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = World(sc, seed, stream_to=tmp if stream else None).run()
        summary = result.summary()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = result.request_count
    return {"requests": n, "simulated_seconds": sc.duration, "stream": stream,
            "wall_seconds": wall, "cpu_seconds": cpu,
            "us_per_request": wall / n * 1e6, "cpu_us_per_request": cpu / n * 1e6,
            "latency_p99": summary["latency_p99"]}


def run(sizes: Sequence[int] = (10_000, 100_000, 1_000_000), stream: bool = False,
        repeat: int = 1) -> list[dict]:
    """Per size (ascending): ``requests``, ``simulated_seconds``, ``stream``,
    ``wall_seconds``, ``cpu_seconds``, ``us_per_request``, ``cpu_us_per_request`` (best of
    ``repeat`` runs), ``latency_p99`` and ``relative`` / ``cpu_relative`` (cost per request
    over the smallest size's; 1.0 everywhere = linear)."""
    rows = []
    for size in sorted(sizes):
        runs = [run_once(size, stream) for _ in range(max(repeat, 1))]
        best = min(runs, key=lambda r: r["cpu_seconds"])
        best["wall_seconds"] = min(r["wall_seconds"] for r in runs)
        best["us_per_request"] = best["wall_seconds"] / best["requests"] * 1e6
        rows.append(best)
    base = rows[0] if rows else None
    for r in rows:
        r["relative"] = r["us_per_request"] / base["us_per_request"]
        r["cpu_relative"] = r["cpu_us_per_request"] / base["cpu_us_per_request"]
    return rows


# --------------------------------------------------------------------------- recorder


class CellTable:
    """The previous recorder: one typed ``array`` per column, appended cell by cell, strings
    interned as category codes (kept only to measure against)."""

    def __init__(self, schema: dict[str, str]) -> None:
        self.schema = dict(schema)
        self._cols: dict[str, array] = {}
        self._cats: dict[str, dict] = {}
        for name, kind in schema.items():
            self._cols[name] = array({"f": "d", "t": "d", "i": "q", "b": "b", "s": "i"}[kind])
            if kind == "s":
                self._cats[name] = {}
        self._order = list(schema)

    def append(self, *values) -> None:
        cols, cats = self._cols, self._cats
        for name, v in zip(self._order, values):
            cat = cats.get(name)
            if cat is not None:
                if v is None:
                    code = -1
                else:
                    code = cat.get(v)
                    if code is None:
                        code = cat[v] = len(cat)
                cols[name].append(code)
            else:
                cols[name].append(float("nan") if v is None else v)

    def frame(self) -> pd.DataFrame:
        data = {}
        for name in self._order:
            kind, buf = self.schema[name], self._cols[name]
            if kind == "s":
                codes = np.frombuffer(buf, dtype=np.int32).copy()
                data[name] = pd.Categorical.from_codes(codes, categories=list(self._cats[name]))
            elif kind in ("f", "t"):
                data[name] = np.frombuffer(buf, dtype=np.float64).copy()
            elif kind == "i":
                data[name] = np.frombuffer(buf, dtype=np.int64).copy()
            else:
                data[name] = np.frombuffer(buf, dtype=np.int8) != 0
        return pd.DataFrame(data, columns=self._order)


def _fill(table, rows: int, nodes: int = 16) -> float:
    """Append ``rows`` request-like rows as the world does (fresh numbers and ids per row,
    repeated strings); returns the thread CPU seconds of the appends.  Times are what each
    recorder takes: float seconds for the per-cell one, integer ns for :class:`Table`'s
    time columns (kind ``"t"``)."""
    node_ids = [f"gpu-{k}" for k in range(nodes)]
    append = table.append
    scale = 1_000_000_000 if isinstance(table, Table) else 1

    def t(seconds: float):
        return round(seconds * scale) if scale != 1 else seconds

    t0 = time.thread_time()
    for i in range(rows):
        ok = i % 50 != 0
        append(i, f"workload-{i}", "workload", t(i * 0.00625), "generate", "default", "r",
               "internal", 50, "gw-r", "success" if ok else "failed",
               None if ok else "NodeUnreachable", t(0.05 + (i % 97) * 1e-3) if ok else t(0.2),
               None, 1 if ok else 4, node_ids[i % nodes] if ok else None, "r" if ok else None,
               t((i % 13) * 1e-3) if ok else None, t(0.05) if ok else None,
               t(0.0) if ok else None, 256, 128)
    return time.thread_time() - t0


class _NoTable:
    """Takes the rows and does nothing: the cost of building the arguments and calling."""

    def __init__(self, schema) -> None:
        pass

    def append(self, *values) -> None:
        pass

    def frame(self) -> None:
        return None


def recorder_append(rows: int = 200_000, repeat: int = 5) -> dict:
    """Cost of recording one 22-column request row, appends plus the final ``frame()``,
    previous per-cell recorder vs the current one, net of building the row's values and
    calling (measured with a table that does nothing, ``call_us_per_row``).  Returns
    ``rows``, ``columns``, ``call_us_per_row``, ``old_us_per_row``, ``new_us_per_row``,
    ``new_append_us_per_row`` (appends with their chunk conversions, without the final
    frame), ``speedup`` (old / new).  Thread CPU time, best of ``repeat`` alternating runs."""
    best = {k: (float("inf"), 0.0) for k in ("call", "old", "new")}
    for _ in range(max(repeat, 1)):
        for label, cls in (("call", _NoTable), ("old", CellTable), ("new", Table)):
            t = cls(REQUESTS)
            appends = _fill(t, rows)
            t0 = time.thread_time()
            t.frame()
            total = appends + time.thread_time() - t0
            if total < best[label][0]:
                best[label] = (total, appends)
            del t
    call = best["call"][0]
    old, new = best["old"][0] - call, best["new"][0] - call
    return {"rows": rows, "columns": len(REQUESTS), "call_us_per_row": call / rows * 1e6,
            "old_us_per_row": old / rows * 1e6, "new_us_per_row": new / rows * 1e6,
            "new_append_us_per_row": (best["new"][1] - call) / rows * 1e6,
            "speedup": old / new}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--stream", action="store_true", help="streamed runs (tables to parquet)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    rec = recorder_append()
    print(f"recording a {rec['columns']}-column request row: previous {rec['old_us_per_row']:.2f} us, "
          f"now {rec['new_us_per_row']:.2f} us ({rec['new_append_us_per_row']:.2f} us without "
          f"the final frame), {rec['speedup']:.1f}x")
    rows = run([int(s) for s in args.sizes.split(",")], stream=args.stream, repeat=args.repeat)
    print(f"{'requests':>10} {'wall s':>8} {'cpu s':>8} {'us/req':>8} {'cpu us/req':>11} "
          f"{'relative':>9} {'cpu rel.':>9}")
    for r in rows:
        print(f"{r['requests']:>10,} {r['wall_seconds']:>8.1f} {r['cpu_seconds']:>8.1f} "
              f"{r['us_per_request']:>8.1f} {r['cpu_us_per_request']:>11.1f} "
              f"{r['relative']:>9.2f} {r['cpu_relative']:>9.2f}")
    print(json.dumps({"recorder": rec, "scaling": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
