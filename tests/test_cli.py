"""The command line and the router demo (the main job until the SimPy world lands)."""

from __future__ import annotations

import json

import pytest

from fedsim import cli
from fedsim.demo import DEFAULT_VARIANTS, NODES, OUTAGE_NODE, Variant, run_demo, run_variant
from fedsim.federation import FIX_DESCRIPTIONS, STRATEGIES, Fixes


def test_list_names_every_strategy_policy_and_fix(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in list(STRATEGIES) + list(FIX_DESCRIPTIONS) + ["enterprise_default", "privacy"]:
        assert f"  {name} " in out


def test_demo_writes_summary_and_is_deterministic(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--requests", "400"]) == 0
    first = json.loads((tmp_path / "demo_summary.json").read_text())
    assert [r["name"] for r in first] == [v.name for v in DEFAULT_VARIANTS]
    assert all(r["requests"] == 400 for r in first)
    assert "success" in capsys.readouterr().out
    assert cli.main(["demo", "--out", str(tmp_path), "--requests", "400"]) == 0
    assert json.loads((tmp_path / "demo_summary.json").read_text()) == first


def test_demo_rejects_bad_request_count(capsys):
    assert cli.main(["demo", "--requests", "0"]) == 2
    assert "--requests must be positive" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: fedsim" in capsys.readouterr().out


def test_demo_shows_reference_never_recovers_the_failed_node():
    """Q-NORECOVER: without probes the node that failed stays out of rotation after its
    outage; with active probes it serves again."""
    ref = run_variant(Variant("ref"), requests=3000)
    fixed = run_variant(Variant("fixed", "least_latency", Fixes(active_probes=True)), requests=3000)
    assert ref.outage_node_share_after == 0.0
    assert fixed.outage_node_share_after > 0.05
    assert set(ref.share_by_node) == set(NODES)
    assert abs(sum(ref.share_by_node.values()) - 1.0) < 1e-9


def test_round_robin_fix_spreads_load_evenly():
    rr = run_variant(Variant("rr", "round_robin", Fixes(strategies=True)), requests=1200,
                     outage=(1e9, 1e9))
    shares = list(rr.share_by_node.values())
    assert max(shares) - min(shares) <= 1 / 1200 + 1e-12
    assert rr.success_rate == 1.0
