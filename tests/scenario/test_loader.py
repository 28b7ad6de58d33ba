"""Scenario files (issue 4): units, ``extends:`` merging, ``--set`` precedence, ``seed=``,
``sweep:`` expansion, replication seeds, trace paths and the JSON Schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fedsim.scenario import ScenarioError, json_schema, load_scenario, merge
from fedsim.world import Scenario
from fedsim.world.units import parse_duration, parse_fraction, parse_rate

MARK = re.compile(r"⟦(\w*)⟧")


def write(path: Path, marked: str) -> dict[str, tuple[int, int]]:
    """Write ``marked`` without its ``⟦label⟧`` marks; return {label: (line, column)}."""
    out, spots, pos = [], {}, 0
    for m in MARK.finditer(marked):
        out.append(marked[pos:m.start()])
        before = "".join(out)
        spots[m.group(1)] = (before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1)
        pos = m.end()
    out.append(marked[pos:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(out), encoding="utf-8")
    return spots


BASE = """\
name: base
seed: 3
duration: 60s
regions:
  - id: eu
  - id: us
nodes:
  - name: gpu
    region: eu
    count: 2
    gpus: 2
    models:
      - model: llama
        capabilities: [generate]
  - name: cpu
    region: us
    models:
      - model: small
        capabilities: [generate]
gateways:
  - name: gw-eu
    region: eu
router:
  strategy: random
  health:
    check_interval: 5s
    failure_threshold: 4
workloads:
  - name: chat
    arrival: {kind: poisson, rate: 10/s}
"""


def only(err: ScenarioError):
    assert len(err.issues) == 1, str(err)
    return err.issues[0]


# --------------------------------------------------------------------------- units

@pytest.mark.parametrize("value, seconds", [
    ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0),
    ("3min", 180.0), ("2 sec", 2.0), ("10us", 1e-5), ("10µs", 1e-5), ("100ns", 1e-7),
    ("1.5h", 5400.0), (".5s", 0.5), ("1e3ms", 1.0), (" 7s ", 7.0), ("0s", 0.0),
    ("-5s", -5.0), (5, 5.0), (0.25, 0.25),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("value", ["5", "5 parsecs", "ms", "", "5m5s", "1/s", "5%", "fast",
                                   True, None, [1], float("nan")])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="duration|expected"):
        parse_duration(value)


def test_parse_duration_accepts_greek_mu_as_well_as_micro_sign():
    # U+03BC (Greek small mu) and U+00B5 (micro sign) look the same; users type either.
    assert parse_duration("10\u00b5s") == pytest.approx(1e-5)
    assert parse_duration("10\u03bcs") == pytest.approx(1e-5)


@pytest.mark.parametrize("value, per_second", [
    ("120/s", 120.0), ("3000/min", 50.0), ("60/m", 1.0), ("10/h", 10 / 3600), ("2/d", 2 / 86400),
    ("5/ms", 5000.0), ("1 / sec", 1.0), ("0.5/s", 0.5), (7, 7.0), (2.5, 2.5),
])
def test_parse_rate(value, per_second):
    assert parse_rate(value) == pytest.approx(per_second, rel=1e-12)


@pytest.mark.parametrize("value", ["120", "120/parsec", "/s", "10 per second", "5%", True, None])
def test_parse_rate_rejects(value):
    with pytest.raises(ValueError, match="rate"):
        parse_rate(value)


@pytest.mark.parametrize("value, fraction", [
    ("5%", 0.05), ("100%", 1.0), ("0.5%", 0.005), ("12.5 %", 0.125), ("0%", 0.0),
    (0.25, 0.25), (1, 1.0),
])
def test_parse_fraction(value, fraction):
    assert parse_fraction(value) == pytest.approx(fraction, rel=1e-12)


@pytest.mark.parametrize("value", ["5", "five%", "5%%", "%", True, None])
def test_parse_fraction_rejects(value):
    with pytest.raises(ValueError, match="percentage|fraction"):
        parse_fraction(value)


def test_units_in_a_scenario_file(tmp_path):
    write(tmp_path / "s.yaml", BASE.replace("duration: 60s", "duration: 2h\nsample_interval: 250ms")
          .replace("  - id: us", "  - id: us\n    cost: 30%")
          .replace("check_interval: 5s", "check_interval: 500ms")
          .replace("rate: 10/s", "rate: 3000/min")
          .replace("    gpus: 2\n", "    gpus: 2\n    service: {'*': {kind: exponential, mean: 50ms}}\n")
          + "faults:\n  - {kind: error_rate, target: gpu-1, at: 5m, duration: 30s, rate: 5%}\n")
    sc = load_scenario(tmp_path / "s.yaml").scenario
    assert sc.duration == 7200.0 and sc.sample_interval == 0.25
    assert sc.regions[1].cost == pytest.approx(0.3)
    assert sc.router.health.check_interval == 0.5
    assert sc.workloads[0].arrival == {"kind": "poisson", "rate": 50.0}
    assert sc.nodes[0].service["*"] == {"kind": "exponential", "mean": 0.05}
    f = sc.faults[0]
    assert (f.at, f.duration, f.rate) == (300.0, 30.0, pytest.approx(0.05))


def test_count_expands_to_node_ids(tmp_path):
    write(tmp_path / "s.yaml", BASE)
    sc = load_scenario(tmp_path / "s.yaml").scenario
    assert [g.node_ids() for g in sc.nodes] == [["gpu-0", "gpu-1"], ["cpu"]]


def test_onoff_arrival_with_on_and_off_keys_loads(tmp_path):
    # `on:` / `off:` are the onoff kind's parameter names; YAML 1.1 would read them as
    # booleans, and a scenario file must still work when written the natural way.
    write(tmp_path / "s.yaml", BASE.replace("{kind: poisson, rate: 10/s}",
                                            "{kind: onoff, on_rate: 20/s, on: 5s, off: 10s}"))
    arrival = load_scenario(tmp_path / "s.yaml").scenario.workloads[0].arrival
    assert arrival == {"kind": "onoff", "on_rate": 20.0, "on": 5.0, "off": 10.0}


# --------------------------------------------------------------------------- extends

def test_merge_mappings_merge_lists_replace_and_inputs_are_untouched():
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "l": [1, 2, 3], "s": "x"}
    over = {"a": {"c": {"e": 30}, "f": 4}, "l": [9], "s": {"now": "a mapping"}}
    before = repr(base), repr(over)
    assert merge(base, over) == {"a": {"b": 1, "c": {"d": 2, "e": 30}, "f": 4}, "l": [9],
                                 "s": {"now": "a mapping"}}
    assert (repr(base), repr(over)) == before
    merged = merge(base, over)
    merged["a"]["c"]["d"] = 99
    assert base["a"]["c"]["d"] == 2


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    write(tmp_path / "child.yaml", """\
extends: base.yaml
name: child
router:
  health:
    check_interval: 1s
nodes:
  - name: big
    region: us
    models: [{model: llama, capabilities: [generate]}]
""")
    loaded = load_scenario(tmp_path / "child.yaml")
    sc = loaded.scenario
    assert loaded.name == sc.name == "child"
    assert sc.router.strategy == "random"  # untouched sibling of an overridden mapping
    assert sc.router.health.check_interval == 1.0  # nested override
    assert sc.router.health.failure_threshold == 4  # kept from the base
    assert [g.name for g in sc.nodes] == ["big"]  # the list is replaced, not merged
    assert sc.nodes[0].gpus == 1  # nothing leaks from the base's nodes[0]
    assert [r.id for r in sc.regions] == ["eu", "us"] and sc.seed == 3
    assert "extends" not in loaded.data


def test_extends_chain_of_three_files_with_relative_paths(tmp_path):
    write(tmp_path / "lib" / "base.yaml", BASE)
    write(tmp_path / "lib" / "mid.yaml", """\
extends: base.yaml
name: mid
router:
  strategy: round_robin
  health: {check_interval: 2s}
replications: 2
""")
    write(tmp_path / "runs" / "top.yaml", """\
extends: ../lib/mid.yaml
name: top
router:
  health: {failure_threshold: 7}
""")
    loaded = load_scenario(tmp_path / "runs" / "top.yaml")
    sc = loaded.scenario
    assert sc.name == "top"
    assert sc.router.strategy == "round_robin"  # from the middle file
    assert sc.router.health.check_interval == 2.0  # middle overrides base
    assert sc.router.health.failure_threshold == 7  # top overrides base
    assert sc.replications == loaded.replications == 2
    assert sc.duration == 60.0 and len(sc.nodes) == 2  # base


CHAIN_TOP = "extends: mid.yaml\nname: top\n"
CHAIN_MID = "extends: base.yaml\nname: mid\n"


@pytest.mark.parametrize("where", ["base", "mid", "top"])
def test_error_positions_point_into_the_right_file_of_the_chain(tmp_path, where):
    base, mid, top = BASE, CHAIN_MID, CHAIN_TOP
    if where == "base":
        base = BASE.replace("    failure_threshold: 4", "    ⟦⟧failure_treshold: 4")
    elif where == "mid":
        mid += "router:\n  health:\n    ⟦⟧failure_treshold: 4\n"
    else:
        top += "router:\n  health:\n    ⟦⟧failure_treshold: 4\n"
    spots = {}
    for name, text in (("base", base), ("mid", mid), ("top", top)):
        spots[name] = write(tmp_path / f"{name}.yaml", text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "top.yaml")
    issue = only(info.value)
    assert Path(issue.file).resolve() == (tmp_path / f"{where}.yaml").resolve()
    assert (issue.line, issue.column) == spots[where][""]
    assert issue.path == "router.health.failure_treshold"
    assert issue.hint == "did you mean 'failure_threshold'?"


def test_value_overridden_by_child_is_reported_in_the_child(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    spots = write(tmp_path / "child.yaml", "extends: base.yaml\nrouter:\n  health:\n"
                  "    check_interval: ⟦⟧0s\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "child.yaml")
    issue = only(info.value)
    assert Path(issue.file).resolve() == (tmp_path / "child.yaml").resolve()
    assert (issue.line, issue.column) == spots[""]
    assert issue.path == "router.health.check_interval"


def test_untouched_base_value_is_reported_in_the_base(tmp_path):
    spots = write(tmp_path / "base.yaml", BASE.replace("check_interval: 5s", "check_interval: ⟦⟧0s"))
    write(tmp_path / "child.yaml", "extends: base.yaml\nrouter:\n  strategy: round_robin\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "child.yaml")
    issue = only(info.value)
    assert Path(issue.file).resolve() == (tmp_path / "base.yaml").resolve()
    assert (issue.line, issue.column) == spots[""]


def test_replaced_list_is_reported_in_the_file_that_replaced_it(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    spots = write(tmp_path / "child.yaml", """\
extends: base.yaml
nodes:
  - name: one
    region: eu
    gpus: ⟦⟧0
    models: [{model: llama, capabilities: [generate]}]
""")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "child.yaml")
    issue = only(info.value)
    assert Path(issue.file).resolve() == (tmp_path / "child.yaml").resolve()
    assert (issue.line, issue.column) == spots[""] and issue.path == "nodes[0].gpus"


# --------------------------------------------------------------------------- --set

def test_set_beats_the_file_and_the_extends_chain(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    write(tmp_path / "child.yaml", "extends: base.yaml\nrouter:\n  strategy: round_robin\n")
    sc = load_scenario(tmp_path / "child.yaml", overrides=[
        "router.strategy=least_connections", "router.health.failure_threshold=9"]).scenario
    assert sc.router.strategy == "least_connections"
    assert sc.router.health.failure_threshold == 9
    assert sc.router.health.check_interval == 5.0  # untouched base value


def test_later_set_beats_earlier_set(tmp_path):
    write(tmp_path / "s.yaml", BASE)
    sc = load_scenario(tmp_path / "s.yaml", overrides=["router.strategy=random",
                                                       "router.strategy=peak_ewma"]).scenario
    assert sc.router.strategy == "peak_ewma"


def test_sweep_point_beats_set(tmp_path):
    write(tmp_path / "s.yaml", BASE + "sweep:\n  grid:\n    router.strategy: [peak_ewma, random]\n")
    loaded = load_scenario(tmp_path / "s.yaml", overrides=["router.strategy=least_connections",
                                                           "nodes[0].gpus=4"])
    assert loaded.scenario.router.strategy == "least_connections"
    assert [p.scenario.router.strategy for p in loaded.points] == ["peak_ewma", "random"]
    assert [p.scenario.nodes[0].gpus for p in loaded.points] == [4, 4]  # --set still applies


@pytest.mark.parametrize("text, check", [
    ("router.fixes=[retry_excludes_tried, inference_timeout]",
     lambda s: s.router.fixes == ["retry_excludes_tried", "inference_timeout"]),
    ("nodes[0].gpus=4", lambda s: s.nodes[0].gpus == 4 and isinstance(s.nodes[0].gpus, int)),
    ("nodes.0.count=3", lambda s: s.nodes[0].node_ids() == ["gpu-0", "gpu-1", "gpu-2"]),
    ("name=my run", lambda s: s.name == "my run"),
    ("name=a=b", lambda s: s.name == "a=b"),
    ("duration=2.5", lambda s: s.duration == 2.5),
    ("duration=5m", lambda s: s.duration == 300.0),
    ("regions[1].cost=30%", lambda s: s.regions[1].cost == pytest.approx(0.3)),
    ("workloads[0].arrival.rate=50/s", lambda s: s.workloads[0].arrival == {"kind": "poisson", "rate": 50.0}),
    ("workloads[0].arrival={kind: constant, rate: 3000/min}",
     lambda s: s.workloads[0].arrival == {"kind": "constant", "rate": 50.0}),
    ("router.health.check_interval=250ms", lambda s: s.router.health.check_interval == 0.25),
    ("router.breaker.reset_timeout=1m", lambda s: s.router.breaker.reset_timeout == 60.0),
    ("network.rtt={eu: {us: 80ms}}", lambda s: s.network.rtt == {"eu": {"us": 0.08}}),
    ("replications=4", lambda s: s.replications == 4),
])
def test_set_values_are_yaml(tmp_path, text, check):
    write(tmp_path / "s.yaml", BASE)
    assert check(load_scenario(tmp_path / "s.yaml", overrides=[text]).scenario)


# --------------------------------------------------------------------------- seeds

def test_seed_argument_and_replication_seeds(tmp_path):
    write(tmp_path / "s.yaml", BASE + "replications: 3\n")
    loaded = load_scenario(tmp_path / "s.yaml")
    assert loaded.scenario.seed == 3 and loaded.seeds() == [3, 4, 5]
    loaded = load_scenario(tmp_path / "s.yaml", seed=11)
    assert loaded.scenario.seed == 11 and loaded.seeds() == [11, 12, 13]
    loaded = load_scenario(tmp_path / "s.yaml", overrides=["seed=5"], seed=20)
    assert loaded.seeds() == [20, 21, 22]  # the seed argument beats --set seed=
    loaded = load_scenario(tmp_path / "s.yaml", overrides=["replications=1"], seed=0)
    assert loaded.seeds() == [0] and loaded.replications == 1


def test_default_seed_is_zero_and_one_replication(tmp_path):
    write(tmp_path / "s.yaml", BASE.replace("seed: 3\n", ""))
    assert load_scenario(tmp_path / "s.yaml").seeds() == [0]


def test_seed_argument_reaches_every_sweep_point(tmp_path):
    write(tmp_path / "s.yaml", BASE + "sweep:\n  grid:\n    router.strategy: [random, round_robin]\n")
    loaded = load_scenario(tmp_path / "s.yaml", seed=42)
    assert [p.scenario.seed for p in loaded.points] == [42, 42]


def test_negative_seed_argument_is_a_scenario_error(tmp_path):
    write(tmp_path / "s.yaml", BASE)
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "s.yaml", seed=-1)
    assert only(info.value).path == "seed"


# --------------------------------------------------------------------------- sweep

def test_sweep_grid_expansion_order_and_point_names(tmp_path):
    write(tmp_path / "s.yaml", BASE + """\
sweep:
  grid:
    router.strategy: [random, round_robin]
    nodes[0].gpus: [1, 2, 4]
""")
    loaded = load_scenario(tmp_path / "s.yaml")
    assert loaded.scenario.nodes[0].gpus == 2  # the base scenario has no sweep values
    combos = [(s, g) for s in ("random", "round_robin") for g in (1, 2, 4)]  # last key fastest
    assert [p.name for p in loaded.points] == [
        f"router.strategy={s},nodes[0].gpus={g}" for s, g in combos]
    assert [p.params for p in loaded.points] == [
        {"router.strategy": s, "nodes[0].gpus": g} for s, g in combos]
    assert [(p.scenario.router.strategy, p.scenario.nodes[0].gpus) for p in loaded.points] == combos
    assert all(p.scenario.nodes[1].gpus == 1 for p in loaded.points)


def test_sweep_grid_values_with_units_and_lists(tmp_path):
    write(tmp_path / "s.yaml", BASE + """\
sweep:
  grid:
    workloads[0].arrival.rate: [10/s, 3000/min]
    router.fixes: [none, [retry_excludes_tried]]
""")
    points = load_scenario(tmp_path / "s.yaml").points
    assert [p.name for p in points] == [
        "workloads[0].arrival.rate=10/s,router.fixes=none",
        "workloads[0].arrival.rate=10/s,router.fixes=['retry_excludes_tried']",
        "workloads[0].arrival.rate=3000/min,router.fixes=none",
        "workloads[0].arrival.rate=3000/min,router.fixes=['retry_excludes_tried']"]
    assert [p.scenario.workloads[0].arrival["rate"] for p in points] == [10.0, 10.0, 50.0, 50.0]
    assert [p.scenario.fixes().enabled() for p in points] == [
        (), ("retry_excludes_tried",), (), ("retry_excludes_tried",)]


def test_sweep_points_list(tmp_path):
    write(tmp_path / "s.yaml", BASE + """\
sweep:
  points:
    - {router.strategy: peak_ewma}
    - router.strategy: round_robin
      nodes[0].gpus: 8
    - {duration: 2m}
""")
    points = load_scenario(tmp_path / "s.yaml").points
    assert [p.name for p in points] == ["router.strategy=peak_ewma",
                                        "router.strategy=round_robin,nodes[0].gpus=8",
                                        "duration=2m"]
    assert points[1].params == {"router.strategy": "round_robin", "nodes[0].gpus": 8}
    assert [(p.scenario.router.strategy, p.scenario.nodes[0].gpus, p.scenario.duration)
            for p in points] == [("peak_ewma", 2, 60.0), ("round_robin", 8, 60.0),
                                 ("random", 2, 120.0)]


def test_sweep_in_a_base_file_is_inherited(tmp_path):
    write(tmp_path / "base.yaml", BASE + "sweep:\n  grid:\n    router.strategy: [random, round_robin]\n")
    write(tmp_path / "child.yaml", "extends: base.yaml\nname: child\n")
    points = load_scenario(tmp_path / "child.yaml").points
    assert [p.scenario.router.strategy for p in points] == ["random", "round_robin"]
    assert all(p.scenario.name == "child" for p in points)


def test_no_sweep_means_no_points(tmp_path):
    write(tmp_path / "s.yaml", BASE)
    assert load_scenario(tmp_path / "s.yaml").points == []


# --------------------------------------------------------------------------- trace paths

TRACE_WORKLOAD = "workloads:\n  - name: replay\n    arrival: {kind: trace, path: %s}\n"


def _without_workloads(text: str) -> str:
    return text[:text.index("workloads:")]


def test_trace_path_resolved_relative_to_the_declaring_file(tmp_path):
    (tmp_path / "lib" / "traces").mkdir(parents=True)
    (tmp_path / "lib" / "traces" / "t.csv").write_text("time\n0.5\n1.0\n")
    write(tmp_path / "lib" / "base.yaml", _without_workloads(BASE) + TRACE_WORKLOAD % "traces/t.csv")
    write(tmp_path / "runs" / "child.yaml", "extends: ../lib/base.yaml\nname: child\n")
    arrival = load_scenario(tmp_path / "runs" / "child.yaml").scenario.workloads[0].arrival
    assert Path(arrival["path"]) == (tmp_path / "lib" / "traces" / "t.csv").resolve()


def test_trace_path_in_the_child_is_relative_to_the_child(tmp_path):
    write(tmp_path / "lib" / "base.yaml", BASE)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "mine.csv").write_text("time\n0.1\n")
    write(tmp_path / "runs" / "child.yaml", "extends: ../lib/base.yaml\n" + TRACE_WORKLOAD % "mine.csv")
    arrival = load_scenario(tmp_path / "runs" / "child.yaml").scenario.workloads[0].arrival
    assert Path(arrival["path"]) == (tmp_path / "runs" / "mine.csv").resolve()


def test_absolute_trace_path_is_kept(tmp_path):
    csv = (tmp_path / "elsewhere" / "abs.csv")
    csv.parent.mkdir()
    csv.write_text("time\n0.1\n")
    write(tmp_path / "s.yaml", _without_workloads(BASE) + TRACE_WORKLOAD % str(csv.resolve()))
    arrival = load_scenario(tmp_path / "s.yaml").scenario.workloads[0].arrival
    assert Path(arrival["path"]) == csv.resolve()


# --------------------------------------------------------------------------- JSON Schema

SAMPLE = """\
name: sample
seed: 1
duration: 2h
warmup: 5m
sample_interval: 250ms
replications: 2
regions:
  - {id: eu, privacy: confidential, cost: 30%}
  - {id: us, traffic_share: 0.25}
network:
  rtt: {eu: {us: 80ms}}
  default_rtt: 50ms
nodes:
  - name: gpu
    region: eu
    count: 4
    gpus: 2
    service: {'*': {kind: exponential, mean: 50ms}}
    models: [{model: llama, capabilities: [generate]}]
gateways:
  - {name: gw-eu, region: eu}
router:
  strategy: least_latency
  fixes: [retry_excludes_tried]
  health: {check_interval: 500ms, probe_timeout: 2s}
  breaker: {reset_timeout: 1m}
workloads:
  - name: chat
    arrival: {kind: poisson, rate: 3000/min}
    privacy: {internal: 0.75, confidential: 0.25}
faults:
  - {kind: error_rate, target: gpu, at: 5m, duration: 30s, rate: 5%}
sweep:
  grid:
    router.strategy: [random, round_robin]
"""


def _type_ok(t: str, v) -> bool:
    return {"number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "string": isinstance(v, str), "boolean": isinstance(v, bool),
            "object": isinstance(v, dict), "array": isinstance(v, list), "null": v is None}[t]


def _schema_errors(schema: dict, value, root: dict, path: str = "$") -> list[str]:
    """A small JSON Schema checker (the keywords pydantic emits), for when the
    ``jsonschema`` package is not installed."""
    errors: list[str] = []
    if "$ref" in schema:
        errors += _schema_errors(root["$defs"][schema["$ref"].split("/")[-1]], value, root, path)
    for key in ("anyOf", "oneOf"):
        if key in schema and all(_schema_errors(s, value, root, path) for s in schema[key]):
            errors.append(f"{path}: {value!r} matches none of {key} {schema[key]}")
    for sub in schema.get("allOf", []):
        errors += _schema_errors(sub, value, root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(t, value) for t in types):
            errors.append(f"{path}: {value!r} is not of type {types}")
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        errors.append(f"{path}: {value!r} not in enum {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} != const {schema['const']!r}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += _schema_errors(props[k], v, root, f"{path}.{k}")
            elif extra is False:
                errors.append(f"{path}: unexpected key {k!r}")
            elif isinstance(extra, dict):
                errors += _schema_errors(extra, v, root, f"{path}.{k}")
        errors += [f"{path}: missing {r!r}" for r in schema.get("required", []) if r not in value]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += _schema_errors(schema["items"], item, root, f"{path}[{i}]")
    return errors


def schema_errors(data) -> list[str]:
    schema = json_schema()
    try:
        import jsonschema
    except ImportError:
        return _schema_errors(schema, data, schema)
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_sample_scenario_loads(tmp_path):
    write(tmp_path / "s.yaml", SAMPLE)
    loaded = load_scenario(tmp_path / "s.yaml")
    assert loaded.scenario.regions[0].privacy.name.lower() == "confidential"
    assert len(loaded.points) == 2


def test_schema_has_every_scenario_field_plus_extends_and_sweep():
    schema = json_schema()
    assert set(schema["properties"]) == set(Scenario.model_fields) | {"extends", "sweep"}
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"duration", "regions", "nodes", "workloads"}
    for name, sub in schema["$defs"].items():  # unknown keys are flagged at every depth
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False, name


def test_schema_accepts_unit_strings_for_durations_and_percentages():
    schema = json_schema()
    for prop in (schema["properties"]["duration"], schema["$defs"]["HealthSpec"]["properties"]["check_interval"]):
        kinds = {s["type"] for s in prop["anyOf"]}
        assert kinds == {"number", "string"}
        pattern = next(s["pattern"] for s in prop["anyOf"] if s["type"] == "string")
        for ok in ("250ms", "30s", "5m", "2h", "1d", "10µs", "3min"):
            assert re.search(pattern, ok), ok
        for bad in ("5", "5 parsecs", "fast"):
            assert not re.search(pattern, bad), bad
    cost = schema["$defs"]["RegionSpec"]["properties"]["cost"]
    pattern = next(s["pattern"] for s in cost["anyOf"] if s["type"] == "string")
    assert re.search(pattern, "5%") and not re.search(pattern, "5")


def test_sample_file_validates_against_the_schema():
    assert schema_errors(yaml.safe_load(SAMPLE)) == []


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: d.update(duraton=5), id="unknown-top-key"),
    pytest.param(lambda d: d.update(duration="5 parsecs"), id="malformed-duration"),
    pytest.param(lambda d: d["router"].update(stratgy="random"), id="unknown-router-key"),
    pytest.param(lambda d: d["nodes"][0].update(gpus="four"), id="string-for-int"),
    pytest.param(lambda d: d.pop("regions"), id="missing-required"),
])
def test_schema_rejects_bad_files(change):
    data = yaml.safe_load(SAMPLE)
    change(data)
    assert schema_errors(data)


def test_small_schema_checker_sanity():
    root = {"$defs": {"X": {"type": "object", "properties": {"a": {"type": "integer"}},
                            "additionalProperties": False}}}
    assert _schema_errors({"$ref": "#/$defs/X"}, {"a": 1}, root) == []
    assert _schema_errors({"$ref": "#/$defs/X"}, {"a": "1"}, root)
    assert _schema_errors({"$ref": "#/$defs/X"}, {"b": 1}, root)
    assert _schema_errors({"anyOf": [{"type": "number"}, {"type": "null"}]}, None, root) == []
    assert _schema_errors({"anyOf": [{"type": "number"}, {"type": "null"}]}, "x", root)
