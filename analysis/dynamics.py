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

`python -m analysis.dynamics all` runs the three. Each takes seconds on a CPU.
"""
import argparse
import math
import os

import numpy as np
import pandas as pd
import torch

import losses
from minkgan.utils import (AGREE_RTOL, OneLineParser, UserError, atomic_save_figure, check_writable_folder, run_main,
                   write_csv_unless_agrees)

DT = torch.float64
DEFAULT_OUT = os.path.join("runs", "dynamics")


def single_thread(fn):
    """Run fn with one intra-op thread: these tensors have a few elements, and a thread pool on a
    loaded machine makes a tiny op cost milliseconds instead of microseconds. Restores the count."""
    import functools

    @functools.wraps(fn)
    def wrapped(*a, **k):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*a, **k)
        finally:
            torch.set_num_threads(n)
    return wrapped


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


# ----------------------------------------------------------------------------------------------
# 1. bilinear game f(x, y) = x*y
# ----------------------------------------------------------------------------------------------

def bilinear_field(z):
    """v(x, y) = (-df/dx, +df/dy) = (-y, x): G descends in x, D ascends in y."""
    x, y = z
    return np.array([-y, x])


def bilinear_flow(z0, t):
    """The exact solution of z' = v(z): a rotation by angle t."""
    c, s = math.cos(t), math.sin(t)
    return np.array([c * z0[0] - s * z0[1], s * z0[0] + c * z0[1]])


def bilinear_run(method, eta, steps, z0=(1.0, 1.0), substeps=10):
    """Trajectory (steps + 1) x 2 of one update rule on f(x, y) = x*y."""
    z = np.array(z0, dtype=float)
    out = [z.copy()]
    prev = z.copy()
    for _ in range(steps):
        if method == "flow":  # RK4 on the exact field, `substeps` per eta
            h = eta / substeps
            for _ in range(substeps):
                k1 = bilinear_field(z)
                k2 = bilinear_field(z + h / 2 * k1)
                k3 = bilinear_field(z + h / 2 * k2)
                k4 = bilinear_field(z + h * k3)
                z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        elif method == "simultaneous":
            z = z + eta * bilinear_field(z)
        elif method == "alternating":  # G first, then D sees the new x
            x = z[0] - eta * z[1]
            z = np.array([x, z[1] + eta * x])
        elif method == "extragradient":
            half = z + eta * bilinear_field(z)
            z = z + eta * bilinear_field(half)
        elif method == "optimistic":  # z+ = z + 2 eta v(z) - eta v(z_prev)
            z, prev = z + 2 * eta * bilinear_field(z) - eta * bilinear_field(prev), z
        else:
            raise UserError(f"unknown bilinear method {method!r}")
        out.append(z.copy())
    return np.array(out)


BILINEAR_METHODS = ("flow", "simultaneous", "alternating", "extragradient", "optimistic")


def bilinear_radius_law(method, eta, n, r0=math.sqrt(2)):
    """Closed-form radius after n steps where one exists (NaN otherwise)."""
    if method == "flow":
        return r0
    if method == "simultaneous":
        return r0 * (1 + eta ** 2) ** (n / 2)
    if method == "extragradient":
        return r0 * (1 - eta ** 2 + eta ** 4) ** (n / 2)
    return float("nan")


def cmd_bilinear(args):
    if not (0 < args.eta < 1):
        raise UserError(f"--eta must be in (0, 1), got {args.eta}")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    rows, trajs = [], {}
    for m in BILINEAR_METHODS:
        tr = bilinear_run(m, args.eta, args.steps)
        trajs[m] = tr
        r = np.hypot(tr[:, 0], tr[:, 1])
        for n in range(len(tr)):
            rows.append(dict(method=m, step=n, x=tr[n, 0], y=tr[n, 1], radius=r[n],
                             radius_closed_form=bilinear_radius_law(m, args.eta, n),
                             alt_invariant=tr[n, 0] ** 2 + tr[n, 1] ** 2 - args.eta * tr[n, 0] * tr[n, 1]))
    df = pd.DataFrame(rows)
    csv = os.path.join(args.out, "bilinear.csv")
    changed = _save_csvs(args.out, {"bilinear.csv": df})

    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.6))
    for m, tr in trajs.items():
        ax[0].plot(tr[:, 0], tr[:, 1], lw=1.2, label=m)
        ax[1].plot(np.hypot(tr[:, 0], tr[:, 1]), lw=1.2, label=m)
    ax[0].plot([0], [0], "k*", ms=10)
    ax[0].plot([1], [1], "ko", ms=5)
    ax[0].set(xlabel="x (generator)", ylabel="y (discriminator)", title=f"f(x, y) = xy from (1, 1), eta = {args.eta}")
    ax[0].set_aspect("equal")
    ax[0].legend(fontsize=8)
    n = np.arange(args.steps + 1)
    ax[1].plot(n, math.sqrt(2) * (1 + args.eta ** 2) ** (n / 2), "k:", lw=1, label="sqrt(2)(1+eta^2)^(n/2)")
    ax[1].set(yscale="log", xlabel="step", ylabel="radius sqrt(x^2 + y^2)", title="radius")
    ax[1].legend(fontsize=8)
    png = os.path.join(args.out, "bilinear.png")
    _save_fig(fig, png, changed)
    last = df[df.step == args.steps].set_index("method")["radius"]
    print("bilinear: final radius " + ", ".join(f"{m} {last[m]:.4g}" for m in BILINEAR_METHODS))
    _report(changed, csv, png)


# ----------------------------------------------------------------------------------------------
# 2. two-point game
# ----------------------------------------------------------------------------------------------

def _each(fn, *xs):
    """fn applied to every element of the 1-D tensors xs as a batch of one (vmap)."""
    return torch.func.vmap(lambda *a: fn(*[t.reshape(1) for t in a]))(*xs)


def two_point_losses(d_loss, g_loss, dm, dp, q, pi=0.5):
    """Per-run exact losses of the two-point game (vectors over runs).

    Every d_loss of the repository is A(real) + B(fake) (means of per-sample terms), so
    A(x) - A(0) = d_loss(x, 0) - d_loss(0, 0) and B likewise; hence the D loss with real weights
    (pi, 1 - pi) and fake weights (q, 1 - q) at the points (-1, +1) is exactly
        pi*d(dm, 0) + (1-pi)*d(dp, 0) + q*d(0, dm) + (1-q)*d(0, dp) - d(0, 0).
    Returns (L_D, L_G) without the entropy term.
    """
    z = torch.zeros_like(dm)
    ld = (pi * _each(d_loss, dm, z) + (1 - pi) * _each(d_loss, dp, z)
          + q * _each(d_loss, z, dm) + (1 - q) * _each(d_loss, z, dp) - _each(d_loss, z, z))
    lg = q * _each(g_loss, dm) + (1 - q) * _each(g_loss, dp)
    return ld, lg


def two_point_d_grads(d_loss, dm, dp, q, pi=0.5):
    """dL_D/d(dm), dL_D/d(dp) of two_point_losses' L_D, per run, without vmap.

    d_loss is a mean of per-sample terms, so (batch size) * d d_loss(x, 0)/dx_b = A'(x_b) and
    likewise B'(x_b) from d_loss(0, x).
    """
    x = torch.cat([dm, dp]).detach().requires_grad_(True)
    z = torch.zeros_like(x)
    a, b = torch.autograd.grad(d_loss(x, z), x)[0], torch.autograd.grad(d_loss(z, x), x)[0]
    a, b, n = a * len(x), b * len(x), len(dm)
    q = q.detach()
    return pi * a[:n] + q * b[:n], (1 - pi) * a[n:] + (1 - q) * b[n:]


def entropy(q):
    """H(q) in nats, 0 at q in {0, 1}."""
    return -(torch.special.xlogy(q, q) + torch.special.xlogy(1 - q, 1 - q))


def optimal_d(d_loss, q, pi=0.5, lo=-30.0, hi=30.0, iters=60):
    """The exact best-response D logits (dm, dp) for generator mass q (vector), by bisection.

    Each point's D loss w_r*A(d) + w_f*B(d) is unimodal in d for every probabilistic loss, so the
    root of its derivative (from autograd through losses) is found by bisection on [lo, hi].
    """
    q = q.detach()
    lo_m, hi_m = torch.full_like(q, lo), torch.full_like(q, hi)
    lo_p, hi_p = lo_m.clone(), hi_m.clone()
    for _ in range(iters):
        dm, dp = (lo_m + hi_m) / 2, (lo_p + hi_p) / 2
        gm, gp = two_point_d_grads(d_loss, dm, dp, q, pi)
        lo_m, hi_m = torch.where(gm < 0, dm, lo_m), torch.where(gm < 0, hi_m, dm)
        lo_p, hi_p = torch.where(gp < 0, dp, lo_p), torch.where(gp < 0, hi_p, dp)
    return (lo_m + hi_m) / 2, (lo_p + hi_p) / 2


def lambda_schedule(kind, lam, steps, anneal_steps=None):
    """lambda_t for t < steps: 'fixed' -> lam; 'anneal' -> lam * (1 - t/T)^2 for t < T, then 0."""
    t = np.arange(steps, dtype=float)
    if kind == "fixed":
        return np.full(steps, float(lam))
    T = anneal_steps or steps
    return lam * np.clip(1 - t / T, 0, None) ** 2


@single_thread
def two_point_run(q0, loss="gan", d_mode="learned", lam_sched=None, steps=2000, eta_g=12.0, eta_d=0.1,
                  pi=0.5, p=4.0, perturb=None):
    """Run the two-point game for a vector of initial q; returns q trajectories (steps + 1) x runs.

    G: gradient descent on its logit u (q = sigmoid(u)) of q*g(d_-) + (1-q)*g(d_+) - lambda_t*H(q).
    D: 'learned' -> one simultaneous gradient step on the weighted d_loss per G step, from d = 0;
       'optimal' -> the exact best response to the current q (optimal_d) before every G step.
    lam_sched: (steps,) or (steps, runs). perturb: (step, du) adds du to every logit u at that step.
    """
    d_loss, g_loss = losses.make_loss(loss, p=p)
    q0 = torch.as_tensor(q0, dtype=DT)
    u = torch.log(q0) - torch.log1p(-q0)
    dm, dp = torch.zeros_like(u), torch.zeros_like(u)
    lam = np.zeros((steps, len(q0))) if lam_sched is None else np.asarray(lam_sched, dtype=float)
    lam = torch.as_tensor(np.broadcast_to(lam.reshape(steps, -1), (steps, len(q0))).copy(), dtype=DT)
    qs = [q0.clone()]
    for t in range(steps):
        if perturb is not None and t == perturb[0]:
            u = u + perturb[1]
        if d_mode == "optimal":
            dm, dp = optimal_d(d_loss, torch.sigmoid(u), pi)
        u_ = u.clone().requires_grad_(True)
        q = torch.sigmoid(u_)
        g = _each(g_loss, torch.cat([dm, dp])).detach()  # g at the two points, per run
        lg = q * g[:len(u)] + (1 - q) * g[len(u):]
        (gu,) = torch.autograd.grad((lg - lam[t] * entropy(q)).sum(), u_)
        if d_mode == "learned":  # simultaneous: D's step uses the same q as G's
            gm, gp = two_point_d_grads(d_loss, dm, dp, q, pi)
            dm, dp = dm - eta_d * gm, dp - eta_d * gp
        u = (u - eta_g * gu).detach()
        qs.append(torch.sigmoid(u).detach())
    return torch.stack(qs).numpy()


@single_thread
def two_point_spectral_radius(loss="gan", lam=0.0, eta_g=12.0, eta_d=0.1, pi=0.5, p=4.0):
    """Spectral radius of the learned-D simultaneous update map at its fixed point u = logit(pi), d = d*(pi)."""
    d_loss, g_loss = losses.make_loss(loss, p=p)
    qs = torch.tensor([pi], dtype=DT)
    dm0, dp0 = optimal_d(d_loss, qs, pi)

    def step(z):
        u, dm, dp = z[0:1], z[1:2], z[2:3]
        q = torch.sigmoid(u)
        ld, lg = two_point_losses(d_loss, g_loss, dm, dp, q, pi)
        (gu,) = torch.autograd.grad((lg - lam * entropy(q)).sum(), u, create_graph=True)
        gm, gp = torch.autograd.grad(ld.sum(), (dm, dp), create_graph=True)
        return torch.cat([u - eta_g * gu, dm - eta_d * gm, dp - eta_d * gp])

    z0 = torch.cat([torch.log(qs) - torch.log1p(-qs), dm0, dp0])
    J = torch.autograd.functional.jacobian(step, z0)
    return float(np.abs(np.linalg.eigvals(J.numpy())).max())


def cmd_two_point(args):
    if not (0 < args.pi < 1):
        raise UserError(f"--pi must be in (0, 1), got {args.pi}")
    if args.loss not in losses.PROBABILISTIC:
        raise UserError(f"two-point needs a loss with probabilities ({', '.join(losses.PROBABILISTIC)}), not {args.loss!r}")
    if args.steps < 10 or args.n_init < 2 or args.hold < 0 or args.opt_steps < 1:
        raise UserError("--steps must be >= 10, --n-init >= 2, --hold >= 0, --opt-steps >= 1")
    if args.lam0 < 0 or args.lam_small < 0 or args.eta_g <= 0 or args.eta_d <= 0:
        raise UserError("entropy weights must be >= 0 and learning rates > 0")
    q0 = np.linspace(0.02, 0.98, args.n_init)
    n, S, H = len(q0), args.steps, args.hold
    learned = [("learned D, lambda=0", "fixed", 0.0),
               (f"learned D, lambda={args.lam_small:g}", "fixed", args.lam_small),
               (f"learned D, lambda={args.lam0:g}", "fixed", args.lam0),
               (f"learned D, annealed {args.lam0:g}->0", "anneal", args.lam0)]
    # all learned-D settings in one batch (per-run lambda); after S steps the annealed runs sit at
    # lambda = 0 and are held there H more steps, with the logit u perturbed by --perturb at step S
    total = S + H
    lam = np.concatenate([np.concatenate([lambda_schedule(k, l, S), np.full(H, l if k == "fixed" else 0.0)])[:, None]
                          .repeat(n, 1) for _, k, l in learned], axis=1)
    tr_all = two_point_run(np.tile(q0, len(learned)), args.loss, "learned", lam, total, args.eta_g, args.eta_d,
                           args.pi, args.p, perturb=(S, args.perturb) if H else None)
    curves = {name: (tr_all[:, i * n:(i + 1) * n], lam[:, i * n]) for i, (name, _, _) in enumerate(learned)}
    opt_name = "optimal D, lambda=0"
    tr_opt = two_point_run(q0, args.loss, "optimal", None, args.opt_steps, args.eta_g, args.eta_d, args.pi, args.p)
    curves = {opt_name: (tr_opt, np.zeros(args.opt_steps)), **curves}
    rho = {lam_: two_point_spectral_radius(args.loss, lam_, args.eta_g, args.eta_d, args.pi, args.p)
           for lam_ in (0.0, args.lam_small, args.lam0)}

    rows, trajs = [], []
    for name, (tr, sched) in curves.items():
        end_step = args.opt_steps if name == opt_name else S
        window = max(end_step // 10, 10)
        last = tr[end_step - window:end_step + 1]
        for i, q in enumerate(q0):
            row = dict(setting=name, loss=args.loss, eta_g=args.eta_g, eta_d=args.eta_d, q0=q, steps=end_step,
                       q_end=tr[end_step, i], q_min_last=last[:, i].min(), q_max_last=last[:, i].max(),
                       dist_end=abs(tr[end_step, i] - args.pi),
                       converged=bool(np.abs(last[:, i] - args.pi).max() < 1e-4))
            if name != opt_name:
                lam_here = sched[0] if "annealed" not in name else 0.0
                row["spectral_radius_at_equilibrium"] = rho.get(lam_here, np.nan)
                if "annealed" in name and H:
                    row["q_after_hold_at_lambda0"] = tr[-1, i]
                    row["hold_steps"] = H
                    row["hold_perturbation_du"] = args.perturb
            rows.append(row)
        for t in range(0, len(tr), 25):
            for i in range(0, n, max(1, n // 6)):
                trajs.append(dict(setting=name, q0=q0[i], step=t, q=tr[t, i], lam=sched[min(t, len(sched) - 1)]))
    df = pd.DataFrame(rows)
    csv = os.path.join(args.out, "two_point.csv")
    changed = _save_csvs(args.out, {"two_point.csv": df, "two_point_trajectories.csv": pd.DataFrame(trajs)})

    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (name, (tr, sched)) in zip(axes.flat, curves.items()):
        for i in range(0, n, max(1, n // 10)):
            ax.plot(tr[:, i], lw=0.8)
        ax.axhline(args.pi, color="k", ls=":", lw=1)
        if name != opt_name:
            ax.axvline(S, color="r", ls="--", lw=1)
        if "annealed" in name:
            ax2 = ax.twinx()
            ax2.plot(sched, "k-", lw=0.8, alpha=0.4)
            ax2.set_ylabel("lambda", fontsize=8)
            ax.text(S, 0.02, f" lambda=0, u += {args.perturb:g}", color="r", fontsize=8)
        ax.set(ylim=(-0.02, 1.02), title=name, xlabel="step", ylabel="q = mass at -1")
    ax = axes.flat[-1]
    for name in curves:
        sub = df[df.setting == name]
        ax.plot(sub.q0, sub.q_end, "o-", ms=3, lw=0.8, label=name)
    ax.set(xlabel="initial q", ylabel="q at the end (step S; optimal D: its own steps)", title="where q ends",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    fig.suptitle(f"two-point game ({args.loss}; eta_G={args.eta_g:g}, eta_D={args.eta_d:g}; spectral radius at q=1/2: "
                 f"{rho[0.0]:.4f} at lambda=0, {rho[args.lam_small]:.4f} at lambda={args.lam_small:g})")
    fig.tight_layout()
    png = os.path.join(args.out, "two_point.png")
    _save_fig(fig, png, changed)
    for name in curves:
        sub = df[df.setting == name]
        extra = ""
        if "q_after_hold_at_lambda0" in sub and sub.q_after_hold_at_lambda0.notna().any():
            extra = (f"; then {H} steps at lambda=0 after u += {args.perturb:g}: "
                     f"max|q-pi| = {np.abs(sub.q_after_hold_at_lambda0 - args.pi).max():.3g}")
        print(f"two-point: {name}: max|q_end - pi| = {sub.dist_end.max():.3g}, "
              f"converged {int(sub.converged.sum())}/{len(sub)}{extra}")
    print("two-point: spectral radius at q = pi: " + ", ".join(f"lambda={k:g}: {v:.4f}" for k, v in rho.items()))
    _report(changed, csv, os.path.join(args.out, "two_point_trajectories.csv"), png)


# ----------------------------------------------------------------------------------------------
# 3. Dirac-GAN
# ----------------------------------------------------------------------------------------------

DIRAC_LOSSES = ("gan", "nsgan", "wgan", "lsgan", "hinge") + tuple(f"minkowski-p{p}" for p in range(1, 9))
PENALTIES = {"none": None, "r1": 0.0, "wgan-gp": 1.0}  # penalty -> gradient-penalty centre


def _parse_loss(spec):
    if spec.startswith("minkowski-p"):
        return "minkowski", float(spec[len("minkowski-p"):])
    return spec, 4.0


def dirac_field(z, loss_spec, penalty="none", lam=1.0, create_graph=True):
    """v(theta, psi) = (-dL_G/dtheta, -dL_D/dpsi) for a batch z (B x 2) of Dirac-GANs, differentiable.

    Data at 0, fake sample theta, D logit psi*x: real logit 0, fake logit psi*theta. All losses and
    the penalty are means over the batch of per-sample terms, so B times the gradient of the batch
    loss is each game's own gradient.
    """
    name, p = _parse_loss(loss_spec)
    d_loss, g_loss = losses.make_loss(name, p=p)
    z = z.reshape(-1, 2)
    B = z.shape[0]
    th, ps = z[:, 0], z[:, 1]
    if not th.requires_grad:
        th, ps = th.detach().requires_grad_(True), ps.detach().requires_grad_(True)
    x_real = torch.zeros(B, 1, dtype=z.dtype)
    # Without create_graph one backward pass does: G's loss sees psi detached and D's loss theta
    # detached. The Jacobian (create_graph) needs the cross-dependences, so two passes there.
    th_d, ps_g = (th, ps) if create_graph else (th.detach(), ps.detach())
    ld = d_loss((ps.unsqueeze(1) * x_real).reshape(B), ps * th_d)
    # D is linear, so grad_x D = psi at every x: the real points (R1) and the WGAN-GP
    # interpolates give the same penalty lam * (|psi| - centre)^2. `penalty` may name one per row
    # (rows with the same penalty contiguous); a group of m rows enters with weight m/B.
    pens = [penalty] * B if isinstance(penalty, str) else list(penalty)
    start = 0
    while start < B:
        end = start
        while end < B and pens[end] == pens[start]:
            end += 1
        centre = PENALTIES[pens[start]]
        if centre is not None:
            psg = ps[start:end].unsqueeze(1)
            ld = ld + (end - start) / B * losses.gradient_penalty(lambda x: psg * x, x_real[start:end], lam, centre)
        start = end
    lg = g_loss(ps_g * th)
    if create_graph:
        (g_th,) = torch.autograd.grad(lg, th, create_graph=True)
        (g_ps,) = torch.autograd.grad(ld, ps, create_graph=True)
    else:
        g_th, g_ps = torch.autograd.grad(lg + ld, (th, ps))
    return -B * torch.stack([g_th, g_ps], dim=1)


def dirac_g_field(z, loss_spec):
    """v_theta = -dL_G/dtheta alone for a batch z (B x 2): the alternating G step needs no D loss."""
    name, p = _parse_loss(loss_spec)
    _, g_loss = losses.make_loss(name, p=p)
    z = torch.as_tensor(z, dtype=DT).reshape(-1, 2)
    th = z[:, 0].clone().requires_grad_(True)
    (g_th,) = torch.autograd.grad(g_loss(z[:, 1] * th), th)
    return -z.shape[0] * g_th


def _field_at(z, loss_spec, penalty, lam, create_graph=False):
    z = torch.as_tensor(z, dtype=DT).reshape(-1, 2)
    th, ps = z[:, 0].clone().requires_grad_(True), z[:, 1].clone().requires_grad_(True)
    v = dirac_field(torch.stack([th, ps], 1), loss_spec, penalty, lam, create_graph)
    return v if create_graph else v.detach()


@single_thread
def dirac_jacobian(loss_spec, penalty="none", lam=1.0, delta=1e-9):
    """Jacobian of v at (0, 0) by autograd (float64) and how it was obtained.

    At psi = 0 the penalty's ||grad_x D|| = |psi| sits at the kink of the norm, where autograd's
    second derivative is NaN. Then the Jacobian is the limit of the autograd Jacobians at psi = +-delta
    -- valid only when v is continuous across psi = 0 and both sides agree; otherwise (the unit-centred
    penalty: v_psi jumps by 4*lam) v is not differentiable at (0, 0), which is not a zero of v's
    one-sided limits, and NaN is returned. Returns (J 2x2 numpy, method, jump of v across psi = 0).
    """
    f = lambda z: dirac_field(z.reshape(1, 2), loss_spec, penalty, lam).reshape(2)
    jac = lambda z0: torch.autograd.functional.jacobian(f, torch.tensor(z0, dtype=DT)).numpy()
    vp = _field_at([0.0, delta], loss_spec, penalty, lam).detach().numpy()[0]
    vm = _field_at([0.0, -delta], loss_spec, penalty, lam).detach().numpy()[0]
    jump = float(np.abs(vp - vm).max())
    J = jac([0.0, 0.0])
    if np.isfinite(J).all() and jump < 1e-6:
        return J, "autograd at (0,0)", jump
    Jp, Jm = jac([0.0, delta]), jac([0.0, -delta])
    if jump < 1e-6 and np.allclose(Jp, Jm, atol=1e-7):
        return (Jp + Jm) / 2, "autograd, limit psi->0+-", jump
    return np.full((2, 2), np.nan), "not differentiable (v jumps across psi=0)", jump


def dirac_closed_form(loss_spec, penalty="none", lam=1.0):
    """Closed-form Jacobian at (0, 0): J = [[0, a], [-b, -c]].

    With fake logit x = psi*theta, L_G = g(x) and L_D = A(0) + B(x) (+ penalty):
    a = -g'(0), b = B'(0); R1 adds lam*psi^2 to L_D, so c = 2*lam (Mescheder's gamma = 2*lam).
    gan / nsgan: a = b = sigmoid(0) = 1/2; wgan, hinge: a = b = 1; lsgan (raw outputs): a = 1, b = 0;
    Minkowski on probs: a = b = (1/2)^(p-1) * sigmoid'(0) = 2^-(p+1).
    Eigenvalues: -c/2 +- sqrt(c^2/4 - a*b). None for the unit-centred penalty (not differentiable).
    """
    name, p = _parse_loss(loss_spec)
    if name in ("gan", "nsgan"):
        a = b = 0.5
    elif name in ("wgan", "hinge"):
        a = b = 1.0
    elif name == "lsgan":
        a, b = 1.0, 0.0
    else:
        a = b = 2.0 ** -(p + 1)
    if penalty == "wgan-gp":
        return None
    c = 2 * lam if penalty == "r1" else 0.0
    return np.array([[0.0, a], [-b, -c]])


def update_matrix(J, eta, method):
    """The linearised update map of simultaneous or alternating (D first, then G) gradient steps."""
    if method == "sim":
        return np.eye(2) + eta * J
    # psi+ = psi + eta*(J10 th + J11 psi); th+ = th + eta*(J00 th + J01 psi+)
    D = np.array([[1.0, 0.0], [eta * J[1, 0], 1 + eta * J[1, 1]]])
    G = np.array([[1 + eta * J[0, 0], eta * J[0, 1]], [0.0, 1.0]])
    return G @ D


@single_thread
def dirac_trajectories(loss_spec, penalties=("none",), lam=1.0, eta=0.1, steps=600, z0=(1.0, 1.0)):
    """Simultaneous and alternating (D step, then G step at the new psi) gradient updates.

    Returns {penalty: (sim, alt)}, each a (steps + 1) x 2 array. All runs of one loss share the
    batched field evaluations (two per step: the alternating G step needs the new psi).
    """
    k = len(penalties)
    rows = list(penalties) * 2  # sim rows, then alt rows
    z = torch.tensor([z0] * (2 * k), dtype=DT)
    out = [z.numpy().copy()]
    for _ in range(steps):
        v = _field_at(z, loss_spec, rows, lam)
        new = z + eta * v  # sim rows: both coordinates; alt rows: only psi for now
        alt = torch.stack([z[k:, 0], new[k:, 1]], 1)
        alt = torch.stack([alt[:, 0] + eta * dirac_g_field(alt, loss_spec), alt[:, 1]], 1)
        z = torch.cat([new[:k], alt])
        out.append(z.numpy().copy())
    out = np.array(out)
    return {pen: (out[:, i], out[:, k + i]) for i, pen in enumerate(penalties)}


@single_thread
def dirac_table(lam=1.0, eta=0.1, steps=600, tol=1e-3, loss_specs=DIRAC_LOSSES, penalties=tuple(PENALTIES)):
    rows, trajs = [], {}
    for spec in loss_specs:
        runs = dirac_trajectories(spec, penalties, lam, eta, steps)
        for pen in penalties:
            J, how, jump = dirac_jacobian(spec, pen, lam)
            ev = np.linalg.eigvals(J) if np.isfinite(J).all() else np.array([np.nan, np.nan])
            ev = ev[np.argsort(-ev.imag)]
            cf = dirac_closed_form(spec, pen, lam)
            cf_err = float(np.abs(J - cf).max()) if cf is not None else float("nan")
            S, A = runs[pen]
            trajs[(spec, pen)] = (S, A)
            row = dict(loss=spec, p=_parse_loss(spec)[1] if spec.startswith("minkowski") else np.nan,
                       penalty=pen, lam=lam if pen != "none" else 0.0, jacobian=how, field_jump=jump,
                       J00=J[0, 0], J01=J[0, 1], J10=J[1, 0], J11=J[1, 1], closed_form_err=cf_err,
                       eig1_re=ev[0].real, eig1_im=ev[0].imag, eig2_re=ev[1].real, eig2_im=ev[1].imag,
                       max_re=float(np.max(ev.real)))
            for m, tr in (("sim", S), ("alt", A)):
                rho = float(np.abs(np.linalg.eigvals(update_matrix(J, eta, m))).max()) if np.isfinite(J).all() else np.nan
                d = np.hypot(tr[:, 0], tr[:, 1])
                row[f"rho_{m}"] = rho
                row[f"{m}_final_dist"] = float(d[-1])
                row[f"{m}_max_dist"] = float(np.max(d))
                row[f"{m}_converged"] = bool(np.isfinite(d[-1]) and d[-1] < tol)
            rows.append(row)
    return pd.DataFrame(rows), trajs


def cmd_dirac(args):
    if args.lam < 0 or not (0 < args.eta < 1) or args.steps < 1 or args.tol <= 0:
        raise UserError("need --lam >= 0, 0 < --eta < 1, --steps >= 1, --tol > 0")
    df, trajs = dirac_table(args.lam, args.eta, args.steps, args.tol)
    csv = os.path.join(args.out, "dirac.csv")
    changed = _save_csvs(args.out, {"dirac.csv": df})

    plt = _plt()
    pens = list(PENALTIES)
    fig, axes = plt.subplots(len(pens), len(DIRAC_LOSSES), figsize=(2.0 * len(DIRAC_LOSSES), 2.3 * len(pens)))
    for i, pen in enumerate(pens):
        for j, spec in enumerate(DIRAC_LOSSES):
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
    png = os.path.join(args.out, "dirac.png")
    _save_fig(fig, png, changed)

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
    png2 = os.path.join(args.out, "dirac_minkowski_p.png")
    _save_fig(fig, png2, changed)
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(df[["loss", "penalty", "eig1_re", "eig1_im", "eig2_re", "eig2_im", "rho_sim", "rho_alt",
                  "sim_final_dist", "alt_final_dist"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    _report(changed, csv, png, png2)


# ----------------------------------------------------------------------------------------------

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
    t.add_argument("--loss", default="gan", help="a probabilistic loss of losses.py (default gan)")
    t.add_argument("--p", type=float, default=4.0, help="Minkowski p")
    t.add_argument("--pi", type=float, default=0.5, help="data mass at -1")
    t.add_argument("--steps", type=int, default=2000, help="steps of the learned-D runs (and of the annealing)")
    t.add_argument("--opt-steps", type=int, default=60, help="steps of the optimal-D run")
    t.add_argument("--hold", type=int, default=3000, help="steps at lambda = 0 after the annealing")
    t.add_argument("--perturb", type=float, default=1e-6, help="added to G's logit when the hold starts")
    t.add_argument("--n-init", type=int, default=25)
    t.add_argument("--eta-g", type=float, default=12.0)
    t.add_argument("--eta-d", type=float, default=0.1)
    t.add_argument("--lam0", type=float, default=0.3, help="large (starting) entropy weight")
    t.add_argument("--lam-small", type=float, default=0.02, help="a small fixed entropy weight")


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
