"""Task must reproduce simpy.Process's event order exactly (it replaces it on the hot path).

Random programs with many ties (small integer delays), urgent events, zero delays, shared
resources and interrupts run once with every leaf generator as ``env.process`` and once as
``Task``; the traces of who did what when, in which order, must be equal.
"""

from __future__ import annotations

import random

import pytest
import simpy

from fedsim.world.task import Task


def program(seed: int, use_task: bool, env_cls=simpy.Environment) -> list[tuple]:
    rng = random.Random(seed)
    env = env_cls()
    trace: list[tuple] = []
    gate = simpy.Resource(env, capacity=2)
    leaves: list = []

    def leaf(name: str, plan: list[tuple]):
        trace.append((env.now, name, "start"))
        try:
            for kind, arg in plan:
                if kind == "sleep":
                    yield env.timeout(arg)
                elif kind == "queue":
                    with gate.request() as req:
                        yield req
                        trace.append((env.now, name, "got"))
                        yield env.timeout(arg)
                elif kind == "spawn":  # start another leaf as the last thing before a yield
                    wake = env.timeout(arg)
                    start(f"{name}.child", [("sleep", arg)])
                    yield wake
                trace.append((env.now, name, kind, arg))
        except simpy.Interrupt as stop:
            trace.append((env.now, name, "interrupted", stop.cause))

    def start(name: str, plan: list[tuple]):
        gen = leaf(name, plan)
        slot = len(leaves)  # keep creation order even when the leaf spawns as it starts
        leaves.append(None)
        leaves[slot] = Task(env, gen) if use_task else env.process(gen)

    def source():
        yield env.timeout(1)
        for i in range(40):
            plan = [(rng.choice(["sleep", "sleep", "queue", "spawn"]), rng.choice([0, 1, 2, 5]))
                    for _ in range(rng.randint(1, 4))]
            wake = env.timeout(rng.choice([0, 0, 1, 2, 3]))
            if rng.random() < 0.3:  # an urgent event due now: the Task must start after it
                env.process(_noop(env, trace))
            start(f"r{i}", plan)  # the contract: a Task starts as its creator's last action
            yield wake

    def killer():
        for _ in range(8):
            yield env.timeout(rng.choice([1, 2, 3]))
            alive = [p for p in leaves if p is not None and p.is_alive]
            if alive:
                victim = alive[rng.randrange(len(alive))]
                victim.interrupt("crash")
                trace.append((env.now, "killer", "interrupt"))

    def ticker():
        while True:
            yield env.timeout(2)
            trace.append((env.now, "tick"))
            # an urgent event due now: leaves created at this instant must start after it
            env.process(_noop(env, trace))

    env.process(source())
    env.process(killer())
    env.process(ticker())
    env.run(until=60)
    return trace


def _noop(env, trace):
    trace.append((env.now, "noop"))
    yield env.timeout(0)


@pytest.mark.parametrize("seed", range(40))
def test_task_keeps_process_event_order(seed):
    expected = program(seed, use_task=False)
    assert len(expected) > 100
    assert program(seed, use_task=True) == expected


def test_traces_exercise_interrupts_queues_and_ties():
    kinds = {step[2] for seed in range(40) for step in program(seed, False) if len(step) > 2}
    assert {"interrupted", "got", "spawn", "start"} <= kinds


def test_task_runs_to_completion_and_reports_liveness():
    env = simpy.Environment()
    done = []

    def gen():
        yield env.timeout(5)
        done.append(env.now)

    t = Task(env, gen())
    assert t.is_alive
    env.run()
    assert done == [5] and not t.is_alive
    with pytest.raises(RuntimeError):
        t.interrupt()


def test_task_exceptions_propagate():
    env = simpy.Environment()

    def gen():
        yield env.timeout(1)
        raise ValueError("boom")

    Task(env, gen())
    with pytest.raises(ValueError, match="boom"):
        env.run()


def test_on_exit_gets_the_return_value_or_the_exception_at_the_end():
    env = simpy.Environment()
    exits = []

    def ok():
        yield env.timeout(2)
        return "answer"

    def failing():
        yield env.timeout(3)
        raise ValueError("boom")

    def on_exit(context, value, error):
        exits.append((env.now, context, value, None if error is None else repr(error)))

    a = Task(env, ok(), on_exit, "a")
    b = Task(env, failing(), on_exit, "b")
    env.run()  # the ValueError went to on_exit, not out of the run
    assert exits == [(2, "a", "answer", None), (3, "b", None, "ValueError('boom')")]
    assert not a.is_alive and not b.is_alive


def test_on_exit_may_reraise():
    env = simpy.Environment()

    def failing():
        yield env.timeout(1)
        raise KeyError("bug")

    def on_exit(context, value, error):
        raise error

    Task(env, failing(), on_exit)
    with pytest.raises(KeyError, match="bug"):
        env.run()


def test_finished_requests_leave_no_cyclic_garbage():
    """Requests must be freed by reference counting as they finish: a cycle per request
    would let a 10-million-request run hold gigabytes until the cyclic GC gets round to it."""
    import gc

    from fedsim.world import Scenario, World

    sc = Scenario(name="gc", duration=20.0, regions=[{"id": "r"}],
                  nodes=[{"name": "n", "region": "r", "count": 4,
                          "models": [{"model": "m", "capabilities": ["generate"]}],
                          "service": {"*": {"kind": "exponential", "mean": 0.05}}}],
                  router={"strategy": "least_outstanding"},
                  workloads=[{"arrival": {"kind": "poisson", "rate": 40.0}}])
    world = World(sc, 1)
    gc.collect()
    gc.disable()
    try:
        world.run()
        garbage = gc.collect()
    finally:
        gc.enable()
    assert world.requests_done > 500
    assert garbage < 50, f"{garbage} objects in reference cycles after {world.requests_done} requests"
