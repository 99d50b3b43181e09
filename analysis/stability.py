"""Claim (c) without scale: how much D's gradient norm and the losses vary over an epoch, relative
to their size (the coefficient of variation), per run, from the runs' metrics.csv.

    python -m analysis.stability results/run_logs/folder-1562steps results/run_logs/folder-313steps
    python -m analysis.stability RUNS/folder --csv results/stability.csv && python -m analysis.contrasts results/stability.csv --metric cv_grad_norm_d

The Minkowski losses and their D gradients are small ((1/p)|D - t|^p <= 1/p, a factor 2^-(p+1) on
the gradient), so their curves look flat beside GAN's whatever the dynamics; the coefficient of
variation (SD over |mean| of the logged values) divides that scale out. Each logged value is
already a mean over --log-every steps, so this is the variation between intervals.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/stability.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import glob

import numpy as np
import pandas as pd

from minkgan import rundir
from minkgan import runs as runs_csv
from minkgan.utils import OneLineParser, UserError, check_merge_target, merge_csv, read_json, run_main

SERIES = ["grad_norm_d", "loss_d", "loss_g"]
KEY = ["run", "total_steps", "from_epoch", "to_epoch"]


def coefficient_of_variation(values):
    values = np.asarray(values, float)
    return values.std(ddof=1) / abs(values.mean()) if len(values) > 1 and values.mean() != 0 else np.nan


def run_row(run_dir, from_epoch, to_epoch):
    """A run's identity (the columns analysis/contrasts.py reads) and the CV of each SERIES over the logged
    intervals that end in (from_epoch, to_epoch]; None for a run without logs or summary."""
    cfg, summary = rundir.read_config(run_dir), read_json(os.path.join(run_dir, "summary.json"))
    if cfg is None or summary is None or not os.path.isfile(os.path.join(run_dir, "metrics.csv")):
        return None
    metrics = runs_csv.read_log(os.path.join(run_dir, "metrics.csv"))
    window = metrics[(metrics["epoch"] > from_epoch) & (metrics["epoch"] <= to_epoch + 1e-9)]
    row = {"run": f"{cfg['dataset']}/{os.path.basename(os.path.normpath(run_dir))}", "dataset": cfg["dataset"],
           "loss": cfg["loss"], "p": cfg["p"] if cfg["loss"] == "minkowski" else None, "n_critic": cfg.get("n_critic"),
           **rundir.reading(cfg), "seed": cfg["seed"], "status": summary.get("status"),
           "epochs": summary.get("epoch"), "total_steps": summary.get("total_steps"),
           "from_epoch": from_epoch, "to_epoch": to_epoch, "intervals": len(window), "device": cfg.get("hardware")}
    row.update({f"cv_{s}": coefficient_of_variation(window[s]) for s in SERIES})
    return row


def build_parser():
    ap = OneLineParser(prog="python -m analysis.stability", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="folders of run directories (a sweep's <runs>/<dataset>, or run_logs/*)")
    ap.add_argument("--from-epoch", type=float, default=1.0, help="the window starts after this epoch")
    ap.add_argument("--to-epoch", type=float, default=2.0, help="and ends at this one")
    ap.add_argument("--csv", default=None, help="merge the rows into this CSV (by run, budget and window)")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.from_epoch < args.to_epoch:
        raise UserError(f"--from-epoch {args.from_epoch:g} must be below --to-epoch {args.to_epoch:g}")
    for folder in args.folders:
        if not os.path.isdir(folder):
            raise UserError(f"{folder} is not a folder of run directories; pass a sweep's <runs>/<dataset> or run_logs/*")
    if args.csv:
        check_merge_target(args.csv, KEY, "--csv")
    run_dirs = sorted(os.path.dirname(p) for f in args.folders for p in glob.glob(os.path.join(f, "*", "config.json")))
    rows = [r for r in (run_row(d, args.from_epoch, args.to_epoch) for d in run_dirs) if r and r["intervals"] > 1]
    if not rows:
        raise UserError(f"no run with two logged intervals between epochs {args.from_epoch:g} and {args.to_epoch:g} "
                        f"in {', '.join(args.folders)}")
    table = pd.DataFrame(rows)
    print(table[["run", "seed", "intervals", *(f"cv_{s}" for s in SERIES)]].to_string(index=False, float_format="%.3f"))
    if args.csv:
        merge_csv(args.csv, table, KEY)
    return 0


if __name__ == "__main__":
    run_main(main)
