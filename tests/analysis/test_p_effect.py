"""analysis/p_effect.py: the ANOVA against scipy, the permutation test and eta^2 on cases with known answers."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from minkgan import p_effect
from minkgan.utils import run_main


def test_f_and_its_p_value_equal_scipys_one_way_anova():
    rng = np.random.default_rng(0)
    groups = [rng.normal(mu, 1.0, size=n) for mu, n in [(0, 3), (0.5, 2), (2, 4)]]
    values, labels = np.concatenate(groups), np.repeat([1, 2, 3], [3, 2, 4])
    result = p_effect.p_test(values, labels, permutations=200)
    expected = stats.f_oneway(*groups)
    assert result["F"] == pytest.approx(expected.statistic) and result["p_anova"] == pytest.approx(expected.pvalue)
    grand = values.mean()
    between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    assert result["eta2"] == pytest.approx(between / ((values - grand) ** 2).sum())
    assert (result["df_between"], result["df_within"]) == (2, 6)


def test_the_permutation_p_value_finds_separated_groups_and_not_shuffled_ones():
    values = np.array([1.0, 1.1, 5.0, 5.1, 9.0, 9.1])
    separated = p_effect.p_test(values, [1, 1, 2, 2, 3, 3], permutations=2000)
    # 90 labellings, 6 of them (the groups' names swapped) as extreme as the observed one: p = 1/15
    assert separated["p_permutation"] == pytest.approx(1 / 15, abs=0.015) and separated["eta2"] > 0.99
    mixed = p_effect.p_test(values, [1, 2, 3, 3, 2, 1], permutations=2000)  # every group mean 5.05
    assert mixed["p_permutation"] == 1 and mixed["eta2"] == pytest.approx(0, abs=1e-12) and mixed["omega2"] < 0


def test_one_seed_per_p_cannot_be_tested(capsys):
    with pytest.raises(SystemExit) as code:
        run_main(lambda: p_effect.p_test([1.0, 2.0, 3.0], [1, 2, 3]))
    assert code.value.code == 2 and "two seeds" in capsys.readouterr().err


def fake_run(root, p, seed, fid, status="completed", loss="minkowski", clip_params="all"):
    run = os.path.join(root, "folder", f"{loss}-p{p}-{clip_params}-seed{seed}")
    os.makedirs(run)
    json.dump({"loss": loss, "p": p, "seed": seed, "dataset": "folder", "hardware": "cpu", "clip": 0.01,
               "clip_params": clip_params}, open(f"{run}/config.json", "w"))
    json.dump({"status": status, "final_fid": fid, "epoch": 2.0, "step": 1562}, open(f"{run}/summary.json", "w"))


def test_each_reading_of_the_clipping_is_tested_alone(tmp_path):
    runs = str(tmp_path / "runs")
    for p, fids in {1: [300, 310], 4: [150, 160]}.items():
        for seed, fid in enumerate(fids):
            fake_run(runs, p, seed, fid)
            fake_run(runs, p, seed, fid + 1000, clip_params="weights")
    assert sorted(p_effect.minkowski_runs(runs, "final_fid")["final_fid"]) == [150, 160, 300, 310]
    weights = p_effect.minkowski_runs(runs, "final_fid", clip_params="weights")
    assert sorted(weights["final_fid"]) == [1150, 1160, 1300, 1310]


def test_main_reads_completed_minkowski_runs_and_draws_the_figure(tmp_path):
    runs = str(tmp_path / "runs")
    for p, fids in {1: [300, 310], 4: [150, 160], 8: [200, 190]}.items():
        for seed, fid in enumerate(fids):
            fake_run(runs, p, seed, fid)
    fake_run(runs, 2, 0, 999, status="diverged")
    fake_run(runs, 4, 9, 999, loss="gan")
    csv, figure = str(tmp_path / "p.csv"), str(tmp_path / "p.png")
    assert p_effect.main([runs, "--csv", csv, "--figure", figure, "--permutations", "500"]) == 0
    row = pd.read_csv(csv).iloc[0]
    assert (row["runs"], row["values_of_p"], row["seeds_min"]) == (6, 3, 2)
    assert row["eta2"] > 0.99 and os.path.getsize(figure) > 0


def test_p_tests_only_the_runs_of_those_p_and_only_prints(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    for p, fids in {1: [300, 310], 4: [150, 160], 8: [200, 190]}.items():
        for seed, fid in enumerate(fids):
            fake_run(runs, p, seed, fid)
    assert p_effect.main([runs, "--p", "1", "8", "--permutations", "50"]) == 0
    out = capsys.readouterr().out
    f = stats.f_oneway([300, 310], [200, 190]).statistic
    assert "values_of_p 2, runs 4," in out and f"F {f:.4g}," in out and "155.00" not in out  # p = 4 is left out
    with pytest.raises(p_effect.UserError, match="--p tests a subset"):
        p_effect.main([runs, "--p", "1", "8", "--csv", str(tmp_path / "p.csv")])
    with pytest.raises(p_effect.UserError, match="two values of p"):
        p_effect.main([runs, "--p", "1", "--permutations", "50"])
    with pytest.raises(p_effect.UserError, match="and p in 2 3 "):
        p_effect.main([runs, "--p", "2", "3"])


def test_a_runs_csv_gives_the_same_test_as_the_folders_it_was_collected_from(tmp_path):
    """The committed results/runs.csv outlives the run directories: the test reads it alike, leaves
    out runs with another Adam eps (their own experiment, testable with --adam-eps), and refuses to
    mix budgets."""
    from minkgan import collect

    runs = str(tmp_path / "runs")
    for p, fids in {1: [300, 310], 4: [150, 160]}.items():
        for seed, fid in enumerate(fids):
            fake_run(runs, p, seed, fid)
    from_folder = p_effect.minkowski_runs(runs, "final_fid")
    csv = tmp_path / "runs.csv"
    collect.collect_rows(runs).assign(adam_eps=None).to_csv(csv, index=False)
    from_csv = p_effect.minkowski_runs(str(csv), "final_fid")
    assert from_csv.reset_index(drop=True).equals(from_folder.reset_index(drop=True))
    table = pd.read_csv(csv)
    other_eps = table.assign(adam_eps=1e-12, final_fid=table["final_fid"] - 100)
    pd.concat([table, other_eps]).to_csv(csv, index=False)
    assert p_effect.minkowski_runs(str(csv), "final_fid")["final_fid"].tolist() == [300, 310, 150, 160]
    assert p_effect.minkowski_runs(str(csv), "final_fid", 1e-12)["final_fid"].tolist() == [200, 210, 50, 60]
    pd.concat([table, table.assign(steps=781, final_fid=table["final_fid"] + 1000)]).to_csv(csv, index=False)
    with pytest.raises(p_effect.UserError, match="2 budgets.*--steps"):
        p_effect.minkowski_runs(str(csv), "final_fid")
    assert p_effect.minkowski_runs(str(csv), "final_fid", steps=1562)["final_fid"].tolist() == [300, 310, 150, 160]
    assert p_effect.minkowski_runs(str(csv), "final_fid", steps=781)["final_fid"].tolist() == [1300, 1310, 1150, 1160]
    with pytest.raises(p_effect.UserError, match="and 0 steps"):  # a budget of 0 steps is no budget, not "any"
        p_effect.minkowski_runs(str(csv), "final_fid", steps=0)


def test_the_csv_keeps_a_row_per_budget_and_never_the_test_of_fewer_runs(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    for p, fids in {1: [300, 310, 305], 4: [150, 160]}.items():
        for seed, fid in enumerate(fids):
            fake_run(runs, p, seed, fid)
    csv = str(tmp_path / "runs.csv")
    from minkgan import collect
    table = collect.collect_rows(runs)
    pd.concat([table, table.assign(steps=781, final_fid=table["final_fid"] * 2)]).to_csv(csv, index=False)
    out = str(tmp_path / "p_effect.csv")
    for steps in (781, 1562):
        assert p_effect.main([csv, "--steps", str(steps), "--csv", out, "--permutations", "50"]) == 0
    rows = pd.read_csv(out)
    assert rows["steps"].tolist() == [781, 1562] and rows["runs"].tolist() == [5, 5]
    assert rows["F"].iloc[0] == pytest.approx(rows["F"].iloc[1])  # doubling every FID leaves F as it is
    apart = table.assign(steps=781, final_fid=table["final_fid"] + 100 * (table["p"] == 1))
    pd.concat([table.drop(index=2), apart]).to_csv(csv, index=False)  # 1562: p = 1's third seed gone
    assert p_effect.main([csv, "--steps", "1562", "--csv", out, "--permutations", "50"]) == 0
    assert pd.read_csv(out)["runs"].tolist() == [5, 5] and "kept the row of 5 runs" in capsys.readouterr().out
    assert p_effect.main([csv, "--steps", "781", "--csv", out, "--permutations", "50"]) == 0  # as many runs: replaced
    assert pd.read_csv(out)["F"].iloc[0] > 2 * rows["F"].iloc[0]


def test_the_committed_p_effect_csv_is_not_stale():
    """results/p_effect.csv once held 16 of the 22 two-epoch runs: each committed row must be the test on
    every run of results/runs.csv now (report.py --recompute --results results regenerates it)."""
    from minkgan import paths
    committed = pd.read_csv(os.path.join(paths.RESULTS, "p_effect.csv"))
    for row in committed[(committed["metric"] == "final_fid") & (committed["clip_params"] == "all")].to_dict("records"):
        runs = p_effect.minkowski_runs(os.path.join(paths.RESULTS, "runs.csv"), "final_fid", steps=int(row["steps"]))
        now = p_effect.p_test(runs["final_fid"], runs["p"], permutations=10)
        assert (len(runs), round(now["F"], 6)) == (row["runs"], round(row["F"], 6)), f"stale at {row['steps']} steps"
