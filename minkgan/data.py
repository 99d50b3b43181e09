"""Datasets as in-memory tensors: whole image sets as uint8 (N, 3, 32, 32), toy sets as points.

Holding the data in one tensor (on the GPU when training there) replaces a DataLoader:
a batch is one index operation, with no worker processes and no host-device copy per step.
CIFAR-10 is 150 MB as uint8, so this fits anywhere.
"""
import math
import os

import numpy as np
import torch

from minkgan.utils import UserError

IMAGE_DATASETS = ("cifar10", "folder")
TOY_DATASETS = ("ring8", "grid25")
DATASETS = IMAGE_DATASETS + TOY_DATASETS
IMAGE_SIZE = 32


def toy_mixture(name):
    """(centres (K, 2), std) of an embedded 2-D benchmark (the VEEGAN / PacGAN protocol)."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return 2.0 * torch.stack([angles.cos(), angles.sin()], 1), 0.02
    if name == "grid25":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
        return torch.cartesian_prod(axis, axis), 0.05
    raise UserError(f"unknown toy dataset {name!r}; choose one of {', '.join(TOY_DATASETS)}")


def sample_toy(name, n, generator=None):
    """n float32 points from the mixture: a uniformly chosen centre plus isotropic noise."""
    centres, std = toy_mixture(name)
    idx = torch.randint(len(centres), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return (centres[idx] + std * noise).float()


def load_cifar10(root, split="train", download=True):
    import torchvision

    try:
        ds = torchvision.datasets.CIFAR10(root, train=(split == "train"), download=download)
    except Exception as e:  # no network, no disk space, a broken archive: all mean the same to the user
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"CIFAR-10 is not in {root!r} and could not be downloaded ({first_line}); "
                        f"download it there with torchvision or pass --data-root") from None
    return torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()


def load_folder(root):
    """Every image under root (ImageFolder layout), resized and centre-cropped to 32x32."""
    import torchvision
    import torchvision.transforms as T

    if not os.path.isdir(root):
        raise UserError(f"image folder {root!r} does not exist; pass --data-root with a folder of class sub-folders")
    transform = T.Compose([T.Resize(IMAGE_SIZE), T.CenterCrop(IMAGE_SIZE), T.PILToTensor()])
    try:
        ds = torchvision.datasets.ImageFolder(root, transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise UserError(f"no images found in {root!r} ({e}); it needs class sub-folders holding image files") from None
    return torch.stack([read_image(ds, i).expand(3, -1, -1) for i in range(len(ds))])  # greyscale -> 3 channels


def read_image(dataset, i):
    """Image i of an ImageFolder; a file PIL cannot read is a UserError naming it."""
    from PIL import UnidentifiedImageError

    try:
        return dataset[i][0]
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {dataset.samples[i][0]} ({type(e).__name__}); delete or replace it") from None


def load_images(dataset, root, split="train", download=True):
    """uint8 tensor (N, 3, 32, 32) of a real image dataset."""
    if dataset == "cifar10":
        return load_cifar10(root, split, download)
    if dataset == "folder":
        return load_folder(root)
    raise UserError(f"unknown image dataset {dataset!r}; choose one of {', '.join(IMAGE_DATASETS)}")


def to_model_range(images_uint8):
    """uint8 [0, 255] -> float [-1, 1], the range of G's tanh."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def to_uint8(images):
    """float [-1, 1] -> uint8, rounding exactly as torchvision.utils.save_image does for a PNG."""
    return images.add(1).mul(127.5).add_(0.5).clamp_(0, 255).to(torch.uint8)
