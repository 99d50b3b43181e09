"""The Dirac-GAN (Mescheder et al. 2018): data at 0, generator theta, linear discriminator logit psi*x;
every loss of losses.py (Minkowski on probabilities for p = 1..8) with no penalty, R1 or the WGAN-GP
penalty. The Jacobian of the gradient field at the equilibrium by autograd and in closed form, and
simultaneous and alternating gradient steps."""
import numpy as np
import pandas as pd
import torch

import losses
from minkgan.games import DT, single_thread


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
