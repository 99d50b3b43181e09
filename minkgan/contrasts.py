"""The pre-registered contrasts (docs/preregistration.md): p = 4 against GAN, WGAN and p = 1, each
a Welch interval, a p-value and the test's power against the paper's own gap.

    python -m analysis.contrasts results/runs.csv                           # print, at 2 epochs, both clipping readings
    python -m analysis.contrasts results/runs.csv --csv results/contrasts.csv --figure results/figures/contrasts.png
    python -m analysis.contrasts results/stability.csv --metric cv_grad_norm_d    # any per-run column of a CSV

Two seeds per arm leave a test with little power: a contrast whose interval holds 0 is
"inconclusive" unless the interval also excludes the paper's gap, and then it says that the
paper's effect, not every effect, is excluded at this budget. The verdict follows the rule fixed
before the runs (docs/preregistration.md).
"""
import argparse
import io
import os

import numpy as np
import pandas as pd
from scipy import stats as sp

from minkgan import stats
from minkgan import paper as paper_csv
from minkgan import runs as runs_csv
from minkgan.utils import (OneLineParser, UserError, check_merge_target, check_writable_file, merge_csv,
                           read_csv_of_ours)

# The arms of the contrasts: (loss, p, n_critic); WGAN with its 5 critic steps, as the paper.
ARMS = {"gan": ("gan", None, 1), "wgan": ("wgan", None, 5), "minkowski-p1": ("minkowski", 1.0, 1),
        "minkowski-p4": ("minkowski", 4.0, 1), "minkowski-p8": ("minkowski", 8.0, 1), "wgan-equal-g": ("wgan", None, 5)}
# An arm trained for a multiple of the contrast's epochs: WGAN's 5 critic steps make a fifth of the G steps
# an epoch, so at 5 times the epochs it makes as many G steps as the other arm (H9: claim a at equal G steps).
EPOCHS_MULTIPLE = {"wgan-equal-g": 5}
# The pre-registered families, each Holm-adjusted on its own: name -> (clipping reading, its (a, b) pairs).
FAMILIES = {"H1-H3": ("all", [("minkowski-p4", "gan"), ("minkowski-p4", "wgan"), ("minkowski-p4", "minkowski-p1")]),
            "H4": ("weights", [("minkowski-p4", "gan"), ("minkowski-p4", "wgan"), ("minkowski-p4", "minkowski-p1"),
                               ("minkowski-p4", "minkowski-p8")]),
            "H9": ("all", [("minkowski-p4", "wgan-equal-g")])}
CONTRAST_KEY = ["reading", "metric", "epochs", "a", "b"]
FID_METRICS = ("final_fid", "best_fid")  # the metrics the paper's gap and one FID sample count apply to
ALPHA = 0.05


def welch(a, b, alpha=ALPHA):
    """Welch's two-sided t-test of mean(a) - mean(b): the difference, its (1 - alpha) interval,
    the Welch-Satterthwaite degrees of freedom and the p-value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if min(len(a), len(b)) < 2:
        raise UserError(f"a Welch interval needs two runs per arm, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    if va + vb == 0:  # every run of both arms gave one value each: no spread to test against
        return {"mean_diff": diff, "ci_low": diff, "ci_high": diff, "df": np.inf, "p_value": float(diff == 0)}
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = sp.t.ppf(1 - alpha / 2, df) * se
    return {"mean_diff": diff, "ci_low": diff - half, "ci_high": diff + half, "df": df,
            "p_value": 2 * sp.t.sf(abs(diff) / se, df)}


def holm(p_values):
    """Holm's step-down adjustment: family-wise error at most alpha over the contrasts of a family."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def verdict(ci_low, ci_high, paper_gap):
    """The pre-registered rule: the interval's place against 0 and against the paper's gap (a < b
    is the paper's direction: p = 4's FID is the lower)."""
    if ci_high < 0:
        return "supported"
    if ci_low > 0:
        return "contradicted"
    if not np.isnan(paper_gap) and not ci_low <= paper_gap <= ci_high:
        return "paper's gap excluded"
    return "inconclusive"


def paper_fids():
    """{arm of ARMS: the paper's FID}."""
    return {name: paper_csv.fid(loss, p) for name, (loss, p, _) in ARMS.items()}


def read_runs(path, metric):
    """The completed, comparable runs (minkgan/runs.py) of a runs.csv-shaped file that have the metric."""
    return runs_csv.comparable(runs_csv.completed(runs_csv.read(path, metric, needs=("n_critic", "epochs")), metric))


FINAL_FID_COLUMNS = ["run", "total_steps", "step", "n", "fid"]  # of analysis/horizon.py's CSV


def read_final_fids(path, n=5000):
    """{(run, total_steps): FID of n samples at the run's last step} from analysis/horizon.py's CSV; a file
    that is missing, not that CSV, empty or holds a cell that is not a number is refused with one line."""
    remedy = "give analysis/horizon.py's CSV (results/horizon.csv)"
    if not os.path.isfile(path):
        raise UserError(f"--final-fids {path} is not a file; {remedy}")
    text = read_csv_of_ours(path, FINAL_FID_COLUMNS, f"--final-fids {path}", remedy)
    table = pd.read_csv(io.StringIO(text)) if text.strip() else pd.DataFrame(columns=FINAL_FID_COLUMNS)
    if not len(table):  # empty or its header alone: no long run to take a FID from
        return {}
    bad = [c for c in FINAL_FID_COLUMNS[1:] if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise UserError(f"--final-fids {path}: column {bad[0]} holds a cell that is not a number; {remedy}")
    final = table[(table["n"] == n) & (table["step"] == table["total_steps"])]
    return final.set_index(["run", "total_steps"])["fid"].to_dict()


def with_final_fids(runs, final, n=5000):
    """runs with final_fid of n samples taken from `final` (read_final_fids) where runs.csv holds another
    count: a long run that evaluated 2000 samples on the way got its FID of 5000 from evaluate.py after it ended."""
    if not final or "n_fake" not in runs:
        return runs
    runs = runs.copy()
    for i, r in runs[runs["n_fake"] != n].iterrows():
        if (r["run"], r["total_steps"]) in final:
            runs.loc[i, ["final_fid", "n_fake"]] = final[(r["run"], r["total_steps"])], n
    return runs


def arm_values(runs, arm, reading, epochs, metric):
    """The metric of each seed of one arm, reading and budget (epochs, to 0.01: WGAN's 5 critic steps
    make fewer G steps in the same epochs; times EPOCHS_MULTIPLE's factor for an arm that has one)."""
    loss, p, n_critic = ARMS[arm]
    epochs = epochs * EPOCHS_MULTIPLE.get(arm, 1)
    rows = runs[(runs["loss"] == loss) & (runs["reading"] == reading) & (runs["n_critic"] == n_critic)
                & np.isclose(runs["epochs"], epochs, atol=0.01)]
    rows = rows[rows["p"] == p] if p is not None else rows
    twice = rows[rows["seed"].duplicated(keep=False)]
    if len(twice):
        raise UserError(f"{arm} ({reading}, {epochs:g} epochs) holds seed {twice['seed'].iloc[0]:g} twice "
                        f"({', '.join(twice['run'].astype(str)) if 'run' in twice else 'two rows'}): a run counts once; "
                        "remove the duplicate row")
    return rows.sort_values("seed")


def untested_contrasts(runs, epochs, metric):
    """'a − b (reading): n_a and n_b runs' for each contrast with runs that contrast_rows leaves out, an arm
    having fewer than two: said, not dropped in silence. A reading with no run in either arm is not listed."""
    out = []
    for name, (reading, pairs) in FAMILIES.items():
        for a, b in pairs:
            n_a, n_b = (len(arm_values(runs, arm, reading, epochs, metric)) for arm in (a, b))
            if min(n_a, n_b) < 2 and n_a + n_b:
                out.append(f"{a} − {b} ({name}, clip {reading}, {epochs:g} epochs): {n_a} and {n_b} runs")
    return out


def one_sample_count(ra, rb, a, b, epochs, metric):
    """Refuse a FID contrast whose runs evaluated different numbers of samples (FID's bias depends on it)."""
    counts = sorted(pd.concat([ra, rb])["n_fake"].dropna().unique()) if metric in FID_METRICS and "n_fake" in ra else []
    if len(counts) > 1:
        raise UserError(f"{a} − {b} at {epochs:g} epochs mixes FIDs of {' and '.join(f'{c:g}' for c in counts)} samples; "
                        "evaluate every run at one count (--final-fids adds a long run's FID of 5000)")


def contrast_rows(runs, epochs, metric, paper_gaps):
    """One row per pre-registered contrast of each family that has two runs in both arms."""
    out = []
    for name, (reading, pairs) in FAMILIES.items():
        family = []
        for a, b in pairs:
            ra, rb = (arm_values(runs, arm, reading, epochs, metric) for arm in (a, b))
            if min(len(ra), len(rb)) < 2:
                continue
            one_sample_count(ra, rb, a, b, epochs, metric)
            va, vb = ra[metric].to_numpy(float), rb[metric].to_numpy(float)
            gap = paper_gaps[a] - paper_gaps[b] if metric in FID_METRICS else np.nan
            test = welch(va, vb)
            power = stats.welch_power_noncentral(gap, va.std(ddof=1), vb.std(ddof=1), len(va), len(vb)) \
                if not np.isnan(gap) else np.nan
            steps = [int(r["total_steps"].iloc[0]) if "total_steps" in r else None for r in (ra, rb)]
            family.append({"family": name, "reading": reading, "metric": metric, "epochs": epochs, "steps": steps[0],
                           "steps_b": steps[1], "a": a, "b": b, "n_a": len(va), "n_b": len(vb),
                           "seeds_a": " ".join(str(int(s)) for s in ra["seed"]),
                           "seeds_b": " ".join(str(int(s)) for s in rb["seed"]),
                           "mean_a": va.mean(), "mean_b": vb.mean(), "sd_a": va.std(ddof=1), "sd_b": vb.std(ddof=1),
                           **test, "paper_gap": gap, "power_at_paper_gap": power,
                           "excludes_zero": not test["ci_low"] <= 0 <= test["ci_high"],
                           "excludes_paper_gap": (not test["ci_low"] <= gap <= test["ci_high"]) if not np.isnan(gap) else None,
                           "verdict": verdict(test["ci_low"], test["ci_high"], gap),
                           "hardware": " / ".join(sorted(pd.concat([ra, rb])["device"].dropna().astype(str).unique()))
                           if "device" in ra else None})
        for row, adjusted in zip(family, holm([r["p_value"] for r in family]) if family else []):
            row["p_holm"] = adjusted
        out += family
    columns = [*CONTRAST_KEY, "family", "steps", "steps_b", "n_a", "n_b", "seeds_a", "seeds_b", "mean_a", "mean_b", "sd_a", "sd_b",
               "mean_diff", "ci_low", "ci_high", "df", "p_value", "p_holm", "paper_gap", "power_at_paper_gap",
               "excludes_zero", "excludes_paper_gap", "verdict", "hardware"]
    return pd.DataFrame(out, columns=columns)


def plot(rows, path):
    """Each contrast's interval beside the paper's gap, one panel per clipping reading on its own scale
    (the weights-only intervals, hundreds of FID wide, would shrink the others to dots): where the
    paper's marker falls outside the bar, this budget excludes the paper's effect."""
    from minkgan import figures  # sets matplotlib's Agg backend
    import matplotlib.pyplot as plt
    readings = list(dict.fromkeys(rows["reading"]))
    sizes = [int((rows["reading"] == r).sum()) for r in readings]
    fig, axes = plt.subplots(len(readings), 1, figsize=(7, 0.6 * sum(sizes) + 1.4 * len(readings)),
                             gridspec_kw={"height_ratios": sizes}, squeeze=False)
    colours = {"all": "tab:blue", "weights": "tab:orange", "none": "tab:green"}
    for ax, reading in zip(axes[:, 0], readings):
        part = rows[rows["reading"] == reading]
        y = np.arange(len(part))[::-1]
        c = colours.get(reading, "0.3")
        for yi, r in zip(y, part.to_dict("records")):
            ax.errorbar(r["mean_diff"], yi, xerr=[[r["mean_diff"] - r["ci_low"]], [r["ci_high"] - r["mean_diff"]]],
                        fmt="o", c=c, capsize=3)
            if not np.isnan(r["paper_gap"]):
                ax.plot(r["paper_gap"], yi, "s", mfc="none", c="tab:red")
        ax.axvline(0, c="0.5", lw=0.8)
        budget = (lambda r: f", {r['epochs']:g} ep") if rows["epochs"].nunique() > 1 else (lambda r: "")
        ax.set_yticks(y, [f"{r['a']} - {r['b']} (n = {r['n_a']}, {r['n_b']}{budget(r)})" for r in part.to_dict("records")],
                      fontsize=8)
        ax.set_title(f"clip {reading}", fontsize=9, loc="left")
        ax.grid(alpha=0.3, axis="x")
    axes[-1, 0].plot([], [], "s", mfc="none", c="tab:red", label="paper's gap (200 epochs)")
    epochs = ", ".join(f"{e:g}" for e in sorted(rows["epochs"].unique()))
    axes[-1, 0].set_xlabel(f"difference of {rows['metric'].iloc[0].replace('_', ' ')} (a - b), Welch 95% interval")
    fig.suptitle(f"Pre-registered contrasts, {epochs} epochs (CIFAR-10 JPEG copy, CPU)", fontsize=9)
    axes[-1, 0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False)
    figures.save_figure(fig, path)


def build_parser():
    ap = OneLineParser(prog="python -m analysis.contrasts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a runs.csv (ablate_p.py --collect) or any CSV of its identity columns and the metric")
    ap.add_argument("--epochs", type=float, nargs="+", default=[2.0],
                    help="the budgets to test (every arm trained this many epochs, times EPOCHS_MULTIPLE's factor)")
    ap.add_argument("--final-fids", default=None,
                    help="analysis/horizon.py's CSV: the final FID of 5000 of long runs that evaluated 2000 on the way "
                         "(default: the horizon.csv beside RUNS, where there is one)")
    ap.add_argument("--metric", default="final_fid", help="the column to compare; the paper's gap applies to FIDs only")
    ap.add_argument("--csv", default=None, help="merge the rows into this CSV (by reading, metric, epochs, a, b)")
    ap.add_argument("--figure", default=None, help="draw the intervals here")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.csv:
        check_merge_target(args.csv, CONTRAST_KEY, "--csv")
    if args.figure:
        check_writable_file(args.figure, "--figure")
    beside = os.path.join(os.path.dirname(os.path.abspath(args.runs)), "horizon.csv")
    args.final_fids = args.final_fids or (beside if os.path.isfile(beside) else None)
    final = read_final_fids(args.final_fids) if args.final_fids else {}
    runs = read_runs(args.runs, args.metric)
    if args.metric == "final_fid":
        runs = with_final_fids(runs, final)
    rows = pd.concat([contrast_rows(runs, e, args.metric, paper_fids()) for e in args.epochs], ignore_index=True)
    for untested in (u for e in args.epochs for u in untested_contrasts(runs, e, args.metric)):
        print(f"not tested, a Welch interval needs two runs an arm: {untested}")
    if not len(rows):
        epochs = " or ".join(f"{e:g}" for e in args.epochs)
        raise UserError(f"no contrast has two completed runs in both arms at {epochs} epochs in {args.runs}")
    shown = ["family", "epochs", "a", "b", "n_a", "n_b", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "paper_gap",
             "power_at_paper_gap", "verdict"]
    print(rows[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.csv:
        merge_csv(args.csv, rows, CONTRAST_KEY)
    if args.figure:
        plot(rows, args.figure)
    return 0

