"""fedsim: discrete-event simulation and benchmarking of federated model-inference routing.

* :mod:`fedsim.federation` — a faithful, dependency-free Python implementation of the APR
  Federation router (apr-cli 0.30).
* :mod:`fedsim.world` — the SimPy world (regions, nodes, network, workloads, faults) that
  drives it; ``fedsim.run(scenario, seed=None)`` runs one scenario.
"""

__version__ = "0.1.0"


def run(scenario, seed=None, stream_to=None):
    """Simulate a :class:`fedsim.world.Scenario` and return its :class:`fedsim.world.Result`.

    ``stream_to=DIR`` streams the tables to ``DIR/<table>.parquet`` while the run goes on
    and keeps counters and quantile sketches instead (big runs in little memory)."""
    from .world import run as _run

    return _run(scenario, seed, stream_to=stream_to)
