"""The in-flight state of one simulated request (dropped once recorded)."""

from __future__ import annotations

from typing import Optional

from ..federation import Capability, InferenceRequest


class SimRequest:
    """One client request while it is in flight.  ``key`` identifies it for common random
    numbers: (workload index << 40) | sequence number within the workload."""

    __slots__ = ("index", "key", "arrival", "workload", "gateway", "request", "cap_key", "origin",
                 "input_tokens", "output_tokens", "attempts", "node", "region", "queue_wait",
                 "service", "network", "ttft", "last_attempt_row", "fail_reason")

    def __init__(self, index: int, key: int, arrival: int, workload: str, gateway: str,
                 request: InferenceRequest, origin: str, input_tokens: int,
                 output_tokens: int) -> None:
        self.index = index
        self.key = key
        self.arrival = arrival
        self.workload = workload
        self.gateway = gateway
        self.request = request
        self.cap_key = request.capability.key  # read twice per request: once here
        self.origin = origin
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.attempts = 0
        self.node: Optional[str] = None
        self.region: Optional[str] = None
        self.queue_wait: Optional[int] = None
        self.service: Optional[int] = None
        self.network: Optional[int] = None
        self.ttft: Optional[int] = None
        self.last_attempt_row = -1
        self.fail_reason: Optional[str] = None

    @property
    def capability(self) -> Capability:
        return self.request.capability
