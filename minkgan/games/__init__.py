"""The small exact games of analysis/dynamics.py, as functions of numbers (no files, no figures):
the bilinear game (bilinear.py), the two-point game with every probabilistic loss of losses.py
(two_point.py) and the Dirac-GAN of Mescheder et al. 2018 (dirac.py). The games are a few float64
numbers each, so every function runs on one thread."""
import functools

import torch

DT = torch.float64


def single_thread(fn):
    """Run fn with one intra-op thread: these tensors have a few elements, and a thread pool on a
    loaded machine makes a tiny op cost milliseconds instead of microseconds. Restores the count."""
    @functools.wraps(fn)
    def wrapped(*a, **k):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*a, **k)
        finally:
            torch.set_num_threads(n)
    return wrapped
