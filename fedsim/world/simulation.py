"""Build a world from a Scenario and run it: ``fedsim.run(scenario, seed=None) -> Result``."""

from __future__ import annotations

import time
from typing import Callable, Optional

import simpy

from ..federation import FederationError
from .clock import ns
from .faults import Fault
from .gateway import GatewayReplica
from .network import Network
from .node import Node
from .recorder import Table
from .request import SimRequest
from .result import Result
from .scenario import GatewaySpec, Scenario
from .service import make_service_model
from .distributions import make_distribution
from .workload import Workload

REQUESTS = {
    "request": "i", "id": "s", "workload": "s", "arrival": "f", "capability": "s", "tenant": "s",
    "origin_region": "s", "privacy": "s", "cost_tolerance": "i", "gateway": "s", "status": "s",
    "error": "s", "latency": "f", "ttft": "f", "attempts": "i", "node": "s", "region": "s",
    "queue_wait": "f", "service": "f", "network": "f", "input_tokens": "i", "output_tokens": "i",
}
ATTEMPTS = {
    "request": "i", "attempt": "i", "gateway": "s", "kind": "s", "node": "s", "error": "s",
    "detail": "s", "start": "f", "end": "f", "backoff": "f",
}
TIMESERIES = {
    "time": "f", "node": "s", "gateway": "s", "queue_depth": "i", "in_flight": "i",
    "busy_gpus": "i", "gpu_utilization": "f", "up": "b", "health": "s", "circuit": "s",
    "latency_estimate": "f",
}
EVENTS = {"time": "f", "category": "s", "source": "s", "subject": "s", "old": "s", "new": "s"}


def _s(t_ns: Optional[int]) -> Optional[float]:
    return None if t_ns is None else t_ns / 1e9


class Recorder:
    """The four tables of a run."""

    def __init__(self) -> None:
        self.requests = Table(REQUESTS)
        self.attempts = Table(ATTEMPTS)
        self.timeseries = Table(TIMESERIES)
        self.events = Table(EVENTS)

    def attempt(self, req: SimRequest, attempt: int, kind: str, node, error, detail,
                start: int, end: int) -> int:
        self.attempts.append(req.index, attempt, req.gateway, kind, node, error, detail,
                             start / 1e9, end / 1e9, 0.0)
        return len(self.attempts) - 1

    def event(self, t: int, category: str, source: str, subject: str, old: str, new: str) -> None:
        self.events.append(t / 1e9, category, source, subject, old, new)

    def request(self, req: SimRequest, status: str, error: Optional[str], end: Optional[int]) -> None:
        r = req.request
        self.requests.append(
            req.index, r.request_id, req.workload, req.arrival / 1e9, r.capability.key,
            r.tenant_id, req.origin, r.qos.privacy.name.lower(), r.qos.cost_tolerance,
            req.gateway, status, error, None if end is None else (end - req.arrival) / 1e9,
            _s(req.ttft) if status == "success" else None, req.attempts,
            req.node if status == "success" else None,
            req.region if status == "success" else None,
            _s(req.queue_wait) if status == "success" else None,
            _s(req.service) if status == "success" else None,
            _s(req.network) if status == "success" else None,
            req.input_tokens, req.output_tokens)


class World:
    """Regions, network, nodes, gateway replicas, workloads and faults in one SimPy env."""

    def __init__(self, scenario: Scenario, seed: Optional[int] = None) -> None:
        from .randomness import Streams

        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.env = simpy.Environment()
        self.streams = Streams(self.seed)
        self.recorder = Recorder()
        net = scenario.network
        self.network = Network(net.rtt, net.default_rtt, net.intra_region_rtt,
                               None if net.jitter is None else make_distribution(net.jitter),
                               net.partition_timeout)
        self.nodes: dict[str, Node] = {}
        self.groups: dict[str, list[str]] = {}
        for grp in scenario.nodes:
            services = {("*" if k == "*" else _cap_key(k)): make_service_model(v)
                        for k, v in grp.service.items()}
            self.groups[grp.name] = grp.node_ids()
            for node_id in grp.node_ids():
                self.nodes[node_id] = Node(self.env, node_id, grp.region, grp.gpus, grp.max_batch,
                                           grp.max_queue, grp.speed, services,
                                           self.streams.uniform_fn("error"))
        specs = scenario.gateways or [GatewaySpec(name=f"gw-{r.id}", region=r.id)
                                      for r in scenario.regions]
        self.gateways: dict[str, GatewayReplica] = {
            g.name: GatewayReplica(self, g.name, g.region, i) for i, g in enumerate(specs)}
        self._by_region = {}
        for gw in self.gateways.values():
            self._by_region.setdefault(gw.region, gw)
        self._first_gateway = next(iter(self.gateways.values()))
        self.in_flight: dict[int, SimRequest] = {}
        self._next_index = 0
        self.workloads = [Workload(self, w, i) for i, w in enumerate(scenario.workloads)]
        self.faults = [Fault(self, f, i) for i, f in enumerate(scenario.faults)]

    # -------------------------------------------------------------- wiring helpers
    def gateway_for(self, name: Optional[str], origin: str) -> GatewayReplica:
        if name is not None:
            return self.gateways[name]
        return self._by_region.get(origin, self._first_gateway)

    def next_index(self) -> int:
        i = self._next_index
        self._next_index += 1
        return i

    def register(self, req: SimRequest) -> None:
        self.in_flight[req.index] = req

    def finish(self, req: SimRequest, status: str, error: Optional[FederationError]) -> None:
        self.in_flight.pop(req.index, None)
        self.recorder.request(req, status, None if error is None else error.variant, self.env.now)

    # -------------------------------------------------------------- sampling
    def _sampler(self):
        env = self.env
        interval = ns(self.scenario.sample_interval)
        last_area = {n: 0.0 for n in self.nodes}
        ts = self.recorder.timeseries
        while True:
            yield env.timeout(interval)
            t = env.now / 1e9
            for node_id, node in self.nodes.items():
                area = node.busy_area()
                util = (area - last_area[node_id]) / (interval * node.gpus)
                last_area[node_id] = area
                for gw in self.gateways.values():
                    h = gw.health.peek(node_id)
                    circuit = gw.breaker.state(node_id)  # applies eager_half_open when on
                    ts.append(t, node_id, gw.name, node.queue_depth, node.in_flight,
                              node.busy_gpus, util, node.up,
                              None if h is None else h.status.debug_name,
                              circuit.debug_name,
                              None if h is None else h.latency_p50 / 1e9)

    # -------------------------------------------------------------- run
    def run(self, progress: Optional[Callable[["World"], None]] = None,
            step: Optional[float] = None) -> Result:
        """Run to the scenario's duration and return the Result.

        ``progress(world)`` is called every ``step`` simulated seconds (default: 1/200 of
        the duration) and at the end; it may sleep to pace a live view.  Ctrl-C (or any
        KeyboardInterrupt) stops the run cleanly: the Result holds everything recorded so
        far, requests still open are marked in_flight and ``result.interrupted`` is True."""
        started = time.perf_counter()
        for w in self.workloads:
            w.start()
        for f in self.faults:
            f.start()
        self.env.process(self._sampler())
        end = ns(self.scenario.duration)
        interrupted = False
        try:
            if progress is None:
                self.env.run(until=end)
            else:
                chunk = max(ns(step) if step else end // 200, 1)
                t = 0
                while t < end:
                    t = min(t + chunk, end)
                    self.env.run(until=t)
                    progress(self)
        except KeyboardInterrupt:
            interrupted = True
        return self._result(time.perf_counter() - started, interrupted)

    @property
    def requests_started(self) -> int:
        return self._next_index

    @property
    def requests_done(self) -> int:
        return len(self.recorder.requests)

    def _result(self, wall: float, interrupted: bool) -> Result:
        for req in sorted(self.in_flight.values(), key=lambda r: r.index):
            self.recorder.request(req, "in_flight", None, None)
        self.in_flight.clear()
        rec = self.recorder
        return Result(
            scenario=self.scenario, seed=self.seed,
            requests=rec.requests.frame().sort_values("request", kind="stable").reset_index(drop=True),
            attempts=rec.attempts.frame(), timeseries=rec.timeseries.frame(),
            events=rec.events.frame(),
            gateway_stats={name: gw.gateway.stats() for name, gw in self.gateways.items()},
            wall_seconds=wall, interrupted=interrupted, simulated_seconds=self.env.now / 1e9)


def _cap_key(text: str) -> str:
    from ..federation import Capability

    return Capability.parse(text).key


def run(scenario: Scenario, seed: Optional[int] = None) -> Result:
    """Simulate ``scenario`` (with ``seed``, default the scenario's) and return its Result."""
    return World(scenario, seed).run()
