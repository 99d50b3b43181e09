"""The horizon: how FID, coverage and D's logits move with the training budget, per run, from the
evaluations a long run made on the way (train.py --eval-at) and its metrics.csv.

    python -m analysis.horizon RUNS/folder --final-csv RUNS/fid5000.csv                    # print
    python -m analysis.horizon results/run_logs/folder-7810steps results/run_logs/folder-1562steps \\
        --final-csv results/horizon_fid5000.csv --csv results/horizon.csv --figure results/figures/horizon.png

A row per (run, evaluation): the FID (and KID, precision, recall, density, coverage) of that
evaluation's sample count, and D's regime in the last logged interval at or before its step (the
logit gap between real and fake images, the largest |logit|, the share of clipped parameters at
the bound). `--final-csv` adds the final FID of 5000 against 5000 (evaluate.py --csv) as rows of
their own. The growth of D's largest |logit| is fitted as a power of the epoch (a line in log-log)
over the evaluations from --fit-from epochs on; its value at 200 epochs is an extrapolation.
Runs evaluated only once (the short runs that share a run_logs folder's step count) draw no curve
and are left out.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/horizon.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import io

import numpy as np
import pandas as pd

from minkgan import figures
from minkgan import paper as paper_csv
from minkgan import rundir
from minkgan.utils import (OneLineParser, UserError, check_merge_target, check_writable_file, merge_csv, read_csv_of_ours,
                   run_main)

EVAL_COLUMNS = ["fid", "kid", "precision", "recall", "density", "coverage", "fid_floor"]
REGIME_COLUMNS = ["logit_gap", "logit_absmax", "clip_share"]
KEY = ["run", "total_steps", "step", "n"]
FIT_KEY = ["run", "from_epoch"]
PAPER_EPOCHS = 200


def regime_at(metrics, step):
    """D's regime in the last logged interval that ends at or before `step` (the evaluation's state)."""
    logged = metrics[metrics["step"] <= step]
    if not len(logged):
        return {c: np.nan for c in REGIME_COLUMNS} | {"metrics_step": np.nan}
    last = logged.iloc[-1]
    return {"logit_gap": last["logit_real"] - last["logit_fake"], "logit_absmax": last["logit_absmax"],
            "clip_share": last.get("clip_share", np.nan), "metrics_step": int(last["step"])}


def run_rows(cfg, metrics, evals, run_dir, final):
    """The horizon rows of one run: one per evaluation, and one per final evaluation in `final`."""
    steps_per_epoch = metrics["step"].iloc[-1] / metrics["epoch"].iloc[-1]
    name = f"{cfg['dataset']}/{os.path.basename(os.path.normpath(run_dir))}"
    base = {"run": name, "label": figures.label(cfg), "loss": cfg["loss"],
            "p": cfg["p"] if cfg["loss"] == "minkowski" else None, "n_critic": cfg.get("n_critic"), "seed": cfg["seed"],
            **rundir.reading(cfg), "total_steps": cfg.get("total_steps"), "device": cfg.get("hardware")}
    rows = []
    for source, n in ((evals, cfg.get("eval_n")), (final, 5000)):
        for r in ([] if source is None else source.to_dict("records")):
            rows.append({**base, "step": int(r["step"]), "epoch": round(r["step"] / steps_per_epoch, 3),
                         "n": int(r.get("n_fake", n)), **{c: r.get(c, np.nan) for c in EVAL_COLUMNS},
                         **regime_at(metrics, r["step"])})
    return rows


def final_evaluations(path):
    """{(run folder name, steps): rows} of evaluate.py --csv's rows (the final FID of 5000 against 5000):
    the steps tell a 10-epoch run's final evaluation from a 2-epoch run of the same name."""
    if path is None:
        return {}
    text = read_csv_of_ours(path, ["run", "steps", "fid"], "--final-csv " + path, "pass evaluate.py --csv's output")
    if not text:
        return {}
    table = pd.read_csv(io.StringIO(text)).rename(columns={"steps": "step"})
    return {(os.path.basename(os.path.normpath(run)), int(step)): g for (run, step), g in table.groupby(["run", "step"])}


def curves(folders):
    """The runs of the folders evaluated on the way (two evaluations or more): a run_logs folder
    also holds the short runs of its step count, evaluated once at the end, which draw no curve."""
    runs, once = [], []
    for folder in folders:
        for run in figures.load_runs(folder):
            (runs if run[2] is not None and len(run[2]) > 1 else once).append(run)
    if once:
        print(f"left out {len(once)} run(s) evaluated fewer than twice ({os.path.basename(once[0][3])}, ...)")
    return runs


def logit_growth(rows, fit_from):
    """Per run, the largest |logit| ~ c * epoch^k fitted over the evaluations from `fit_from` epochs
    on: k, the fit's R², and c * 200^k, what the trend says at the paper's 200 epochs."""
    out = []
    for run, g in rows[rows["epoch"] >= fit_from].drop_duplicates(["run", "step"]).groupby("run"):
        if len(g) < 3:
            continue
        x, y = np.log(g["epoch"]), np.log(g["logit_absmax"])
        k, c = np.polyfit(x, y, 1)
        r2 = 1 - ((y - (k * x + c)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        out.append({"run": run, "label": g["label"].iloc[0], "from_epoch": g["epoch"].min(), "to_epoch": g["epoch"].max(),
                    "points": len(g), "exponent": k, "r2": r2, f"logit_absmax_at_{PAPER_EPOCHS}": np.exp(c) * PAPER_EPOCHS ** k})
    return pd.DataFrame(out)


def plot(rows, paper, path):
    """FID, D's logits and coverage against epoch, one line per run; the paper's 200-epoch FIDs at the
    right edge (its protocol; ours is a CPU budget)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = {}
    for label, g in rows.groupby("label", sort=True):
        during = g[g["n"] == g["n"].min()].sort_values("epoch")
        line, = axes[0].plot(during["epoch"], during["fid"], "o-", label=f"{label} (FID {during['n'].iloc[0]})")
        colours[label] = line.get_color()
        final = g[g["n"] == 5000]
        axes[0].plot(final["epoch"], final["fid"], "*", ms=11, c=line.get_color())
        axes[1].plot(during["epoch"], during["logit_absmax"], "o-", c=line.get_color(), label=f"{label}: largest |logit|")
        axes[1].plot(during["epoch"], during["logit_gap"], "s--", c=line.get_color(), alpha=0.6, label=f"{label}: gap")
        axes[2].plot(during["epoch"], during["coverage"], "o-", c=line.get_color(), label=label)
    edge = rows["epoch"].max() * 1.08
    for label, fid in paper.items():
        if label in colours:
            axes[0].plot(edge, fid, "D", mfc="none", c=colours[label])
    axes[0].plot([], [], "*", c="0.3", ms=11, label="FID 5000 vs 5000 at the end")
    axes[0].plot([], [], "D", mfc="none", c="0.3", label=f"paper at {PAPER_EPOCHS} epochs (right edge)")
    axes[0].set(xlabel="epoch", ylabel="FID", title="FID against epoch")
    axes[1].set(xlabel="epoch", ylabel="logit", yscale="log", title="D's logits (last logged interval)")
    axes[2].set(xlabel="epoch", ylabel="coverage", title="coverage (k = 5)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    seeds = ", ".join(str(s) for s in sorted(rows["seed"].unique()))
    fig.suptitle(f"The horizon: CIFAR-10 (JPEG copy), clip 0.01 on every D parameter, seed {seeds}; "
                 f"{' / '.join(sorted(rows['device'].dropna().unique()))}", fontsize=9)
    figures.save_figure(fig, path)


def paper_fids_by_label(rows):
    out = {}
    for label, g in rows.groupby("label"):
        fid = paper_csv.fid(g["loss"].iloc[0], g["p"].iloc[0])
        if fid is not None and "n_critic" not in label:  # WGAN with 1 critic step is not the paper's WGAN
            out[label] = fid
    return out


def build_parser():
    ap = OneLineParser(prog="python -m analysis.horizon", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="folders of run directories (a sweep's <runs>/<dataset>, or run_logs/*)")
    ap.add_argument("--final-csv", default=None, help="evaluate.py --csv rows of the runs' final FID of 5000")
    ap.add_argument("--fit-from", type=float, default=2.0, help="fit the logits' growth from this epoch on")
    ap.add_argument("--csv", default=None, help="merge the rows into this CSV (by run, budget, step and sample count)")
    ap.add_argument("--fit-csv", default=None, help="write the logits' growth fits here")
    ap.add_argument("--figure", default=None, help="draw the curves here")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    for flag, path, key in (("--csv", args.csv, KEY), ("--fit-csv", args.fit_csv, FIT_KEY)):
        if path:
            check_merge_target(path, key, flag)
    if args.figure:
        check_writable_file(args.figure, "--figure")
    if args.final_csv and not os.path.isfile(args.final_csv):
        raise UserError(f"--final-csv {args.final_csv} is not a file; pass evaluate.py --csv's output")
    final = final_evaluations(args.final_csv)
    rows = []
    for cfg, metrics, evals, run_dir in curves(args.folders):
        rows += run_rows(cfg, metrics, evals, run_dir, final.get((os.path.basename(os.path.normpath(run_dir)),
                                                                  int(cfg.get("total_steps") or -1))))
    if not rows:
        raise UserError(f"no run evaluated twice or more in {', '.join(args.folders)}; train with --eval-at or --eval-every")
    table = pd.DataFrame(rows).sort_values(["label", "n", "step"], kind="stable")
    fits = logit_growth(table, args.fit_from)
    print(table[["label", "epoch", "n", "fid", "coverage", "logit_gap", "logit_absmax"]].to_string(index=False, float_format="%.4g"))
    if len(fits):
        print(fits.to_string(index=False, float_format="%.4g"))
    if args.csv:  # the figure then draws every run of the CSV, the runs of earlier calls too
        table = merge_csv(args.csv, table, KEY)
    if args.fit_csv and len(fits):
        merge_csv(args.fit_csv, fits, FIT_KEY)
    if args.figure:
        plot(table, paper_fids_by_label(table), args.figure)
    return 0


if __name__ == "__main__":
    run_main(main)
