"""``fedsim sweep`` on every executor: inline, local worker processes, and a Dask cluster.

A module-scoped ``distributed.LocalCluster`` (two single-threaded worker processes) stands in
for a remote cluster: the command line connects to it with ``--scheduler``.  The same small
sweep (3 points x 2 replications, one workload replayed from a CSV trace file) runs on each
executor; the combined tables must be identical, byte for byte.  Then the error paths: an
unreachable scheduler, too few workers, an unknown executor, a missing ``distributed``
package, failing tasks, and Ctrl-C."""

from __future__ import annotations

import functools
import json
import logging
import operator
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_run import fedsim

from fedsim.executors import (EXECUTORS, ExecutorError, SweepExecutor, make_executor,
                              register_executor)
from fedsim.runner import (SweepTask, portable_scenario, run_sweep, sweep_frame, sweep_task,
                           sweep_tasks)
from fedsim.scenario import load_scenario

distributed = pytest.importorskip("distributed", reason="pip install fedsim[distributed]")

BASE = """\
name: exectest
seed: 11
duration: 15s
warmup: 1s
replications: 2
regions:
  - id: a
  - id: b
network:
  rtt: {a: {b: 50ms}}
nodes:
  - {name: a, region: a, count: 2, gpus: 2, models: [{model: m, capabilities: [generate]}],
     service: {"*": {kind: lognormal, mean: 100ms, cv: 0.5}}}
  - {name: b, region: b, count: 2, gpus: 2, models: [{model: m, capabilities: [generate]}],
     service: {"*": {kind: lognormal, mean: 150ms, cv: 0.5}}}
workloads:
  - {name: chat, arrival: {kind: poisson, rate: 12/s}}
  - {name: replay, arrival: {kind: trace, path: arrivals.csv}}
faults:
  - {kind: crash, target: a-0, at: 4s, duration: 4s}
"""

SWEEP = """\
extends: base.yaml
sweep:
  points:
    - {router.strategy: least_latency}
    - {router.strategy: power_of_two_choices, router.fixes: [active_probes]}
    - {router.strategy: random, "workloads[0].arrival.rate": 20}
"""

FAILING = """\
extends: base.yaml
replications: 1
sweep:
  points:
    - {router.strategy: least_latency}
    - {router.strategy: random, "nodes[0].speed": 1.0e-310}
"""

# long runs, to interrupt
SLOW = """\
extends: base.yaml
duration: 10h
replications: 3
sweep:
  grid:
    router.strategy: [least_latency, random]
"""


fedsim = functools.partial(fedsim, timeout=180)  # sweeps on a cluster take longer


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("executors")
    (d / "base.yaml").write_text(BASE)
    (d / "sweep.yaml").write_text(SWEEP)
    (d / "failing.yaml").write_text(FAILING)
    (d / "slow.yaml").write_text(SLOW)
    stamps = [round(0.05 + 0.37 * i, 6) for i in range(40)]  # 40 arrivals over ~15 s
    (d / "arrivals.csv").write_text("time\n" + "\n".join(map(str, stamps)) + "\n")
    return d


@pytest.fixture(scope="module")
def cluster():
    """A Dask cluster on this machine: a scheduler and two single-threaded worker processes
    (as `dask scheduler` + `dask worker ADDRESS --nworkers 2 --nthreads 1` would give)."""
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                 silence_logs=logging.ERROR)
    try:
        yield c.scheduler_address
    finally:
        c.close(timeout=30)


@pytest.fixture(scope="module")
def inline_run(work):
    out = work / "inline"
    proc = fedsim("sweep", "sweep.yaml", "--executor", "inline", "--out", str(out),
                  "--no-report", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return proc, out


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("sweep.csv", "sweep.parquet")}


def _summary_without_execution(out: Path) -> dict:
    doc = json.loads((out / "summary.json").read_text())
    for key in ("executor", "workers", "threads", "scheduler", "out"):
        doc.pop(key, None)
    return doc


def _table_lines(stdout: str) -> list[str]:
    """The printed point table (the first line names the executor; the last the folder)."""
    lines = stdout.splitlines()
    return [line for line in lines[1:] if not line.startswith("wrote ")]


def _assert_same_as_inline(inline_run, proc, out):
    ref_proc, ref = inline_run
    assert proc.returncode == 0, proc.stderr
    assert _files(out) == _files(ref)  # byte-identical tables
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"),
                                  pd.read_parquet(ref / "sweep.parquet"))
    assert _summary_without_execution(out) == _summary_without_execution(ref)
    assert _table_lines(proc.stdout) == _table_lines(ref_proc.stdout)


# --------------------------------------------------------------------------- identity


def test_inline_table_is_ordered_by_point_and_seed(inline_run):
    proc, out = inline_run
    frame = pd.read_parquet(out / "sweep.parquet")
    assert list(frame["point"]) == [p for p in dict.fromkeys(frame["point"]) for _ in (0, 1)]
    assert list(frame["seed"]) == [11, 12] * 3
    assert list(frame["router.strategy"]) == ["least_latency"] * 2 + \
        ["power_of_two_choices"] * 2 + ["random"] * 2
    assert (frame["error"] == "").all() and (frame["requests"] > 0).all()
    assert "in this process" in proc.stdout.splitlines()[0]
    doc = json.loads((out / "summary.json").read_text())
    assert doc["executor"] == "inline" and doc["workers"] == 1


def test_local_processes_give_the_same_tables(work, inline_run):
    out = work / "local"
    proc = fedsim("sweep", "sweep.yaml", "--executor", "local", "--workers", "2", "--out",
                  str(out), "--no-report", cwd=work)
    _assert_same_as_inline(inline_run, proc, out)
    assert "on 2 local worker processes" in proc.stdout.splitlines()[0]


def test_dask_scheduler_gives_the_same_tables(work, inline_run, cluster):
    out = work / "dask"
    proc = fedsim("sweep", "sweep.yaml", "--executor", "dask", "--scheduler", cluster,
                  "--out", str(out), "--no-report", cwd=work)
    _assert_same_as_inline(inline_run, proc, out)
    assert f"on the Dask cluster at {cluster} (2 workers)" in proc.stdout.splitlines()[0]
    doc = json.loads((out / "summary.json").read_text())
    assert doc["executor"] == "dask" and doc["scheduler"] == cluster and doc["workers"] == 2


def test_scheduler_alone_means_dask(work, inline_run, cluster):
    out = work / "dask-implied"
    proc = fedsim("sweep", "sweep.yaml", "--scheduler", cluster, "--workers", "2", "--quiet",
                  "--out", str(out), "--no-report", cwd=work)
    _assert_same_as_inline(inline_run, proc, out)
    assert proc.stderr == ""


def test_dask_without_scheduler_starts_a_local_cluster(work, inline_run):
    out = work / "dask-local"
    proc = fedsim("sweep", "sweep.yaml", "--executor", "dask", "--workers", "2", "--out",
                  str(out), "--no-report", cwd=work)
    _assert_same_as_inline(inline_run, proc, out)
    assert "(started for this sweep; give --scheduler ADDRESS" in proc.stderr
    assert "on a local Dask cluster (2 workers)" in proc.stdout.splitlines()[0]


def test_threads_of_one_worker_give_the_same_results(work, inline_run):
    """`dask worker` runs several threads by default: runs side by side in one process must
    not share state.  (Through the API; the cluster lives in this process.)"""
    loaded = load_scenario(work / "sweep.yaml")
    tasks = sweep_tasks(loaded.points, loaded.seeds())
    with distributed.LocalCluster(n_workers=1, threads_per_worker=3, processes=False,
                                  dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.ERROR) as c:
        ex = make_executor("dask", scheduler=c.scheduler_address)
        ex.open(len(tasks))
        try:
            assert (ex.nworkers, ex.nthreads) == (1, 3)
            outcome = run_sweep(tasks, executor=ex)
        finally:
            ex.close()
    frame = sweep_frame(loaded.points, outcome)
    pd.testing.assert_frame_equal(frame, pd.read_parquet(inline_run[1] / "sweep.parquet"))


def test_tasks_are_self_contained(work):
    """A task carries the resolved scenario with the trace inlined: it runs where the
    client's files are not, with the same result."""
    loaded = load_scenario(work / "sweep.yaml")
    tasks = sweep_tasks(loaded.points, loaded.seeds())
    assert [(t.point, t.seed) for t in tasks] == [(p.name, s) for p in loaded.points
                                                  for s in (11, 12)]
    data = json.loads(tasks[0].scenario)
    replay = data["workloads"][1]["arrival"]
    assert "path" not in replay and len(replay["timestamps"]) == 40
    assert "arrivals.csv" not in tasks[0].scenario
    with_file = sweep_task(SweepTask(tasks[0].point,
                                     loaded.points[0].scenario.model_dump_json(), 11))
    assert with_file["ok"]
    assert sweep_task(tasks[0])["summary"] == with_file["summary"]
    assert portable_scenario(loaded.points[0].scenario) == data


class _Reversed(SweepExecutor):
    """Runs every task, then hands the results back last first."""

    name = "reversed"

    def run(self, tasks, fn):
        results = [(i, self.call(fn, t)) for i, t in enumerate(tasks)]
        yield None  # a heartbeat
        yield from reversed(results)


def test_completion_order_does_not_matter_and_executors_plug_in(work):
    register_executor("reversed-test", _Reversed, "test executor", replace=True)
    try:
        loaded = load_scenario(work / "sweep.yaml", overrides=["replications=1"])
        tasks = sweep_tasks(loaded.points, loaded.seeds())
        order, ticks = [], []
        rev = run_sweep(tasks, executor="reversed-test", on_done=lambda i, r: order.append(i),
                        tick=lambda: ticks.append(1))
        assert order == [2, 1, 0] and ticks == [1]
        assert rev.executor["executor"] == "reversed"
        inline = run_sweep(tasks, executor="inline")
        pd.testing.assert_frame_equal(sweep_frame(loaded.points, rev),
                                      sweep_frame(loaded.points, inline))
    finally:
        EXECUTORS.pop("reversed-test", None)


PLUGIN = """\
from fedsim.executors import InlineExecutor


class BackwardsExecutor(InlineExecutor):
    \"\"\"Runs the tasks last first (a plugin's executor).\"\"\"

    name = "backwards"

    def run(self, tasks, fn):
        for i in reversed(range(len(tasks))):
            yield i, self.call(fn, tasks[i])

    def describe(self):
        return "backwards in this process"
"""


def test_an_installed_package_adds_an_executor(work, inline_run, tmp_path):
    """An entry point in the fedsim.executors group makes `--executor NAME` work without
    any import in fedsim."""
    site = tmp_path / "site"
    dist = site / "fedsim_backwards-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fedsim-backwards\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[fedsim.executors]\nbackwards = fedsim_backwards:BackwardsExecutor\n")
    (site / "fedsim_backwards.py").write_text(PLUGIN)
    out = work / "backwards"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, "-m", "fedsim.cli", "sweep", "sweep.yaml",
                           "--executor", "backwards", "--out", str(out), "--no-report"],
                          cwd=work, capture_output=True, text=True, timeout=180, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    _assert_same_as_inline(inline_run, proc, out)
    assert "backwards in this process" in proc.stdout.splitlines()[0]


# --------------------------------------------------------------------------- failures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_exits_2_quickly(work):
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = work / "unreachable"
    started = time.monotonic()
    proc = fedsim("sweep", "sweep.yaml", "--scheduler", address, "--connect-timeout", "2",
                  "--out", str(out), cwd=work, timeout=90)
    assert proc.returncode == 2
    assert time.monotonic() - started < 60
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"fedsim sweep: cannot connect to the Dask scheduler at {address}")
    assert "dask scheduler" in lines[0]
    assert not out.exists()


def test_too_few_workers_exits_2(work, cluster):
    proc = fedsim("sweep", "sweep.yaml", "--scheduler", cluster, "--workers", "5",
                  "--connect-timeout", "1", cwd=work)
    assert proc.returncode == 2
    assert f"the Dask scheduler at {cluster} has 2 workers, waited 1 s for 5" in proc.stderr
    assert f"dask worker {cluster}" in proc.stderr


def test_unknown_executor_suggests_the_closest(work):
    proc = fedsim("sweep", "sweep.yaml", "--executor", "dsak", cwd=work)
    assert proc.returncode == 2
    assert "unknown executor 'dsak' (did you mean 'dask'?); known: local, inline, dask" \
        in proc.stderr
    with pytest.raises(ExecutorError, match="did you mean 'inline'"):
        make_executor("inlin")


def test_scheduler_is_only_for_dask(work):
    proc = fedsim("sweep", "sweep.yaml", "--executor", "local", "--scheduler",
                  "tcp://127.0.0.1:8786", cwd=work)
    assert proc.returncode == 2
    assert "--scheduler is for executors that connect to a cluster (dask)" in proc.stderr
    bad = fedsim("sweep", "sweep.yaml", "--workers", "0", cwd=work)
    assert bad.returncode == 2 and "--workers must be at least 1" in bad.stderr


@pytest.mark.parametrize("module", ["distributed", "dask"])
def test_missing_distributed_is_a_one_line_hint(work, module):
    code = (f"import sys; sys.modules[{module!r}] = None; from fedsim.cli import main; "
            "raise SystemExit(main(['sweep', 'sweep.yaml', '--executor', 'dask']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith("pip install fedsim[distributed]")


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_failing_point_is_reported_with_its_point_and_seed(work, cluster, executor):
    out = work / f"failing-{executor}"
    where = ["--workers", "2"] if executor == "local" else ["--scheduler", cluster]
    proc = fedsim("sweep", "failing.yaml", "--executor", executor, *where, "--out", str(out),
                  "--no-report", cwd=work)
    assert proc.returncode == 1
    assert ("fedsim sweep: point router.strategy=random, nodes[0].speed=1e-310 (seed 11) "
            "failed: OverflowError") in proc.stderr
    frame = pd.read_parquet(out / "sweep.parquet")
    assert list(frame["error"].str.split(":").str[0]) == ["", "OverflowError"]
    assert frame["requests"][0] > 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["failed"][0]["seed"] == 11 and doc["failed"][0]["params"]["nodes[0].speed"] == 1e-310


@pytest.mark.parametrize("executor", ["inline", "local", "dask"])
def test_a_task_that_raises_becomes_an_error_row(work, cluster, executor):
    """Beyond sweep_task's own error handling: whatever a task function raises (here an
    IndexError on the worker) is the result of that task only."""
    loaded = load_scenario(work / "sweep.yaml", overrides=["replications=1"])
    tasks = sweep_tasks(loaded.points, loaded.seeds())
    kw = {"scheduler": cluster} if executor == "dask" else {"workers": 2}
    if executor == "inline":
        kw = {}
    outcome = run_sweep(tasks, executor=executor, fn=operator.itemgetter(5), **kw)
    assert sorted(outcome.outputs) == [0, 1, 2]
    for res in outcome.outputs.values():
        assert res["ok"] is False and res["error"] == "IndexError: tuple index out of range"
    frame = sweep_frame(loaded.points, outcome)
    assert list(frame["point"]) == [p.name for p in loaded.points]
    assert (frame["error"] == "IndexError: tuple index out of range").all()


def _start_cluster_processes(worker_code: str = ""):
    """`dask scheduler` and one `dask worker` (no nanny, one thread) as subprocesses; returns
    (address, processes).  ``worker_code`` runs in the worker before it starts."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", "127.0.0.1:0"], **quiet)
    worker = subprocess.Popen(
        [sys.executable, "-c", f"{worker_code}; from distributed.cli.dask_worker import main; "
         "main(['--no-nanny', '--nthreads', '1', '--dashboard-address', '127.0.0.1:0', "
         f"{address!r}])"], **quiet)
    return address, [worker, scheduler]


def _stop(processes) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_worker_without_fedsim_is_refused_up_front(work):
    """A worker process that cannot import fedsim: the sweep stops before submitting
    anything, saying which worker and what to install."""
    address, processes = _start_cluster_processes("import sys; sys.modules['fedsim'] = None")
    try:
        # the command itself waits for the scheduler and the worker to come up
        proc = fedsim("sweep", "sweep.yaml", "--scheduler", address, "--connect-timeout", "60",
                      "--out", str(work / "nofedsim"), cwd=work)
    finally:
        _stop(processes)
    assert proc.returncode == 2
    assert "1 Dask worker(s) cannot import fedsim (e.g. tcp://127.0.0.1:" in proc.stderr
    assert "install fedsim" in proc.stderr
    assert not (work / "nofedsim").exists()


def test_scheduler_lost_midway_fails_the_runs_left(work):
    """The scheduler dies during the sweep: every run not finished is reported as failed with
    its point and seed, what finished is written, exit 1, no traceback."""
    address, processes = _start_cluster_processes("pass")
    out = work / "lost"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedsim.cli", "sweep", "sweep.yaml", "--scheduler", address,
             "--connect-timeout", "60", "--set", "duration=1h", "--out", str(out),
             "--no-report"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 90
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(1.0)  # 6 runs of several seconds each on one worker: most still to do
        processes[1].kill()  # the scheduler
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _stop(processes)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert re.search(r"point router\.strategy=random, workloads\[0\]\.arrival\.rate=20 "
                     r"\(seed 12\) failed: cancelled by Dask: lost the connection to the "
                     r"scheduler", stderr), stderr
    doc = json.loads((out / "summary.json").read_text())
    assert doc["finished"] == 6 and len(doc["failed"]) >= 1
    assert len(pd.read_parquet(out / "sweep.parquet")) == 6


# --------------------------------------------------------------------------- Ctrl-C


def _interrupt(work: Path, out: Path, *args: str,
               running=None) -> tuple[subprocess.Popen, str, str, float]:
    """Start the slow sweep, wait until its runs have started (``running()`` true, when
    given: e.g. the cluster is processing them), then press Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedsim.cli", "sweep", "slow.yaml", "--out", str(out),
         "--no-report", *args], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if running is not None:
        while not running() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    time.sleep(1.5)  # the runs have started, none can have finished (each takes minutes)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return proc, stdout, stderr, time.monotonic() - sent


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_ctrl_c_cancels_and_keeps_what_finished(work, executor):
    """Local worker processes, or the workers of the local Dask cluster the command started,
    are stopped at once; the output folder says the sweep was interrupted."""
    out = work / f"interrupted-{executor}"
    proc, stdout, stderr, took = _interrupt(work, out, "--executor", executor, "--workers", "2")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: kept 0 of 6 runs" in stderr
    assert took < 60
    doc = json.loads((out / "summary.json").read_text())
    assert doc["interrupted"] is True and doc["finished"] == 0
    assert len(pd.read_parquet(out / "sweep.parquet")) == 0


def test_ctrl_c_on_a_running_cluster_cancels_its_tasks(work, cluster):
    """Runs of a remote cluster cannot be stopped midway: they are cancelled, the command
    returns at once, and the cluster is free again once the workers drop the runs they were
    in (here: the last test of the module, with runs of a few seconds)."""
    out = work / "interrupted-scheduler"
    with distributed.Client(cluster, set_as_default=False, timeout=30) as client:
        proc, stdout, stderr, took = _interrupt(
            work, out, "--scheduler", cluster, "--set", "duration=30m",
            running=lambda: any(client.processing().values()))
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: kept" in stderr
    assert took < 30
    doc = json.loads((out / "summary.json").read_text())
    assert doc["interrupted"] is True and doc["finished"] < 6
    with distributed.Client(cluster, set_as_default=False, timeout=30) as client:
        deadline = time.monotonic() + 120
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(client.processing().values())
