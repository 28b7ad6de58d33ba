"""Named, opt-in fixes for the reference's quirks (spec §8).

The default (:data:`NO_FIXES`) reproduces apr-cli 0.30 as shipped, so simulated results say
what the real router would do.  Each fix switches one documented quirk to the behaviour the
reference's docs or playbook promise, so users can measure what fixing it would change.
Fixes combine freely.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from typing import Iterable

FIX_DESCRIPTIONS: dict[str, str] = {
    "strategies": "RoundRobin rotates over the eligible pool, LeastConnections picks the fewest "
    "outstanding requests, ConsistentHash maps the request key onto a hash ring (Q-STUB-LB)",
    "seeded_weighted_random": "WeightedRandom draws from a seeded RNG instead of a hash of the "
    "wall clock (Q-WRANDOM)",
    "active_probes": "the health checker probes every node each check_interval, a probe slower "
    "than probe_timeout failing, so Unhealthy nodes can recover (Q-NOPROBE, Q-NORECOVER)",
    "half_open_single_probe": "a half-open circuit admits one probe request at a time and one "
    "success closes it (Q-HALFOPEN)",
    "eager_half_open": "Open turns HalfOpen reset_timeout after the circuit opened, whoever asks "
    "(state() included); failures while Open do not restart the timer (Q-LAZY-HALFOPEN)",
    "retry_excludes_tried": "retries avoid nodes already tried for the request while an untried "
    "one is eligible (Q-RETRY-NOEXCLUDE)",
    "capped_jittered_backoff": "retry backoff is exponential with full jitter (seeded), capped at "
    "backoff_cap (1 s, the playbook's max_retry_backoff_ms) (Q-BACKOFF)",
    "inference_timeout": "an execution longer than GatewayConfig.inference_timeout fails with "
    "Timeout at the deadline (Q-TIMEOUT)",
    "health_policy_scores": "HealthPolicy scores Healthy nodes healthy_score and Degraded nodes "
    "degraded_score (x weight) instead of the router's 1.0/0.5 (Q-HEALTH-POLICY)",
    "locality_from_origin": "requests carry an origin region; same-region candidates get "
    "locality 1.0 (+same_region_boost), others 0.0 (-cross_region_penalty) (Q-LOCALITY)",
    "cost_bands": "CostPolicy uses four tolerance bands (0-30 cheap, 31-50 balanced, 51-70 "
    "performance, 71-100 premium) blending region cost and latency (Q-COST)",
    "real_health_metrics": "p50/p99 are true percentiles over a sliding window, queue depth and "
    "throughput are what the gateway observes (Q-HEALTH-METRICS)",
}


@dataclass(frozen=True, slots=True)
class Fixes:
    """Which quirk fixes are on.  ``Fixes()`` is the reference as shipped."""

    strategies: bool = False
    seeded_weighted_random: bool = False
    active_probes: bool = False
    half_open_single_probe: bool = False
    eager_half_open: bool = False
    retry_excludes_tried: bool = False
    capped_jittered_backoff: bool = False
    inference_timeout: bool = False
    health_policy_scores: bool = False
    locality_from_origin: bool = False
    cost_bands: bool = False
    real_health_metrics: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def all(cls) -> "Fixes":
        return cls(**{n: True for n in cls.names()})

    @classmethod
    def none(cls) -> "Fixes":
        return cls()

    @classmethod
    def of(cls, names: Iterable[str] | str | None) -> "Fixes":
        """Build from names (a list or a comma-separated string).  ``none`` and ``all`` are
        accepted; an unknown name raises ``ValueError`` naming the closest valid one."""
        if names is None:
            return cls()
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        on: dict[str, bool] = {}
        valid = cls.names()
        for name in names:
            if name == "none":
                continue
            if name == "all":
                on.update({n: True for n in valid})
                continue
            if name not in valid:
                close = difflib.get_close_matches(name, valid + ("all", "none"), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown fix {name!r}{hint} Valid fixes: {', '.join(valid)}, all, none"
                )
            on[name] = True
        return cls(**on)

    def enabled(self) -> tuple[str, ...]:
        return tuple(n for n in self.names() if getattr(self, n))

    def with_(self, **changes: bool) -> "Fixes":
        return replace(self, **changes)

    def __bool__(self) -> bool:
        return any(getattr(self, n) for n in self.names())

    def __str__(self) -> str:
        return ",".join(self.enabled()) or "none"


NO_FIXES = Fixes()
ALL_FIXES = Fixes.all()
