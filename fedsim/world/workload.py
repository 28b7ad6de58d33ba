"""Client traffic: open-loop arrival processes and closed-loop clients.

Arrival times and request attributes come from the workload's own streams, independent of
routing, so runs that differ only in routing see identical requests (common random numbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..federation import Capability, InferenceRequest, PrivacyLevel, QoSRequirements, RegionId
from .arrivals import Mix, make_arrival, make_mix
from .clock import ns
from .distributions import Constant, make_distribution
from .request import SimRequest
from .scenario import WorkloadSpec, _privacy

if TYPE_CHECKING:  # pragma: no cover
    from .simulation import World

SEQ_BITS = 40


class Workload:
    def __init__(self, world: "World", spec: WorkloadSpec, index: int) -> None:
        self.world = world
        self.spec = spec
        self.index = index
        self.name = spec.name if spec.name != "workload" else f"workload-{index}"
        sc = world.scenario
        self.capability = _mapped(make_mix(spec.capability), lambda c: Capability.parse(str(c)))
        self.privacy = _mapped(make_mix(spec.privacy), _privacy)
        self.cost = make_mix(spec.cost_tolerance)
        self.tenant = make_mix(spec.tenant)
        if spec.origin_region is not None:
            self.origin = make_mix(spec.origin_region)
        else:
            shares = {r.id: r.traffic_share for r in sc.regions}
            if all(v is None for v in shares.values()):
                shares = {r: 1.0 for r in shares}
            self.origin = Mix.normalized({r: (v or 0.0) for r, v in shares.items()})
        self.input_tokens = make_distribution(spec.input_tokens)
        self.output_tokens = make_distribution(spec.output_tokens)
        self.think = make_distribution(spec.think_time) if spec.clients else None
        self.arrival = make_arrival(spec.arrival) if spec.arrival is not None else None
        self.rng = world.streams.rng("attributes", self.name)
        self.seq = 0
        self.sessions = spec.sessions
        self._by_origin: dict = {}  # origin -> (gateway name, RegionId)
        self._qos: dict = {}
        # Hot path: attributes that draw nothing (single-valued mixes, constant token
        # counts) are computed once; _DRAW marks those drawn per request.  Skipping a
        # sample() that draws nothing leaves every stream exactly where it was.
        self._cap = _fixed(self.capability.mix, self.capability.values)
        self._privacy = _fixed(self.privacy.mix, self.privacy.values)
        self._cost = _fixed(self.cost, None, int)
        self._tenant = _fixed(self.tenant, None, str)
        self._origin = _fixed(self.origin)
        self._tin = _tokens(self.input_tokens)
        self._tout = _tokens(self.output_tokens)

    def make_request(self) -> SimRequest:
        """Draw the next request's attributes (always the same number of draws)."""
        rng, world = self.rng, self.world
        cap = self._cap
        if cap is _DRAW:
            cap = self.capability.sample(rng)
        privacy = self._privacy
        if privacy is _DRAW:
            privacy = self.privacy.sample(rng)
        cost = self._cost
        if cost is _DRAW:
            cost = int(self.cost.sample(rng))
        tenant = self._tenant
        if tenant is _DRAW:
            tenant = str(self.tenant.sample(rng))
        origin = self._origin
        if origin is _DRAW:
            origin = self.origin.sample(rng)
        session_draw = rng.random()
        tin = self._tin
        if tin is _DRAW:
            tin = max(1, round(self.input_tokens.sample(rng)))
        tout = self._tout
        if tout is _DRAW:
            tout = max(1, round(self.output_tokens.sample(rng)))
        seq = self.seq
        self.seq = seq + 1
        name = self.name
        session = None
        if self.sessions:
            session = f"{name}-s{int(session_draw * self.sessions)}"
        routing = self._by_origin.get(origin)
        if routing is None:
            routing = self._by_origin[origin] = (
                world.gateway_for(self.spec.gateway, origin).name, RegionId(origin))
        qos = self._qos.get((privacy, cost))
        if qos is None:  # immutable in practice: shared by requests with the same asks
            qos = self._qos[(privacy, cost)] = QoSRequirements(privacy=privacy, cost_tolerance=cost)
        request = InferenceRequest(cap, b"", qos, f"{name}-{seq}", tenant, routing[1], session)
        index = world._next_index
        world._next_index = index + 1
        req = SimRequest(index, (self.index << SEQ_BITS) | seq, world.env._now, name,
                         routing[0], request, origin, tin, tout)
        world.register(req)  # a hook: the live view counts arrivals here
        return req

    def start(self) -> None:
        env = self.world.env
        if self.arrival is not None:
            env.process(self._open_loop())
        else:
            for c in range(self.spec.clients):
                env.process(self._client(c))

    def _open_loop(self):
        """Process that only starts the arrivals at the right moment (where a process
        started now would run); from then on each arrival is a timeout callback,
        :meth:`_arrive`, which costs less than resuming a generator."""
        world = self.world
        rng = world.streams.rng("arrivals", self.name)
        self._times = iter(self.arrival.times(rng, 0.0, world.scenario.duration))
        self._env = world.env
        self._arrive_cb = self._arrive  # bound once (one per arrival otherwise)
        self._starts = {name: gw.start for name, gw in world.gateways.items()}
        self._arrive(None)
        return
        yield  # a generator, for env.process

    def _arrive(self, wake) -> None:
        """At an arrival instant (``wake`` is its timeout; None at the start): make the
        request(s) due now, schedule the next arrival, then start the due requests as
        :class:`Task` s (``GatewayReplica.start``: after the next arrival's timeout, where
        ``env.process`` would have put their start).  Hot path: one request per instant is the common case."""
        env = self._env
        req = None if wake is None else self.make_request()
        more = None
        for t in self._times:
            delay = int(round(t * 1e9)) - env._now
            if delay > 0:
                env.timeout(delay).callbacks.append(self._arrive_cb)
                break
            if req is None:
                req = self.make_request()
            else:
                if more is None:
                    more = []
                more.append(self.make_request())
        if req is not None:
            starts = self._starts
            starts[req.gateway](req)
            if more is not None:
                for req in more:
                    starts[req.gateway](req)

    def _client(self, c: int):
        env, world = self.world.env, self.world
        end = ns(world.scenario.duration)
        think_rng = world.streams.rng("think", self.name, str(c))
        while env.now < end:
            req = self.make_request()
            yield env.process(world.gateways[req.gateway].handle(req))
            think = ns(max(self.think.sample(think_rng), 0.0))
            if think > 0:
                yield env.timeout(think)


_DRAW = object()
"""Marks a request attribute drawn per request (see ``Workload.__init__``)."""


def _fixed(mix: Mix, values: Optional[dict] = None, convert=None):
    """The value a mix always gives without drawing (mapped through ``values`` and
    ``convert`` as make_request does), or _DRAW."""
    if not mix._only:
        return _DRAW
    v = mix._only[0]
    if values is not None:
        v = values[v]
    return v if convert is None else convert(v)


def _tokens(dist):
    """A constant token count (``max(1, round(value))``), or _DRAW for a distribution."""
    if isinstance(dist, Constant):
        return max(1, round(dist.value))
    return _DRAW


class _mapped:
    """A Mix whose sampled values go through a conversion (validated up front)."""

    __slots__ = ("mix", "values")

    def __init__(self, mix: Mix, convert) -> None:
        self.mix = mix
        self.values = {v: convert(v) for v in mix.values}

    def sample(self, rng):
        return self.values[self.mix.sample(rng)]
