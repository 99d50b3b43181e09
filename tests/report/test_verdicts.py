"""Each verdict word's rule (minkgan/verdicts.py) on both sides of its threshold."""
import pytest

from minkgan import verdicts


def test_best_p_needs_the_lowest_mean_at_4_and_the_contrast():
    means = {1: 170.0, 4: 160.0, 8: 300.0}
    assert verdicts.best_p(means, "supported") == "seen"
    assert verdicts.best_p(means, "paper's gap excluded") == "not seen"
    assert verdicts.best_p({**means, 1: 150.0}, "supported") == "not seen"


def test_far_behind_is_two_pooled_sds_above_the_best():
    means = {1: 166.0, 4: 172.0, 7: 166.0 + 2 * 15.0 + 0.1, 8: 166.0 + 2 * 15.0 - 0.1}
    assert verdicts.far_behind(means, 15.0) == [7]


@pytest.mark.parametrize("low, high, word", [(-5.0, -1.0, "supported"), (1.0, 5.0, "contradicted"), (-1.0, 1.0, "not seen")])
def test_direction_of_an_interval(low, high, word):
    assert verdicts.direction(low, high) == word


def test_one_loss_at_the_threshold():
    assert verdicts.one_loss([0.995, 0.99]) == "nearly one loss"
    assert verdicts.one_loss([0.995, 0.989]) == "not one loss"


def test_arguments_that_fail():
    assert verdicts.arguments_that_fail(0.0, 2.08) == 2
    assert verdicts.arguments_that_fail(-0.1, 0.0) == 0
    assert verdicts.arguments_that_fail(0.2, 0.0) == 1


def test_every_word_of_the_contrast_rule_has_a_phrase():
    from minkgan import contrasts
    words = {contrasts.verdict(-2, -1, -9), contrasts.verdict(1, 2, -9), contrasts.verdict(-1, 1, -9), contrasts.verdict(-1, 1, 0)}
    from minkgan.report import sentences, verdict
    assert words <= set(verdict.CONTRAST_SENTENCES)
    assert set(verdict.ARGUMENTS_SENTENCES) == {0, 1, 2}
    said = set(verdict.CONTRAST_SENTENCES.values()) | set(verdict.ARGUMENTS_SENTENCES.values())
    assert said <= set(sentences.templates(verdict.PAGE))


def test_shifting_p4s_fids_changes_the_words(tmp_path):
    """The issue's check: move every 2-epoch p = 4 FID (clip-all) down by 110, recompute the contrasts, and
    the verdict's words follow: the contrasts turn supported, p = 4 becomes the best p."""
    import shutil

    import pandas as pd

    from minkgan.report import verdict
    from minkgan import contrasts, paths
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS, results, ignore=shutil.ignore_patterns("figures", "dynamics"))
    before = verdict.claim_words(str(results))
    runs = pd.read_csv(results / "runs.csv")
    p4 = (runs["loss"] == "minkowski") & (runs["p"] == 4) & (runs["clip_params"] == "all") & (runs["total_steps"] == 1562)
    runs.loc[p4, "final_fid"] -= 110
    runs.to_csv(results / "runs.csv", index=False)
    assert contrasts.main([str(results / "runs.csv"), "--csv", str(results / "contrasts.csv")]) == 0
    after = verdict.claim_words(str(results))
    assert before["p4_vs_gan"] != "supported" and after["p4_vs_gan"] == "supported"
    assert before["best_p"] == "not seen" and after["best_p"] == "seen"
    assert "p = 4 leads, as the paper says" in verdict.answer(str(results)).split("against p = 1")[1]


def test_the_two_arguments_one_by_one():
    assert verdicts.even_p_fails(0.0) and not verdicts.even_p_fails(-1e-6)
    assert verdicts.binomial_fails(2.08) and verdicts.binomial_fails(-0.5) and not verdicts.binomial_fails(0.0)


def test_optimal_d_is_checked_within_the_tolerance():
    assert verdicts.optimal_d_checked(verdicts.OPTIMAL_D_TOLERANCE) == "checked"
    assert verdicts.optimal_d_checked(2 * verdicts.OPTIMAL_D_TOLERANCE) == "does not match"


def test_claim_c_and_h_follow_their_files(tmp_path):
    """Claims (c) and (h) of docs/claims.md: their words come from stability.csv and moments.csv, so a
    results folder without them says "untested", and a stability.csv where p = 4 is steadier says so."""
    import shutil

    import pandas as pd

    from minkgan import paths
    from minkgan.report import verdict
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS, results, ignore=shutil.ignore_patterns("figures", "dynamics"))
    words = verdict.claim_words(str(results))
    assert words["steadier_d"] == "inconclusive" and words["moments"] == "not decidable"  # the committed data
    stability = pd.read_csv(results / "stability.csv")
    p4 = (stability["loss"] == "minkowski") & (stability["p"] == 4)
    stability.loc[p4, "cv_grad_norm_d"] = stability.loc[p4, "cv_grad_norm_d"] * 0 + [0.01 * i for i in range(p4.sum())]
    stability.to_csv(results / "stability.csv", index=False)
    assert verdict.claim_words(str(results))["steadier_d"] == "supported"
    assert verdict.claim(str(results), "c").startswith("supported by its pre-registered measure")
    for name in ("stability.csv", "moments.csv"):
        (results / name).unlink()
    words = verdict.claim_words(str(results))
    assert words["steadier_d"] == "untested" and words["moments"] == "untested"
    assert verdict.claim(str(results), "h").startswith("untested (H7)")


def test_an_unknown_claim_row_is_one_line():
    from minkgan import paths
    from minkgan.report import verdict
    from minkgan.utils import UserError
    with pytest.raises(UserError, match="rows generated are T1, a, b, c, c_curves"):
        verdict.claim(paths.RESULTS, "z")


def test_the_setup_word_names_each_setting_of_table_1_that_differs():
    from minkgan import settings
    assert verdicts.setup_reproduced(settings.paper_setup_differences()) == "reproduced as `train.py`'s defaults"
    differences = settings.paper_setup_differences(["--batch-size", "32", "--clip", "0.02"])
    assert differences == {"--batch-size": (32, 64), "--clip": (0.02, 0.01)}
    assert verdicts.setup_reproduced(differences) == ("differs from `train.py`'s defaults in --batch-size (32 here, 64 "
                                                      "in the paper), --clip (0.02 here, 0.01 in the paper)")


def test_the_loss_curves_word_follows_stability_csv(tmp_path):
    """Claim (c)'s loss curves: contradicted on the committed logs (p = 4's vary more than GAN's); a
    stability.csv where p = 4's G loss varies less says supported; none says untested."""
    import shutil

    import pandas as pd

    from minkgan import paths
    from minkgan.report import verdict
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS, results, ignore=shutil.ignore_patterns("figures", "dynamics", "run_logs"))
    assert verdict.claim_words(str(results))["steadier_loss_g"] == "contradicted"
    stability = pd.read_csv(results / "stability.csv")
    p4 = (stability["loss"] == "minkowski") & (stability["p"] == 4)
    stability.loc[p4, "cv_loss_g"] = [0.001 * (i + 1) for i in range(p4.sum())]
    stability.to_csv(results / "stability.csv", index=False)
    assert verdict.claim_words(str(results))["steadier_loss_g"] == "supported"
    assert verdict.claim(str(results), "c_curves").startswith("G's loss: supported (p = 4 − GAN")
    (results / "stability.csv").unlink()
    assert verdict.claim(str(results), "c_curves").startswith("untested")


@pytest.mark.parametrize("wgan_fid, p4_10_fid, word_g, word_10", [
    (120.0, 70.0, "contradicted", "supported"), (320.0, 90.0, "supported", "paper's gap excluded")])
def test_h9_and_h10_words_follow_the_10_epoch_runs(tmp_path, wgan_fid, p4_10_fid, word_g, word_10):
    """WGAN at equal G steps (H9) and p = 4 − GAN at 10 epochs (H10) are 'not yet measured' until their seeds
    are in runs.csv, then take the rule's word from the FIDs: on both sides of it."""
    import shutil

    import pandas as pd

    from minkgan.report import verdict
    from minkgan import contrasts, paths
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS, results, ignore=shutil.ignore_patterns("figures", "dynamics"))
    from minkgan.report import cifar
    runs = pd.read_csv(results / "runs.csv")
    long = (runs["epochs"].round() == 10) & runs["loss"].isin(["gan", "wgan", "minkowski"])
    runs = runs[~long | (runs["seed"] == 0)]  # the seed-0 horizon alone: H9 and H10 not yet measured
    runs.to_csv(results / "runs.csv", index=False)
    (results / "contrasts.csv").unlink()  # a merge keeps the rows it does not recompute
    assert contrasts.main([str(results / "runs.csv"), "--csv", str(results / "contrasts.csv")]) == 0
    assert verdict.claim_words(str(results))["p4_vs_wgan_equal_g"] == "not yet measured"
    assert "H9's WGAN arm" not in cifar.contrasts_csv(str(results))
    ten = runs[(runs["epochs"].round() == 10) & runs["loss"].isin(["gan", "wgan", "minkowski"])
               & ((runs["loss"] != "minkowski") | (runs["p"] == 4))]
    fids = {"gan": 90.0, "wgan": wgan_fid, "minkowski": p4_10_fid}
    new = [ten.assign(seed=s, run=ten["run"].str.replace("seed0", f"seed{s}"), n_fake=5000,
                      final_fid=ten["loss"].map(fids) + s) for s in (1, 2)]
    pd.concat([runs, *new[:1]]).to_csv(results / "runs.csv", index=False)  # seed 1 first: an interim reading
    assert contrasts.main([str(results / "runs.csv"), "--epochs", "2", "10", "--final-fids", str(results / "horizon.csv"),
                           "--csv", str(results / "contrasts.csv")]) == 0
    assert "(interim: 2 of the 3 pre-registered seeds in an arm)" in verdict.campaign_text(
        str(results), "minkowski-p4", "wgan-equal-g", 2, "H9")
    pd.concat([runs, *new]).to_csv(results / "runs.csv", index=False)
    horizon = pd.read_csv(results / "horizon.csv")  # seed 0's FID of 5000, beside the new seeds'
    final = (horizon["n"] == 5000) & (horizon["step"] == horizon["total_steps"])
    horizon.loc[final, "fid"] = horizon.loc[final, "loss"].map(fids) + 0.5
    horizon.to_csv(results / "horizon.csv", index=False)
    assert contrasts.main([str(results / "runs.csv"), "--epochs", "2", "10", "--final-fids", str(results / "horizon.csv"),
                           "--csv", str(results / "contrasts.csv")]) == 0
    words = verdict.claim_words(str(results))
    assert (words["p4_vs_wgan_equal_g"], words["p4_vs_gan_10epochs"]) == (word_g, word_10)
    claim = verdict.claim(str(results), "a")
    assert f"against WGAN at equal G steps: {verdict.phrase(words, 'wgan_equal_g')} (H9)" in claim
    assert f"against GAN at 10 epochs: {verdict.phrase(words, 'gan_10epochs')} (H10)" in claim
    assert "interim" not in verdict.campaign_text(str(results), "minkowski-p4", "wgan-equal-g", 2, "H9")
    assert "H9's WGAN arm (`wgan-equal-g`) trained 5 times" in cifar.contrasts_csv(str(results))
    h9 = pd.read_csv(results / "contrasts.csv").query("family == 'H9'").iloc[0]
    assert (h9["n_a"], h9["n_b"], h9["steps"], h9["steps_b"]) == (5, 3, 1562, 1562)


def test_the_answer_says_h8_so_far_only_while_an_arm_is_short_of_its_8_seeds(tmp_path):
    import shutil

    import pandas as pd

    from minkgan.report import verdict
    from minkgan import paths
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS, results, ignore=shutil.ignore_patterns("figures", "dynamics", "run_logs"))
    counts = verdict.h8_counts(str(results))
    assert counts["n_p4"] == counts["n_gan"] == counts["n_wgan"] == 8 and counts["so_far"] == ""
    failures = pd.read_csv(results / "failures.csv")
    failures.loc[failures["b"] == "wgan", "n_b"] = 7
    failures.to_csv(results / "failures.csv", index=False)
    assert verdict.h8_counts(str(results))["so_far"] == " so far"
