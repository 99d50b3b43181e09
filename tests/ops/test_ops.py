"""Tests of the fused C++/CUDA ops (csrc/) against eager PyTorch and closed-form formulas.

The fused library is built once into the cache (~45 s the first time on 2 cores, then
loaded from ~/.cache/mink-gan/ops/<hash> or $MINK_OPS_CACHE). test_cuda_sources_compile
also compiles the .cu with nvcc (~2-3 min the first time) and is skipped without nvcc.
"""
import os
import re
import shutil
import subprocess
import sys
import warnings
import zlib

import pytest
import torch
import torch.nn as nn

from layout import ROOT  # noqa: E402
sys.path.insert(0, ROOT)

import losses  # noqa: E402
from minkgan import ops  # noqa: E402
from minkgan.utils import UserError  # noqa: E402

PS = (1.0, 1.5, 2.0, 3.0, 4.0, 8.0)
EAGER_MINK, EAGER_GP = ops.minkowski_power_eager, ops.gradient_penalty_eager
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def fused():
    """The fused backend, active for the test (on the CPU, and checked on the GPU where there is one);
    eager again afterwards."""
    if CUDA:
        assert ops.set_backend("on", "cuda") == "fused-cpu+cuda"
    name = ops.set_backend("on")
    assert name.startswith("fused-cpu")
    yield name
    ops.set_backend("off")


@pytest.fixture
def only_fused(fused, monkeypatch):
    """Make any fallback to the eager ops an error, so a test cannot pass by not using the op."""
    ops.set_backend("on")

    def boom(*a, **k):
        raise AssertionError("dispatch fell back to the eager op")

    monkeypatch.setattr(ops, "minkowski_power_eager", boom)
    monkeypatch.setattr(ops, "gradient_penalty_eager", boom)
    return fused


def random_shape(gen):
    kind = torch.randint(0, 3, (1,), generator=gen).item()
    if kind == 0:
        return (int(torch.randint(1, 300, (1,), generator=gen)),)
    if kind == 1:
        return (int(torch.randint(1, 70, (1,), generator=gen)), 1)
    return tuple(int(v) for v in torch.randint(1, 9, (3,), generator=gen))


def make_target(kind, shape, dtype, gen):
    if kind == "zero":
        return 0.0
    if kind == "one":
        return 1.0
    return 0.7 + 0.3 * torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)  # smoothed labels


def closed_form_minkowski(d, t, p, on_probs):
    """Value and gradient of (1/p) mean |s - t|^p written out by hand, in float64."""
    x = d.detach().double()
    t = t.double() if isinstance(t, torch.Tensor) else torch.full_like(x, float(t))
    s = 1.0 / (1.0 + torch.exp(-x)) if on_probs else x
    a = (s - t).abs()
    n = x.numel()
    value = (a ** p).sum() / (p * n)
    q = a ** (p - 1) if p != 1 else torch.ones_like(a)
    grad = q * torch.sign(s - t) / n
    if on_probs:
        grad = grad * s * (1 - s)
    return value, grad


def grad_tolerance(dtype, reference, tol=None):
    """assert_close tolerances for a gradient in `dtype` against the exact `reference`: relative to
    the dtype's precision and the largest gradient, and never below the spacing of the dtype's
    subnormals (float16 gradients of a mean over 100,003 elements are subnormal: 6e-8 apart)."""
    tol = tol or {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    info = torch.finfo(dtype)
    return dict(rtol=5 * tol, atol=max(5 * tol * reference.abs().max().item(), info.smallest_normal * info.eps))


def closed_form_penalty(g, lam, center):
    x = g.detach().double().reshape(g.shape[0], -1)
    B = x.shape[0]
    norms = torch.sqrt((x * x).sum(1))
    value = lam * ((norms - center) ** 2).sum() / B
    coef = torch.where(norms > 0, 2 * lam * (norms - center) / (norms.clamp_min(1e-300) * B), torch.zeros_like(norms))
    return value, (coef[:, None] * x).reshape(g.shape)


# ---------------------------------------------------------------------------------------
# Minkowski power loss


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("on_probs", [True, False])
@pytest.mark.parametrize("target", ["zero", "one", "smooth"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_minkowski_matches_eager_and_closed_form(only_fused, p, on_probs, target, dtype):
    gen = torch.Generator().manual_seed(zlib.crc32(repr((p, on_probs, target, dtype)).encode()))
    shape = random_shape(gen)
    d = (2 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_(True)
    t = make_target(target, shape, dtype, gen)

    loss = ops.minkowski_power(d, t, p, on_probs)
    (grad,) = torch.autograd.grad(loss, d)
    assert loss.dtype == dtype and loss.shape == () and grad.shape == d.shape

    d2 = d.detach().clone().requires_grad_(True)
    ref = EAGER_MINK(d2, t, p, on_probs)
    (ref_grad,) = torch.autograd.grad(ref, d2)
    cf_value, cf_grad = closed_form_minkowski(d, t, p, on_probs)

    rtol, atol = (1e-12, 1e-15) if dtype == torch.float64 else (2e-5, 1e-9)
    gscale = cf_grad.abs().max().item() + 1e-30
    torch.testing.assert_close(loss, ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(loss.double(), cf_value, rtol=rtol, atol=atol)
    torch.testing.assert_close(grad, ref_grad, rtol=10 * rtol, atol=10 * rtol * gscale)
    torch.testing.assert_close(grad.double(), cf_grad, rtol=10 * rtol, atol=10 * rtol * gscale)


def test_minkowski_large_parallel_sum(only_fused):
    """Several chunks (parallel_for over 16384-element chunks), float32 accumulation quality."""
    gen = torch.Generator().manual_seed(1)
    d = torch.randn(100_003, generator=gen).requires_grad_(True)
    loss = ops.minkowski_power(d, 1.0, 4.0)
    loss.backward()
    value, grad = closed_form_minkowski(d, 1.0, 4.0, True)
    torch.testing.assert_close(loss.double(), value, rtol=1e-6, atol=0)
    torch.testing.assert_close(d.grad.double(), grad, rtol=1e-4, atol=1e-6 * grad.abs().max().item())


def test_minkowski_sign_zero_at_p1(only_fused):
    """p = 1 uses sign(0) = 0: where s == t exactly the gradient is 0, as in eager."""
    d = torch.tensor([0.0, 0.25, -0.5, 2.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.5, 0.25, -0.5, 1.0], dtype=torch.float64)
    ops.minkowski_power(d, t, 1.0, on_probs=False).backward()
    assert d.grad.tolist() == [-0.25, 0.0, 0.0, 0.25]
    d.grad = None
    ops.minkowski_power(d[:1], 0.5, 1.0, on_probs=True).backward()  # sigmoid(0) == 0.5 exactly
    assert d.grad.tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("on_probs", [True, False])
def test_minkowski_extreme_logits_and_nan(only_fused, on_probs):
    d = torch.tensor([-1e4, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1e4], requires_grad=True)
    t = 0.2 if on_probs else 1.0
    loss = ops.minkowski_power(d, t, 3.0, on_probs)
    loss.backward()
    value, grad = closed_form_minkowski(d, t, 3.0, on_probs)
    torch.testing.assert_close(loss.double(), value, rtol=1e-6, atol=0)
    torch.testing.assert_close(d.grad.double(), grad, rtol=1e-5, atol=1e-6 * grad.abs().max().item())
    d2 = d.detach().clone().requires_grad_(True)
    EAGER_MINK(d2, t, 3.0, on_probs).backward()
    torch.testing.assert_close(d.grad, d2.grad, rtol=1e-5, atol=1e-30)  # float32 saturation as eager
    bad = torch.tensor([0.5, float("nan"), 1.0])
    assert torch.isnan(ops.minkowski_power(bad, t, 2.0, on_probs))


def test_minkowski_noncontiguous_and_target_grad(only_fused):
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    d = base.t().requires_grad_(True)  # not contiguous
    t = torch.rand(6, 8, generator=gen, dtype=torch.float64)
    loss = ops.minkowski_power(d, t, 3.0)
    loss.backward()
    value, grad = closed_form_minkowski(d, t, 3.0, True)
    torch.testing.assert_close(loss, value)
    torch.testing.assert_close(d.grad, grad)
    # the op itself gives no gradient to a tensor target (labels are constants) ...
    tt = t.clone().requires_grad_(True)
    out = torch.ops.mink_gan.minkowski_power(d, tt, 0.0, 3.0, True)
    assert torch.autograd.grad(out, tt, allow_unused=True)[0] is None


def test_minkowski_target_requiring_grad_falls_back_to_eager(fused):
    """... so the public function uses eager when a target asks for a gradient."""
    d = torch.randn(10, dtype=torch.float64, requires_grad=True)
    t = torch.rand(10, dtype=torch.float64, requires_grad=True)
    ops.minkowski_power(d, t, 2.0).backward()
    s = torch.sigmoid(d.detach())
    torch.testing.assert_close(t.grad, -(s - t.detach()) / 10)


@pytest.mark.parametrize("p", [1.0, 1.5, 3.0, 4.0])
@pytest.mark.parametrize("on_probs", [True, False])
def test_minkowski_gradcheck(only_fused, p, on_probs):
    gen = torch.Generator().manual_seed(3)
    d = (torch.randn(5, 7, generator=gen, dtype=torch.float64) + 0.05).requires_grad_(True)
    t = torch.rand(5, 7, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ops.minkowski_power(x, t, p, on_probs), (d,))
    assert torch.autograd.gradcheck(lambda x: ops.minkowski_power(x, 0.0, p, on_probs), (d + 3,))


# ---------------------------------------------------------------------------------------
# gradient penalty


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("center", [1.0, 0.0])
@pytest.mark.parametrize("shape", [(64, 3072), (7, 3, 5, 5), (1, 10), (300, 2)])
def test_penalty_matches_eager_and_closed_form(only_fused, dtype, center, shape):
    gen = torch.Generator().manual_seed(4)
    g = (0.05 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    if shape[0] > 2:
        g[1] = 0  # ||g_b|| = 0: guarded, gradient 0 (as eager's norm backward)
    g.requires_grad_(True)
    lam = 10.0
    loss = ops.gradient_penalty(g, lam, center)
    (grad,) = torch.autograd.grad(loss, g)
    g2 = g.detach().clone().requires_grad_(True)
    ref = EAGER_GP(g2, lam, center)
    (ref_grad,) = torch.autograd.grad(ref, g2)
    cf_value, cf_grad = closed_form_penalty(g, lam, center)
    assert torch.isfinite(grad).all()
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    atol = rtol * (cf_grad.abs().max().item() + 1e-30)
    torch.testing.assert_close(loss, ref, rtol=rtol, atol=0)
    torch.testing.assert_close(loss.double(), cf_value, rtol=rtol, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=10 * rtol, atol=10 * atol)
    torch.testing.assert_close(grad.double(), cf_grad, rtol=10 * rtol, atol=10 * atol)


def test_penalty_gradcheck(only_fused):
    gen = torch.Generator().manual_seed(5)
    g = torch.randn(6, 2, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: ops.gradient_penalty(x, 3.0, 1.0), (g,))
    assert torch.autograd.gradcheck(lambda x: ops.gradient_penalty(x, 3.0, 0.0), (g,))


class SmallD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1),
                                 nn.LeakyReLU(0.2), nn.Conv2d(16, 1, 4, 1, 0))

    def forward(self, x):
        return self.net(x).flatten()


@pytest.mark.parametrize("center", [1.0, 0.0])
def test_penalty_parameter_gradients_through_conv_D(fused, monkeypatch, center):
    """The fused penalty's gradient flows through D's double-backward graph like eager's."""
    torch.manual_seed(6)
    D = SmallD()
    x = torch.randn(16, 3, 16, 16)

    def param_grads(mode):
        assert ops.set_backend(mode) == ("eager" if mode == "off" else fused)
        D.zero_grad(set_to_none=True)
        gp = losses.gradient_penalty(D, x.clone(), 10.0, center)
        gp.backward()
        return gp.detach(), [p.grad for p in D.parameters()]  # the last bias gets none

    gp_eager, grads_eager = param_grads("off")
    monkeypatch.setattr(ops, "gradient_penalty_eager", lambda *a: pytest.fail("fused run used the eager op"))
    gp_fused, grads_fused = param_grads("on")
    torch.testing.assert_close(gp_fused, gp_eager, rtol=1e-5, atol=0)
    assert [a is None for a in grads_fused] == [b is None for b in grads_eager]
    weights = [b for b in grads_eager[::2]]
    assert len(weights) == 3 and all(b.abs().max() > 0 for b in weights)
    for a, b in zip(grads_fused, grads_eager):
        if b is not None:  # (biases of a piecewise-linear D get 0: only the masks depend on them)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * b.abs().max().item())


# ---------------------------------------------------------------------------------------
# torch.library checks, torch.compile, double backward


def test_opcheck(fused):
    gen = torch.Generator().manual_seed(7)
    d = torch.randn(4, 5, generator=gen, requires_grad=True)
    t = torch.rand(4, 5, generator=gen)
    g = torch.randn(6, 3, 2, generator=gen, requires_grad=True)
    mink = torch.ops.mink_gan.minkowski_power.default
    for args in [(d, None, 1.0, 4.0, True), (d, t, 0.0, 1.5, True), (d.double(), None, 0.0, 3.0, False)]:
        torch.library.opcheck(mink, args)
    torch.library.opcheck(torch.ops.mink_gan.gradient_penalty.default, (g, 10.0, 1.0))
    go = torch.tensor(1.0)
    torch.library.opcheck(torch.ops.mink_gan.minkowski_power_backward.default,
                          (go, d.detach(), t, 0.0, 4.0, True))
    norms = g.detach().flatten(1).norm(dim=1)
    torch.library.opcheck(torch.ops.mink_gan.gradient_penalty_backward.default, (go, g.detach(), norms, 10.0, 1.0))


def test_torch_compile(only_fused):
    def f(d, g):
        return ops.minkowski_power(d, 1.0, 4.0) + ops.gradient_penalty(g, 10.0, 1.0)

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    d = torch.randn(32, requires_grad=True)
    g = torch.randn(8, 12, requires_grad=True)
    out = compiled(d, g)
    out.backward()
    vd, gd = closed_form_minkowski(d, 1.0, 4.0, True)
    vg, gg = closed_form_penalty(g, 10.0, 1.0)
    torch.testing.assert_close(out.double(), vd + vg, rtol=1e-5, atol=0)
    torch.testing.assert_close(d.grad.double(), gd, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(g.grad.double(), gg, rtol=1e-4, atol=1e-6)


def test_double_backward_raises(only_fused):
    d = torch.randn(10, dtype=torch.float64, requires_grad=True)
    (gd,) = torch.autograd.grad(ops.minkowski_power(d, 1.0, 3.0), d, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gd.sum().backward()
    g = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    (gg,) = torch.autograd.grad(ops.gradient_penalty(g, 1.0, 1.0), g, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gg.sum().backward()


def test_dispatch_unsupported_falls_back(fused, monkeypatch):
    """p < 1 and a batch-less g have no fused kernel: the eager op runs and gives the eager answer."""
    monkeypatch.setattr(torch.ops, "mink_gan", None)  # any use of the fused ops would raise
    d = torch.randn(16)
    torch.testing.assert_close(ops.minkowski_power(d, 1.0, 0.5), EAGER_MINK(d, 1.0, 0.5))
    g = torch.randn(8)
    torch.testing.assert_close(ops.gradient_penalty(g[None][:0], 2.0), EAGER_GP(g[None][:0], 2.0), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_give_a_float32_loss(only_fused, dtype):
    """Half and bfloat16 are computed in float32 and the loss is float32, so GradScaler's 65536
    times its gradient stays finite (a float16 loss's would be inf)."""
    gen = torch.Generator().manual_seed(11)
    d = (2 * torch.randn(300, generator=gen)).to(dtype).requires_grad_(True)
    loss = ops.minkowski_power(d, 0.9, 4.0)
    assert loss.dtype == torch.float32
    (65536 * loss).backward()
    value, grad = closed_form_minkowski(d, 0.9, 4.0, True)
    torch.testing.assert_close(loss.double(), value, rtol=1e-6, atol=0)
    assert d.grad.dtype == dtype and torch.isfinite(d.grad).all()
    torch.testing.assert_close(d.grad.double(), 65536 * grad, **grad_tolerance(dtype, 65536 * grad))
    g = (0.05 * torch.randn(6, 40, generator=gen)).to(dtype).requires_grad_(True)
    penalty = ops.gradient_penalty(g, 10.0, 1.0)
    assert penalty.dtype == torch.float32
    penalty.backward()
    value, grad = closed_form_penalty(g, 10.0, 1.0)
    torch.testing.assert_close(penalty.double(), value, rtol=1e-6, atol=0)
    torch.testing.assert_close(g.grad.double(), grad, **grad_tolerance(dtype, grad))


def test_op_under_cpu_autocast(only_fused):
    """Under torch.autocast a D's logits are bfloat16; the fused loss is float32 and its parameter
    gradients equal those of the float32 closed form on the same logits."""
    torch.manual_seed(12)
    D = nn.Linear(5, 1)
    x = torch.randn(64, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D(x).flatten()
        loss = ops.minkowski_power(logits, 1.0, 4.0)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    (grad_logits,) = torch.autograd.grad(loss, logits, retain_graph=True)
    value, grad = closed_form_minkowski(logits, 1.0, 4.0, True)
    torch.testing.assert_close(loss.double(), value, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad_logits.double(), grad, **grad_tolerance(torch.bfloat16, grad))
    loss.backward()
    assert torch.isfinite(D.weight.grad).all() and D.weight.grad.abs().max() > 0


def test_fake_kernels_give_float32_for_half(fused):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        for dtype, want in [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                            (torch.float64, torch.float64), (torch.float32, torch.float32)]:
            d, g = torch.empty(10, dtype=dtype), torch.empty(4, 3, dtype=dtype)
            assert torch.ops.mink_gan.minkowski_power(d, None, 1.0, 4.0, True).dtype == want
            loss, norms = torch.ops.mink_gan.gradient_penalty(g, 1.0, 1.0)
            assert loss.dtype == norms.dtype == want


# ---------------------------------------------------------------------------------------
# build: failures, cache


def test_broken_build_on_raises_and_auto_warns_once(fused, monkeypatch, tmp_path):
    src = tmp_path / "csrc"
    src.mkdir()
    for name in ops.CPP_SOURCES + ops.CUDA_SOURCES + ops.HEADERS:
        (src / name).write_text("#error deliberately broken source for the test\n")
    monkeypatch.setenv("MINK_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ops, "SRC_DIR", str(src))
    monkeypatch.setattr(ops, "_library", None)
    monkeypatch.setattr(ops, "_warned", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU build alone, on any machine
    with pytest.raises(UserError) as err:
        ops.set_backend("on")
    msg = str(err.value)
    assert "\n" not in msg and "could not build the fused ops" in msg and "--fused off" in msg
    assert "deliberately broken" in msg and "full log in" in msg
    assert ops.backend() == "eager"
    with pytest.warns(RuntimeWarning, match="fused ops unavailable"):
        assert ops.set_backend("auto") == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ops.set_backend("auto") == "eager"  # no second warning
    assert ops.set_backend("off") == "eager"


def test_failed_cuda_build_falls_back_to_the_cpu_build(fused, monkeypatch):
    """A GPU without nvcc: the combined build fails, the CPU-only one is used, with one warning; then
    training on the GPU is an error under --fused on and eager (one warning) under auto. Holds where a
    GPU and the CUDA library are really there: the library loaded is the one the build step said."""
    built = []

    def fake_build(src_dir, with_cuda):
        built.append(with_cuda)
        if with_cuda:
            raise RuntimeError("error: nvcc not found")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(ops, "build", fake_build)
    monkeypatch.setattr(ops, "_library", None)
    monkeypatch.setattr(ops, "_cuda_error", None)
    monkeypatch.setattr(ops, "_devices", {})
    monkeypatch.setattr(ops, "_warned", False)
    with pytest.warns(RuntimeWarning, match="CUDA build of the fused ops failed.*nvcc not found.*CPU only") as caught:
        assert ops.set_backend("on") == "fused-cpu"
    assert built == [True, False] and len(caught) == 1
    assert ops._devices == {"cpu": None}
    with pytest.raises(UserError, match="do not run on cuda:0 .*built without CUDA.*nvcc not found.*--fused off"):
        ops.set_backend("on", "cuda:0")
    with pytest.warns(RuntimeWarning, match="fused ops unavailable.*cuda:0.*built without CUDA") as caught:
        assert ops.set_backend("auto", "cuda:0") == "eager"
    assert len(caught) == 1 and ops._devices == {"cpu": None}  # no kernel was tried on the GPU


def test_self_check_runs_on_the_training_device_only_and_a_failure_is_an_error(fused, monkeypatch):
    """The ops run against eager on the device named, once, and on no other (a GPU machine's CPU run
    opens no GPU context): one that disagrees is an error under 'on' and eager, warning once, under 'auto'."""
    checked = []
    real_check = ops._self_check
    monkeypatch.setattr(ops, "_self_check", lambda device: checked.append(str(device)) or real_check(device))
    monkeypatch.setattr(ops, "_devices", {})
    monkeypatch.setattr(ops, "_warned", False)
    assert ops.set_backend("on", "cpu") == fused and ops.set_backend("auto") == fused
    assert checked == ["cpu"] and ops._devices == {"cpu": None}
    ops._devices.clear()
    monkeypatch.setattr(ops, "minkowski_power_eager", lambda d, t, p, on_probs=True: EAGER_MINK(d, t, p, on_probs) * 1.01)
    with pytest.raises(UserError, match="do not run on cpu .*disagree with eager.*self-check"):
        ops.set_backend("on")
    assert ops.backend() == "eager"
    with pytest.warns(RuntimeWarning, match="fused ops unavailable.*cpu.*self-check") as caught:
        assert ops.set_backend("auto") == "eager"
    assert len(caught) == 1 and checked == ["cpu", "cpu"]  # checked once after the clear, not again
    x = torch.randn(5)
    monkeypatch.setattr(torch.ops, "mink_gan", None)  # a device that failed gets the eager op, whatever the backend
    monkeypatch.setattr(ops, "_backend", fused)
    torch.testing.assert_close(ops.minkowski_power(x, 1.0, 2.0), 1.01 * EAGER_MINK(x, 1.0, 2.0))


def fake_gpus(monkeypatch, *caps):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(caps))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: caps[i])


def test_cache_key_has_the_gpus_compute_capabilities(monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    keys = set()
    for caps in [[(7, 5), (7, 5)], [(8, 0), (8, 0)], [(9, 0), (9, 0)], [(9, 0), (8, 0)]]:
        fake_gpus(monkeypatch, *caps)
        keys.add(ops.source_hash(ops.SRC_DIR, True))
    assert len(keys) == 4
    assert ops.cuda_arch_flags() == ("-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "7.5")
    assert ops.cuda_arch_flags() == ("-gencode=arch=compute_75,code=sm_75",)  # the list wins over the GPUs


def test_one_build_per_arch_whether_the_arch_list_is_set_or_not(monkeypatch):
    """Observed: no TORCH_CUDA_ARCH_LIST on an H200 built 9.0+PTX, TORCH_CUDA_ARCH_LIST=9.0 (the
    compile test's) built 9.0 under another key: two builds of minutes. The key is now the flags
    passed, the same for both; a list that asks for more (PTX) is another build."""
    fake_gpus(monkeypatch, (9, 0))
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    unset = ops.source_hash(ops.SRC_DIR, True), ops.cuda_arch_flags()
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert (ops.source_hash(ops.SRC_DIR, True), ops.cuda_arch_flags()) == unset
    assert unset[1] == ("-gencode=arch=compute_90,code=sm_90",)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0+PTX")
    assert ops.source_hash(ops.SRC_DIR, True) != unset[0]
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == "9.0+PTX"  # read, not changed
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    ops.cuda_arch_flags()
    assert "TORCH_CUDA_ARCH_LIST" not in os.environ
    fake_gpus(monkeypatch)
    with pytest.raises(RuntimeError, match="no GPU is visible and TORCH_CUDA_ARCH_LIST is not set"):
        ops.cuda_arch_flags()


@pytest.mark.parametrize("nvcc, torch_cuda, ok", [("release 13.0, V13.0.88", "13.0", True),
                                                  ("release 13.1, V13.1.2", "13.0", True),
                                                  ("release 12.8, V12.8.93", "13.0", False),
                                                  (None, "13.0", False)])
def test_nvcc_major_version_must_be_torchs_and_is_in_the_key(monkeypatch, nvcc, torch_cuda, ok):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    monkeypatch.setattr(ops, "_nvcc", lambda: "/opt/cuda/bin/nvcc")
    monkeypatch.setattr(ops, "_compiler_version", lambda c: nvcc if c.endswith("nvcc") else "c++ (GCC) 13.2.0")
    monkeypatch.setattr(torch.version, "cuda", torch_cuda)
    if ok:
        ops.check_nvcc()
    else:
        with pytest.raises(RuntimeError, match="no nvcc at /opt/cuda" if nvcc is None else "12.8.*CUDA 13.0.*13.x"):
            ops.check_nvcc()
    key = ops.source_hash(ops.SRC_DIR, True)
    monkeypatch.setattr(ops, "_compiler_version", lambda c: "release 13.2, V13.2.1" if c.endswith("nvcc") else "c++ (GCC) 13.2.0")
    assert ops.source_hash(ops.SRC_DIR, True) != key
    cpu_key = ops.source_hash(ops.SRC_DIR, False)
    monkeypatch.setattr(ops, "_compiler_version", lambda c: nvcc if c.endswith("nvcc") else "c++ (GCC) 14.1.0")
    assert ops.source_hash(ops.SRC_DIR, False) != cpu_key  # the host compiler is in both keys


def test_a_failed_build_is_remembered_beside_its_log_until_source_or_toolchain_change(tmp_path, monkeypatch):
    """Observed: every job of a sweep recompiled a failing CUDA build for minutes before falling back.
    A failure is written to <key>-failed.log; the next build of that key fails at once, naming the log;
    a changed source (or compiler, which changes the key too) builds again."""
    src = tmp_path / "csrc"
    shutil.copytree(ops.SRC_DIR, src)
    (src / ops.CPP_SOURCES[0]).write_text("#error deliberately broken source for the test\n")
    monkeypatch.setenv("MINK_OPS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ops.BuildError, match="deliberately broken.*full log in .*-failed.log") as first:
        ops.build(str(src), with_cuda=False, load=False)
    log = tmp_path / "cache" / (ops.source_hash(str(src), False) + "-failed.log")
    assert log.exists() and "deliberately broken" in log.read_text() and str(log) in str(first.value)
    tried = []
    monkeypatch.setattr(ops, "_ninja_build", lambda *a: tried.append(a))
    with pytest.raises(ops.BuildError, match="failed before.*deliberately broken.*delete it to try again") as again:
        ops.build(str(src), with_cuda=False, load=False)  # as a later process would: no compiler run
    assert not tried and "\n" not in str(again.value) and str(log) in str(again.value)
    (src / ops.CPP_SOURCES[0]).write_text("// fixed\n")
    ops.build(str(src), with_cuda=False, load=False)
    assert len(tried) == 1  # a new key: built again


def test_a_build_says_it_is_building_once(fused, tmp_path, monkeypatch, capfd):
    """Before a build that takes minutes, one line on stderr; nothing when the library is in the cache."""
    src = tmp_path / "csrc"
    src.mkdir()
    for name in ops.CPP_SOURCES + ops.HEADERS:
        (src / name).write_text("#error deliberately broken, to stop right after the message\n")
    monkeypatch.setenv("MINK_OPS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(Exception):
        ops.build(str(src), with_cuda=False, load=False)
    assert "building fused ops (takes minutes, once)" in capfd.readouterr().err
    monkeypatch.delenv("MINK_OPS_CACHE")
    ops.build(with_cuda=False, load=False)  # in the cache already
    assert "building" not in capfd.readouterr().err


def test_cache_key_and_no_rebuild(fused, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    key = ops.source_hash(ops.SRC_DIR, False)
    assert key == ops.source_hash(ops.SRC_DIR, False)
    assert key != ops.source_hash(ops.SRC_DIR, True)
    so = ops.build(load=False, with_cuda=False)  # already built: no compile, same file
    assert os.path.basename(os.path.dirname(so)) == key and os.path.exists(so)
    mtime = os.path.getmtime(so)
    open(os.path.join(os.path.dirname(so), "lock"), "w").close()  # as a killed build leaves it
    assert ops.build(load=False, with_cuda=False) == so
    assert os.path.getmtime(so) == mtime
    src = tmp_path / "csrc"
    shutil.copytree(ops.SRC_DIR, src)
    with open(src / ops.CPP_SOURCES[0], "a") as f:
        f.write("\n// changed\n")
    assert ops.source_hash(str(src), False) != key


def _nvcc():
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
            return home
    return None


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not found at $CUDA_HOME or /usr/local/cuda")
def test_cuda_sources_compile():
    """Compile csrc/*.cu (and .cpp) with nvcc into the cache, in a subprocess, without a GPU."""
    env = dict(os.environ, CUDA_HOME=_nvcc())
    env.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    # Build, then load the library in that fresh process (this works without a GPU: the CUDA
    # runtime is only touched when a kernel runs) and check the CUDA kernels registered.
    code = (
        "import torch\nfrom minkgan import ops\n"
        "so = ops.build(with_cuda=True, load=False)\n"
        "torch.ops.load_library(so)\n"
        "for op in ('minkowski_power', 'minkowski_power_backward', 'gradient_penalty', 'gradient_penalty_backward'):\n"
        "    assert torch._C._dispatch_has_kernel_for_dispatch_key('mink_gan::' + op, 'CUDA'), op\n"
        "print(so)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, f"CUDA build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    so = r.stdout.strip().splitlines()[-1]
    assert so.endswith(".so") and os.path.exists(so)


KERNEL_INSTANCES = """
#include "mink_kernels.cuh"
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
using namespace mink_gan::kernels;
template <typename S, typename A>
void instantiate(const void** k) {
  *k++ = (const void*)&minkowski_fwd_kernel<S, A, true, true>;
  *k++ = (const void*)&minkowski_fwd_kernel<S, A, false, false>;
  *k++ = (const void*)&minkowski_bwd_kernel<S, A, true, true>;
  *k++ = (const void*)&minkowski_bwd_kernel<S, A, false, false>;
  *k++ = (const void*)&penalty_fwd_kernel<S, A>;
  *k++ = (const void*)&penalty_bwd_kernel<S, A>;
}
template void instantiate<float, float>(const void**);
template void instantiate<double, double>(const void**);
template void instantiate<c10::Half, float>(const void**);
template void instantiate<c10::BFloat16, float>(const void**);
"""


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not found at $CUDA_HOME or /usr/local/cuda")
def test_cuda_kernels_do_not_spill_registers(tmp_path):
    """ptxas -v on every kernel of csrc/mink_kernels.cuh (it has no ATen, so this takes ~1 minute),
    for sm_80 and sm_90: a register spill to local memory would slow the reductions down."""
    from torch.utils.cpp_extension import include_paths

    src = tmp_path / "instances.cu"
    src.write_text(KERNEL_INSTANCES)
    cmd = [os.path.join(_nvcc(), "bin", "nvcc"), "-c", "-std=c++17", "-O3", "-Xptxas", "-v",
           "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
           "-I", ops.SRC_DIR, *[f"-I{p}" for p in include_paths()], str(src), "-o", str(tmp_path / "instances.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    out = r.stdout + r.stderr
    assert out.count("Compiling entry function") == 2 * 24  # 6 kernels x 4 dtypes, twice
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
    assert len(spills) >= 48 and all(a == b == "0" for a, b in spills), out[-4000:]


# ---------------------------------------------------------------------------------------
# CUDA runtime (needs a GPU; skipped here)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("p", [1.0, 1.5, 4.0])
def test_cuda_tolerance_accepts_the_exact_gradient_rounded_to_the_dtype(dtype, p):
    """test_cuda_minkowski's tolerance passes the best any kernel can do, the exact gradient
    rounded to the dtype (with 5 * tol * max|g| alone, float16 failed: its gradients are subnormal)."""
    gen = torch.Generator().manual_seed(8)
    d = torch.randn(100_003, generator=gen, dtype=torch.float64)
    t = 0.7 + 0.3 * torch.rand(100_003, generator=gen, dtype=torch.float64)
    _, grad = closed_form_minkowski(d.to(dtype), t.to(dtype), p, True)
    torch.testing.assert_close(grad.to(dtype).double(), grad, **grad_tolerance(dtype, grad))
    if dtype == torch.float16:  # the old tolerance: the test fails without the subnormal spacing
        with pytest.raises(AssertionError):
            torch.testing.assert_close(grad.to(dtype).double(), grad, rtol=1e-2, atol=1e-2 * grad.abs().max().item())

cuda_only = pytest.mark.skipif(not CUDA, reason="no CUDA device")


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("p", [1.0, 1.5, 4.0])
@pytest.mark.parametrize("on_probs", [True, False])
def test_cuda_minkowski(only_fused, dtype, p, on_probs):
    assert ops.backend() == "fused-cpu+cuda" and ops._devices[f"cuda:{torch.cuda.current_device()}"] is None
    gen = torch.Generator().manual_seed(8)
    d = torch.randn(100_003, generator=gen, dtype=torch.float64)
    t = 0.7 + 0.3 * torch.rand(100_003, generator=gen, dtype=torch.float64)
    dc = d.to("cuda", dtype).requires_grad_(True)
    loss = ops.minkowski_power(dc, t.to("cuda", dtype), p, on_probs)
    loss.backward()
    value, grad = closed_form_minkowski(dc.detach().cpu(), t.to(dtype), p, on_probs)
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(loss.double().cpu(), value, rtol=tol, atol=0)
    torch.testing.assert_close(dc.grad.double().cpu(), grad, **grad_tolerance(dtype, grad))
    again = ops.minkowski_power(dc.detach(), t.to("cuda", dtype), p, on_probs)
    assert torch.equal(again, loss.detach())  # deterministic reduction


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_penalty(only_fused, dtype):
    gen = torch.Generator().manual_seed(9)
    g = 0.02 * torch.randn(300, 3072, generator=gen, dtype=torch.float64)
    g[3] = 0
    gc = g.to("cuda", dtype).requires_grad_(True)
    loss = ops.gradient_penalty(gc, 10.0, 1.0)
    loss.backward()
    value, grad = closed_form_penalty(gc.detach().cpu(), 10.0, 1.0)
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(loss.double().cpu(), value, rtol=tol, atol=0)
    torch.testing.assert_close(gc.grad.double().cpu(), grad, **grad_tolerance(dtype, grad))


@cuda_only
def test_cuda_penalty_parameter_gradients(fused):
    torch.manual_seed(10)
    D = SmallD().cuda()
    x = torch.randn(16, 3, 16, 16, device="cuda")
    out = {}
    for mode in ("off", "on"):
        ops.set_backend(mode)
        D.zero_grad(set_to_none=True)
        losses.gradient_penalty(D, x.clone(), 10.0, 1.0).backward()
        out[mode] = [p.grad for p in D.parameters() if p.grad is not None]
    assert len(out["on"]) == len(out["off"]) >= 5
    for a, b in zip(out["on"], out["off"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * b.abs().max().item())


def test_a_build_waits_for_a_held_build_lock_naming_the_holder_then_gives_up(tmp_path, monkeypatch, capsys):
    """The build lock and the folder merge share utils.wait_for_lock: the one line, then the build's own error."""
    monkeypatch.setenv("MINK_OPS_CACHE", str(tmp_path))
    monkeypatch.setattr(ops, "BUILD_TIMEOUT_S", 0.5)
    lock_path = tmp_path / (ops.source_hash(ops.SRC_DIR, False) + ".flock")
    hold = ("import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); "
            "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RuntimeError, match=f"waiting for process {holder.pid}'s build in"):
            ops.build(with_cuda=False, load=False)
    finally:
        holder.kill()
        holder.wait()
    assert f"process {holder.pid} holds its lock (giving up after 0.5 s)" in capsys.readouterr().err
