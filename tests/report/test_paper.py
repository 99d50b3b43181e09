"""minkgan/paper.py: the paper's FIDs as printed (Table 2; Table 3, p = 1..8), read from results/paper.csv."""
import pytest

from minkgan import paper

TABLE3 = [128.4, 123.6, 105.8, 99.6, 108.5, 114.8, 137.4, 149.6]  # typed from the paper, not from the CSV


def test_table2_as_printed():
    assert (paper.fid("gan"), paper.fid("wgan"), paper.fid("minkowski", 4.0)) == (197.8, 210.3, 99.6)


@pytest.mark.parametrize("p, fid", zip(range(1, 9), TABLE3))
def test_table3_as_printed(p, fid):
    assert paper.fid("minkowski", float(p)) == fid


def test_a_run_the_paper_does_not_have_is_none():
    assert paper.fid("hinge") is None and paper.fid("minkowski", 2.5) is None
    assert paper.fid("gan", 4.0) == 197.8  # p means nothing for a loss other than Minkowski's


def test_the_table_has_both_tables():
    t = paper.table()
    assert sorted(t["table"].unique()) == [2, 3] and len(t) == 3 + 8
