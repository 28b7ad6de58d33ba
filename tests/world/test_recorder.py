"""The columnar recorder: same frames as the per-cell recorder it replaced, chunked
conversion, the ``set`` invariant, interrupts, streaming to parquet."""

from __future__ import annotations

import os
import signal
from array import array

import numpy as np
import pandas as pd
import pytest

from fedsim.federation.types import NodeId
from fedsim.world import recorder as recorder_mod
from fedsim.world.recorder import Chunk, ParquetSink, Table, read_table

SCHEMA = {"i": "i", "s": "s", "f": "f", "b": "b", "t": "s", "g": "f"}


class CellTable:
    """The previous implementation (one ``array`` per column, appended cell by cell): the
    reference the new one must match exactly."""

    def __init__(self, schema):
        self.schema = dict(schema)
        self._cols, self._cats = {}, {}
        for name, kind in schema.items():
            self._cols[name] = array({"f": "d", "i": "q", "b": "b", "s": "i"}[kind])
            if kind == "s":
                self._cats[name] = {}
        self._order = list(schema)

    def append(self, *values):
        for name, v in zip(self._order, values):
            cat = self._cats.get(name)
            if cat is not None:
                code = -1 if v is None else cat.setdefault(v, len(cat))
                self._cols[name].append(code)
            else:
                self._cols[name].append(float("nan") if v is None else v)

    def __len__(self):
        return len(self._cols[self._order[0]])

    def set(self, row, name, value):
        self._cols[name][row] = value

    def frame(self):
        data = {}
        for name in self._order:
            kind, buf = self.schema[name], self._cols[name]
            if kind == "s":
                codes = np.frombuffer(buf, dtype=np.int32).copy() if len(buf) else np.empty(0, np.int32)
                data[name] = pd.Categorical.from_codes(codes, categories=list(self._cats[name]))
            elif kind == "f":
                data[name] = np.frombuffer(buf, dtype=np.float64).copy() if len(buf) else np.empty(0)
            elif kind == "i":
                data[name] = np.frombuffer(buf, dtype=np.int64).copy() if len(buf) else np.empty(0, np.int64)
            else:
                data[name] = (np.frombuffer(buf, dtype=np.int8) != 0) if len(buf) else np.empty(0, bool)
        return pd.DataFrame(data, columns=self._order)


def random_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", NodeId("gpu-1"), "gpu-1", "δ-unicode", ""]
    rows = []
    for k in range(n):
        s = None if rng.random() < 0.2 else words[int(rng.integers(len(words)))]
        f = None if rng.random() < 0.3 else float(rng.lognormal())
        t = f"id-{k}" if rng.random() < 0.9 else None
        g = int(rng.integers(5)) if rng.random() < 0.3 else float("nan")  # ints and NaN too
        rows.append((int(rng.integers(-2**40, 2**40)), s, f, bool(rng.random() < 0.5), t, g))
    return rows


def assert_same(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a, b)  # dtypes, categories and their order included
    for c in a.columns:
        if isinstance(a[c].dtype, pd.CategoricalDtype):
            assert list(a[c].cat.categories) == list(b[c].cat.categories)


@pytest.mark.parametrize("chunk_rows", [1, 3, 64, 4096])
@pytest.mark.parametrize("n", [0, 1, 5, 300])
def test_frame_identical_to_the_per_cell_recorder(chunk_rows, n):
    new, old = Table(SCHEMA, chunk_rows=chunk_rows), CellTable(SCHEMA)
    for row in random_rows(n, seed=n):
        new.append(*row)
        old.append(*row)
    assert len(new) == n
    assert_same(new.frame(), old.frame())
    new.flush()
    assert_same(new.frame(), old.frame())
    assert len(new) == n


def test_numpy_scalars_bools_and_other_objects_as_before():
    class Weird:  # not a str: kept as the category, as the per-cell recorder did
        def __str__(self):
            return "weird"

    t = Table({"i": "i", "f": "f", "b": "b", "s": "s"}, chunk_rows=2)
    t.append(np.int64(3), np.float32(0.5), 1, Weird())
    t.append(True, 2, False, "x")
    t.append(4, None, True, None)
    f = t.frame()
    assert f["i"].tolist() == [3, 1, 4] and f["i"].dtype == np.int64
    assert f["f"].tolist()[:2] == [0.5, 2.0] and np.isnan(f["f"].iloc[2])
    assert f["b"].tolist() == [True, False, True]
    assert f["s"].iloc[1] == "x" and f["s"].isna().tolist() == [False, False, True]
    assert str(f["s"].iloc[0]) == "weird"


def test_missing_int_raises():
    t = Table({"i": "i"}, chunk_rows=1)
    t.append(None)
    with pytest.raises(TypeError):
        t.frame()


def test_set_works_on_the_row_just_appended_across_chunk_boundaries():
    """The gateway sets an attempt's backoff on the row it has just appended, before any
    other append: a full chunk is converted at the *next* append, so that row is always
    still in memory, also in streamed mode."""
    for streamed in (False, True):
        written = []
        t = Table({"a": "i", "backoff": "f", "s": "s"}, chunk_rows=3,
                  sink=written.append if streamed else None)
        ref = CellTable({"a": "i", "backoff": "f", "s": "s"})
        for k in range(10):
            for tab in (t, ref):
                tab.append(k, 0.0, "x")
                tab.set(len(tab) - 1, "backoff", k / 10)
        if streamed:
            t.flush()
            got = pd.concat([recorder_mod.chunk_frame(c) for c in written], ignore_index=True)
            assert got["backoff"].tolist() == ref.frame()["backoff"].tolist()
            with pytest.raises(RuntimeError, match="already written"):
                t.set(0, "backoff", 1.0)
        else:
            assert_same(t.frame(), ref.frame())
            t.set(0, "backoff", 9.0)  # kept mode: converted numeric cells too
            assert t.frame()["backoff"].iloc[0] == 9.0
            with pytest.raises(TypeError):
                t.set(0, "s", "y")
        with pytest.raises(IndexError):
            t.set(99, "backoff", 1.0)


def test_an_interrupt_during_conversion_loses_no_row(monkeypatch):
    """Ctrl-C inside a chunk conversion: the chunk is either converted or still pending,
    never half of each (frame() keeps exactly the complete rows)."""
    t = Table({"a": "i", "b": "s", "c": "f"}, chunk_rows=2)
    t.append(1, "x", 0.5)
    t.append(2, None, None)

    def interrupted(rows, schema):
        raise KeyboardInterrupt

    monkeypatch.setattr(Chunk, "from_rows", staticmethod(interrupted))
    with pytest.raises(KeyboardInterrupt):
        t.append(3, "y", 1.5)  # the first two rows are converted here
    monkeypatch.undo()
    f = t.frame()
    assert len(f) == len(t) == 3
    assert list(f["a"]) == [1, 2, 3]
    assert f["b"].tolist()[::2] == ["x", "y"] and f["b"].isna().tolist() == [False, True, False]


def test_sigint_during_a_flush_is_held_until_it_is_done():
    """A real SIGINT that lands inside a flush is raised after it: the chunk is complete
    and the row being appended is kept."""
    t = Table({"a": "i"}, chunk_rows=2)
    t.listen(lambda chunk: os.kill(os.getpid(), signal.SIGINT))
    t.append(1)
    t.append(2)
    with pytest.raises(KeyboardInterrupt):
        t.append(3)
    assert list(t.frame()["a"]) == [1, 2, 3]
    assert len(t._chunks) == 1 and len(t._rows) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_listeners_see_every_row_once():
    seen = []
    t = Table(SCHEMA, chunk_rows=7)
    t.listen(lambda c: seen.append((c.n, c.numeric("i").copy(), c.codes("s"))))
    rows = random_rows(50)
    for r in rows:
        t.append(*r)
    t.flush()
    assert sum(n for n, _, _ in seen) == 50
    assert np.concatenate([i for _, i, _ in seen]).tolist() == [r[0] for r in rows]
    decoded = [None if c < 0 else values[c] for _, _, (codes, values) in seen for c in codes]
    assert decoded == [r[1] for r in rows]


def test_parquet_sink_writes_what_frame_gives(tmp_path):
    rows = random_rows(1000, seed=3)
    kept = Table(SCHEMA, chunk_rows=64)
    with ParquetSink(tmp_path) as sink:
        writer = sink.table("things", SCHEMA)
        streamed = Table(SCHEMA, chunk_rows=64, sink=writer)
        for r in rows:
            kept.append(*r)
            streamed.append(*r)
        streamed.flush()
        writer.flush()
    assert sink.rows["things"] == 1000
    back = read_table(tmp_path / "things.parquet")
    want = kept.frame()
    for c in want.columns:
        if isinstance(want[c].dtype, pd.CategoricalDtype):
            assert isinstance(back[c].dtype, pd.CategoricalDtype)
            want[c] = want[c].astype(object)
            back[c] = back[c].astype(object)
    pd.testing.assert_frame_equal(back, want)


def test_parquet_sink_seed_column_and_empty_tables(tmp_path):
    with ParquetSink(tmp_path, seed_column=True) as sink:
        for seed in (5, 6):
            w = sink.table("t", {"a": "i", "s": "s"}, seed)
            t = Table({"a": "i", "s": "s"}, chunk_rows=2, sink=w)
            for k in range(3):
                t.append(k, None)
            t.flush()
            w.flush()
        sink.table("empty", {"a": "f", "s": "s"}, 5)
    back = read_table(tmp_path / "t.parquet")
    assert back["seed"].tolist() == [5, 5, 5, 6, 6, 6]
    assert read_table(tmp_path / "t.parquet", seed=6)["a"].tolist() == [0, 1, 2]
    empty = read_table(tmp_path / "empty.parquet")
    assert list(empty.columns) == ["seed", "a", "s"] and len(empty) == 0


# --------------------------------------------------------------- raw values, derived per chunk


@pytest.mark.parametrize("chunk_rows", [1, 2, 4096])
def test_time_kind_is_integer_ns_as_seconds_exactly(chunk_rows):
    """``"t"``: integer nanoseconds in, float64 seconds out, each bit for bit ``t / 1e9``
    (None: NaN), however large; other columns as before."""
    ns = [0, 1, 999_999_999, 1_000_000_001, -5, 123_456_789_012_345, 2**53 + 1, 2**62 + 7,
          None, 7]
    t = Table({"t": "t", "s": "s"}, chunk_rows=chunk_rows)
    for k, v in enumerate(ns):
        t.append(v, f"x{k % 3}")
    got = t.frame()["t"].to_numpy()
    want = np.array([np.nan if v is None else v / 1e9 for v in ns])
    assert got.dtype == np.float64
    assert got.tobytes() == want.tobytes()
    assert Table({"t": "t"}).frame()["t"].dtype == np.float64  # empty


def test_objects_derives_columns_per_chunk_and_its_cells_cannot_be_set():
    def objects(rows):  # raw (start, end) -> (duration, label)
        obj = recorder_mod.to_object_array(rows)
        return np.stack([obj[:, 1] - obj[:, 0], np.where(obj[:, 1] > 10, "late", "early")],
                        axis=1)

    seen = []
    t = Table({"duration": "t", "label": "s"}, chunk_rows=2, objects=objects)
    t.listen(lambda c: seen.append(c.numeric("duration").tolist()))
    for start, end in [(0, 5), (3, 12), (4, 20)]:
        t.add((start, end))
    f = t.frame()
    assert f["duration"].tolist() == [5e-9, 9e-9, 16e-9]
    assert f["label"].tolist() == ["early", "late", "late"]
    assert seen == [[5e-9, 9e-9]]
    with pytest.raises(TypeError, match="cannot be set"):
        t.set(2, "duration", 1.0)


def test_add_returns_the_row_index_across_chunk_boundaries():
    t = Table({"a": "i"}, chunk_rows=2)
    assert [t.add((k,)) for k in range(5)] == [0, 1, 2, 3, 4]
    assert len(t) == 5


@pytest.mark.parametrize("values", [
    ["a", "b", "c", "a", "b", "c", None, "d"],   # distinct in each chunk, repeated across
    [f"id-{k}" for k in range(8)],               # distinct over the table (ids)
    [None] * 8,                                  # no value at all
    ["b", None, "b", "a", "a", "c", "b", None],  # repeated within chunks
])
@pytest.mark.parametrize("chunk_rows", [1, 3, 8])
def test_categories_in_order_of_first_appearance_whatever_the_repetitions(values, chunk_rows):
    new, old = Table({"s": "s"}, chunk_rows=chunk_rows), CellTable({"s": "s"})
    for v in values:
        new.append(v)
        old.append(v)
    a, b = new.frame(), old.frame()
    assert_same(a, b)
    assert a["s"].cat.categories.dtype == b["s"].cat.categories.dtype
    empty_new, empty_old = Table({"s": "s"}).frame(), CellTable({"s": "s"}).frame()
    assert_same(empty_new, empty_old)
    assert empty_new["s"].cat.categories.dtype == empty_old["s"].cat.categories.dtype


def test_recorded_requests_derive_latency_privacy_and_blank_failed_serving_values():
    """Recorder.request appends raw values; the requests columns computed from them per
    chunk are those the per-row recorder wrote: latency (end - arrival) / 1e9 (NaN in
    flight), the privacy level's lower-case name, and no serving node, region or timings
    for a request that did not succeed (even if an attempt set them)."""
    from fedsim.federation import Capability, InferenceRequest
    from fedsim.federation.types import PrivacyLevel, QoSRequirements
    from fedsim.world.request import SimRequest
    from fedsim.world.simulation import Recorder

    def req(i, privacy):
        r = SimRequest(i, i, 1_000_000_007 * i, "w", "gw", InferenceRequest(
            Capability.GENERATE, b"", QoSRequirements(privacy=privacy, cost_tolerance=7),
            f"w-{i}", "t", None), "r", 10, 20)
        r.attempts, r.node, r.region = 1, "n1", "r"
        r.queue_wait, r.service, r.network, r.ttft = 3, 5_000_000_001, 7, 11
        return r

    rec = Recorder(chunk_rows=2)
    rec.request(req(0, PrivacyLevel.PUBLIC), "success", None, 4_000_000_000)
    rec.request(req(1, PrivacyLevel.RESTRICTED), "failed", "NodeUnreachable", 3_000_000_000)
    rec.request(req(2, PrivacyLevel.PUBLIC), "in_flight", None, None)
    f = rec.requests.frame()
    assert f["latency"].tolist()[:2] == [4.0, (3_000_000_000 - 1_000_000_007) / 1e9]
    assert np.isnan(f["latency"].iloc[2])
    assert f["arrival"].tolist() == [0.0, 1.000000007, 2.000000014]
    assert f["privacy"].tolist() == ["public", "restricted", "public"]
    assert list(f["privacy"].cat.categories) == ["public", "restricted"]
    assert f["capability"].tolist() == ["generate"] * 3
    assert f["node"].iloc[0] == "n1" and f["node"].isna().tolist() == [False, True, True]
    assert f["service"].tolist()[0] == 5.000000001 and f["service"].isna().tolist() == [
        False, True, True]
    assert f["ttft"].tolist()[0] == 11e-9 and f["ttft"].isna().tolist() == [False, True, True]
    assert f["error"].iloc[1] == "NodeUnreachable" and f["error"].isna().sum() == 2
    assert f["cost_tolerance"].tolist() == [7] * 3
    with pytest.raises(TypeError):
        rec.requests.set(2, "latency", 1.0)


# ------------------------------------------- fast paths: the same as the generic conversion


def generic_chunk(obj, schema):
    """The conversion without fast paths (as before them): what every chunk must match."""
    cols = {}
    for j, (name, kind) in enumerate(schema.items()):
        c = obj[:, j]
        if kind == "s":
            codes, values = pd.factorize(c)
            cols[name] = (codes.astype(np.int32), values)
        elif kind == "t":
            cols[name] = c.astype(np.float64) / 1e9
        else:
            cols[name] = c.astype({"f": np.float64, "i": np.int64, "b": bool}[kind])
    return cols


def generic_categorical(chunks):
    """The table-level join without fast paths: values checked distinct by pandas, else
    factorised, codes remapped; categories validated by ``from_codes``."""
    values = np.concatenate([v for _, v in chunks]) if chunks else np.empty(0, object)
    offset, parts = 0, []
    for c, v in chunks:
        parts.append(np.where(c >= 0, c + offset, -1))
        offset += len(v)
    codes = np.concatenate(parts) if parts else np.empty(0, np.int32)
    categories = pd.Index(values)
    if not categories.is_unique:
        table_codes, values = pd.factorize(values)
        codes = np.append(table_codes, -1)[codes]
        categories = pd.Index(values)
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=categories)


def assert_same_chunk(got: dict, want: dict):
    assert got.keys() == want.keys()
    for name, w in want.items():
        g = got[name]
        if isinstance(w, tuple):
            (gc, gv), (wc, wv) = g, w
            assert gc.dtype == wc.dtype == np.int32 and gc.tolist() == wc.tolist(), name
            assert isinstance(gv, np.ndarray) and gv.dtype == wv.dtype == object, name
            assert gv.tolist() == wv.tolist(), name
            assert [type(v) for v in gv] == [type(v) for v in wv], name
            assert all(a is b for a, b in zip(gv, wv)), name  # the first of equal values
        else:
            assert g.dtype == w.dtype and g.tobytes() == w.tobytes(), name  # NaN bits too


def assert_same_categorical(got, want):
    assert got.dtype == want.dtype
    assert got.categories.dtype == want.categories.dtype
    assert list(got.categories) == list(want.categories)
    assert got.codes.dtype == want.codes.dtype and got.codes.tolist() == want.codes.tolist()


def fresh(text):
    """An equal string that is not the same object."""
    return "".join(list(text))


SAME_BUT_NOT = [fresh("gpu-1") for _ in range(4)]
assert SAME_BUT_NOT[0] is not SAME_BUT_NOT[1]


@pytest.mark.parametrize("column", [
    ["a"] * 5,                                         # one value (the same object)
    SAME_BUT_NOT,                                      # equal values, not the same object
    [NodeId("gpu-1"), "gpu-1", fresh("gpu-1")],        # equal values of two types: the first
    ["gpu-1", NodeId("gpu-1"), "gpu-1"],
    [None] * 4,                                        # no value at all
    ["a"],
    [None],
    ["a", "b", "a"],                                   # same ends, not the same throughout
    [None, "a", None],
    ["a", None, "a"],
    ["a", float("nan"), "a"],                          # NaN: missing, as pandas has it
    [None, float("nan"), None],
    ["a", pd.NA, "a"],                                 # a value that cannot say (== is NA)
    [None, pd.NA, None],
    ["b", "a", "c", "a"],                              # varies
    [f"id-{k}" for k in range(6)],
    [3, 3, 3],                                         # not strings: as pandas has them
    [Ellipsis, Ellipsis],
])
def test_string_fast_path_is_pandas_factorize(column):
    obj = np.empty((len(column), 1), dtype=object)
    obj[:, 0] = column
    got = Chunk.from_objects(obj, {"s": "s"}).columns
    assert_same_chunk(got, generic_chunk(obj, {"s": "s"}))


def test_numeric_fast_paths_are_the_casts():
    """All-None float and time columns (NaN bits as the cast gives them), int columns with
    one value (equal values of other types cast as they were), mixed and empty columns."""
    schema = {"f": "f", "t": "t", "i": "i", "b": "b", "s": "s"}
    cases = [
        [(None, None, 5, True, "x")] * 3,
        [(None, None, 1, False, None), (None, None, True, True, None), (None, None, 1.0, 1, None),
         (None, None, np.int64(1), 0, None)],
        [(0.0, 7, -3, True, "x"), (-0.0, None, -3, False, "y"), (None, 7, -3.0, True, "x")],
        [(None, 2**62 + 7, 2**62 + 7, True, "x"), (1.5, 2**62 + 7, 2**62 + 7, True, "x")],
        [(None, 0, 4, True, "x"), (0.5, 0, 5, True, "x"), (None, 0, 4, True, "x")],
        [(2.5, 3, 9, True, "x")],
    ]
    for rows in cases:
        obj = recorder_mod.to_object_array(rows)
        assert_same_chunk(Chunk.from_objects(obj, schema).columns, generic_chunk(obj, schema))
    empty = np.empty((0, len(schema)), dtype=object)
    assert_same_chunk(Chunk.from_objects(empty, schema).columns, generic_chunk(empty, schema))
    for rows in ([(None,)] * 3, [(1,), (None,)], [(2**70,), (2**70,)]):
        obj = recorder_mod.to_object_array(rows)
        for convert in (lambda: Chunk.from_objects(obj, {"i": "i"}),
                        lambda: generic_chunk(obj, {"i": "i"})):
            with pytest.raises((TypeError, OverflowError)) as err:
                convert()
            assert err.type is (TypeError if rows[0][0] is None or rows[1][0] is None
                                else OverflowError)


CHUNKED_COLUMNS = [
    ["a"] * 4 + ["b", "a", "c", "b"],                  # one value in a chunk, not in the next
    ["b", "a", "c", "b"] + ["a"] * 4,
    [None] * 4 + ["a", None, "a", "a"],                # nothing, then something
    ["a"] * 4 + [None] * 4 + ["a"] * 4,
    ["a"] * 4 + ["b"] * 4 + [fresh("a")] * 4,          # a value seen again, equal not same
    [None] * 12,
    [f"id-{k}" for k in range(12)],                    # distinct over the table
    [f"id-{k % 6}" for k in range(12)],                # distinct per chunk, not over it
    ["x", "y", None, "x"] * 3,
    [NodeId("n")] * 4 + ["n"] * 4 + ["m"] * 4,
]


@pytest.mark.parametrize("values", CHUNKED_COLUMNS)
@pytest.mark.parametrize("chunk_rows", [1, 3, 4, 8, 64])
def test_chunked_string_columns_as_the_generic_path_and_the_per_cell_recorder(values, chunk_rows):
    new, old = Table({"s": "s"}, chunk_rows=chunk_rows), CellTable({"s": "s"})
    chunks = []
    new.listen(lambda c: chunks.append(c.columns["s"]))
    for v in values:
        new.append(v)
        old.append(v)
    new.flush()
    for got, rows in zip(chunks, [values[k:k + chunk_rows]
                                  for k in range(0, len(values), chunk_rows)]):
        obj = np.empty((len(rows), 1), dtype=object)
        obj[:, 0] = rows
        assert_same_chunk({"s": got}, generic_chunk(obj, {"s": "s"}))
    a, b = new.frame(), old.frame()
    assert_same(a, b)
    assert_same_categorical(a["s"].array, b["s"].array)
    kept = [p["s"] for p in new._chunks]
    assert_same_categorical(recorder_mod._categorical(kept), generic_categorical(kept))


@pytest.mark.parametrize("n_chunks", [0, 1, 2, 5])
def test_categorical_is_the_generic_join_whatever_the_chunks(n_chunks):
    rng = np.random.default_rng(n_chunks)
    pools = [["a"], [None], ["a", "b", None], [f"u{k}" for k in range(50)], ["b", "a"]]
    chunks = []
    for k in range(n_chunks):
        pool = pools[int(rng.integers(len(pools)))]
        column = np.empty(int(rng.integers(1, 40)), dtype=object)
        column[:] = [pool[int(rng.integers(len(pool)))] for _ in range(len(column))]
        chunks.append(recorder_mod._factorize(column))
    assert_same_categorical(recorder_mod._categorical(chunks), generic_categorical(chunks))


def generic_request_objects(rows):
    """``_request_objects`` without its fast paths (element-wise, as before them)."""
    from fedsim.world.simulation import _COL, _SERVED

    obj = recorder_mod.to_object_array(rows)
    arrival, end = obj[:, _COL["arrival"]], obj[:, _COL["latency"]]
    done = end != None  # noqa: E711
    obj[done, _COL["latency"]] = end[done] - arrival[done]
    codes, levels = pd.factorize(obj[:, _COL["privacy"]])
    obj[:, _COL["privacy"]] = np.array([p.name.lower() for p in levels], dtype=object)[codes]
    failed = np.flatnonzero(obj[:, _COL["status"]] != "success")
    obj[failed[:, None], _SERVED] = None
    return obj


@pytest.mark.parametrize("in_flight", [False, True])
@pytest.mark.parametrize("privacies", ["one", "two"])
@pytest.mark.parametrize("failed", [False, True])
def test_request_objects_fast_paths_are_the_element_wise_derivation(in_flight, privacies,
                                                                    failed):
    """Every request done or not, one privacy level or several, all succeeded or not: the
    derived columns (and so the requests chunk) are those of the element-wise code."""
    from fedsim.federation.types import PrivacyLevel
    from fedsim.world.simulation import REQUESTS, _request_objects

    levels = [PrivacyLevel.INTERNAL] if privacies == "one" else [PrivacyLevel.INTERNAL,
                                                                   PrivacyLevel.PUBLIC]
    rows = []
    for k in range(7):
        status = "failed" if failed and k % 3 == 1 else "success"
        end = None if in_flight and k == 5 else 10**9 * k + 12_345
        rows.append((k, f"r-{k}", "w", 1000 * k, "generate", "t", "r", levels[k % len(levels)],
                     50, "gw", status, None if status == "success" else "Timeout", end, None,
                     1, NodeId("n1"), "r", 0, 2 * k, 7, 256, 128))
    got, want = _request_objects(rows), generic_request_objects(rows)
    assert got.shape == want.shape and got.tolist() == want.tolist()
    assert [type(v) for v in got.ravel()] == [type(v) for v in want.ravel()]
    assert_same_chunk(Chunk.from_objects(got, REQUESTS).columns, generic_chunk(got, REQUESTS))
