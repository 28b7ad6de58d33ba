"""Build a world from a Scenario and run it: ``fedsim.run(scenario, seed=None) -> Result``."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd

from ..federation import FederationError
from .clock import ns
from .environment import Environment
from .faults import Fault
from .gateway import GatewayReplica
from .network import Network
from .node import Node
from .recorder import CHUNK_ROWS, ParquetSink, Table, all_equal, to_object_array
from .request import SimRequest
from .result import Result, RunStats, StreamInfo
from .scenario import GatewaySpec, Scenario
from .service import make_service_model
from .distributions import make_distribution
from .workload import Workload

REQUESTS = {
    "request": "i", "id": "s", "workload": "s", "arrival": "t", "capability": "s", "tenant": "s",
    "origin_region": "s", "privacy": "s", "cost_tolerance": "i", "gateway": "s", "status": "s",
    "error": "s", "latency": "t", "ttft": "t", "attempts": "i", "node": "s", "region": "s",
    "queue_wait": "t", "service": "t", "network": "t", "input_tokens": "i", "output_tokens": "i",
}
ATTEMPTS = {
    "request": "i", "attempt": "i", "gateway": "s", "kind": "s", "node": "s", "error": "s",
    "detail": "s", "start": "t", "end": "t", "backoff": "f",
}
TIMESERIES = {
    "time": "f", "node": "s", "gateway": "s", "queue_depth": "i", "in_flight": "i",
    "busy_gpus": "i", "gpu_utilization": "f", "up": "b", "health": "s", "circuit": "s",
    "latency_estimate": "f",
}
EVENTS = {"time": "t", "category": "s", "source": "s", "subject": "s", "old": "s", "new": "s"}

_COL = {name: j for j, name in enumerate(REQUESTS)}
# the serving attempt's columns: recorded for successful requests only
_SERVED = [_COL[c] for c in ("ttft", "node", "region", "queue_wait", "service", "network")]


def _request_objects(rows: list) -> np.ndarray:
    """The requests rows as appended by :meth:`Recorder.request`, with what is derived
    from them computed column-wise, per chunk: latency (from the end time), privacy
    names, and no serving-attempt values for requests that did not succeed.  A chunk in
    which every request is done, has one privacy level or succeeded (the usual case) is
    recognised by a ``list.count`` (in C, see :func:`.recorder.all_equal`), cheaper than
    comparing element-wise."""
    obj = to_object_array(rows)
    n = len(obj)
    arrival, end = obj[:, _COL["arrival"]], obj[:, _COL["latency"]]
    if end.tolist().count(None) == 0:
        obj[:, _COL["latency"]] = end - arrival  # exact integer ns
    else:
        done = end != None  # noqa: E711 (elementwise)
        obj[done, _COL["latency"]] = end[done] - arrival[done]
    privacy = obj[:, _COL["privacy"]]
    first = privacy[0] if n else None
    if n and all_equal(privacy, first):
        obj[:, _COL["privacy"]] = first.name.lower()
    else:
        codes, levels = pd.factorize(privacy)
        obj[:, _COL["privacy"]] = np.array([p.name.lower() for p in levels], dtype=object)[codes]
    status = obj[:, _COL["status"]]
    if n and not all_equal(status, "success"):
        failed = np.flatnonzero(status != "success")
        obj[failed[:, None], _SERVED] = None
    return obj


class Recorder:
    """The four tables of a run; with a ``sink`` (:class:`ParquetSink`) streamed to parquet
    as they fill, tagged with ``seed`` when the sink writes a seed column.

    Times arrive as integer nanoseconds and are converted to seconds per chunk (column kind
    ``"t"``), like everything derived from a row (:func:`_request_objects`): the hot path
    only gathers raw values into a tuple."""

    def __init__(self, sink: Optional[ParquetSink] = None, seed: Optional[int] = None,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        self.sink = sink
        self._writers = []

        def table(name: str, schema: dict, objects=None) -> Table:
            if sink is None:
                return Table(schema, chunk_rows, objects=objects)
            writer = sink.table(name, schema, seed)
            self._writers.append(writer)
            return Table(schema, chunk_rows, writer, objects)

        self.requests = table("requests", REQUESTS, _request_objects)
        self.attempts = table("attempts", ATTEMPTS)
        self.timeseries = table("timeseries", TIMESERIES)
        self.events = table("events", EVENTS)
        self._attempt_add = self.attempts.add
        self._event_add = self.events.add
        self._request_add = self.requests.add

    def flush(self) -> None:
        """Convert what the tables hold; streamed: write it all out."""
        for t in (self.requests, self.attempts, self.timeseries, self.events):
            t.flush()
        for w in self._writers:
            w.flush()

    def rows(self) -> dict[str, int]:
        return {"requests": len(self.requests), "attempts": len(self.attempts),
                "timeseries": len(self.timeseries), "events": len(self.events)}

    def event(self, t: int, category: str, source: str, subject: str, old: str, new: str) -> None:
        self._event_add((t, category, source, subject, old, new))

    def request(self, req: SimRequest, status: str, error: Optional[str], end: Optional[int]) -> None:
        """Record a request that is done with (``end`` in ns; None: still in flight).  The
        row holds raw values (``latency`` the end time, ``privacy`` the level): see
        :func:`_request_objects`."""
        r = req.request
        qos = r.qos
        self._request_add((
            req.index, r.request_id, req.workload, req.arrival, req.cap_key, r.tenant_id,
            req.origin, qos.privacy, qos.cost_tolerance, req.gateway, status, error, end,
            req.ttft, req.attempts, req.node, req.region, req.queue_wait, req.service,
            req.network, req.input_tokens, req.output_tokens))


class World:
    """Regions, network, nodes, gateway replicas, workloads and faults in one SimPy env."""

    def __init__(self, scenario: Scenario, seed: Optional[int] = None,
                 stream_to: Union[None, str, os.PathLike, ParquetSink] = None) -> None:
        """``stream_to``: a directory (or a :class:`ParquetSink` shared by several runs)
        to stream the tables to as parquet while the run goes on; the Result then holds
        counters and quantile sketches instead of the tables (see :mod:`.result`)."""
        from .randomness import Streams

        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.env = Environment()
        self.streams = Streams(self.seed)
        self._own_sink = stream_to is not None and not isinstance(stream_to, ParquetSink)
        sink = ParquetSink(stream_to) if self._own_sink else stream_to
        self.recorder = Recorder(sink, self.seed)
        self._attempt_add = self.recorder.attempts.add
        self.stats: Optional[RunStats] = None
        if sink is not None:
            self.stats = RunStats(warmup=scenario.warmup)
            self.recorder.requests.listen(self.stats.add_chunk)
        net = scenario.network
        self.network = Network(net.rtt, net.default_rtt, net.intra_region_rtt,
                               None if net.jitter is None else make_distribution(net.jitter),
                               net.partition_timeout)
        self.nodes: dict[str, Node] = {}
        self.groups: dict[str, list[str]] = {}
        self._node_names: dict[str, str] = {}
        for grp in scenario.nodes:
            services = {("*" if k == "*" else _cap_key(k)): make_service_model(v)
                        for k, v in grp.service.items()}
            self.groups[grp.name] = grp.node_ids()
            for node_id in grp.node_ids():
                self.nodes[node_id] = Node(self.env, node_id, grp.region, grp.gpus, grp.max_batch,
                                           grp.max_queue, grp.speed, services,
                                           self.streams.uniform_fn("error"))
                self._node_names[node_id] = node_id
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

    def attempt(self, ev) -> None:
        """A gateway's attempt ended (every replica's ``on_attempt`` observer; ``ev.context``
        is the request): count it on the request and record its row in the attempts table,
        the row's index kept on the request for the backoff that may follow.  ``detail``
        is why a failed attempt failed (set on the request by the attempt runner)."""
        req = ev.context
        req.attempts += 1
        err = ev.error
        detail = req.fail_reason if ev.kind == "failure" else None
        req.fail_reason = None
        node = ev.node_id
        if node is not None:  # the plain str (NodeId's str() is a Python-level call)
            node = self._node_names.get(node) or str(node)
        req.last_attempt_row = self._attempt_add((
            req.index, ev.attempt, req.gateway, ev.kind, node,
            None if err is None else err.variant, detail, ev.start, ev.end, 0.0))

    def exit(self, req: SimRequest, value, error: Optional[BaseException]) -> None:
        """A request's retry loop ended (the ``on_exit`` of its :class:`~.task.Task`): with
        its response (``error`` None: a success) or raising ``error``.  Records it; a
        FederationError fails the request, anything else is a bug and is re-raised."""
        if error is None:
            status, variant = "success", None
        elif isinstance(error, FederationError):
            status, variant = "failed", error.variant
        else:
            raise error
        self.in_flight.pop(req.index, None)
        self.recorder.request(req, status, variant, self.env._now)

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
        if rec.sink is not None:
            return self._streamed_result(wall, interrupted)
        return Result(
            scenario=self.scenario, seed=self.seed,
            requests=rec.requests.frame().sort_values("request", kind="stable").reset_index(drop=True),
            attempts=rec.attempts.frame(), timeseries=rec.timeseries.frame(),
            events=rec.events.frame(),
            gateway_stats={name: gw.gateway.stats() for name, gw in self.gateways.items()},
            wall_seconds=wall, interrupted=interrupted, simulated_seconds=self.env.now / 1e9)

    def _streamed_result(self, wall: float, interrupted: bool) -> Result:
        rec = self.recorder
        rec.flush()
        sink = rec.sink
        if self._own_sink:
            sink.close()
        empty = {name: t.frame() for name, t in (("requests", rec.requests),
                                                 ("attempts", rec.attempts),
                                                 ("timeseries", rec.timeseries),
                                                 ("events", rec.events))}
        return Result(
            scenario=self.scenario, seed=self.seed, **empty,
            gateway_stats={name: gw.gateway.stats() for name, gw in self.gateways.items()},
            wall_seconds=wall, interrupted=interrupted, simulated_seconds=self.env.now / 1e9,
            stats=self.stats,
            stream=StreamInfo(sink.directory, rec.rows(),
                              self.seed if sink.seed_column else None))


def _cap_key(text: str) -> str:
    from ..federation import Capability

    return Capability.parse(text).key


def run(scenario: Scenario, seed: Optional[int] = None,
        stream_to: Union[None, str, os.PathLike, ParquetSink] = None) -> Result:
    """Simulate ``scenario`` (with ``seed``, default the scenario's) and return its Result.

    ``stream_to=DIR`` writes the tables to ``DIR/<table>.parquet`` while the run goes on
    and returns counters and quantile sketches instead of the tables (big runs in little
    memory; percentiles within 0.5 % relative, see :mod:`fedsim.world.result`)."""
    return World(scenario, seed, stream_to=stream_to).run()
