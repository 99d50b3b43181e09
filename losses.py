"""GAN losses as functions of the discriminator's raw output (a logit).

Each loss is a pair (d_loss(real, fake), g_loss(fake)) of the logits D gives real and fake
batches. Probabilities are never formed and logged: log D = -softplus(-d) and
log(1 - D) = -softplus(d), so nothing computes log(0). To add a loss, write its pair and
register it in `make_loss`.
"""
import math

import torch
import torch.nn.functional as F

from minkgan import ops
from minkgan.utils import UserError

LOSSES = ("gan", "nsgan", "wgan", "wgan-gp", "lsgan", "hinge", "minkowski")
PROBABILISTIC = ("gan", "nsgan", "lsgan", "minkowski")  # losses with a real-label target


def bce_d(real, fake, real_target=1.0):
    """-E[t log D(x) + (1-t) log(1-D(x))] - E log(1 - D(G(z))): the original D loss."""
    target = torch.full_like(real, real_target)
    return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()


def gan_g(fake):
    """Saturating minimax G loss E log(1 - D(G(z))) (the paper's Loss_G1)."""
    return -F.softplus(fake).mean()


def nsgan_g(fake):
    """Non-saturating G loss -E log D(G(z)) (the paper's Loss_G2)."""
    return F.softplus(-fake).mean()


def wgan_d(real, fake):
    """Critic loss E D(G(z)) - E D(x); Lipschitz-ness comes from clipping or a penalty."""
    return fake.mean() - real.mean()


def wgan_g(fake):
    return -fake.mean()


def lsgan_d(real, fake, real_target=1.0):
    """0.5 E(D(x) - t)^2 + 0.5 E D(G(z))^2 on raw outputs (Mao et al., a-b-c = 0-1-1)."""
    return 0.5 * (real - real_target).pow(2).mean() + 0.5 * fake.pow(2).mean()


def lsgan_g(fake):
    return 0.5 * (fake - 1).pow(2).mean()


def hinge_d(real, fake):
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def minkowski_d(real, fake, p, on_probs=True, real_target=1.0):
    """The paper's L_D = (1/p) E|D(x) - 1|^p + (1/p) E|D(G(z))|^p, D = sigmoid(logit)."""
    return ops.minkowski_power(real, real_target, p, on_probs) + ops.minkowski_power(fake, 0.0, p, on_probs)


def minkowski_g(fake, p, on_probs=True):
    """The paper's L_G = (1/p) E|D(G(z)) - 1|^p."""
    return ops.minkowski_power(fake, 1.0, p, on_probs)


def default_n_critic(name):
    """D steps per G step: 5 for the Wasserstein critics (their papers), 1 for the others."""
    return 5 if name in ("wgan", "wgan-gp") else 1


def make_loss(name, p=4.0, minkowski_on="probs", real_target=1.0):
    """Return (d_loss(real, fake), g_loss(fake)) for a loss name; bad settings raise UserError."""
    if name not in LOSSES:
        raise UserError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    if not (math.isfinite(p) and p >= 1):
        raise UserError(f"--p must be a finite real number >= 1, got {p}")
    if minkowski_on not in ("probs", "logits"):
        raise UserError(f"--minkowski-on must be 'probs' or 'logits', got {minkowski_on!r}")
    if real_target != 1.0 and name not in PROBABILISTIC:
        raise UserError(f"label smoothing needs a loss with a real label ({', '.join(PROBABILISTIC)}), not {name}")
    t = real_target
    if name in ("gan", "nsgan"):
        return (lambda r, f: bce_d(r, f, t)), (gan_g if name == "gan" else nsgan_g)
    if name in ("wgan", "wgan-gp"):
        return wgan_d, wgan_g
    if name == "lsgan":
        return (lambda r, f: lsgan_d(r, f, t)), lsgan_g
    if name == "hinge":
        return hinge_d, wgan_g
    on_probs = minkowski_on == "probs"
    return (lambda r, f: minkowski_d(r, f, p, on_probs, t)), (lambda f: minkowski_g(f, p, on_probs))


def interpolate(real, fake):
    """Random points on the segments between real and fake samples (Gulrajani et al.)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    return (alpha * real + (1 - alpha) * fake).requires_grad_(True)


def mode_seeking(fake, z, eps=1e-5):
    """MSGAN's diversity term (Mao et al. 2019), added to G's loss times a weight: 1 / (ratio + eps),
    ratio = mean|G(z1) - G(z2)| / mean|z1 - z2| over the two halves of the batch. It is small when
    distinct noise gives distinct samples, so G is pushed away from collapsing z onto few outputs."""
    half = fake.shape[0] // 2
    ratio = (fake[:half] - fake[half:2 * half]).abs().mean() / (z[:half] - z[half:2 * half]).abs().mean()
    return 1.0 / (ratio + eps)


def gradient_penalty(D, x, lam, center=1.0):
    """lam * E(||grad_x D(x)|| - center)^2 at the points x, differentiable w.r.t. D's weights.

    center = 1 with interpolates is WGAN-GP (what train.py's --gp does); center = 0 with x the
    real data is R1 (Mescheder et al.).
    """
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    out = D(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ops.gradient_penalty(g, lam, center)
