"""Columnar recording: rows appended as tuples, converted to columns in bulk per chunk.

Each finished request (attempt, sample, event) appends one tuple, its values in schema
order, to its table's current chunk, a plain list: one list append, no per-cell work.  Values
go in raw, as the simulation has them: times as integer nanoseconds (column kind ``"t"``),
and whatever is derived from a row (the requests table's latency, privacy name, ...) is
computed per chunk by the table's ``objects`` function (see ``Recorder`` in
:mod:`fedsim.world.simulation`).  When the chunk holds ``chunk_rows`` rows (4096: small
enough to stay in the CPU caches), the *next* append converts it column-wise in one go (one
C loop turns the tuples into a 2-D object array; numeric columns are cast with numpy, None
becoming NaN, nanoseconds divided into seconds; strings are factorised with pandas, except
that a column holding one value throughout the chunk, or none, as most do (workload,
tenant, gateway, no error, ...), is recognised with one ``list.count``, see ``all_equal``) into
a :class:`Chunk`, which the table then either

* keeps (numeric columns as numpy arrays, strings as int32 codes into the chunk's values),
  ``frame()`` joining the chunks into the pandas DataFrame at the end of the run: a string
  column's categories are all chunks' values in a row when those are distinct (an id per
  request: no second hashing pass over cold strings), else those values factorised once, in
  order of first appearance over the whole table either way, and pandas is not made to
  check them again (``_distinct_dtype``); or
* hands to a *sink* (streamed mode: :class:`ParquetSink` writes a parquet row group every
  ``ROW_GROUP_ROWS`` rows), keeping nothing, so memory does not grow with the run.

Listeners (``Table.listen``) see every chunk as it is converted, e.g. to feed streaming
quantile sketches (:class:`fedsim.world.result.RunStats`).

**Invariant for ``Table.set``.**  A chunk is converted at the append *after* it became full,
never at the append that fills it, so the most recently appended row is always still in the
in-memory chunk and can be overwritten with ``set(row, name, value)`` until the next append.
The world relies on this: the gateway sets an attempt's ``backoff`` on the attempt row just
appended for it (``World.attempt``), before any other attempt is appended
(``GatewayReplica._backoff``).  In the
kept (non-streamed) mode any earlier numeric cell can be set as well; in streamed mode a row
that has already been written raises ``RuntimeError``.

A Ctrl-C during a conversion is held until the chunk is committed (see ``_no_interrupt``),
so a table is never left with part of a chunk converted; an append itself is atomic.

Cost (benchmarks/scaling.py ``recorder_append``): about 1.4-1.5 us per 22-column row,
conversion and ``frame()`` included (1.8 before the fast paths above, on the same noisy
machine), against 3.7-3.9 us for the previous per-cell ``array`` appends.  In the benchmark
world (benchmarks/world.py, 300 s, one attempt row per request) the chunk conversions and
``frame()`` cost about 1.05 us per request (1.5 before): ``_request_objects`` 0.20,
requests chunks 0.36, attempts chunks 0.19, requests ``frame()`` 0.25.
"""

from __future__ import annotations

import bisect
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import pandas as pd
import pyarrow as pa

NAN = float("nan")
CHUNK_ROWS = 4_096        # rows converted at a time (small: stays in the CPU caches)
ROW_GROUP_ROWS = 65_536   # streamed: rows written at a time (one parquet row group)

_ARROW = {"f": pa.float64(), "t": pa.float64(), "i": pa.int64(), "b": pa.bool_(),
          "s": pa.string()}
_DTYPE = {"f": np.float64, "t": np.float64, "i": np.int64, "b": bool}
_DICT = pa.dictionary(pa.int32(), pa.string())


@contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block is done, then
    deliver it to the handler that was in place (KeyboardInterrupt by default), so a chunk
    is converted and committed (or written) entirely or not at all.  Signals reach only the
    main thread's Python code, so elsewhere there is nothing to hold."""
    caught: list = []
    installed = False
    if threading.current_thread() is threading.main_thread():
        try:
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: a handler not set from Python; leave it be
                signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
                installed = True
        except (ValueError, OSError, TypeError):  # cannot install a handler here
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)
            if caught:
                signal.raise_signal(signal.SIGINT)  # now handled as it would have been


def to_object_array(rows: list) -> np.ndarray:
    """Row tuples as a 2-D object array (pandas' C loop; numpy's generic one if absent)."""
    if _rows_to_objects is not None:
        return _rows_to_objects(rows)
    return np.array(rows, dtype=object)


try:  # one C loop over the row tuples; pandas' own DataFrame.from_records uses it
    from pandas._libs.lib import to_object_array_tuples as _rows_to_objects
except ImportError:  # pragma: no cover - a pandas without it
    _rows_to_objects = None


class Chunk:
    """Converted rows: ``n`` rows; ``numeric(name)`` is a numpy column (float64 with NaN for
    missing, int64 or bool) and ``codes(name)`` gives a string column as int codes (-1 for
    missing) into a list of values (this chunk's, in order of first appearance)."""

    __slots__ = ("n", "columns", "schema")

    def __init__(self, n: int, columns: dict, schema: dict[str, str]) -> None:
        self.n = n
        self.columns = columns  # name -> ndarray, or (codes ndarray, values ndarray[object])
        self.schema = schema

    def numeric(self, name: str) -> np.ndarray:
        return self.columns[name]

    def codes(self, name: str) -> tuple[np.ndarray, list]:
        codes, values = self.columns[name]
        return codes, list(values)

    @classmethod
    def from_rows(cls, rows: list, schema: dict[str, str]) -> "Chunk":
        """Convert value tuples (in schema order)."""
        return cls.from_objects(to_object_array(rows), schema)

    @classmethod
    def from_objects(cls, obj: np.ndarray, schema: dict[str, str]) -> "Chunk":
        """Convert a 2-D object array, one row per table row, columns in schema order."""
        if obj.ndim != 2 or obj.shape[1] != len(schema):
            raise ValueError(f"rows must have {len(schema)} values (the schema's columns)")
        n, cols = len(obj), {}
        for j, (name, kind) in enumerate(schema.items()):
            c = obj[:, j]
            if kind == "s":
                cols[name] = _factorize(c)
            elif kind in "ft" and n and c[0] is None and all_equal(c, None):  # e.g. no ttft
                cols[name] = np.full(n, NAN)  # what the casts below give
            elif kind == "i" and n and type(c[0]) is int and all_equal(c, c[0]):  # e.g. tokens
                cols[name] = np.full(n, c[0], np.int64)  # what the cast gives any equal value
            elif kind == "f":
                cols[name] = c.astype(np.float64)  # None -> NaN
            elif kind == "t":  # int ns -> s, each exactly as t / 1e9; None -> NaN
                cols[name] = c.astype(np.float64) / 1e9
            elif kind == "i":
                cols[name] = c.astype(np.int64)    # None -> TypeError
            else:
                cols[name] = c.astype(bool)
        return cls(n, cols, schema)

    def arrow(self) -> list:
        """pyarrow arrays in schema order (strings dictionary-encoded)."""
        out = []
        for name, kind in self.schema.items():
            c = self.columns[name]
            if kind == "s":
                codes, values = c
                try:
                    values = pa.array(values, type=pa.string())
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # not str: written as its text
                    values = pa.array([str(v) for v in values], type=pa.string())
                out.append(pa.DictionaryArray.from_arrays(
                    pa.array(codes, type=pa.int32(), mask=codes < 0), values))
            else:
                out.append(pa.array(c))
        return out


def all_equal(column: np.ndarray, value: Any) -> bool:
    """Whether every value of a (non-empty) object column is ``value``, or equal to it: the
    last one is compared first (so a column that varies costs next to nothing), then all of
    them with one ``list.count`` (in C, identity first; about 1 ns a value)."""
    try:
        return column[len(column) - 1] == value and column.tolist().count(value) == len(column)
    except (TypeError, ValueError):  # a value that cannot say (pd.NA, an array)
        return False


def _factorize(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(column)``, codes as int32.  Within a chunk most string columns hold one
    value throughout (a run's workload, tenant, gateway, ...) or none at all (no error):
    those are found at a fifth of the cost of pandas' hashing, and given what
    ``pd.factorize`` gives them (equal values hash alike, so it too keeps the first)."""
    n = len(column)
    first = column[0] if n else None
    if n and (first is None or isinstance(first, str)) and all_equal(column, first):
        if first is None:
            return np.full(n, -1, np.int32), np.empty(0, object)
        return np.zeros(n, np.int32), np.array([first], dtype=object)
    codes, values = pd.factorize(column)
    return codes.astype(np.int32), values


class Table:
    """An append-only table with a fixed schema.

    ``schema`` maps column name to kind: ``"f"`` float64, ``"t"`` a time as integer
    nanoseconds recorded as float64 seconds, ``"i"`` int64, ``"b"`` bool, ``"s"`` string
    (categorical).  Missing floats and times are NaN; missing strings are None.
    ``sink(chunk)``, when given, receives each converted :class:`Chunk` and the table keeps
    nothing of it.  ``len(table)`` is the number of rows appended.

    ``objects(rows)``, when given, turns a chunk's rows (what was appended: raw values)
    into the 2-D object array of the column values in schema order, so that values derived
    from a row are computed per chunk, column-wise, instead of per row by the caller.  The
    cells of such a table cannot be ``set`` (a raw value is not a column value)."""

    def __init__(self, schema: dict[str, str], chunk_rows: int = CHUNK_ROWS,
                 sink: Optional[Callable[[Chunk], None]] = None,
                 objects: Optional[Callable[[list], np.ndarray]] = None) -> None:
        for name, kind in schema.items():
            if kind not in _ARROW:
                raise ValueError(f"unknown column kind {kind!r} for {name}")
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self.schema = dict(schema)
        self._order = list(schema)
        self._kinds = [schema[n] for n in self._order]
        self.chunk_rows = int(chunk_rows)
        self._sink = sink
        self._objects = objects
        self._listeners: list[Callable[[Chunk], None]] = []
        self._rows: list[tuple] = []   # the current chunk: row tuples in schema order
        self._base = 0                 # table row index of self._rows[0]
        self._chunks: list[dict] = []  # kept mode: the converted chunks' columns
        self._starts: list[int] = []   # first row of each kept chunk

    def __len__(self) -> int:
        return self._base + len(self._rows)

    @property
    def streamed(self) -> bool:
        return self._sink is not None

    def listen(self, callback: Callable[[Chunk], None]) -> None:
        """Call ``callback(chunk)`` with every chunk as it is converted (see :class:`Chunk`)."""
        self._listeners.append(callback)

    def append(self, *values) -> None:
        """One row, values in schema order (see :meth:`add`)."""
        self.add(values)

    def add(self, row) -> int:
        """One row, a tuple of values in schema order (raw values for ``objects``); returns
        its row index.  Converts the previous chunk first if it is full (so the row appended
        last stays settable until the next append)."""
        rows = self._rows
        if len(rows) < self.chunk_rows:
            rows.append(row)
            return self._base + len(rows) - 1
        try:
            self.flush()
        finally:  # a Ctrl-C held during the flush is raised after it: keep the row
            self._rows.append(row)
        return self._base

    def set(self, row: int, name: str, value: Any) -> None:
        """Overwrite one cell (e.g. an attempt's backoff, known only afterwards).

        Always possible for rows still in the current chunk, which includes the row appended
        last (see the module docstring); for converted rows only numeric cells of a kept
        (non-streamed) table."""
        i = row - self._base
        j = self._order.index(name)
        if 0 <= i < len(self._rows):
            if self._objects is not None:
                raise TypeError("this table derives its columns per chunk: cells cannot be set")
            r = self._rows[i]
            self._rows[i] = r[:j] + (value,) + r[j + 1:]
            return
        if row < 0 or row >= len(self):
            raise IndexError(f"row {row} out of range (table has {len(self)} rows)")
        if self._sink is not None:
            raise RuntimeError(f"row {row} was already written to the stream; only rows of "
                               f"the current chunk (from {self._base}) can be set")
        if self._kinds[j] == "s":
            raise TypeError(f"cannot set string column {name!r} of an already converted row")
        c = bisect.bisect_right(self._starts, row) - 1
        self._chunks[c][name][row - self._starts[c]] = NAN if value is None else value

    def flush(self) -> None:
        """Convert the current chunk now (keep it, or hand it to the sink)."""
        rows = self._rows
        if not rows:
            return
        with _no_interrupt():
            chunk = self._convert(rows)
            for cb in self._listeners:
                cb(chunk)
            if self._sink is not None:
                self._sink(chunk)
            else:
                self._chunks.append(chunk.columns)
                self._starts.append(self._base)
            self._base += len(rows)
            self._rows = []

    def _convert(self, rows: list) -> Chunk:
        if self._objects is None:
            return Chunk.from_rows(rows, self.schema)
        return Chunk.from_objects(self._objects(rows), self.schema)

    # ------------------------------------------------------------------ reading
    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame: categoricals for strings (categories in order of first
        appearance), NaN for missing floats.

        Kept mode: every row.  Streamed mode: only the rows not yet written."""
        parts = list(self._chunks)
        if self._rows:
            parts.append(self._convert(list(self._rows)).columns)
        data = {}
        for name, kind in zip(self._order, self._kinds):
            cols = [p[name] for p in parts]
            if kind == "s":
                data[name] = _categorical(cols)
            else:
                data[name] = np.concatenate(cols) if cols else np.empty(0, _DTYPE[kind])
        return pd.DataFrame(data, columns=self._order)


def _categorical(chunks: list) -> pd.Categorical:
    """One string column from its chunks' (codes, values).  The categories are all chunks'
    values in a row when those are distinct (e.g. an id per row; always so for one chunk),
    otherwise those values factorised once: either way in order of first appearance over
    the table (a value first seen in chunk k is in no earlier chunk).  A chunk whose values
    keep their places among the categories (e.g. a column with one value, or none) keeps its
    codes as they are; the others' codes go through a lookup of their values' places.
    Distinctness is pandas' own (``is_unique`` on the values as objects)."""
    values = np.concatenate([v for _, v in chunks]) if chunks else np.empty(0, object)
    if len(chunks) > 1 and not pd.Index(values, dtype=object).is_unique:
        table_codes, values = pd.factorize(values)
    else:
        table_codes = np.arange(len(values))
    offset, parts = 0, []
    for c, v in chunks:
        places = table_codes[offset:offset + len(v)]
        if (places != np.arange(len(v))).any():
            c = np.append(places, -1).astype(np.int32)[c]  # -1 (missing) picks the last
        parts.append(c)
        offset += len(v)
    codes = np.concatenate(parts) if parts else np.empty(0, np.int32)
    return pd.Categorical.from_codes(codes, dtype=_distinct_dtype(pd.Index(values)),
                                     validate=False)


def _distinct_dtype(categories: pd.Index) -> pd.CategoricalDtype:
    """The dtype ``Categorical.from_codes`` would give these categories, without checking
    again that they are distinct and not missing (they come from ``pd.factorize``, or were
    just found unique): pandas' check turns arrow-backed strings back into Python objects
    to hash them, which for an id per request costs more than the rest of the column."""
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)  # pandas-internal
    if fastpath is None:  # pragma: no cover - a pandas without it
        return pd.CategoricalDtype(categories, ordered=False)
    return fastpath(categories, ordered=False)


def chunk_frame(chunk: Chunk) -> pd.DataFrame:
    data = {}
    for name, kind in chunk.schema.items():
        c = chunk.columns[name]
        if kind == "s":
            codes, values = c
            data[name] = pd.Categorical.from_codes(codes, categories=list(values))
        else:
            data[name] = c
    return pd.DataFrame(data, columns=list(chunk.schema))


# --------------------------------------------------------------------------- streaming


def arrow_schema(schema: dict[str, str], seed_column: bool = False) -> pa.Schema:
    """The parquet columns of a table: float64, int64, bool, strings as
    dictionary<int32, string> (categoricals in pandas); a leading int64 ``seed`` if asked."""
    fields = [pa.field("seed", pa.int64())] if seed_column else []
    fields += [pa.field(n, _DICT if k == "s" else _ARROW[k]) for n, k in schema.items()]
    return pa.schema(fields)


class ParquetSink:
    """Writes tables to ``directory/<table>.parquet`` chunk by chunk while a run goes on
    (``pyarrow.parquet.ParquetWriter``, one row group per chunk).

    Columns and types are those of the non-streamed files (strings dictionary-encoded, so
    pandas reads them back as categoricals), with a leading constant ``seed`` column when
    ``seed_column`` is true (several replications into the same files).  One sink can take
    several runs one after the other; ``close()`` finishes the files (a table that got no
    rows is written with its columns and no rows)."""

    def __init__(self, directory: Union[str, Path], seed_column: bool = False,
                 compression: str = "snappy", row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.directory = Path(directory)
        self.row_group_rows = int(row_group_rows)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seed_column = seed_column
        self.compression = compression
        self.rows: dict[str, int] = {}
        self._writers: dict[str, Any] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self.closed = False

    def path(self, table: str) -> Path:
        return self.directory / f"{table}.parquet"

    def _schema(self, table: str, schema: dict[str, str]) -> pa.Schema:
        s = self._schemas.get(table)
        if s is None:
            s = self._schemas[table] = arrow_schema(schema, self.seed_column)
        return s

    def _writer(self, table: str, schema: dict[str, str]):
        w = self._writers.get(table)
        if w is None:
            import pyarrow.parquet as pq

            if self.closed:
                raise RuntimeError("ParquetSink is closed")
            w = self._writers[table] = pq.ParquetWriter(
                self.path(table), self._schema(table, schema), compression=self.compression)
            self.rows.setdefault(table, 0)
        return w

    def table(self, table: str, schema: dict[str, str],
              seed: Optional[int] = None) -> "TableWriter":
        """The ``sink`` for a :class:`Table` named ``table`` (of the run ``seed``)."""
        if self.seed_column and seed is None:
            raise ValueError("this sink writes a seed column: give the run's seed")
        self._writer(table, schema)  # the file exists from the start, with its columns
        return TableWriter(self, table, schema, seed)

    def close(self) -> dict[str, int]:
        """Finish every file; returns the rows written per table."""
        with _no_interrupt():
            for w in self._writers.values():
                w.close()
            self.closed = True
        return dict(self.rows)

    def __enter__(self) -> "ParquetSink":
        return self

    def __exit__(self, *exc) -> None:
        if not self.closed:
            self.close()


class TableWriter:
    """Collects converted chunks of one table and writes them as one parquet row group per
    ``sink.row_group_rows`` rows; ``flush()`` writes what it holds."""

    def __init__(self, sink: ParquetSink, table: str, schema: dict[str, str],
                 seed: Optional[int]) -> None:
        self.sink, self.table, self.schema, self.seed = sink, table, schema, seed
        self._pa_schema = sink._schema(table, schema)
        self._held: list[Chunk] = []
        self._rows = 0

    def __call__(self, chunk: Chunk) -> None:
        self._held.append(chunk)
        self._rows += chunk.n
        if self._rows >= self.sink.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        with _no_interrupt():
            batches = []
            for chunk in self._held:
                arrays = chunk.arrow()
                if self.sink.seed_column:
                    arrays.insert(0, pa.array(np.full(chunk.n, self.seed, np.int64)))
                batches.append(pa.RecordBatch.from_arrays(arrays, schema=self._pa_schema))
            # one dictionary per string column and row group
            data = pa.Table.from_batches(batches, schema=self._pa_schema).unify_dictionaries()
            self.sink._writers[self.table].write_table(data, row_group_size=max(self._rows, 1))
            self.sink.rows[self.table] += self._rows
            self._held, self._rows = [], 0


def read_table(path: Union[str, Path], columns: Optional[Sequence[str]] = None,
               seed: Optional[int] = None) -> pd.DataFrame:
    """Read a (streamed or not) table file; ``seed`` keeps one run of a multi-seed file."""
    filters = None if seed is None else [("seed", "=", seed)]
    return pd.read_parquet(path, columns=None if columns is None else list(columns),
                           filters=filters)
