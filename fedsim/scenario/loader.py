"""Load scenario files: ``extends:``, ``--set`` overrides, ``sweep:`` and validation with
errors that name the file, line, column and key path.

A scenario file is the YAML form of :class:`fedsim.world.Scenario` plus two top-level keys:

* ``extends: base.yaml`` — start from another file (relative to this one) and override parts
  of it: mappings merge key by key, anything else (lists included) is replaced.
* ``sweep:`` — ``grid: {key.path: [values, ...], ...}`` (every combination) or
  ``points: [{key.path: value, ...}, ...]`` (an explicit list); each point is the scenario with
  those overrides.

Precedence, lowest first: the ``extends`` chain (base first), the file itself, ``--set``
overrides, then a sweep point's values.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml
from pydantic import BaseModel, ValidationError

from ..world.scenario import Scenario
from .errors import Issue, ScenarioError, format_path
from .source import Positions, load_yaml

EXTRA_KEYS = ("extends", "sweep")


@dataclass
class SweepPoint:
    """One point of a sweep: its overrides and the validated scenario."""

    name: str
    params: dict[str, Any]
    scenario: Scenario


@dataclass
class LoadedScenario:
    """A validated scenario file."""

    path: Path
    scenario: Scenario
    points: list[SweepPoint] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def replications(self) -> int:
        return self.scenario.replications

    def seeds(self) -> list[int]:
        """Replication seeds: the scenario seed, then seed + 1, ..."""
        return [self.scenario.seed + i for i in range(self.scenario.replications)]


# --------------------------------------------------------------------------- paths

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(text: str) -> tuple:
    """``nodes[3].gpus`` or ``nodes.3.gpus`` -> ``('nodes', 3, 'gpus')``."""
    text = text.strip()
    if not text:
        raise ValueError("empty key path")
    parts: list = []
    pos = 0
    for m in _PATH_PART.finditer(text):
        if m.start() != pos and text[pos:m.start()] != ".":
            raise ValueError(f"malformed key path {text!r}")
        pos = m.end()
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            name = m.group(1)
            parts.append(int(name) if name.isdigit() else name)
    if pos != len(text):
        raise ValueError(f"malformed key path {text!r}")
    return tuple(parts)


def set_path(data: Any, path: tuple, value: Any) -> None:
    """Set ``value`` at ``path`` inside nested dicts/lists, creating mappings as needed."""
    cur = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(cur, list):
            if not isinstance(part, int) or not -len(cur) <= part < len(cur):
                raise KeyError(f"{format_path(path[:i + 1])}: no such list item "
                               f"(the list has {len(cur)})")
            cur = cur[part]
        elif isinstance(cur, dict):
            if part not in cur or cur[part] is None:
                if isinstance(nxt, int):
                    raise KeyError(f"{format_path(path[:i + 1])}: no such list")
                cur[part] = {}
            cur = cur[part]
        else:
            raise KeyError(f"{format_path(path[:i + 1])} is a value, not a mapping or list")
    last = path[-1]
    if isinstance(cur, list):
        if not isinstance(last, int) or not -len(cur) <= last < len(cur):
            raise KeyError(f"{format_path(path)}: no such list item (the list has {len(cur)})")
        cur[last] = value
    elif isinstance(cur, dict):
        cur[last] = value
    else:
        raise KeyError(f"{format_path(path[:-1])} is a value, not a mapping or list")


def merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings key by key, everything else replaced by ``over``."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _merge_positions(base: Positions, base_data: Any, over: Positions, over_data: Any,
                     prefix: tuple = ()) -> None:
    """Positions after ``merge(base_data, over_data)``: where ``over`` replaced a value,
    its subtree's positions replace the base's."""
    if isinstance(base_data, dict) and isinstance(over_data, dict):
        for k, v in over_data.items():
            p = prefix + (k,)
            if k in base_data and isinstance(base_data[k], dict) and isinstance(v, dict):
                if p in over.keys:
                    base.keys[p] = over.keys[p]
                _merge_positions(base, base_data[k], over, v, p)
            else:
                base.drop_under(p)
                for table_from, table_to in ((over.keys, base.keys), (over.values, base.values)):
                    for q, pos in table_from.items():
                        if q[:len(p)] == p:
                            table_to[q] = pos


# --------------------------------------------------------------------------- loading


def _read(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Positions]:
    data, pos = load_yaml(path)
    if not isinstance(data, dict):
        f, line, col = pos.values.get((), (str(path), 1, 1))
        raise ScenarioError([Issue(f, line, col, "", "a scenario file must be a mapping of "
                                   f"keys to values, found {type(data).__name__}")])
    parent = data.get("extends")
    if parent is None:
        return data, pos
    f, line, col = pos.values.get(("extends",), (str(path), None, None))
    if not isinstance(parent, str):
        raise ScenarioError([Issue(f, line, col, "extends", "expected a file path, found "
                                   f"{parent!r}")])
    parent_path = (path.parent / parent).resolve()
    if parent_path in chain or parent_path == path.resolve():
        cycle = " -> ".join(str(p) for p in chain + (path.resolve(), parent_path))
        raise ScenarioError([Issue(f, line, col, "extends", f"cyclic extends: {cycle}")])
    if not parent_path.exists():
        raise ScenarioError([Issue(f, line, col, "extends", f"file not found: {parent} "
                                   f"(looked for {parent_path})")])
    base, base_pos = _read(parent_path, chain + (path.resolve(),))
    merged = merge(base, {k: v for k, v in data.items() if k != "extends"})
    _merge_positions(base_pos, base, pos, {k: v for k, v in data.items() if k != "extends"})
    merged.pop("extends", None)
    return merged, base_pos


def _apply_overrides(data: dict, pos: Positions, overrides: Iterable[str],
                     issues: list[Issue]) -> None:
    for text in overrides:
        where = f"--set {text}"
        if "=" not in text:
            issues.append(Issue(where, None, None, "", "expected KEY.PATH=VALUE"))
            continue
        key, raw = text.split("=", 1)
        try:
            path = parse_path(key)
            value = yaml.safe_load(raw) if raw.strip() else ""
            set_path(data, path, value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "invalid YAML"
            issues.append(Issue(where, None, None, key.strip(),
                                f"cannot read the value {raw!r} as YAML: {problem}"))
            continue
        except (ValueError, KeyError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            issues.append(Issue(where, None, None, key.strip(), str(msg)))
            continue
        pos.drop_under(path)
        pos.keys[path] = pos.values[path] = (where, None, None)


def _resolve_trace_paths(data: dict, pos: Positions) -> None:
    for i, w in enumerate(data.get("workloads") or []):
        arrival = w.get("arrival") if isinstance(w, dict) else None
        if isinstance(arrival, dict) and isinstance(arrival.get("path"), str):
            p = Path(arrival["path"])
            where = pos.find(("workloads", i, "arrival", "path"))
            if not p.is_absolute() and where and where[1] is not None:
                arrival["path"] = str((Path(where[0]).parent / p).resolve())


def load_scenario(path: Union[str, Path], overrides: Iterable[str] = (),
                  seed: Optional[int] = None) -> LoadedScenario:
    """Read, merge, override and validate a scenario file (and every sweep point).

    Raises :class:`ScenarioError` listing every problem found, each with its file, line,
    column and key path."""
    path = Path(path)
    data, pos = _read(path, ())
    issues: list[Issue] = []
    _apply_overrides(data, pos, overrides, issues)
    if seed is not None:
        data["seed"] = seed
    if issues:
        raise ScenarioError(issues)
    _resolve_trace_paths(data, pos)
    sweep = data.pop("sweep", None)
    base = {k: v for k, v in data.items() if k not in EXTRA_KEYS}
    scenario = validate(base, pos, str(path))
    points = _sweep_points(sweep, base, pos, str(path)) if sweep is not None else []
    return LoadedScenario(path, scenario, points, base)


def _sweep_points(sweep: Any, base: dict, pos: Positions, file: str) -> list[SweepPoint]:
    where = pos.find(("sweep",)) or (file, None, None)
    expected = "expected 'grid: {key.path: [values]}' or 'points: [{key.path: value}]'"
    if not isinstance(sweep, dict):
        raise ScenarioError([Issue(where[0], where[1], where[2], "sweep",
                                   f"{expected}; found {_describe(sweep)}")])
    unknown = [k for k in sweep if k not in ("grid", "points")]
    if unknown:
        k = unknown[0]
        w = pos.find(("sweep", k), key=True) or where
        close = difflib.get_close_matches(str(k), ["grid", "points"], n=1)
        raise ScenarioError([Issue(w[0], w[1], w[2], f"sweep.{k}", f"unknown key {k!r}; {expected}",
                                   f"did you mean {close[0]!r}?" if close else None)])
    if len(sweep) != 1:
        raise ScenarioError([Issue(where[0], where[1], where[2], "sweep",
                                   f"{expected}, not both")])
    if "grid" in sweep:
        grid = sweep["grid"]
        if not isinstance(grid, dict) or not grid:
            raise ScenarioError([Issue(where[0], where[1], where[2], "sweep.grid",
                                       "expected a mapping of key paths to lists of values")])
        for k, values in grid.items():
            if not isinstance(values, list) or not values:
                w = pos.find(("sweep", "grid", k)) or where
                raise ScenarioError([Issue(w[0], w[1], w[2], f"sweep.grid.{k}",
                                           f"expected a non-empty list of values, found {values!r}")])
        keys = list(grid)
        combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
        origin = [("sweep", "grid", k) for k in keys]
    else:
        combos = sweep["points"]
        if not isinstance(combos, list) or not combos or not all(isinstance(c, dict) for c in combos):
            raise ScenarioError([Issue(where[0], where[1], where[2], "sweep.points",
                                       "expected a non-empty list of mappings")])
        origin = None
    points = []
    issues: list[Issue] = []
    for i, params in enumerate(combos):
        data = copy.deepcopy(base)
        ppos = Positions(dict(pos.keys), dict(pos.values))
        for k, v in params.items():
            src = (pos.find(("sweep", "points", i, k)) if origin is None
                   else pos.find(("sweep", "grid", k))) or where
            try:
                p = parse_path(str(k))
                set_path(data, p, copy.deepcopy(v))
            except (ValueError, KeyError) as err:
                msg = err.args[0] if err.args else str(err)
                issues.append(Issue(src[0], src[1], src[2], f"sweep: {k}", str(msg)))
                continue
            ppos.drop_under(p)
            ppos.keys[p] = ppos.values[p] = src
        name = ",".join(f"{k}={v}" for k, v in params.items())
        try:
            points.append(SweepPoint(name, dict(params), validate(data, ppos, file, f" (sweep point {name})")))
        except ScenarioError as err:
            issues.extend(err.issues)
    if issues:
        raise ScenarioError(issues)
    return points


# --------------------------------------------------------------------------- validation

_LEADING_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])?(?:\.[\w*][\w*\-]*(?:\[\d+\])?)*): (.*)$", re.S)


def validate(data: dict, pos: Positions, file: str, context: str = "") -> Scenario:
    """Validate merged data as a Scenario, turning pydantic's errors into Issues."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        issues = [_issue(e, pos, file, context) for e in exc.errors()]
        raise ScenarioError(_merge_same_place(issues)) from None


def _merge_same_place(issues: list[Issue]) -> list[Issue]:
    """One issue per place: the alternatives of a union field become one message."""
    merged: dict[tuple, Issue] = {}
    for i in issues:
        key = (i.file, i.line, i.column, i.path)
        prev = merged.get(key)
        if prev is None:
            merged[key] = i
        elif i.message not in prev.message:
            merged[key] = Issue(prev.file, prev.line, prev.column, prev.path,
                                f"{prev.message}; or: {i.message}", prev.hint or i.hint)
    return list(merged.values())


_TYPE_STEP = re.compile(r"^(function-|literal\[|list\[|dict\[|union\[|tagged-union\[)|^(str|int|float|bool|none|[A-Z]\w*Spec|Scenario)$")


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's validator and union-branch steps (``function-after[...]``,
    ``list[str]``, ``literal['a']``) so the path is the file's own key path."""
    return tuple(p for p in loc if not (isinstance(p, str) and _TYPE_STEP.match(p)))


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _issue(err: dict, pos: Positions, file: str, context: str) -> Issue:
    loc = _clean_loc(tuple(err["loc"]))
    key_is_culprit = False
    etype = err["type"]
    msg = err["msg"]
    hint = None
    if etype == "extra_forbidden":
        key = loc[-1]
        fields = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else None
        message = f"unknown key {key!r}; valid keys here: {', '.join(fields)}"
        where = pos.find(loc, key=True)
    elif etype == "missing":
        message = f"missing required key {loc[-1]!r}"
        where = pos.find(loc[:-1])
    else:
        if etype == "value_error":
            msg = msg.removeprefix("Value error, ")
            m = _LEADING_PATH.match(msg)
            if m:  # cross-reference errors name their own path
                try:
                    named = parse_path(m.group(1))
                except ValueError:
                    named = ()
                if named and named[0] in Scenario.model_fields:
                    loc, msg = named, m.group(2)
                    # a key that names something undefined: point at the key itself
                    key_is_culprit = isinstance(loc[-1], str) and f"{loc[-1]!r}" in msg
            message = msg
        elif etype == "assertion_error":
            message = msg.removeprefix("Assertion failed, ")
        else:
            message = f"{msg}; found {_describe(err.get('input'))}"
        where = pos.find(loc, key=key_is_culprit)
    f, line, col = where if where else (file, None, None)
    return Issue(f, line, col, format_path(loc), message + context, hint)


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return _unwrap(models[0] if models else args[0]) if args else tp
    return tp


def _fields_at(loc: tuple) -> list[str]:
    """Field names of the model found by following ``loc`` from Scenario."""
    tp: Any = Scenario
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not isinstance(part, str) or part not in tp.model_fields:
                return []
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        names = [n for n, f in tp.model_fields.items() if not f.exclude]
        return names + (list(EXTRA_KEYS) if tp is Scenario else [])
    return []


def json_schema() -> dict:
    """JSON Schema of scenario files (for editors), generated from the model."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fedsim scenario"
    props = schema.setdefault("properties", {})
    props["extends"] = {"type": "string", "description": "a scenario file this one overrides"}
    props["sweep"] = {
        "description": "grid: {key.path: [values]} or points: [{key.path: value}]",
        "type": "object",
        "properties": {"grid": {"type": "object", "additionalProperties": {"type": "array"}},
                       "points": {"type": "array", "items": {"type": "object"}}},
        "additionalProperties": False,
    }
    return schema
