"""Small exact games that explain GAN (in)stability, and where the Minkowski loss stands in them.

Three subcommands, each writes a CSV and a figure to runs/dynamics/ (--out to change; the committed
ones are in results/dynamics/). A CSV whose numbers agree with this run's to a relative 1e-9 (a rerun
on another CPU: last-digit noise) is left as it is, byte for byte, and so is its figure:

  bilinear   f(x, y) = x*y, G minimises over x, D maximises over y, from (1, 1). The exact flow
             (a rotation, radius constant), simultaneous gradient descent-ascent (radius grows by
             exactly sqrt(1 + eta^2) per step), alternating updates (bounded: they conserve
             x^2 + y^2 - eta*x*y) and extragradient / optimistic updates (converge; extragradient
             shrinks the radius by exactly sqrt(1 - eta^2 + eta^4) per step).

  two-point  data at -1 and +1 (weight pi at -1, default 1/2); the generator puts mass q = sigmoid(u)
             at -1 and 1 - q at +1 (it can only place mass on the two points); the discriminator is
             two logits (d_-, d_+) at the two points, so it can represent every D. Both players use
             the repository's losses (losses.make_loss), weighted exactly by the two distributions:
                 L_D(d; q) = pi*l(d_-, .) + (1-pi)*l(d_+, .) + q*l(., d_-) + (1-q)*l(., d_+)
             (see `two_point_losses`), L_G = q*g(d_-) + (1-q)*g(d_+) - lambda*H(q), H the entropy.
             What the model shows (decided after working it out):
               * optimal D (D solved exactly for every q): q -> pi from every start. On two points
                 every loss of the repository gives a convex objective in q (an f-divergence or W1)
                 and the generator already covers both points, so there is no mode collapse to fix;
               * learned D, simultaneous updates, a fast generator (eta_G = 12, eta_D = 0.1): the
                 equilibrium q = 1/2 is linearly unstable (spectral radius 1.006 > 1, a Hopf cycle)
                 and q hops between near-collapse states (q ~ 0.08 <-> 0.92): mode hopping;
               * a fixed entropy bonus lambda >= ~0.01 damps the rotation (radius 0.977): q -> 1/2.
                 For pi = 1/2 the entropy's maximiser is the data's q, so the bonus biases nothing
                 and a constant small lambda works as well as annealing;
               * annealing lambda from 0.3 to 0 (homotopy) reaches q = 1/2 from every start (to
                 round-off); held at lambda = 0 afterwards, a 1e-6 nudge regrows into the cycle --
                 annealing finds the equilibrium, it cannot make an unstable equilibrium stable.

  dirac      the Dirac-GAN of Mescheder et al. 2018: data at 0, generator theta (fake sample theta),
             linear discriminator logit D_psi(x) = psi*x; every loss of losses.py (Minkowski on
             probabilities for p = 1..8), with no penalty, R1 (zero-centred, on real data) or the
             WGAN-GP penalty (unit-centred), both losses.gradient_penalty with weight lam. The
             Jacobian of v = (-dL_G/dtheta, -dL_D/dpsi) at (0, 0) by autograd (float64), its
             eigenvalues, checked against the closed form J = [[0, a], [-b, -c]] (c = 2*lam with R1,
             Mescheder's gamma = 2*lam), and simultaneous / alternating gradient steps from (1, 1).

`python -m analysis.dynamics all` runs the three. Each takes seconds on a CPU. The games themselves are
functions of numbers in minkgan/games/; this command writes their tables and draws them.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/dynamics.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import dataclasses
import math

import numpy as np
import pandas as pd

import losses
from minkgan.games import bilinear, dirac, two_point
from minkgan.utils import (AGREE_RTOL, OneLineParser, UserError, atomic_save_figure, check_writable_folder, run_main,
                   write_csv_unless_agrees)

DEFAULT_OUT = os.path.join("runs", "dynamics")


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save_csvs(out, tables):
    """Write each {file name: DataFrame} into out, unless the file there agrees with it
    (utils.write_csv_unless_agrees); returns whether any was written."""
    return any([write_csv_unless_agrees(df, os.path.join(out, name)) for name, df in tables.items()])


def _save_fig(fig, path, numbers_changed):
    """Write a figure atomically, unless it is there and its numbers were kept: then it is kept too."""
    if numbers_changed or not os.path.isfile(path):
        atomic_save_figure(fig, path, dpi=110, bbox_inches="tight")
    _plt().close(fig)


def _report(numbers_changed, *paths):
    """Say what was written, or kept because this run's numbers agree with those there."""
    verb = "wrote" if numbers_changed else f"kept (they agree with this run to a relative {AGREE_RTOL:g})"
    print(f"{verb} {', '.join(paths)}")


def cmd_bilinear(args):
    if not (0 < args.eta < 1):
        raise UserError(f"--eta must be in (0, 1), got {args.eta}")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    df, trajs = bilinear.bilinear_table(args.eta, args.steps)
    csv = os.path.join(args.out, "bilinear.csv")
    changed = _save_csvs(args.out, {"bilinear.csv": df})
    png = os.path.join(args.out, "bilinear.png")
    _save_fig(plot_bilinear(trajs, args.eta, args.steps), png, changed)
    last = df[df.step == args.steps].set_index("method")["radius"]
    print("bilinear: final radius " + ", ".join(f"{m} {last[m]:.4g}" for m in bilinear.BILINEAR_METHODS))
    _report(changed, csv, png)


def plot_bilinear(trajs, eta, steps):
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.6))
    for m, tr in trajs.items():
        ax[0].plot(tr[:, 0], tr[:, 1], lw=1.2, label=m)
        ax[1].plot(np.hypot(tr[:, 0], tr[:, 1]), lw=1.2, label=m)
    ax[0].plot([0], [0], "k*", ms=10)
    ax[0].plot([1], [1], "ko", ms=5)
    ax[0].set(xlabel="x (generator)", ylabel="y (discriminator)", title=f"f(x, y) = xy from (1, 1), eta = {eta}")
    ax[0].set_aspect("equal")
    ax[0].legend(fontsize=8)
    n = np.arange(steps + 1)
    ax[1].plot(n, math.sqrt(2) * (1 + eta ** 2) ** (n / 2), "k:", lw=1, label="sqrt(2)(1+eta^2)^(n/2)")
    ax[1].set(yscale="log", xlabel="step", ylabel="radius sqrt(x^2 + y^2)", title="radius")
    ax[1].legend(fontsize=8)
    return fig


TWO_POINT_FLAGS = [f.name for f in dataclasses.fields(two_point.Settings)]


def cmd_two_point(args):
    if not (0 < args.pi < 1):
        raise UserError(f"--pi must be in (0, 1), got {args.pi}")
    if args.loss not in losses.PROBABILISTIC:
        raise UserError(f"two-point needs a loss with probabilities ({', '.join(losses.PROBABILISTIC)}), not {args.loss!r}")
    if args.steps < 10 or args.n_init < 2 or args.hold < 0 or args.opt_steps < 1:
        raise UserError("--steps must be >= 10, --n-init >= 2, --hold >= 0, --opt-steps >= 1")
    if args.lam0 < 0 or args.lam_small < 0 or args.eta_g <= 0 or args.eta_d <= 0:
        raise UserError("entropy weights must be >= 0 and learning rates > 0")
    s = two_point.Settings(**{name: getattr(args, name) for name in TWO_POINT_FLAGS})
    curves, rho = two_point.every_setting(s), two_point.spectral_radii(s)
    df, trajs = two_point.tables(s, curves, rho)
    csv = os.path.join(args.out, "two_point.csv")
    changed = _save_csvs(args.out, {"two_point.csv": df, "two_point_trajectories.csv": trajs})
    png = os.path.join(args.out, "two_point.png")
    _save_fig(plot_two_point(s, curves, df, rho), png, changed)
    for name in curves:
        sub = df[df.setting == name]
        extra = ""
        if "q_after_hold_at_lambda0" in sub and sub.q_after_hold_at_lambda0.notna().any():
            extra = (f"; then {s.hold} steps at lambda=0 after u += {s.perturb:g}: "
                     f"max|q-pi| = {np.abs(sub.q_after_hold_at_lambda0 - s.pi).max():.3g}")
        print(f"two-point: {name}: max|q_end - pi| = {sub.dist_end.max():.3g}, "
              f"converged {int(sub.converged.sum())}/{len(sub)}{extra}")
    print("two-point: spectral radius at q = pi: " + ", ".join(f"lambda={k:g}: {v:.4f}" for k, v in rho.items()))
    _report(changed, csv, os.path.join(args.out, "two_point_trajectories.csv"), png)


def plot_two_point(s, curves, df, rho):
    """q over the steps for every setting (about 10 starts each), and where q ends against where it started."""
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (name, (tr, sched)) in zip(axes.flat, curves.items()):
        for i in range(0, s.n_init, max(1, s.n_init // 10)):
            ax.plot(tr[:, i], lw=0.8)
        ax.axhline(s.pi, color="k", ls=":", lw=1)
        if name != two_point.OPTIMAL:
            ax.axvline(s.steps, color="r", ls="--", lw=1)
        if "annealed" in name:
            ax2 = ax.twinx()
            ax2.plot(sched, "k-", lw=0.8, alpha=0.4)
            ax2.set_ylabel("lambda", fontsize=8)
            ax.text(s.steps, 0.02, f" lambda=0, u += {s.perturb:g}", color="r", fontsize=8)
        ax.set(ylim=(-0.02, 1.02), title=name, xlabel="step", ylabel="q = mass at -1")
    ax = axes.flat[-1]
    for name in curves:
        sub = df[df.setting == name]
        ax.plot(sub.q0, sub.q_end, "o-", ms=3, lw=0.8, label=name)
    ax.set(xlabel="initial q", ylabel="q at the end (step S; optimal D: its own steps)", title="where q ends",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    fig.suptitle(f"two-point game ({s.loss}; eta_G={s.eta_g:g}, eta_D={s.eta_d:g}; spectral radius at q=1/2: "
                 f"{rho[0.0]:.4f} at lambda=0, {rho[s.lam_small]:.4f} at lambda={s.lam_small:g})")
    fig.tight_layout()
    return fig


def cmd_dirac(args):
    if args.lam < 0 or not (0 < args.eta < 1) or args.steps < 1 or args.tol <= 0:
        raise UserError("need --lam >= 0, 0 < --eta < 1, --steps >= 1, --tol > 0")
    df, trajs = dirac.dirac_table(args.lam, args.eta, args.steps, args.tol)
    csv = os.path.join(args.out, "dirac.csv")
    changed = _save_csvs(args.out, {"dirac.csv": df})

    png = os.path.join(args.out, "dirac.png")
    _save_fig(plot_dirac(df, trajs, args), png, changed)

    png2 = os.path.join(args.out, "dirac_minkowski_p.png")
    _save_fig(plot_dirac_p(df, args), png2, changed)
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(df[["loss", "penalty", "eig1_re", "eig1_im", "eig2_re", "eig2_im", "rho_sim", "rho_alt",
                  "sim_final_dist", "alt_final_dist"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    _report(changed, csv, png, png2)


def plot_dirac(df, trajs, args):
    """Every loss's trajectories from (1, 1) under each penalty, simultaneous and alternating."""
    plt = _plt()
    pens = list(dirac.PENALTIES)
    fig, axes = plt.subplots(len(pens), len(dirac.DIRAC_LOSSES), figsize=(2.0 * len(dirac.DIRAC_LOSSES), 2.3 * len(pens)))
    for i, pen in enumerate(pens):
        for j, spec in enumerate(dirac.DIRAC_LOSSES):
            ax = axes[i, j]
            S, A = trajs[(spec, pen)]
            ax.plot(S[:, 0], S[:, 1], lw=0.8, label="sim")
            ax.plot(A[:, 0], A[:, 1], lw=0.8, label="alt")
            ax.plot([0], [0], "k*", ms=6)
            both = np.concatenate([S, A])
            lim = float(np.nanmax(np.abs(both[np.isfinite(both).all(1)]))) * 1.1
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
            r = df[(df.loss == spec) & (df.penalty == pen)].iloc[0]
            ax.set_title(f"{spec}\n{pen} max Re {r.max_re:.2g}", fontsize=7)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel(f"{pen}\npsi", fontsize=8)
            if i == len(pens) - 1:
                ax.set_xlabel("theta", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"Dirac-GAN from (1, 1): eta = {args.eta}, {args.steps} steps, lam = {args.lam}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_dirac_p(df, args):
    """Minkowski's eigenvalues, rates and final distances against p."""
    plt = _plt()
    pens = list(dirac.PENALTIES)
    mk = df[df.loss.str.startswith("minkowski")]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    none, r1 = mk[mk.penalty == "none"], mk[mk.penalty == "r1"]
    pp = np.arange(1, 9)
    ax[0].plot(none.p, none.max_re, "o-", label="no penalty")
    ax[0].plot(r1.p, r1.max_re, "s-", label=f"R1, lam={args.lam:g}")
    ax[1].semilogy(none.p, np.abs(none.eig1_im), "o", label="no penalty: |Im| (Re = 0)")
    ax[1].semilogy(pp, 2.0 ** -(pp + 1), "k:", label="2^-(p+1)")
    ax[1].semilogy(r1.p, -r1.max_re, "s", label="R1: -max Re")
    ax[1].semilogy(pp, args.lam - np.sqrt(args.lam ** 2 - 4.0 ** -(pp + 1)), "k--",
                   label="lam - sqrt(lam^2 - 4^-(p+1))")
    for pen, mark in zip(pens, "os^"):
        sub = mk[mk.penalty == pen]
        ax[2].plot(sub.p, sub.sim_final_dist, mark + "-", label=f"{pen} sim")
        ax[2].plot(sub.p, sub.alt_final_dist, mark + "--", label=f"{pen} alt")
    ax[0].set(xlabel="p", ylabel="max Re(eigenvalue) at (0,0)", title="Minkowski: max real part")
    ax[1].set(xlabel="p", ylabel="rate", title="Minkowski: rotation speed / contraction rate")
    ax[2].set(xlabel="p", ylabel=f"distance to (0,0) after {args.steps} steps", title="Minkowski: final distance")
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def build_parser():
    ap = OneLineParser(prog="python -m analysis.dynamics", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def add(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
        return s

    b = add("bilinear", "f(x, y) = xy: flow, simultaneous, alternating, extragradient, optimistic")
    b.add_argument("--eta", type=float, default=0.1)
    b.add_argument("--steps", type=int, default=300)
    t = add("two-point", "two-point data, generator mass q at -1, entropy bonus and annealing")
    _two_point_args(t)
    d = add("dirac", "Dirac-GAN eigenvalues and updates for every loss, with R1 / WGAN-GP penalties")
    _dirac_args(d)
    a = add("all", "run the three")
    a.add_argument("--eta", type=float, default=0.1)
    a.add_argument("--steps", type=int, default=None, help="steps for every game (default: each one's own)")
    return ap


def _two_point_args(t):
    """two-point's flags, one per field of two_point.Settings, with its defaults."""
    d = two_point.Settings()
    t.add_argument("--loss", default=d.loss, help=f"a probabilistic loss of losses.py (default {d.loss})")
    t.add_argument("--p", type=float, default=d.p, help="Minkowski p")
    t.add_argument("--pi", type=float, default=d.pi, help="data mass at -1")
    t.add_argument("--steps", type=int, default=d.steps, help="steps of the learned-D runs (and of the annealing)")
    t.add_argument("--opt-steps", type=int, default=d.opt_steps, help="steps of the optimal-D run")
    t.add_argument("--hold", type=int, default=d.hold, help="steps at lambda = 0 after the annealing")
    t.add_argument("--perturb", type=float, default=d.perturb, help="added to G's logit when the hold starts")
    t.add_argument("--n-init", type=int, default=d.n_init)
    t.add_argument("--eta-g", type=float, default=d.eta_g)
    t.add_argument("--eta-d", type=float, default=d.eta_d)
    t.add_argument("--lam0", type=float, default=d.lam0, help="large (starting) entropy weight")
    t.add_argument("--lam-small", type=float, default=d.lam_small, help="a small fixed entropy weight")


def _dirac_args(d):
    d.add_argument("--lam", type=float, default=1.0, help="penalty weight (repo convention: lam*(||g|| - c)^2)")
    d.add_argument("--eta", type=float, default=0.1)
    d.add_argument("--steps", type=int, default=600)
    d.add_argument("--tol", type=float, default=1e-3)


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_writable_folder(args.out, "--out")
    if args.cmd == "all":
        steps = args.steps
        ns = argparse.Namespace
        cmd_bilinear(ns(out=args.out, eta=args.eta, steps=steps or 300))
        tp = argparse.ArgumentParser()
        _two_point_args(tp)
        t_args = tp.parse_args([])
        t_args.out = args.out
        if steps:
            t_args.steps = steps
        cmd_two_point(t_args)
        dp = argparse.ArgumentParser()
        _dirac_args(dp)
        d_args = dp.parse_args([])
        d_args.out, d_args.eta = args.out, args.eta
        if steps:
            d_args.steps = steps
        cmd_dirac(d_args)
    else:
        {"bilinear": cmd_bilinear, "two-point": cmd_two_point, "dirac": cmd_dirac}[args.cmd](args)
    return 0


if __name__ == "__main__":
    run_main(main)
