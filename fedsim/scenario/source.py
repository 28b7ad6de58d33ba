"""YAML with positions: the data of a file plus where every key and value stands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Any

import yaml

from .errors import Issue, ScenarioError, format_path

Pos = tuple[str, int, int]  # file, line (1-based), column (1-based)


@dataclass
class Positions:
    """Where each path of the data was written: its key and its value."""

    keys: dict[tuple, Pos] = field(default_factory=dict)
    values: dict[tuple, Pos] = field(default_factory=dict)

    def drop_under(self, prefix: tuple) -> None:
        n = len(prefix)
        for table in (self.keys, self.values):
            for p in [p for p in table if p[:n] == prefix and len(p) > n]:
                del table[p]

    def update(self, other: "Positions") -> None:
        self.keys.update(other.keys)
        self.values.update(other.values)

    def find(self, path: tuple, key: bool = False) -> Pos | None:
        """The position of ``path`` (its key if ``key``), else of its nearest ancestor."""
        table = self.keys if key else self.values
        p = tuple(path)
        while True:
            if p in table:
                return table[p]
            if key and p in self.values:
                return self.values[p]
            if not p:
                return None
            p = p[:-1]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so keys such as ``on:`` and
    ``off:`` (the onoff arrival) and values such as ``no`` stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def _mark(file: str, node: yaml.Node) -> Pos:
    return (file, node.start_mark.line + 1, node.start_mark.column + 1)


def load_yaml(path: Path) -> tuple[Any, Positions]:
    """Parse ``path``; YAML errors and duplicate keys raise ScenarioError with the line."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Issue(file, None, None, "", "file not found")]) from None
    except OSError as err:
        raise ScenarioError([Issue(file, None, None, "", f"cannot read: {err.strerror}")]) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            empty = Positions()
            empty.values[()] = (file, 1, 1)
            return {}, empty
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or "invalid YAML"
        if "'\\t'" in problem or "\t" in problem:
            problem += "; indent with spaces, not tabs"
        if err.context:
            problem = f"{err.context}: {problem}" if "while" not in err.context else f"{problem} ({err.context})"
        raise ScenarioError([Issue(file, mark.line + 1 if mark else None,
                                   mark.column + 1 if mark else None, "",
                                   f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as err:
        raise ScenarioError([Issue(file, None, None, "", f"YAML syntax error: {err}")]) from None
    finally:
        loader.dispose()
    positions = Positions()
    issues: list[Issue] = []

    def key_of(knode: yaml.Node):
        # the key as the SafeLoader resolved it (ints stay ints, strings stay strings)
        if not isinstance(knode, yaml.ScalarNode):
            return str(knode.value)
        tag, value = knode.tag, knode.value
        try:
            if tag == "tag:yaml.org,2002:int":
                return int(value)
            if tag == "tag:yaml.org,2002:float":
                return float(value)
        except ValueError:
            return value
        if tag == "tag:yaml.org,2002:bool":
            return value.lower() == "true"
        if tag == "tag:yaml.org,2002:null":
            return None
        return value

    def walk(n: yaml.Node, p: tuple) -> None:
        positions.values[p] = _mark(file, n)
        if isinstance(n, yaml.MappingNode):
            seen: set = set()
            for knode, vnode in n.value:
                key = key_of(knode)
                if key in seen:
                    f, line, col = _mark(file, knode)
                    issues.append(Issue(f, line, col, format_path(p + (key,)),
                                        f"duplicate key {key!r}"))
                seen.add(key)
                positions.keys[p + (key,)] = _mark(file, knode)
                walk(vnode, p + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                positions.keys[p + (i,)] = _mark(file, item)
                walk(item, p + (i,))

    walk(node, ())
    if issues:
        raise ScenarioError(issues)
    return data, positions
