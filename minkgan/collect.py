"""Collecting a sweep: one row per run folder (completed, diverged, failed or running) for runs.csv,
the paper tables and toy_table.csv averaged over seeds, the figures, and the run logs copied to
<results>/run_logs, every file merged under a lock (a row the user owns is never dropped).
"""
import glob
import os

import pandas as pd

import losses
from minkgan import data
from minkgan import eval_tables
from minkgan import failure
from minkgan import figures
from minkgan import precision
from minkgan import rundir
from minkgan import runs as runs_csv
from minkgan import settings
from minkgan import sweep
from minkgan import utils
from minkgan.utils import WriteError, read_json

# A runs.csv or toy_table.csv from before `precision` lacks the column (ADDED_KEY): its rows read empty there.
TOY_TABLE_KEY = [*rundir.GROUP_KEY[:-1], "steps"]  # a row of toy_table.csv: a group, its budget named steps there
ADDED_KEY = ["precision"]
# what train.py writes in a run folder but its samples, checkpoints and TensorBoard events: kept in <results>/run_logs
LOGGED_FILES = [f for f in rundir.RUN_FILES if f not in ("samples", "checkpoints", "tensorboard")]


def collect_rows(runs_dir):
    """One row per run directory under runs_dir: its settings, budget, status and metrics."""
    rows = []
    for run_dir in sorted(glob.glob(os.path.join(runs_dir, "*", "*"))):
        name = os.path.relpath(run_dir, runs_dir)
        failed = read_json(os.path.join(run_dir, "failed.json"))
        cfg = read_json(os.path.join(run_dir, "config.json")) or failed
        if cfg is None:
            continue
        summary = run_outcome(run_dir, failed)
        row = {"run": name, "dataset": cfg["dataset"], "loss": cfg["loss"],
               "p": cfg["p"] if cfg["loss"] == "minkowski" else None,
               "n_critic": cfg.get("n_critic") or losses.default_n_critic(cfg["loss"]),
               "adam_eps": non_default_eps(cfg), **rundir.reading(cfg), "precision": non_default_precision(cfg),
               "seed": cfg["seed"],
               "total_steps": summary.get("total_steps", cfg.get("total_steps")),
               "status": summary["status"], "steps": summary.get("step"), "epochs": summary.get("epoch"),
               "n_fake": cfg.get("eval_n"), "n_real": cfg.get("eval_n"),
               "device": cfg.get("hardware", cfg.get("device")), "seconds": summary.get("seconds")}
        row.update({k: v for k, v in summary.items() if k.startswith(("final_", "best_"))
                    and not (k == "final_fid_precision" and v == precision.DEFAULT)})  # empty for float32, as `precision`
        metrics = read_metrics(run_dir)
        row.update(final_regime(metrics))
        if cfg["dataset"] in data.IMAGE_DATASETS:
            row.update(failure.run_failure(metrics, row["total_steps"], row["status"]))
        rows.append(row)
    return pd.DataFrame(rows)


def run_outcome(run_dir, failed):
    """What a run's folder says of its end: a completed or diverged summary.json before a failed.json
    (a stale one, left by a signal that came after the summary), else failed.json, else the summary,
    else running (another shard's run, say) or failed."""
    summary = read_json(os.path.join(run_dir, "summary.json"))
    if summary and summary.get("status") in sweep.FINAL_STATUSES:
        return summary
    return failed or summary or {"status": "running" if rundir.is_training(run_dir) else "failed"}


def read_metrics(run_dir):
    """A run's metrics.csv, or None where it has no row yet."""
    try:
        return pd.read_csv(os.path.join(run_dir, "metrics.csv"))
    except (OSError, pd.errors.EmptyDataError):
        return None


def final_regime(metrics):
    """D's logits in the last logged interval of the run's metrics.csv: the gap between its mean
    logit on real and on fake images, and its largest |logit|. They say which regime the run ended
    in (analysis/alignment.py), and stay in runs.csv after the run folder is gone."""
    try:
        last = metrics.iloc[-1]
        return {"final_logit_gap": last["logit_real"] - last["logit_fake"], "final_logit_absmax": last["logit_absmax"]}
    except (AttributeError, IndexError, KeyError):  # no row logged yet, or an older run
        return {}


def same_reading(reading, row):
    """Whether a run's reading (rundir.reading) is a runs.csv row's, an empty cell matching None."""
    return all((pd.isna(row[c]) and value is None) or value == row[c] for c, value in reading.items())


def failures_from_run_logs(table, results):
    """The failure rule (minkgan/failure.py) applied to every image run of runs.csv that has no value yet,
    from its copy in <results>/run_logs: the runs collected before the rule existed get theirs too."""
    table = table.copy()
    for column in failure.FAILURE_COLUMNS:
        table[column] = table[column] if column in table else None
    table["failed"] = table["failed"].astype(object)
    for i, row in table.iterrows():
        if row["dataset"] not in data.IMAGE_DATASETS or row["failed"] in ("yes", "no"):
            continue
        dataset, name = row["run"].split("/")
        logs = os.path.join(results, "run_logs", f"{dataset}-{int(row['total_steps'])}steps", name)
        cfg = read_json(os.path.join(logs, "config.json"))
        if cfg is None or cfg.get("seed") != row["seed"] or not same_reading(rundir.reading(cfg), row):
            continue  # no copy, or the copy of another run of that name
        found = failure.run_failure(read_metrics(logs), row["total_steps"], row["status"])
        for column, value in found.items():
            table.at[i, column] = value
    return table


def non_default_eps(cfg):
    """Adam's eps where a run changed it, else None (the runs.csv column stays empty for the default)."""
    eps = cfg.get("adam_eps", settings.ADAM_EPS)
    return None if eps == settings.ADAM_EPS else eps


def non_default_precision(cfg):
    """The training precision where a run changed it, else None: runs.csv's column stays empty for float32,
    as in the rows and configs from before --precision."""
    name = cfg.get("precision") or precision.DEFAULT
    return None if name == precision.DEFAULT else name


def float32_runs(rows):
    """The runs the paper tables average (they have no precision column): trained in float32 with float32
    Inception FIDs; a bfloat16 run stays in runs.csv, in a group of its own."""
    return precision.float32_rows(rows, ["precision", "final_fid_precision"], where="runs.csv")


def with_paper_optimizer(rows):
    """The rows the tables average: runs with another Adam eps are an experiment on the optimiser,
    kept in runs.csv but not mixed into the seeds of a loss."""
    return rows[rows["adam_eps"].isna()] if "adam_eps" in rows else rows


IMAGE_FINALS = ["kid", "precision", "recall", "density", "coverage", "fid_floor", "fid_floor_test"]  # from eval.csv
METRICS = {"image": ["final_fid", "best_fid", *(f"final_{m}" for m in IMAGE_FINALS)],
           "toy": ["final_modes", "final_hq_pct", "final_rkl"]}


def with_budgets(rows):
    """A run that failed before it planned its steps gets the budget of its group's other runs, when
    they agree on one, so that it is counted beside them."""
    group = rundir.GROUP_KEY[:-1]
    known = rows.dropna(subset=["total_steps"]).groupby(group, dropna=False)
    single = known["total_steps"].agg(lambda b: b.iloc[0] if b.nunique() == 1 else None)
    def budget(row):
        if pd.notna(row["total_steps"]):
            return row["total_steps"]
        return single.get(tuple(row[k] for k in group))
    return rows.assign(total_steps=[budget(r) for _, r in rows.iterrows()]) if len(rows) else rows


def aggregate(rows, metrics):
    """Mean, std and count of the seeds that have a value, for each metric per (dataset, loss, p,
    n_critic, budget), with the budget beside them (std is NaN for one value)."""
    rows = rows.assign(precision=rows["precision"] if "precision" in rows else None)
    rows = with_budgets(rows.assign(p=rows["p"].fillna(-1), n_critic=rows["n_critic"].fillna(-1),
                                    clip_params=rows["clip_params"].astype(object).fillna(""),
                                    precision=rows["precision"].astype(object).fillna("")))
    out = []
    for key, group in rows.groupby(rundir.GROUP_KEY, sort=True, dropna=False):
        done = group[group["status"] == "completed"]
        row = dict(zip(rundir.GROUP_KEY, key))
        row["p"] = None if row["p"] == -1 else row["p"]
        row["n_critic"] = None if row["n_critic"] == -1 else int(row["n_critic"])
        row["clip_params"] = row["clip_params"] or None
        row["precision"] = row["precision"] or None
        del row["total_steps"]
        for m in metrics:  # a metric can be undefined for a run (reverse KL with no mode captured)
            values = (done[m] if m in done else pd.Series(dtype=float)).dropna()
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = values.mean(), values.std(ddof=1), len(values)
        row.update(seeds=len(group), samples=group["n_fake"].max(), completed=len(done), diverged=int((group["status"] == "diverged").sum()),
                   failed=int(group["status"].isin(["failed", "interrupted"]).sum()),
                   steps=int(key[-1]) if pd.notna(key[-1]) else None,
                   epochs=round(float(group["epochs"].max()), 2) if group["epochs"].notna().any() else None,
                   device=group["device"].iloc[0])
        out.append(row)
    return pd.DataFrame(out)


def paper_tables(images):
    """eval_tables.build_tables on the runs' final metrics, with the best FIDs (mean, std) beside them.
    Runs evaluated before a metric existed have no value for it (NaN)."""

    finals = {m: images[f"final_{m}"] if f"final_{m}" in images else float("nan") for m in IMAGE_FINALS}
    final = eval_tables.build_tables(images.assign(fid=images["final_fid"], **finals))
    best = eval_tables.build_tables(images.assign(fid=images["best_fid"], **finals))
    for table, best_table in zip(final, best):
        at = table.columns.get_loc("fid_std") + 1
        table.insert(at, "best_fid_std", best_table["fid_std"])
        table.insert(at, "best_fid_mean", best_table["fid_mean"])
    return final


def any_completed(row):
    return (row.get("completed") or 0) > 0


def without_stale_failures(table, key, budget, good):
    """Drop the rows of runs that failed before they had a budget (a crash at start-up) once their
    identity (key, without the budget) has another row: a rerun of that run replaced them. A table
    from before an ADDED_KEY column is grouped as if its cells were empty (float32)."""
    table = table.assign(**{c: table[c] if c in table else None for c in ADDED_KEY})
    others = table.groupby(key, dropna=False)[budget].transform("size") > 1
    stale = table[budget].isna() & others & ~table.apply(good, axis=1)
    return table[~stale]


def merge_run_rows(rows, results):
    """<results>/runs.csv: one row per run identity (rundir.RUN_KEY), merged into what is there; returns
    every row it holds, this sweep's and earlier ones'."""
    def arrange(table):
        table = without_stale_failures(table, rundir.RUN_KEY[:-1], "total_steps", runs_csv.is_completed)
        if table["dataset"].isin(data.IMAGE_DATASETS).any():
            table = failures_from_run_logs(table, results)
        return table.sort_values(["dataset", "loss", "p", "n_critic", "seed"], kind="stable")
    return utils.merge_csv(os.path.join(results, "runs.csv"), rows, rundir.RUN_KEY, good=runs_csv.is_completed, arrange=arrange,
                           added=ADDED_KEY)


def merge_toy_table(table, path):
    def arrange(merged):
        merged = without_stale_failures(merged, rundir.GROUP_KEY[:-1], "steps", any_completed)
        return merged.sort_values(["dataset", "loss", "p"], kind="stable")
    utils.merge_csv(path, table, TOY_TABLE_KEY, good=any_completed, arrange=arrange, added=ADDED_KEY)


def write_tables(rows, results):
    """Merge the runs into <results>/runs.csv, then the tables of every run there into
    toy_table.csv (2-D runs) and table2.csv, table3.csv (images, beside the paper): rows this sweep
    did not touch are kept, and a group whose runs all failed never replaces a good row."""
    rows = merge_run_rows(rows, results)
    written = [os.path.join(results, "runs.csv")]
    others = len(rows) - len(with_paper_optimizer(rows))
    if others:
        print(f"{others} run(s) with a non-default --adam-eps are in runs.csv only, not in the tables")
    rows = with_paper_optimizer(rows)
    toy = rows[rows["dataset"].isin(data.TOY_DATASETS)]
    if len(toy):
        path = os.path.join(results, "toy_table.csv")
        merge_toy_table(aggregate(toy, METRICS["toy"]), path)
        written.append(path)
    images = float32_runs(rows[rows["dataset"].isin(data.IMAGE_DATASETS) & (rows["status"] == "completed")])
    if len(images):
        for name, table in zip(("table2.csv", "table3.csv"), paper_tables(images)):
            eval_tables.merge_paper_table(os.path.join(results, name), table)
            written.append(os.path.join(results, name))
    return written


def toy_groups_elsewhere(rows, dataset, results):
    """The groups of toy_table.csv on a 2-D dataset that no run of rows belongs to (its rows may
    predate runs.csv's 2-D rows, or come from a folder gone with its machine): the dataset's figures
    show them, so a figure of this folder's runs must not replace them."""
    path = os.path.join(results, "toy_table.csv")
    if dataset not in data.TOY_DATASETS or not os.path.isfile(path):
        return []
    table = pd.read_csv(path)  # written by write_tables just before
    here = {utils.row_identity(r, rundir.GROUP_KEY) for r in rows[rows["dataset"] == dataset].to_dict("records")}
    table = table[table["dataset"] == dataset].to_dict("records")
    return sorted(f"the {r['loss']} group of toy_table.csv ({r['steps']:g} steps)" for r in table
                  if utils.row_identity(r, TOY_TABLE_KEY) not in here)


def write_figures(rows, runs_dir, results):
    """The figures of each dataset with a completed run (a sweep whose runs all failed keeps the old
    ones). Figures that show runs this folder lacks (collected from another folder or machine into
    the same results, or of another budget under the same name) are kept too: a figure of fewer
    runs never replaces them."""
    written = []
    merged = pd.read_csv(os.path.join(results, "runs.csv"))
    here = {utils.row_identity(r, rundir.RUN_KEY) for r in rows.to_dict("records")}  # a run of another budget is another run
    for dataset in sorted(rows.loc[rows["status"] == "completed", "dataset"].unique()):
        done = merged[(merged["dataset"] == dataset) & (merged["status"] == "completed")].to_dict("records")
        elsewhere = sorted(f"{r['run']} ({r['total_steps']:g} steps)" for r in done
                           if utils.row_identity(r, rundir.RUN_KEY) not in here)
        elsewhere += toy_groups_elsewhere(rows, dataset, results)
        if elsewhere:
            print(f"kept the {dataset}- figures in {results}: they show {len(elsewhere)} run(s) or 2-D group(s) that {runs_dir} "
                  f"lacks ({elsewhere[0]}, ...); analysis/figures.py {os.path.join(runs_dir, dataset)} draws this folder's")
            continue
        written += figures.make_figures(os.path.join(runs_dir, dataset), os.path.join(results, "figures"),
                                        prefix=f"{dataset}-")
    return written


def mirror_run_logs(rows, runs_dir, results):
    """Copy each completed run's logs (LOGGED_FILES, a few kB, and an image run's last sample grid) to
    <results>/run_logs/<dataset>-<total steps>steps/<run>/, where analysis/figures.py can draw them again: a
    run folder, with its checkpoints, stays on the machine that trained it. A completed run replaces
    the copy of its own name and budget, whole (utils.replace_folder: the copy is complete or absent,
    never partial); other runs' copies stay. Returns the folders written."""
    written = set()
    for row in rows[rows["status"] == "completed"].to_dict("records"):
        run_dir = os.path.join(runs_dir, row["run"])
        dataset, name = row["run"].split("/")
        folder = os.path.join(results, "run_logs", f"{dataset}-{int(row['total_steps'])}steps")
        files = [os.path.join(run_dir, f) for f in LOGGED_FILES if os.path.isfile(os.path.join(run_dir, f))]
        if dataset in data.IMAGE_DATASETS:  # the final sample grid, one small PNG (a 2-D scatter is larger)
            files += sorted(glob.glob(os.path.join(run_dir, "samples", "step*.png")))[-1:]
        utils.replace_folder(os.path.join(folder, name), files)
        written.add(folder)
    return sorted(written)


def write_results(rows, args):
    """The tables, figures and run logs of the collected rows; returns (the paths written, the
    WriteError that stopped them or None): a full disk leaves the sweep's summary still to print."""
    written = []
    try:
        written += write_tables(rows, args.results)
        written += write_figures(rows, args.runs, args.results)
        written += mirror_run_logs(rows, args.runs, args.results)
    except WriteError as e:
        return written, e
    return written, None

