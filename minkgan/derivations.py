"""The paper's derivations about its loss, checked numerically: `python -m analysis.derivations` prints them.

With D = sigmoid(logit), L_D = (1/p) E|D(x) - 1|^p + (1/p) E|D(G(z))|^p, L_G = (1/p) E|D(G(z)) - 1|^p:

(i)   With the absolute value every real p >= 1 gives L_D >= 0 (a power of a non-negative number);
      the paper's "p must be even" is needed only without it ((D - 1)^3 < 0 for D < 1).
(ii)  The paper argues C(p, 4) is largest at p = 4. C(p, 4) = 0, 0, 0, 1, 5, 15, 35, 70 for
      p = 1..8: it increases past p = 3. d/dp ln C(p, 4) = psi(p + 1) - psi(p - 3), at p = 4
      psi(5) - psi(1) = 1 + 1/2 + 1/3 + 1/4 = 2.0833 (the paper prints 2.186); a positive
      derivative means increasing, not a maximum.
(iii) The optimal D at a point with densities p_data, p_g minimises
      p_data (1 - D)^p + p_g D^p: D* = 1 / (1 + (p_g / p_data)^(1 / (p - 1))) for p > 1
      (p = 2: p_data / (p_data + p_g), the GAN's D*), and D* -> 1/2 as p grows.
(iv)  G's gradient through D's logit: dL_G/dlogit = -D (1 - D)^p per sample, largest in size
      at D = 1 / (p + 1), where it is (1 / (p + 1)) (p / (p + 1))^p.
(v)   How hard the loss holds D's logits at 0: shift every logit, real and fake, by c. L_D's
      curvature in c at 0 over the size of its gradient in a real logit there is p - 1 for
      Minkowski p (GAN: 1, WGAN: 0): a pull back to 0 that grows with p, as the optimal logit
      log(p_data / p_g) / (p - 1) of (iii) says. WGAN and p = 1 have none.
Each check evaluates the repository's loss (losses.py) or a grid search; tests/analysis/test_derivations.py
checks them against the closed forms.
"""
import math

import torch

import losses

PAPER_DLOG_BINOMIAL = 2.186  # the paper's value of d/dp ln C(p, 4) at p = 4


def probabilities(n=200001, dtype=torch.float64):
    """A uniform grid on [0, 1] and the logits that give it (+-inf at the ends)."""
    d = torch.linspace(0, 1, n, dtype=dtype)
    return d, torch.logit(d)


def loss_d_minimum(p, absolute=True, n=201):
    """Smallest L_D over D(x), D(G(z)) on a grid of n values each. L_D is a term of D(x) plus a term
    of D(G(z)), so its minimum is the sum of theirs: each from losses.minkowski_d with the other
    logit at the end where its term is 0. absolute=False drops the |.| (integer p only):
    (1/p) (D(x) - 1)^p + (1/p) D(G(z))^p."""
    d, logit = probabilities(n)
    if not absolute:
        return float(((d - 1) ** p / p).min() + (d ** p / p).min())
    one = lambda x: x.reshape(1)  # noqa: E731
    inf = torch.tensor([math.inf], dtype=d.dtype)
    real_term = min(float(losses.minkowski_d(one(x), -inf, p)) for x in logit)
    fake_term = min(float(losses.minkowski_d(inf, one(x), p)) for x in logit)
    return real_term + fake_term


def binomial_table(k=4, ps=range(1, 9)):
    """C(p, k) for the integer p, and d/dp ln C(p, k) at p = k: psi(k + 1) - psi(1) by digamma, and
    by a central difference of ln Gamma (ln C(p, k) = lnG(p + 1) - lnG(k + 1) - lnG(p - k + 1))."""
    ln_c = lambda p: math.lgamma(p + 1) - math.lgamma(k + 1) - math.lgamma(p - k + 1)  # noqa: E731
    h = 1e-5
    digamma = float(torch.special.digamma(torch.tensor(k + 1.0, dtype=torch.float64))
                    - torch.special.digamma(torch.tensor(1.0, dtype=torch.float64)))
    return {"C": [math.comb(p, k) for p in ps], "dlog_digamma": digamma,
            "dlog_numeric": (ln_c(k + h) - ln_c(k - h)) / (2 * h)}


def optimal_d(p, ratio):
    """Closed form of D* for densities with p_g / p_data = ratio, p > 1."""
    return 1 / (1 + ratio ** (1 / (p - 1)))


def optimal_d_by_search(p, ratio):
    """argmin over a grid of D of p_data L(D, real) + p_g L(D, fake), with p_data = 1 and the
    repository's Minkowski power (1/p)|D - t|^p evaluated per grid point."""
    d, logit = probabilities()
    real = (torch.sigmoid(logit) - 1).abs().pow(p) / p  # minkowski_power per point, t = 1
    fake = torch.sigmoid(logit).abs().pow(p) / p  # t = 0
    assert torch.allclose(real[1:-1].mean(), losses.minkowski_g(logit[1:-1], p), rtol=1e-9)  # the same loss
    return float(d[torch.argmin(real + ratio * fake)])


def optimal_d_largest_gap(ps=(2, 3, 4, 8), ratios=(1 / 3, 3.0)):
    """The largest |closed form - grid search| of D* over these p and density ratios: claim (g)'s check."""
    return max(abs(optimal_d(p, r) - optimal_d_by_search(p, r)) for p in ps for r in ratios)


def generator_gradient(p, d):
    """dL_G/dlogit by autograd through losses.minkowski_g, one sample per value of D in d."""
    logit = torch.logit(torch.as_tensor(d, dtype=torch.float64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.minkowski_g(logit, p) * logit.numel(), logit)
    return grad


def generator_gradient_peak(p):
    """(D where |dL_G/dlogit| is largest on a grid, the value there) by autograd."""
    d = torch.linspace(1e-4, 1 - 1e-4, 99999, dtype=torch.float64)
    g = generator_gradient(p, d).abs()
    i = int(torch.argmax(g))
    return float(d[i]), float(g[i])


def shift_stiffness(loss_d):
    """L_D''(c) / |dL_D/d real logit| at c = 0, for every logit shifted by c, by autograd through
    the repository's loss_d(real, fake) on one real and one fake logit."""
    zero = torch.zeros(1, dtype=torch.float64)
    curvature = torch.func.jacrev(torch.func.jacrev(lambda c: loss_d(c, c)))(zero)  # reverse over reverse
    drive = torch.func.grad(lambda real: loss_d(real, zero))(zero)
    return float(curvature / drive.abs())


def main():
    print("(i) smallest L_D, with |.| (any real p) and without (integer p):")
    for p in (1, 1.5, 2, 2.5, 3, 4, 5, 8):
        without = f"{loss_d_minimum(p, absolute=False):+.4f}" if float(p).is_integer() else "undefined"
        print(f"  p = {p:<4}  with |.|: {loss_d_minimum(p):.4f}   without: {without}")
    b = binomial_table()
    print(f"(ii) C(p, 4), p = 1..8: {b['C']}")
    print(f"     d/dp ln C(p, 4) at p = 4: {b['dlog_digamma']:.4f} (digamma), {b['dlog_numeric']:.4f} "
          f"(finite difference); the paper prints {PAPER_DLOG_BINOMIAL}")
    print("(iii) D* for p_g / p_data = 1/3 and 3: closed form | grid search")
    for p in (1.5, 2, 3, 4, 8, 32):
        pairs = (f"{optimal_d(p, r):.4f} | {optimal_d_by_search(p, r):.4f}" for r in (1 / 3, 3))
        print(f"  p = {p:<4}  " + "   ".join(pairs))
    print("(iv) G's gradient through the logit, -D(1 - D)^p: peak at D = 1/(p+1) | grid, value | closed form,"
          " and at D = 1/2")
    for p in range(1, 9):
        d_peak, g_peak = generator_gradient_peak(p)
        closed = (1 / (p + 1)) * (p / (p + 1)) ** p
        at_half = float(generator_gradient(p, torch.tensor([0.5]))[0])
        print(f"  p = {p}  {1 / (p + 1):.4f} | {d_peak:.4f}   {closed:.5f} | {g_peak:.5f}   {at_half:+.5f}")
    print("(v) the pull of L_D on a common shift of D's logits, relative to its drive (p - 1 for Minkowski p):")
    print(f"  wgan {shift_stiffness(losses.wgan_d):.4f}   gan {shift_stiffness(losses.bce_d):.4f}   " + "   ".join(
        f"p = {p:g} {shift_stiffness(lambda r, f: losses.minkowski_d(r, f, p)):.4f}" for p in (1, 1.5, 2, 4, 8)))
    return 0

