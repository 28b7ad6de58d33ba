"""Small scenarios for the fedsim.testing tests (each run takes a few milliseconds)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"

# Two regions, two nodes each, 10 requests/s for 20 s; node a-0 crashes from 5 s to 10 s.
TINY = textwrap.dedent("""\
    name: tiny
    seed: 3
    duration: 20s
    replications: 3
    regions:
      - {id: a}
      - {id: b}
    network:
      rtt: {a: {b: 50ms}}
    nodes:
      - {name: a, region: a, count: 2, gpus: 4, models: [{model: m, capabilities: [generate]}],
         service: {"*": {kind: lognormal, mean: 100ms, cv: 0.5}}}
      - {name: b, region: b, count: 2, gpus: 4, models: [{model: m, capabilities: [generate]}],
         service: {"*": {kind: lognormal, mean: 100ms, cv: 0.5}}}
    workloads:
      - {name: chat, arrival: {kind: poisson, rate: 10/s}}
    faults:
      - {kind: crash, target: a-0, at: 5s, duration: 5s}
    """)


def tiny_yaml(assertions: str = "", extra: str = "") -> str:
    """The tiny scenario plus an ``assertions:`` block (YAML list lines) and extra keys."""
    text = TINY + extra
    if assertions:
        text += "assertions:\n" + textwrap.indent(textwrap.dedent(assertions).strip("\n"), "  ") + "\n"
    return text


@pytest.fixture
def tiny(tmp_path):
    """``tiny(assertions, extra="", name="tiny.yaml")`` writes the tiny scenario and
    returns its path."""
    def make(assertions: str = "", extra: str = "", name: str = "tiny.yaml") -> Path:
        path = tmp_path / name
        path.write_text(tiny_yaml(assertions, extra), encoding="utf-8")
        return path
    return make
