"""fedsim's Environment (SimPy's loop inlined) must process events exactly as SimPy does."""

from __future__ import annotations

import pytest
import simpy

from fedsim.world.environment import Environment
from test_task import program


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("use_task", [False, True])
def test_same_event_order_as_simpy(seed, use_task):
    """Random programs (ties, zero delays, urgent events, resources, interrupts)."""
    assert program(seed, use_task, Environment) == program(seed, use_task, simpy.Environment)


def test_run_until_time_event_and_empty_schedule():
    for cls in (simpy.Environment, Environment):
        env = cls()
        seen = []

        def proc(env=env, seen=seen):
            for _ in range(3):
                yield env.timeout(2, value="v")
                seen.append(env.now)
            return "done"

        p = env.process(proc())
        env.run(until=3)
        assert (env.now, seen) == (3, [2])
        assert env.run(until=p) == "done"
        assert (env.now, seen) == (6, [2, 4, 6])
        assert env.run() is None  # nothing left
        with pytest.raises(ValueError):
            env.run(until=6)
        with pytest.raises(ValueError):
            env.timeout(-1)
        never = env.event()
        with pytest.raises(RuntimeError, match="No scheduled events left"):
            env.run(until=never)


def test_failed_event_crashes_the_run_as_in_simpy():
    for cls in (simpy.Environment, Environment):
        env = cls()

        def boom(env=env):
            yield env.timeout(1)
            raise KeyError("x")

        env.process(boom())
        with pytest.raises(KeyError):
            env.run()


def test_timeout_value_and_shortcuts_bound_on_the_instance():
    env = Environment()
    t = env.timeout(5, value=7)
    assert isinstance(t, simpy.Timeout) and t.triggered and t.value == 7
    env.run()
    assert env.now == 5
    # process/event/all_of/any_of are bound methods on the instance, as simpy does for
    # its own class (no descriptor call per use)
    for name in ("process", "event", "all_of", "any_of"):
        assert name in env.__dict__
