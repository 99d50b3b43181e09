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
import os
import sys

import losses
from minkgan import collect
from minkgan import data
from minkgan import eval_tables
from minkgan import rundir
from minkgan import settings
from minkgan import sweep
from minkgan.utils import HelpFormatter, OneLineParser, UserError, check_merge_target, check_writable_folder, run_main


# train.py flags that name a run: the sweep sets them for each run, so passing them through is an error
SWEEP_OWNS = {"--out": "--runs (each run trains in <runs>/<dataset>/<run name>)",
              "--resume": "nothing: a sweep always resumes its runs",
              "--overwrite": "nothing: delete a run's directory to train it again",
              "--seed": "--seeds", "--loss": "--losses", "--p": "--p", "--dataset": "--dataset",
              "--eval-every": "--eval-every"}
assert list(SWEEP_OWNS) == settings.SET_BY_SWEEP  # train.py --help says which flags a sweep forwards


def forwarded_flags():
    """The train.py flags a sweep passes through to every run: all but those it sets itself."""
    return [o for o in settings.long_options() if o not in SWEEP_OWNS]


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
    options = settings.long_options()
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
                    run = settings.run_name({"loss": loss, "p": p, "n_critic": n_critic, "seed": seed, "dataset": dataset,
                                             **{k: vars(flags)[k] for k in ("adam_eps", "clip", "clip_params", "precision")}})
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


def check_outputs(args):
    """Every path a sweep writes, checked before the first run starts (bad paths are one-line errors
    and nothing is created): the runs folder, the results folder, and the CSVs there it merges into
    (someone else's runs.csv is refused, not merged into)."""
    if not args.collect:
        for folder in (args.runs, os.path.join(args.runs, "logs")):
            check_writable_folder(folder, "--runs")
    for folder in (args.results, os.path.join(args.results, "figures"), os.path.join(args.results, "run_logs")):
        check_writable_folder(folder, "--results")
    for name, key in (("runs.csv", rundir.RUN_KEY), ("toy_table.csv", collect.TOY_TABLE_KEY),
                      ("table2.csv", eval_tables.PAPER_TABLE_KEY), ("table3.csv", eval_tables.PAPER_TABLE_KEY)):
        check_merge_target(os.path.join(args.results, name), key, "--results", added=collect.ADDED_KEY)


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
        statuses, notes, stopped = sweep.run_sweep(args, mine)
        if stopped:
            stopped_runs = [n for n, s in statuses.items() if s == "interrupted"]
            print(f"sweep stopped: {len(stopped_runs)} running run(s) checkpointed and stopped, "
                  f"{list(statuses.values()).count('not started')} not started; the same command resumes them",
                  file=sys.stderr)
            return 130
    rows = collect.collect_rows(args.runs)
    if not len(rows):
        raise UserError(f"no run directories in {args.runs}; run the sweep first or pass --runs")
    written, write_error = collect.write_results(rows, args)
    if written:
        print("wrote " + ", ".join(written))
    print(rows.drop(columns=["device"]).to_string(index=False))
    if write_error is not None:
        print(f"error: {write_error}", file=sys.stderr)
    if args.collect:
        return 1 if write_error else 0
    unfinished = {n: s for n, s in statuses.items() if s != "completed"}
    if unfinished:
        print(f"{len(unfinished)} run(s) did not complete: " + ", ".join(
            f"{n} (failed: {notes[n]})" if s == "failed" else f"{n} ({s})" for n, s in unfinished.items()),
            file=sys.stderr)
    return 1 if unfinished or write_error else 0


if __name__ == "__main__":
    run_main(main)
