"""Does the exponent p explain the FID, or does the seed? One-way ANOVA and a permutation test.

    python -m analysis.p_effect RUNS_DIR [--metric final_fid] [--csv results/p_effect.csv] [--figure results/figures/fid_vs_p.png]
    python -m analysis.p_effect results/runs.csv --steps 1562 ... # the runs collected there, from any folder or machine
    python -m analysis.p_effect results/runs.csv --steps 1562 --p 1 2 3 4 5 6   # does p matter among these p alone?

Reads the completed Minkowski runs of a sweep: its folder (ablate_p.py --runs:
<runs>/<dataset>/<run>), or the runs.csv that ablate_p.py --collect wrote, so that committed results
can be tested after their run folders are gone. Only runs trained with Adam's eps --adam-eps
(default torch's) count: another eps is an experiment on the optimiser, not a seed of the loss. It
groups the metric by p and tests whether the groups differ more than seeds within a group do: the F
statistic of a one-way ANOVA with its p-value (F distribution), the p-value of a permutation test of
the same F (labels shuffled --permutations times; valid without normality), and the effect size
eta^2 = SS_between / SS_total (the share of the metric's variance that p explains) with omega^2, its
less biased version. Runs of one budget are tested at a time: --steps picks it where the source holds
several. The CSV keeps one row per (metric, dataset, steps, Adam eps), merged into what is there;
a row from fewer runs never replaces one from more. The figure shows the metric against p, each seed a dot and the mean with the
seeds' standard deviation, beside the paper's Table 3. --p tests a subset of the p values (printed
only: the CSV and the figure keep the test over every p).
"""
import argparse
import glob
import os

import numpy as np
import pandas as pd
from scipy import stats

from minkgan import rundir
from minkgan import paper as paper_csv
from minkgan import runs as runs_csv
from minkgan.settings import ADAM_EPS
from minkgan.utils import (OneLineParser, UserError, check_merge_target, check_writable_file, merge_csv,
                   read_json, row_identity)



def f_statistic(values, labels):
    """One-way ANOVA: (F, df_between, df_within, SS_between, SS_total) of values grouped by labels."""
    values, labels = np.asarray(values, float), np.asarray(labels)
    groups = [values[labels == g] for g in np.unique(labels)]
    grand = values.mean()
    ss_between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    ss_total = ((values - grand) ** 2).sum()
    df_between, df_within = len(groups) - 1, len(values) - len(groups)
    f = (ss_between / df_between) / ((ss_total - ss_between) / df_within)
    return f, df_between, df_within, ss_between, ss_total


def p_test(values, labels, permutations=10000, seed=0):
    """F, its ANOVA p-value, a permutation p-value, eta^2 and omega^2 of values grouped by labels."""
    values, labels = np.asarray(values, float), np.asarray(labels)
    counts = pd.Series(labels).value_counts()
    if len(counts) < 2 or (counts < 2).all() or len(values) - len(counts) < 1:
        raise UserError("the test needs at least two values of p and two seeds of one of them")
    f, df_b, df_w, ss_b, ss_t = f_statistic(values, labels)
    rng = np.random.default_rng(seed)
    exceed = sum(f_statistic(values, rng.permutation(labels))[0] >= f for _ in range(permutations))
    ms_within = (ss_t - ss_b) / df_w
    return {"F": f, "df_between": df_b, "df_within": df_w, "p_anova": stats.f.sf(f, df_b, df_w),
            "p_permutation": (exceed + 1) / (permutations + 1), "permutations": permutations,
            "eta2": ss_b / ss_t, "omega2": (ss_b - df_b * ms_within) / (ss_t + ms_within)}


def runs_in_folder(runs_dir, metric):
    """A row per run directory under runs_dir, in runs.csv's columns (an empty Adam eps and precision
    where they are the defaults, as there): what the test reads."""
    rows = []
    for config_path in sorted(glob.glob(os.path.join(runs_dir, "*", "*", "config.json"))):
        run_dir = os.path.dirname(config_path)
        cfg, summary = read_json(config_path), read_json(os.path.join(run_dir, "summary.json")) or {}
        if cfg is None:  # a run still starting
            continue
        eps, precision = cfg.get("adam_eps", ADAM_EPS), cfg.get("precision") or "float32"
        rows.append({"loss": cfg["loss"], "p": cfg["p"], "seed": cfg["seed"], "status": summary.get("status"),
                     metric: summary.get(metric), "epochs": summary.get("epoch"), "steps": summary.get("step"),
                     "dataset": cfg["dataset"], "adam_eps": None if eps == ADAM_EPS else eps,
                     "precision": None if precision == "float32" else precision,
                     "reading": rundir.reading(cfg)["clip_params"] or "none", "device": cfg.get("hardware")})
    return pd.DataFrame(rows)


def minkowski_runs(source, metric, adam_eps=ADAM_EPS, steps=None, ps=None, clip_params="all"):
    """(p, seed, metric, epochs, steps, dataset, hardware) of every completed, comparable Minkowski run
    (minkgan/runs.py) with that Adam eps and that reading of the clipping (and that many steps, and one
    of those p, when given), from a sweep's folder or a runs.csv; all of one budget."""
    if not os.path.exists(source):
        raise UserError(f"{source} does not exist; name a runs.csv written by ablate_p.py --collect or a sweep's folder")
    runs = runs_csv.read(source, metric) if os.path.isfile(source) else runs_in_folder(source, metric)
    if len(runs):
        runs = runs_csv.comparable(runs_csv.completed(runs, metric), None if adam_eps == ADAM_EPS else adam_eps)
        runs = runs[(runs["loss"] == "minkowski") & ((runs["steps"] == steps) if steps is not None else True)
                    & (runs["reading"] == clip_params) & (runs["p"].isin(ps) if ps else True)]
    if not len(runs):
        raise UserError(f"no completed Minkowski run with {metric}, Adam eps {adam_eps:g}, --clip-params {clip_params}"
                        + (f" and {steps} steps" if steps is not None else "")
                        + (f" and p in {' '.join(f'{p:g}' for p in ps)}" if ps else "") + f" in {source}; "
                        "run that sweep first, or name the runs.csv or folder that holds it")
    budgets = runs[["dataset", "steps"]].drop_duplicates()
    if len(budgets) > 1:
        raise UserError(f"{source} holds runs of {len(budgets)} budgets (dataset, steps): "
                        + ", ".join(f"{d} {s:g}" for d, s in budgets.itertuples(index=False))
                        + "; test one at a time: pick its steps with --steps")
    return runs.rename(columns={"device": "hardware"})[["p", "seed", metric, "epochs", "steps", "dataset", "hardware"]]


def plot(runs, metric, path):
    from minkgan import figures  # sets matplotlib's Agg backend; imported only when a figure is asked for
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(runs["p"], runs[metric], s=12, c="0.6", label="one seed")
    means = runs.groupby("p")[metric].agg(["mean", "std"]).reset_index()
    ax.errorbar(means["p"], means["mean"], yerr=means["std"].fillna(0), fmt="o-", capsize=3,
                label=f"ours, mean ± std ({runs['epochs'].max():g} epoch{'' if runs['epochs'].max() == 1 else 's'})")
    paper = paper_csv.table()
    paper = paper[(paper["table"] == 3)].sort_values("p")
    ax.plot(paper["p"], paper["fid"], "s--", c="tab:red", label="paper, Table 3 (200 epochs)")
    ax.set(xlabel="p", ylabel=metric.replace("_", " "), title="Minkowski loss: FID against p")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figures.save_figure(fig, path)


TEST_KEY = ["metric", "dataset", "steps", "adam_eps", "clip_params"]


def merge_test_row(path, row):
    """Merge the test's row into the CSV by TEST_KEY, unless that key's row there counts more runs
    (a test of part of a sweep never replaces the test of all of it)."""
    more_runs = lambda other: other.get("runs", 0) > row["runs"]  # noqa: E731
    merged = merge_csv(path, pd.DataFrame([row]), TEST_KEY, good=more_runs)
    kept = [r for r in merged.to_dict("records") if row_identity(r, TEST_KEY) == row_identity(row, TEST_KEY)]
    if more_runs(kept[0]):
        print(f"kept the row of {kept[0]['runs']} runs in {path}: this test has {row['runs']}")


def build_parser():
    ap = OneLineParser(prog="python -m analysis.p_effect", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="the sweep's folder (ablate_p.py --runs), or a runs.csv")
    ap.add_argument("--adam-eps", type=float, default=ADAM_EPS, help="test the runs trained with this Adam eps")
    ap.add_argument("--clip-params", default="all", choices=["all", "weights", "none"],
                    help="test the runs of this reading of the paper's clipping (train.py --clip-params; none: --clip 0)")
    ap.add_argument("--steps", type=int, default=None, help="test the runs of this budget (G steps), where there are several")
    ap.add_argument("--metric", default="final_fid", help="a summary.json key: final_fid, best_fid, final_kid, ...")
    ap.add_argument("--p", type=float, nargs="+", default=None, help="test only the runs of these p (printed only)")
    ap.add_argument("--permutations", type=int, default=10000)
    ap.add_argument("--csv", default=None, help="merge the test's result (a row per budget) into this CSV")
    ap.add_argument("--figure", default=None, help="draw the metric against p here")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.permutations < 1:
        raise UserError(f"--permutations must be at least 1, got {args.permutations}")
    if args.p and (args.csv or args.figure):
        raise UserError("--p tests a subset of p and only prints it; drop --csv and --figure, which keep the test over every p")
    if args.csv:
        check_merge_target(args.csv, TEST_KEY, "--csv")
    if args.figure:
        check_writable_file(args.figure, "--figure")
    runs = minkowski_runs(args.runs, args.metric, args.adam_eps, args.steps, args.p, args.clip_params)
    result = p_test(runs[args.metric], runs["p"], args.permutations)
    seeds = runs.groupby("p")["seed"].nunique()
    row = {"metric": args.metric, "values_of_p": len(seeds), "runs": len(runs), "seeds_min": seeds.min(),
           "seeds_max": seeds.max(), **result, "dataset": runs["dataset"].iloc[0], "epochs": runs["epochs"].max(),
           "steps": runs["steps"].max(), "adam_eps": args.adam_eps, "clip_params": args.clip_params,
           "hardware": " / ".join(sorted(runs["hardware"].dropna().unique()))}
    print(runs.groupby("p")[args.metric].agg(["mean", "std", "count"]).to_string(float_format=lambda v: f"{v:.2f}"))
    print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if args.csv:
        merge_test_row(args.csv, row)
    if args.figure:
        plot(runs, args.metric, args.figure)
    return 0

