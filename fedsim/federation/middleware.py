"""Gateway middlewares (spec §7.5).  A middleware signals failure by raising a
FederationError from ``before_route`` or ``after_infer``; ``on_error`` cannot fail."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO, runtime_checkable

from .duration import format_duration
from .errors import FederationError
from .types import InferenceRequest, InferenceResponse, NodeId


@runtime_checkable
class GatewayMiddleware(Protocol):
    def before_route(self, request: InferenceRequest) -> None: ...

    def after_infer(self, request: InferenceRequest, response: InferenceResponse) -> None: ...

    def on_error(self, request: InferenceRequest, error: FederationError) -> None: ...


class Middleware:
    """Convenience base class: every hook does nothing."""

    def before_route(self, request: InferenceRequest) -> None:
        pass

    def after_infer(self, request: InferenceRequest, response: InferenceResponse) -> None:
        pass

    def on_error(self, request: InferenceRequest, error: FederationError) -> None:
        pass


class LoggingMiddleware(Middleware):
    """Writes the reference's log lines (to stderr unless ``stream`` is given)."""

    def __init__(self, prefix: str, stream: TextIO | None = None) -> None:
        self.prefix = prefix
        self.stream = stream

    def _write(self, line: str) -> None:
        print(line, file=self.stream if self.stream is not None else sys.stderr)

    def before_route(self, request: InferenceRequest) -> None:
        self._write(f"[{self.prefix}] Routing request {request.request_id} for "
                    f"{request.capability.debug_name}")

    def after_infer(self, request: InferenceRequest, response: InferenceResponse) -> None:
        self._write(f"[{self.prefix}] Request {request.request_id} served by "
                    f"{NodeId(response.served_by)!r} in {format_duration(response.latency)}")

    def on_error(self, request: InferenceRequest, error: FederationError) -> None:
        self._write(f"[{self.prefix}] Request {request.request_id} failed: {error}")


class RateLimitMiddleware(Middleware):
    """Stores a rate and limits nothing, like the reference (Q-RATELIMIT)."""

    def __init__(self, requests_per_second: int) -> None:
        self.requests_per_second = requests_per_second
