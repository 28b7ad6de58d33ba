"""Differential test against results recorded before the performance work (issue 8).

``golden.json`` holds digests of every table of 39 runs (every shipped scenario, fault
scenarios under all fixes and under the fixed strategies, every strategy on the steady
three-region world, zero network delay with exact ties), recorded at the commit it names,
before any optimisation.  An optimisation that changes one routing decision, one timing or
one recorded value changes a digest and fails here.  Regenerate only for an intended
behaviour change, and say so.
"""

from __future__ import annotations

import json

import pytest

from golden_cases import GOLDEN, cases, run_case

GOLDEN_DOC = json.loads(GOLDEN.read_text())


def test_golden_covers_every_case():
    assert sorted(GOLDEN_DOC["cases"]) == sorted(cases())


@pytest.mark.parametrize("name", sorted(cases()))
def test_results_identical_to_before_optimisation(name):
    expected = GOLDEN_DOC["cases"][name]
    got = run_case(name, seed=GOLDEN_DOC["seed"])
    assert got == expected, f"{name}: results differ from commit {GOLDEN_DOC['recorded_at_commit']}"
