"""Routing micro-benchmark: decisions per second at 16, 128 and 1,024 candidate nodes.

Reference semantics (enterprise policy, LeastLatency, no fixes): every decision builds,
scores and sorts all candidates, so the cost per decision grows linearly with the number
of nodes (issue 8 will keep scores incrementally up to date).

Each node is a deployment of one model, registered with the health checker and given a
few latency reports, so candidates carry realistic, distinct scores.
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


def build_router(n_nodes: int, seed: int = 0) -> Router:
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
    return Router(RouterConfig(), catalog, health, breaker, clock=clock)


def decisions_per_second(n_nodes: int, min_seconds: float = 1.0) -> dict:
    router = build_router(n_nodes)
    request = InferenceRequest(Capability.GENERATE, request_id="bench")
    route = router.route
    for _ in range(20):  # warm-up
        route(request)
    done, batch = 0, 10
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            route(request)
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
        batch = min(batch * 2, 10_000)
    return {
        "nodes": n_nodes,
        "decisions": done,
        "seconds": elapsed,
        "decisions_per_s": done / elapsed,
        "us_per_decision": elapsed / done * 1e6,
    }


def run(sizes=(16, 128, 1024), min_seconds: float = 1.0) -> list[dict]:
    return [decisions_per_second(n, min_seconds) for n in sizes]
