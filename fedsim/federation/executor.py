"""What the gateway asks a driver to do, and what comes back.

The gateway's retry loop (:meth:`FederationGateway.infer_steps`) is a generator that yields
:class:`Execute` (run the request on a node and send back an outcome) and :class:`Sleep`
(let backoff time pass).  :func:`run_sync` drives it in plain Python through a node
executor and a sleep function; the SimPy world drives the same generator in simulated time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, Optional, Union

from .duration import millis
from .errors import FederationError, Timeout
from .types import InferenceRequest, InferenceResponse, RouteTarget


@dataclass(slots=True)
class Success:
    """The node answered after ``duration`` ns."""

    response: InferenceResponse
    duration: int = 0


@dataclass(slots=True)
class Failure:
    """The node failed with ``error`` after ``duration`` ns."""

    error: FederationError
    duration: int = 0


Outcome = Union[Success, Failure]


@dataclass(slots=True)
class Execute:
    """Run ``request`` on ``target`` and send back an Outcome.  When ``timeout`` is set
    (``inference_timeout`` fix), an execution longer than it must come back as
    ``Failure(Timeout(timeout))`` at the deadline."""

    target: RouteTarget
    request: InferenceRequest
    attempt: int
    timeout: Optional[int] = None


@dataclass(slots=True)
class Sleep:
    """Let ``duration`` ns pass (retry backoff)."""

    duration: int


Step = Union[Execute, Sleep]
NodeExecutor = Callable[[RouteTarget, InferenceRequest], Union[Outcome, InferenceResponse]]
"""Runs a request on a node: returns Success/Failure (with a duration), a bare response
(success in 0 ns), or raises a FederationError (failure in 0 ns)."""


def reference_stub_executor(target: RouteTarget, request: InferenceRequest) -> Outcome:
    """The reference's ``execute_on_node``: instant success, 50 ms claimed, 10 tokens (Q-EXEC-STUB)."""
    return Success(InferenceResponse(b"simulated output", target.node_id, millis(50), 10), 0)


def execute_sync(step: Execute, executor: NodeExecutor, sleep: Callable[[int], None]) -> Outcome:
    """Run one Execute step synchronously: call the executor, spend its duration through
    ``sleep`` (capped at the step's timeout, which then yields a Timeout failure)."""
    try:
        outcome = executor(step.target, step.request)
    except FederationError as err:
        outcome = Failure(err, 0)
    if isinstance(outcome, InferenceResponse):
        outcome = Success(outcome, 0)
    elif not isinstance(outcome, (Success, Failure)):
        raise TypeError(
            f"a node executor must return Success, Failure or InferenceResponse, got {outcome!r}"
        )
    timeout = step.timeout
    if timeout is not None and outcome.duration > timeout:
        sleep(timeout)
        return Failure(Timeout(timeout), timeout)
    if outcome.duration > 0:
        sleep(outcome.duration)
    return outcome


def run_sync(steps: Generator[Step, Outcome, object], executor: NodeExecutor,
             sleep: Callable[[int], None]):
    """Drive a step generator to completion in plain Python; returns its return value and
    lets its exceptions propagate."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Execute):
                step = steps.send(execute_sync(step, executor, sleep))
            elif isinstance(step, Sleep):
                if step.duration > 0:
                    sleep(step.duration)
                step = next(steps)
            else:
                raise TypeError(f"unknown step {step!r}")
    except StopIteration as stop:
        return stop.value
