"""``FederationError`` and its variants, with the reference's exact messages (spec §1.12)."""

from __future__ import annotations

from .duration import format_duration
from .types import Capability, NodeId


class FederationError(Exception):
    """Base of every router error.  ``str(err)`` is the reference's Display message."""

    variant: str = "FederationError"

    def __init__(self, payload: object) -> None:
        super().__init__(payload)
        self.payload = payload

    def message(self) -> str:  # overridden
        raise NotImplementedError

    def __str__(self) -> str:
        return self.message()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.payload!r})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.payload == other.payload  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.payload))

    def __reduce__(self):
        return (type(self), (self.payload,))


class NoCapacity(FederationError):
    variant = "NoCapacity"

    def __init__(self, capability: Capability) -> None:
        super().__init__(capability)
        self.capability = capability

    def message(self) -> str:
        return f"No nodes available for capability: {self.capability.debug_name}"


class AllNodesUnhealthy(FederationError):
    variant = "AllNodesUnhealthy"

    def __init__(self, capability: Capability) -> None:
        super().__init__(capability)
        self.capability = capability

    def message(self) -> str:
        return f"All nodes unhealthy for capability: {self.capability.debug_name}"


class QoSViolation(FederationError):
    variant = "QoSViolation"

    def message(self) -> str:
        return f"QoS requirements cannot be met: {self.payload}"


class PrivacyViolation(FederationError):
    variant = "PrivacyViolation"

    def message(self) -> str:
        return f"Privacy policy violation: {self.payload}"


class NodeUnreachable(FederationError):
    variant = "NodeUnreachable"

    def __init__(self, node_id: str) -> None:
        super().__init__(NodeId(node_id))
        self.node_id = self.payload

    def message(self) -> str:
        return f"Node unreachable: {self.node_id}"


class Timeout(FederationError):
    """Payload: the duration in ns."""

    variant = "Timeout"

    def __init__(self, duration_ns: int) -> None:
        super().__init__(int(duration_ns))
        self.duration = self.payload

    def message(self) -> str:
        return f"Timeout after {format_duration(self.duration)}"


class CircuitOpen(FederationError):
    variant = "CircuitOpen"

    def __init__(self, node_id: str) -> None:
        super().__init__(NodeId(node_id))
        self.node_id = self.payload

    def message(self) -> str:
        return f"Circuit breaker open for node: {self.node_id}"


class InternalError(FederationError):
    """The reference's ``Internal`` variant."""

    variant = "Internal"

    def message(self) -> str:
        return f"Internal error: {self.payload}"


Internal = InternalError
