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
--stats-dir (default results/fid_stats) as a pytorch-fid compatible .npz (mu, sigma, plus up to
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
import hashlib
import io
import json
import math
import os
import sys
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from minkgan import data
import losses
from minkgan import paper as paper_csv
from minkgan import paths
from minkgan import precision as precisions
from minkgan import rundir
from minkgan import runs as runs_csv
from minkgan.paper import TABLE2_LOSSES
from minkgan.metrics import KID_MAX_FEATURES, PRDC_COLUMNS, at_most, frechet_distance, kid, prdc, statistics, toy_metrics
from minkgan.utils import (HelpFormatter, OneLineParser, UserError, atomic_write_bytes, atomic_write_text, check_device,
                   check_merge_target, check_writable_folder, eval_mode, merge_csv, read_csv_of_ours, read_json,
                   tf32_switches)

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")  # as pytorch-fid
DEFAULT_STATS_DIR = os.path.join("results", "fid_stats")
FID_CSV, TOY_CSV = "fid.csv", "toy_metrics.csv"  # their names in a results folder
EVAL_NOISE_SEED = 12345  # the noise of every evaluation's samples, in training and in evaluate.py
FLOOR_COLUMNS = ["fid_floor", "fid_floor_test"]
TABLE_MEANS = ["fid_floor", "fid_floor_test", "kid_mean", *(f"{m}_mean" for m in PRDC_COLUMNS)]  # after fid_std
FID_COLUMNS = ["run", "dataset", "loss", "p", "n_critic", "seed", "steps", "epochs", "n_fake", "n_real", "fid", "kid", "kid_std",
               *PRDC_COLUMNS, *FLOOR_COLUMNS, "device", "seconds", "checkpoint", "real_split", "status",
               "train_precision", "fid_precision"]
TOY_COLUMNS = ["run", "dataset", "loss", "p", "seed", "steps", "epochs", "n_fake", "modes", "hq_pct", "rkl",
               "device", "seconds", "checkpoint", "status"]


# ----------------------------------------------------------------------------- Inception

def hub_weights_path():
    return os.path.join(torch.hub.get_dir(), "checkpoints", FID_WEIGHTS_NAME)


def load_fid_weights(path=None):
    """State dict of pytorch-fid's Inception: from path, torch hub's cache, or a download."""
    if path:
        if not os.path.isfile(path):
            raise UserError(f"--fid-weights {path} does not exist")
    else:
        path = hub_weights_path()
        if not os.path.isfile(path):
            try:
                torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, map_location="cpu", progress=False)
            except Exception as e:
                raise UserError(f"FID Inception weights are not in {path} and could not be downloaded "
                                f"({type(e).__name__}); download {FID_WEIGHTS_URL} to that path "
                                f"or pass --fid-weights PATH") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"FID Inception weights {path} are unreadable ({type(e).__name__}); "
                        f"download {FID_WEIGHTS_URL} again") from None


@contextmanager
def _patched_loader(state_dict):
    """Build pytorch-fid's network with this state dict instead of its download; None: no loading
    (the architecture keeps its random initialisation) and the Inception3 built is recorded."""
    import pytorch_fid.inception as pfi
    import torchvision

    built = []
    saved_loader, cls = pfi.load_state_dict_from_url, torchvision.models.inception.Inception3
    saved_load = cls.load_state_dict
    pfi.load_state_dict_from_url = lambda *a, **k: state_dict
    if state_dict is None:
        cls.load_state_dict = lambda self, *a, **k: built.append(self)
    try:
        yield pfi, built
    finally:
        pfi.load_state_dict_from_url, cls.load_state_dict = saved_loader, saved_load


def random_fid_weights(seed=0):
    """A state dict in the format of pytorch-fid's weights file, randomly initialised (He normal
    convolutions, so features stay O(1)): for plumbing tests only, never for a reported FID."""
    with _patched_loader(None) as (pfi, built), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pfi.fid_inception_v3()
        net = built[0]
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.state_dict()


def pytorch_fid_inception(weights=None):
    """pytorch-fid's InceptionV3([3]) in eval mode. weights: a state dict, a path, None (hub cache /
    download) or "random" (random_fid_weights(): plumbing tests only, not a real FID)."""
    if isinstance(weights, str) and weights == "random":
        state = random_fid_weights()
    elif isinstance(weights, dict):
        state = weights
    else:
        state = load_fid_weights(weights)
    with _patched_loader(state) as (pfi, _):
        try:
            model = pfi.InceptionV3([3])
        except RuntimeError as e:
            raise UserError(f"FID Inception weights do not fit pytorch-fid's network ({str(e).splitlines()[0]})") from None
    return model.eval()


def fold_batchnorm(model):
    """Fold every eval-mode BatchNorm into the convolution before it (pytorch-fid's BasicConv2d)."""
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True)
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            module.conv, module.bn = fused, nn.Identity()
    return model


class InceptionFeatures:
    """uint8 images (N, 3, H, W) -> float32 (N, 2048) pool3 features, as pytorch-fid computes them."""

    def __init__(self, weights=None, device="cpu", batch_size=200, fast=True, precision=precisions.DEFAULT):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.fast = fast
        self.precision = precision  # bfloat16: autocast around the network, features back in float32
        self.weights_tag = _weights_tag(weights)
        with torch.random.fork_rng(devices=[]):  # layer init draws random numbers: keep training's stream intact
            model = pytorch_fid_inception(weights)
            if fast:
                model = fold_batchnorm(model).to(memory_format=torch.channels_last)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, images, progress=None):
        out = []
        with _no_tf32(), precisions.autocast(self.precision, self.device):
            for i in range(0, len(images), self.batch_size):
                x = images[i:i + self.batch_size].to(self.device).float().div_(255)
                if self.fast:
                    x = x.contiguous(memory_format=torch.channels_last)
                out.append(self.model(x)[0].flatten(1).float().cpu())
                if progress:
                    progress(min(i + self.batch_size, len(images)), len(images))
        return torch.cat(out).numpy() if out else np.zeros((0, 2048), np.float32)


def _weights_tag(weights):
    if isinstance(weights, str) and weights == "random":
        return "random"
    if weights is None or os.path.basename(str(weights)) == FID_WEIGHTS_NAME:
        return ""  # the standard network
    if isinstance(weights, dict):
        return "custom"
    return hashlib.sha1(os.path.abspath(weights).encode()).hexdigest()[:8]


@contextmanager
def _no_tf32():
    """Full float32 convolutions and matmuls, whatever the training run chose (train.py --tf32)."""
    switches = tf32_switches()
    saved = [getattr(obj, name) for obj, name, _, _ in switches]
    for obj, name, _, off in switches:
        setattr(obj, name, off)
    try:
        yield
    finally:
        for (obj, name, _, _), value in zip(switches, saved):
            setattr(obj, name, value)


def _progress(label):
    if not sys.stderr.isatty():
        return None
    return lambda done, total: print(f"\r{label}: {done}/{total}", end="\n" if done == total else "",
                                     file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- real statistics

def stats_path(stats_dir, dataset, data_root, split, n, seed, weights_tag="", precision=precisions.DEFAULT):
    """Cache file of real statistics, keyed by dataset (and folder), split, count, seed, weights and
    Inception's precision (float32 adds nothing: the caches from before the flag stay valid)."""
    name = dataset
    if dataset == "folder":
        name += "-" + hashlib.sha1(os.path.abspath(data_root).encode()).hexdigest()[:8]
    name += f"-{split}-{'all' if n is None else n}-seed{seed}"
    if weights_tag:
        name += f"-w{weights_tag}"
    if precision != precisions.DEFAULT:
        name += f"-{precision}"
    return os.path.join(stats_dir, name + ".npz")


def real_statistics(extractor, dataset, data_root, split="train", n=5000, seed=0, stats_dir=DEFAULT_STATS_DIR,
                    download=True, log=None, flag="--real-n"):
    """(mu, sigma, features: up to 5000 rows, for KID and prdc) of n real images (None: all), from the
    cache or computed and cached. More images than the dataset has is a UserError naming `flag`:
    the statistics are never those of fewer images than the count they are recorded under."""
    path = stats_path(stats_dir, dataset, data_root, split, n, seed, extractor.weights_tag, extractor.precision)
    cached = cached_statistics(path, n)
    if cached is not None:
        return cached
    images = data.load_images(dataset, data_root, split, download)
    if n is not None:
        if n > len(images):
            raise UserError(f"{flag} {n} is more than the {len(images)} images of {dataset} ({split}); "
                            f"pass {flag} {len(images)} or fewer")
        images = images[_permutation(len(images), seed)[:n]]
    if log:
        log(f"real statistics: {len(images)} {dataset} {split} images -> {path}")
    features = extractor(images, _progress("real"))
    mu, sigma = statistics(features)
    kept = at_most(features, KID_MAX_FEATURES, np.random.default_rng(seed))
    save_stats(path, mu, sigma, kept)
    return mu, sigma, kept


def cached_statistics(path, n):
    """(mu, sigma, features) from a cache file, or None where there is none to trust: a torn or foreign
    file, or one whose features are fewer than n images give (the statistics of a clamped count, cached
    under the count asked for before that was refused), which is then recomputed and replaced."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path) as f:
            mu, sigma, features = f["mu"], f["sigma"], (f["features"] if "features" in f else None)
    except Exception:
        return None
    if features is not None and n is not None and len(features) < min(n, KID_MAX_FEATURES):
        return None
    return mu, sigma, features


def _permutation(n, seed):
    """The seeded order in which real images are drawn: the first n are the reference set."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def fid_floor(extractor, dataset, data_root, n=5000, seed=0, stats_dir=DEFAULT_STATS_DIR, log=None, compute=True):
    """{"fid_floor", "fid_floor_test"}: the FID of the n reference train images (those of
    real_statistics) against the next n train images of the same draw, and against n test images
    (CIFAR-10's test split, or a folder dataset's sibling folder `test` beside a root named `train`).
    No generator scores below it at that n. NaN where there are too few images (or n is None: all).
    Computed once and cached as JSON beside the real statistics; with compute=False only read from
    that cache (NaN when absent): 2n more Inception passes are too dear to pay inside a training run."""
    if n is None:
        return {"fid_floor": float("nan"), "fid_floor_test": float("nan")}
    path = stats_path(stats_dir, dataset, data_root, "floor", n, seed, extractor.weights_tag, extractor.precision)
    path = path[:-len(".npz")] + ".json"
    cached = read_json(path)
    if cached is not None or not compute:
        return cached or {"fid_floor": float("nan"), "fid_floor_test": float("nan")}
    if log:  # minutes on a CPU: say so before they start
        log(f"FID floor at {n} real images: {2 * n} more Inception passes, once (cached in {path})")
    out = _real_against_real(extractor, dataset, data_root, n, seed, stats_dir, log)
    if log:
        log(f"FID floor at {n} real images: {out['fid_floor']:.3f} (train), {out['fid_floor_test']:.3f} (test)")
    atomic_write_text(path, json.dumps(out))
    return out


def _real_against_real(extractor, dataset, data_root, n, seed, stats_dir, log):
    """fid_floor's two numbers, computed (NaN where too few images)."""
    out = {"fid_floor": float("nan"), "fid_floor_test": float("nan")}
    train = data.load_images(dataset, data_root, "train")
    if n > len(train):
        return out
    mu, sigma, _ = real_statistics(extractor, dataset, data_root, "train", n, seed, stats_dir, log=log)
    if 2 * n <= len(train):
        other = train[_permutation(len(train), seed)[n:2 * n]]
        out["fid_floor"] = frechet_distance(*statistics(extractor(other, _progress("floor, train"))), mu, sigma)
    test = _test_images(dataset, data_root)
    if test is not None and n <= len(test):
        test = test[_permutation(len(test), seed)[:n]]
        out["fid_floor_test"] = frechet_distance(*statistics(extractor(test, _progress("floor, test"))), mu, sigma)
    return out


def _test_images(dataset, data_root):
    """Test images beside the training ones: CIFAR-10's test split, a folder's sibling `test`, or None."""
    if dataset == "cifar10":
        return data.load_images(dataset, data_root, "test")
    root = os.path.normpath(data_root)
    sibling = os.path.join(os.path.dirname(root), "test")
    if os.path.basename(root) == "train" and os.path.isdir(sibling):
        return data.load_images(dataset, sibling)
    return None


def save_stats(path, mu, sigma, features=None):
    """pytorch-fid compatible .npz (mu, sigma; features optional), written atomically."""
    arrays = dict(mu=mu, sigma=sigma) if features is None else dict(mu=mu, sigma=sigma, features=features)
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    atomic_write_bytes(path, npz.getvalue())


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


def float32_rows(rows, columns=("train_precision", "fid_precision"), where="fid.csv", log=print):
    """The rows a table may average: trained and evaluated in float32 (an empty or missing cell is
    float32). The others are for curves, and one line says how many were left out."""
    keep = pd.Series(True, index=rows.index)
    for column in (c for c in columns if c in rows):
        keep &= rows[column].astype(object).fillna(precisions.DEFAULT).replace("", precisions.DEFAULT) == \
            precisions.DEFAULT
    if not keep.all():
        log(f"{int((~keep).sum())} row(s) of {where} trained or evaluated in bfloat16 left out of the tables "
            f"(tables are float32 only)")
    return rows[keep]


def append_rows(path, rows, columns):
    """Merge rows into a CSV by EVAL_KEY under a lock (utils.merge_csv): rows of other runs are kept,
    even when several processes write at once, and a failed or diverged run's row never replaces a
    completed one."""
    new = pd.DataFrame(rows)
    new = new[[c for c in columns if c in new] + [c for c in new if c not in columns]]
    return merge_csv(path, new, [k for k in EVAL_KEY if k in new], good=runs_csv.is_completed, added=ADDED_KEY)


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
        self.extractor = InceptionFeatures(cfg.get("fid_weights"), self.device, precision=self.precision)
        stats_dir = cfg.get("fid_stats_dir") or DEFAULT_STATS_DIR
        self.mu, self.sigma, self.real_features = real_statistics(
            self.extractor, cfg["dataset"], cfg["data_root"], "train", self.n, 0, stats_dir, flag="--eval-n")
        self.floor = fid_floor(self.extractor, cfg["dataset"], cfg["data_root"], self.n, 0, stats_dir, compute=False)

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
            extractor = InceptionFeatures(args.fid_weights, device, args.batch_size, precision=args.fid_precision)
        root = args.data_root or cfg.get("data_root", "./data")
        key = (dataset, os.path.abspath(root))
        if key not in real_cache:
            real_cache[key] = (real_statistics(extractor, dataset, root, args.real_split, args.real_n, args.seed,
                                               args.stats_dir, log=log),
                               fid_floor(extractor, dataset, root, args.real_n, args.seed, args.stats_dir, log=log))
        (mu_r, sigma_r, feats_r), floor = real_cache[key]
        features = extractor(data.to_uint8(samples), _progress(os.path.basename(os.path.normpath(run_dir))))
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


# ----------------------------------------------------------------------------- generic mode

def load_image_dir(path):
    """uint8 (N, 3, H, W) of the image files directly in path, sorted, as pytorch-fid reads them."""
    files = sorted(os.path.join(path, f) for f in os.listdir(path)
                   if "." in f and f.rsplit(".", 1)[1] in IMAGE_EXTENSIONS)
    if len(files) < 2:
        raise UserError(f"{path} holds {len(files)} image file(s); FID needs at least 2")
    arrays = [read_rgb(f) for f in files]
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"the images in {path} have different sizes; resize them to one size first")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def read_rgb(path):
    """An image file as an RGB array; a file PIL cannot read is a UserError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {path} ({type(e).__name__}); delete or replace it") from None


def path_statistics(path, extractor_factory):
    """(mu, sigma, features or None) of a folder of images or a .npz of statistics."""
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            raise UserError(f"{path} does not exist")
        try:
            with np.load(path) as f:
                mu, sigma, features = f["mu"], f["sigma"], (f["features"] if "features" in f else None)
        except Exception as e:
            raise UserError(f"{path} is not a statistics file with mu and sigma ({type(e).__name__})") from None
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise UserError(f"{path} holds NaN or Inf in mu or sigma; compute the statistics again")
        return mu, sigma, features
    if not os.path.isdir(path):
        raise UserError(f"{path} is neither a folder of images nor a .npz of statistics")
    features = extractor_factory()(load_image_dir(path), _progress(path))
    return (*statistics(features), features)


def generic_fid(fake, real, weights=None, device="cpu", batch_size=200, precision=precisions.DEFAULT):
    """(FID, (KID, kid_std), precision/recall/density/coverage dict) of two folders or .npz files;
    KID and the rest need features on both sides (a folder, or a .npz that keeps them)."""
    extractor = []

    def factory():
        if not extractor:
            extractor.append(InceptionFeatures(weights, device, batch_size, precision=precision))
        return extractor[0]

    mu1, s1, f1 = path_statistics(fake, factory)
    mu2, s2, f2 = path_statistics(real, factory)
    fid = frechet_distance(mu1, s1, mu2, s2)
    features = f1 is not None and f2 is not None
    k = kid(f1, f2) if features else (float("nan"), float("nan"))
    return fid, k, (prdc(f1, f2) if features else None)


# ----------------------------------------------------------------------------- tables

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
        # the latest evaluation of each run at each budget: a run folder's name comes back for another
        # budget (1 and 2 epochs of minkowski-p4-seed0 are two runs)
        df = df.drop_duplicates(["run", "steps", "n_fake", "n_real"], keep="last")
    df["p"] = np.where(df["loss"] == "minkowski", pd.to_numeric(df["p"], errors="coerce"), np.nan)
    df["n_real"] = df["n_real"].astype(str)
    out = []
    keys = ["dataset", "loss", "p", "n_critic", *rundir.READING_COLUMNS, "epochs", "steps", "n_fake", "n_real"]
    for _, g in df.groupby(keys, dropna=False, sort=False):
        fid = pd.to_numeric(g["fid"], errors="coerce")
        means = {col: pd.to_numeric(g[col.removesuffix("_mean")], errors="coerce").mean() for col in TABLE_MEANS}
        out.append({"loss": g["loss"].iloc[0], "p": g["p"].iloc[0], "n_critic": g["n_critic"].iloc[0],
                    **{k: g[k].iloc[0] for k in rundir.READING_COLUMNS}, "dataset": g["dataset"].iloc[0],
                    "fid_mean": fid.mean(), "fid_std": fid.std(ddof=1) if len(fid) > 1 else np.nan,
                    **means, "seeds": len(g), **_budget(g)})
    return pd.DataFrame(out)


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


PAPER_PROTOCOL = {"dataset": "cifar10", "epochs": 200, "n_fake": 5000, "n_real": 5000}  # Table 1, section 4


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
    rows = pd.read_csv(io.StringIO(read_csv_of_ours(fid_csv, ["loss", "fid"], remedy="name evaluate.py's fid.csv "
                                                                                    "with --csv")))
    rows = float32_rows(rows, where=fid_csv, log=log)
    tables = []
    for name, table in zip(("table2", "table3"), build_tables(rows)):
        path = os.path.join(out_dir, f"{name}.csv")
        tables.append(merge_paper_table(path, table))
        log(f"{path}:\n{tables[-1].to_string(index=False)}")
    return tables


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
    a("--stats-dir", default=DEFAULT_STATS_DIR, help="cache of real statistics (.npz, pytorch-fid format)")
    a("--fid-weights", default=None, help=f"pytorch-fid Inception weights; default {hub_weights_path()}")
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
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        raise UserError("--kid-subsets must be >= 1 and --kid-subset-size >= 2")
    if (args.fake is None) != (args.real is None):
        raise UserError("generic mode needs both --fake and --real")
    if not args.runs and args.fake is None and not args.table:
        raise UserError("nothing to do: give run directories, --fake/--real, or --table")
    check_outputs(args)
    if args.fake is not None:
        fid, (k, k_std), quality = generic_fid(args.fake, args.real, args.fid_weights, args.device, args.batch_size,
                                               args.fid_precision)
        print(f"FID: {fid!r}")
        if not math.isnan(k):
            print(f"KID: {k!r} +- {k_std!r}")
        for name, value in (quality or {}).items():
            print(f"{name.capitalize()}: {value!r}")
    if args.runs:
        evaluate_runs(args)
    if args.table:
        write_tables(table_source(args), table_dir(args))
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
            check_merge_target(os.path.join(table_dir(args), name), PAPER_TABLE_KEY,
                               "--table-dir" if args.table_dir else "--csv")

