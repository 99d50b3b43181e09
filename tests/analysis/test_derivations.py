"""analysis/derivations.py: each of the paper's derivations, computed, against closed forms written out here."""
from fractions import Fraction

import numpy as np
import pytest
import torch

from minkgan import derivations
import losses


@pytest.mark.parametrize("p", [1, 1.5, 2, 2.5, 3, 4.7, 8])
def test_i_absolute_value_keeps_the_loss_non_negative_for_any_real_p(p):
    assert derivations.loss_d_minimum(p) == pytest.approx(0.0, abs=1e-12)  # reached at D(x) = 1, D(G(z)) = 0


@pytest.mark.parametrize("p,expected", [(1, -1.0), (2, 0.0), (3, -1 / 3), (4, 0.0), (5, -0.2)])
def test_i_without_the_absolute_value_odd_p_goes_negative(p, expected):
    """(D(x) - 1)^p / p is -1/p at D(x) = 0 for odd p: the only case where evenness matters."""
    assert derivations.loss_d_minimum(p, absolute=False) == pytest.approx(expected, abs=1e-12)


def test_ii_binomial_increases_past_3_and_its_log_derivative_is_psi5_minus_psi1():
    b = derivations.binomial_table()
    assert b["C"] == [0, 0, 0, 1, 5, 15, 35, 70]
    harmonic = float(sum(Fraction(1, j) for j in range(1, 5)))  # psi(5) - psi(1) = H_4 = 25/12
    assert harmonic == pytest.approx(25 / 12)
    assert b["dlog_digamma"] == pytest.approx(harmonic, rel=1e-12)
    assert b["dlog_numeric"] == pytest.approx(harmonic, rel=1e-8)
    assert abs(b["dlog_digamma"] - derivations.PAPER_DLOG_BINOMIAL) > 0.1  # the paper's 2.186 is not it
    assert all(b["C"][i + 1] > b["C"][i] for i in range(3, 7))  # increasing: p = 4 is no maximum


@pytest.mark.parametrize("p", [1.5, 2, 3, 4, 8])
@pytest.mark.parametrize("ratio", [0.2, 1.0, 3.0])
def test_iii_optimal_discriminator_closed_form_against_a_grid_search(p, ratio):
    """D* = 1 / (1 + (p_g/p_data)^(1/(p-1))) minimises p_data (1 - D)^p + p_g D^p: grid search here in
    numpy, and derivations' own search through the repository's loss."""
    d = np.linspace(0, 1, 200001)
    search = d[np.argmin((1 - d) ** p + ratio * d ** p)]
    closed = 1 / (1 + ratio ** (1 / (p - 1)))
    assert derivations.optimal_d(p, ratio) == pytest.approx(closed, rel=1e-12)
    assert closed == pytest.approx(search, abs=2e-5)
    assert derivations.optimal_d_by_search(p, ratio) == pytest.approx(closed, abs=2e-5)


def test_iii_p2_is_the_gan_optimum_and_large_p_tends_to_one_half():
    assert derivations.optimal_d(2, 3.0) == pytest.approx(1 / (1 + 3.0))  # p_data / (p_data + p_g)
    gaps = [abs(derivations.optimal_d(p, 3.0) - 0.5) for p in (2, 4, 8, 32, 1000)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and gaps[-1] < 1e-3


@pytest.mark.parametrize("p", range(1, 9))
def test_iv_generator_gradient_through_the_logit(p):
    d = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(derivations.generator_gradient(p, d), -d * (1 - d) ** p, rtol=1e-12)
    d_peak, g_peak = derivations.generator_gradient_peak(p)
    assert d_peak == pytest.approx(1 / (p + 1), abs=1e-4)  # d/dD [D (1-D)^p] = 0 at 1 - D = p D
    assert g_peak == pytest.approx((1 / (p + 1)) * (p / (p + 1)) ** p, rel=1e-6)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3, 4, 8])
def test_v_the_pull_on_a_common_logit_shift_is_p_minus_1(p):
    # L(c) = ((1 - s)^p + s^p) / p with s = sigmoid(c): L'' (0) = (p - 1) 2^-(p+1), drive (1/2)^(p-1) / 4
    assert derivations.shift_stiffness(lambda r, f: losses.minkowski_d(r, f, p)) == pytest.approx(p - 1, abs=1e-12)


def test_v_gan_pulls_like_p2_and_wgan_not_at_all():
    # -log s(c) - log(1 - s(c)): L''(0) = 2 s'(0) = 1/2 against a drive of 1/2; WGAN is linear in c
    assert derivations.shift_stiffness(losses.bce_d) == pytest.approx(1, abs=1e-12)
    assert derivations.shift_stiffness(losses.wgan_d) == 0


def test_main_prints_every_item(capsys):
    assert derivations.main() == 0
    out = capsys.readouterr().out
    assert all(f"({item})" in out for item in ("i", "ii", "iii", "iv", "v")) and "2.0833" in out
