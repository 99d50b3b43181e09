"""Sweep the Minkowski exponent p (the paper's Table 3) and the baselines (Table 2) in one call.

    python ablate_p.py                                   # p = 1..8, CIFAR-10, the paper's settings
    python ablate_p.py --losses gan wgan minkowski --p 4 --seeds 0 1 2 --epochs 20
    python ablate_p.py --dataset ring8 grid25 --losses all --seeds 0 1 2 --steps 10000 --jobs 2
    python ablate_p.py --shard 3/10 ...                  # one share of the runs (Slurm: ablate_p.sbatch)
    python ablate_p.py --collect --runs runs/sweep       # merge finished runs into the tables

Every run is a `train.py` process in <runs>/<dataset>/<loss>[-p<p>]-seed<s> with `--resume`, so a finished
run is skipped, an interrupted one continues (one without a checkpoint starts again), and a failed
or diverged one is recorded and the sweep goes on. Each run evaluates itself (FID, KID, precision,
recall, density, coverage and the FID floor, or modes for 2-D data) every --eval-every steps and at
its end; its summary.json holds the final and best values, which --collect reads. Collecting also copies each completed run's logs
(config, summary, metrics and evaluations; no samples or checkpoints) to
<results>/run_logs/<dataset>-<steps>steps/<run>, so `analysis/figures.py` can draw its curves after the run
folder is gone.
The exit code is 0 only when every run of the sweep (or shard) completed.
"""
import contextlib
import ctypes
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from minkgan import data
from minkgan import figures
import losses
from minkgan import failure, paths, precision, rundir
from minkgan import runs as runs_csv
from minkgan import settings
from minkgan import utils
from minkgan.utils import (HelpFormatter, OneLineParser, UserError, WriteError, atomic_write_text, check_merge_target,
                   check_writable_folder, read_json, run_main)

# A run's identity in the tables: a rerun of the same (dataset, loss, p, n_critic, Adam eps, reading, precision,
# seed, budget) replaces its row. adam_eps and precision are empty where they are the defaults, so rows from before
# they were recorded keep theirs (a runs.csv or toy_table.csv from before `precision` lacks the column: ADDED_KEY).
RUN_KEY = ["dataset", "loss", "p", "n_critic", "adam_eps", *rundir.READING_COLUMNS, "precision", "seed", "total_steps"]
GROUP_KEY = ["dataset", "loss", "p", "n_critic", *rundir.READING_COLUMNS, "precision", "total_steps"]  # seeds averaged
TOY_TABLE_KEY = [*GROUP_KEY[:-1], "steps"]  # a row of toy_table.csv: a group, its budget named steps there
ADDED_KEY = ["precision"]
# what train.py writes in a run folder but its samples, checkpoints and TensorBoard events: kept in <results>/run_logs
LOGGED_FILES = [f for f in rundir.RUN_FILES if f not in ("samples", "checkpoints", "tensorboard")]


# train.py flags that name a run: the sweep sets them for each run, so passing them through is an error
SWEEP_OWNS = {"--out": "--runs (each run trains in <runs>/<dataset>/<run name>)",
              "--resume": "nothing: a sweep always resumes its runs",
              "--overwrite": "nothing: delete a run's directory to train it again",
              "--seed": "--seeds", "--loss": "--losses", "--p": "--p", "--dataset": "--dataset",
              "--eval-every": "--eval-every"}
assert list(SWEEP_OWNS) == settings.SET_BY_SWEEP  # train.py --help says which flags a sweep forwards


def forwarded_flags():
    """The train.py flags a sweep passes through to every run: all but those it sets itself."""
    return [o for o in settings.build_parser()._option_string_actions if o.startswith("--") and o != "--help"
            and o not in SWEEP_OWNS]


def build_parser():
    epilog = ("Any other flag goes through to every run's train.py: " + " ".join(forwarded_flags()) +
              " (python train.py --help).")
    ap = OneLineParser(prog="ablate_p.py", description=__doc__, epilog=epilog, allow_abbrev=False,
                       formatter_class=HelpFormatter)
    a = ap.add_argument
    a("--p", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8],
      help=f"Minkowski exponents (reals from 1 to {settings.MAX_P}: beyond, float32 gradients underflow)")
    a("--losses", nargs="+", default=["minkowski"], help=f"losses to sweep, or 'all': {', '.join(losses.LOSSES)}")
    a("--seeds", type=int, nargs="+", default=[0])
    a("--dataset", nargs="+", default=["cifar10"], help=f"one or more of {', '.join(data.DATASETS)}")
    a("--runs", default=os.path.join("runs", "sweep"), help="the sweep's folder: <runs>/<dataset>/<run>")
    a("--jobs", type=int, default=1, help="trainings at once (small models leave a GPU mostly idle)")
    a("--shard", default=None, help="K/N: run only the K-th of N shares (K from 0); default $SLURM_ARRAY_TASK_ID/N")
    a("--eval-every", type=int, default=2000, help="evaluate each run every N steps and at its end")
    a("--collect", action="store_true", help="only merge the run directories into the tables")
    a("--results", default=None, help="where the tables and figures go (merged into what is there); "
      "default <runs>/results. The repository's results/ changes only when named here")
    a("--dry-run", action="store_true", help="print the planned runs and exit")
    return ap


def parse(argv):
    """(sweep options, the train.py flags to pass through)."""
    args, passthrough = build_parser().parse_known_args(argv)
    check_forwarded(passthrough)
    names = list(losses.LOSSES) if args.losses == ["all"] else args.losses
    for name in names:
        if name not in losses.LOSSES:
            raise UserError(f"unknown loss {name!r} in --losses; choose from {', '.join(losses.LOSSES)} or 'all'")
    args.losses = names
    for p in args.p:
        settings.check_p(p)
    settings.check_seeds(args.seeds, "--seeds must be integers")
    for dataset in args.dataset:
        if dataset not in data.DATASETS:
            raise UserError(f"unknown --dataset {dataset!r}; choose one of {', '.join(data.DATASETS)}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    args.shard = parse_shard(args.shard)
    args.results = args.results or os.path.join(args.runs, "results")
    return args, passthrough


def check_forwarded(passthrough):
    """A forwarded flag that names a run (SWEEP_OWNS), even abbreviated as argparse allows, is an error."""
    options = settings.build_parser()._option_string_actions
    for token in passthrough:
        name = token.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        matches = [o for o in options if o.startswith(name)]
        name = name if name in options else (matches[0] if len(matches) == 1 else name)
        if name in SWEEP_OWNS:
            raise UserError(f"{token} is set by the sweep for each run; use ablate_p.py's {SWEEP_OWNS[name]}")


def parse_shard(text):
    """'K/N' -> (K, N); with no --shard, Slurm's array index and $SHARDS (or (0, 1))."""
    if text is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        text = f"{os.environ['SLURM_ARRAY_TASK_ID']}/{os.environ.get('SHARDS', os.environ.get('SLURM_ARRAY_TASK_COUNT', 1))}"
    if text is None:
        return 0, 1
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like K/N, e.g. 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise UserError(f"--shard {text}: K must be in 0..N-1")
    return k, n


def plan(args, passthrough):
    """Every run of the sweep as (name, train.py argv, settings), in a fixed order."""
    runs = []
    flags = settings.build_parser().parse_known_args(passthrough)[0]  # a non-default n_critic or eps names the run
    n_critic = flags.n_critic
    for dataset in args.dataset:
        for loss in args.losses:
            for p in (args.p if loss == "minkowski" else [None]):
                for seed in args.seeds:
                    run = settings.run_name(loss, p, n_critic, seed, flags.adam_eps, flags.clip, flags.clip_params, dataset,
                                         flags.precision)
                    name = f"{dataset}/{run}"
                    argv = ["--loss", loss, "--dataset", dataset, "--seed", str(seed), "--out",
                            os.path.join(args.runs, name), "--eval-every", str(args.eval_every), "--resume"]
                    argv += (["--p", f"{p:g}"] if p is not None else []) + passthrough
                    runs.append((name, argv, {"dataset": dataset, "loss": loss, "p": p, "seed": seed,
                                              "n_critic": n_critic or losses.default_n_critic(loss),
                                              "adam_eps": flags.adam_eps}))
    return runs


def shard(runs, k, n):
    """The K-th of N interleaved shares: every run in exactly one share, the shares balanced."""
    return runs[k::n]


FINAL_STATUSES = ("completed", "diverged")  # done: neither a late signal nor a stale failed.json undoes them


def run_status(run_dir):
    summary = read_json(os.path.join(run_dir, "summary.json"))
    return summary["status"] if summary else None


def remove_stale_failure(failed_json):
    """Delete the failed.json of a run that is done after all (a SIGTERM that came after its summary)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(failed_json)


PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid):
    """For a child, between fork and exec: SIGTERM when the sweep dies (Linux's PR_SET_PDEATHSIG;
    train.py then checkpoints and stops as interrupted), or exit now if it already has. libc is
    loaded before the fork: loading it in the child could deadlock."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(1)


class Children:
    """The sweep's running train.py processes. Each has its own process group (a terminal's Ctrl-C
    reaches only the sweep) and dies with the sweep; stop() asks them all to stop (SIGTERM: they
    checkpoint and exit as interrupted) and makes start() refuse new runs."""

    def __init__(self):
        self.lock, self.running, self.stopped = threading.Lock(), set(), False

    def start(self, cmd, **kwargs):
        """Popen(cmd), or None once the sweep is stopping."""
        with self.lock:
            if self.stopped:
                return None
            parent = os.getpid()
            proc = subprocess.Popen(cmd, process_group=0, preexec_fn=lambda: die_with_parent(parent), **kwargs)
            self.running.add(proc)
            return proc

    def wait(self, proc):
        """(exit code, what it wrote to its stderr pipe) of a started process, once it has ended."""
        _, errors = proc.communicate()
        with self.lock:
            self.running.discard(proc)
        return proc.returncode, errors or ""

    def stop(self, *_signal):
        """A signal handler: runs in the main thread, which never holds self.lock."""
        with self.lock:
            self.stopped = True
            for proc in self.running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)


def train_one(name, argv, settings, runs_dir, threads, children):
    """One train.py process, its output in <runs>/logs/<name>.log; returns (name, its final status,
    a note) ("not started" when the sweep was stopped first).

    A run that ends without a status of its own (a crash, bad input, a full disk) is failed: the note
    starts with the `error:` line train.py printed, and failed.json records it with the run's
    settings, exit code and log, so that --collect counts it. train.py's stderr comes through a pipe
    and is added to the log at the end, so that the reason reaches the sweep even when the disk has
    no room left for the log or for failed.json (the note then says so).
    """
    out = argv[argv.index("--out") + 1]
    failed_json = os.path.join(out, "failed.json")
    if run_status(out) in FINAL_STATUSES:
        remove_stale_failure(failed_json)
        return name, run_status(out), "skipped (already done)"
    argv = restart_without_checkpoint(argv, out)
    log_path = os.path.join(runs_dir, "logs", f"{name}.log")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.time()
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log = open(log_path, "a")
    except OSError as e:
        return name, "failed", str(WriteError(log_path, e, "the run was not started"))
    with log:
        proc = children.start([sys.executable, os.path.join(paths.ROOT, "train.py"), *argv],
                              stdout=log, stderr=subprocess.PIPE, text=True, errors="replace", env=env)
        if proc is None:
            return name, "not started", "the sweep was stopped"
        remove_stale_failure(failed_json)
        code, errors = children.wait(proc)
    reason = error_line(errors)
    ended = run_status(out)  # a run this process completed stays completed, whatever signal came after
    status = ended if ended in FINAL_STATUSES or (code in (0, 1, 130) and reason is None) else None
    note = f"exit {code} after {time.time() - start:.0f} s, log {log_path}"
    try:
        append_to_log(log_path, errors)
        if status is None:
            atomic_write_text(failed_json, json.dumps({**settings, "status": "failed", "exit_code": code,
                                                       "error": reason, "log": log_path}))
    except WriteError as e:
        note += f"; {e}"
    return name, status or "failed", f"{reason}; {note}" if reason else note


def restart_without_checkpoint(argv, out):
    """argv with --overwrite for --resume where the run has no checkpoint to continue from (killed
    before its first one, or a start that failed): train.py --resume refuses to train over a run's
    files, and an unfinished run without a checkpoint has nothing to lose."""
    if os.path.exists(rundir.last_checkpoint(out)):
        return argv
    return ["--overwrite" if a == "--resume" else a for a in argv]


def error_line(stderr):
    """The last one-line error train.py printed (`error: ...`, without the prefix), or None."""
    lines = [line[len("error: "):] for line in stderr.splitlines() if line.startswith("error: ")]
    return lines[-1] if lines else None


def append_to_log(path, text):
    """Add train.py's stderr (which came through a pipe) to the end of its log."""
    try:
        with open(path, "a") as log:
            log.write(text)
    except OSError as e:
        raise WriteError(path, e, "the log lacks train.py's stderr") from None


def progress_line(name, run_dir):
    """'name: step s/t, ETA' from the run's last metrics row."""
    try:
        rows = pd.read_csv(os.path.join(run_dir, "metrics.csv"), on_bad_lines="skip")
        cfg = read_json(os.path.join(run_dir, "config.json")) or {}
        step, seconds, total = int(rows["step"].iloc[-1]), float(rows["seconds"].iloc[-1]), cfg["total_steps"]
    except (OSError, KeyError, IndexError, ValueError, pd.errors.EmptyDataError):
        return f"  {name}: starting"
    eta = seconds / max(step, 1) * (total - step)
    return f"  {name}: step {step}/{total}, ETA {eta / 60:.1f} min"


def run_sweep(args, runs):
    """Run the planned runs, --jobs at a time; print progress; return ({name: status}, {name: note},
    stopped). Ctrl-C or SIGTERM stops the running runs (they checkpoint) and starts no new one."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    statuses, notes, last_report, children = {}, {}, time.time(), Children()
    previous = {sig: signal.signal(sig, children.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(train_one, name, argv, settings, args.runs, threads, children): name
                       for name, argv, settings in runs}
            while futures:
                for f in [f for f in futures if f.done()]:
                    name, status, note = f.result()
                    statuses[name], notes[name] = status, note
                    if status != "not started":
                        print(f"[{len(statuses)}/{len(runs)}] {name}: {status} ({note})", flush=True)
                    del futures[f]
                running = [name for f, name in futures.items() if f.running()]
                if running and time.time() - last_report > 60 and not children.stopped:
                    print("\n".join(progress_line(n, os.path.join(args.runs, n)) for n in running), flush=True)
                    last_report = time.time()
                time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return statuses, notes, children.stopped


# ----------------------------------------------------------------------------- collecting

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
        row.update({k: v for k, v in summary.items() if k.startswith(("final_", "best_"))})
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
    if summary and summary.get("status") in FINAL_STATUSES:
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
    from minkgan import evaluation as evaluate
    return evaluate.float32_rows(rows, ["precision", "final_fid_precision"], where="runs.csv")


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
    group = GROUP_KEY[:-1]
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
    for key, group in rows.groupby(GROUP_KEY, sort=True, dropna=False):
        done = group[group["status"] == "completed"]
        row = dict(zip(GROUP_KEY, key))
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
    """evaluate.build_tables on the runs' final metrics, with the best FIDs (mean, std) beside them.
    Runs evaluated before a metric existed have no value for it (NaN)."""
    from minkgan import evaluation as evaluate

    finals = {m: images[f"final_{m}"] if f"final_{m}" in images else float("nan") for m in IMAGE_FINALS}
    final = evaluate.build_tables(images.assign(fid=images["final_fid"], **finals))
    best = evaluate.build_tables(images.assign(fid=images["best_fid"], **finals))
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
    """<results>/runs.csv: one row per run identity (RUN_KEY), merged into what is there; returns
    every row it holds, this sweep's and earlier ones'."""
    def arrange(table):
        table = without_stale_failures(table, RUN_KEY[:-1], "total_steps", runs_csv.is_completed)
        if table["dataset"].isin(data.IMAGE_DATASETS).any():
            table = failures_from_run_logs(table, results)
        return table.sort_values(["dataset", "loss", "p", "n_critic", "seed"], kind="stable")
    return utils.merge_csv(os.path.join(results, "runs.csv"), rows, RUN_KEY, good=runs_csv.is_completed, arrange=arrange,
                           added=ADDED_KEY)


def merge_toy_table(table, path):
    def arrange(merged):
        merged = without_stale_failures(merged, GROUP_KEY[:-1], "steps", any_completed)
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
        from minkgan import evaluation as evaluate
        for name, table in zip(("table2.csv", "table3.csv"), paper_tables(images)):
            evaluate.merge_paper_table(os.path.join(results, name), table)
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
    here = {utils.row_identity(r, GROUP_KEY) for r in rows[rows["dataset"] == dataset].to_dict("records")}
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
    here = {utils.row_identity(r, RUN_KEY) for r in rows.to_dict("records")}  # a run of another budget is another run
    for dataset in sorted(rows.loc[rows["status"] == "completed", "dataset"].unique()):
        done = merged[(merged["dataset"] == dataset) & (merged["status"] == "completed")].to_dict("records")
        elsewhere = sorted(f"{r['run']} ({r['total_steps']:g} steps)" for r in done
                           if utils.row_identity(r, RUN_KEY) not in here)
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


def check_outputs(args):
    """Every path a sweep writes, checked before the first run starts (bad paths are one-line errors
    and nothing is created): the runs folder, the results folder, and the CSVs there it merges into
    (someone else's runs.csv is refused, not merged into)."""
    from minkgan import evaluation as evaluate
    if not args.collect:
        for folder in (args.runs, os.path.join(args.runs, "logs")):
            check_writable_folder(folder, "--runs")
    for folder in (args.results, os.path.join(args.results, "figures"), os.path.join(args.results, "run_logs")):
        check_writable_folder(folder, "--results")
    for name, key in (("runs.csv", RUN_KEY), ("toy_table.csv", TOY_TABLE_KEY),
                      ("table2.csv", evaluate.PAPER_TABLE_KEY), ("table3.csv", evaluate.PAPER_TABLE_KEY)):
        check_merge_target(os.path.join(args.results, name), key, "--results", added=ADDED_KEY)


def main(argv=None):
    args, passthrough = parse(sys.argv[1:] if argv is None else argv)
    check_outputs(args)
    if not args.collect:
        runs = plan(args, passthrough)
        settings.resolve(settings.build_parser().parse_args(runs[0][1]))  # bad pass-through flags fail here, once
        mine = shard(runs, *args.shard)
        print(f"{len(mine)} of {len(runs)} runs (shard {args.shard[0]}/{args.shard[1]}) in {args.runs}, "
              f"{args.jobs} at a time", flush=True)
        if args.dry_run:
            print("\n".join(f"  {name}: train.py {' '.join(argv)}" for name, argv, _ in mine))
            return 0
        statuses, notes, stopped = run_sweep(args, mine)
        if stopped:
            stopped_runs = [n for n, s in statuses.items() if s == "interrupted"]
            print(f"sweep stopped: {len(stopped_runs)} running run(s) checkpointed and stopped, "
                  f"{list(statuses.values()).count('not started')} not started; the same command resumes them",
                  file=sys.stderr)
            return 130
    rows = collect_rows(args.runs)
    if not len(rows):
        raise UserError(f"no run directories in {args.runs}; run the sweep first or pass --runs")
    written, failure = write_results(rows, args)
    if written:
        print("wrote " + ", ".join(written))
    print(rows.drop(columns=["device"]).to_string(index=False))
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
    if args.collect:
        return 1 if failure else 0
    unfinished = {n: s for n, s in statuses.items() if s != "completed"}
    if unfinished:
        print(f"{len(unfinished)} run(s) did not complete: " + ", ".join(
            f"{n} (failed: {notes[n]})" if s == "failed" else f"{n} ({s})" for n, s in unfinished.items()),
            file=sys.stderr)
    return 1 if unfinished or failure else 0


if __name__ == "__main__":
    run_main(main)
