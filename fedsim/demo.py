"""A small, deterministic demo of the router (the main job until the SimPy world lands).

Six nodes in three regions serve one model; one node goes down for a while.  Requests are
sent one after another through a real FederationGateway on a ManualClock, with a node
executor that draws service times from a seeded RNG.  The same requests and outages are
replayed for each variant (reference as shipped, and with fixes), so differences come
from routing alone.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .federation import (
    Capability,
    Failure,
    FederationError,
    Fixes,
    GatewayBuilder,
    GatewayConfig,
    InferenceRequest,
    InferenceResponse,
    ManualClock,
    NodeUnreachable,
    RouterConfig,
    Success,
    millis,
    seconds,
)

NODES = {  # node -> (region, median service time ms)
    "us-west-1": ("us-west", 40.0),
    "us-west-2": ("us-west", 55.0),
    "us-east-1": ("us-east", 70.0),
    "us-east-2": ("us-east", 45.0),
    "eu-west-1": ("eu-west", 90.0),
    "eu-west-2": ("eu-west", 60.0),
}
OUTAGE_NODE = "us-west-1"


@dataclass
class Variant:
    name: str
    strategy: str = "least_latency"
    fixes: Fixes = field(default_factory=Fixes)


DEFAULT_VARIANTS = (
    Variant("reference (as shipped)"),
    Variant("all fixes, least_latency", "least_latency", Fixes.all()),
    Variant("all fixes, round_robin", "round_robin", Fixes.all()),
)


@dataclass
class VariantResult:
    name: str
    strategy: str
    fixes: str
    requests: int
    successes: int
    success_rate: float
    mean_attempts: float
    latency_p50_ms: float
    latency_p99_ms: float
    share_by_node: dict
    sent_to_down_node: int
    outage_node_share_after: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[max(math.ceil(q * len(sorted_values)) - 1, 0)]


def run_variant(variant: Variant, requests: int = 3000, seed: int = 7,
                outage: tuple[float, float] = (60.0, 180.0), rate_per_s: float = 10.0) -> VariantResult:
    clock = ManualClock()
    service_rng = random.Random(seed)
    arrivals = random.Random(seed + 1)
    down_from, down_to = seconds(outage[0]), seconds(outage[1])
    sent_to_down = 0

    def executor(target, request):
        nonlocal sent_to_down
        node = target.node_id
        if node == OUTAGE_NODE and down_from <= clock.now_ns() < down_to:
            sent_to_down += 1
            return Failure(NodeUnreachable(node), millis(5))
        median = NODES[node][1]
        dur = millis(median * math.exp(0.4 * service_rng.gauss(0.0, 1.0)))
        return Success(InferenceResponse(b"ok", node, dur, 20), dur)

    def probe(node):
        return not (node == OUTAGE_NODE and down_from <= clock.now_ns() < down_to)

    gw = (GatewayBuilder().clock(clock).executor(executor).fixes(variant.fixes)
          .router_config(RouterConfig(strategy=variant.strategy, seed=seed))
          .config(GatewayConfig(seed=seed)).build())
    gw.health_checker.prober = probe
    for node, (region, _) in NODES.items():
        gw.router.catalog.register("llama-8b", node, region, [Capability.GENERATE])
        gw.health_checker.register_node(node)
    gw.health_checker.start_monitoring(seconds(10))

    attempts: dict[str, int] = {}
    gw.on_attempt = lambda ev: attempts.__setitem__(ev.request.request_id,
                                                    attempts.get(ev.request.request_id, 0) + 1)
    latencies: list[float] = []
    served: dict[str, int] = {n: 0 for n in NODES}
    ok = ok_after = outage_node_after = 0
    for i in range(requests):
        clock.advance(int(arrivals.expovariate(rate_per_s) * 1e9))
        start = clock.now_ns()
        rid = f"req-{i}"
        try:
            resp = gw.infer(InferenceRequest(Capability.GENERATE, request_id=rid, session_key=rid))
        except FederationError:
            continue
        ok += 1
        served[str(resp.served_by)] += 1
        if start >= down_to:
            ok_after += 1
            outage_node_after += resp.served_by == OUTAGE_NODE
        latencies.append((clock.now_ns() - start) / 1e6)
    latencies.sort()
    return VariantResult(
        name=variant.name, strategy=variant.strategy, fixes=str(variant.fixes),
        requests=requests, successes=ok, success_rate=ok / requests,
        mean_attempts=sum(attempts.values()) / requests,
        latency_p50_ms=_percentile(latencies, 0.50), latency_p99_ms=_percentile(latencies, 0.99),
        share_by_node={n: c / max(ok, 1) for n, c in served.items()},
        sent_to_down_node=sent_to_down,
        outage_node_share_after=outage_node_after / max(ok_after, 1),
    )


def run_demo(out_dir: Optional[Path] = None, requests: int = 3000, seed: int = 7,
             variants=DEFAULT_VARIANTS, echo=print) -> list[VariantResult]:
    results = [run_variant(v, requests=requests, seed=seed) for v in variants]
    echo(f"fedsim router demo: {requests} requests at 10/s over {len(NODES)} nodes in 3 regions; "
         f"{OUTAGE_NODE} down from 60 s to 180 s (seed {seed})\n")
    header = (f"{'variant':<28} {'success':>8} {'attempts':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'sent to down':>13} {'back after':>11}")
    echo(header)
    echo("-" * len(header))
    for r in results:
        echo(f"{r.name:<28} {r.success_rate:>8.2%} {r.mean_attempts:>9.3f} {r.latency_p50_ms:>8.1f} "
             f"{r.latency_p99_ms:>8.1f} {r.sent_to_down_node:>13} {r.outage_node_share_after:>11.1%}")
    echo(f"\nattempts: mean attempts per request; latency: end to end, backoff included;\n"
         f"sent to down: attempts sent to {OUTAGE_NODE} during its outage;\n"
         f"back after: share of requests {OUTAGE_NODE} served after the outage ended "
         f"(0% = never back in rotation, spec Q-NORECOVER)")
    echo("\nshare of successful requests by node:")
    echo(f"{'variant':<28} " + " ".join(f"{n:>10}" for n in NODES))
    for r in results:
        echo(f"{r.name:<28} " + " ".join(f"{r.share_by_node[n]:>10.1%}" for n in NODES))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "demo_summary.json"
        path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
        echo(f"\nwrote {path}")
    return results
