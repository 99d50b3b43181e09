"""H8 of the addendum (docs/preregistration-addendum.md): under one clipping reading, how often each arm's
runs fail (the failure rule of minkgan/failure.py), Fisher's exact test of p = 4 against GAN and WGAN,
and the FIDs with and without the failed runs, so that neither hides the other.

    python -m analysis.failures results/runs.csv                          # print, weights-only, 2 epochs
    python -m analysis.failures results/runs.csv --csv results/failures.csv --figure results/figures/failures.png

Per failure rule (the pre-registered one, and beside it a dated deviation) and contrast (p = 4 against a
baseline): failures and runs per arm, Fisher's p-value, Holm's over the
contrasts, the test's power against failure rates of 1/2 and 0; Welch's interval of the FID over the
runs that did not fail, with its power at the paper's gap (noncentral t); Mann-Whitney's U over every
run. Each test's word comes from its pre-registered rule (`*_verdict` columns).
"""
import os
import sys

if not __package__:  # run as a path (python analysis/failures.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse

import numpy as np
import pandas as pd

from minkgan import contrasts, paths, stats
from minkgan import runs as runs_csv
from minkgan.utils import OneLineParser, UserError, check_merge_target, check_writable_file, merge_csv, run_main

PAIRS = [("minkowski-p4", "gan"), ("minkowski-p4", "wgan")]
# How a run counts as failed: the pre-registered rule alone, and (a dated deviation, written after H8's seed 2
# of p = 4 stalled from its first logged step, where the rule reads no collapse) the rule or an end with
# precision and coverage both exactly 0, no generated image near any real one.
RULES = {"preregistered": "G's gradient norm collapsed (pre-registered)",
         "or-blank": "collapsed, or precision and coverage 0 (deviation of 2026-12-07)"}
POWER_RATES = (0.5, 0.0)  # the rates H4's seeds suggested: half of the p = 4 runs fail, none of the baseline's
KEY = ["reading", "epochs", "rule", "a", "b"]


def failure_verdict(p_value, rate_a, rate_b, alpha=stats.ALPHA):
    """Fisher's rule: a difference at alpha, in the direction of the rates, else none found."""
    if p_value < alpha and rate_a != rate_b:
        return "p = 4 fails more often" if rate_a > rate_b else "p = 4 fails less often"
    return "no difference found"


def rank_verdict(p_value, median_a, median_b, alpha=stats.ALPHA):
    """Mann-Whitney's rule over every run: p = 4's FIDs rank lower (better) or higher at alpha."""
    if p_value < alpha and median_a != median_b:
        return "p = 4 ranks better" if median_a < median_b else "p = 4 ranks worse"
    return "no difference found"


def trained_fid_test(fid_a, fid_b, gap):
    """Welch over the runs that did not fail, by the H1-H3 rule; 'not decidable' below 2 runs an arm."""
    if min(len(fid_a), len(fid_b)) < 2:
        return {"welch_verdict": "not decidable"}
    test = contrasts.welch(fid_a, fid_b)
    power = stats.welch_power_noncentral(gap, np.std(fid_a, ddof=1), np.std(fid_b, ddof=1), len(fid_a), len(fid_b))
    return {"trained_mean_diff": test["mean_diff"], "trained_ci_low": test["ci_low"], "trained_ci_high": test["ci_high"],
            "trained_power_at_paper_gap": power,
            "welch_verdict": contrasts.verdict(test["ci_low"], test["ci_high"], gap)}


def failed_under(runs, rule):
    """Which runs count as failed under a rule of RULES."""
    failed = runs["failed"] == "yes"
    if rule == "or-blank":
        failed |= (runs["final_precision"] == 0) & (runs["final_coverage"] == 0)
    return failed


def contrast_row(ra, rb, gap, rule="preregistered"):
    """Every test of one contrast, from its arms' runs (a `failed` column of 'yes'/'no')."""
    ra, rb = (r.assign(failed=np.where(failed_under(r, rule), "yes", "no")) for r in (ra, rb))
    fa, fb = (int((r["failed"] == "yes").sum()) for r in (ra, rb))
    na, nb = len(ra), len(rb)
    fisher_p = stats.fisher(fa, na, fb, nb)
    u, mw_p = stats.mann_whitney(ra["final_fid"], rb["final_fid"])
    trained = [r.loc[r["failed"] == "no", "final_fid"].to_numpy(float) for r in (ra, rb)]
    return {"n_a": na, "n_b": nb, "failed_a": fa, "failed_b": fb, "seeds_a": " ".join(str(int(s)) for s in ra["seed"]),
            "seeds_b": " ".join(str(int(s)) for s in rb["seed"]), "fisher_p": fisher_p,
            "fisher_power": stats.fisher_power(POWER_RATES[0], na, POWER_RATES[1], nb),
            "failure_verdict": failure_verdict(fisher_p, fa / na, fb / nb),
            "n_trained_a": len(trained[0]), "n_trained_b": len(trained[1]), "paper_gap": gap,
            **trained_fid_test(*trained, gap), "mw_u": u, "mw_p": mw_p,
            "median_a": float(ra["final_fid"].median()), "median_b": float(rb["final_fid"].median()),
            "mw_verdict": rank_verdict(mw_p, ra["final_fid"].median(), rb["final_fid"].median())}


def failure_rows(runs, reading, epochs):
    """One row per rule and contrast whose arms both have runs with a failure value; Holm over a rule's rows."""
    paper = contrasts.paper_fids()
    arms = arm_runs(runs, reading, epochs)
    tables = []
    for rule in RULES:
        out = [{"reading": reading, "epochs": epochs, "rule": rule, "a": a, "b": b,
                **contrast_row(arms[a], arms[b], paper[a] - paper[b], rule)}
               for a, b in PAIRS if min(len(arms[a]), len(arms[b])) >= 1]
        rows = pd.DataFrame(out)
        if len(rows):
            rows.insert(rows.columns.get_loc("fisher_p") + 1, "fisher_p_holm", contrasts.holm(rows["fisher_p"]))
        tables.append(rows)
    return pd.concat(tables, ignore_index=True)


def arm_runs(runs, reading, epochs):
    """{arm: its runs with a failure value} of the arms of PAIRS."""
    out = {}
    for arm in dict.fromkeys(a for pair in PAIRS for a in pair):
        rows = contrasts.arm_values(runs, arm, reading, epochs, "final_fid")
        out[arm] = rows[rows["failed"].isin(["yes", "no"])]
    return out


def plot_curves(runs, run_logs, path):
    """Why runs fail: G's gradient norm and D(G(z)) over the G steps of every run of the arms, a failed run
    solid and red, one the rule passes that ends with precision and coverage 0 dashed orange, a trained one
    thin and in its arm's colour (from the run logs' metrics.csv)."""
    from minkgan import figures  # sets matplotlib's Agg backend
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = {"minkowski-p4": "tab:green", "gan": "tab:blue", "wgan": "tab:purple"}
    for arm, rows in runs.items():
        for r in rows.to_dict("records"):
            dataset, name = r["run"].split("/")
            logs = os.path.join(run_logs, f"{dataset}-{int(r['total_steps'])}steps", name, "metrics.csv")
            if not os.path.isfile(logs):
                continue
            m = runs_csv.read_log(logs)
            blank = r["final_precision"] == 0 and r["final_coverage"] == 0
            style = ({"c": "tab:red", "lw": 1.6} if r["failed"] == "yes" else
                     {"c": "tab:orange", "lw": 1.4, "ls": "--"} if blank else {"c": colours[arm], "lw": 0.7, "alpha": 0.7})
            for ax, column in zip(axes, ("grad_norm_g", "d_fake")):
                ax.plot(m["step"] / r["total_steps"], m[column].clip(lower=1e-8), **style)
    for arm, c in colours.items():
        axes[0].plot([], [], c=c, lw=0.7, label=f"{arm}, trained")
    axes[0].plot([], [], c="tab:red", lw=1.6, label="failed (any arm)")
    axes[0].plot([], [], c="tab:orange", lw=1.4, ls="--", label="not failed, precision and coverage 0")
    axes[0].set(yscale="log", xlabel="share of the run's G steps", ylabel="G's gradient norm")
    axes[1].set(yscale="log", xlabel="share of the run's G steps", ylabel="D(G(z)), batch mean")
    axes[0].legend(fontsize=7)
    fig.suptitle("Failed and trained runs (failure rule: late median of G's gradient norm < 1/100 of early)", fontsize=9)
    figures.save_figure(fig, path)


def build_parser():
    ap = OneLineParser(prog="python -m analysis.failures", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a runs.csv with a failed column (ablate_p.py --collect writes it)")
    ap.add_argument("--reading", default="weights", choices=["all", "weights"], help="which clipping reading's runs")
    ap.add_argument("--epochs", type=float, default=2.0, help="the budget to test")
    ap.add_argument("--csv", default=None, help="merge the rows into this CSV (by reading, epochs, rule, a, b)")
    ap.add_argument("--figure", default=None, help="draw G's gradient norm and D(G(z)) of every run here")
    ap.add_argument("--run-logs", default=os.path.join(paths.RESULTS, "run_logs"),
                    help="where the runs' metrics.csv are, for --figure (ablate_p.py --collect copies them there)")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.csv:
        check_merge_target(args.csv, KEY, "--csv")
    if args.figure:
        check_writable_file(args.figure, "--figure")
    runs = contrasts.read_runs(args.runs, "final_fid")
    if "failed" not in runs:
        raise UserError(f"{args.runs} has no column failed; collect it again with ablate_p.py --collect")
    rows = failure_rows(runs, args.reading, args.epochs)
    if not len(rows):
        raise UserError(f"no contrast has runs with a failure value in both arms at {args.epochs:g} epochs, "
                        f"clip {args.reading}, in {args.runs}")
    shown = ["rule", "a", "b", "failed_a", "n_a", "failed_b", "n_b", "fisher_p", "failure_verdict", "welch_verdict", "mw_p",
             "mw_verdict"]
    print(rows[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.csv:
        merge_csv(args.csv, rows, KEY)
    if args.figure:
        plot_curves(arm_runs(runs, args.reading, args.epochs), args.run_logs, args.figure)
    return 0


if __name__ == "__main__":
    run_main(main)
