"""Columnar recording: typed arrays per column, strings as category codes.

No Python object per request stays alive after the request ends: each finished request
appends one value per column to compact ``array`` buffers, and strings are interned once
as category codes.  ``frame()`` builds the pandas DataFrame at the end of the run.
"""

from __future__ import annotations

from array import array
from typing import Iterable

import numpy as np
import pandas as pd

NAN = float("nan")


class Table:
    """An append-only table with a fixed schema.

    ``schema`` maps column name to kind: ``"f"`` float64, ``"i"`` int64, ``"b"`` bool,
    ``"s"`` string (categorical).  Missing floats are NaN; missing strings are None."""

    def __init__(self, schema: dict[str, str]) -> None:
        self.schema = dict(schema)
        self._cols: dict[str, array] = {}
        self._cats: dict[str, dict] = {}
        for name, kind in schema.items():
            if kind == "f":
                self._cols[name] = array("d")
            elif kind == "i":
                self._cols[name] = array("q")
            elif kind == "b":
                self._cols[name] = array("b")
            elif kind == "s":
                self._cols[name] = array("i")
                self._cats[name] = {}
            else:
                raise ValueError(f"unknown column kind {kind!r} for {name}")
        self._order = list(schema)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, *values) -> None:
        """One row, values in schema order."""
        cols, cats = self._cols, self._cats
        for name, v in zip(self._order, values):
            cat = cats.get(name)
            if cat is not None:
                if v is None:
                    code = -1
                else:
                    code = cat.get(v)
                    if code is None:
                        code = cat[v] = len(cat)
                cols[name].append(code)
            else:
                cols[name].append(NAN if v is None else v)
        self._n += 1

    def set(self, row: int, name: str, value: float) -> None:
        """Overwrite one numeric cell (e.g. an attempt's backoff, known only afterwards)."""
        self._cols[name][row] = value

    def frame(self) -> pd.DataFrame:
        # A Ctrl-C can land in the middle of append(): keep only complete rows.
        n = min((len(b) for b in self._cols.values()), default=0)
        data = {}
        for name in self._order:
            kind = self.schema[name]
            buf = self._cols[name][:n]
            if kind == "s":
                cats = list(self._cats[name])
                codes = np.frombuffer(buf, dtype=np.int32) if len(buf) else np.empty(0, np.int32)
                data[name] = pd.Categorical.from_codes(codes.copy(), categories=_unique(cats))
            elif kind == "f":
                data[name] = np.frombuffer(buf, dtype=np.float64).copy() if len(buf) else np.empty(0)
            elif kind == "i":
                data[name] = np.frombuffer(buf, dtype=np.int64).copy() if len(buf) else np.empty(0, np.int64)
            else:
                data[name] = (np.frombuffer(buf, dtype=np.int8) != 0) if len(buf) else np.empty(0, bool)
        return pd.DataFrame(data, columns=self._order)


def _unique(values: Iterable) -> list:
    # categories are already unique by construction (dict keys); keep order
    return list(values)
