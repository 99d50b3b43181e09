"""Generators and discriminators. Every D returns one raw logit per sample; losses.py reads it.

- `dcgan`: the DCGAN of Radford et al. (2016) at 32x32, the usual CIFAR-10 layout (as in
  Miyato et al. 2018 and Mescheder et al. 2018's baselines), width w = 64 by default:
    G: z -> ConvT(z, 8w, 4, 1, 0) 4x4 -> ConvT(8w, 4w) 8x8 -> ConvT(4w, 2w) 16x16
         -> ConvT(2w, 3) 32x32, tanh; BatchNorm + ReLU after every layer but the last.
    D: Conv(3, 2w, 4, 2, 1) 16x16 -> Conv(2w, 4w) 8x8 -> Conv(4w, 8w) 4x4 -> Conv(8w, 1, 4) logit;
         LeakyReLU(0.2) after every layer but the last, BatchNorm after the middle two
         (none on D's input layer, as Radford et al.), `norm="none"` for WGAN-GP's critic.
  The paper does not list its layers, so this is the canonical choice.
- `pytorchgan`: the dcgan.py of eriklindernoren/PyTorch-GAN, whose defaults equal the
  paper's Table 1, so the authors may have run it: upsample+conv G, strided-conv D with
  dropout 0.25, and BatchNorm2d(c, 0.8), which sets eps = 0.8 (kept, as the likely original).
  Its final sigmoid is dropped: D returns the logit and the loss applies the sigmoid.
- `mlp`: 3 hidden layers of 128 units (ReLU in G, LeakyReLU in D, no normalisation) for the
  2-D benchmarks.
"""
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from minkgan.utils import UserError

ARCHS = ("dcgan", "pytorchgan", "mlp")


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim=100, width=64, channels=3):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(True),
            nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),
            nn.ConvTranspose2d(2 * w, channels, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, width=64, channels=3, norm="batch"):
        super().__init__()
        w = width
        bn = (lambda c: nn.BatchNorm2d(c)) if norm == "batch" else (lambda c: nn.Identity())
        self.net = nn.Sequential(
            nn.Conv2d(channels, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), bn(4 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 8 * w, 4, 2, 1), bn(8 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(8 * w, 1, 4, 1, 0),
        )

    def forward(self, x):
        return self.net(x).flatten()


class PyTorchGANGenerator(nn.Module):
    """eriklindernoren/PyTorch-GAN dcgan.py Generator (img_size 32, 128 channels)."""

    def __init__(self, z_dim=100, width=64, channels=3):
        super().__init__()
        c = 2 * width
        self.l1 = nn.Linear(z_dim, c * 8 * 8)
        self.conv = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.Upsample(scale_factor=2), nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c, 0.8), nn.LeakyReLU(0.2, True),
            nn.Upsample(scale_factor=2), nn.Conv2d(c, width, 3, 1, 1), nn.BatchNorm2d(width, 0.8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh(),
        )

    def forward(self, z):
        return self.conv(self.l1(z).view(z.shape[0], -1, 8, 8))


class PyTorchGANDiscriminator(nn.Module):
    """eriklindernoren/PyTorch-GAN dcgan.py Discriminator, without its final sigmoid."""

    def __init__(self, width=64, channels=3, norm="batch"):
        super().__init__()

        def block(c_in, c_out, bn):
            layers = [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout2d(0.25)]
            if bn and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out, 0.8))
            return layers

        w = width // 4  # 16 at the default width, as the original
        self.conv = nn.Sequential(*block(channels, w, False), *block(w, 2 * w, True),
                                  *block(2 * w, 4 * w, True), *block(4 * w, 8 * w, True))
        self.fc = nn.Linear(8 * w * 2 * 2, 1)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1)).flatten()


class MLPGenerator(nn.Module):
    def __init__(self, z_dim=100, width=128, dim=2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, width), nn.ReLU(True), nn.Linear(width, width), nn.ReLU(True),
                                 nn.Linear(width, width), nn.ReLU(True), nn.Linear(width, dim))

    def forward(self, z):
        return self.net(z)


class MLPDiscriminator(nn.Module):
    def __init__(self, width=128, dim=2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.LeakyReLU(0.2, True), nn.Linear(width, width),
                                 nn.LeakyReLU(0.2, True), nn.Linear(width, width), nn.LeakyReLU(0.2, True),
                                 nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x).flatten()


def apply_spectral_norm(module):
    """Spectral normalisation (Miyato et al. 2018) on every conv and linear layer."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


def init_weights(m):
    """DCGAN initialisation: N(0, 0.02) for conv/linear weights, N(1, 0.02) for BatchNorm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def init_pytorchgan(m):
    """PyTorch-GAN's weights_init_normal: conv weights and BatchNorm only; Linear layers and conv
    biases keep PyTorch's default initialisation, as in the original dcgan.py."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build(arch, z_dim=100, width=None, d_norm="batch", sn=False):
    """Return (G, D) for an architecture name; width None means the architecture's default."""
    if arch == "mlp":
        G, D = MLPGenerator(z_dim, width or 128), MLPDiscriminator(width or 128)
    elif arch == "dcgan":
        G, D = DCGANGenerator(z_dim, width or 64), DCGANDiscriminator(width or 64, norm=d_norm)
    elif arch == "pytorchgan":
        G, D = PyTorchGANGenerator(z_dim, width or 64), PyTorchGANDiscriminator(width or 64, norm=d_norm)
    else:
        raise UserError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch != "mlp":
        init = init_pytorchgan if arch == "pytorchgan" else init_weights
        G.apply(init)
        D.apply(init)
    if sn:
        apply_spectral_norm(D)
    return G, D
