"""Does the loss matter when D's weights are clipped? Gradient alignment of every loss against WGAN.

    python -m analysis.alignment RUN_DIR [RUN_DIR ...] --csv results/alignment.csv --figure results/figures/alignment.png

The paper clips every D parameter to [-0.01, 0.01]. Then D's logits d stay small, and with
sigmoid(d) ~ 1/2 + d/4 each loss's gradient is WGAN's (E grad d(G(z)) - E grad d(x)) times a
constant: 1/2 for GAN and NS-GAN, 1 for hinge (|d| < 1), 2^-(p+1) for Minkowski p, in D's step
and in G's (LSGAN's G too; its D step weights only the real term). Adam divides the constant out.

For each kept checkpoint of a run (train.py --save-at; checkpoints/stepNNNNNNN.pt) this script
takes one batch of real images and noise (fixed by --seed) and computes, from that same state,
each loss's gradient for D's and G's parameters and the Adam update it would make, and compares
them with WGAN's (n_critic 1): the cosine (`cos_*`) and the norm ratio (`ratio_*`), beside the
small-logit prediction (`pred_ratio_*`; the predicted cosine is 1 where a ratio is predicted).
The Adam update starts from the run's own moments, rescaled by |g_loss| / |g_run| (squared for the
second moment) so that a loss that is a constant multiple of the run's gets exactly the run's
update: the comparison asks what the loss changes beyond its scale.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/alignment.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import glob
import math
import re

import pandas as pd
import torch

import losses
from minkgan import rundir
from minkgan import settings
from minkgan import trainstep
from minkgan.utils import OneLineParser, UserError, check_merge_target, check_writable_file, merge_csv, run_main

COMPARED = [("gan", None), ("nsgan", None), ("lsgan", None), ("hinge", None), ("wgan", None)] + \
           [("minkowski", float(p)) for p in range(1, 9)]
REFERENCE = ("wgan", None)
ALIGNMENT_KEY = ["run", "total_steps", "step", "loss", "p"]  # a rerun of a run's state replaces its rows


def predicted_ratios(loss, p):
    """(D, G) gradient norm ratio to WGAN's for logits -> 0; NaN where the gradient is not a multiple of WGAN's."""
    if loss == "minkowski":
        return 2.0 ** -(p + 1), 2.0 ** -(p + 1)
    return {"gan": (0.5, 0.5), "nsgan": (0.5, 0.5), "lsgan": (math.nan, 1.0), "hinge": (1.0, 1.0),
            "wgan": (1.0, 1.0)}[loss]


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def loss_gradients(G, D, real, z, loss, p):
    """(D's gradient, G's gradient, real logits, fake logits) of one loss, all from the same state and batch."""
    d_loss, g_loss = losses.make_loss(loss, p if p is not None else 4.0)
    fake = G(z)
    logit_real, logit_fake = D(real), D(fake.detach())
    grad_d = torch.autograd.grad(d_loss(logit_real, logit_fake), list(D.parameters()))
    grad_g = torch.autograd.grad(g_loss(D(fake)), list(G.parameters()))
    return flat(grad_d), flat(grad_g), logit_real.detach(), logit_fake.detach()


def adam_update(grad, state, scale, lr, betas, eps):
    """The update Adam makes for `grad` from moments (m, v, step) rescaled by `scale` (flat tensors)."""
    m, v, step = state
    beta1, beta2 = betas
    m = beta1 * scale * m + (1 - beta1) * grad
    v = beta2 * scale ** 2 * v + (1 - beta2) * grad * grad
    t = step + 1
    return -lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps)


def adam_moments(opt_state, params):
    """(m, v, step) of an Adam state dict as flat tensors in parameter order; zeros before the first step."""
    states = opt_state["state"]
    if not states:
        zeros = torch.zeros(sum(p.numel() for p in params))
        return zeros, zeros.clone(), 0
    m = flat([states[i]["exp_avg"] for i in range(len(params))])
    v = flat([states[i]["exp_avg_sq"] for i in range(len(params))])
    return m, v, int(float(states[0]["step"]))


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0).item()


def ratio(a, b):
    return (a.double().norm() / b.double().norm()).item()


def compare(G, D, real, z, run_loss, run_p, opt_g, opt_d, adam_d, adam_g):
    """One row per compared loss: cosines and norm ratios of its gradients and Adam updates against WGAN's."""
    grads = {key: loss_gradients(G, D, real, z, *key) for key in COMPARED + [(run_loss, run_p)]}
    own_d, own_g = grads[(run_loss, run_p)][:2]
    moments_d, moments_g = adam_moments(opt_d, list(D.parameters())), adam_moments(opt_g, list(G.parameters()))

    def update(grad, own, moments, settings):
        return adam_update(grad, moments, ratio(grad, own), *settings)

    ref_d, ref_g, _, _ = grads[REFERENCE]
    ref_upd_d, ref_upd_g = update(ref_d, own_d, moments_d, adam_d), update(ref_g, own_g, moments_g, adam_g)
    rows = []
    for loss, p in COMPARED:
        grad_d, grad_g, logit_real, logit_fake = grads[(loss, p)]
        upd_d, upd_g = update(grad_d, own_d, moments_d, adam_d), update(grad_g, own_g, moments_g, adam_g)
        pred_d, pred_g = predicted_ratios(loss, p)
        logits = torch.cat([logit_real, logit_fake])
        rows.append({"loss": loss, "p": p, "cos_d": cosine(grad_d, ref_d), "ratio_d": ratio(grad_d, ref_d),
                     "pred_ratio_d": pred_d, "cos_g": cosine(grad_g, ref_g), "ratio_g": ratio(grad_g, ref_g),
                     "pred_ratio_g": pred_g, "cos_adam_d": cosine(upd_d, ref_upd_d),
                     "ratio_adam_d": ratio(upd_d, ref_upd_d), "cos_adam_g": cosine(upd_g, ref_upd_g),
                     "ratio_adam_g": ratio(upd_g, ref_upd_g), "logit_abs_mean": logits.abs().mean().item(),
                     "logit_abs_max": logits.abs().max().item()})
    return rows


def kept_checkpoints(run_dir):
    """(step, path) of every --save-at checkpoint of a run, in step order."""
    found = []
    for path in glob.glob(os.path.join(run_dir, "checkpoints", "step*.pt")):
        match = re.fullmatch(r"step(\d+)\.pt", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise UserError(f"{run_dir} has no kept checkpoints (checkpoints/stepNNNNNNN.pt); train it with --save-at")
    return sorted(found)


def adam_settings(cfg, lr):
    """(lr, betas, eps) of the run's Adam for one net; runs from before --adam-eps used torch's eps."""
    return cfg[lr], (cfg["beta1"], cfg["beta2"]), cfg.get("adam_eps", settings.ADAM_EPS)


def align_run(run_dir, batch_size, seed, dataset=None):
    """Rows of every kept checkpoint of one run; `dataset` (uint8 or 2-D tensor) saves loading it again."""
    cfg = rundir.read_config(run_dir)
    dataset = trainstep.load_training_data(cfg) if dataset is None else dataset
    g = torch.Generator().manual_seed(seed)
    real = trainstep.to_input(dataset[torch.randperm(len(dataset), generator=g)[:batch_size]])
    z = torch.randn(batch_size, cfg["z_dim"], generator=g)
    adam_d, adam_g = adam_settings(cfg, "lr_d"), adam_settings(cfg, "lr_g")
    run_p = cfg["p"] if cfg["loss"] == "minkowski" else None
    per_epoch = len(dataset) // cfg["batch_size"]
    rows = []
    for step, path in kept_checkpoints(run_dir):
        ckpt = rundir.load_checkpoint(path, "train the run again with --save-at")
        G, D = rundir.build_models(cfg, "cpu")
        rundir.check_checkpoint(ckpt, path, ["G", "D", "opt_g", "opt_d"], {"G": G, "D": D}, "is it this run's?")
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        for row in compare(G, D, real, z, cfg["loss"], run_p, ckpt["opt_g"], ckpt["opt_d"], adam_d, adam_g):
            rows.append({"run": os.path.basename(os.path.normpath(run_dir)), "total_steps": cfg["total_steps"],
                         "run_loss": cfg["loss"],
                         "n_critic": cfg["n_critic"], "clip": cfg["clip"],
                         "clip_params": cfg.get("clip_params", "all"), "step": step,
                         "epoch": round(step * cfg["n_critic"] / per_epoch, 3), **row})
    return rows


def identities(table):
    """(run, step, loss, p) of each row, p = -1 for losses without one."""
    p = pd.to_numeric(table["p"]).fillna(-1).astype(float)
    return list(zip(table["run"].astype(str), table["step"].astype(int), table["loss"].astype(str), p))


def plot(table, path):
    """Cosine to WGAN's D gradient, G gradient and Adam D update against the largest |logit| of D at
    the state they were measured in, one line per loss: the hypothesis says the cosines are 1 while
    the logits are small, whichever run or step the state comes from."""
    from minkgan import figures  # sets matplotlib's Agg backend; imported only when a figure is asked for
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    table = table.assign(name=[loss if p < 0 else f"minkowski p={p:g}" for _, _, loss, p in identities(table)])
    curves = sorted(table["name"].unique(), key=lambda name: figures.order((name,)))
    for ax, column, title in zip(axes, ["cos_d", "cos_g", "cos_adam_d"],
                                 ["D gradient", "G gradient", "Adam update of D"]):
        for name in curves:
            group = table[table["name"] == name].sort_values("logit_abs_max")
            ax.plot(group["logit_abs_max"], group[column], marker="o", ms=3, lw=1, label=name,
                    **figures.line_style(name, curves))
        ax.set(xscale="log", xlabel="largest |logit| of D at the state (batch)", title=f"cosine to WGAN's {title}",
               ylim=(min(-0.05, table[column].min() - 0.05), 1.05))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    figures.save_figure(fig, path)


def build_parser():
    ap = OneLineParser(prog="python -m analysis.alignment", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories with kept checkpoints (train.py --save-at)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seed of the one batch of real images and noise")
    ap.add_argument("--csv", default=os.path.join("runs", "alignment", "alignment.csv"),
                    help="rows are merged into this CSV (one row per run, its total steps, step, loss, p)")
    ap.add_argument("--figure", default=None, help="also draw the cosines into this PNG")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 2:
        raise UserError(f"--batch-size must be at least 2, got {args.batch_size}")
    check_merge_target(args.csv, ALIGNMENT_KEY, "--csv")
    if args.figure:
        check_writable_file(args.figure, "--figure")
    rows = []
    for run_dir in args.runs:
        rows += align_run(run_dir, args.batch_size, args.seed)
    table = merge_csv(args.csv, pd.DataFrame(rows), ALIGNMENT_KEY,
                      arrange=lambda t: t.sort_values(["run", "total_steps", "step"], kind="stable"))
    if args.figure:
        plot(table, args.figure)
    show = ["run", "step", "loss", "p", "cos_d", "ratio_d", "pred_ratio_d", "cos_g", "cos_adam_d", "logit_abs_max"]
    print(pd.DataFrame(rows)[show].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {args.csv}" + (f" and {args.figure}" if args.figure else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
