"""Do the losses train different generators? Lockstep training from one initialisation.

    python -m analysis.trajectories --dataset folder --data-root data/cifar10-jpeg/train --steps 400 --csv results/trajectories.csv \
        --figure results/figures/trajectories.png

Every loss of --losses starts from the same G and D (same seed), sees the same real batches and
the same noise at every step (n_critic 1, D clipped as train.py does), so the only difference
between their runs is the loss. Every --every steps the script measures how far each generator's
images on fixed noise are from the reference loss's (RMS pixel distance, in [-1, 1] units), beside
two controls of the same loss as the reference: a run whose G starts with a perturbation of
--nudge (how fast training amplifies a last-bit difference) and a run with another seed (another
initialisation, other batches and noise: how far apart two independent runs are). If the losses
stay closer to each other than two seeds do, the loss does not decide what is learned.
Any other flag (--clip, --clip-params, --width, --lr, ...) goes to train.py's settings.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/trajectories.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse

import pandas as pd
import torch

from minkgan import rundir
from minkgan import settings
from minkgan import trainstep
from minkgan.utils import OneLineParser, UserError, atomic_write_csv, check_merge_target, check_writable_file, eval_mode, run_main

LOSSES = ["wgan", "gan", "minkowski-p1", "minkowski-p2", "minkowski-p4", "minkowski-p8"]


def parse_member(name):
    """'minkowski-p4' -> ('minkowski', 4.0); 'gan' -> ('gan', None)."""
    loss, _, p = name.partition("-p")
    if loss == "minkowski" and not p:
        raise UserError("name the exponent of each Minkowski loss, e.g. minkowski-p4")
    try:
        return loss, float(p) if p else None
    except ValueError:
        raise UserError(f"cannot read the exponent of {name!r}; write e.g. minkowski-p4") from None


class Member:
    """One training run of the lockstep: a Trainer, its batches and its own stream of random numbers."""

    def __init__(self, name, cfg, dataset, seed, nudge=0.0):
        loss, p = parse_member(name)
        self.name, self.seed, self.nudge = name, seed, nudge
        self.cfg = {**cfg, "loss": loss, "p": p if p is not None else cfg["p"], "seed": seed, "n_critic": 1}
        torch.manual_seed(seed)  # as train.train: the seed alone fixes the initialisation
        self.trainer = trainstep.Trainer(self.cfg, torch.device("cpu"))
        if nudge:
            with torch.no_grad():
                for param in self.trainer.G.parameters():
                    param.add_(nudge * torch.randn_like(param))
        self.batches = trainstep.Batches(dataset, cfg["batch_size"], seed)
        self.rng = torch.get_rng_state()

    def step(self, total_steps):
        """One D and one G step, drawing the noise from this member's own random stream."""
        torch.set_rng_state(self.rng)
        self.trainer.train_step(self.batches, total_steps)
        self.rng = torch.get_rng_state()

    @torch.no_grad()
    def images(self, z):
        with eval_mode(self.trainer.G):
            return self.trainer.G(z)


def make_members(cfg, dataset, losses, nudge):
    """The losses from one seed, then the two controls of the first (reference) loss."""
    members = [Member(name, cfg, dataset, cfg["seed"]) for name in losses]
    members.append(Member(losses[0], cfg, dataset, cfg["seed"], nudge=nudge))
    members[-1].name = f"{losses[0]} (nudged {nudge:g})"
    members.append(Member(losses[0], cfg, dataset, cfg["seed"] + 1))
    members[-1].name = f"{losses[0]} (seed {cfg['seed'] + 1})"
    return members


def distances(members, z):
    """(name, RMS pixel distance of its images to the reference's) for each member; the first is the reference."""
    reference = members[0].images(z)
    return [(m.name, (m.images(z) - reference).pow(2).mean().sqrt().item()) for m in members]


def run(cfg, dataset, losses, steps, every, nudge, n_images, write):
    """Train the members in lockstep; write(table) after each measurement, so an interrupted run keeps its rows."""
    members = make_members(cfg, dataset, losses, nudge)
    z = torch.randn(n_images, cfg["z_dim"], generator=torch.Generator().manual_seed(cfg["seed"] + 12345))
    rows = []
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            epoch = step / members[0].batches.per_epoch
            rows += [{"step": step, "epoch": round(epoch, 4), "member": name, "reference": members[0].name,
                      "rms_distance": value} for name, value in distances(members, z)]
            print(f"step {step}: " + ", ".join(f"{r['member']} {r['rms_distance']:.4f}" for r in rows[-len(members):]),
                  flush=True)
            write(pd.DataFrame(rows))
        if step < steps:
            for member in members:
                member.step(steps)
    return pd.DataFrame(rows)


def plot(table, path):
    """Each member's distance to the reference over steps; the controls dashed."""
    from minkgan import figures  # sets matplotlib's Agg backend; imported only when a figure is asked for
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, group in table.groupby("member", sort=False):
        if name != group["reference"].iloc[0]:
            ax.plot(group["step"], group["rms_distance"], ls="--" if "(" in name else "-", marker="o", ms=2, label=name)
    ax.set(xlabel="generator step", ylabel="RMS distance of G's images to the reference's",
           title=f"Lockstep training from one initialisation (reference: {table['reference'].iloc[0]})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    figures.save_figure(fig, path)


def build_parser():
    ap = OneLineParser(prog="python -m analysis.trajectories", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--losses", nargs="+", default=LOSSES, help="the first is the reference; minkowski-pP for p")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=25, help="measure the distances every N steps")
    ap.add_argument("--nudge", type=float, default=1e-6, help="std of the perturbation of the nudged control's G")
    ap.add_argument("--n-images", type=int, default=256, help="fixed noise vectors the distance is taken over")
    ap.add_argument("--csv", default=os.path.join("runs", "trajectories", "trajectories.csv"))
    ap.add_argument("--figure", default=None, help="draw the distances over steps here")
    return ap


def main(argv=None):
    args, rest = build_parser().parse_known_args(argv)
    if args.steps < 1 or args.every < 1 or args.n_images < 1:
        raise UserError("--steps, --every and --n-images must be at least 1")
    if "--n-critic" in rest or "--loss" in rest or "--p" in rest:
        raise UserError("analysis/trajectories.py sets the loss (--losses) and n_critic (1) itself; drop --loss, --p, --n-critic")
    cfg = settings.resolve(settings.build_parser().parse_args(["--loss", "wgan", "--n-critic", "1", *rest]))
    if cfg["gp"] or cfg["instance_noise"] or cfg["diversity"]:
        raise UserError("analysis/trajectories.py compares plain losses: drop --gp, --instance-noise and --diversity")
    for name in args.losses:
        parse_member(name)
    check_merge_target(args.csv, ["step", "member", "reference"], "--csv")  # it replaces only a table of its own
    if args.figure:
        check_writable_file(args.figure, "--figure")
    dataset = trainstep.load_training_data(cfg)
    budget = {"dataset": cfg["dataset"], "arch": cfg["arch"], "clip": cfg["clip"], "clip_params": cfg["clip_params"],
              "batch_size": cfg["batch_size"], "seed": cfg["seed"], "hardware": rundir.hardware_name(torch.device("cpu"))}
    table = run(cfg, dataset, args.losses, args.steps, args.every, args.nudge, args.n_images,
                write=lambda rows: atomic_write_csv(rows.assign(**budget), args.csv))
    print(f"wrote {args.csv}")
    if args.figure:
        plot(table, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    run_main(main)
