"""utils.merge_csv: merging never drops a row it did not replace, keeps what it keeps as written, and
refuses a CSV that is not ours; a rewrite that agrees with the file to the last digits leaves it."""
import collections
import csv
import os
import tempfile

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minkgan import utils
from minkgan.utils import UserError, merge_csv

KEY = ["run", "step"]


def read_cells(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_a_csv_without_the_key_columns_is_refused_and_left_as_it_is(tmp_path):
    """Observed: evaluate.py --csv o.csv on a CSV of someone else's (name,score, five rows) kept only
    the last row: every row lacked the key, so all had the same empty key."""
    path = tmp_path / "o.csv"
    path.write_text("name,score\na,1\nb,2\nc,3\nd,4\ne,5\n")
    with pytest.raises(UserError, match=r"o\.csv .*no column run, step"):
        merge_csv(str(path), pd.DataFrame([{"run": "x", "step": 1, "fid": 2.5}]), KEY)
    assert path.read_text() == "name,score\na,1\nb,2\nc,3\nd,4\ne,5\n"


@pytest.mark.parametrize("content, words", [(b"\x89PNG\r\n\x1a\n\x00\xff", "binary"),
                                            (b'run,step\n1,2\n3,4,5,6\n"unclosed', "not a readable CSV")])
def test_a_binary_or_malformed_csv_is_refused_and_left_as_it_is(content, words, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        merge_csv(str(path), pd.DataFrame([{"run": "x", "step": 1}]), KEY)
    assert path.read_bytes() == content


def test_rows_without_a_key_value_are_kept_as_they_are(tmp_path):
    path = tmp_path / "ours.csv"
    path.write_text("run,step,note\n,,first\n,,second\na,1,old\n")
    merge_csv(str(path), pd.DataFrame([{"run": "a", "step": 1, "note": "new"}, {"run": None, "step": None,
                                                                                "note": "unkeyed"}]), KEY)
    assert read_cells(path) == [["run", "step", "note"], ["", "", "first"], ["", "", "second"], ["a", "1", "new"],
                                ["", "", "unkeyed"]]


def test_integer_columns_stay_integers(tmp_path):
    """Observed: seed 3 came back as 3.0 once a merged row had no seed."""
    path = tmp_path / "ours.csv"
    path.write_text("run,step,seed\na,1,3\n")
    merge_csv(str(path), pd.DataFrame([{"run": "b", "step": 2}]), KEY)
    assert read_cells(path) == [["run", "step", "seed"], ["a", "1", "3"], ["b", "2", ""]]
    merge_csv(str(path), pd.DataFrame([{"run": "c", "step": 5, "seed": 4}]), KEY)
    assert read_cells(path)[1:] == [["a", "1", "3"], ["b", "2", ""], ["c", "5", "4"]]


def test_old_rows_sharing_a_key_are_all_kept_until_a_new_row_replaces_them(tmp_path):
    path = tmp_path / "ours.csv"
    path.write_text("run,step,fid\na,1,10\na,1,11\nb,1,12\n")
    merge_csv(str(path), pd.DataFrame([{"run": "c", "step": 1, "fid": 13}]), KEY)
    assert [r[2] for r in read_cells(path)[1:]] == ["10", "11", "12", "13"]
    merge_csv(str(path), pd.DataFrame([{"run": "a", "step": 1, "fid": 9}]), KEY)
    assert read_cells(path)[1:] == [["a", "1", "9"], ["b", "1", "12"], ["c", "1", "13"]]


def test_a_replacing_row_that_agrees_to_the_last_digits_keeps_the_old_text(tmp_path):
    """A rerun on another CPU changes the last digits: the committed row stays byte for byte."""
    path = tmp_path / "ours.csv"
    path.write_text("run,step,cos\na,1,0.12345678901234\nb,1,0.5\n")
    merge_csv(str(path), pd.DataFrame([{"run": "a", "step": 1, "cos": 0.12345678901236},
                                       {"run": "b", "step": 1, "cos": 0.6}]), KEY)
    assert path.read_text() == "run,step,cos\na,1,0.12345678901234\nb,1,0.6\n"


def test_a_csv_rewrite_that_agrees_leaves_the_file_and_one_that_differs_replaces_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,0.30000000000000004\n")
    assert not utils.write_csv_unless_agrees(pd.DataFrame({"x": [1], "y": [0.3]}), str(path))
    assert path.read_text() == "x,y\n1,0.30000000000000004\n"
    assert utils.write_csv_unless_agrees(pd.DataFrame({"x": [1], "y": [0.31]}), str(path))
    assert path.read_text() == "x,y\n1,0.31\n"


# ----------------------------------------------------------------------------- the property

# Cells as a CSV of ours holds them; none that pandas reads as NaN or a bool, whose keys would not
# compare as their text does.
WORDS = ["a", "b", "gan", "x y", "p,q", 'say "hi"', "007", "3.0", "1e-08", "-2", "0.1"]
CELLS = st.one_of(st.just(""), st.integers(-3, 3).map(str), st.sampled_from(WORDS))
VALUES = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.1, 3.0, 1e-08, -2.5]),
                   st.sampled_from(["a", "b", "gan", "x y", "p,q", "007"]))


@st.composite
def old_tables(draw):
    """(columns, rows of cells) of a CSV of ours: the key columns among others, in any order."""
    columns = draw(st.permutations(KEY + draw(st.lists(st.sampled_from(["c", "d", "e"]), unique=True))))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(columns), max_size=len(columns)), max_size=8))
    return list(columns), rows


@st.composite
def new_tables(draw):
    columns = KEY + draw(st.lists(st.sampled_from(["c", "d", "f"]), unique=True))
    rows = draw(st.lists(st.fixed_dictionaries({c: VALUES for c in columns}), max_size=6))
    return pd.DataFrame(rows, columns=columns)


def identity(cell):
    """A key cell as the merge compares it, from its text: numbers by value, empty for none."""
    if cell is None or cell == "" or (isinstance(cell, float) and cell != cell):
        return ""
    try:
        return f"{float(cell):.12g}"
    except ValueError:
        return str(cell)


@settings(max_examples=150, deadline=None)
@given(old=old_tables(), new=new_tables(), good_column=st.sampled_from([None, "c"]), sort=st.booleans())
def test_merging_keeps_every_row_whose_key_the_new_rows_do_not_hold_byte_for_byte(old, new, good_column, sort):
    columns, rows = old
    good = (lambda row: True) if good_column is None else (lambda row: str(row.get(good_column)) == "a")
    arrange = (lambda t: t.sort_values("run", kind="stable", key=lambda s: s.astype(str))) if sort else (lambda t: t)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ours.csv")
        with open(path, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([columns, *rows])
        merge_csv(path, new, KEY, good, arrange)
        header, *out = read_cells(path)
    held = {key for key in (tuple(identity(v) for v in r) for r in new[KEY].itertuples(index=False)) if any(key)}
    kept = [dict(zip(columns, r)) for r in rows if tuple(identity(dict(zip(columns, r))[k]) for k in KEY) not in held]
    expected = collections.Counter(tuple(row.get(c, "") for c in header) for row in kept)
    found = collections.Counter(tuple(r) for r in out)
    assert not expected - found, (out, expected - found)
