"""The two hot spots of GAN losses as ops: the Minkowski power loss and the gradient penalty.

Each op has an eager PyTorch reference here; `set_backend` swaps in the fused C++/CUDA
kernels of csrc/ when they build. losses.py calls only the functions below.

The fused ops (namespace `mink_gan`, see csrc/mink_ops.cpp) are built on first use with
torch.utils.cpp_extension's ninja build into a cache folder keyed by a hash of the sources, the torch and
Python versions, the compilers' versions and every flag passed to them, the -gencode flags
included: ~/.cache/mink-gan/ops/<hash>, or $MINK_OPS_CACHE/<hash>. The .cu file is compiled only
when torch.cuda.is_available(), for $TORCH_CUDA_ARCH_LIST or else the visible GPUs' compute
capabilities (no PTX), so the two name one build; nvcc's major version must be torch's CUDA's.
When that build fails (a GPU but no nvcc, the usual pip-only install) the CPU-only build is used,
with one warning. A failed build is remembered in <hash>-failed.log beside its folder, which holds
its log: later processes fall back at once instead of compiling for minutes again, and a changed
source or toolchain (a new hash) tries again. Builds are serialised with an OS file lock (released
when a builder dies), so a killed build never hangs the next one; the stale cpp_extension `lock`
file it leaves is removed. After loading, each op runs once on tiny inputs against eager on the
device set_backend names (the training device), and only there: a device that fails (e.g. a GPU
architecture the build lacks), or a GPU with a build without CUDA, is an error under 'on' and a
warning and eager PyTorch under 'auto'.

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
import functools
import hashlib
import logging
import os
import platform
import re
import subprocess
import sys
import warnings

import torch

from minkgan import paths
from minkgan.utils import UserError, wait_for_lock

SRC_DIR = os.path.join(paths.ROOT, "csrc")
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
_library = None    # None (not tried), False (failed), or what was loaded: "fused-cpu" or "fused-cpu+cuda"
_library_error = None
_cuda_error = None  # why a library without CUDA was loaded on a machine with a GPU
_warned = False
_registered = False
_devices = {}      # device ("cpu", "cuda:0", ...) -> None where the self-check passed, else why it failed
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
    return _backend != "eager" and _devices.get(str(x.device), "unchecked") is None and x.dtype in _DTYPES


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


def set_backend(mode, device="cpu"):
    """Choose the implementation ('auto', 'on', 'off') for tensors on `device`, the training device;
    return the name of the one in use.

    'on' raises UserError when the fused ops cannot be built or do not run on `device` (a GPU with a
    library built without CUDA, or a failed self-check there); 'auto' then warns once and uses eager.
    """
    global _backend, _warned
    if mode not in ("auto", "on", "off"):
        raise UserError(f"--fused must be auto, on or off, got {mode!r}")
    _backend = "eager"
    if mode == "off":
        return _backend
    if not _load():
        error = f"could not build the fused ops ({_library_error}); fix the compiler setup"
    else:
        name = _device_name(device)
        reason = _device_error(name)
        error = reason and f"the fused ops do not run on {name} ({reason})"
    if error is None:
        _backend = _library
    elif mode == "on":
        raise UserError(f"{error}, or use --fused off")
    elif not _warned:
        _warned = True
        warnings.warn(f"fused ops unavailable, using eager PyTorch: {error}", RuntimeWarning, stacklevel=2)
    return _backend


def backend():
    return _backend


# ---------------------------------------------------------------------------------------
# build and load


def cache_root():
    return os.environ.get("MINK_OPS_CACHE") or os.path.join(paths.CACHE, "ops")


def source_hash(src_dir, with_cuda):
    """Hash of everything that changes the built library: sources, versions, compilers and flags."""
    h = hashlib.sha256()
    names = CPP_SOURCES + HEADERS + (CUDA_SOURCES if with_cuda else ())
    for name in names:
        h.update(name.encode())
        with open(os.path.join(src_dir, name), "rb") as f:
            h.update(f.read())
    h.update(repr((torch.__version__, sys.version_info[:2], with_cuda, _compiler_version(_host_compiler()),
                   CFLAGS + _arch_flags(), LDFLAGS) + (_nvcc_flags() if with_cuda else ())).encode())
    return h.hexdigest()[:16]


def _nvcc_flags():
    """nvcc's version line and every flag passed to it, for the cache key (the .cu's part of it)."""
    nvcc = _nvcc()
    return _compiler_version(nvcc) if nvcc else None, NVCC_FLAGS + cuda_arch_flags()


def cuda_arch_flags():
    """The -gencode flags the .cu is compiled with: for $TORCH_CUDA_ARCH_LIST, else for the visible
    GPUs' compute capabilities (sm only, no PTX: a node with other GPUs gets its own build), so that
    TORCH_CUDA_ARCH_LIST=9.0 and no setting on an H100 or H200 give one build, not two. build()
    passes them to nvcc itself, so cpp_extension adds none of its own."""
    arches = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    if arches in ("", "native"):
        arches = ";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}))
    if not arches:
        raise RuntimeError("no GPU is visible and TORCH_CUDA_ARCH_LIST is not set: no architecture to compile the .cu for")
    saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = arches  # cpp_extension parses the list (and names such as Hopper)
    try:
        return tuple(_cpp_extension()._get_cuda_arch_flags())
    finally:
        if saved is None:
            del os.environ["TORCH_CUDA_ARCH_LIST"]
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = saved


def _cpp_extension():
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # no "No CUDA runtime" on CPU machines
    from torch.utils import cpp_extension
    return cpp_extension


def _host_compiler():
    return os.environ.get("CXX", "c++")  # as cpp_extension


def _nvcc():
    """The nvcc cpp_extension compiles with, or None where it finds no CUDA toolkit."""
    home = _cpp_extension().CUDA_HOME
    return os.path.join(home, "bin", "nvcc") if home else None


@functools.lru_cache(maxsize=None)
def _compiler_version(compiler):
    """The line of `compiler --version` that names its version (None when it does not run)."""
    try:
        lines = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((ln for ln in lines if "release" in ln), lines[0] if lines else None)


def check_nvcc():
    """nvcc's CUDA major version must be torch's: a mismatch fails late and obscurely, at linking or loading."""
    nvcc = _nvcc()
    version = _compiler_version(nvcc) if nvcc else None
    if version is None:
        raise RuntimeError(f"no nvcc at {nvcc or '$CUDA_HOME/bin/nvcc'}; set CUDA_HOME to a CUDA toolkit")
    found = re.search(r"release (\d+)\.", version)
    want = (torch.version.cuda or "none").split(".")[0]
    if not found or found.group(1) != want:
        raise RuntimeError(f"{nvcc} is {version.strip()!r}, but torch was built with CUDA {torch.version.cuda}: "
                           f"set CUDA_HOME to a CUDA {want}.x toolkit")


class BuildError(RuntimeError):
    """A failed build, in one line that names the file holding its whole log."""


def build(src_dir=None, with_cuda=None, load=True, verbose=False):
    """Build the library into cache_root()/<hash> and, if `load`, load it into this process.

    Returns the path of the built .so. Serialised across processes by an flock on
    <hash>.flock; holding it, any cpp_extension `lock` file in the build folder is stale
    (its builder died) and is removed before building. A failed build (not a failed load) is
    written to <hash>-failed.log, and while that file exists it is not tried again (BuildError).
    """
    cpp_extension = _cpp_extension()
    src_dir = src_dir or SRC_DIR
    if with_cuda is None:
        with_cuda = torch.cuda.is_available()
    key = source_hash(src_dir, with_cuda)
    name = f"mink_gan_ops_{key}"
    root = cache_root()
    build_dir = os.path.join(root, key)
    failed = os.path.join(root, key + "-failed.log")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, key + ".flock"), "w") as lockf:
        holder = wait_for_lock(lockf.fileno(), lockf.name, BUILD_TIMEOUT_S, f"the build in {build_dir}")
        if holder is not None:
            raise RuntimeError(f"timed out after {BUILD_TIMEOUT_S:.0f}s waiting for process {holder}'s build in "
                               f"{build_dir}")
        try:
            _raise_remembered_failure(failed)
            try:
                _build_into(cpp_extension, src_dir, with_cuda, name, build_dir, verbose)
            except Exception as e:
                raise BuildError(f"{_one_line(e)}; {_remember_failure(failed, e)}") from e
        finally:
            fcntl.flock(lockf, fcntl.LOCK_UN)
    so = os.path.join(build_dir, name + ".so")
    if load:
        torch.ops.load_library(so)
    return so


def _build_into(cpp_extension, src_dir, with_cuda, name, build_dir, verbose):
    """cpp_extension's ninja build of the sources into build_dir, with this module's flags (a no-op
    when the library there is up to date)."""
    if with_cuda:
        check_nvcc()
    os.makedirs(build_dir, exist_ok=True)
    stale = os.path.join(build_dir, "lock")
    if os.path.exists(stale):
        os.remove(stale)
    sources = [os.path.join(src_dir, n) for n in CPP_SOURCES + (CUDA_SOURCES if with_cuda else ())]
    kwargs = dict(name=name, sources=sources, build_directory=build_dir, extra_cflags=list(CFLAGS + _arch_flags()),
                  extra_ldflags=list(LDFLAGS), with_cuda=with_cuda, is_python_module=False, verbose=verbose)
    if with_cuda:
        kwargs["extra_cuda_cflags"] = list(NVCC_FLAGS + cuda_arch_flags())
    if not os.path.exists(os.path.join(build_dir, name + ".so")):
        print(f"building fused ops{' with CUDA' if with_cuda else ''} (takes minutes, once) in {build_dir}",
              file=sys.stderr, flush=True)
    _ninja_build(cpp_extension, kwargs)


def _raise_remembered_failure(failed):
    """An earlier process failed this very build (same sources, toolchain and flags): fail at once."""
    try:
        with open(failed) as f:
            summary = f.readline().strip()
    except FileNotFoundError:
        return
    raise BuildError(f"this build failed before ({summary}); full log in {failed}; delete it to try again")


def _remember_failure(failed, e):
    """Write the error's one-line summary and its whole text to `failed`; say where (or that it could not)."""
    try:
        with open(failed, "w") as f:
            f.write(f"{_one_line(e)}\n\n{e}\n")
    except OSError as write_error:
        return f"its log could not be written to {failed} ({write_error.strerror})"
    return f"full log in {failed}"


def _ninja_build(cpp_extension, kwargs):
    """The ninja build that cpp_extension.load() runs, without its loading: build() loads the library
    itself, so that a failed build is told apart from a failed load, and CI without a GPU can build
    the CUDA library without a second registration of the mink_gan ops in a process that already
    loaded the CPU build. Uses a private cpp_extension function; the arguments are filtered by its
    signature to survive small API changes.
    """
    import inspect

    fn = cpp_extension._write_ninja_file_and_build_library
    args = dict(kwargs, extra_cuda_cflags=kwargs.get("extra_cuda_cflags") or [], extra_sycl_cflags=[],
                extra_include_paths=[], with_sycl=False, is_standalone=False)
    params = inspect.signature(fn).parameters
    fn(**{k: v for k, v in args.items() if k in params})


def _load():
    """Build and load the fused ops once per process; return the library's name or None (why: _library_error)."""
    global _library, _library_error
    if _library is None:
        try:
            with_cuda = _build_with_cuda_or_cpu_only()
            _register_python_parts()
        except Exception as e:  # any build or load failure: report it in one line (a build's names its log)
            _library, _library_error = False, _one_line(e)
        else:
            _library = "fused-cpu+cuda" if with_cuda else "fused-cpu"
            _devices.clear()
    return _library or None


def _build_with_cuda_or_cpu_only():
    """Build with the .cu when a GPU is visible; if that fails, warn once and build for the CPU.
    Returns whether the loaded library has the CUDA kernels."""
    global _cuda_error
    if torch.cuda.is_available():
        try:
            build(SRC_DIR, True)
            return True
        except Exception as e:
            _cuda_error = _one_line(e)
            warnings.warn(f"the CUDA build of the fused ops failed ({_cuda_error}); using the fused ops on the CPU only",
                          RuntimeWarning, stacklevel=4)
    build(SRC_DIR, False)
    return False


def _device_name(device):
    """'cpu' or 'cuda:N' (the current GPU for a bare 'cuda'), as str(tensor.device) reads."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def _device_error(name):
    """Why the loaded library cannot serve tensors on device `name`, or None: a GPU needs the CUDA
    build, and each device passes the self-check (run once, on that device only) before it is used."""
    if name.startswith("cuda") and _library != "fused-cpu+cuda":
        return f"the library was built without CUDA: {_cuda_error or 'no GPU was visible when it was loaded'}"
    if name not in _devices:
        try:
            ok = _self_check(torch.device(name))
        except Exception as e:  # a kernel launch error, e.g. "no kernel image is available"
            _devices[name] = f"the self-check failed: {_one_line(e)}"
        else:
            _devices[name] = None if ok else "they disagree with eager there (self-check)"
    return _devices[name]


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
    """The error's message in one line: its last line that says "error", else its last line."""
    if isinstance(e, BuildError):
        return str(e)
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
