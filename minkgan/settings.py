"""train.py's settings: its flags, their checks and the defaults that depend on the loss and the data,
the run's name, and the one upgrade of a config.json written by an older version.

The sweep (ablate_p.py), the benchmarks and the analyses read the same flags through build_parser, so
a setting has one name, one default and one check.
"""
import argparse
import math
import os

import torch

from minkgan import data
import losses
import models
from minkgan import precision
from minkgan.utils import HelpFormatter, OneLineParser, UserError, check_device

ADAM_EPS = 1e-8  # torch's default; the paper names none

# config.json's version: 1 (no config_version key) is every run written before 2026-12-07; upgrade_config
# reads an older one as this version writes it.
CONFIG_VERSION = 2
# Settings that define the trained model; a resumed run must keep them.
RUN_DEFINING = ["loss", "p", "minkowski_on", "dataset", "arch", "z_dim", "width", "d_norm", "sn",
                "batch_size", "lr_d", "lr_g", "beta1", "beta2", "adam_eps", "clip", "clip_params", "gp", "gp_center",
                "n_critic", "label_smooth", "instance_noise", "diversity", "precision", "seed"]


# the flags ablate_p.py sets for each run of a sweep; it passes every other flag through
SET_BY_SWEEP = ["--out", "--resume", "--overwrite", "--seed", "--loss", "--p", "--dataset", "--eval-every"]


DESCRIPTION = """Train a GAN with any loss of losses.py; the defaults are the paper's Table 1.

    python train.py --loss minkowski --p 4                 # CIFAR-10, 200 epochs, as the paper
    python train.py --dataset ring8 --steps 3000           # the 2-D benchmark, minutes on a CPU

A run directory holds config.json, metrics.csv, samples/, checkpoints/last.pt and summary.json;
`--resume` continues a run exactly where it stopped.
"""


def build_parser():
    ap = OneLineParser(prog="train.py", description=DESCRIPTION, formatter_class=HelpFormatter,
                       epilog="ablate_p.py passes every flag through to each run of a sweep except those it sets: "
                              + " ".join(SET_BY_SWEEP) + ".")
    for add_flags in FLAG_GROUPS:
        add_flags(ap.add_argument)
    return ap


def long_options():
    """Every --flag of train.py, read from the flag groups themselves (not from argparse's internals)."""
    names = []
    for add_flags in FLAG_GROUPS:
        add_flags(lambda *flags, **_: names.extend(f for f in flags if f.startswith("--")))
    return names


def add_model_flags(a):
    """train.py's flags for the loss, the data and the nets."""
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


def add_optimisation_flags(a):
    """train.py's flags for the budget, Adam, the clipping, the penalty and the other tricks."""
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


def add_hardware_flags(a):
    """train.py's flags for the seed, the device and what runs faster or reproducibly there."""
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


def add_output_flags(a):
    """train.py's flags for the run folder, its logs, checkpoints and evaluations."""
    a("--out", default=None, help="run directory; default runs/<dataset>/<loss>[-p<p>]-seed<seed>")
    a("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    a("--overwrite", action="store_true", help="delete the run in --out (the files train.py writes) and start again")
    a("--log-every", type=int, default=100)
    a("--sample-every", type=int, default=2000)
    a("--ckpt-every", type=int, default=500,
      help="steps between checkpoints/last.pt, which --resume continues from (a run cut before the first one starts again)")
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


FLAG_GROUPS = [add_model_flags, add_optimisation_flags, add_hardware_flags, add_output_flags]


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
    cfg["config_version"] = CONFIG_VERSION
    return drop_inapplicable(cfg)


# Every run starts at D = 1/2, where the Minkowski loss's gradient per logit is |1/2|^(p-1) * 1/4 / batch
# = 2^-(p+1) / batch. Adam divides by the root of its square, which float32 flushes to 0 past p of about
# 75 (Adam's step is then the gradient over eps: nothing), and the gradient itself is 0 past p of about
# 150. At 50 the squares are still normal float32 numbers (tests/training/test_train.py, a 2-D run's nets).
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


def run_name(run):
    """<loss>[-p<p>][-ncritic<k>][-eps<e>][-clip<c>][-clipweights][-bfloat16]-seed<s> of a run's settings (a
    config, or a sweep's plan: loss, seed, and where set p, n_critic, adam_eps, clip, clip_params, dataset,
    precision). n_critic, Adam's eps, the clipping and the precision appear only where they are not the
    defaults, so two readings of a run never share a folder."""
    loss, dataset = run["loss"], run.get("dataset", "cifar10")
    n_critic, adam_eps, precision_name = run.get("n_critic"), run.get("adam_eps"), run.get("precision")
    name = loss + (f"-p{run['p']:g}" if loss == "minkowski" else "")
    name += f"-ncritic{n_critic}" if n_critic is not None and n_critic != losses.default_n_critic(loss) else ""
    name += f"-eps{adam_eps:g}" if adam_eps is not None and adam_eps != ADAM_EPS else ""
    clip = default_clip(loss, dataset) if run.get("clip") is None else run["clip"]
    name += f"-clip{clip:g}" if clip != default_clip(loss, dataset) else ""
    name += "-clipweights" if clip and run.get("clip_params") == "weights" else ""
    name += f"-{precision_name}" if precision_name and precision_name != precision.DEFAULT else ""
    return f"{name}-seed{run['seed']}"


def default_run_dir(cfg):
    return os.path.join("runs", cfg["dataset"], run_name(cfg))


def resolve_device(name):
    return str(check_device("cuda" if name == "auto" and torch.cuda.is_available() else
                            "cpu" if name == "auto" else name))


TF32_MODES = {"off": (False, False), "conv": (True, False), "all": (True, True)}  # (cuDNN convolutions, matmuls)


def typed_flag(cfg, name):
    """The flag that set a setting, as the user typed it: --lr for a learning rate left to it."""
    if name in ("lr_d", "lr_g") and cfg[name] == cfg["lr"]:
        return "--lr"
    return "--" + name.replace("_", "-")


def upgrade_config(saved):
    """An older config.json as this version writes it, in this one place (not as shims in its readers).
    Version 1 lacks the settings added after its run was written (precision, fid_precision, eval_at,
    tensorboard, tf32; and on the oldest runs lr, clip_params): that run ran with their default, which
    fills them. tf32 is None there, as on the CPU: not recorded is not "auto"."""
    if saved.get("config_version", 1) >= CONFIG_VERSION:
        return dict(saved)
    defaults = vars(build_parser().parse_args([])) | {"tf32": None}
    return {**defaults, **saved, "config_version": CONFIG_VERSION}


def paper_setup_differences(argv=()):
    """The settings of paper.TABLE1 that train.py with these flags (none: its defaults) does not run with,
    as {flag: (ours, the paper's)}; clip is checked for every loss of Table 2, as the paper clips them all."""
    from minkgan import paper
    differences = {}
    for loss in ("minkowski", "gan", "wgan"):
        cfg = resolve(build_parser().parse_args(["--loss", loss, *argv]))
        for name, value in paper.TABLE1.items():
            if cfg[name] != value:
                differences.setdefault("--" + name.replace("_", "-"), (cfg[name], value))
    return differences
