"""ModelCatalog: which models are deployed on which nodes (spec §2).

Reproduces the reference's inconsistencies (Q-CATALOG): capabilities are frozen at a
model's first registration, the capability index is append-only and never cleaned, and
registering the same (model, node) twice makes two deployments.

Deviation (documented, deterministic refinement): entries iterate in ``dict`` insertion
order, where the reference's hash map iterates in a per-process random order (Q-ORDER).
A model that is fully deregistered and registered again moves to the end.
"""

from __future__ import annotations

from typing import Iterable, Optional

from .errors import InternalError
from .types import (
    Capability,
    DeploymentStatus,
    ModelDeployment,
    ModelEntry,
    ModelId,
    ModelMetadata,
    NodeId,
    RegionId,
)


class ModelCatalog:
    """In-memory model catalog.  ``version`` increments on every change, so routing caches
    (see :class:`~fedsim.federation.router.Router`) can tell when to rebuild."""

    __slots__ = ("_entries", "_by_capability", "version")

    def __init__(self) -> None:
        self._entries: dict[ModelId, ModelEntry] = {}
        self._by_capability: dict[str, list[ModelId]] = {}
        self.version = 0

    def register(
        self,
        model_id: str,
        node_id: str,
        region_id: str,
        capabilities: Iterable[Capability],
    ) -> None:
        """Add a deployment of ``model_id`` on ``node_id`` (spec §2.2).  Never fails."""
        model_id, node_id, region_id = ModelId(model_id), NodeId(node_id), RegionId(region_id)
        deployment = ModelDeployment(node_id, region_id, "", DeploymentStatus.READY)
        entry = self._entries.get(model_id)
        self.version += 1
        if entry is not None:
            entry.deployments.append(deployment)
            return
        caps = list(capabilities)
        for cap in caps:
            if not isinstance(cap, Capability):
                raise TypeError(f"capabilities must be Capability values, got {cap!r}")
        metadata = ModelMetadata(model_id, str(model_id), "1.0.0", caps, 0, None)
        self._entries[model_id] = ModelEntry(model_id, metadata, [deployment])
        for cap in caps:
            self._by_capability.setdefault(cap.key, []).append(model_id)

    def deregister(self, model_id: str, node_id: str) -> None:
        """Remove every deployment of ``model_id`` on ``node_id``; drop the entry when none is
        left.  The capability index is not cleaned (spec §2.3).  Never fails."""
        entry = self._entries.get(model_id)
        if entry is None:
            return
        kept = [d for d in entry.deployments if d.node_id != node_id]
        if len(kept) == len(entry.deployments):
            return
        self.version += 1
        if kept:
            entry.deployments[:] = kept
        else:
            del self._entries[entry.model_id]

    def find_by_capability(self, capability: Capability) -> list[tuple[NodeId, RegionId]]:
        """(node, region) pairs from the capability index, stale and duplicate hits included
        (spec §2.4).  The router does not use this."""
        out: list[tuple[NodeId, RegionId]] = []
        for model_id in self._by_capability.get(capability.key, ()):
            entry = self._entries.get(model_id)
            if entry is None:
                continue
            for d in entry.deployments:
                if d.status is DeploymentStatus.READY:
                    out.append((d.node_id, d.region_id))
        return out

    def list_all(self) -> list[ModelId]:
        return list(self._entries)

    def get_metadata(self, model_id: str) -> ModelMetadata:
        entry = self._entries.get(model_id)
        if entry is None:
            raise InternalError(f"Model not found: {ModelId(model_id)!r}")
        return entry.metadata

    def get(self, model_id: str) -> Optional[ModelEntry]:
        return self._entries.get(model_id)

    def all_entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def entries(self) -> Iterable[ModelEntry]:
        """Live view of the entries in iteration order (no copy; for the router's hot path)."""
        return self._entries.values()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ModelCatalog({len(self._entries)} models)"
