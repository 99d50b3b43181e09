"""Tests of analysis/dynamics.py against the analytic answers of the three small games."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layout import ROOT  # noqa: E402
sys.path.insert(0, ROOT)

from minkgan.games import bilinear, dirac, two_point  # noqa: E402
import losses  # noqa: E402

DT = torch.float64


# ---------------------------------------------------------------- bilinear game f(x, y) = x*y

@pytest.mark.parametrize("eta", [0.05, 0.1, 0.3])
def test_simultaneous_radius_grows_by_sqrt_one_plus_eta_squared(eta):
    n = 200
    tr = bilinear.bilinear_run("simultaneous", eta, n)
    r = np.hypot(tr[:, 0], tr[:, 1])
    expected = math.sqrt(2) * (1 + eta ** 2) ** (np.arange(n + 1) / 2)
    assert np.max(np.abs(r - expected)) < 1e-10
    assert r[-1] > 1.2 * r[0]


def test_flow_is_the_exact_rotation_and_keeps_the_radius():
    eta, n = 0.1, 300
    tr = bilinear.bilinear_run("flow", eta, n)
    r = np.hypot(tr[:, 0], tr[:, 1])
    assert np.max(np.abs(r - math.sqrt(2))) < 1e-9
    exact = np.array([bilinear.bilinear_flow((1.0, 1.0), eta * k) for k in range(n + 1)])
    assert np.max(np.abs(tr - exact)) < 1e-8  # RK4 phase error, h = 0.01 over t = 30


def test_alternating_is_bounded_and_conserves_its_quadratic_form():
    eta, n = 0.1, 5000
    tr = bilinear.bilinear_run("alternating", eta, n)
    r = np.hypot(tr[:, 0], tr[:, 1])
    q = tr[:, 0] ** 2 + tr[:, 1] ** 2 - eta * tr[:, 0] * tr[:, 1]
    assert np.max(np.abs(q - q[0])) < 1e-10
    # the form is positive definite: x^2+y^2 - eta*x*y >= (1 - eta/2)(x^2+y^2), so r stays bounded
    assert r.max() <= math.sqrt(q[0] / (1 - eta / 2)) + 1e-12
    assert r.min() > 1.0  # and does not converge either


def test_extragradient_shrinks_by_its_exact_factor_and_optimistic_converges():
    eta, n = 0.1, 300
    tr = bilinear.bilinear_run("extragradient", eta, n)
    r = np.hypot(tr[:, 0], tr[:, 1])
    assert np.all(np.diff(r) < 0)
    expected = math.sqrt(2) * (1 - eta ** 2 + eta ** 4) ** (np.arange(n + 1) / 2)
    assert np.max(np.abs(r - expected)) < 1e-12
    opt = bilinear.bilinear_run("optimistic", eta, 2000)
    assert np.hypot(*opt[-1]) < 1e-3


# ---------------------------------------------------------------- two-point game

def test_two_point_losses_are_the_exact_weighted_gan_losses():
    d_loss, g_loss = losses.make_loss("gan")
    dm = torch.tensor([0.3, -2.0, 1.5], dtype=DT)
    dp = torch.tensor([-0.7, 0.4, 3.0], dtype=DT)
    q = torch.tensor([0.2, 0.5, 0.9], dtype=DT)
    pi = 0.3
    ld, lg = two_point.two_point_losses(d_loss, g_loss, dm, dp, q, pi)
    ls = F.logsigmoid
    want_d = -(pi * ls(dm) + (1 - pi) * ls(dp) + q * ls(-dm) + (1 - q) * ls(-dp))
    want_g = q * ls(-dm) + (1 - q) * ls(-dp)  # saturating G: E log(1 - D)
    assert torch.allclose(ld, want_d, atol=1e-12)
    assert torch.allclose(lg, want_g, atol=1e-12)
    # the fast per-run D gradients agree with autograd through two_point_losses
    dm_, dp_ = dm.clone().requires_grad_(True), dp.clone().requires_grad_(True)
    gm, gp = torch.autograd.grad(two_point.two_point_losses(d_loss, g_loss, dm_, dp_, q, pi)[0].sum(), (dm_, dp_))
    fm, fp = two_point.two_point_d_grads(d_loss, dm, dp, q, pi)
    assert torch.allclose(gm, fm, atol=1e-12) and torch.allclose(gp, fp, atol=1e-12)


def test_optimal_d_is_the_closed_form_for_the_gan():
    d_loss, _ = losses.make_loss("gan")
    q = torch.tensor([0.05, 0.3, 0.5, 0.8], dtype=DT)
    dm, dp = two_point.optimal_d(d_loss, q, pi=0.5)
    # D*(x) = p_data / (p_data + p_g): logit log(p_data / p_g)
    assert torch.allclose(dm, torch.log(0.5 / q), atol=1e-9)
    assert torch.allclose(dp, torch.log(0.5 / (1 - q)), atol=1e-9)


def test_annealed_entropy_reaches_half_where_lambda_zero_hops():
    q0 = np.linspace(0.02, 0.98, 12)  # q0 = 1/2 exactly would sit on the equilibrium
    S = 1500
    anneal = two_point.two_point_run(q0, "gan", "learned", two_point.lambda_schedule("anneal", 0.3, S), S)
    assert np.max(np.abs(anneal[-1] - 0.5)) < 1e-8
    plain = two_point.two_point_run(q0, "gan", "learned", None, S)
    swing = plain[-200:].max(0) - plain[-200:].min(0)
    assert np.all(swing > 0.5)  # without the entropy bonus q keeps hopping between near-collapses
    opt = two_point.two_point_run(q0, "gan", "optimal", None, 40)
    assert np.max(np.abs(opt[-1] - 0.5)) < 1e-8  # the optimal D alone already leads to 1/2


def test_two_point_equilibrium_unstable_at_lambda_zero_stable_with_entropy():
    assert two_point.two_point_spectral_radius("gan", 0.0) > 1.0
    assert two_point.two_point_spectral_radius("gan", 0.02) < 1.0


# ---------------------------------------------------------------- Dirac-GAN

def _eig(spec, pen="none", lam=1.0):
    J, how, jump = dirac.dirac_jacobian(spec, pen, lam)
    ev = np.linalg.eigvals(J) if np.isfinite(J).all() else np.array([np.nan, np.nan])
    return np.sort_complex(ev), J, how, jump


@pytest.mark.parametrize("spec,f0", [("gan", 0.5), ("nsgan", 0.5), ("wgan", 1.0), ("hinge", 1.0)])
def test_dirac_eigenvalues_purely_imaginary_without_penalty(spec, f0):
    ev, _, how, _ = _eig(spec)
    assert how == "autograd at (0,0)"
    assert np.max(np.abs(ev.real)) < 1e-12
    assert np.allclose(np.sort(ev.imag), [-f0, f0], atol=1e-12)


@pytest.mark.parametrize("spec,f0", [("gan", 0.5), ("nsgan", 0.5), ("wgan", 1.0), ("hinge", 1.0)])
@pytest.mark.parametrize("lam", [0.3, 1.0, 2.0])
def test_dirac_r1_eigenvalues_have_negative_real_parts(spec, f0, lam):
    # repo convention lam*||grad_x D||^2 = lam*psi^2, i.e. Mescheder's gamma = 2*lam:
    # eigenvalues -gamma/2 +- sqrt(gamma^2/4 - f'(0)^2) = -lam +- sqrt(lam^2 - f'(0)^2)
    ev, _, _, _ = _eig(spec, "r1", lam)
    want = np.sort_complex(np.array([-lam + np.sqrt(complex(lam ** 2 - f0 ** 2)),
                                     -lam - np.sqrt(complex(lam ** 2 - f0 ** 2))]))
    assert np.allclose(ev, want, atol=1e-9)
    assert np.max(ev.real) < 0


@pytest.mark.parametrize("p", range(1, 9))
def test_dirac_minkowski_closed_form(p):
    a = 2.0 ** -(p + 1)
    ev, J, _, _ = _eig(f"minkowski-p{p}")
    assert np.allclose(J, [[0, a], [-a, 0]], atol=1e-14)
    assert np.max(np.abs(ev.real)) < 1e-14 and np.allclose(np.sort(ev.imag), [-a, a], atol=1e-14)
    ev, _, _, _ = _eig(f"minkowski-p{p}", "r1", 1.0)
    assert np.allclose(np.sort(ev.real), [-1 - math.sqrt(1 - a * a), -1 + math.sqrt(1 - a * a)], atol=1e-9)


@pytest.mark.parametrize("spec", dirac.DIRAC_LOSSES)
@pytest.mark.parametrize("pen", ["none", "r1"])
def test_dirac_autograd_jacobian_matches_closed_form_and_finite_differences(spec, pen):
    _, J, _, _ = _eig(spec, pen, 0.7)
    assert np.allclose(J, dirac.dirac_closed_form(spec, pen, 0.7), atol=1e-9)
    h = 1e-5
    fd = np.zeros((2, 2))
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd[:, j] = (dirac._field_at(e, spec, pen, 0.7)[0].numpy() - dirac._field_at(-e, spec, pen, 0.7)[0].numpy()) / (2 * h)
    assert np.allclose(J, fd, atol=1e-6)


def test_dirac_unit_centred_penalty_is_not_differentiable_at_the_equilibrium():
    lam = 0.8
    _, J, how, jump = _eig("wgan", "wgan-gp", lam)
    assert np.isnan(J).all() and how.startswith("not differentiable")
    assert abs(jump - 4 * lam) < 1e-6  # v_psi = -2 lam (|psi| - 1) sign(psi): +-2 lam either side


def test_dirac_batched_field_equals_single_games():
    z = torch.tensor([[1.0, 1.0], [0.3, -2.0], [-1.2, 0.5]], dtype=DT)
    pens = ["none", "r1", "wgan-gp"]
    for spec in ("gan", "lsgan", "minkowski-p3"):
        batched = dirac._field_at(z, spec, pens, 0.6)
        for i in range(3):
            single = dirac._field_at(z[i], spec, pens[i], 0.6)[0]
            assert torch.allclose(batched[i], single, atol=1e-12)
        assert torch.allclose(dirac.dirac_g_field(z, spec), batched[:, 0], atol=1e-12)


def test_dirac_minkowski_field_conserves_radius_only_for_p1():
    # v . z = theta*psi*sigma'(x)*[(1-sigma)^(p-1) - sigma^(p-1)], x = theta*psi: 0 for p = 1
    # (zero-sum), < 0 for p > 1 wherever theta*psi != 0 (nonlinear damping, like the NS-GAN)
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.normal(size=(50, 2)) * 2, dtype=DT)
    for p in range(1, 9):
        v = dirac._field_at(z, f"minkowski-p{p}", "none", 1.0)
        radial = (v * z).sum(1)
        if p == 1:
            assert radial.abs().max() < 1e-14
        else:
            assert (radial < 0).all()


def test_dirac_updates_converge_with_r1_and_not_without():
    runs = dirac.dirac_trajectories("gan", ("none", "r1"), lam=1.0, eta=0.1, steps=600)
    for S in runs["r1"]:
        assert np.hypot(*S[-1]) < 1e-3
    sim, alt = runs["none"]
    assert np.hypot(*sim[-1]) > 1.0 and np.hypot(*alt[-1]) > 1.0
    J = dirac.dirac_closed_form("wgan")
    assert abs(np.abs(np.linalg.eigvals(dirac.update_matrix(J, 0.1, "sim"))).max() - math.sqrt(1.01)) < 1e-12
    assert abs(np.abs(np.linalg.eigvals(dirac.update_matrix(J, 0.1, "alt"))).max() - 1.0) < 1e-12


# ---------------------------------------------------------------- command line

def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "analysis.dynamics", "bilinear", "--eta", "2",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_cli_bilinear_writes_csv_and_png(tmp_path):
    r = subprocess.run([sys.executable, "-m", "analysis.dynamics", "bilinear", "--steps", "50",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    import pandas as pd
    df = pd.read_csv(tmp_path / "bilinear.csv")
    assert set(df.method) == set(bilinear.BILINEAR_METHODS)
    sim = df[df.method == "simultaneous"]
    assert np.allclose(sim.radius, sim.radius_closed_form, atol=1e-10)
    assert (tmp_path / "bilinear.png").stat().st_size > 1000
