"""analysis/contrasts.py: the Welch interval against scipy, its power against a simulation, Holm against
its definition, the pre-registered verdicts, and the contrasts read from a runs.csv."""
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from minkgan import contrasts
from minkgan import stats as mstats
from minkgan.utils import UserError, run_main


def test_welch_interval_and_p_value_equal_scipys():
    rng = np.random.default_rng(0)
    for n_a, n_b in [(2, 2), (5, 5), (5, 3), (12, 4)]:
        a, b = rng.normal(170, 15, n_a), rng.normal(180, 30, n_b)
        ours = contrasts.welch(a, b)
        ref = stats.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert (ours["ci_low"], ours["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
        assert ours["df"] == pytest.approx(ref.df, rel=1e-10)


def simulated_welch_power(gap, sd_a, sd_b, n_a, n_b, rng, sims=20000):
    """The rejection rate of scipy's Welch test on normal samples with a true difference: the reference
    the pre-registered noncentral-t power is checked against."""
    a = rng.normal(gap, sd_a, (sims, n_a))
    b = rng.normal(0.0, sd_b, (sims, n_b))
    return (stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05).mean()


def test_the_noncentral_welch_power_is_near_the_simulated_one_from_four_seeds_an_arm():
    """The noncentral t at the Welch degrees of freedom of the true SDs, as pre-registered: within 0.035
    of the simulation from 4 seeds an arm (it overstates a little: the sample SDs have fewer degrees of
    freedom), and at 2 seeds an arm it overstates, as the docs say."""
    rng = np.random.default_rng(1)
    for gap, sd_a, sd_b, n_a, n_b in [(28.8, 16.7, 16.7, 5, 5), (10.0, 5.0, 15.0, 6, 4), (28.8, 16.7, 16.7, 8, 8)]:
        power = mstats.welch_power_noncentral(gap, sd_a, sd_b, n_a, n_b)
        assert abs(simulated_welch_power(gap, sd_a, sd_b, n_a, n_b, rng) - power) < 0.035, (gap, n_a, n_b)
    assert mstats.welch_power_noncentral(28.8, 16.7, 16.7, 2, 2) > simulated_welch_power(28.8, 16.7, 16.7, 2, 2, rng) + 0.05


def test_the_noncentral_welch_power_is_alpha_without_an_effect():
    assert mstats.welch_power_noncentral(0.0, 16.7, 16.7, 5, 5) == pytest.approx(0.05, abs=1e-9)


def test_holm_is_the_step_down_adjustment():
    # sorted p = 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    np.testing.assert_allclose(contrasts.holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    np.testing.assert_allclose(contrasts.holm([0.5, 0.6]), [1.0, 1.0])


@pytest.mark.parametrize("low, high, gap, expected", [
    (-40, -5, -98.2, "supported"), (3, 30, -98.2, "contradicted"), (-20, 25, -98.2, "paper's gap excluded"),
    (-40, 10, -28.8, "inconclusive"), (-40, 10, float("nan"), "inconclusive"),
])
def test_verdicts_follow_the_preregistered_rule(low, high, gap, expected):
    assert contrasts.verdict(low, high, gap) == expected


def runs_csv(path, arms):
    rows = []
    for (loss, p, n_critic, clip_params, epochs), fids in arms.items():
        for seed, fid in enumerate(fids):
            rows.append(dict(run=f"folder/{loss}{p}-{clip_params}-seed{seed}", dataset="folder", loss=loss, p=p,
                             n_critic=n_critic, clip_params=clip_params, seed=seed, epochs=epochs, status="completed",
                             total_steps=round(781 * epochs / n_critic), final_fid=fid, device="cpu"))
    rows.append({**rows[0], "seed": 9, "status": "diverged", "final_fid": 999.0})  # never counted
    pd.DataFrame(rows).to_csv(path, index=False)


def test_contrasts_from_a_runs_csv_keep_readings_and_budgets_apart(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    runs_csv(path, {("gan", None, 1, "all", 2.0): [160, 170, 180], ("wgan", None, 5, "all", 2.0038): [200, 205, 210],
                    ("minkowski", 4.0, 1, "all", 2.0): [170, 175, 190], ("minkowski", 1.0, 1, "all", 2.0): [165, 168],
                    ("minkowski", 4.0, 1, "weights", 2.0): [300, 320], ("gan", None, 1, "weights", 2.0): [250, 260],
                    ("minkowski", 8.0, 1, "weights", 2.0): [400], ("gan", None, 1, "all", 1.0): [999, 999]})
    out = tmp_path / "contrasts.csv"
    assert contrasts.main([str(path), "--csv", str(out), "--figure", str(tmp_path / "c.png")]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("not tested")]
    said = [line.removeprefix("not tested, a Welch interval needs two runs an arm: ") for line in said]
    assert said == ["minkowski-p4 − wgan (H4, clip weights, 2 epochs): 2 and 0 runs",
                    "minkowski-p4 − minkowski-p1 (H4, clip weights, 2 epochs): 2 and 0 runs",
                    "minkowski-p4 − minkowski-p8 (H4, clip weights, 2 epochs): 2 and 1 runs",
                    "minkowski-p4 − wgan-equal-g (H9, clip all, 2 epochs): 3 and 0 runs"]
    rows = pd.read_csv(out).set_index(["reading", "b"])
    gan = rows.loc[("all", "gan")]
    assert (gan["n_a"], gan["n_b"], gan["mean_diff"]) == (3, 3, pytest.approx(178.333333 - 170, rel=1e-6))
    assert gan["paper_gap"] == pytest.approx(99.6 - 197.8) and gan["verdict"] == "paper's gap excluded"
    assert rows.loc[("all", "wgan"), "steps_b"] == 313 and rows.loc[("all", "wgan"), "n_b"] == 3
    assert rows.loc[("weights", "gan"), "mean_diff"] == pytest.approx(55.0)
    assert len(rows) == 4  # the weights reading has no WGAN or p = 1 runs: no row, not a mixed one
    family = rows.loc["all"]
    np.testing.assert_allclose(family["p_holm"], contrasts.holm(family["p_value"]))
    assert os.path.getsize(tmp_path / "c.png") > 0


def test_h9_compares_p4_with_wgan_trained_five_times_the_epochs_in_a_family_of_its_own(tmp_path, capsys):
    """At equal G steps: p = 4's 2 epochs (1562 G steps) against WGAN's 10 with 5 critic steps (1562 G steps);
    the seed-0 WGAN evaluated 2000 samples on the way and got its FID of 5000 afterwards (--final-fids)."""
    path = tmp_path / "runs.csv"
    runs_csv(path, {("gan", None, 1, "all", 2.0): [160, 170, 180], ("wgan", None, 5, "all", 2.0038): [200, 205, 210],
                    ("minkowski", 4.0, 1, "all", 2.0): [170, 175, 190], ("wgan", None, 5, "all", 10.0): [120, 130, 125]})
    runs = pd.read_csv(path).assign(n_fake=5000)
    runs.loc[(runs["epochs"] == 10.0) & (runs["seed"] == 0), ["n_fake", "final_fid"]] = 2000, 133.0
    runs.to_csv(path, index=False)
    horizon = tmp_path / "final.csv"
    pd.DataFrame([{"run": "folder/wganNone-all-seed0", "total_steps": 1562, "step": 1562, "n": n, "fid": fid}
                  for n, fid in ((2000, 133.0), (5000, 122.0))]
                 + [{"run": "folder/wganNone-all-seed0", "total_steps": 1562, "step": 781, "n": 5000, "fid": 150.0}]
                 ).to_csv(horizon, index=False)
    out = tmp_path / "contrasts.csv"
    with pytest.raises(UserError, match="mixes FIDs of 2000 and 5000 samples"):
        contrasts.main([str(path), "--csv", str(out)])
    assert not out.exists()
    assert contrasts.main([str(path), "--final-fids", str(horizon), "--csv", str(out)]) == 0
    horizon.rename(tmp_path / "horizon.csv")  # the horizon.csv beside runs.csv is the default
    assert contrasts.main([str(path), "--csv", str(tmp_path / "again.csv")]) == 0
    assert (tmp_path / "again.csv").read_text() == out.read_text()
    rows = pd.read_csv(out).set_index("b")
    h9 = rows.loc["wgan-equal-g"]
    assert (h9["family"], h9["reading"], h9["epochs"], h9["steps"], h9["steps_b"]) == ("H9", "all", 2.0, 1562, 1562)
    assert h9["mean_b"] == pytest.approx((122 + 130 + 125) / 3) and h9["paper_gap"] == pytest.approx(99.6 - 210.3)
    assert h9["p_holm"] == h9["p_value"]  # a family of one
    assert rows.loc["wgan", "family"] == "H1-H3" and rows.loc["wgan", "mean_b"] == pytest.approx(205.0)
    h1_h3 = rows[rows["family"] == "H1-H3"]
    np.testing.assert_allclose(h1_h3["p_holm"], contrasts.holm(h1_h3["p_value"]))  # H9 stays out of their family


def test_a_final_fids_file_that_is_not_horizons_is_one_line(tmp_path):
    path = tmp_path / "runs.csv"
    runs_csv(path, {("gan", None, 1, "all", 2.0): [160, 170], ("minkowski", 4.0, 1, "all", 2.0): [170, 175]})
    (tmp_path / "theirs.csv").write_text("name,score\na,1\n")
    (tmp_path / "words.csv").write_text("run,total_steps,step,n,fid\nx,1562,1562,5000,high\n")
    for name, words in (("none.csv", "is not a file"), ("theirs.csv", "has no column run"), ("words.csv", "not a number")):
        with pytest.raises(UserError, match=words):
            contrasts.main([str(path), "--final-fids", str(tmp_path / name)])
    (tmp_path / "header.csv").write_text("run,total_steps,step,n,fid\n")  # no long run: nothing to take, no error
    assert contrasts.main([str(path), "--final-fids", str(tmp_path / "header.csv")]) == 0


def test_a_file_that_is_not_a_runs_csv_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.csv"
    bad.write_text("name,score\na,1\n")
    with pytest.raises(SystemExit) as code:
        run_main(lambda: contrasts.main([str(bad)]))
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.count("\n") == 1 and "no column" in err


def test_a_run_listed_twice_is_refused_not_counted_as_two_seeds(tmp_path):
    """Observed: a duplicated row of runs.csv gave p = 4 − GAN with n = 5 and 10 and a narrower interval."""
    from minkgan import paths
    runs = pd.read_csv(os.path.join(paths.RESULTS, "runs.csv"))
    gan = runs[(runs["run"] == "folder/gan-seed3") & (runs["total_steps"] == 1562)]
    path = tmp_path / "runs.csv"
    pd.concat([runs, gan]).to_csv(path, index=False)
    with pytest.raises(SystemExit) as done:
        run_main(lambda: contrasts.main([str(path)]))
    assert done.value.code == 2
    with pytest.raises(contrasts.UserError, match="gan \\(all, 2 epochs\\) holds seed 3 twice"):
        contrasts.contrast_rows(contrasts.read_runs(str(path), "final_fid"), 2.0, "final_fid", contrasts.paper_fids())
