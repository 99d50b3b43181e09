"""The two hot spots of GAN losses as ops: the Minkowski power loss and the gradient penalty.

Each op has an eager PyTorch reference here; `set_backend` swaps in the fused C++/CUDA
kernels of csrc/ when they build. losses.py calls only the functions below.

The fused ops (namespace `mink_gan`, see csrc/mink_ops.cpp) are built on first use with
torch.utils.cpp_extension.load into a cache folder keyed by a hash of the sources, the torch
version, the build flags and the GPUs' compute capabilities: ~/.cache/mink-gan/ops/<hash>, or
$MINK_OPS_CACHE/<hash>. The .cu file is compiled only when torch.cuda.is_available(); when that
build fails (a GPU but no nvcc, the usual pip-only install) the CPU-only build is used, with one
warning. Builds are serialised with an OS file lock (released when a builder dies), so a killed
build never hangs the next one; the stale cpp_extension `lock` file it leaves is removed. After
loading, each op runs once on tiny inputs on every device against eager; a device that fails
(e.g. a GPU architecture the build lacks) is dropped with one warning.

Half and bfloat16 inputs give a float32 loss (as eager under autocast on a GPU; a float16 loss
would overflow under GradScaler's scale).

Autograd: each forward is one pass, each backward one pass (the `*_backward` ops), wired up
by a C++ torch::autograd::Function on the Autograd key (with Python's register_autograd the
fused loss on batch-64 logits measured ~2x slower than eager); the fake kernels for
torch.compile are registered here. No gradient flows to a tensor `target` of minkowski_power (labels are
constants; the op returns None for it, and the public function falls back to eager when a
target requires grad). Double backward through the fused ops raises a RuntimeError: use
set_backend('off') for that.
"""
import fcntl
import hashlib
import logging
import os
import platform
import sys
import time
import warnings

import torch

from utils import UserError

SRC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
CPP_SOURCES = ("mink_ops.cpp",)
CUDA_SOURCES = ("mink_ops_cuda.cu",)
HEADERS = ("mink_math.h", "mink_kernels.cuh")  # included by the sources: part of the cache key
CFLAGS = ("-O3", "-fopenmp", "-fno-trapping-math")  # no-trapping-math: lets GCC vectorize the clamps
LDFLAGS = ("-fopenmp",)
NVCC_FLAGS = ("-O3",)


def _arch_flags():
    """-mavx2 -mfma where this x86-64 CPU has them (8-wide vectorized loops), else nothing.

    They are part of the cache key, so a cache shared with a CPU without AVX2 gets its own build.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return ()
    return ("-mavx2", "-mfma") if {"avx2", "fma"} <= set(flags) else ()


BUILD_TIMEOUT_S = float(os.environ.get("MINK_OPS_BUILD_TIMEOUT", "1800"))

_backend = "eager"
_fused = None      # None (not tried), False (failed) or the backend name once loaded
_fused_error = None
_warned = False
_registered = False
_devices = set()   # devices ("cpu", "cuda:0", ...) the loaded library passed its self-check on
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


# ---------------------------------------------------------------------------------------
# eager references


def minkowski_power_eager(d, target, p, on_probs=True):
    """(1/p) * mean |s - t|^p with s = sigmoid(d) (or s = d when on_probs is False)."""
    s = torch.sigmoid(d) if on_probs else d
    return (s - target).abs().pow(p).mean() / p


def gradient_penalty_eager(g, lam, center=1.0):
    """lam * mean_b (||g_b||_2 - center)^2 over the per-sample gradients g (B x ...)."""
    norms = g.flatten(1).norm(2, dim=1)
    return lam * (norms - center).pow(2).mean()


# ---------------------------------------------------------------------------------------
# public API (dispatches to the fused ops when they are active and support the input)


def _fused_ok(x):
    return _backend != "eager" and str(x.device) in _devices and x.dtype in _DTYPES


def minkowski_power(d, target, p, on_probs=True):
    """(1/p) * mean |s - t|^p, s = sigmoid(d) if on_probs else d; target a float or d-shaped tensor."""
    if _fused_ok(d) and p >= 1 and p != float("inf"):
        if isinstance(target, torch.Tensor):
            if target.shape == d.shape and target.device == d.device and not target.requires_grad:
                return torch.ops.mink_gan.minkowski_power(d, target.to(d.dtype), 0.0, float(p), bool(on_probs))
        else:
            return torch.ops.mink_gan.minkowski_power(d, None, float(target), float(p), bool(on_probs))
    return minkowski_power_eager(d, target, p, on_probs)


def gradient_penalty(g, lam, center=1.0):
    """lam * mean_b (||g_b||_2 - center)^2 over the per-sample gradients g (B x ...)."""
    if _fused_ok(g) and g.dim() >= 2 and g.shape[0] > 0:
        return torch.ops.mink_gan.gradient_penalty(g, float(lam), float(center))[0]
    return gradient_penalty_eager(g, lam, center)


def set_backend(mode):
    """Choose the implementation ('auto', 'on', 'off'); return the name of the one in use.

    'on' raises UserError when the fused ops cannot be built; 'auto' then warns once and
    uses eager.
    """
    global _backend, _warned
    if mode not in ("auto", "on", "off"):
        raise UserError(f"--fused must be auto, on or off, got {mode!r}")
    if mode == "off":
        _backend = "eager"
        return _backend
    name = _load()
    if name:
        _backend = name
    else:
        _backend = "eager"
        if mode == "on":
            raise UserError(f"could not build the fused ops ({_fused_error}); fix the compiler setup or use --fused off")
        if not _warned:
            _warned = True
            warnings.warn(f"fused ops unavailable, using eager PyTorch ({_fused_error})", RuntimeWarning, stacklevel=2)
    return _backend


def backend():
    return _backend


# ---------------------------------------------------------------------------------------
# build and load


def cache_root():
    return os.environ.get("MINK_OPS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mink-gan", "ops")


def source_hash(src_dir, with_cuda):
    """Hash of everything that changes the built library."""
    h = hashlib.sha256()
    names = CPP_SOURCES + HEADERS + (CUDA_SOURCES if with_cuda else ())
    for name in names:
        h.update(name.encode())
        with open(os.path.join(src_dir, name), "rb") as f:
            h.update(f.read())
    h.update(repr((torch.__version__, sys.version_info[:2], with_cuda, CFLAGS + _arch_flags(), LDFLAGS, NVCC_FLAGS,
                   cuda_arches() if with_cuda else None)).encode())
    return h.hexdigest()[:16]


def cuda_arches():
    """What the .cu is compiled for: $TORCH_CUDA_ARCH_LIST, else (as cpp_extension does) the
    compute capabilities of the visible GPUs, so nodes with other GPUs get their own build."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    return sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})


def build(src_dir=None, with_cuda=None, load=True, verbose=False):
    """Build the library into cache_root()/<hash> and, if `load`, load it into this process.

    Returns the path of the built .so. Serialised across processes by an flock on
    <hash>.flock; holding it, any cpp_extension `lock` file in the build folder is stale
    (its builder died) and is removed before building.
    """
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # no "No CUDA runtime" on CPU machines
    from torch.utils import cpp_extension

    src_dir = src_dir or SRC_DIR
    if with_cuda is None:
        with_cuda = torch.cuda.is_available()
    key = source_hash(src_dir, with_cuda)
    name = f"mink_gan_ops_{key}"
    root = cache_root()
    build_dir = os.path.join(root, key)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, key + ".flock"), "w") as lockf:
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out after {BUILD_TIMEOUT_S:.0f}s waiting for another build in {build_dir}")
                time.sleep(0.5)
        try:
            os.makedirs(build_dir, exist_ok=True)
            stale = os.path.join(build_dir, "lock")
            if os.path.exists(stale):
                os.remove(stale)
            sources = [os.path.join(src_dir, n) for n in CPP_SOURCES + (CUDA_SOURCES if with_cuda else ())]
            kwargs = dict(name=name, sources=sources, build_directory=build_dir, extra_cflags=list(CFLAGS + _arch_flags()),
                          extra_ldflags=list(LDFLAGS), with_cuda=with_cuda, is_python_module=False, verbose=verbose)
            if with_cuda:
                kwargs["extra_cuda_cflags"] = list(NVCC_FLAGS)
            if not os.path.exists(os.path.join(build_dir, name + ".so")):
                print(f"building fused ops{' with CUDA' if with_cuda else ''} (takes minutes, once) in {build_dir}",
                      file=sys.stderr, flush=True)
            if load:
                cpp_extension.load(**kwargs)
            else:
                _build_only(cpp_extension, kwargs)
        finally:
            fcntl.flock(lockf, fcntl.LOCK_UN)
    return os.path.join(build_dir, name + ".so")


def _build_only(cpp_extension, kwargs):
    """The ninja build that load() runs, without loading the library into this process.

    For CI without a GPU (and so without a second registration of the mink_gan ops in a
    process that already loaded the CPU build). Uses a private cpp_extension function; the
    arguments are filtered by its signature to survive small API changes.
    """
    import inspect

    fn = cpp_extension._write_ninja_file_and_build_library
    args = dict(kwargs, extra_cuda_cflags=kwargs.get("extra_cuda_cflags") or [], extra_sycl_cflags=[],
                extra_include_paths=[], with_sycl=False, is_standalone=False)
    params = inspect.signature(fn).parameters
    fn(**{k: v for k, v in args.items() if k in params})


def _load():
    """Build and load the fused ops once per process; return the backend name or None."""
    global _fused, _fused_error
    if _fused is None:
        try:
            with_cuda = _build_with_cuda_or_cpu_only()
            _register_python_parts()
        except Exception as e:  # any build or load failure: report it in one line, log the rest
            _fused, _fused_error = False, _one_line(e) + _log_build_error(e)
        else:
            _devices.clear()
            candidates = ["cpu"] + ([f"cuda:{i}" for i in range(torch.cuda.device_count())] if with_cuda else [])
            _devices.update(_passing_self_check(candidates))
            if _devices:
                _fused = "fused-cpu" + ("+cuda" if any(d.startswith("cuda") for d in _devices) else "")
            else:
                _fused, _fused_error = False, "the fused ops gave wrong results on every device (self-check)"
    return _fused or None


def _build_with_cuda_or_cpu_only():
    """Build with the .cu when a GPU is visible; if that fails, warn once and build for the CPU.
    Returns whether the loaded library has the CUDA kernels."""
    if torch.cuda.is_available():
        try:
            build(SRC_DIR, True)
            return True
        except Exception as e:
            warnings.warn(f"the CUDA build of the fused ops failed ({_one_line(e)}{_log_build_error(e)}); "
                          f"using the fused ops on the CPU only", RuntimeWarning, stacklevel=4)
    build(SRC_DIR, False)
    return False


def _log_build_error(e):
    """Write the whole error to the cache folder; return '; full log in <path>' (or '')."""
    try:
        log = os.path.join(cache_root(), "last-build-error.log")
        with open(log, "w") as f:
            f.write(str(e))
        return f"; full log in {log}"
    except OSError:
        return ""


def _passing_self_check(devices):
    """The devices on which each op and its backward match eager on tiny inputs, warning once
    for those that fail (a build without a GPU's architecture fails at its first launch)."""
    passing, failing = [], []
    for device in devices:
        try:
            ok = _self_check(torch.device(device))
        except Exception as e:  # a kernel launch error, e.g. "no kernel image is available"
            ok, device = False, f"{device} ({_one_line(e)})"
        (passing if ok else failing).append(device)
    if failing:
        warnings.warn(f"fused ops disagree with eager or fail on {', '.join(failing)}: using eager there",
                      RuntimeWarning, stacklevel=4)
    return passing


def _self_check(device):
    """Each fused op and its backward agree with eager on tiny float32 inputs on `device`."""
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(37, generator=gen).to(device)
    g = torch.randn(3, 50, generator=gen).to(device)
    pairs = [(lambda x: torch.ops.mink_gan.minkowski_power(x, None, 1.0, 4.0, True),
              lambda x: minkowski_power_eager(x, 1.0, 4.0), d),
             (lambda x: torch.ops.mink_gan.gradient_penalty(x, 10.0, 1.0)[0],
              lambda x: gradient_penalty_eager(x, 10.0, 1.0), g)]
    for fused, eager, x in pairs:
        results = []
        for f in (fused, eager):
            xi = x.clone().requires_grad_(True)
            value = f(xi)
            results.append((value.detach(), *torch.autograd.grad(value, xi)))
        if not all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(*results)):
            return False
    return True


def _one_line(e):
    text = str(e).strip().splitlines()
    errors = [ln.strip() for ln in text if "error" in ln.lower()]
    line = (errors[-1] if errors else (text[-1] if text else type(e).__name__))
    return f"{type(e).__name__}: {line}"[:300]


# ---------------------------------------------------------------------------------------
# fake kernels (pytorch/extension-cpp style; autograd is registered in C++, see csrc/mink_ops.cpp)


def _register_python_parts():
    global _registered
    if _registered:
        return
    lib = "mink_gan::"

    @torch.library.register_fake(lib + "minkowski_power")
    def _(d, target, tval, p, on_probs):
        if target is not None:
            torch._check(target.shape == d.shape)
        return d.new_empty((), dtype=_loss_dtype(d.dtype))

    @torch.library.register_fake(lib + "minkowski_power_backward")
    def _(grad, d, target, tval, p, on_probs):
        return torch.empty_like(d, memory_format=torch.contiguous_format)

    @torch.library.register_fake(lib + "gradient_penalty")
    def _(g, lam, center):
        torch._check(g.dim() >= 2)
        return g.new_empty((), dtype=_loss_dtype(g.dtype)), g.new_empty((g.shape[0],), dtype=_loss_dtype(g.dtype))

    @torch.library.register_fake(lib + "gradient_penalty_backward")
    def _(grad, g, norms, lam, center):
        return torch.empty_like(g, memory_format=torch.contiguous_format)

    _registered = True


def _loss_dtype(dtype):
    """float32 for half and bfloat16 (and float32), float64 for float64: the ops' loss and norms."""
    return torch.float64 if dtype == torch.float64 else torch.float32
