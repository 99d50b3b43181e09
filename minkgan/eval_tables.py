"""The paper's Table 2 and Table 3 beside ours, from the rows of a fid.csv: one row per loss (and p)
and budget, our mean and SD over seeds (float32 Inception only), each with the budget it was trained at.
"""
import io
import math
import os

import numpy as np
import pandas as pd

import losses

from minkgan import paper as paper_csv
from minkgan import precision as precisions
from minkgan import rundir
from minkgan.metrics import PRDC_COLUMNS
from minkgan.paper import TABLE2_LOSSES
from minkgan.utils import UserError, merge_csv, read_csv_of_ours

FLOOR_COLUMNS = ["fid_floor", "fid_floor_test"]  # real against real at a count: no generator scores below
TABLE_MEANS = ["fid_floor", "fid_floor_test", "kid_mean", *(f"{m}_mean" for m in PRDC_COLUMNS)]  # after fid_std


def _budget(group):
    def joined(col):
        vals = [v for v in pd.unique(group[col]) if not (isinstance(v, float) and math.isnan(v))]
        return "/".join(str(v) for v in vals)
    return {"epochs": joined("epochs"), "steps": joined("steps"), "n_fake": joined("n_fake"),
            "n_real": joined("n_real"), "device": joined("device")}


def _ours(rows):
    """One row per (dataset, loss, p, budget): mean/std of FID, the mean of the other metrics over
    seeds, and the FID floor (one value per n_real, so its mean is that value)."""
    if rows is None or len(rows) == 0:
        return pd.DataFrame(columns=["loss", "p", "n_critic", *rundir.READING_COLUMNS, "dataset", "fid_mean", "fid_std", *TABLE_MEANS, "seeds",
                                     "epochs", "steps", "n_fake", "n_real", "device"])
    df = pd.DataFrame(rows).copy()
    for col in ("dataset", "p", "n_critic", *rundir.READING_COLUMNS, "epochs", "steps", "n_fake", "n_real", "kid", *PRDC_COLUMNS, *FLOOR_COLUMNS, "device"):
        if col not in df:
            df[col] = np.nan
    if "run" in df:
        # the latest evaluation of each run at each budget, a run being its resolved folder (evaluate.py c1,
        # then evaluate.py /abs/path/c1, is one run); a run folder's name comes back for another budget
        # (1 and 2 epochs of minkowski-p4-seed0 are two runs)
        df["resolved"] = df["run"].astype(str).map(os.path.realpath)
        df = df.drop_duplicates(["resolved", "steps", "n_fake", "n_real"], keep="last")
    df["p"] = np.where(df["loss"] == "minkowski", pd.to_numeric(df["p"], errors="coerce"), np.nan)
    df["n_real"] = df["n_real"].astype(str)
    out = []
    keys = ["dataset", "loss", "p", "n_critic", *rundir.READING_COLUMNS, "epochs", "steps", "n_fake", "n_real"]
    for _, g in df.groupby(keys, dropna=False, sort=False):
        refuse_a_seed_twice(g)
        fid = pd.to_numeric(g["fid"], errors="coerce")
        means = {col: pd.to_numeric(g[col.removesuffix("_mean")], errors="coerce").mean() for col in TABLE_MEANS}
        out.append({"loss": g["loss"].iloc[0], "p": g["p"].iloc[0], "n_critic": g["n_critic"].iloc[0],
                    **{k: g[k].iloc[0] for k in rundir.READING_COLUMNS}, "dataset": g["dataset"].iloc[0],
                    "fid_mean": fid.mean(), "fid_std": fid.std(ddof=1) if len(fid) > 1 else np.nan,
                    **means, "seeds": len(g), **_budget(g)})
    return pd.DataFrame(out)


def refuse_a_seed_twice(group):
    """Two rows of one seed in a group are one run listed twice (or the same run trained twice): counted
    twice they would be two seeds with the SD of a copy. One line names them."""
    if "seed" not in group:
        return
    twice = group[group["seed"].duplicated(keep=False)]
    if len(twice):
        runs = ", ".join(twice["run"].astype(str)) if "run" in twice else "two rows"
        raise UserError(f"{twice['loss'].iloc[0]} seed {twice['seed'].iloc[0]} has two rows at one budget ({runs}): "
                        f"a run counts once; remove the duplicate row from the CSV")


def build_tables(fid_rows, paper=None):
    """(table2, table3) DataFrames: the paper's FIDs beside ours (mean, std over seeds, budget).

    fid_rows: rows of results/fid.csv (a DataFrame or a list of dicts); paper: the rows of
    results/paper.csv (default: that file). Table 2: gan, wgan, minkowski p=4 (the paper's), then
    nsgan, wgan-gp, lsgan, hinge (ours only). Table 3: minkowski for every p of the paper or ours.
    """
    paper = paper_csv.table() if paper is None else pd.DataFrame(paper)
    ours = _ours(fid_rows)
    p2 = paper[paper["table"] == 2].rename(columns={"fid": "paper_fid"})[["loss", "p", "paper_fid"]]
    p3 = paper[paper["table"] == 3].rename(columns={"fid": "paper_fid"})[["loss", "p", "paper_fid"]]

    t2_ours = ours[ours["loss"].isin(TABLE2_LOSSES) & ((ours["loss"] != "minkowski") | (ours["p"] == 4))]
    t2 = p2.merge(t2_ours, on=["loss", "p"], how="outer")
    t2.loc[~t2.apply(paper_protocol, axis=1), "paper_fid"] = np.nan  # e.g. WGAN with 1 critic step: not the paper's
    extra = pd.DataFrame({"loss": [l for l in TABLE2_LOSSES if l not in set(t2["loss"])]})
    t2 = pd.concat([t2, extra.assign(p=np.nan)], ignore_index=True) if len(extra) else t2
    t2["order"] = t2["loss"].map({l: i for i, l in enumerate(TABLE2_LOSSES)})
    t2 = t2.sort_values(["order", "p"], kind="stable").drop(columns="order").reset_index(drop=True)

    t3_ours = ours[ours["loss"] == "minkowski"]
    t3 = p3.merge(t3_ours, on=["loss", "p"], how="outer").sort_values("p", kind="stable").reset_index(drop=True)
    cols = ["loss", "p", "n_critic", *rundir.READING_COLUMNS, "paper_fid", "fid_mean", "fid_std", *TABLE_MEANS, "seeds",
            "dataset",
            "epochs", "steps", "n_fake", "n_real", "device", "note"]
    return t2.assign(note=t2.apply(budget_note, axis=1))[cols], t3.assign(note=t3.apply(budget_note, axis=1))[cols]


PAPER_PROTOCOL = {"dataset": paper_csv.TABLE1["dataset"], "epochs": paper_csv.TABLE1["epochs"], "n_fake": 5000,
                  "n_real": 5000}  # Table 1 and section 4


def budget_note(row):
    """How a row's budget differs from the paper's protocol, so that no reduced-budget number
    reads as the paper's: 'reduced budget, not the paper's protocol: 1 epoch (paper 200), ...'."""
    if pd.isna(row.get("fid_mean")):
        return "not measured at any budget yet"
    differences = []
    if row["dataset"] != PAPER_PROTOCOL["dataset"]:
        differences.append(f"{row['dataset']} images, not torchvision's CIFAR-10")
    for column, what in (("epochs", "epochs"), ("n_fake", "generated samples"), ("n_real", "real images")):
        values = {float(v) for v in str(row[column]).split("/") if v not in ("", "nan", "all")}
        if values != {float(PAPER_PROTOCOL[column])}:
            differences.append(f"{row[column]} {what} (paper {PAPER_PROTOCOL[column]})")
    if row.get("clip_params") == "weights":
        differences.append("only D's conv and linear weights clipped (--clip-params weights)")
    if not differences:
        return "the paper's protocol"
    return "reduced budget, not the paper's protocol: " + ", ".join(differences)


def paper_protocol(row):
    """A row the paper's number applies to: the loss's own n_critic (or none recorded)."""
    return pd.isna(row.get("n_critic")) or int(row["n_critic"]) == losses.default_n_critic(row["loss"])


PAPER_TABLE_KEY = ["loss", "p", "n_critic", *rundir.READING_COLUMNS, "dataset", "epochs", "steps", "n_fake", "n_real"]


def has_fid(row):
    return pd.notna(row.get("fid_mean"))


def merge_paper_table(path, table):
    """Merge a table of build_tables into the one at path (utils.merge_csv): rows of other budgets
    or datasets are kept, a row without our FID never replaces one with it, and the paper-only row
    of a (loss, p) goes once that (loss, p) has a measured row."""
    def arrange(merged):
        measured = {(r["loss"], p_key(r["p"])) for r in merged.to_dict("records") if has_fid(r)}
        keep = [has_fid(r) or (r["loss"], p_key(r["p"])) not in measured for r in merged.to_dict("records")]
        merged = merged[keep]
        order = merged["loss"].map({l: i for i, l in enumerate(TABLE2_LOSSES)})
        return merged.assign(_order=order).sort_values(["_order", "p"], kind="stable").drop(columns="_order")
    return merge_csv(path, table, PAPER_TABLE_KEY, good=has_fid, arrange=arrange)


def p_key(p):
    """p as a comparable value: NaN (no p) is None."""
    return None if pd.isna(p) else float(p)


def write_tables(fid_csv, out_dir, log=print):
    """table2.csv and table3.csv in out_dir from the rows of fid_csv, merged into what is there."""
    if not os.path.isfile(fid_csv):
        raise UserError(f"{fid_csv} does not exist; evaluate some runs first")
    text = read_csv_of_ours(fid_csv, ["loss", "fid"], remedy="name evaluate.py's fid.csv with --csv")
    if not text:
        raise UserError(f"{fid_csv} is empty; evaluate some runs into it first (evaluate.py RUN_DIR --csv {fid_csv})")
    rows = pd.read_csv(io.StringIO(text))
    rows = precisions.float32_rows(rows, where=fid_csv, log=log)
    tables = []
    for name, table in zip(("table2", "table3"), build_tables(rows)):
        path = os.path.join(out_dir, f"{name}.csv")
        tables.append(merge_paper_table(path, table))
        log(f"{path}:\n{tables[-1].to_string(index=False)}")
    return tables


