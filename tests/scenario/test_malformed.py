"""Malformed scenario files (issue 4): every one is a ScenarioError (never another exception)
whose issue names the file, line and column of the offending spot, the key path, what was
expected and what was found, and for an unknown name the closest valid one.

Expected positions are never copied from the loader's output: each YAML text marks the
offending spot with ``⟦label⟧`` (removed before the file is written) and the line/column
are computed from where the mark stands.  Where two reports are equally right (the whole
value vs. the one bad item in it), a case lists both as ``(path, label)`` pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import pytest

from fedsim.scenario import ScenarioError, load_scenario

MARK = re.compile(r"⟦(\w*)⟧")


def strip_marks(text: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """The text without marks, and {label: (line, column)} (1-based) of each mark."""
    out: list[str] = []
    spots: dict[str, tuple[int, int]] = {}
    pos = 0
    for m in MARK.finditer(text):
        out.append(text[pos:m.start()])
        before = "".join(out)
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        spots[m.group(1)] = (line, column)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), spots


def test_strip_marks_counts_lines_and_columns_from_one():
    text, spots = strip_marks("a: 1\nbb:\n  - ⟦x⟧c\n⟦y⟧d: 2\n")
    assert text == "a: 1\nbb:\n  - c\nd: 2\n"
    assert spots == {"x": (3, 5), "y": (4, 1)}


# --------------------------------------------------------------------------- building blocks

HEAD = """\
name: broken
duration: 60s
regions:
  - id: eu
  - id: us
"""
NODES = """\
nodes:
  - name: gpu
    region: eu
    count: 2
    models:
      - model: llama
        capabilities: [generate]
"""
GATEWAYS = """\
gateways:
  - name: gw-eu
    region: eu
"""
WORKLOADS = """\
workloads:
  - name: chat
    arrival: {kind: poisson, rate: 10/s}
"""
VALID = HEAD + NODES + GATEWAYS + WORKLOADS


def node(extra: str = "", region: str = "eu", caps: str = "[generate]") -> str:
    """A one-group ``nodes:`` section; ``extra`` lines are indented under the group."""
    return ("nodes:\n  - name: gpu\n    region: " + region + "\n    count: 2\n"
            + extra + "    models:\n      - model: llama\n        capabilities: " + caps + "\n")


def workload(extra: str = "", arrival: str = "{kind: poisson, rate: 10/s}") -> str:
    return "workloads:\n  - name: chat\n" + extra + "    arrival: " + arrival + "\n"


Alt = Union[str, tuple]  # a substring, or a tuple of alternative substrings


@dataclass
class Case:
    id: str
    files: dict[str, str]  # name -> YAML with marks; the first one is loaded
    where: list[tuple[str, str]]  # acceptable (key path, mark label) pairs
    says: list[Alt]  # in the message: what was expected and what was found
    suggest: Optional[str] = None  # the closest valid name, offered as "did you mean"
    overrides: list[str] = field(default_factory=list)  # --set texts
    set_error: bool = False  # the problem is in a --set text (no file position)


def one(text: str, where, says, suggest=None, id="", overrides=()) -> Case:
    if isinstance(where, str):
        where = [(where, "")]
    return Case(id, {"s.yaml": text}, list(where), list(says), suggest, list(overrides))


def bad_set(id: str, text: str, path: str, says, suggest=None) -> Case:
    return Case(id, {"s.yaml": VALID}, [(path, "")], list(says), suggest, [text], set_error=True)


GREATER_0 = ("greater than 0", "> 0", "positive")

CASES: list[Case] = [
    # ---------------------------------------------------------------- YAML syntax
    one(HEAD + "nodes:\n  - name: gpu\n    region: eu\n   ⟦⟧models:\n"
        "      - model: llama\n        capabilities: [generate]\n" + WORKLOADS,
        "", ["expected", ("found", "got")], id="yaml-bad-indentation"),
    one("name: broken\nduration: 60s\nregions: [{id: eu}, {id: us}\n⟦⟧" + NODES + WORKLOADS,
        "", ["expected ',' or ']'", ("found", "got")], id="yaml-unclosed-bracket"),
    one("name: broken\nduration: 60s\nregions:\n⟦⟧\t- id: eu\n" + NODES + WORKLOADS,
        "", [("tab", "\\t"), ("space", "indent")], id="yaml-tab-indentation"),
    one(HEAD + node("    gpus: 2\n    ⟦⟧gpus: 4\n") + WORKLOADS,
        "nodes[0].gpus", ["duplicate key", "'gpus'"], id="duplicate-key-in-node-group"),
    one(HEAD + "⟦⟧duration: 30s\n" + NODES + WORKLOADS,
        "duration", ["duplicate key", "'duration'"], id="duplicate-key-top-level"),
    # ---------------------------------------------------------------- shape of the file
    one("⟦⟧- id: eu\n- id: us\n", "", ["mapping", "list"], id="top-level-list"),
    one("⟦⟧just a sentence\n", "", ["mapping", "str"], id="top-level-scalar"),
    one("⟦⟧# nothing here yet\n", "duration", ["missing", "'duration'"], id="empty-file"),
    one("⟦⟧name: broken\nregions:\n  - id: eu\n" + NODES + WORKLOADS,
        "duration", ["missing", "'duration'"], id="missing-required-key"),
    # ---------------------------------------------------------------- unknown keys, each depth
    one("name: broken\n⟦⟧duraton: 60s\nregions:\n  - id: eu\n" + NODES + WORKLOADS,
        "duraton", ["unknown key 'duraton'", "duration"], "duration", id="unknown-key-top"),
    one(HEAD + "    ⟦⟧privacy_levl: internal\n" + NODES + WORKLOADS,
        "regions[1].privacy_levl", ["unknown key 'privacy_levl'", "privacy"], "privacy",
        id="unknown-key-region"),
    one(HEAD + node("    ⟦⟧gpu: 2\n") + WORKLOADS,
        "nodes[0].gpu", ["unknown key 'gpu'", "gpus"], "gpus", id="unknown-key-node-group"),
    one(HEAD + "nodes:\n  - name: gpu\n    region: eu\n    models:\n      - model: llama\n"
        "        ⟦⟧capabilites: [generate]\n" + WORKLOADS,
        "nodes[0].models[0].capabilites", ["unknown key 'capabilites'", "capabilities"],
        "capabilities", id="unknown-key-deployed-model"),
    one(VALID + "router:\n  ⟦⟧stratgy: random\n",
        "router.stratgy", ["unknown key 'stratgy'", "strategy"], "strategy",
        id="unknown-key-router"),
    one(VALID + "router:\n  strategy: random\n  health:\n    ⟦⟧check_intervall: 5s\n",
        "router.health.check_intervall", ["unknown key 'check_intervall'", "check_interval"],
        "check_interval", id="unknown-key-router-health"),
    one(HEAD + NODES + workload("    ⟦⟧input_token: 100\n"),
        "workloads[0].input_token", ["unknown key 'input_token'", "input_tokens"],
        "input_tokens", id="unknown-key-workload"),
    one(VALID + "faults:\n  - kind: crash\n    ⟦⟧targt: gpu\n    at: 5s\n",
        "faults[0].targt", ["unknown key 'targt'", "target"], "target", id="unknown-key-fault"),
    one(VALID + "network:\n  ⟦⟧default_rt: 10ms\n",
        "network.default_rt", ["unknown key 'default_rt'", "default_rtt"], "default_rtt",
        id="unknown-key-network"),
    # ---------------------------------------------------------------- wrong types
    one(HEAD + node("    gpus: ⟦⟧four\n") + WORKLOADS,
        "nodes[0].gpus", ["integer", "'four'"], id="string-for-int"),
    one(HEAD + node("    speed: 1.5\n").replace("count: 2", "count: ⟦⟧2.5") + WORKLOADS,
        "nodes[0].count", ["integer", "2.5"], id="fraction-for-int"),
    one(VALID + "router: ⟦⟧[random]\n",
        "router", [("dictionary", "mapping"), "list"], id="list-for-mapping"),
    one("name: broken\nduration: 60s\nregions: ⟦⟧{id: eu}\n" + NODES + WORKLOADS,
        "regions", ["list", ("dict", "mapping")], id="mapping-for-list"),
    one(VALID + "router:\n  fixes: ⟦⟧5\n",
        "router.fixes", [("list", "string"), "5"], id="wrong-type-in-union-field"),
    # ---------------------------------------------------------------- zero / negative
    one(HEAD + "nodes:\n"
        "  - {name: a, region: eu, models: [{model: m, capabilities: [generate]}]}\n"
        "  - {name: b, region: eu, models: [{model: m, capabilities: [generate]}]}\n"
        "  - {name: c, region: us, models: [{model: m, capabilities: [generate]}]}\n"
        "  - name: d\n    region: us\n    gpus: ⟦⟧0\n"
        "    models: [{model: m, capabilities: [generate]}]\n" + WORKLOADS,
        "nodes[3].gpus", [("greater than or equal to 1", ">= 1"), "0"], id="zero-gpus"),
    one(HEAD.replace("duration: 60s", "duration: ⟦⟧-5s") + NODES + WORKLOADS,
        "duration", [GREATER_0, "-5"], id="negative-duration"),
    one(HEAD + node().replace("count: 2", "count: ⟦⟧0") + WORKLOADS,
        "nodes[0].count", [("greater than or equal to 1", ">= 1"), "0"], id="zero-count"),
    one(HEAD + NODES + workload(arrival="⟦a⟧{kind: poisson, rate: ⟦r⟧0/s}"),
        [("workloads[0].arrival", "a"), ("workloads[0].arrival.rate", "r")],
        [GREATER_0, "0"], id="zero-arrival-rate"),
    one(VALID + "faults:\n  - kind: crash\n    target: gpu\n    at: 5s\n    duration: ⟦⟧0s\n",
        "faults[0].duration", [GREATER_0, "0"], id="zero-fault-duration"),
    # ---------------------------------------------------------------- malformed quantities
    one(HEAD.replace("duration: 60s", "duration: ⟦⟧5 minutes") + NODES + WORKLOADS,
        "duration", ["malformed duration", "'5 minutes'", "250ms"], id="malformed-duration"),
    one(VALID + "router:\n  health:\n    check_interval: ⟦⟧10ss\n",
        "router.health.check_interval", ["malformed duration", "'10ss'"],
        id="malformed-duration-nested"),
    one(HEAD + NODES + workload(arrival="⟦a⟧{kind: poisson, rate: ⟦r⟧10 per second}"),
        [("workloads[0].arrival", "a"), ("workloads[0].arrival.rate", "r")],
        ["'10 per second'", ("/s", "number")], id="malformed-rate"),
    one(HEAD + "    cost: ⟦⟧30 percent\n" + NODES + WORKLOADS,
        "regions[1].cost", ["malformed percentage", "'30 percent'", "5%"],
        id="malformed-percentage"),
    one(VALID + "faults:\n  - kind: error_rate\n    target: gpu\n    at: 5s\n    rate: ⟦⟧150%\n",
        "faults[0].rate", [("less than or equal to 1", "<= 1"), ("1.5", "150%")],
        id="percentage-above-100"),
    # ---------------------------------------------------------------- undefined references
    one(HEAD + node(region="⟦⟧euu") + WORKLOADS,
        "nodes[0].region", ["'euu'", "not defined", "eu, us"], "eu", id="undefined-region-node-group"),
    one(HEAD + NODES + "gateways:\n  - name: gw-eu\n    region: ⟦⟧mars\n" + WORKLOADS,
        "gateways[0].region", ["'mars'", "not defined", "eu, us"], id="undefined-region-gateway"),
    one(HEAD + NODES + GATEWAYS + workload("    gateway: ⟦⟧gw-us\n"),
        "workloads[0].gateway", ["'gw-us'", "not defined", "gw-eu"], id="undefined-gateway"),
    one(HEAD + NODES + workload("    origin_region: ⟦⟧mars\n"),
        "workloads[0].origin_region", ["'mars'", "not defined", "eu, us"],
        id="undefined-origin-region"),
    one(VALID + "faults:\n  - kind: crash\n    target: ⟦⟧gpu-7\n    at: 5s\n",
        "faults[0].target", ["'gpu-7'", "not defined", "gpu-0"], id="undefined-fault-target"),
    one(VALID + "faults:\n  - kind: region_outage\n    target: ⟦⟧asia\n    at: 5s\n",
        "faults[0].target", ["'asia'", "not defined", "eu, us"], id="undefined-outage-region"),
    one(VALID + "network:\n  rtt:\n    ⟦⟧asia:\n      eu: 80ms\n",
        [("network.rtt", ""), ("network.rtt.asia", "")], ["'asia'", "not defined", "eu, us"],
        id="undefined-region-network-rtt-row"),
    one(VALID + "network:\n  rtt:\n    eu:\n      ⟦⟧asia: 80ms\n",
        [("network.rtt.eu", ""), ("network.rtt.eu.asia", "")],
        ["'asia'", "not defined", "eu, us"], id="undefined-region-network-rtt-column"),
    one(HEAD + NODES + workload("    capability: ⟦⟧embed\n"),
        "workloads[0].capability", ["'embed'", "generate"], id="capability-nobody-serves"),
    one(HEAD + "nodes:\n  - ⟦n⟧name: gpu\n    region: eu\n"
        "    service: ⟦s⟧{generate: {kind: exponential, mean: 50ms}}\n"
        "    models:\n      - model: llama\n        capabilities: [generate, embed]\n" + WORKLOADS,
        [("nodes[0].service", "s"), ("nodes[0]", "n")], ["service model", "'embed'"],
        id="no-service-model-for-capability"),
    one(HEAD.replace("  - id: us\n", "  - ⟦k⟧id: ⟦v⟧eu\n") + NODES + WORKLOADS,
        [("regions[1].id", "v"), ("regions[1].id", "k"), ("regions[1]", "k")], ["duplicate", "'eu'"],
        id="duplicate-region-id"),
    one(HEAD + "warmup: ⟦⟧2m\n" + NODES + WORKLOADS,
        "warmup", ["shorter than", "120", "60"], id="warmup-not-shorter-than-duration"),
    one("name: broken\nduration: 60s\nregions: ⟦⟧[]\n" + NODES + WORKLOADS,
        "regions", ["at least one region"], id="no-regions"),
    # ---------------------------------------------------------------- probabilities
    one(HEAD + NODES + workload("    privacy: ⟦⟧{internal: 0.5, confidential: 0.25}\n"),
        "workloads[0].privacy", ["sum to 1", "0.75"], id="probabilities-below-1"),
    one(HEAD + NODES + workload("    origin_region: ⟦⟧{eu: 60%, us: 60%}\n"),
        "workloads[0].origin_region", ["sum to 1", "1.2"], id="percentages-above-100"),
    # ---------------------------------------------------------------- unknown names
    one(VALID + "router:\n  strategy: ⟦⟧leastlatency\n",
        "router.strategy", ["'leastlatency'", "least_latency, round_robin"], "least_latency",
        id="unknown-strategy"),
    one(VALID + "router:\n  fixes: ⟦l⟧[⟦i⟧retry_exclude_tried]\n",
        [("router.fixes", "l"), ("router.fixes[0]", "i")],
        ["'retry_exclude_tried'", "inference_timeout"], "retry_excludes_tried", id="unknown-fix"),
    one(HEAD + NODES + workload("    input_tokens: ⟦⟧{kind: lognormall, mean: 200, cv: 1}\n"),
        "workloads[0].input_tokens", ["'lognormall'", "exponential"], "lognormal",
        id="unknown-distribution-kind"),
    one(HEAD + NODES + workload(arrival="⟦a⟧{kind: ⟦k⟧poison, rate: 10/s}"),
        [("workloads[0].arrival", "a"), ("workloads[0].arrival.kind", "k")],
        ["'poison'", "diurnal"], "poisson", id="unknown-arrival-kind"),
    one(HEAD + node("    service: ⟦s⟧{'*': ⟦i⟧{kind: expo, mean: 50ms}}\n") + WORKLOADS,
        [("nodes[0].service", "s"), ("nodes[0].service.*", "i")],
        ["'expo'", "lognormal"], "exponential", id="unknown-service-model-kind"),
    one(VALID + "router:\n  policy: ⟦l⟧[⟦i⟧{kind: latncy}]\n",
        [("router.policy", "l"), ("router.policy[0]", "i"), ("router.policy[0].kind", "i")],
        ["'latncy'", "locality"], "latency", id="unknown-policy-kind"),
    one(VALID + "faults:\n  - kind: ⟦⟧crsh\n    target: gpu\n    at: 5s\n",
        "faults[0].kind", ["'crsh'", "'crash'", "partition"], id="unknown-fault-kind"),
    one(HEAD + "    privacy: ⟦⟧secret\n" + NODES + WORKLOADS,
        "regions[1].privacy", ["'secret'", "confidential"], id="unknown-privacy-level"),
    # ---------------------------------------------------------------- extends
    one("extends: ⟦⟧nothere.yaml\nname: child\n",
        "extends", ["not found", "nothere.yaml"], id="extends-missing-file"),
    one("extends: ⟦⟧[a.yaml, b.yaml]\n", "extends", ["file path", "['a.yaml', 'b.yaml']"],
        id="extends-not-a-string"),
    Case("extends-cycle-a-b-a",
         {"a.yaml": "extends: b.yaml\nname: a\n", "b.yaml": "name: b\nextends: ⟦⟧a.yaml\n"},
         [("extends", "")], ["cyclic", "a.yaml -> ", "b.yaml -> "]),
    one("name: me\nextends: ⟦⟧s.yaml\n", "extends", ["cyclic", "s.yaml"], id="extends-cycle-self"),
    Case("error-inside-base-file",
         {"child.yaml": "extends: base.yaml\nname: child\n",
          "base.yaml": HEAD + node("    ⟦⟧gpu: 2\n") + WORKLOADS},
         [("nodes[0].gpu", "")], ["unknown key 'gpu'"], "gpus"),
    # ---------------------------------------------------------------- sweep
    one(VALID + "sweep: ⟦⟧[1, 2]\n", "sweep", ["grid", "points", ("list", "[1, 2]")],
        id="sweep-not-a-mapping"),
    one(VALID + "sweep:\n  ⟦⟧grdi:\n    seed: [1, 2]\n",
        [("sweep", ""), ("sweep.grdi", "")], ["grid", "points"], "grid",
        id="sweep-unknown-section"),
    one(VALID + "sweep:\n  grid:\n    router.strategy: ⟦⟧[]\n",
        "sweep.grid.router.strategy", ["non-empty list", "[]"], id="sweep-empty-grid-list"),
    one(VALID + "sweep:\n  grid:\n    ⟦k⟧router..strategy: ⟦v⟧[random]\n",
        [("sweep.grid.router..strategy", "k"), ("sweep.grid.router..strategy", "v"),
         ("sweep: router..strategy", "k"), ("sweep: router..strategy", "v")],
        ["malformed key path", "'router..strategy'"], id="sweep-bad-key-path"),
    one(VALID + "sweep:\n  grid:\n    ⟦k⟧nodes[4].gpus: ⟦v⟧[1, 2]\n",
        [(p, s) for p in ("sweep: nodes[4].gpus", "sweep.grid.nodes[4].gpus") for s in "kv"],
        ["no such list item", "has 1"], id="sweep-index-out-of-range"),
    one(VALID + "sweep:\n  grid:\n    router.strategy: [random]\n    nodes[0].gpus: ⟦l⟧[2, ⟦i⟧0]\n",
        [("nodes[0].gpus", "l"), ("nodes[0].gpus", "i")],
        [("greater than or equal to 1", ">= 1"), "sweep point router.strategy=random,nodes[0].gpus=0"],
        id="sweep-grid-point-invalid"),
    one(VALID + "sweep:\n  points:\n    - {router.strategy: random}\n"
        "    - {router.strategy: ⟦⟧leastlatency}\n",
        "router.strategy", ["'leastlatency'", "sweep point router.strategy=leastlatency"],
        "least_latency", id="sweep-listed-point-invalid"),
    one(VALID + "sweep:\n  grid:\n    ⟦k⟧router.stratgy: ⟦v⟧[random]\n",
        [("router.stratgy", "k"), ("router.stratgy", "v")], ["unknown key 'stratgy'", "sweep point"], "strategy",
        id="sweep-grid-unknown-key"),
    # ---------------------------------------------------------------- --set
    bad_set("set-without-equals", "router.strategy", "", ["KEY.PATH=VALUE"]),
    bad_set("set-empty-key", "=random", "", ["key path"]),
    bad_set("set-malformed-path", "router..strategy=random", "router..strategy",
            ["malformed key path", "'router..strategy'"]),
    bad_set("set-index-out-of-range", "nodes[3].gpus=2", "nodes[3].gpus",
            ["no such list item", "has 1"]),
    bad_set("set-missing-list", "faults[0].kind=crash", "faults[0].kind", ["no such list"]),
    bad_set("set-into-a-scalar", "name.first=x", "name.first", ["name", "not a mapping"]),
    bad_set("set-unknown-key", "router.stratgy=random", "router.stratgy",
            ["unknown key 'stratgy'"], "strategy"),
    bad_set("set-invalid-value", "nodes[0].gpus=0", "nodes[0].gpus",
            [("greater than or equal to 1", ">= 1"), "0"]),
    bad_set("set-unparseable-yaml-value", "router.fixes=[retry_excludes_tried",
            "router.fixes", ["expected ',' or ']'"]),
    # ---------------------------------------------------------------- files named inside specs
    one(HEAD + NODES + workload(arrival="⟦a⟧{kind: trace, path: ⟦p⟧missing.csv}"),
        [("workloads[0].arrival", "a"), ("workloads[0].arrival.path", "p")],
        ["missing.csv", ("not found", "no such file")], id="trace-file-missing"),
]


def _norm(text: str) -> str:
    return text.lower()


def _contains(text: str, alt: Alt) -> bool:
    options = alt if isinstance(alt, tuple) else (alt,)
    return any(_norm(o) in _norm(text) for o in options)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_malformed_scenario_is_a_positioned_scenario_error(case: Case, tmp_path: Path):
    spots: dict[str, tuple[str, int, int]] = {}
    for name, marked in case.files.items():
        text, marks = strip_marks(marked)
        (tmp_path / name).write_text(text, encoding="utf-8")
        for label, (line, col) in marks.items():
            spots[label] = (name, line, col)
    target = tmp_path / next(iter(case.files))

    with pytest.raises(ScenarioError) as info:
        load_scenario(target, overrides=case.overrides)
    err = info.value
    assert err.issues, "a ScenarioError must list at least one issue"

    # one line per problem, each "file[:line:col]: error: ..."
    lines = str(err).split("\n")
    assert len(lines) == len(err.issues), str(err)
    for issue, line in zip(err.issues, lines):
        assert "\n" not in issue.message, issue
        where = issue.file + (f":{issue.line}:{issue.column}" if issue.line is not None else "")
        assert line.startswith(f"{where}: error: "), line

    wanted_paths = [p for p, _ in case.where]
    matching = [i for i in err.issues if i.path in wanted_paths]
    assert matching, f"no issue with path in {wanted_paths}; got:\n{err}"
    issue = matching[0]

    if case.set_error:
        assert issue.file == f"--set {case.overrides[0]}", issue
        assert issue.line is None and issue.column is None
        text = str(issue)  # the --set text itself is part of what the user sees
    else:
        allowed = {(case_path, spots[label]) for case_path, label in case.where}
        file, line, col = spots[case.where[0][1]]
        assert issue.line is not None, f"no line/column: {issue}"
        assert Path(issue.file).resolve() == (tmp_path / file).resolve(), str(issue)
        assert (issue.path, (file, issue.line, issue.column)) in allowed, (
            f"{issue}\nexpected one of: "
            + "; ".join(f"{p} at {f}:{ln}:{c}" for p, (f, ln, c) in sorted(allowed)))
        text = issue.message + " " + (issue.hint or "")

    for alt in case.says:
        assert _contains(text, alt), f"message does not say {alt!r}: {issue}"
    if case.suggest is not None:
        assert f"did you mean {case.suggest!r}" in str(issue), str(issue)


def test_there_are_enough_cases():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
