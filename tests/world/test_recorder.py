"""Columnar recording keeps only complete rows (a Ctrl-C can land inside an append)."""

from fedsim.world.recorder import Table


def test_frame_drops_a_partially_appended_row():
    t = Table({"a": "i", "b": "s", "c": "f"})
    t.append(1, "x", 0.5)
    t.append(2, None, None)
    t._cols["a"].append(3)  # what an interrupt between two column appends leaves behind
    f = t.frame()
    assert list(f["a"]) == [1, 2]
    assert list(f["b"].astype(object)) == ["x", None] or f["b"].isna().tolist() == [False, True]
    assert len(f) == len(t) == 2
