"""A GPU node: concurrent service slots, a bounded FIFO queue, service models and faults.

A request arriving at the node is refused at once while the node is crashed, rejected at
once when ``max_queue`` requests already wait, accepted and never answered while the node
hangs, and otherwise queued FIFO until one of ``gpus x max_batch`` slots is free.  Its
service time comes from the capability's service model (by inverse CDF of the request
attempt's common-random-number uniform), scaled by ``slow / (speed x throttle)``.  A crash
fails every request in the node (queued or in service) at that instant.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import simpy

from .clock import ns
from .service import DistributionService, ServiceModel

# Why an attempt failed at the node (recorded in the attempts table).
REFUSED = "crashed"
QUEUE_FULL = "queue_full"
CRASHED_IN_FLIGHT = "crashed_in_flight"
ERROR_FAULT = "error_fault"


class Node:
    """Live state and behaviour of one node."""

    def __init__(self, env: simpy.Environment, node_id: str, region: str, gpus: int,
                 max_batch: int, max_queue: Optional[int], speed: float,
                 services: dict[str, ServiceModel], u_error=None) -> None:
        self.env = env
        self.node_id = node_id
        self.region = region
        self.gpus = gpus
        self.max_batch = max_batch
        self.slots = gpus * max_batch
        self.max_queue = max_queue
        self.speed = speed
        self.services = services
        self._fallback = services.get("*")
        # hot path: the inverse CDF of each distribution service (None: a model that reads
        # tokens and batching, through ServiceTime)
        self._ppf = {k: (m.dist.ppf if type(m) is DistributionService else None)
                     for k, m in services.items()}
        self._fallback_ppf = self._ppf.get("*")
        self.u_error = u_error  # keyed uniform (key, attempt) -> (0, 1) for error faults
        self.waiting: deque[simpy.Event] = deque()
        self.running = 0
        self.in_flight = 0
        self._active: dict[simpy.Process, None] = {}  # insertion order: deterministic crash order
        # faults (counters so overlapping faults compose)
        self.crashed = 0
        self.hung = 0
        self.slow = 1.0
        self.throttle = 1.0
        self.error_rates: list[float] = []
        # time-weighted busy GPUs
        self._busy_area = 0.0
        self._last_t = 0
        self.served = 0

    # ------------------------------------------------------------------ state
    @property
    def busy_gpus(self) -> int:
        """GPUs with at least one sequence (running sequences spread across GPUs)."""
        return min(self.gpus, self.running)

    @property
    def queue_depth(self) -> int:
        return len(self.waiting)

    @property
    def up(self) -> bool:
        return self.crashed == 0

    @property
    def error_rate(self) -> float:
        return max(self.error_rates, default=0.0)

    def _account(self) -> None:
        now = self.env.now
        self._busy_area += self.busy_gpus * (now - self._last_t)
        self._last_t = now

    def busy_area(self) -> float:
        """Integral of busy GPUs over time (GPU x ns) up to now."""
        self._account()
        return self._busy_area

    def service_model(self, capability_key: str) -> ServiceModel:
        model = self.services.get(capability_key, self._fallback)
        if model is None:
            raise KeyError(f"node {self.node_id} has no service model for {capability_key}")
        return model

    # ------------------------------------------------------------------ faults
    def crash(self) -> None:
        """Fail everything in the node now and refuse new arrivals until :meth:`restore`."""
        self.crashed += 1
        for proc in list(self._active):
            if proc.is_alive:
                proc.interrupt("crash")

    def restore(self) -> None:
        self.crashed = max(self.crashed - 1, 0)

    # ------------------------------------------------------------------ service
    def serve(self, capability_key: str, u: float, key: int, attempt: int,
              input_tokens: int, output_tokens: int):
        """Process body (use with ``yield from``) returning ``(reason, queue_wait, service,
        ttft, tpot)``: reason None on success, else why the attempt failed here (REFUSED,
        QUEUE_FULL, CRASHED_IN_FLIGHT, ERROR_FAULT); times in ns, ttft/tpot None unless
        the service model gives them.  A plain tuple: this runs once per request.

        ``u`` is the attempt's service uniform; the error uniform ``u_error(key, attempt)``
        is drawn only while an error-rate fault is active."""
        env = self.env
        if self.crashed:
            return REFUSED, 0, 0, None, None
        if self.hung:
            self.in_flight += 1
            yield env.event()  # accepted, never answered
        if self.max_queue is not None and self.running >= self.slots \
                and len(self.waiting) >= self.max_queue:
            return QUEUE_FULL, 0, 0, None, None
        proc = env._active_proc
        self.in_flight += 1
        active = self._active
        active[proc] = None
        arrived = env._now
        granted = None
        try:
            running = self.running
            if running >= self.slots or self.waiting:
                granted = env.event()
                self.waiting.append(granted)
                yield granted
                granted = None
                running = self.running
            else:
                # time-weighted busy GPUs up to now (inline _account: hot path)
                self._busy_area += (running if running < self.gpus else self.gpus) * (arrived - self._last_t)
                self._last_t = arrived
                self.running = running = running + 1
            started = env._now
            scale = self.slow / (self.speed * self.throttle)
            ppf = self._ppf.get(capability_key, self._fallback_ppf)
            if ppf is not None:  # a distribution service: total only, no ServiceTime
                st = None
                service = int(round(ppf(u) * scale * 1e9))
            else:
                model = self.services.get(capability_key, self._fallback)
                if model is None:
                    model = self.service_model(capability_key)  # raises the helpful KeyError
                st = model.service(u, input_tokens, output_tokens, (running - 1) // self.gpus)
                service = int(round(st.total * scale * 1e9))
            yield env.timeout(service)
        except simpy.Interrupt:
            if granted is not None:  # still queued
                try:
                    self.waiting.remove(granted)
                except ValueError:  # granted in the same instant: the slot is ours to free
                    self._release()
            else:
                self._release()
            return CRASHED_IN_FLIGHT, env._now - arrived, 0, None, None
        finally:
            active.pop(proc, None)
            self.in_flight -= 1
        # release the slot to the next waiting request (inline _release: hot path)
        if self.waiting:
            self.waiting.popleft().succeed()
        else:
            now = env._now
            running = self.running
            self._busy_area += (running if running < self.gpus else self.gpus) * (now - self._last_t)
            self._last_t = now
            self.running = running - 1
        wait = started - arrived
        if self.error_rates and self.u_error(key, attempt) < self.error_rate:
            return ERROR_FAULT, wait, service, None, None
        self.served += 1
        if st is None or (st.ttft is None and st.tpot is None):
            return None, wait, service, None, None
        return (None, wait, service, None if st.ttft is None else ns(st.ttft * scale),
                None if st.tpot is None else ns(st.tpot * scale))

    def _release(self) -> None:
        """Free a slot and hand it to the next waiting request (running count unchanged)."""
        if self.waiting:
            self.waiting.popleft().succeed()
        else:
            self._account()
            self.running -= 1

    def __repr__(self) -> str:
        return (f"Node({self.node_id!r}, region={self.region!r}, running={self.running}, "
                f"queued={len(self.waiting)}, up={self.up})")
