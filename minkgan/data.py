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
    """Every image under root's class folders (ImageFolder's layout and order), resized and
    centre-cropped to 32x32."""
    import torchvision.transforms as T

    if not os.path.isdir(root):
        raise UserError(f"image folder {root!r} does not exist; pass --data-root with a folder of class sub-folders")
    transform = T.Compose([T.Resize(IMAGE_SIZE), T.CenterCrop(IMAGE_SIZE), T.PILToTensor()])
    files = image_files(root)
    if not files:
        raise UserError(f"no images found in {root!r}; it needs class sub-folders holding image files")
    return torch.stack([read_image(path, transform).expand(3, -1, -1) for path in files])  # greyscale -> 3 channels


def image_files(root):
    """The image files under root's class folders, in torchvision ImageFolder's order (classes sorted,
    then each class's folders and files), with links followed but each real folder read once: a link
    back up (cat/again -> .) read one class about 40 times. A class folder without images adds none
    (ImageFolder refused the whole dataset for it)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    seen, files = set(), []
    for name in classes:
        for folder, names in sorted(walk_once(os.path.join(root, name), seen)):
            files += [os.path.join(folder, f) for f in sorted(names) if has_file_allowed_extension(f, IMG_EXTENSIONS)]
    return files


def walk_once(top, seen):
    """(folder, file names) of every folder under top, links followed, but each real folder (by its
    resolved path, remembered in `seen`) only once."""
    if os.path.realpath(top) in seen:
        return
    for folder, subfolders, names in os.walk(top, followlinks=True):
        seen.add(os.path.realpath(folder))
        subfolders[:] = [d for d in subfolders if os.path.realpath(os.path.join(folder, d)) not in seen]
        yield folder, names


def read_image(path, transform):
    """An image file as RGB through transform; a file PIL cannot read is a UserError naming it, as is
    one whose header claims more pixels than PIL opens (a decompression bomb, which would fill the memory)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return transform(image.convert("RGB"))
    except Image.DecompressionBombError:
        width, height = claimed_size(path)
        raise UserError(f"image {path} claims {width}x{height} pixels, more than PIL opens "
                        f"({Image.MAX_IMAGE_PIXELS} at most); delete or replace it") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {path} ({type(e).__name__}); delete or replace it") from None


def claimed_size(path):
    """(width, height) an image file's header claims, read with PIL's pixel limit lifted (only the header is read)."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


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
