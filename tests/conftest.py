import os
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory):
    """An ImageFolder of 40 random 40x36 PNGs in two classes: training data with no download."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny_images")
    g = torch.Generator().manual_seed(0)
    for i in range(40):
        folder = root / f"class{i % 2}"
        folder.mkdir(exist_ok=True)
        pixels = torch.randint(0, 256, (36, 40, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return str(root)


@pytest.fixture(autouse=True)
def ops_backend_restored():
    """train.main switches the fused ops on for the whole process (--fused auto): restore the
    backend after each test, so that no test depends on which tests ran before it (the fused ops
    have no double backward, which analysis/dynamics.py's R1 Jacobian needs)."""
    from minkgan import ops
    before = ops.backend()
    yield
    if ops.backend() != before:
        ops.set_backend("off" if before == "eager" else "on")


class Tmpfs:
    """Small real filesystems for the tests of a full disk and of read-only folders: tmpfs mounts
    under one folder (as root; a test that needs one is skipped, with the reason, where mounting
    fails), unmounted when the test ends."""

    def __init__(self, root):
        self.root, self.mounted = root, []

    def mount(self, name, size, read_only=False):
        """A folder `name` on a fresh tmpfs of `size` bytes (rounded up to whole pages)."""
        path = os.path.join(self.root, name)
        os.makedirs(path, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (root and mount(8) needed): {done.stderr.strip()}")
        self.mounted.append(path)
        return path

    def resize(self, path, size):
        subprocess.run(["mount", "-o", f"remount,size={size}", path], check=True)

    def unmount_all(self):
        for path in reversed(self.mounted):
            subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounts = Tmpfs(str(tmp_path))
    yield mounts
    mounts.unmount_all()
