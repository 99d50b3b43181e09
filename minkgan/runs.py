"""runs.csv (ablate_p.py --collect's table, one row per run) read in one place: the checked loader and
the filters that decide which runs share a mean. contrasts, p_effect, failures and report.py read it
through here, so a bad file gets one line naming it (and the row) wherever it is read, and two readers
never disagree on which runs are comparable.

Runs share a mean only with runs of the same reading of the clipping (`reading`: what --clip-params
clipped; "none" for an unclipped run, "all" for rows from before the column), the paper's Adam eps (an
empty cell) and float32 (an empty `precision` cell, as in rows from before the flag)."""
import io
import os

import numpy as np
import pandas as pd

from minkgan import data
from minkgan.utils import UserError, is_number, read_csv_of_ours

COLUMNS = ["loss", "p", "seed", "status"]  # what every reader of a runs.csv needs
NUMBERS = ["p", "n_critic", "seed", "epochs", "steps", "total_steps", "adam_eps", "clip", "n_fake", "n_real"]
WORDS = ["final_fid_precision"]  # the one final_ column that holds words: the Inception precision of the final FID
REMEDY = "pass a runs.csv written by ablate_p.py --collect"


def read(path, metric=None, needs=()):
    """Every row of the runs.csv at path, with its `reading` column. Refused with one line (UserError:
    exit 2, nothing written) when the file is missing, not ours (it lacks COLUMNS or the columns a
    reader `needs`), empty, header-only, lacks `metric`, or holds a cell that should be a number and is
    not (naming its line)."""
    if not os.path.isfile(path):
        raise UserError(f"{path} is not a file; {REMEDY}")
    text = read_csv_of_ours(path, [*COLUMNS, *needs], remedy=REMEDY)
    if not text.strip():
        raise UserError(f"{path} is empty; {REMEDY}")
    runs = pd.read_csv(io.StringIO(text))
    if not len(runs):
        raise UserError(f"{path} has a header and no run; run ablate_p.py --collect on a sweep's folder first")
    if metric is not None and metric not in runs:
        raise UserError(f"{path} has no column {metric}; pass --metric one of its final_* or best_* columns")
    check_numbers(runs, path)
    reading = runs["clip_params"].fillna("none") if "clip_params" in runs else pd.Series("all", index=runs.index)
    return runs.assign(reading=reading, p=runs["p"].where(runs["loss"] == "minkowski"))


def number_columns(runs):
    """The columns of a runs.csv that hold numbers: the settings of NUMBERS and every final_/best_ metric
    but WORDS."""
    return [c for c in runs if c in NUMBERS or (c.startswith(("final_", "best_")) and c not in WORDS)]


def check_numbers(runs, path):
    """Refuse a cell of a number column that is neither empty nor a number (a hand edit, a torn write):
    every mean over it would be silently wrong or fail far from the cause."""
    for column in number_columns(runs):
        values = pd.to_numeric(runs[column], errors="coerce")
        bad = values.isna() & runs[column].notna()
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2  # the header is line 1
            raise UserError(f"{path}, line {line}: {column} is {runs[column][bad].iloc[0]!r}, not a number; "
                            "correct or delete that row (ablate_p.py --collect rewrites the rows of the runs it finds)")
        runs[column] = values


def is_completed(row):
    """A row (a dict) of a run that ran to its end: the rows a rerun may not replace with a worse one."""
    return row.get("status") == "completed"


def completed(runs, metric=None):
    """The runs that ran to the end (and have `metric`, when named)."""
    done = runs["status"] == "completed"
    return runs[done & runs[metric].notna()] if metric is not None else runs[done]


def comparable(runs, adam_eps=None):
    """The runs that may share a mean with the paper's: torch's Adam eps (or `adam_eps`: another eps is an
    experiment on the optimiser), trained in float32 (a bfloat16 run is a group of its own) and with a
    float32 final FID (a bfloat16 Inception's is for curves only)."""
    eps = runs["adam_eps"] if "adam_eps" in runs else pd.Series(np.nan, index=runs.index)
    same_eps = eps.isna() if adam_eps is None else np.isclose(eps, float(adam_eps))
    float32 = runs["precision"].isna() if "precision" in runs else True
    float32_fid = runs["final_fid_precision"].fillna("float32") == "float32" if "final_fid_precision" in runs else True
    return runs[same_eps & float32 & float32_fid]


def image_runs(path, epochs, reading="all", adam_eps=None):
    """The completed, comparable CIFAR-10 runs of one budget (epochs, rounded: 157 G steps of WGAN's 5
    critic steps are 1.0051 epochs) and one reading, DCGAN with clip 0.01: the runs of one table. One
    budget must have one FID sample count, or its means would mix protocols."""
    runs = comparable(completed(read(path)), adam_eps)
    runs = runs[runs["dataset"].isin(data.IMAGE_DATASETS) & (runs["epochs"].round() == float(epochs))
                & (runs["reading"] == reading) & (runs["arch"] == "dcgan") & (runs["clip"] == 0.01)]
    if runs["n_fake"].nunique() > 1:
        raise UserError(f"{path} holds {epochs}-epoch runs of {runs['n_fake'].nunique()} FID sample counts; "
                        "give each its own block")
    return runs


# ----------------------------------------------------------------------------- a run folder's logs

LOG_WORDS = ["fid_precision"]  # the one column of a run log (eval.csv's) that holds words, not numbers


def read_log(path, torn_tail="refuse"):
    """A run's metrics.csv or eval.csv, every cell a number (but LOG_WORDS'). A line with another number
    of fields than the header, or a cell that is not a number, is refused with one line naming the file
    and the line; torn_tail="drop" drops it instead where it is the last line (what a live run's append
    in progress looks like to a reader). A log with its header alone is an empty table."""
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        raise UserError(f"{path} is empty, without even its header: delete it, or rerun the run that wrote it")
    header = lines[0].split(",")
    numbers = [i for i, c in enumerate(header) if c not in LOG_WORDS]
    kept = [lines[0]]
    for n, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        bad = len(fields) != len(header) or any(fields[i] and not is_number(fields[i]) for i in numbers)
        if bad and torn_tail == "drop" and n == len(lines):
            break
        if bad:
            raise UserError(f"{path}, line {n}: {line[:40]!r} is not a row of {len(header)} numbers (a torn or edited "
                            "line); delete that line, or resume the run, which cuts its log back to the checkpoint")
        kept.append(line)
    return pd.read_csv(io.StringIO("\n".join(kept) + "\n"))
