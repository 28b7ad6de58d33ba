"""Faults: scheduled or random (MTBF/MTTR), applied to the live node and network state.

| kind | effect while active |
|---|---|
| crash | requests in the node fail, new ones are refused |
| hang | requests are accepted and never answered (black hole) |
| slow | service time x factor |
| error_rate | a fraction ``rate`` of requests fail after service |
| flapping | crash for ``down`` seconds out of every ``period`` |
| gpu_throttle | speed x factor (0 < factor <= 1) |
| region_outage | every node of the region crashes |
| partition | hops between the two regions fail after ``partition_timeout`` |

Random faults draw exponential up and down times per target node from the fault stream,
which does not depend on routing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .clock import ns
from .scenario import FaultSpec

if TYPE_CHECKING:  # pragma: no cover
    from .node import Node
    from .simulation import World


class Fault:
    def __init__(self, world: "World", spec: FaultSpec, index: int) -> None:
        self.world = world
        self.spec = spec
        self.index = index
        self.label = spec.target if spec.kind != "partition" else "<->".join(spec.regions)

    def targets(self) -> list["Node"]:
        w, s = self.world, self.spec
        if s.kind == "region_outage":
            return [n for n in w.nodes.values() if n.region == s.target]
        if s.target in w.nodes:
            return [w.nodes[s.target]]
        return [w.nodes[n] for n in w.groups[s.target]]

    # -------------------------------------------------------------- apply / revert
    def apply(self, nodes) -> None:
        s = self.spec
        if s.kind == "partition":
            self.world.network.partition(*s.regions)
            return
        for n in nodes:
            if s.kind in ("crash", "region_outage", "flapping"):
                n.crash()
            elif s.kind == "hang":
                n.hung += 1
            elif s.kind == "slow":
                n.slow *= s.factor
            elif s.kind == "gpu_throttle":
                n.throttle *= s.factor
            elif s.kind == "error_rate":
                n.error_rates.append(s.rate)

    def revert(self, nodes) -> None:
        s = self.spec
        if s.kind == "partition":
            self.world.network.heal(*s.regions)
            return
        for n in nodes:
            if s.kind in ("crash", "region_outage", "flapping"):
                n.restore()
            elif s.kind == "hang":
                n.hung = max(n.hung - 1, 0)
            elif s.kind == "slow":
                n.slow /= s.factor
            elif s.kind == "gpu_throttle":
                n.throttle /= s.factor
            elif s.kind == "error_rate":
                n.error_rates.remove(s.rate)

    # -------------------------------------------------------------- processes
    def start(self) -> None:
        env = self.world.env
        if self.spec.mtbf is not None:
            nodes = self.targets() if self.spec.kind != "partition" else [None]
            for node in nodes:
                env.process(self._random(node))
        elif self.spec.kind == "flapping":
            env.process(self._flapping())
        else:
            env.process(self._scheduled())

    def _event(self, what: str, label: str) -> None:
        self.world.recorder.event(self.world.env.now, "fault", self.spec.kind, label, what, "")

    def _scheduled(self):
        env, s = self.world.env, self.spec
        yield env.timeout(ns(s.at))
        nodes = self.targets() if s.kind != "partition" else []
        self.apply(nodes)
        self._event("start", self.label)
        if s.duration is None:
            return
        yield env.timeout(ns(s.duration))
        self.revert(nodes)
        self._event("end", self.label)

    def _flapping(self):
        env, s = self.world.env, self.spec
        yield env.timeout(ns(s.at))
        end = None if s.duration is None else env.now + ns(s.duration)
        nodes = self.targets()
        up, down = ns(s.period - s.down), ns(s.down)
        while end is None or env.now < end:
            yield env.timeout(up if end is None else min(up, end - env.now))
            if end is not None and env.now >= end:
                break
            self.apply(nodes)
            self._event("start", self.label)
            yield env.timeout(down if end is None else min(down, end - env.now))
            self.revert(nodes)
            self._event("end", self.label)

    def _random(self, node):
        env, s = self.world.env, self.spec
        label = self.label if node is None else node.node_id
        rng = self.world.streams.rng("faults", str(self.index), label)
        nodes = [] if node is None else [node]
        while True:
            yield env.timeout(ns(rng.expovariate(1.0 / s.mtbf)))
            self.apply(nodes)
            self._event("start", label)
            yield env.timeout(ns(rng.expovariate(1.0 / s.mttr)))
            self.revert(nodes)
            self._event("end", label)
