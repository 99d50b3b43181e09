import os
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


@pytest.fixture(autouse=True, scope="module")
def eager_ops_after_each_module():
    """train.main switches the fused ops on (--fused auto); a later module (e.g. test_dynamics'
    double backward) must not inherit that."""
    yield
    import ops

    ops.set_backend("off")
