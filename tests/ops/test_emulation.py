"""The CUDA kernels (csrc/mink_kernels.cuh) run on the CPU under tests/ops/emulation/cuda_on_cpu.h.

One std::thread per CUDA thread, blocks in a random order, strict barriers and warp shuffles
(see the header for what this proves and what it cannot). The module is compiled once with
torch.utils.cpp_extension (g++ -std=c++20, ~1 minute) into the ops cache. Select with
`pytest -k emulation`.
"""
import hashlib
import os
import sys
import zlib

import pytest
import torch

from layout import ROOT  # noqa: E402
sys.path.insert(0, ROOT)

from minkgan import ops  # noqa: E402
from test_ops import closed_form_minkowski, closed_form_penalty  # noqa: E402

HERE = os.path.join(ROOT, "tests", "ops", "emulation")
SIZES = (1, 31, 32, 33, 64, 255, 256, 257, 1025, 4097, 20000)
SMS = (1, 3, 80)  # multiprocessor counts: grids of 1-4, 1-12 and up to 79 blocks
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
PS = (1.0, 1.5, 2.0, 4.0, 8.0)


@pytest.fixture(scope="module")
def emu():
    from torch.utils import cpp_extension

    build_dir = os.path.join(ops.cache_root(), "emulation")
    os.makedirs(build_dir, exist_ok=True)
    headers = hashlib.sha256()  # cpp_extension rebuilds on a change of the .cpp only: key it on its headers too
    for path in [os.path.join(HERE, "cuda_on_cpu.h")] + [os.path.join(ops.SRC_DIR, h) for h in ops.HEADERS]:
        with open(path, "rb") as f:
            headers.update(f.read())
    return cpp_extension.load(name="mink_gan_emulation", sources=[os.path.join(HERE, "kernels_on_cpu.cpp")],
                              extra_cflags=["-std=c++20", "-O2", f"-DMINK_HEADERS_{headers.hexdigest()[:12]}"],
                              extra_include_paths=[ops.SRC_DIR], extra_ldflags=["-pthread"], build_directory=build_dir,
                              verbose=False)


@pytest.fixture(scope="module")
def fused():
    assert ops.set_backend("on").startswith("fused-cpu")
    yield
    ops.set_backend("off")


def grids(emu, n):
    return sorted({emu.grid_for(n, sms) for sms in SMS} | {1})


def seed_of(*key):
    return zlib.crc32(repr(key).encode())


@pytest.mark.parametrize("n", SIZES)
def test_emulation_sums_every_element_once(emu, n):
    """d_i = i + 1 with p = 1 and p = 2: the exact sums n(n+1)/2 and n(n+1)(2n+1)/6 (exact in
    float64) come out only if every element is added once, whatever the grid and block order."""
    d = torch.arange(1, n + 1, dtype=torch.float64)
    for grid in grids(emu, n):
        for p, exact in [(1.0, n * (n + 1) / 2), (2.0, n * (n + 1) * (2 * n + 1) / 6)]:
            for order in range(2):
                loss = emu.minkowski_forward(d, None, 0.0, p, False, grid, seed_of(n, grid, p, order))
                assert loss.item() * p * n == exact, (grid, p)
        grad = emu.minkowski_backward(torch.tensor(1.0, dtype=torch.float64), d, None, 0.0, 2.0, False, grid,
                                      seed_of(n, grid))
        assert torch.equal(grad, (1.0 / n) * d), grid  # every element written (the output starts as NaN)


@pytest.mark.parametrize("shape", [(5, 0), (64, 300), (1, 1), (3, 257), (40, 2)])
def test_emulation_penalty_sums_every_element_once(emu, shape):
    B, D = shape
    g = torch.arange(1, B * D + 1, dtype=torch.float64).reshape(B, D) % 7 - 3  # small integers
    for order in range(2):
        loss, norms = emu.penalty_forward(g, 2.0, 0.5, seed_of(shape, order))
        squares = (g * g).sum(1)
        assert torch.equal(norms, squares.sqrt())  # integer squares: exact sums, correctly rounded sqrt
        assert loss.item() == pytest.approx(2.0 * ((squares.sqrt() - 0.5) ** 2).mean().item(), rel=1e-14)
    for grid in sorted({emu.grid_for(B * D, sms) for sms in SMS}):
        grad = emu.penalty_backward(torch.tensor(1.0, dtype=torch.float64), g, norms, 2.0, 1.0, grid, seed_of(grid))
        _, want = closed_form_penalty(g, 2.0, 1.0)
        torch.testing.assert_close(grad, want, rtol=1e-14, atol=1e-300)


def tolerance(dtype):
    """Kernel and CPU op compute in float (or double) with different exp/pow: a few ulps of the
    accumulation type, and one ulp of a half/bfloat16 output where the rounding falls either way."""
    if dtype == torch.float64:
        return dict(rtol=1e-12, atol=1e-300)
    if dtype == torch.float32:
        return dict(rtol=2e-5, atol=1e-12)
    info = torch.finfo(dtype)
    return dict(rtol=2 * info.eps, atol=info.smallest_normal * info.eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_emulation_minkowski_matches_cpu_ops(emu, fused, dtype):
    """Values and gradients of the emulated kernels equal the fused CPU ops (and the closed form)
    for every p, float and tensor targets, sigmoid and raw inputs."""
    for n in (33, 1025):
        gen = torch.Generator().manual_seed(n)
        d = (3 * torch.randn(n, generator=gen, dtype=torch.float64)).to(dtype)
        t = (0.7 + 0.3 * torch.rand(n, generator=gen, dtype=torch.float64)).to(dtype)
        grid = emu.grid_for(n, 3)
        for p in PS:
            for on_probs in (True, False):
                for target in (None, t):
                    seed = seed_of(n, p, on_probs, target is None, str(dtype))
                    tval = 0.0 if target is not None else 0.9
                    loss = emu.minkowski_forward(d, target, tval, p, on_probs, grid, seed)
                    want = torch.ops.mink_gan.minkowski_power(d, target, tval, p, on_probs)
                    value, _ = closed_form_minkowski(d, target if target is not None else tval, p, on_probs)
                    assert loss.dtype == want.dtype
                    vtol = dict(rtol=1e-12, atol=0) if dtype == torch.float64 else dict(rtol=2e-5, atol=0)
                    torch.testing.assert_close(loss, want, **vtol)
                    torch.testing.assert_close(loss.double(), value, **vtol)
                    go = torch.tensor(1.7, dtype=want.dtype)
                    grad = emu.minkowski_backward(go, d, target, tval, p, on_probs, grid, seed)
                    want_grad = torch.ops.mink_gan.minkowski_power_backward(go, d, target, tval, p, on_probs)
                    assert grad.dtype == dtype
                    torch.testing.assert_close(grad, want_grad, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_emulation_penalty_matches_cpu_ops(emu, fused, dtype):
    for shape in [(5, 0), (64, 300), (7, 33), (2, 3000)]:
        gen = torch.Generator().manual_seed(shape[1])
        g = (0.05 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
        if shape[0] > 2:
            g[1] = 0  # a zero norm: gradient 0
        for center in (1.0, 0.0):
            seed = seed_of(shape, center, str(dtype))
            loss, norms = emu.penalty_forward(g, 10.0, center, seed)
            want, want_norms = torch.ops.mink_gan.gradient_penalty(g, 10.0, center)
            vtol = dict(rtol=1e-12, atol=0) if dtype == torch.float64 else dict(rtol=2e-5, atol=0)
            assert loss.dtype == want.dtype and norms.dtype == want_norms.dtype
            torch.testing.assert_close(loss, want, **vtol)
            torch.testing.assert_close(norms, want_norms, **vtol)
            go = torch.tensor(0.3, dtype=want.dtype)
            grid = emu.grid_for(g.numel(), 3)
            grad = emu.penalty_backward(go, g, norms, 10.0, center, grid, seed)
            want_grad = torch.ops.mink_gan.gradient_penalty_backward(go, g, want_norms, 10.0, center)
            torch.testing.assert_close(grad, want_grad, **tolerance(dtype))


@pytest.mark.parametrize("which", ["syncthreads", "shuffle"])
def test_emulation_watchdog_catches_divergent_barriers(emu, which):
    """A __syncthreads that only one warp reaches, or a shuffle half the lanes skip, hangs on a GPU
    (or worse); here the watchdog turns the hang into an error."""
    with pytest.raises(RuntimeError, match="watchdog"):
        emu.run_broken(which, 2.0)


def test_emulation_grid_is_the_launch_configuration(emu):
    assert emu.threads == 256
    assert [emu.grid_for(n, 80) for n in (0, 1, 256, 257, 20000, 10**9)] == [1, 1, 1, 2, 79, 320]
