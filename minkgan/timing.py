"""Wall-clock timing for the benchmarks: a GPU's queued kernels are waited for before a clock is read."""
import time

import torch


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_call_ms(fn, device, iters):
    """Mean milliseconds of one fn() over iters calls."""
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t) / iters * 1e3
