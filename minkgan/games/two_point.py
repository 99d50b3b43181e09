"""The two-point game: data at -1 and +1 (weight pi at -1), a generator that puts mass q = sigmoid(u)
at -1, a discriminator of two logits (d_-, d_+), both players with the repository's losses weighted
exactly by the two distributions, and an entropy bonus lambda*H(q) for G (fixed or annealed)."""
import dataclasses

import numpy as np
import pandas as pd
import torch

import losses
from minkgan.games import DT, single_thread


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


@dataclasses.dataclass(frozen=True)
class Settings:
    """One study of the game (analysis/dynamics.py two-point's flags): every start q0 of n_init, under
    optimal D and four learned-D settings (no bonus, a small and a large fixed one, the large one
    annealed to 0 and then held at 0 for `hold` steps after a nudge of `perturb` to G's logit)."""
    loss: str = "gan"
    p: float = 4.0
    pi: float = 0.5
    steps: int = 2000
    opt_steps: int = 60
    hold: int = 3000
    perturb: float = 1e-6
    n_init: int = 25
    eta_g: float = 12.0
    eta_d: float = 0.1
    lam0: float = 0.3
    lam_small: float = 0.02

    def starts(self):
        return np.linspace(0.02, 0.98, self.n_init)

    def learned(self):
        """(name, schedule kind, lambda) of the learned-D settings."""
        return [("learned D, lambda=0", "fixed", 0.0), (f"learned D, lambda={self.lam_small:g}", "fixed", self.lam_small),
                (f"learned D, lambda={self.lam0:g}", "fixed", self.lam0),
                (f"learned D, annealed {self.lam0:g}->0", "anneal", self.lam0)]


OPTIMAL = "optimal D, lambda=0"


def every_setting(s):
    """{setting: (q trajectories, steps x starts; its lambda schedule)}, optimal D first. The learned-D
    settings run in one batch (a lambda per run); after s.steps steps the annealed runs sit at lambda = 0
    and are held there s.hold more steps, G's logit nudged by s.perturb when the hold starts."""
    q0, n = s.starts(), s.n_init
    learned = s.learned()
    lam = np.concatenate([np.concatenate([lambda_schedule(k, l, s.steps), np.full(s.hold, l if k == "fixed" else 0.0)])
                          [:, None].repeat(n, 1) for _, k, l in learned], axis=1)
    tr_all = two_point_run(np.tile(q0, len(learned)), s.loss, "learned", lam, s.steps + s.hold, s.eta_g, s.eta_d,
                           s.pi, s.p, perturb=(s.steps, s.perturb) if s.hold else None)
    tr_opt = two_point_run(q0, s.loss, "optimal", None, s.opt_steps, s.eta_g, s.eta_d, s.pi, s.p)
    return {OPTIMAL: (tr_opt, np.zeros(s.opt_steps)),
            **{name: (tr_all[:, i * n:(i + 1) * n], lam[:, i * n]) for i, (name, _, _) in enumerate(learned)}}


def spectral_radii(s):
    """{lambda: spectral radius of the learned-D update at the equilibrium} for the settings' fixed lambdas."""
    return {lam: two_point_spectral_radius(s.loss, lam, s.eta_g, s.eta_d, s.pi, s.p) for lam in (0.0, s.lam_small, s.lam0)}


def setting_rows(s, name, tr, sched, rho):
    """A row per start of one setting: where q ends, its range over the last tenth, whether it converged."""
    end_step = s.opt_steps if name == OPTIMAL else s.steps
    last = tr[end_step - max(end_step // 10, 10):end_step + 1]
    rows = []
    for i, q in enumerate(s.starts()):
        row = dict(setting=name, loss=s.loss, eta_g=s.eta_g, eta_d=s.eta_d, q0=q, steps=end_step,
                   q_end=tr[end_step, i], q_min_last=last[:, i].min(), q_max_last=last[:, i].max(),
                   dist_end=abs(tr[end_step, i] - s.pi), converged=bool(np.abs(last[:, i] - s.pi).max() < 1e-4))
        if name != OPTIMAL:
            annealed = "annealed" in name
            row["spectral_radius_at_equilibrium"] = rho.get(0.0 if annealed else sched[0], np.nan)
            if annealed and s.hold:
                row.update(q_after_hold_at_lambda0=tr[-1, i], hold_steps=s.hold, hold_perturbation_du=s.perturb)
        rows.append(row)
    return rows


def tables(s, curves, rho):
    """(a row per setting and start; q and lambda every 25 steps for about 6 starts of each setting)."""
    rows, trajs = [], []
    q0, n = s.starts(), s.n_init
    for name, (tr, sched) in curves.items():
        rows += setting_rows(s, name, tr, sched, rho)
        trajs += [dict(setting=name, q0=q0[i], step=t, q=tr[t, i], lam=sched[min(t, len(sched) - 1)])
                  for t in range(0, len(tr), 25) for i in range(0, n, max(1, n // 6))]
    return pd.DataFrame(rows), pd.DataFrame(trajs)
