"""Evaluate trained runs: FID, KID, precision/recall, density/coverage of image runs, mode metrics
of 2-D runs, paper tables.

    python evaluate.py runs/cifar10/minkowski-p4-seed0 [RUN_DIR ...]   # FID, KID, P/R/D/C, 5000 samples
    python evaluate.py runs/ring8/gan-seed0                              # modes, hq_pct, rkl
    python evaluate.py --fake DIR_OR_NPZ --real DIR_OR_NPZ               # like python -m pytorch_fid
    python evaluate.py --table --csv runs/results/fid.csv                # table2.csv, table3.csv beside it

FID protocol (the paper's: 5000 generated samples). Samples come from the run's last checkpoint
(or --checkpoint) with a fixed noise seed (--noise-seed, default 12345: the seed of train.py's
--eval-every evaluations too, so that both give the same numbers for one checkpoint), are quantised to uint8 exactly as saving a
PNG would (data.to_uint8), and go through pytorch-fid's InceptionV3 (2048-d pool3 features,
its own bilinear resize to 299 and [0, 1] -> [-1, 1] scaling) as uint8 / 255, which is what
`python -m pytorch_fid` computes from PNG files. Two exact speed-ups over pytorch-fid's forward:
each BatchNorm (eval mode) is folded into the convolution before it, and the network runs in
channels_last; features agree with pytorch-fid's to ~1e-6 relative, FID to ~1e-6. On CUDA, TF32 is
switched off for the pass. --fid-precision bfloat16 runs Inception under bfloat16 autocast, for curves
only: its feature error moves FID far more than float32's last bits (results/fid_precision.csv), so
each row records its fid_precision (empty in fid.csv for float32, as rows from before the flag; its
train_precision likewise: train.py --precision) and --table uses float32 rows only.

Real statistics: --real-n images (default 5000, drawn without replacement with --seed from the
--real-split, default train; `--real-n all` uses every image) are computed once and cached in
--stats-dir (default ~/.cache/mink-gan/fid_stats) as a pytorch-fid compatible .npz (mu, sigma, plus up to
5000 feature rows for KID, precision, recall, density and coverage), named
<dataset>-<split>-<n|all>-seed<seed>.npz (folder datasets add a hash of their path, non-standard
Inception weights a hash of theirs, bfloat16 Inception -bfloat16: float32's names are as they were).

FID floor: the FID of real against real at the same count, --real-n train images against as many
other train images (fid_floor) and against as many test images (fid_floor_test; CIFAR-10's test
split, or for a folder dataset a sibling folder named test beside a data root named train),
computed once by `evaluate.py RUN_DIR` and cached like the real statistics (train.py's evaluations
read it from that cache, NaN until then). No generator scores below it at that count.

Metrics (metrics.py): FID, KID (over --kid-subsets subsets of --kid-subset-size), precision and
recall (Kynkaanniemi et al. 2019, k = 3), density and coverage (Naeem et al. 2020, k = 5) of the
generated against the real features (up to 5000 per side); the 2-D mode metrics of toy runs
(modes, hq_pct, rkl; VEEGAN / PacGAN protocol, 2500 samples). Precision and density fall when
samples leave the data, recall and coverage when modes are dropped. IS is not computed: the
FID weights carry no classifier layer.

Inception weights: --fid-weights PATH, else torch hub's cache, where pytorch-fid itself keeps
them (~/.cache/torch/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth), else pytorch-fid
downloads them; offline without the file it stops with a one-line error saying where to put it.

Rows are merged into --csv under a lock (default fid.csv, or toy_metrics.csv, in the results
folder beside the runs, as ablate_p.py's: <runs>/<dataset>/<run> -> <runs>/results, any other
<folder>/<run> -> <folder>/results; the repository's results/ changes only when named): a
re-evaluation of a checkpoint with the same protocol replaces its row (EVAL_KEY), other rows stay.
--table writes beside --csv unless --table-dir names a folder.
An image row holds fid, kid, kid_std, precision, recall, density, coverage, fid_floor, fid_floor_test.
"""
import io
import math
import os
import time

import pandas as pd
import torch

from minkgan import data
from minkgan import eval_tables
from minkgan import inception
import losses
from minkgan import paths
from minkgan import precision as precisions
from minkgan import rundir
from minkgan import runs as runs_csv
from minkgan import settings
from minkgan.metrics import PRDC_COLUMNS, frechet_distance, kid, prdc, statistics, toy_metrics
from minkgan.utils import (HelpFormatter, OneLineParser, UserError, check_device, check_merge_target,
                           check_writable_folder, eval_mode, merge_csv, read_json)

FID_CSV, TOY_CSV = "fid.csv", "toy_metrics.csv"  # their names in a results folder
EVAL_NOISE_SEED = 12345  # the noise of every evaluation's samples, in training and in evaluate.py
FID_COLUMNS = ["run", "dataset", "loss", "p", "n_critic", "seed", "steps", "epochs", "n_fake", "n_real", "fid", "kid", "kid_std",
               *PRDC_COLUMNS, *eval_tables.FLOOR_COLUMNS, "device", "seconds", "checkpoint", "real_split", "status",
               "train_precision", "fid_precision"]
TOY_COLUMNS = ["run", "dataset", "loss", "p", "seed", "steps", "epochs", "n_fake", "modes", "hq_pct", "rkl",
               "device", "seconds", "checkpoint", "status"]


# ----------------------------------------------------------------------------- runs

def load_run(run_dir, checkpoint=None, device="cpu"):
    """(G in eval mode, cfg, info dict) of a run; every bad input is a UserError."""
    if checkpoint and not os.path.isfile(checkpoint):  # a bare name means one in the run's checkpoints/
        alt = os.path.join(run_dir, "checkpoints", checkpoint)
        checkpoint = alt if os.path.isfile(alt) else checkpoint
    G, cfg, step = rundir.load_generator(run_dir, checkpoint, device)
    summary = read_json(os.path.join(run_dir, "summary.json")) or {}
    path = checkpoint or os.path.join(run_dir, "checkpoints", "last.pt")
    info = {"checkpoint": os.path.relpath(path, run_dir), "step": step if step is not None else summary.get("step"),
            "status": summary.get("status", "")}
    return G, cfg, info


@torch.inference_mode()
def generate(G, z_dim, n, seed=0, batch_size=500, device="cpu"):
    """n samples of G (cpu, float32) from a fixed noise seed, in batches."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - i), z_dim, generator=gen).to(device)
        out.append(G(z).float().cpu())
    return torch.cat(out)


def run_row(run_dir, cfg, info, n_fake, device, seconds):
    """A CSV row's identity and budget; runs from before n_critic was recorded trained with the loss's default."""
    loss = cfg.get("loss", "")
    return {"run": os.path.normpath(run_dir), "dataset": cfg.get("dataset", ""), "loss": loss,
            "p": cfg.get("p") if loss == "minkowski" else None, "n_critic": cfg.get("n_critic") or losses.default_n_critic(loss),
            **rundir.reading(cfg), "train_precision": precision_cell(cfg.get("precision")), "seed": cfg.get("seed"),
            "steps": info["step"], "epochs": cfg.get("epochs"), "n_fake": n_fake, "device": str(device),
            "seconds": round(seconds, 1), "checkpoint": info["checkpoint"], "status": info["status"]}


# A row's identity: a re-evaluation of the same checkpoint with the same protocol replaces its row.
EVAL_KEY = ["run", "checkpoint", "steps", "n_fake", "n_real", "real_split", "fid_precision"]
ADDED_KEY = ["fid_precision"]  # key columns a fid.csv from before them lacks (its rows: empty there)


def precision_cell(precision):
    """A fid.csv precision cell: empty for float32, as in the rows from before the flags (their identity
    stays theirs), else the precision's name."""
    return None if (precision or precisions.DEFAULT) == precisions.DEFAULT else precision


def append_rows(path, rows, columns):
    """Merge rows into a CSV by EVAL_KEY under a lock (utils.merge_csv): rows of other runs are kept,
    even when several processes write at once, and a failed or diverged run's row never replaces a
    completed one."""
    new = pd.DataFrame(rows)
    new = new[[c for c in columns if c in new] + [c for c in new if c not in columns]]
    return merge_csv(path, new, [k for k in EVAL_KEY if k in new], good=runs_csv.is_completed, added=ADDED_KEY,
                     adapt=spell_runs_as_the_file_does)


def spell_runs_as_the_file_does(old_text, new):
    """A run evaluated under another spelling of its folder (c1, then /abs/path/c1) is the same run: its
    new row takes the spelling already in the CSV, so that it replaces its old row instead of joining it."""
    if not old_text or "run" not in new:
        return new
    old_runs = pd.read_csv(io.StringIO(old_text), usecols=["run"], dtype=str, keep_default_na=False)["run"]
    spelling = {os.path.realpath(run): run for run in reversed(old_runs.tolist()) if run}
    new = new.copy()
    new["run"] = [spelling.get(os.path.realpath(run), run) for run in new["run"]]
    return new


class TrainingEvaluator:
    """Metrics of G during training: FID, KID, precision, recall, density, coverage and the FID floor
    (images) or modes/hq_pct/rkl (2-D), on cfg["eval_n"] samples from a fixed noise seed. Real
    statistics are computed once (and cached on disk); the floor only when evaluate.py has cached it.
    __call__ puts G in eval mode and restores its previous mode."""

    def __init__(self, cfg, device="cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.n = int(cfg.get("eval_n") or 5000)
        if self.n < 2:
            raise UserError(f"--eval-n must be at least 2, got {self.n}")
        self.toy = cfg["dataset"] in data.TOY_DATASETS
        if self.toy:
            self.centres, self.std = data.toy_mixture(cfg["dataset"])
            return
        if cfg["dataset"] not in data.IMAGE_DATASETS:
            raise UserError(f"unknown dataset {cfg['dataset']!r}")
        self.precision = cfg.get("fid_precision") or precisions.DEFAULT
        self.extractor = inception.InceptionFeatures(cfg.get("fid_weights"), self.device, precision=self.precision)
        stats_dir = cfg.get("fid_stats_dir") or inception.DEFAULT_STATS_DIR
        self.mu, self.sigma, self.real_features = inception.real_statistics(
            self.extractor, cfg["dataset"], cfg["data_root"], "train", self.n, 0, stats_dir, flag="--eval-n")
        self.floor = inception.fid_floor(self.extractor, cfg["dataset"], cfg["data_root"], self.n, 0, stats_dir, compute=False)

    def __call__(self, G, step):
        with eval_mode(G):
            samples = generate(G, self.cfg["z_dim"], self.n, seed=EVAL_NOISE_SEED, device=next(G.parameters()).device)
        if self.toy:
            return {"step": step, **toy_metrics(samples, self.centres, self.std)}
        features = self.extractor(data.to_uint8(samples))
        mu, sigma = statistics(features)
        k, k_std = kid(features, self.real_features)
        return {"step": step, "fid": frechet_distance(mu, sigma, self.mu, self.sigma), "kid": k, "kid_std": k_std,
                **prdc(features, self.real_features), **self.floor, "fid_precision": self.precision}


def results_beside(run_dir):
    """Where evaluate.py merges a run's rows by default: <runs>/results for a run of a sweep's layout
    (<runs>/<dataset>/<run>, beside ablate_p.py's tables), else a results folder beside the run. Never
    the repository's committed results/ (a run's copy in results/run_logs, or a run in the repository's
    root): that one changes only when --csv names it."""
    parent = os.path.dirname(os.path.abspath(run_dir))
    folder = os.path.join(os.path.dirname(parent) if os.path.basename(parent) in data.DATASETS else parent, "results")
    if is_within(folder, paths.RESULTS):
        raise UserError(f"the default --csv of {run_dir} would be in the repository's committed results "
                        f"({folder}); name the file with --csv")
    return folder


def is_within(path, folder):
    """path is folder or lies under it (links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def evaluate_runs(args, log=print):
    """Evaluate every run dir of args.runs; append rows to the CSVs; return the rows."""
    device = torch.device(args.device)
    extractor = None
    real_cache = {}
    fid_rows, toy_rows = [], []
    for run_dir in args.runs:
        start = time.time()
        G, cfg, info = load_run(run_dir, args.checkpoint, device)
        dataset = cfg.get("dataset")
        toy = dataset in data.TOY_DATASETS
        if not toy and dataset not in data.IMAGE_DATASETS:
            raise UserError(f"{run_dir}: unknown dataset {dataset!r}")
        n = args.n or (2500 if toy else 5000)
        samples = generate(G, cfg["z_dim"], n, seed=args.noise_seed, device=device)
        if toy:
            centres, std = data.toy_mixture(dataset)
            row = run_row(run_dir, cfg, info, n, device, 0) | toy_metrics(samples, centres, std)
            row["seconds"] = round(time.time() - start, 1)
            toy_rows.append(row)
            log(f"{run_dir}: modes {row['modes']}, hq {row['hq_pct']:.1f}%, rkl {row['rkl']:.4f}")
            continue
        if extractor is None:
            extractor = inception.InceptionFeatures(args.fid_weights, device, args.batch_size, precision=args.fid_precision)
        root = args.data_root or cfg.get("data_root", "./data")
        key = (dataset, os.path.abspath(root))
        if key not in real_cache:
            real_cache[key] = (inception.real_statistics(extractor, dataset, root, args.real_split, args.real_n, args.seed,
                                               args.stats_dir, log=log),
                               inception.fid_floor(extractor, dataset, root, args.real_n, args.seed, args.stats_dir, log=log))
        (mu_r, sigma_r, feats_r), floor = real_cache[key]
        features = extractor(data.to_uint8(samples), inception.progress(os.path.basename(os.path.normpath(run_dir))))
        mu, sigma = statistics(features)
        fid = frechet_distance(mu, sigma, mu_r, sigma_r)
        k, k_std = (kid(features, feats_r, args.kid_subsets, args.kid_subset_size, args.seed)
                    if feats_r is not None else (float("nan"), float("nan")))
        quality = (prdc(features, feats_r, seed=args.seed) if feats_r is not None
                   else dict.fromkeys(PRDC_COLUMNS, float("nan")))
        row = run_row(run_dir, cfg, info, n, device, time.time() - start)
        row.update(n_real=args.real_n if args.real_n is not None else "all", fid=fid, kid=k, kid_std=k_std, **quality,
                   **floor, real_split=args.real_split, fid_precision=precision_cell(args.fid_precision))
        fid_rows.append(row)
        log(f"{run_dir}: FID {fid:.3f} (floor {floor['fid_floor']:.3f})  KID {k:.5f} +- {k_std:.5f}  "
            + "  ".join(f"{m} {quality[m]:.3f}" for m in PRDC_COLUMNS) + f"  ({n} samples, {row['seconds']} s)")
    if fid_rows:
        append_rows(args.csv or os.path.join(results_beside(args.runs[0]), FID_CSV), fid_rows, FID_COLUMNS)
    if toy_rows:
        append_rows(args.csv or os.path.join(results_beside(args.runs[0]), TOY_CSV), toy_rows, TOY_COLUMNS)
    return fid_rows, toy_rows


# ----------------------------------------------------------------------------- command line

def build_parser():
    ap = OneLineParser(prog="evaluate.py", description=__doc__, formatter_class=HelpFormatter)
    a = ap.add_argument
    a("runs", nargs="*", help="run directories written by train.py")
    a("--checkpoint", default=None, help="checkpoint file (path, or name in RUN/checkpoints); default last.pt")
    a("--n", type=int, default=None, help="generated samples (default 5000 for images, 2500 for 2-D data)")
    a("--real-n", default="5000", help="real images for the statistics, or 'all' (default 5000)")
    a("--real-split", default="train", choices=["train", "test"])
    a("--noise-seed", type=int, default=EVAL_NOISE_SEED,
      help="seed of the generator's noise; the default is that of train.py --eval-every, so the numbers agree")
    a("--seed", type=int, default=0, help="seed of the real subset and of KID's subsets")
    a("--data-root", default=None, help="override the run's data root (where its dataset lies here)")
    a("--stats-dir", default=inception.DEFAULT_STATS_DIR, help="cache of real statistics (.npz, pytorch-fid format)")
    a("--fid-weights", default=None, help=f"pytorch-fid Inception weights; default {inception.hub_weights_path()}")
    a("--batch-size", type=int, default=200, help="Inception batch size")
    a("--fid-precision", default=precisions.DEFAULT, choices=precisions.PRECISIONS,
      help="Inception in bfloat16 (autocast), for curves only: recorded in each row, its real statistics "
           "cached apart, and left out of --table")
    a("--device", default=None, help="cpu, cuda, ... (default cuda when available)")
    a("--kid-subsets", type=int, default=100)
    a("--kid-subset-size", type=int, default=1000)
    a("--csv", default=None, help=f"merge rows here (default <runs>/results/{FID_CSV} or {TOY_CSV} for runs in "
                                  "<runs>/<dataset>/<run>, <folder>/results/ for any other <folder>/<run>; never "
                                  "the repository's results/ unless named here); --table reads it")
    a("--fake", default=None, help="generic mode: folder of images or .npz statistics")
    a("--real", default=None, help="generic mode: folder of images or .npz statistics")
    a("--table", action="store_true", help="write table2.csv and table3.csv (the paper beside ours) from --csv")
    a("--table-dir", default=None, help="where --table writes (default: beside --csv)")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.device = str(check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    if args.runs or args.fake is not None:  # --table alone runs no Inception
        precisions.check_precision(args.fid_precision, args.device, "--fid-precision")
    if args.n is not None and args.n < 2:
        raise UserError(f"--n must be at least 2, got {args.n}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.real_n == "all":
        args.real_n = None
    else:
        try:
            args.real_n = int(args.real_n)
        except ValueError:
            raise UserError(f"--real-n must be a number or 'all', got {args.real_n!r}") from None
        if args.real_n < 2:
            raise UserError(f"--real-n must be at least 2, got {args.real_n}")
    settings.check_seeds([args.seed], "--seed must be an integer")
    settings.check_seeds([args.noise_seed], "--noise-seed must be an integer")
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        raise UserError("--kid-subsets must be >= 1 and --kid-subset-size >= 2")
    if (args.fake is None) != (args.real is None):
        raise UserError("generic mode needs both --fake and --real")
    if not args.runs and args.fake is None and not args.table:
        raise UserError("nothing to do: give run directories, --fake/--real, or --table")
    check_outputs(args)
    if args.fake is not None:
        fid, (k, k_std), quality = inception.generic_fid(args.fake, args.real, args.fid_weights, args.device, args.batch_size,
                                               args.fid_precision)
        print(f"FID: {fid!r}")
        if not math.isnan(k):
            print(f"KID: {k!r} +- {k_std!r}")
        for name, value in (quality or {}).items():
            print(f"{name.capitalize()}: {value!r}")
    if args.runs:
        evaluate_runs(args)
    if args.table:
        eval_tables.write_tables(table_source(args), table_dir(args))
    return 0


def table_source(args):
    """The fid.csv --table reads: --csv, else the one beside the runs."""
    if not (args.csv or args.runs):
        raise UserError("--table builds the tables from a fid.csv: name it with --csv")
    return args.csv or os.path.join(results_beside(args.runs[0]), FID_CSV)


def table_dir(args):
    """Where --table writes: --table-dir, else beside the fid.csv it reads."""
    return args.table_dir or os.path.dirname(os.path.abspath(table_source(args)))


def check_outputs(args):
    """Every file evaluate.py would write, checked before anything is computed or written: the CSV
    each run's row merges into (--csv, else the one beside the runs), the --stats-dir cache, and the
    tables of --table. A run without a readable config is left to load_run to report."""
    toys = [(read_json(os.path.join(run_dir, "config.json")) or {}).get("dataset") in data.TOY_DATASETS
            for run_dir in args.runs]
    for toy in set(toys):
        target = args.csv or os.path.join(results_beside(args.runs[0]), TOY_CSV if toy else FID_CSV)
        check_merge_target(target, [k for k in EVAL_KEY if k in (TOY_COLUMNS if toy else FID_COLUMNS)],
                           "--csv", added=ADDED_KEY)
    if not all(toys):  # image runs cache their real statistics there
        check_writable_folder(args.stats_dir, "--stats-dir")
    if args.table:
        for name in ("table2.csv", "table3.csv"):
            check_merge_target(os.path.join(table_dir(args), name), eval_tables.PAPER_TABLE_KEY,
                               "--table-dir" if args.table_dir else "--csv")

