"""The failure rule (minkgan/failure.py), the H8 statistics (minkgan/stats.py) against scipy, a
simulation or a closed form, and the H8 table's words on both sides of their thresholds."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from analysis import failures
from minkgan import failure, paths, stats


def test_collapse_is_read_below_one_hundredth_and_not_at_it():
    steps = np.arange(50, 1601, 50)
    early = np.full(len(steps), 1.0)
    assert failure.gradient_collapse(steps, np.where(steps > 1200, 0.0099, 1.0), 1562)[2] is True
    assert failure.gradient_collapse(steps, np.where(steps > 1200, 0.0101, 1.0), 1562)[2] is False
    assert failure.gradient_collapse(steps, early, 1562)[:2] == (1.0, 1.0)


def test_the_windows_are_the_first_tenth_and_the_last_quarter():
    steps = np.arange(50, 1601, 50)  # first tenth: 50, 100, 150; last quarter: steps > 1171.5
    grads = np.where(steps <= 150, [3.0, 5.0, 4.0] + [0.0] * (len(steps) - 3), 1.0)
    grads = np.where(steps > 1171.5, np.arange(len(steps)) * 0.01, grads)
    early, late, _ = failure.gradient_collapse(steps, grads, 1562)
    assert early == 4.0 and late == pytest.approx(np.median(np.arange(len(steps))[steps > 1171.5] * 0.01))


def test_a_short_run_logged_late_takes_its_first_row_as_early():
    early, late, failed = failure.gradient_collapse([50, 100, 150, 200, 250, 300], [2, 1, 1, 1, 0.01, 0.01], 313)
    assert (early, late, failed) == (2.0, 0.01, True)  # first tenth (<= 31.3) is empty: the row at 50


def test_run_failure_words():
    m = pd.DataFrame({"step": [10, 100], "grad_norm_g": [1.0, 1e-5]})
    assert failure.run_failure(m, 100, "completed")["failed"] == "yes"
    assert failure.run_failure(m.assign(grad_norm_g=[1.0, 0.5]), 100, "completed")["failed"] == "no"
    assert failure.run_failure(None, 100, "diverged")["failed"] == "yes"
    assert failure.run_failure(m, 100, "interrupted")["failed"] is None
    assert failure.run_failure(None, 100, "completed")["failed"] is None


def test_the_committed_runs_flag_the_four_stalled_weights_only_minkowski_runs():
    """The addendum's claim about the rule on the runs it was found with, read from the committed logs."""
    import glob
    import json
    import os
    flagged = []
    for run in sorted(glob.glob(os.path.join(paths.RESULTS, "run_logs", "folder-*", "*"))):
        cfg = json.load(open(os.path.join(run, "config.json")))
        if cfg.get("clip_params") == "weights" and int(cfg["seed"]) > 1:
            continue  # H8's new seeds test the rule; this check is of the seeds it was found with
        m = pd.read_csv(os.path.join(run, "metrics.csv"))
        if failure.run_failure(m, cfg["total_steps"], "completed")["failed"] == "yes":
            flagged.append(os.path.basename(run))
    assert flagged == ["minkowski-p1-clipweights-seed0", "minkowski-p1-clipweights-seed1",
                       "minkowski-p4-clipweights-seed1", "minkowski-p8-clipweights-seed1"]


def test_fisher_matches_a_hypergeometric_sum_written_out():
    a, n_a, b, n_b = 5, 8, 0, 8
    k, total = a + b, n_a + n_b
    pmf = [math.comb(n_a, i) * math.comb(n_b, k - i) / math.comb(total, k) for i in range(k + 1)]
    expected = sum(q for q in pmf if q <= pmf[a] * (1 + 1e-7))
    assert stats.fisher(a, n_a, b, n_b) == pytest.approx(expected)


def test_fisher_power_against_a_simulation():
    rng = np.random.default_rng(0)
    draws = 4000
    ka, kb = rng.binomial(8, 0.5, draws), rng.binomial(8, 0.0, draws)
    simulated = np.mean([stats.fisher(i, 8, j, 8) < 0.05 for i, j in zip(ka, kb)])
    assert stats.fisher_power(0.5, 8, 0.0, 8) == pytest.approx(simulated, abs=0.025)
    assert stats.fisher_power(0.3, 5, 0.3, 5) <= 0.05  # no effect: at most alpha (the test is conservative)


def test_mann_whitney_is_scipys_exact_test():
    a, b = [10.0, 12.0, 30.0], [1.0, 2.0, 3.0, 4.0]
    u, p = stats.mann_whitney(a, b)
    assert u == 12 and p == pytest.approx(2 / math.comb(7, 3))  # the most extreme of C(7, 3) orders, both tails


def test_noncentral_welch_power_against_a_simulation_at_known_sds():
    """With the SDs known the noncentral t is the exact law of the statistic at large n: a z-test check."""
    power = stats.welch_power_noncentral(2.0, 10.0, 10.0, 200, 200)
    z = 2.0 / math.sqrt(2 * 100 / 200)
    assert power == pytest.approx(sp.norm.sf(1.96 - z) + sp.norm.cdf(-1.96 - z), abs=2e-3)
    assert stats.welch_power_noncentral(0.0, 5.0, 5.0, 5, 5) == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize("p, ra, rb, word", [(0.01, 0.6, 0.0, "p = 4 fails more often"),
                                             (0.01, 0.0, 0.6, "p = 4 fails less often"),
                                             (0.06, 0.6, 0.0, "no difference found")])
def test_failure_verdict_on_both_sides_of_alpha(p, ra, rb, word):
    assert failures.failure_verdict(p, ra, rb) == word


@pytest.mark.parametrize("p, ma, mb, word", [(0.01, 100, 200, "p = 4 ranks better"), (0.01, 300, 200, "p = 4 ranks worse"),
                                             (0.2, 100, 200, "no difference found")])
def test_rank_verdict_on_both_sides_of_alpha(p, ma, mb, word):
    assert failures.rank_verdict(p, ma, mb) == word


def runs_table(p4_fails, seeds=8):
    rows = []
    for seed in range(seeds):
        failed = seed < p4_fails
        rows.append({"loss": "minkowski", "p": 4.0, "n_critic": 1, "reading": "weights", "epochs": 2.0, "seed": seed,
                     "final_fid": 450.0 + seed if failed else 200.0 + seed, "failed": "yes" if failed else "no",
                     "final_precision": 0.1, "final_coverage": 0.0 if seed == seeds - 1 else 0.1})
        rows.append({"loss": "gan", "p": None, "n_critic": 1, "reading": "weights", "epochs": 2.0, "seed": seed,
                     "final_fid": 240.0 + seed, "failed": "no", "final_precision": 0.1, "final_coverage": 0.1})
    return pd.DataFrame(rows)


def test_the_table_turns_with_the_data():
    pre = lambda table: table[table["rule"] == "preregistered"]  # noqa: E731
    many, few = pre(failures.failure_rows(runs_table(6), "weights", 2.0)), pre(failures.failure_rows(runs_table(1), "weights", 2.0))
    assert list(many["b"]) == ["gan"] and many["failed_a"].item() == 6 and many["failed_b"].item() == 0
    assert many["failure_verdict"].item() == "p = 4 fails more often"
    assert few["failure_verdict"].item() == "no difference found"
    assert few["welch_verdict"].item() == "supported"  # 7 trained p = 4 runs at 201-207 against GAN's 240-247
    assert pre(failures.failure_rows(runs_table(7), "weights", 2.0))["welch_verdict"].item() == "not decidable"


def test_the_deviation_also_counts_a_run_that_ends_with_precision_and_coverage_0():
    table = runs_table(1)
    table.loc[(table["loss"] == "minkowski") & (table["seed"] == 7), "final_precision"] = 0.0  # seed 7: P = C = 0
    rows = failures.failure_rows(table, "weights", 2.0).set_index("rule")
    assert rows.loc["preregistered", "failed_a"] == 1 and rows.loc["or-blank", "failed_a"] == 2


def test_anova_power_of_an_unbalanced_design_against_a_simulation():
    means, counts, sd = [0.0, 10.0, 4.0], [5, 2, 5], 8.0
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(4000):
        groups = [rng.normal(m, sd, n) for m, n in zip(means, counts)]
        hits += sp.f_oneway(*groups).pvalue < 0.05
    assert stats.anova_power(means, counts, sd) == pytest.approx(hits / 4000, abs=0.025)
    assert stats.anova_power([3.0, 3.0], [4, 4], 1.0) == pytest.approx(0.05)
