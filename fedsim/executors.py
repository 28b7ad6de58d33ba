"""Where the runs of a sweep execute: a registry of sweep executors by name.

=========  ==================================================================================
``local``  a pool of worker processes on this machine, one per core by default (``--workers``);
           with one worker the runs go in this process, one after the other
``inline`` every run in this process, one after the other, whatever ``--workers`` says (for
           debugging: breakpoints, profilers, plain tracebacks)
``dask``   a Dask distributed cluster: ``--scheduler tcp://host:8786`` connects to a running
           one (``--workers N``: wait until N workers have joined); without ``--scheduler`` a
           local Dask cluster of ``--workers`` processes is started for the sweep and closed
           after it.  Needs the ``distributed`` extra: ``pip install fedsim[distributed]``
=========  ==================================================================================

A sweep is a list of self-contained tasks (:class:`fedsim.runner.SweepTask`: the point's
name, the resolved scenario as JSON with any trace file inlined, and the seed), so a worker on
another machine needs fedsim (the same version) but none of the client's files.  Each task's
result is a small dict; the executor yields them as they finish, and
:func:`fedsim.runner.run_sweep` files them by task index, so the combined table never depends on
the executor or on the order in which tasks finish.

Adding an executor::

    from fedsim.executors import SweepExecutor, register_executor

    class MyExecutor(SweepExecutor):
        name = "mine"
        def run(self, tasks, fn):
            for i, task in enumerate(tasks):
                yield i, self.call(fn, task)

    register_executor("mine", MyExecutor, "runs tasks my way")

or make it available to the ``fedsim`` command without an import, with an entry point in the
``fedsim.executors`` group of your package (``mine = "mypackage.module:MyExecutor"``).
A factory is called with the keyword arguments ``workers`` (None: the executor's default),
``scheduler`` (None unless given) and ``timeout`` (seconds to connect / wait for workers).
"""

from __future__ import annotations

import difflib
import logging
import os
import signal
import time
import traceback
import uuid
import warnings
from contextlib import contextmanager
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence

__all__ = ["EXECUTORS", "ExecutorError", "SweepExecutor", "LocalExecutor", "InlineExecutor",
           "DaskExecutor", "register_executor", "make_executor", "executor_names",
           "DISTRIBUTED_HINT"]

DISTRIBUTED_HINT = "pip install fedsim[distributed]"
DEFAULT_TIMEOUT = 10.0
# how often run() yields None while nothing finishes, so the caller can refresh its progress
HEARTBEAT = 0.5


class ExecutorError(Exception):
    """The executor cannot run the sweep (bad option, missing package, unreachable cluster):
    a one-line message for the user."""


Yielded = Optional[tuple[int, dict]]


class SweepExecutor:
    """Runs sweep tasks somewhere and yields ``(task index, result dict)`` as they finish.

    Life cycle: construct (check options) -> :meth:`open` (start or connect; raises
    :class:`ExecutorError`) -> :meth:`run` -> :meth:`close`.  On Ctrl-C the caller calls
    :meth:`cancel` (stop what has not finished, now) before :meth:`close`.  Usable as a
    context manager (``open`` on enter, ``close`` on exit)."""

    name: ClassVar[str] = "?"
    uses_scheduler: ClassVar[bool] = False

    def __init__(self, workers: Optional[int] = None, scheduler: Optional[str] = None,
                 timeout: Optional[float] = None):
        if workers is not None and workers < 1:
            raise ExecutorError("--workers must be at least 1")
        if scheduler is not None and not self.uses_scheduler:
            raise ExecutorError(f"--scheduler is for executors that connect to a cluster "
                                f"(dask); the {self.name} executor runs on this machine")
        if timeout is not None and not timeout > 0:
            raise ExecutorError("--connect-timeout must be a positive number of seconds")
        self.workers = workers
        self.scheduler = scheduler
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)

    # -- life cycle
    def open(self, ntasks: int) -> None:
        """Start (or connect to) the workers for ``ntasks`` tasks."""

    def run(self, tasks: Sequence[Any], fn: Callable[[Any], dict]) -> Iterator[Yielded]:
        """Yield ``(index, fn(tasks[index]))`` as tasks finish, in any order; a task that
        raised (or whose worker died) yields an error dict (see :meth:`failure`).  May yield
        ``None`` now and then while nothing finishes (about every :data:`HEARTBEAT` s)."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Ctrl-C: drop every unfinished task and stop the workers this executor started."""

    def close(self) -> None:
        """Release the workers / the connection (after a finished or cancelled run)."""

    def __enter__(self) -> "SweepExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- description
    def describe(self) -> str:
        """Where the runs go, for a sentence "N points x R replications <describe()>"."""
        return f"on the {self.name} executor"

    def info(self) -> dict:
        """What summary.json records about the execution."""
        return {"executor": self.name, "workers": self.workers, "scheduler": self.scheduler}

    # -- helpers for subclasses
    @staticmethod
    def failure(err: BaseException, what: str = "") -> dict:
        """The result of a task that raised instead of returning (or whose worker died)."""
        text = f"{type(err).__name__}: {err}"
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        return {"ok": False, "error": f"{what}{text}", "traceback": tb}

    @classmethod
    def call(cls, fn: Callable[[Any], dict], task: Any) -> dict:
        """``fn(task)`` with an exception turned into an error result (Ctrl-C passes)."""
        try:
            return fn(task)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            return cls.failure(err)


# --------------------------------------------------------------------------- registry

EXECUTORS: dict[str, tuple[Callable[..., SweepExecutor], str]] = {}
_entry_points_loaded = False


def register_executor(name: str, factory: Callable[..., SweepExecutor], description: str = "",
                      *, replace: bool = False) -> None:
    """Make an executor usable by name (``fedsim sweep --executor NAME``).  ``factory`` is
    called with ``workers=``, ``scheduler=`` and ``timeout=`` keyword arguments."""
    if name in EXECUTORS and not replace:
        raise ValueError(f"an executor named {name!r} is already registered")
    EXECUTORS[name] = (factory, description)


def _load_entry_points() -> None:
    """Executors other packages declare in the ``fedsim.executors`` entry-point group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="fedsim.executors"):
        if ep.name in EXECUTORS:
            continue
        try:
            factory = ep.load()
        except Exception as err:  # a broken plugin must not break the built-in executors
            logging.getLogger(__name__).warning("executor %r (%s) cannot be loaded: %s",
                                                ep.name, ep.value, err)
            continue
        doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        register_executor(ep.name, factory, doc[0] if doc else "")


def executor_names() -> list[str]:
    _load_entry_points()
    return list(EXECUTORS)


def make_executor(name: str, *, workers: Optional[int] = None, scheduler: Optional[str] = None,
                  timeout: Optional[float] = None) -> SweepExecutor:
    """The executor registered as ``name``; unknown names raise :class:`ExecutorError` with the
    closest known one."""
    if name not in EXECUTORS:
        _load_entry_points()
    try:
        factory, _ = EXECUTORS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(EXECUTORS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ExecutorError(f"unknown executor {name!r}{hint}; known: "
                            f"{', '.join(EXECUTORS)}") from None
    return factory(workers=workers, scheduler=scheduler, timeout=timeout)


def cpu_count() -> int:
    return os.cpu_count() or 1


def _sweep_task():
    from .runner import sweep_task

    return sweep_task


# --------------------------------------------------------------------------- inline


class InlineExecutor(SweepExecutor):
    """Every run in this process, one after the other (``--workers`` is ignored)."""

    name = "inline"

    def run(self, tasks, fn):
        for i, task in enumerate(tasks):
            yield i, self.call(fn, task)

    def describe(self) -> str:
        return "in this process"

    def info(self) -> dict:
        return {"executor": self.name, "workers": 1, "scheduler": None}


# --------------------------------------------------------------------------- local


class LocalExecutor(SweepExecutor):
    """A pool of spawned worker processes on this machine (one per core by default); with
    one worker (or one task) the runs go in this process, as with ``inline``."""

    name = "local"

    def __init__(self, workers=None, scheduler=None, timeout=None):
        super().__init__(workers, scheduler, timeout)
        self.processes = 1
        self._pool = None
        self._futures: dict = {}

    def open(self, ntasks: int) -> None:
        self.processes = max(1, min(self.workers or cpu_count(), ntasks))

    def run(self, tasks, fn):
        if self.processes <= 1:
            for i, task in enumerate(tasks):
                yield i, self.call(fn, task)
            return
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        from .runner import _worker_init

        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=ctx,
                                         initializer=_worker_init)
        self._futures = {self._pool.submit(fn, t): i for i, t in enumerate(tasks)}
        pending = set(self._futures)
        while pending:
            done, pending = wait(pending, timeout=HEARTBEAT, return_when=FIRST_COMPLETED)
            if not done:
                yield None
            for fut in sorted(done, key=self._futures.__getitem__):
                try:
                    res = fut.result()
                except BrokenProcessPool as err:
                    res = self.failure(err, "worker process died: ")
                except Exception as err:
                    res = self.failure(err)
                yield self._futures[fut], res
        self._pool.shutdown(wait=True)
        self._pool = None

    def cancel(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for fut in self._futures:
            fut.cancel()
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # the workers this executor started
            try:
                p.terminate()
            except Exception:
                pass
        for p in procs:
            try:
                p.join(timeout=5)
            except Exception:
                pass

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        if self.processes <= 1:
            return "in this process (1 worker)"
        return f"on {self.processes} local worker processes"

    def info(self) -> dict:
        return {"executor": self.name, "workers": self.processes, "scheduler": None}


# --------------------------------------------------------------------------- dask


def _fedsim_probe() -> str:
    """Run on every Dask worker: the fedsim version there (or why it cannot be imported)."""
    try:
        import fedsim

        return str(getattr(fedsim, "__version__", "?"))
    except Exception as err:
        return f"!{type(err).__name__}: {err}"


# Not importable under this name, so cloudpickle ships the function itself to the workers:
# the probe works on a worker that lacks fedsim (and says so).
_fedsim_probe.__module__ = "__fedsim_probe__"
_fedsim_probe.__qualname__ = "_fedsim_probe"


@contextmanager
def _quiet_distributed(level: int = logging.CRITICAL):
    """distributed logs connection chatter (and tracebacks on shutdown) at WARNING/ERROR;
    fedsim reports what matters itself."""
    names = {"distributed", "tornado", "asyncio"}
    names.update(n for n in logging.root.manager.loggerDict  # dask's config sets some levels
                 if n.startswith(("distributed.", "tornado.")))
    loggers = [logging.getLogger(n) for n in sorted(names)]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, old):
            lg.setLevel(lvl)


@contextmanager
def _sigint_ignored():
    """Processes started inside inherit SIGINT ignored (a terminal's Ctrl-C reaches the whole
    process group; this process cancels and stops them itself)."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class DaskExecutor(SweepExecutor):
    """A Dask distributed cluster: ``scheduler`` (``tcp://host:8786``) connects to a running
    one and waits for ``workers`` workers (default 1); without it, a local cluster of
    ``workers`` single-threaded processes (default: one per core) is started and closed."""

    name = "dask"
    uses_scheduler = True

    def __init__(self, workers=None, scheduler=None, timeout=None):
        super().__init__(workers, scheduler, timeout)
        if scheduler is not None and not str(scheduler).strip():
            raise ExecutorError("--scheduler: expected an address such as tcp://host:8786")
        self.client = None
        self.cluster = None
        self.nworkers = 0
        self.nthreads = 0
        self._futures: list = []
        self._quiet = None
        self._cancelled = False
        self._lost = ""  # why the futures still pending were lost, if they were

    # -- connecting
    def open(self, ntasks: int) -> None:
        try:
            import distributed
        except ImportError as err:
            missing = getattr(err, "name", None) or "distributed"
            raise ExecutorError(f"the dask executor needs the {missing!r} package "
                                f"(not installed): {DISTRIBUTED_HINT}") from None
        self._quiet = _quiet_distributed()
        self._quiet.__enter__()
        try:
            if self.scheduler is None:
                self._start_local(distributed, ntasks)
            else:
                self._connect(distributed)
            self._check_workers()
        except BaseException:
            self.close()
            raise

    def _start_local(self, distributed, ntasks: int) -> None:
        n = max(1, min(self.workers or cpu_count(), ntasks))
        try:
            with _sigint_ignored(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True,
                    dashboard_address="127.0.0.1:0", host="127.0.0.1",
                    silence_logs=logging.CRITICAL)
        except Exception as err:
            raise ExecutorError(f"cannot start a local Dask cluster: "
                                f"{type(err).__name__}: {err}") from None
        self.client = distributed.Client(self.cluster, set_as_default=False)

    def _connect(self, distributed) -> None:
        address = str(self.scheduler).strip()
        client = distributed.Client.__new__(distributed.Client)
        try:
            client.__init__(address, timeout=self.timeout, set_as_default=False)
        except Exception as err:
            # a half-built Client would try to close itself again when collected, noisily
            try:
                client.status = "closed"
            except Exception:
                pass
            if isinstance(err, ValueError):
                why = f"bad address ({err})"
            elif isinstance(err, (OSError, TimeoutError)):
                why = f"no answer within {self.timeout:g} s ({err})"
            else:
                why = f"it does not answer as a Dask scheduler ({type(err).__name__}: {err})"
            raise ExecutorError(f"cannot connect to the Dask scheduler at {address}: {why}; "
                                "is `dask scheduler` running there? "
                                "(--connect-timeout sets how long to try)") from None
        self.client = client
        want = self.workers or 1
        try:
            client.wait_for_workers(want, timeout=self.timeout)
        except Exception:
            have = len(self._workers())
            raise ExecutorError(f"the Dask scheduler at {address} has {have} worker"
                                f"{'s' if have != 1 else ''}, waited {self.timeout:g} s for "
                                f"{want}: start some with `dask worker {address} --nthreads 1`"
                                " (--connect-timeout sets how long to wait)") from None

    def _workers(self) -> dict:
        try:
            return dict(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        except TypeError:  # older distributed: no n_workers argument
            return dict(self.client.scheduler_info().get("workers", {}))

    def _check_workers(self) -> None:
        from . import __version__

        workers = self._workers()
        self.nworkers = len(workers)
        self.nthreads = sum(int(w.get("nthreads", 1)) for w in workers.values())
        try:
            versions = self.client.run(_fedsim_probe)
        except Exception as err:
            raise ExecutorError(f"cannot run on the Dask workers: {type(err).__name__}: {err}") \
                from None
        bad = {a: v[1:] for a, v in versions.items() if v.startswith("!")}
        if bad:
            addr, why = next(iter(sorted(bad.items())))
            raise ExecutorError(f"{len(bad)} Dask worker(s) cannot import fedsim (e.g. {addr}: "
                                f"{why}); install fedsim {__version__} on every worker")
        other = sorted({v for v in versions.values() if v != __version__})
        if other:
            logging.getLogger("fedsim").warning(
                "Dask workers run fedsim %s, this client %s: results may differ from a local "
                "run", ", ".join(other), __version__)

    # -- running
    def run(self, tasks, fn):
        from distributed import wait

        token = uuid.uuid4().hex[:8]
        keys = [f"fedsim-sweep-{token}-{i}" for i in range(len(tasks))]
        self._futures = [self.client.submit(fn, t, key=k, pure=False, retries=0)
                         for t, k in zip(tasks, keys)]
        index = {f.key: i for i, f in enumerate(self._futures)}
        pending = set(self._futures)
        while pending:
            try:
                with self.client.as_current():  # wait() uses the current client
                    done, pending = wait(pending, timeout=HEARTBEAT,
                                         return_when="FIRST_COMPLETED")
            except TimeoutError:
                yield None
                continue
            except Exception as err:  # FuturesCancelledError: the scheduler went away, ...
                text = str(err).strip()
                self._lost = ("lost the connection to the scheduler" if "connection" in text
                              else text.splitlines()[0] if text else type(err).__name__)
                done, pending = set(pending), set()
            for fut in sorted(done, key=lambda f: index[f.key]):
                yield index[fut.key], self._outcome(fut)
                fut.release()
        self._futures = []

    def _outcome(self, fut) -> dict:
        if fut.status == "finished":
            try:
                return fut.result()
            except Exception as err:  # result could not be fetched / deserialized
                return self.failure(err)
        if fut.status != "error" and (fut.status == "cancelled" or self._lost):
            why = f": {self._lost}" if self._lost else " (lost connection, or the cluster shut down)"
            return {"ok": False, "error": f"cancelled by Dask{why}"}
        try:
            err = fut.exception()
        except Exception as e:
            err = e
        what = "Dask worker died: " if type(err).__name__ == "KilledWorker" else ""
        return self.failure(err, what)

    def cancel(self) -> None:
        """Drop the unfinished tasks.  The worker processes of a local cluster are killed at
        once (a run in progress cannot be interrupted otherwise); the workers of a running
        cluster finish the run they are in and drop its result."""
        self._cancelled = True
        futures, self._futures = self._futures, []
        if self.client is not None and futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:
                pass
        if self.cluster is not None:
            for nanny in list(getattr(self.cluster, "workers", {}).values()):
                try:
                    nanny.auto_restart = False
                    pid = nanny.pid
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                except Exception:
                    pass

    def close(self) -> None:
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        try:
            if client is not None:
                try:
                    client.close(timeout=self.timeout)
                except Exception:
                    pass
            if cluster is not None:
                try:  # after Ctrl-C, do not wait long for busy workers: they are killed
                    cluster.close(timeout=2.0 if self._cancelled else self.timeout)
                except Exception:
                    pass
        finally:
            if self._quiet is not None:
                quiet, self._quiet = self._quiet, None
                quiet.__exit__(None, None, None)

    def describe(self) -> str:
        where = (f"the Dask cluster at {self.scheduler}" if self.scheduler
                 else "a local Dask cluster")
        threads = (f", {self.nthreads} threads" if self.nthreads != self.nworkers else "")
        return (f"on {where} ({self.nworkers} worker{'s' if self.nworkers != 1 else ''}"
                f"{threads})")

    def info(self) -> dict:
        return {"executor": self.name, "workers": self.nworkers, "threads": self.nthreads,
                "scheduler": self.scheduler}


register_executor("local", LocalExecutor, "worker processes on this machine, one per core by "
                  "default (--workers N); one worker runs in this process")
register_executor("inline", InlineExecutor, "every run in this process, one after the other "
                  "(debugging)")
register_executor("dask", DaskExecutor, "a Dask distributed cluster: --scheduler tcp://host:8786 "
                  "(without it, a local Dask cluster of --workers processes); needs "
                  f"{DISTRIBUTED_HINT}")
