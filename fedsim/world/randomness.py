"""Random streams: one scenario seed, an independent stream per component and purpose.

Sequential streams (``Streams.rng("arrivals", "workload-0")``) are ``random.Random``
generators seeded from a ``numpy.random.SeedSequence`` keyed by the stream's *names*, not
by creation order, so adding a component never shifts another's draws.

Keyed uniforms (``Streams.uniform("service", request_index, attempt)``) are a counter-based
hash: the value depends only on the seed, the purpose and the integers, never on the order
in which the simulation asks.  Service demands, network jitter and error-rate faults use
them, so two runs that differ only in routing see the same demand for the same request
attempt (common random numbers) and can be compared pair by pair.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from typing import Callable

import numpy as np

_PACK = struct.Struct("<qq").pack
_INV_2_53 = 1.0 / (1 << 53)


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class Streams:
    """All randomness of one run, derived from ``seed``."""

    __slots__ = ("seed", "_rngs", "_uniforms")

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self._rngs: dict[tuple[str, ...], random.Random] = {}
        self._uniforms: dict[str, Callable[..., float]] = {}

    def rng(self, *names: str) -> random.Random:
        """The sequential stream for ``names`` (created on first use, then shared)."""
        rng = self._rngs.get(names)
        if rng is None:
            ss = np.random.SeedSequence(self.seed, spawn_key=tuple(_name_key(n) for n in names))
            rng = random.Random(int.from_bytes(ss.generate_state(4, np.uint64).tobytes(), "little"))
            self._rngs[names] = rng
        return rng

    def uniform(self, purpose: str, a: int, b: int = 0) -> float:
        """A uniform in (0, 1) determined by (seed, purpose, a, b) alone."""
        fn = self._uniforms.get(purpose)
        if fn is None:
            fn = self.uniform_fn(purpose)
        return fn(a, b)

    def uniform_fn(self, purpose: str):
        """``lambda a, b=0: self.uniform(purpose, a, b)`` for hot paths (one per purpose,
        shared): the keyed hash state is prepared once and copied per draw."""
        fn = self._uniforms.get(purpose)
        if fn is not None:
            return fn
        key = hashlib.blake2b(f"{self.seed}/{purpose}".encode(), digest_size=16).digest()
        copy, pack, from_bytes = hashlib.blake2b(digest_size=8, key=key).copy, _PACK, int.from_bytes

        def uniform(a: int, b: int = 0) -> float:
            h = copy()
            h.update(pack(a, b))
            return ((from_bytes(h.digest(), "little") >> 11) + 0.5) * _INV_2_53

        self._uniforms[purpose] = uniform
        return uniform
