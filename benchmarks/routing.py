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
least disturbed estimate).  ``cpu_us_*`` are the same loops timed by the thread's CPU
clock, which other load on the machine disturbs much less than wall time;
``changed_per_decision`` is the share of reports that changed what the router reads.
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


def _loop(router: Router, min_seconds: float, seed: int = 1) -> tuple[int, float, float, int]:
    """Route + report until ``min_seconds`` passed.

    Returns (decisions, wall seconds, thread CPU seconds, reports that changed a node)."""
    rng = random.Random(seed)
    # 50-400 ms per node, reported with +-50 % jitter: nearly every report moves the node's
    # p50 (an integer-ms EWMA), i.e. leaves a node changed for the next decision.
    base = {node: millis(rng.uniform(50, 400)) for node in router.health_checker.nodes()}
    jitter = [rng.uniform(0.5, 1.5) for _ in range(JITTER)]
    request = InferenceRequest(Capability.GENERATE, request_id="bench")
    route = router.route
    report = router.health_checker.report_success
    record = router.circuit_breaker.record_success
    changed = []
    k = 0

    def run(count: int) -> None:
        nonlocal k
        for _ in range(count):
            node = route(request).node_id
            report(node, int(base[node] * jitter[k % JITTER]))
            record(node)
            k += 1

    run(20)  # warm-up (builds the index on the incremental path)
    router.health_checker.listeners.append(changed.append)
    done, batch = 0, 10
    start, cpu = time.perf_counter(), time.thread_time()
    while True:
        run(batch)
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
        batch = min(batch * 2, 20_000)
    cpu = time.thread_time() - cpu
    router.health_checker.listeners.remove(changed.append)
    return done, elapsed, cpu, len(changed)


def measure(n_nodes: int, min_seconds: float = 1.0, repeats: int = 3) -> dict:
    """Both paths at ``n_nodes``, alternating, ``repeats`` runs each (fresh routers); the
    best run of each path by wall time and, separately, by CPU time."""
    per_run = min_seconds / repeats
    wall = {True: [], False: []}
    cpu = {True: [], False: []}
    changed = {True: 0.0, False: 0.0}
    for _ in range(repeats):
        for incremental in (True, False):
            done, elapsed, cpu_s, n_changed = _loop(build_router(n_nodes, incremental=incremental),
                                                    per_run)
            wall[incremental].append((elapsed / done * 1e6, done, elapsed))
            cpu[incremental].append(cpu_s / done * 1e6)
            changed[incremental] = n_changed / done
    us, done, elapsed = min(wall[True])
    us_full, done_full, elapsed_full = min(wall[False])
    return {
        "nodes": n_nodes,
        "decisions": done,
        "seconds": elapsed,
        "decisions_per_s": done / elapsed,
        "us_per_decision": us,
        "cpu_us_per_decision": min(cpu[True]),
        "decisions_per_s_full": done_full / elapsed_full,
        "us_per_decision_full": us_full,
        "cpu_us_per_decision_full": min(cpu[False]),
        "speedup": us_full / us,
        "changed_per_decision": changed[True],
    }


def run(sizes=(16, 128, 1024), min_seconds: float = 1.0) -> list[dict]:
    """One row per size: decision + report cost on the incremental and the full path."""
    return [measure(n, min_seconds) for n in sizes]


if __name__ == "__main__":  # pragma: no cover
    rows = run()
    base, cbase = rows[0]["us_per_decision"], rows[0]["cpu_us_per_decision"]
    print(f"{'nodes':>6} {'us/dec':>8} {'vs 16':>6} {'cpu us':>7} {'vs 16':>6} "
          f"{'full us/dec':>12} {'full cpu':>9} {'speedup':>8} {'changed':>8}")
    for r in rows:
        print(f"{r['nodes']:>6} {r['us_per_decision']:>8.2f} {r['us_per_decision'] / base:>5.2f}x "
              f"{r['cpu_us_per_decision']:>7.2f} {r['cpu_us_per_decision'] / cbase:>5.2f}x "
              f"{r['us_per_decision_full']:>12.1f} {r['cpu_us_per_decision_full']:>9.1f} "
              f"{r['speedup']:>7.0f}x {r['changed_per_decision']:>8.2f}")
