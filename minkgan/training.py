"""Train a GAN with any loss of losses.py; the defaults are the paper's Table 1.

    python train.py --loss minkowski --p 4                 # CIFAR-10, 200 epochs, as the paper
    python train.py --dataset ring8 --steps 3000           # the 2-D benchmark, minutes on a CPU

A run directory holds config.json, metrics.csv, samples/, checkpoints/last.pt and summary.json;
`--resume` continues a run exactly where it stopped.
"""
import argparse
import csv
import io
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import torch

from minkgan import paths
from minkgan import data
import losses
import models
from minkgan import ops
from minkgan import precision
from minkgan import rundir
from minkgan.precision import cpu_name
from minkgan.utils import (HelpFormatter, OneLineParser, UserError, WriteError, atomic_save_figure, atomic_torch_save,
                   atomic_write_bytes, atomic_write_csv, atomic_write_text, check_device, check_writable_folder, eval_mode,
                   is_number, read_json, tf32_switches)

ADAM_EPS = 1e-8  # torch's default; the paper names none
TOY_TRAIN_SIZE = 100_000  # points drawn once per seed: the toy "dataset" an epoch goes through
# A training step's statistics, in the order Trainer.train_step returns them (a tensor: one host sync per
# log interval): its losses and gradient norms, then D's regime (Trainer.logit_stats). metrics.csv logs
# the mean of each over a log interval, between the step, the epoch and the seconds so far.
LOSS_STATS = ["loss_d", "loss_g", "grad_norm_d", "grad_norm_g"]
LOGIT_STATS = ["d_real", "d_fake", "logit_real", "logit_fake", "logit_real_std", "logit_fake_std", "logit_absmax",
               "clip_share"]
STEP_STATS = LOSS_STATS + LOGIT_STATS
METRIC_COLUMNS = ["step", "epoch", *STEP_STATS, "seconds"]
# Settings that define the trained model; a resumed run must keep them.
RUN_DEFINING = ["loss", "p", "minkowski_on", "dataset", "arch", "z_dim", "width", "d_norm", "sn",
                "batch_size", "lr_d", "lr_g", "beta1", "beta2", "adam_eps", "clip", "clip_params", "gp", "gp_center",
                "n_critic", "label_smooth", "instance_noise", "diversity", "precision", "seed"]


# ----------------------------------------------------------------------------- settings

# the flags ablate_p.py sets for each run of a sweep; it passes every other flag through
SET_BY_SWEEP = ["--out", "--resume", "--overwrite", "--seed", "--loss", "--p", "--dataset", "--eval-every"]


def build_parser():
    ap = OneLineParser(prog="train.py", description=__doc__, formatter_class=HelpFormatter,
                       epilog="ablate_p.py passes every flag through to each run of a sweep except those it sets: "
                              + " ".join(SET_BY_SWEEP) + ".")
    a = ap.add_argument
    a("--loss", default="minkowski", help=f"one of {', '.join(losses.LOSSES)}")
    a("--p", type=float, default=4.0, help=f"Minkowski exponent, a real from 1 to {MAX_P} (paper: 1..8, best 4; "
                                           "beyond, float32 gradients underflow to 0)")
    a("--minkowski-on", default="probs", choices=["probs", "logits"],
      help="apply the distance to sigmoid(D) as the paper (probs) or to the raw output")
    a("--dataset", default="cifar10", help=f"one of {', '.join(data.DATASETS)}")
    a("--data-root", default="./data", help="where CIFAR-10 is downloaded, or the image folder")
    a("--arch", default=None, help=f"one of {', '.join(models.ARCHS)}; default: mlp for 2-D data, else dcgan")
    a("--width", type=int, default=None, help="base width of both nets (default: the architecture's)")
    a("--z-dim", type=int, default=100)
    a("--d-norm", default=None, choices=["batch", "none"],
      help="D normalisation; default none with a gradient penalty (BatchNorm would mix the per-sample "
           "gradients), else batch")
    a("--sn", action="store_true", help="spectral normalisation on every layer of D")
    a("--epochs", type=float, default=200)
    a("--steps", type=int, default=None, help="generator steps; overrides --epochs")
    a("--batch-size", type=int, default=64)
    a("--lr", type=float, default=2e-4, help="learning rate of both nets")
    a("--lr-d", type=float, default=None, help="D learning rate (two time scales); default --lr")
    a("--lr-g", type=float, default=None, help="G learning rate; default --lr")
    a("--beta1", type=float, default=0.5)
    a("--beta2", type=float, default=0.999)
    a("--adam-eps", type=float, default=ADAM_EPS,
      help="Adam's eps; below a gradient's scale Adam divides the scale out (a smaller one tests whether it matters)")
    a("--clip", type=float, default=None,
      help="clip D weights to [-C, C], 0 = off; default 0.01 (the paper's, for every loss on images, and for wgan), "
           "0 for wgan-gp and on 2-D data")
    a("--clip-params", default="all", choices=["all", "weights"],
      help="what --clip clips: every D parameter, BatchNorm's included, as the paper and the WGAN code (all), "
           "or only conv and linear weights (weights)")
    a("--gp", type=float, default=None, help="gradient penalty weight; default 10 for wgan-gp, else 0")
    a("--gp-center", type=float, default=1.0,
      help="target gradient norm at the interpolates (1: WGAN-GP; 0: zero-centred, not R1)")
    a("--n-critic", type=int, default=None, help="D steps per G step; default 5 for wgan and wgan-gp, else 1")
    a("--label-smooth", type=float, default=0.0, help="one-sided label smoothing: real target 1 - S")
    a("--instance-noise", type=float, default=0.0, help="std of noise added to D's inputs, annealed to 0")
    a("--diversity", type=float, default=0.0,
      help="weight of the mode-seeking diversity term in G's loss (MSGAN, Mao et al. 2019), 0 = off")
    a("--seed", type=int, default=0)
    a("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    a("--fused", default="auto", choices=["auto", "on", "off"], help="fused C++/CUDA loss ops (csrc/)")
    a("--channels-last", action="store_true",
      help="channels_last memory for the convolutions: same model, other kernels (bench/step.py measures the gain)")
    a("--compile", action="store_true",
      help="torch.compile the networks (D stays eager under a gradient penalty: no double backward)")
    a("--precision", default=precision.DEFAULT, choices=precision.PRECISIONS,
      help="the nets' forward passes in bfloat16 (torch.autocast; losses, clipping, penalty and Adam stay "
           "float32): for CPUs with AMX or AVX512-BF16 and GPUs from Ampere on. A bfloat16 run is another run: "
           "its folder name ends in -bfloat16")
    a("--deterministic", action="store_true",
      help="deterministic GPU kernels (no cudnn.benchmark): bit-identical resume on a GPU, slower; the CPU always is")
    a("--tf32", default="auto", choices=sorted(TF32_MODES) + ["auto"],
      help="TensorFloat-32 on a GPU: off, for the cuDNN convolutions only (conv, torch's default) or for them and "
           "the matmuls (all); auto: off under --deterministic, else conv. config.json records the mode used")
    a("--out", default=None, help="run directory; default runs/<dataset>/<loss>[-p<p>]-seed<seed>")
    a("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    a("--overwrite", action="store_true", help="delete the run in --out (the files train.py writes) and start again")
    a("--log-every", type=int, default=100)
    a("--sample-every", type=int, default=2000)
    a("--ckpt-every", type=int, default=2000)
    a("--save-at", type=int, nargs="+", default=[], metavar="STEP",
      help="also keep checkpoints/stepNNNNNNN.pt at these steps (0 = before training), e.g. for analysis/alignment.py")
    a("--eval-every", type=int, default=0, help="FID (images) or mode metrics (2-D) every N steps; 0 = off")
    a("--eval-at", type=int, nargs="+", default=[], metavar="STEP",
      help="also evaluate at these steps (e.g. at chosen epochs of a long run), and at the end")
    a("--eval-n", type=int, default=None, help="samples per evaluation; default 5000 images, 2500 2-D points")
    a("--fid-weights", default=None, help="path of pytorch-fid's Inception weights, for offline use")
    a("--fid-precision", default=precision.DEFAULT, choices=precision.PRECISIONS,
      help="Inception in bfloat16 for the in-run evaluations: for curves only (eval.csv records it; "
           "evaluate.py --table uses float32 FIDs only)")
    a("--tensorboard", action=TensorBoardFlag, nargs=0, default=False,
      help="also write metrics.csv's and eval.csv's rows and the sample grids as TensorBoard events in "
           "<out>/tensorboard, to watch a run live (needs the tensorboard package)")
    return ap


class TensorBoardFlag(argparse.Action):
    """--tensorboard, refused while parsing, before any file is touched, where the package is missing."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            parser.error("--tensorboard needs the tensorboard package: pip install tensorboard")
        setattr(namespace, self.dest, True)


def resolve(args):
    """Check every setting and fill the loss-dependent defaults; return the run's config dict."""
    cfg = vars(args).copy()
    if cfg["dataset"] not in data.DATASETS:
        raise UserError(f"unknown --dataset {cfg['dataset']!r}; choose one of {', '.join(data.DATASETS)}")
    cfg["arch"] = cfg["arch"] or ("mlp" if cfg["dataset"] in data.TOY_DATASETS else "dcgan")
    cfg["clip"] = cfg["clip"] if cfg["clip"] is not None else default_clip(cfg["loss"], cfg["dataset"])
    cfg["gp"] = cfg["gp"] if cfg["gp"] is not None else (10.0 if cfg["loss"] == "wgan-gp" else 0.0)
    cfg["n_critic"] = cfg["n_critic"] if cfg["n_critic"] is not None else losses.default_n_critic(cfg["loss"])
    cfg["d_norm"] = cfg["d_norm"] or ("none" if cfg["gp"] else "batch")
    cfg["eval_n"] = cfg["eval_n"] or (2500 if cfg["dataset"] in data.TOY_DATASETS else 5000)
    cfg["lr_d"] = cfg["lr_d"] if cfg["lr_d"] is not None else cfg["lr"]
    cfg["lr_g"] = cfg["lr_g"] if cfg["lr_g"] is not None else cfg["lr"]
    losses.make_loss(cfg["loss"], cfg["p"], cfg["minkowski_on"], 1.0 - cfg["label_smooth"])  # validates
    check_p(cfg["p"])
    check_seeds([cfg["seed"]], "--seed must be an integer")
    for name in ("beta1", "beta2"):
        if not 0 <= cfg[name] < 1:  # NaN fails too
            raise UserError(f"--{name} must be in [0, 1), got {cfg[name]} (Adam's decay of its averages)")
    if not math.isfinite(cfg["gp_center"]):
        raise UserError(f"--gp-center must be a finite number, got {cfg['gp_center']}")
    if cfg["arch"] not in models.ARCHS:
        raise UserError(f"unknown --arch {cfg['arch']!r}; choose one of {', '.join(models.ARCHS)}")
    if (cfg["dataset"] in data.TOY_DATASETS) != (cfg["arch"] == "mlp"):
        raise UserError(f"--arch {cfg['arch']} does not fit --dataset {cfg['dataset']}: use mlp for 2-D data only")
    for name in ("lr", "lr_d", "lr_g", "adam_eps"):  # --lr first: --lr-d and --lr-g left to it are its value
        if not (math.isfinite(cfg[name]) and cfg[name] > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {cfg[name]}")
    positive_ints = ["batch_size", "n_critic", "z_dim", "log_every", "sample_every", "ckpt_every"]
    for name in positive_ints + (["width"] if cfg["width"] is not None else []):
        if cfg[name] < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {cfg[name]}")
    for name in ("save_at", "eval_at"):
        if any(step < 0 for step in cfg[name]):
            raise UserError(f"--{name.replace('_', '-')} steps must be >= 0, got {min(cfg[name])}")
    if cfg["steps"] is not None and cfg["steps"] < 1:
        raise UserError(f"--steps must be at least 1, got {cfg['steps']}")
    if not (math.isfinite(cfg["epochs"]) and cfg["epochs"] > 0):
        raise UserError(f"--epochs must be a positive number, got {cfg['epochs']}")
    for name in ("clip", "gp", "instance_noise", "diversity", "eval_every"):
        if not (math.isfinite(cfg[name]) and cfg[name] >= 0):
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {cfg[name]}")
    if cfg["diversity"] and cfg["batch_size"] < 2:
        raise UserError("--diversity compares the two halves of a batch: use --batch-size 2 or more")
    if not 0 <= cfg["label_smooth"] < 1:
        raise UserError(f"--label-smooth must be in [0, 1), got {cfg['label_smooth']}")
    if (cfg["eval_every"] or cfg["eval_at"]) and cfg["eval_n"] < 2:
        raise UserError(f"--eval-n must be at least 2, got {cfg['eval_n']}")
    if cfg["resume"] and cfg["overwrite"]:
        raise UserError("--resume and --overwrite contradict each other; pass one")
    cfg["out"] = cfg["out"] or default_run_dir(cfg)
    cfg["device"] = resolve_device(cfg["device"])
    precision.check_precision(cfg["precision"], cfg["device"], "--precision")
    if (cfg["eval_every"] or cfg["eval_at"]) and cfg["dataset"] not in data.TOY_DATASETS:
        precision.check_precision(cfg["fid_precision"], cfg["device"], "--fid-precision")
    return drop_inapplicable(cfg)


# Every run starts at D = 1/2, where the Minkowski loss's gradient per logit is |1/2|^(p-1) * 1/4 / batch
# = 2^-(p+1) / batch. Adam divides by the root of its square, which float32 flushes to 0 past p of about
# 75 (Adam's step is then the gradient over eps: nothing), and the gradient itself is 0 past p of about
# 150. At 50 the squares are still normal float32 numbers (tests/test_train.py, a 2-D run's nets).
MAX_P = 50
SEED_LIMIT = 2 ** 32  # torch.manual_seed takes 64 bits; the batch order's seed is seed * 1_000_003 + epoch


def check_p(p):
    """A Minkowski exponent that trains in float32: 1 <= p <= MAX_P."""
    if not (math.isfinite(p) and 1 <= p <= MAX_P):
        raise UserError(f"--p {p:g} does not train in float32: at D = 1/2, where a run starts, the gradient is "
                        f"2^-(p+1) per sample, its square (Adam's) 0 past p of about 75; use 1 <= --p <= {MAX_P}")


def check_seeds(seeds, what):
    """Seeds that fit torch.manual_seed and the seeds derived from them: 0 <= seed < SEED_LIMIT."""
    for seed in seeds:
        if not 0 <= seed < SEED_LIMIT:
            raise UserError(f"{what} from 0 to {SEED_LIMIT - 1}, got {seed}")


def drop_inapplicable(cfg):
    """Settings that do nothing in this run become None, so that config.json records only what
    applies: D's normalisation for the MLP (it has none), what --clip clips without a clip, and the
    penalty's centre without a penalty."""
    for name, applies in (("d_norm", cfg["arch"] != "mlp"), ("clip_params", bool(cfg["clip"])),
                          ("gp_center", bool(cfg["gp"]))):
        cfg[name] = cfg[name] if applies else None
    return cfg


def default_clip(loss, dataset):
    """0.01 for WGAN (its constraint) and for every loss on images (the paper's protocol); none
    for WGAN-GP, and none on 2-D data, where it leaves the MLP's D constant (D(x) = 0.5)."""
    if loss == "wgan":
        return 0.01
    return 0.0 if loss == "wgan-gp" or dataset in data.TOY_DATASETS else 0.01


def run_name(loss, p, n_critic, seed, adam_eps=ADAM_EPS, clip=None, clip_params="all", dataset="cifar10",
             precision_name=precision.DEFAULT):
    """<loss>[-p<p>][-ncritic<k>][-eps<e>][-clip<c>][-clipweights][-bfloat16]-seed<s>: n_critic, Adam's eps,
    the clipping and the precision appear only where they are not the defaults, so two readings of a run
    never share a folder."""
    name = loss + (f"-p{p:g}" if loss == "minkowski" else "")
    name += f"-ncritic{n_critic}" if n_critic is not None and n_critic != losses.default_n_critic(loss) else ""
    name += f"-eps{adam_eps:g}" if adam_eps is not None and adam_eps != ADAM_EPS else ""
    clip = default_clip(loss, dataset) if clip is None else clip
    name += f"-clip{clip:g}" if clip != default_clip(loss, dataset) else ""
    name += "-clipweights" if clip and clip_params == "weights" else ""
    name += f"-{precision_name}" if precision_name and precision_name != precision.DEFAULT else ""
    return f"{name}-seed{seed}"


def default_run_dir(cfg):
    return os.path.join("runs", cfg["dataset"], run_name(cfg["loss"], cfg["p"], cfg["n_critic"], cfg["seed"],
                                                              cfg["adam_eps"], cfg["clip"], cfg["clip_params"],
                                                              cfg["dataset"], cfg["precision"]))


def resolve_device(name):
    return str(check_device("cuda" if name == "auto" and torch.cuda.is_available() else
                            "cpu" if name == "auto" else name))


def environment(device):
    """What produced the run: versions, code revision and the training device's hardware, for the config."""
    here = paths.ROOT
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        git = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        git = None
    return {"torch": torch.__version__, "python": platform.python_version(), "git": git,
            "hardware": hardware_name(device)}


def hardware_name(device):
    """The GPU's name for a CUDA device (that device's, not GPU 0's), else the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} x{torch.get_num_threads()} threads"


# ----------------------------------------------------------------------------- data

class Batches:
    """Shuffled mini-batches of an in-memory dataset, a pure function of (seed, batches drawn).

    Each epoch's order comes from its own generator seeded by (seed, epoch), so a resumed
    run continues with exactly the batches an uninterrupted one would have drawn.
    """

    def __init__(self, tensor, batch_size, seed, drawn=0):
        if len(tensor) < batch_size:
            raise UserError(f"the dataset has {len(tensor)} samples, fewer than --batch-size {batch_size}")
        self.tensor, self.batch_size, self.seed, self.drawn = tensor, batch_size, seed, drawn
        self.per_epoch = len(tensor) // batch_size
        self._order_epoch, self._order = None, None

    def epoch(self):
        return self.drawn / self.per_epoch

    def next(self):
        epoch, i = divmod(self.drawn, self.per_epoch)
        if epoch != self._order_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(len(self.tensor), generator=g).to(self.tensor.device)
            self._order_epoch = epoch
        self.drawn += 1
        return self.tensor[self._order[i * self.batch_size:(i + 1) * self.batch_size]]


def load_training_data(cfg):
    """The training set as one tensor: uint8 images or float 2-D points."""
    if cfg["dataset"] in data.TOY_DATASETS:
        return data.sample_toy(cfg["dataset"], TOY_TRAIN_SIZE, torch.Generator().manual_seed(cfg["seed"]))
    return data.load_images(cfg["dataset"], cfg["data_root"], "train")


def to_input(batch):
    """A batch as D's input: images to [-1, 1] floats, 2-D points as they are."""
    return data.to_model_range(batch) if batch.dtype == torch.uint8 else batch


# ----------------------------------------------------------------------------- models

def build_optimizers(cfg, G, D):
    betas, eps = (cfg["beta1"], cfg["beta2"]), cfg["adam_eps"]
    options = adam_options(next(G.parameters()).device)
    return (torch.optim.Adam(G.parameters(), lr=cfg["lr_g"], betas=betas, eps=eps, **options),
            torch.optim.Adam(D.parameters(), lr=cfg["lr_d"], betas=betas, eps=eps, **options))


def adam_options(device):
    """Fused Adam on a GPU: a few kernels for all the parameters, where foreach launches several per
    tensor group (a step there is launch-bound). On the CPU torch's default, as every CPU run so far:
    the same weights to the bit."""
    return {"fused": True if device.type == "cuda" else None}


def use_adam_options(opt):
    """After load_state_dict, which takes the checkpoint's 'fused' along: this device's Adam again (a
    GPU run resumed on the CPU must not turn fused there, nor a CPU run resumed on a GPU stay unfused),
    with the step counts on the parameters' device, where fused Adam keeps them."""
    device = opt.param_groups[0]["params"][0].device
    options = adam_options(device)
    for group in opt.param_groups:
        group.update(options)
    if options["fused"]:
        for state in opt.state.values():
            state["step"] = state["step"].to(device, torch.float32)


# ----------------------------------------------------------------------------- training

def grad_norm(module):
    """L2 norm of all parameter gradients of a module, as a device tensor (no host sync)."""
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


def clipped_params(module, which):
    """The parameters --clip acts on: all of them, or only conv/linear weights (those with more than one dim)."""
    return [p for p in module.parameters() if which == "all" or p.dim() > 1]


@torch.no_grad()
def clip_weights(params, c):
    torch._foreach_clamp_min_(params, -c)
    torch._foreach_clamp_max_(params, c)


@torch.no_grad()
def share_at_bound(params, c):
    """Share of the clipped parameters sitting at +-c: near 1, D is a sign pattern, not a learned function.
    On one concatenation: five kernels, where three a parameter tensor were the most of a step's statistics."""
    flat = torch.cat([p.reshape(-1) for p in params])
    return (flat.abs() >= c * (1 - 1e-6)).sum() / flat.numel()


def tune_for_speed(G, D, cfg):
    """--channels-last and --compile change the kernels, not the model: the results differ from eager
    only in the order of floating-point operations (tests/test_train.py bounds it). Module.compile
    compiles in place, so the state_dict's names, and the checkpoints, are the same either way.
    CUDA graphs (mode reduce-overhead) are not used: D runs twice before its backward, and the
    second replay would overwrite the first's outputs."""
    if cfg.get("channels_last"):
        G.to(memory_format=torch.channels_last)  # 4-D weights only; the MLP is unchanged
        D.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        G.compile()
        if not cfg["gp"]:  # torch.compile has no double backward, which the penalty's gradient needs
            D.compile()


CHECKPOINT_KEYS = ["G", "D", "opt_g", "opt_d", "step", "rng", "cuda_rng", "seconds", "evals", "window", "window_n"]


class Trainer:
    """One GAN training run: the models, their optimisers, and a step that updates both."""

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device
        self.G, self.D = rundir.build_models(cfg, device)
        tune_for_speed(self.G, self.D, cfg)
        self.opt_g, self.opt_d = build_optimizers(cfg, self.G, self.D)
        self.d_loss, self.g_loss = losses.make_loss(cfg["loss"], cfg["p"], cfg["minkowski_on"], 1.0 - cfg["label_smooth"])
        self.clipped = clipped_params(self.D, cfg["clip_params"]) if cfg["clip"] else []
        self.precision = cfg.get("precision") or precision.DEFAULT  # configs from before the flag: float32
        self.step = 0

    def forward(self, net, x):
        """A forward pass of G or D, under --precision bfloat16 in autocast and cast back to float32:
        what the losses, the clipping, the penalty and Adam see is float32 (the fused ops get float32
        logits). float32 is the plain call, the same kernels as before the flag."""
        if self.precision == precision.DEFAULT:
            return net(x)
        with precision.autocast(self.precision, self.device):
            return net(x).float()

    def noise_std(self, total_steps):
        """Instance noise, annealed linearly from --instance-noise to 0 (Sonderby et al. 2017)."""
        return self.cfg["instance_noise"] * max(0.0, 1.0 - self.step / total_steps)

    def discriminator_step(self, real, fake, sigma):
        cfg = self.cfg
        real_in = real + sigma * torch.randn_like(real) if sigma else real
        fake_in = fake + sigma * torch.randn_like(fake) if sigma else fake
        logit_real, logit_fake = self.forward(self.D, real_in), self.forward(self.D, fake_in)
        loss_d = self.d_loss(logit_real, logit_fake)
        if cfg["gp"]:
            loss_d = loss_d + losses.gradient_penalty(self.D, losses.interpolate(real, fake), cfg["gp"], cfg["gp_center"])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        norm_d = grad_norm(self.D)
        self.opt_d.step()
        if self.clipped:
            clip_weights(self.clipped, cfg["clip"])
        return loss_d.detach(), norm_d, logit_real.detach(), logit_fake.detach()

    def generator_step(self, fake, z, sigma):
        fake_in = fake + sigma * torch.randn_like(fake) if sigma else fake
        self.D.requires_grad_(False)  # G's step needs no gradients for D's weights
        loss_g = self.g_loss(self.forward(self.D, fake_in))
        if self.cfg["diversity"]:
            loss_g = loss_g + self.cfg["diversity"] * losses.mode_seeking(fake, z)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.D.requires_grad_(True)
        norm_g = grad_norm(self.G)
        self.opt_g.step()
        return loss_g.detach(), norm_g

    def train_step(self, batches, total_steps):
        """n_critic D updates, then one G update on the last critic step's fakes; the step's statistics on
        the device, in STEP_STATS' order (LOSS_STATS, then logit_stats' LOGIT_STATS)."""
        sigma = self.noise_std(total_steps)
        n_critic = self.cfg["n_critic"]
        for i in range(n_critic):
            real = to_input(batches.next())
            z = torch.randn(real.shape[0], self.cfg["z_dim"], device=self.device)
            with torch.set_grad_enabled(i == n_critic - 1):
                fake = self.forward(self.G, z)
            loss_d, norm_d, logit_real, logit_fake = self.discriminator_step(real, fake.detach(), sigma)
        loss_g, norm_g = self.generator_step(fake, z, sigma)
        self.step += 1
        return torch.cat([torch.stack([loss_d, loss_g, norm_d, norm_g]), self.logit_stats(logit_real, logit_fake)])

    def logit_stats(self, logit_real, logit_fake):
        """D's regime on the last critic step, in LOGIT_STATS' order: mean probabilities and logits, their
        spread, the largest |logit| and the share of clipped parameters at the bound. With tiny logits every loss of
        losses.py is WGAN times a constant (analysis/alignment.py), so these columns say which regime a run is in.
        Real and fake logits (one batch size) are reduced as the two rows of one tensor: one kernel per
        statistic, not two, and the same values (the float32 sigmoid's last bit aside)."""
        logits = torch.stack([logit_real.flatten(), logit_fake.flatten()])
        at_bound = share_at_bound(self.clipped, self.cfg["clip"]) if self.clipped else logits.new_zeros(())
        return torch.cat([torch.sigmoid(logits).mean(1), logits.mean(1), logits.std(1, correction=0),
                          torch.stack([logits.abs().amax(), at_bound])])

    def state(self, extra):
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "step": self.step, "rng": torch.get_rng_state(),
                "cuda_rng": cuda_rng_state(self.device), **extra}

    def load_state(self, ckpt, path):
        """Continue from a checkpoint, once it is checked to be of this run (names and shapes)."""
        rundir.check_checkpoint(ckpt, path, CHECKPOINT_KEYS, {"G": self.G, "D": self.D},
                                "resume the run it came from, or pass --overwrite to start again")
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        use_adam_options(self.opt_g)
        use_adam_options(self.opt_d)
        self.step = ckpt["step"]
        torch.set_rng_state(ckpt["rng"])
        restore_cuda_rng(ckpt.get("cuda_rng"), self.device)


def cuda_rng_state(device):
    """The training device's CUDA RNG state (None on the CPU): a checkpoint then resumes on any
    GPU of any node, whatever the number of GPUs visible there."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def restore_cuda_rng(state, device):
    """Restore cuda_rng_state's output on `device`. Older checkpoints hold a list of every visible
    GPU's state: the entry of the training device's index is used when there is one."""
    if device.type != "cuda" or state is None:
        return
    if isinstance(state, (list, tuple)):
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= len(state):
            return
        state = state[index]
    torch.cuda.set_rng_state(state, device)


# ----------------------------------------------------------------------------- run directory

def whole_rows_up_to(path, step):
    """metrics.csv's header and its whole rows up to `step`, as CSV text: a row with another number of
    fields than the header or a cell that is no number (a line torn by a kill, cut to `30`) is dropped,
    as is every row past the checkpoint's step. Empty cells are whole: an older run's rows have them
    in the columns added since."""
    with open(path, newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows and "step" in rows[0] else METRIC_COLUMNS
    at = header.index("step")
    kept = [r for r in rows[1:] if len(r) == len(header) and all(c == "" or is_number(c) for c in r)
            and is_number(r[at]) and float(r[at]) <= step]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *kept])
    return text.getvalue()


class MetricsLog:
    """metrics.csv, one row per logged step; rows past a resumed checkpoint are dropped."""

    def __init__(self, path, resume_step=None):
        self.path = path
        self.last_row = None  # as written (or kept from a resumed run), for the summary
        if resume_step is not None and os.path.exists(path):
            rows = pd.read_csv(io.StringIO(whole_rows_up_to(path, resume_step)))
            rows = rows.reindex(columns=METRIC_COLUMNS)  # older runs lack columns
            atomic_write_csv(rows, path)
            self.last_row = rows.iloc[-1].to_dict() if len(rows) else None
        new = not os.path.exists(path)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as e:
            raise WriteError(path, e) from None
        if new:
            self._append(METRIC_COLUMNS)

    def write(self, row):
        row = [float(f"{v:.6g}") if isinstance(v, float) else v for v in row]
        self._append(row)
        self.last_row = dict(zip(METRIC_COLUMNS, row))

    def _append(self, row):
        """Append one whole CSV line or nothing: a write cut short (a full disk) is cut off the file
        again, so that a resumed run never reads a torn row."""
        line = io.StringIO()
        csv.writer(line).writerow(row)
        data, size = memoryview(line.getvalue().encode()), os.fstat(self.fd).st_size
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as e:
            os.ftruncate(self.fd, size)
            raise WriteError(self.path, e) from None

    def close(self):
        os.close(self.fd)


class TensorBoard:
    """--tensorboard: each row of metrics.csv and eval.csv, and each sample grid, as TensorBoard events
    in <out>/tensorboard; without the flag every call does nothing. Events from first_step on are purged,
    as metrics.csv drops the rows past a resumed checkpoint (a fresh run: every earlier event)."""

    def __init__(self, out, enabled, first_step):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(out, "tensorboard"), purge_step=first_step)

    def scalars(self, group, row):
        """A logged row, {"step": ..., name: value}, as the scalars <group>/<name> (finite values only)."""
        if self.writer:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{group}/{name}", value, row["step"])
            self.writer.flush()

    def image(self, path, step):
        """The sample grid (or 2-D scatter) just saved at path."""
        if self.writer:
            import numpy as np
            from PIL import Image
            self.writer.add_image("samples", np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")
            self.writer.flush()

    def close(self):
        if self.writer:
            self.writer.close()


def save_samples(G, fixed_z, path, real_points=None):
    """An 8x8 grid of G's images, or a scatter of its 2-D points over the data; rendered in memory and
    written atomically, as every output."""
    with eval_mode(G), torch.no_grad():
        fake = G(fixed_z).cpu()
    if fake.dim() == 4:
        import torchvision
        png = io.BytesIO()
        torchvision.utils.save_image(fake[:64], png, format="png", nrow=8, normalize=True, value_range=(-1, 1))
        atomic_write_bytes(path, png.getvalue())
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(real_points[:, 0], real_points[:, 1], s=2, c="0.7", label="data")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:orange", label="G(z)")
    lim = real_points.abs().max().item() * 1.4
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=os.path.basename(path)[:-4])
    ax.legend(loc="upper right", markerscale=4, fontsize=7)
    atomic_save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)


PERIODIC = ("log_every", "eval_every", "sample_every", "ckpt_every")


def due(every, step, total_steps):
    """Whether a periodic action (every N steps, 0 = never) falls on `step`; the last step always counts."""
    return bool(every) and (step % every == 0 or step == total_steps)


def eval_due(cfg, step, total_steps):
    """--eval-every's steps and the end, and the --eval-at steps (which also imply the end)."""
    if cfg["eval_at"] and (step in cfg["eval_at"] or step == total_steps):
        return True
    return due(cfg["eval_every"], step, total_steps)


def eval_missing(cfg, step, total_steps, evals):
    """An eval falls on `step` and is not yet done (a resumed run may have been killed during it)."""
    return eval_due(cfg, step, total_steps) and not (evals and evals[-1]["step"] == step)


def refuse_existing_run(cfg, lock_held=False):
    """A run directory in use is continued (--resume, from its checkpoint) or replaced (--overwrite)
    only when asked: --resume with no checkpoint to continue from never trains over a run's files
    (a completed run whose checkpoints were deleted would lose its logs). Before this process holds
    the run's lock, a run another process is training is left to rundir.locked, which names it."""
    out = cfg["out"]
    if not rundir.is_empty(out) and not (cfg["resume"] or cfg["overwrite"]):
        raise UserError(f"run directory {out} already exists; pass --resume to continue it, "
                        f"--overwrite to start again, or another --out")
    found = run_files_in(out)
    if cfg["resume"] and found and not os.path.exists(rundir.last_checkpoint(out)) and \
            (lock_held or not rundir.is_training(out)):
        status = (read_json(os.path.join(out, "summary.json")) or {}).get("status")
        what = f"a {status} run" if status else f"a run's files ({', '.join(found)})"
        raise UserError(f"{out} holds {what} but no checkpoint to resume from ({rundir.last_checkpoint(out)}); "
                        f"pass --overwrite to train it again, or another --out")


def prepare_run_dir(cfg):
    """Decide between a fresh run and a resumed one; return the checkpoint to resume or None."""
    out, ckpt_path = cfg["out"], rundir.last_checkpoint(cfg["out"])
    refuse_existing_run(cfg, lock_held=True)
    if not (cfg["resume"] and os.path.exists(ckpt_path)):
        return None
    saved = rundir.read_config(out)
    defaults = vars(build_parser().parse_args([]))  # for settings added after the run was started
    saved = {k: saved.get(k, defaults[k]) for k in RUN_DEFINING} | {"lr": saved.get("lr", defaults["lr"])}
    # a setting that does not apply to this run (None) cannot have changed it
    changed = [k for k in RUN_DEFINING if cfg[k] is not None and saved[k] != cfg[k]]
    if changed:
        k = changed[0]
        was, now = typed_flag(saved, k), typed_flag(cfg, k)
        raise UserError(f"{out} was trained with {was} {saved[k]}, not {'' if now == was else now + ' '}{cfg[k]}; "
                        f"resume with the same settings or use another --out")
    return rundir.load_checkpoint(ckpt_path, "delete it or pass --overwrite to start again")


def typed_flag(cfg, name):
    """The flag that set a setting, as the user typed it: --lr for a learning rate left to it."""
    if name in ("lr_d", "lr_g") and cfg[name] == cfg["lr"]:
        return "--lr"
    return "--" + name.replace("_", "-")


RUN_FILES = ["config.json", "metrics.csv", "eval.csv", "summary.json", "samples", "checkpoints", "tensorboard"]


def run_files_in(out):
    """The RUN_FILES that out holds: train.py's files, not the user's."""
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]


def clear_run_files(out):
    """Delete what train.py writes in a run directory (only that: --out may hold other files)."""
    for name in RUN_FILES:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def write_summary(cfg, status, trainer, total_steps, last_row, evals, seconds):
    summary = {"status": status, "step": trainer.step, "total_steps": total_steps, "seconds": round(seconds, 1)}
    if last_row:
        summary.update(epoch=last_row["epoch"], loss_d=last_row["loss_d"], loss_g=last_row["loss_g"])
    summary.update(eval_summary(evals))
    summary = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
    text = json.dumps(summary, indent=2, allow_nan=False)  # a NaN is null: strict JSON readers reject a bare NaN
    atomic_write_text(os.path.join(cfg["out"], "summary.json"), text + "\n")


# How "best" reads per metric; density has no best (above 1 is not better), the FID floor is a constant.
BEST = {"fid": min, "kid": min, "rkl": min, "modes": max, "hq_pct": max, "precision": max, "recall": max,
        "coverage": max}


def eval_summary(evals):
    """The final value of every evaluation metric, and the best one (with its step) of each in BEST."""
    out = {}
    if not evals:
        return out
    finite = lambda v: v is not None and v == v  # noqa: E731  (NaN, e.g. rkl with no mode captured)
    for key, value in evals[-1].items():
        if key == "step":
            continue
        out[f"final_{key}"] = value if finite(value) else None
        candidates = [r for r in evals if finite(r.get(key))]
        if key in BEST and candidates:
            best = BEST[key](candidates, key=lambda r: r[key])
            out[f"best_{key}"], out[f"best_{key}_step"] = best[key], best["step"]
    return out


class StopRequest:
    """Ctrl-C or a scheduler's SIGTERM asks the loop to stop after the current step, so the
    checkpoint never holds a half-done step (exact resume). A second Ctrl-C stops at once,
    without a checkpoint: the last periodic one is kept. Restores the previous handlers on exit."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- main

def main(argv=None):
    """Every input (the data root, the FID weights) and the run directory are checked before that
    directory is made: bad input leaves nothing behind. A write that fails (a full disk) stops the run
    with exit code 1; its last checkpoint is whole, as every file (atomic writes)."""
    cfg = resolve(build_parser().parse_args(argv))
    check_writable_folder(cfg["out"], "--out")
    refuse_existing_run(cfg)  # before the data is loaded, which can take minutes
    dataset = load_training_data(cfg)
    device = torch.device(cfg["device"])
    evaluator = make_evaluator(cfg, device)
    with rundir.locked(cfg["out"]):  # one process per run directory
        ckpt = prepare_run_dir(cfg)
        rundir.remove_stale_temporaries(cfg["out"])
        cfg["backend"] = ops.set_backend(cfg["fused"], cfg["device"])  # --fused on: an error off the build's devices
        if ckpt is None:  # --overwrite, or --resume of a folder with none of train.py's files: start clean
            clear_run_files(cfg["out"])
        try:
            return train(cfg, device, dataset, ckpt, evaluator)
        except WriteError as e:
            raise WriteError(e.path, e.error, "the last checkpoint is kept: make room, then --resume continues "
                                              "from it") from None


def train(cfg, device, dataset, ckpt, evaluator):
    """Train the run of cfg to its total steps (from ckpt where it resumes), then write its summary;
    returns the exit code: 0 completed, 1 diverged, 130 interrupted."""
    torch.manual_seed(cfg["seed"])
    cfg["tf32"] = set_determinism(device, cfg["deterministic"], cfg["tf32"])
    run = Run(cfg, device, dataset, evaluator)
    if ckpt is not None and not run.resume(ckpt):
        return 0
    atomic_write_text(os.path.join(cfg["out"], "config.json"), json.dumps({**cfg, **environment(device)}, indent=2) + "\n")
    status = run.loop(resumed=ckpt is not None)
    out, trainer = cfg["out"], run.trainer
    write_summary(cfg, status, trainer, run.total_steps, run.log.last_row, run.evals, time.time() - run.start)
    if status == "diverged":
        print(f"{out}: diverged (NaN or Inf loss) before step {trainer.step}; the last good checkpoint is kept",
              file=sys.stderr)
        return 1
    if status == "interrupted":
        print(f"{out}: interrupted at step {trainer.step}; --resume continues from its last checkpoint", file=sys.stderr)
        return 130
    print(f"{out}: completed {trainer.step} steps in {time.time() - run.start:.0f} s")
    return 0


class Run:
    """One run's loop, top to bottom: train steps, sum their statistics over a log interval, and at each
    step something is due, save what is due (a kept checkpoint, an evaluation, samples, the checkpoint)
    once the statistics are checked finite. Mutates cfg once, here: the steps and epochs that run."""

    def __init__(self, cfg, device, dataset, evaluator):
        self.cfg, self.device, self.evaluator = cfg, device, evaluator
        self.trainer = Trainer(cfg, device)
        self.batches = Batches(dataset.to(device), cfg["batch_size"], cfg["seed"])
        self.total_steps = cfg["steps"] or math.ceil(cfg["epochs"] * self.batches.per_epoch / cfg["n_critic"])
        # what runs, not what was asked: --steps decides the epochs, --epochs the steps
        cfg.update(total_steps=self.total_steps, steps=self.total_steps,
                   epochs=round(self.total_steps * cfg["n_critic"] / self.batches.per_epoch, 4))
        os.makedirs(os.path.join(cfg["out"], "checkpoints"), exist_ok=True)
        self.seconds, self.evals = 0.0, []
        self.window, self.window_n = torch.zeros(len(STEP_STATS), device=device), 0  # sums since the last log
        self.finite = True  # the statistics of every logged interval were; the current ones are in window
        images = dataset.dtype == torch.uint8
        self.fixed_z = torch.randn(64 if images else 2000, cfg["z_dim"],
                                   generator=torch.Generator().manual_seed(cfg["seed"] + 1)).to(device)
        self.real_points = None if images else dataset[:2000]

    def resume(self, ckpt):
        """Continue from a checkpoint; False where the run has nothing left to do."""
        trainer, out = self.trainer, self.cfg["out"]
        trainer.load_state(ckpt, os.path.join(out, "checkpoints", "last.pt"))
        self.batches.drawn = trainer.step * self.cfg["n_critic"]
        self.seconds, self.evals = ckpt["seconds"], ckpt["evals"]
        window = ckpt["window"].to(self.device)
        self.window = torch.cat([window, window.new_zeros(len(STEP_STATS) - len(window))])  # older runs: fewer
        self.window_n = ckpt["window_n"]
        if trainer.step >= self.total_steps and not eval_missing(self.cfg, trainer.step, self.total_steps, self.evals):
            print(f"{out} already has {trainer.step} of {self.total_steps} steps")
            return False
        print(f"{out}: resuming at step {trainer.step} of {self.total_steps}")
        return True

    def checkpoint(self, name="last.pt"):
        extra = {"seconds": time.time() - self.start, "evals": self.evals, "epoch": self.batches.epoch(),
                 "window": self.window.cpu(), "window_n": self.window_n}
        atomic_torch_save(self.trainer.state(extra), os.path.join(self.cfg["out"], "checkpoints", name))

    def keep_checkpoint(self, step):
        """A copy of the state at a --save-at step, which later checkpoints do not replace."""
        if step in self.cfg["save_at"]:
            self.checkpoint(f"step{step:07d}.pt")

    def save_outputs(self, step):
        """The eval, samples and checkpoint due at `step`. A checkpoint comes before the eval (an FID
        takes minutes), so a run killed during it resumes with its training and only redoes the eval."""
        cfg, out = self.cfg, self.cfg["out"]
        eval_now = eval_missing(cfg, step, self.total_steps, self.evals)  # False with --eval-every 0 (no evaluator)
        if eval_now:
            self.checkpoint()
            self.evals.append({"step": step, **self.evaluator(self.trainer.G, step)})
            atomic_write_csv(pd.DataFrame(self.evals), os.path.join(out, "eval.csv"))
            self.board.scalars("eval", self.evals[-1])
        if due(cfg["sample_every"], step, self.total_steps):
            sample_path = os.path.join(out, "samples", f"step{step:07d}.png")
            save_samples(self.trainer.G, self.fixed_z, sample_path, self.real_points)
            self.board.image(sample_path, step)
        if eval_now or due(cfg["ckpt_every"], step, self.total_steps):
            self.checkpoint()

    def all_finite(self):
        """No step statistic so far is NaN or infinite: checked on the interval sums, not step by step
        (a NaN or an infinity stays in a sum), which saves three kernels a step."""
        return self.finite and bool(torch.isfinite(self.window).all())

    def log_interval(self, step, bar):
        """metrics.csv's row of the interval that ends at `step`: the means of its step statistics."""
        values = (self.window / self.window_n).tolist()  # the one host sync per log interval
        self.finite = self.finite and all(map(math.isfinite, values))
        self.log.write([step, round(self.batches.epoch(), 4), *values, round(time.time() - self.start, 2)])
        self.board.scalars("train", self.log.last_row)
        named = dict(zip(STEP_STATS, values))
        bar.set_postfix(loss_d=f"{named['loss_d']:.4f}", loss_g=f"{named['loss_g']:.4f}")
        self.window.zero_()
        self.window_n = 0

    def something_due(self, step):
        cfg = self.cfg
        return (any(due(cfg[k], step, self.total_steps) for k in PERIODIC) or step in cfg["save_at"]
                or eval_due(cfg, step, self.total_steps))

    def loop(self, resumed):
        """Train to the total steps; returns the status: completed, diverged or interrupted."""
        from tqdm import tqdm
        cfg, trainer, out = self.cfg, self.trainer, self.cfg["out"]
        self.log = MetricsLog(os.path.join(out, "metrics.csv"), resume_step=trainer.step if resumed else None)
        self.board = TensorBoard(out, cfg["tensorboard"], trainer.step + 1 if resumed else 0)
        bar = tqdm(total=self.total_steps, initial=trainer.step, desc=os.path.basename(out), dynamic_ncols=True,
                   disable=None)  # no bar when stderr is not a terminal (logs, CI, sweeps)
        status, self.start = "completed", time.time() - self.seconds
        try:
            with StopRequest() as stop:
                if resumed and eval_missing(cfg, trainer.step, self.total_steps, self.evals):
                    self.save_outputs(trainer.step)  # killed during this eval: redo it, and what came after it
                if trainer.step == 0:
                    self.keep_checkpoint(0)
                while trainer.step < self.total_steps:
                    if stop.requested:  # between steps: the state is whole
                        status = "interrupted"
                        if self.all_finite():
                            self.checkpoint()
                        break
                    self.window += trainer.train_step(self.batches, self.total_steps)
                    self.window_n += 1
                    bar.update(1)
                    step = trainer.step
                    if due(cfg["log_every"], step, self.total_steps):
                        self.log_interval(step, bar)
                    if not self.something_due(step):
                        continue
                    if not self.all_finite():  # checked before anything is evaluated or saved
                        status = "diverged"
                        break
                    self.keep_checkpoint(step)
                    self.save_outputs(step)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, keep the last periodic checkpoint
            status = "interrupted"
        finally:
            bar.close()
            self.log.close()
            self.board.close()
        return status


TF32_MODES = {"off": (False, False), "conv": (True, False), "all": (True, True)}  # (cuDNN convolutions, matmuls)


def set_determinism(device, deterministic, tf32="auto"):
    """cudnn.benchmark picks the fastest kernels per shape, which differ from run to run, so GPU runs
    are then not bit-reproducible; --deterministic trades that speed for reproducibility. TF32 keeps
    10 of float32's 23 mantissa bits in the products: off under --deterministic unless asked for.
    Returns the TF32 mode used, for config.json: None on the CPU, which has none."""
    if device.type != "cuda":
        return None
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
    mode = ("off" if deterministic else "conv") if tf32 == "auto" else tf32
    for (obj, name, on, off), enabled in zip(tf32_switches(), TF32_MODES[mode]):
        setattr(obj, name, on if enabled else off)
    return mode


def make_evaluator(cfg, device):
    if not (cfg["eval_every"] or cfg["eval_at"]):
        return None
    from minkgan import evaluation as evaluate
    return evaluate.TrainingEvaluator(cfg, device)

