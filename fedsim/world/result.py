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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import pandas as pd

from ..federation import GatewayStats


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

    def summary(self, warmup: Optional[float] = None) -> dict:
        """Headline numbers over requests that arrived after the warm-up."""
        if warmup is None:
            warmup = getattr(self.scenario, "warmup", 0.0)
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
