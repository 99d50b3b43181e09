"""Every loss against an independent plain-Python formula, plus gradients and gradcheck."""
import math

import pytest
import torch

import losses
from minkgan.utils import UserError

REAL = [2.0, -1.0, 0.5, 3.0]
FAKE = [-3.0, 0.0, 1.5, -0.25]


def sig(x):
    return 1 / (1 + math.exp(-x))


def mean(xs):
    return sum(xs) / len(xs)


def expected(name, r, f, p=4.0, t=1.0):
    """(L_D, L_G) written out from the papers' definitions, element by element."""
    if name in ("gan", "nsgan"):
        d = mean([-(t * math.log(sig(x)) + (1 - t) * math.log(1 - sig(x))) for x in r]) - mean([math.log(1 - sig(x)) for x in f])
        g = mean([math.log(1 - sig(x)) for x in f]) if name == "gan" else -mean([math.log(sig(x)) for x in f])
    elif name in ("wgan", "wgan-gp"):
        d, g = mean(f) - mean(r), -mean(f)
    elif name == "lsgan":
        d = 0.5 * mean([(x - t) ** 2 for x in r]) + 0.5 * mean([x ** 2 for x in f])
        g = 0.5 * mean([(x - 1) ** 2 for x in f])
    elif name == "hinge":
        d, g = mean([max(0.0, 1 - x) for x in r]) + mean([max(0.0, 1 + x) for x in f]), -mean(f)
    elif name == "minkowski":
        d = mean([abs(sig(x) - t) ** p for x in r]) / p + mean([abs(sig(x)) ** p for x in f]) / p
        g = mean([abs(sig(x) - 1) ** p for x in f]) / p
    return d, g


@pytest.mark.parametrize("name", losses.LOSSES)
def test_loss_values_match_the_formula(name):
    d_loss, g_loss = losses.make_loss(name, p=4.0)
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    d, g = expected(name, REAL, FAKE)
    assert d_loss(r, f).item() == pytest.approx(d, rel=1e-12)
    assert g_loss(f).item() == pytest.approx(g, rel=1e-12)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 8.0])
def test_minkowski_any_p(p):
    d_loss, g_loss = losses.make_loss("minkowski", p=p)
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    d, g = expected("minkowski", REAL, FAKE, p=p)
    assert d_loss(r, f).item() == pytest.approx(d, rel=1e-12)
    assert g_loss(f).item() == pytest.approx(g, rel=1e-12)


@pytest.mark.parametrize("name", ["gan", "nsgan", "lsgan", "minkowski"])
def test_label_smoothing_moves_the_real_target(name):
    d_loss, _ = losses.make_loss(name, p=3.0, real_target=0.9)
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    assert d_loss(r, f).item() == pytest.approx(expected(name, REAL, FAKE, p=3.0, t=0.9)[0], rel=1e-12)


def test_minkowski_p2_on_logits_equals_lsgan():
    r, f = torch.randn(100, dtype=torch.float64), torch.randn(100, dtype=torch.float64)
    mink_d, mink_g = losses.make_loss("minkowski", p=2.0, minkowski_on="logits")
    ls_d, ls_g = losses.make_loss("lsgan")
    torch.testing.assert_close(mink_d(r, f), ls_d(r, f), rtol=1e-14, atol=0)
    torch.testing.assert_close(mink_g(f), ls_g(f), rtol=1e-14, atol=0)


def test_minkowski_p2_on_probs_is_half_lsgan_on_probs():
    r, f = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    d_loss, _ = losses.make_loss("minkowski", p=2.0)
    ls_d, _ = losses.make_loss("lsgan")
    torch.testing.assert_close(d_loss(r, f), ls_d(torch.sigmoid(r), torch.sigmoid(f)), rtol=1e-14, atol=0)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 4.0, 8.0])
def test_minkowski_gradient_is_the_analytic_derivative(p):
    """dL_G/dd_i = |s_i - 1|^(p-1) sign(s_i - 1) s_i (1 - s_i) / N, and likewise for L_D."""
    f = torch.tensor(FAKE, dtype=torch.float64, requires_grad=True)
    r = torch.tensor(REAL, dtype=torch.float64, requires_grad=True)
    d_loss, g_loss = losses.make_loss("minkowski", p=p)
    (grad_g,) = torch.autograd.grad(g_loss(f), f)
    grad_r, grad_f = torch.autograd.grad(d_loss(r, f), (r, f))
    n = len(FAKE)

    def deriv(x, t):
        s = sig(x)
        return abs(s - t) ** (p - 1) * math.copysign(1.0, s - t) * s * (1 - s) / n

    assert grad_g.tolist() == pytest.approx([deriv(x, 1.0) for x in FAKE], rel=1e-12)
    assert grad_r.tolist() == pytest.approx([deriv(x, 1.0) for x in REAL], rel=1e-12)
    assert grad_f.tolist() == pytest.approx([deriv(x, 0.0) for x in FAKE], rel=1e-12)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_gradcheck_float64(name):
    d_loss, g_loss = losses.make_loss(name, p=3.5)
    r = torch.randn(6, dtype=torch.float64, requires_grad=True)
    f = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(d_loss, (r, f))
    assert torch.autograd.gradcheck(g_loss, (f,))


@pytest.mark.parametrize("name", losses.LOSSES)
def test_extreme_logits_stay_finite(name):
    d_loss, g_loss = losses.make_loss(name)
    r = torch.tensor([100.0, -100.0], requires_grad=True)
    f = torch.tensor([-100.0, 100.0], requires_grad=True)
    d, g = d_loss(r, f), g_loss(f)
    (d + g).backward()
    assert torch.isfinite(d) and torch.isfinite(g)
    assert torch.isfinite(r.grad).all() and torch.isfinite(f.grad).all()


def test_gan_d_loss_at_a_confident_wrong_d():
    """D says fake for a real sample with logit -100: the loss is ~100 (log(0) would be inf)."""
    d_loss, _ = losses.make_loss("gan")
    assert d_loss(torch.tensor([-100.0]), torch.tensor([-100.0])).item() == pytest.approx(100.0, rel=1e-6)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = w.x has gradient w everywhere: the penalty is lam * (||w|| - c)^2 exactly."""
    D = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, 4.0, 0.0]]))
    x = torch.randn(5, 3, dtype=torch.float64)
    assert losses.gradient_penalty(D, x, lam=10.0, center=1.0).item() == pytest.approx(10 * (5 - 1) ** 2)
    assert losses.gradient_penalty(D, x, lam=2.0, center=0.0).item() == pytest.approx(2 * 25)
    penalty = losses.gradient_penalty(D, x, lam=10.0, center=1.0)
    penalty.backward()  # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||
    torch.testing.assert_close(D.weight.grad, 20 * 4 * torch.tensor([[3.0, 4.0, 0.0]], dtype=torch.float64) / 5)


def test_interpolates_lie_between_real_and_fake():
    real, fake = torch.zeros(200, 2), torch.ones(200, 2)
    x = losses.interpolate(real, fake)
    assert x.requires_grad and (x >= 0).all() and (x <= 1).all()
    assert torch.equal(x[:, 0], x[:, 1])  # one alpha per sample
    assert x[:, 0].std() > 0.2


def test_mode_seeking_is_one_over_the_distance_ratio_of_the_batch_halves():
    fake = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([[0.0], [0.0], [4.0], [2.0]], dtype=torch.float64)
    # halves (rows 0-1 vs 2-3): mean|fake diff| = (2 + 0 + 0 + 2) / 4 = 1, mean|z diff| = (4 + 2) / 2 = 3
    value = losses.mode_seeking(fake, z)
    assert value.item() == pytest.approx(1 / (1 / 3 + 1e-5), rel=1e-12)
    assert torch.autograd.gradcheck(lambda f: losses.mode_seeking(f, z), (fake.detach().clone().requires_grad_(),))
    # spreading the samples apart lowers the term
    assert losses.mode_seeking(fake * 2, z) < value


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "wasserstein"}, "unknown loss"),
    ({"name": "minkowski", "p": 0.5}, "--p must be"),
    ({"name": "minkowski", "p": float("inf")}, "--p must be"),
    ({"name": "minkowski", "p": float("nan")}, "--p must be"),
    ({"name": "hinge", "real_target": 0.9}, "label smoothing"),
])
def test_bad_settings_raise_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        losses.make_loss(**kwargs)
