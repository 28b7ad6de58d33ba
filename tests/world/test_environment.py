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


@pytest.fixture
def gc_settings():
    """Leave the collector as the test found it."""
    import gc

    saved = gc.get_threshold()
    yield gc
    gc.set_threshold(*saved)


def _threshold_during_run(env):
    seen = []

    def proc():
        yield env.timeout(1)
        import gc

        seen.append(gc.get_threshold())

    env.process(proc())
    env.run()
    return seen[0]


def test_run_relaxes_the_young_collection_threshold_and_restores_it(gc_settings):
    from fedsim.world import environment

    gc_settings.set_threshold(900, 11, 12)
    during = _threshold_during_run(Environment())
    assert during == (environment.GC_YOUNG_THRESHOLD, 11, 12)
    assert gc_settings.get_threshold() == (900, 11, 12)

    # restored after a run that raises
    env = Environment()

    def failing():
        yield env.timeout(1)
        raise RuntimeError("boom")

    env.process(failing())
    with pytest.raises(RuntimeError, match="boom"):
        env.run()
    assert gc_settings.get_threshold() == (900, 11, 12)


def test_relaxed_gc_never_lowers_nests_and_can_be_switched_off(gc_settings, monkeypatch):
    from fedsim.world import environment

    young = environment.GC_YOUNG_THRESHOLD
    gc_settings.set_threshold(young * 3, 10, 10)  # already higher: left alone
    assert _threshold_during_run(Environment())[0] == young * 3
    gc_settings.set_threshold(0, 10, 10)  # automatic collection off: left off
    assert _threshold_during_run(Environment())[0] == 0

    gc_settings.set_threshold(700, 10, 10)
    with environment.relaxed_gc():
        with environment.relaxed_gc():  # e.g. a world run from a progress callback
            assert gc_settings.get_threshold()[0] == young
        assert gc_settings.get_threshold()[0] == young  # the outer block still runs
    assert gc_settings.get_threshold() == (700, 10, 10)

    # a run in another thread leaves the process's collector to its host (e.g. Dask)
    import threading

    seen = []
    t = threading.Thread(target=lambda: seen.append(_threshold_during_run(Environment())))
    t.start()
    t.join()
    assert seen == [(700, 10, 10)]

    monkeypatch.setattr(environment, "GC_YOUNG_THRESHOLD", None)
    assert _threshold_during_run(Environment()) == (700, 10, 10)
