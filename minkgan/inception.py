"""pytorch-fid's Inception as a fast extractor (BatchNorm folded, channels_last; features equal to
pytorch-fid's to ~1e-6), its weights, the cached real statistics and the FID floor, and the FID of
two image folders or .npz files. evaluate.py's module docstring gives the protocol.
"""
import hashlib
import io
import json
import os
import sys
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn

from minkgan import data
from minkgan import paths
from minkgan import precision as precisions
from minkgan.metrics import KID_MAX_FEATURES, at_most, frechet_distance, kid, prdc, statistics
from minkgan.precision import tf32_switches
from minkgan.utils import UserError, atomic_write_bytes, atomic_write_text, read_json

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")  # as pytorch-fid
DEFAULT_STATS_DIR = os.path.join(paths.CACHE, "fid_stats")


def hub_weights_path():
    return os.path.join(torch.hub.get_dir(), "checkpoints", FID_WEIGHTS_NAME)


def load_fid_weights(path=None):
    """State dict of pytorch-fid's Inception: from path, torch hub's cache, or a download."""
    if path:
        if not os.path.isfile(path):
            raise UserError(f"--fid-weights {path} does not exist")
    else:
        path = hub_weights_path()
        if not os.path.isfile(path):
            try:
                torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, map_location="cpu", progress=False)
            except Exception as e:
                raise UserError(f"FID Inception weights are not in {path} and could not be downloaded "
                                f"({type(e).__name__}); download {FID_WEIGHTS_URL} to that path "
                                f"or pass --fid-weights PATH") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"FID Inception weights {path} are unreadable ({type(e).__name__}); "
                        f"download {FID_WEIGHTS_URL} again") from None


@contextmanager
def _patched_loader(state_dict):
    """Build pytorch-fid's network with this state dict instead of its download; None: no loading
    (the architecture keeps its random initialisation) and the Inception3 built is recorded."""
    import pytorch_fid.inception as pfi
    import torchvision

    built = []
    saved_loader, cls = pfi.load_state_dict_from_url, torchvision.models.inception.Inception3
    saved_load = cls.load_state_dict
    pfi.load_state_dict_from_url = lambda *a, **k: state_dict
    if state_dict is None:
        cls.load_state_dict = lambda self, *a, **k: built.append(self)
    try:
        yield pfi, built
    finally:
        pfi.load_state_dict_from_url, cls.load_state_dict = saved_loader, saved_load


def random_fid_weights(seed=0):
    """A state dict in the format of pytorch-fid's weights file, randomly initialised (He normal
    convolutions, so features stay O(1)): for plumbing tests only, never for a reported FID."""
    with _patched_loader(None) as (pfi, built), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pfi.fid_inception_v3()
        net = built[0]
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.state_dict()


def pytorch_fid_inception(weights=None):
    """pytorch-fid's InceptionV3([3]) in eval mode. weights: a state dict, a path, None (hub cache /
    download) or "random" (random_fid_weights(): plumbing tests only, not a real FID)."""
    if isinstance(weights, str) and weights == "random":
        state = random_fid_weights()
    elif isinstance(weights, dict):
        state = weights
    else:
        state = load_fid_weights(weights)
    with _patched_loader(state) as (pfi, _):
        try:
            model = pfi.InceptionV3([3])
        except RuntimeError as e:
            raise UserError(f"FID Inception weights do not fit pytorch-fid's network ({str(e).splitlines()[0]})") from None
    return model.eval()


def fold_batchnorm(model):
    """Fold every eval-mode BatchNorm into the convolution before it (pytorch-fid's BasicConv2d)."""
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True)
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            module.conv, module.bn = fused, nn.Identity()
    return model


class InceptionFeatures:
    """uint8 images (N, 3, H, W) -> float32 (N, 2048) pool3 features, as pytorch-fid computes them."""

    def __init__(self, weights=None, device="cpu", batch_size=200, fast=True, precision=precisions.DEFAULT):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.fast = fast
        self.precision = precision  # bfloat16: autocast around the network, features back in float32
        self.weights_tag = _weights_tag(weights)
        with torch.random.fork_rng(devices=[]):  # layer init draws random numbers: keep training's stream intact
            model = pytorch_fid_inception(weights)
            if fast:
                model = fold_batchnorm(model).to(memory_format=torch.channels_last)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, images, progress=None):
        out = []
        with _no_tf32(), precisions.autocast(self.precision, self.device):
            for i in range(0, len(images), self.batch_size):
                x = images[i:i + self.batch_size].to(self.device).float().div_(255)
                if self.fast:
                    x = x.contiguous(memory_format=torch.channels_last)
                out.append(self.model(x)[0].flatten(1).float().cpu())
                if progress:
                    progress(min(i + self.batch_size, len(images)), len(images))
        return torch.cat(out).numpy() if out else np.zeros((0, 2048), np.float32)


def _weights_tag(weights):
    if isinstance(weights, str) and weights == "random":
        return "random"
    if weights is None or os.path.basename(str(weights)) == FID_WEIGHTS_NAME:
        return ""  # the standard network
    if isinstance(weights, dict):
        return "custom"
    return hashlib.sha1(os.path.abspath(weights).encode()).hexdigest()[:8]


@contextmanager
def _no_tf32():
    """Full float32 convolutions and matmuls, whatever the training run chose (train.py --tf32)."""
    switches = tf32_switches()
    saved = [getattr(obj, name) for obj, name, _, _ in switches]
    for obj, name, _, off in switches:
        setattr(obj, name, off)
    try:
        yield
    finally:
        for (obj, name, _, _), value in zip(switches, saved):
            setattr(obj, name, value)


def progress(label):
    if not sys.stderr.isatty():
        return None
    return lambda done, total: print(f"\r{label}: {done}/{total}", end="\n" if done == total else "",
                                     file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- real statistics

def stats_path(stats_dir, dataset, data_root, split, n, seed, weights_tag="", precision=precisions.DEFAULT):
    """Cache file of real statistics, keyed by dataset (and folder), split, count, seed, weights and
    Inception's precision (float32 adds nothing: the caches from before the flag stay valid)."""
    name = dataset
    if dataset == "folder":
        name += "-" + hashlib.sha1(os.path.abspath(data_root).encode()).hexdigest()[:8]
    name += f"-{split}-{'all' if n is None else n}-seed{seed}"
    if weights_tag:
        name += f"-w{weights_tag}"
    if precision != precisions.DEFAULT:
        name += f"-{precision}"
    return os.path.join(stats_dir, name + ".npz")


def real_statistics(extractor, dataset, data_root, split="train", n=5000, seed=0, stats_dir=DEFAULT_STATS_DIR,
                    download=True, log=None, flag="--real-n"):
    """(mu, sigma, features: up to 5000 rows, for KID and prdc) of n real images (None: all), from the
    cache or computed and cached. More images than the dataset has is a UserError naming `flag`:
    the statistics are never those of fewer images than the count they are recorded under."""
    path = stats_path(stats_dir, dataset, data_root, split, n, seed, extractor.weights_tag, extractor.precision)
    cached = cached_statistics(path, n)
    if cached is not None:
        return cached
    images = data.load_images(dataset, data_root, split, download)
    if n is not None:
        if n > len(images):
            raise UserError(f"{flag} {n} is more than the {len(images)} images of {dataset} ({split}); "
                            f"pass {flag} {len(images)} or fewer")
        images = images[_permutation(len(images), seed)[:n]]
    if log:
        log(f"real statistics: {len(images)} {dataset} {split} images -> {path}")
    features = extractor(images, progress("real"))
    mu, sigma = statistics(features)
    kept = at_most(features, KID_MAX_FEATURES, np.random.default_rng(seed))
    save_stats(path, mu, sigma, kept)
    return mu, sigma, kept


def cached_statistics(path, n):
    """(mu, sigma, features) from a cache file, or None where there is none to trust: a torn or foreign
    file, or one whose features are fewer than n images give (the statistics of a clamped count, cached
    under the count asked for before that was refused), which is then recomputed and replaced."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path) as f:
            mu, sigma, features = f["mu"], f["sigma"], (f["features"] if "features" in f else None)
    except Exception:
        return None
    if features is not None and n is not None and len(features) < min(n, KID_MAX_FEATURES):
        return None
    return mu, sigma, features


def _permutation(n, seed):
    """The seeded order in which real images are drawn: the first n are the reference set."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def fid_floor(extractor, dataset, data_root, n=5000, seed=0, stats_dir=DEFAULT_STATS_DIR, log=None, compute=True):
    """{"fid_floor", "fid_floor_test"}: the FID of the n reference train images (those of
    real_statistics) against the next n train images of the same draw, and against n test images
    (CIFAR-10's test split, or a folder dataset's sibling folder `test` beside a root named `train`).
    No generator scores below it at that n. NaN where there are too few images (or n is None: all).
    Computed once and cached as JSON beside the real statistics; with compute=False only read from
    that cache (NaN when absent): 2n more Inception passes are too dear to pay inside a training run."""
    if n is None:
        return {"fid_floor": float("nan"), "fid_floor_test": float("nan")}
    path = stats_path(stats_dir, dataset, data_root, "floor", n, seed, extractor.weights_tag, extractor.precision)
    path = path[:-len(".npz")] + ".json"
    cached = read_json(path)
    if cached is not None or not compute:
        return cached or {"fid_floor": float("nan"), "fid_floor_test": float("nan")}
    if log:  # minutes on a CPU: say so before they start
        log(f"FID floor at {n} real images: {2 * n} more Inception passes, once (cached in {path})")
    out = _real_against_real(extractor, dataset, data_root, n, seed, stats_dir, log)
    if log:
        log(f"FID floor at {n} real images: {out['fid_floor']:.3f} (train), {out['fid_floor_test']:.3f} (test)")
    atomic_write_text(path, json.dumps(out))
    return out


def _real_against_real(extractor, dataset, data_root, n, seed, stats_dir, log):
    """fid_floor's two numbers, computed (NaN where too few images)."""
    out = {"fid_floor": float("nan"), "fid_floor_test": float("nan")}
    train = data.load_images(dataset, data_root, "train")
    if n > len(train):
        return out
    mu, sigma, _ = real_statistics(extractor, dataset, data_root, "train", n, seed, stats_dir, log=log)
    if 2 * n <= len(train):
        other = train[_permutation(len(train), seed)[n:2 * n]]
        out["fid_floor"] = frechet_distance(*statistics(extractor(other, progress("floor, train"))), mu, sigma)
    test = _test_images(dataset, data_root)
    if test is not None and n <= len(test):
        test = test[_permutation(len(test), seed)[:n]]
        out["fid_floor_test"] = frechet_distance(*statistics(extractor(test, progress("floor, test"))), mu, sigma)
    return out


def _test_images(dataset, data_root):
    """Test images beside the training ones: CIFAR-10's test split, a folder's sibling `test`, or None."""
    if dataset == "cifar10":
        return data.load_images(dataset, data_root, "test")
    root = os.path.normpath(data_root)
    sibling = os.path.join(os.path.dirname(root), "test")
    if os.path.basename(root) == "train" and os.path.isdir(sibling):
        return data.load_images(dataset, sibling)
    return None


def save_stats(path, mu, sigma, features=None):
    """pytorch-fid compatible .npz (mu, sigma; features optional), written atomically."""
    arrays = dict(mu=mu, sigma=sigma) if features is None else dict(mu=mu, sigma=sigma, features=features)
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    atomic_write_bytes(path, npz.getvalue())


def load_image_dir(path):
    """uint8 (N, 3, H, W) of the image files directly in path, sorted, as pytorch-fid reads them."""
    files = sorted(os.path.join(path, f) for f in os.listdir(path)
                   if "." in f and f.rsplit(".", 1)[1] in IMAGE_EXTENSIONS)
    if len(files) < 2:
        raise UserError(f"{path} holds {len(files)} image file(s); FID needs at least 2")
    arrays = [read_rgb(f) for f in files]
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"the images in {path} have different sizes; resize them to one size first")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def read_rgb(path):
    """An image file as an RGB array; a file PIL cannot read is a UserError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {path} ({type(e).__name__}); delete or replace it") from None


def path_statistics(path, extractor_factory):
    """(mu, sigma, features or None) of a folder of images or a .npz of statistics."""
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            raise UserError(f"{path} does not exist")
        try:
            with np.load(path) as f:
                mu, sigma, features = f["mu"], f["sigma"], (f["features"] if "features" in f else None)
        except Exception as e:
            raise UserError(f"{path} is not a statistics file with mu and sigma ({type(e).__name__})") from None
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise UserError(f"{path} holds NaN or Inf in mu or sigma; compute the statistics again")
        return mu, sigma, features
    if not os.path.isdir(path):
        raise UserError(f"{path} is neither a folder of images nor a .npz of statistics")
    features = extractor_factory()(load_image_dir(path), progress(path))
    return (*statistics(features), features)


def generic_fid(fake, real, weights=None, device="cpu", batch_size=200, precision=precisions.DEFAULT):
    """(FID, (KID, kid_std), precision/recall/density/coverage dict) of two folders or .npz files;
    KID and the rest need features on both sides (a folder, or a .npz that keeps them)."""
    extractor = []

    def factory():
        if not extractor:
            extractor.append(InceptionFeatures(weights, device, batch_size, precision=precision))
        return extractor[0]

    mu1, s1, f1 = path_statistics(fake, factory)
    mu2, s2, f2 = path_statistics(real, factory)
    fid = frechet_distance(mu1, s1, mu2, s2)
    features = f1 is not None and f2 is not None
    k = kid(f1, f2) if features else (float("nan"), float("nan"))
    return fid, k, (prdc(f1, f2) if features else None)


