"""Routing micro-benchmark: cost per decision at 16, 128 and 1,024 candidate nodes.

Reference semantics (enterprise policy, LeastLatency, no fixes).  Each node is a deployment
of one model, registered with the health checker and given a few latency reports, so
candidates carry realistic, distinct scores.

The measured loop is what a gateway does per request: route it, then report a success
with a latency for the chosen node to the health checker and the breaker.  So every
decision leaves one node changed for the next one.  ``us_per_decision`` is that loop on
the default (incremental, :mod:`fedsim.federation.index`) path, ``us_per_decision_full``
on the full path (``RouterConfig(incremental=False)``), which builds, scores and sorts
every candidate per decision.  Both are measured in the same process, alternating, several
times each; the best run of each counts (the machine is shared, so the minimum is the
least disturbed estimate).
"""

from __future__ import annotations

import random
import time

from fedsim.federation import (
    Capability,
    CircuitBreaker,
    HealthChecker,
    InferenceRequest,
    ManualClock,
    ModelCatalog,
    Router,
    RouterConfig,
    millis,
)

JITTER = 257  # length of the cycle of latency jitter factors


def build_router(n_nodes: int, seed: int = 0, incremental: bool = True) -> Router:
    rng = random.Random(seed)
    clock = ManualClock()
    catalog, health = ModelCatalog(), HealthChecker(clock=clock)
    breaker = CircuitBreaker(clock=clock)
    for i in range(n_nodes):
        node = f"node-{i:04d}"
        catalog.register("llm", node, f"region-{i % 4}", [Capability.GENERATE])
        health.register_node(node)
        for _ in range(rng.randint(0, 4)):
            health.report_success(node, millis(rng.uniform(5, 400)))
    config = RouterConfig(incremental=incremental)
    return Router(config, catalog, health, breaker, clock=clock)


def _loop(router: Router, min_seconds: float, seed: int = 1) -> tuple[int, float]:
    """Route + report until ``min_seconds`` passed; returns (decisions, seconds)."""
    rng = random.Random(seed)
    base = {node: millis(rng.uniform(5, 400)) for node in router.health_checker.nodes()}
    jitter = [rng.uniform(0.8, 1.25) for _ in range(JITTER)]
    request = InferenceRequest(Capability.GENERATE, request_id="bench")
    route = router.route
    report = router.health_checker.report_success
    record = router.circuit_breaker.record_success
    k = 0

    def run(count: int) -> None:
        nonlocal k
        for _ in range(count):
            node = route(request).node_id
            report(node, int(base[node] * jitter[k % JITTER]))
            record(node)
            k += 1

    run(20)  # warm-up (builds the index on the incremental path)
    done, batch = 0, 10
    start = time.perf_counter()
    while True:
        run(batch)
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done, elapsed
        batch = min(batch * 2, 20_000)


def measure(n_nodes: int, min_seconds: float = 1.0, repeats: int = 3) -> dict:
    """Both paths at ``n_nodes``, alternating, ``repeats`` runs each (fresh routers)."""
    per_run = min_seconds / repeats
    best = {True: None, False: None}
    for _ in range(repeats):
        for incremental in (True, False):
            done, elapsed = _loop(build_router(n_nodes, incremental=incremental), per_run)
            us = elapsed / done * 1e6
            if best[incremental] is None or us < best[incremental][2]:
                best[incremental] = (done, elapsed, us)
    done, elapsed, us = best[True]
    full = best[False]
    return {
        "nodes": n_nodes,
        "decisions": done,
        "seconds": elapsed,
        "decisions_per_s": done / elapsed,
        "us_per_decision": us,
        "decisions_per_s_full": full[0] / full[1],
        "us_per_decision_full": full[2],
        "speedup": full[2] / us,
    }


def run(sizes=(16, 128, 1024), min_seconds: float = 1.0) -> list[dict]:
    """One row per size: decision + report cost on the incremental and the full path."""
    return [measure(n, min_seconds) for n in sizes]


if __name__ == "__main__":  # pragma: no cover
    rows = run()
    base = rows[0]["us_per_decision"]
    print(f"{'nodes':>6} {'us/decision':>12} {'vs 16':>6} {'full us/dec':>12} {'speedup':>8}")
    for r in rows:
        print(f"{r['nodes']:>6} {r['us_per_decision']:>12.2f} {r['us_per_decision'] / base:>5.2f}x "
              f"{r['us_per_decision_full']:>12.1f} {r['speedup']:>7.1f}x")
