"""The Python steps of gpu/gpu_check.sh; each prints what it checked and exits 1 when a check fails.

    python -m gpu.gpu_check environment                     # versions, the GPU, nvcc, optional packages
    python -m gpu.gpu_check backend --device cuda           # build the fused ops; they must run there
    python -m gpu.gpu_check edge-cases --device cuda        # the fused ops against eager on the awkward inputs
    python -m gpu.gpu_check images DIR --n 640              # a CIFAR-shaped image folder of random pixels
    python -m gpu.gpu_check same-run RUN_A RUN_B            # two runs' last checkpoints agree to the bit
    python -m gpu.gpu_check throughput --csv F -- FLAGS     # steps/s of 1 and of 4 concurrent train.py runs
    python -m gpu.gpu_check sanitizer-workload              # every CUDA kernel, for compute-sanitizer

The edge cases compare each fused op (value and gradient) with its eager reference of ops.py:
non-contiguous and empty inputs, float16 and bfloat16, autocast, an inductor compile, and on a GPU
two side streams at once and a CUDA-graph capture of forward and backward, replayed on new data.
"""
import os
import sys

if not __package__:  # run as a path (python gpu/gpu_check.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import importlib.util
import math
import shutil
import subprocess
import time

import pandas as pd
import torch

from minkgan import ops
from minkgan.utils import OneLineParser, atomic_write_csv, check_device, run_main

HALF_RTOL = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float32: 1e-5, torch.float64: 1e-10}


# ----------------------------------------------------------------------------- edge cases

def mink(x, t, p=3.0):
    """The fused Minkowski loss itself (no dispatch that could fall back to eager); t a tensor or a float."""
    if isinstance(t, torch.Tensor):
        return torch.ops.mink_gan.minkowski_power(x, t, 0.0, p, True)
    return torch.ops.mink_gan.minkowski_power(x, None, float(t), p, True)


def mink_eager(x, t, p=3.0):
    return ops.minkowski_power_eager(x, t, p)


def penalty(g):
    return torch.ops.mink_gan.gradient_penalty(g, 10.0, 1.0)[0]


def penalty_eager(g):
    return ops.gradient_penalty_eager(g, 10.0, 1.0)


def value_and_grad(fn, x, *args):
    x = x.detach().clone().requires_grad_(True)
    value = fn(x, *args)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def assert_agree(fused, eager, dtype=torch.float32):
    """Values and gradients (fused, eager pairs) within the dtype's precision; the gradient's
    tolerance is relative to its largest entry and never below the spacing of the subnormals."""
    rtol = HALF_RTOL[dtype]
    (v, g), (v_ref, g_ref) = fused, eager
    torch.testing.assert_close(v.double(), v_ref.double(), rtol=max(rtol, 1e-5), atol=0, equal_nan=True)
    info = torch.finfo(dtype)
    atol = max(5 * rtol * g_ref.abs().max().item() if g_ref.numel() else 0.0, info.smallest_normal * info.eps)
    assert g.dtype == dtype and g.shape == g_ref.shape
    torch.testing.assert_close(g.double(), g_ref.double(), rtol=5 * rtol, atol=atol)


def case_noncontiguous(device):
    gen = torch.Generator().manual_seed(1)
    d = torch.randn(48, 64, generator=gen).to(device).t()
    t = torch.rand(48, 64, generator=gen).to(device).t()
    assert not d.is_contiguous() and not t.is_contiguous()
    assert_agree(value_and_grad(mink, d, t), value_and_grad(mink_eager, d, t))
    for g in (torch.randn(8, 32, 3, generator=gen).to(device).transpose(1, 2),
              torch.randn(8, 3, 16, 16, generator=gen).to(device).contiguous(memory_format=torch.channels_last)):
        assert_agree(value_and_grad(penalty, g), value_and_grad(penalty_eager, g))
    return "transposed logits and targets, transposed and channels_last gradients"


def case_empty(device):
    d, t = torch.empty(0, device=device), torch.empty(0, device=device)
    (v, g), (v_ref, g_ref) = value_and_grad(mink, d, t), value_and_grad(mink_eager, d, t)
    assert torch.isnan(v) and torch.isnan(v_ref) and g.shape == g_ref.shape == (0,)
    rows = torch.empty(4, 0, device=device)  # four samples of no pixels: norms 0, penalty lam * 1
    assert_agree(value_and_grad(penalty, rows), value_and_grad(penalty_eager, rows))
    return "0 logits (NaN, as eager's mean), 4 x 0 gradients"


def case_half(device):
    gen = torch.Generator().manual_seed(2)
    for dtype in (torch.float16, torch.bfloat16):
        d = (2 * torch.randn(4097, generator=gen)).to(device, dtype)
        t = torch.rand(4097, generator=gen).to(device, dtype)
        fused = value_and_grad(mink, d, t)
        assert fused[0].dtype == torch.float32, f"{dtype} loss is {fused[0].dtype}"
        v_ref, g_ref = value_and_grad(mink_eager, d.float(), t.float())
        assert_agree(fused, (v_ref, g_ref.to(dtype)), dtype)
        g = (0.05 * torch.randn(64, 3072, generator=gen)).to(device, dtype)
        v_ref, g_ref = value_and_grad(penalty_eager, g.float())
        assert_agree(value_and_grad(penalty, g), (v_ref, g_ref.to(dtype)), dtype)
    return "float16 and bfloat16 in, float32 losses out, gradients in the input's dtype"


def case_autocast(device):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    torch.manual_seed(3)
    net = torch.nn.Linear(32, 1).to(device)
    x = torch.randn(256, 32, device=device)
    grads = []
    for loss_of in (lambda logits: mink(logits, 1.0), lambda logits: mink_eager(logits.float(), 1.0)):
        net.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype):
            logits = net(x).flatten()
            loss = loss_of(logits)
        assert logits.dtype == dtype and loss.dtype == torch.float32
        loss.backward()
        grads.append(net.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=HALF_RTOL[dtype], atol=HALF_RTOL[dtype] * grads[1].abs().max().item())
    return f"{str(dtype)[6:]} logits of a Linear under autocast: its weight gradient as the float32 loss's"


def case_side_streams(device):
    main = torch.cuda.current_stream(device)
    streams = [torch.cuda.Stream(device) for _ in range(2)]
    gen = torch.Generator().manual_seed(4)
    inputs = [(torch.randn(n, generator=gen).to(device), torch.rand(n, generator=gen).to(device),
               torch.randn(b, 300, generator=gen).to(device)) for n, b in ((37, 3), (5000, 64), (300_000, 700))]
    for s in streams:
        s.wait_stream(main)
    results = []
    for i in range(60):  # two streams at once, each with its own scratch buffer, grown by the larger inputs
        d, t, g = inputs[i % len(inputs)]
        with torch.cuda.stream(streams[i % 2]):
            results.append((i % len(inputs), mink(d, t), penalty(g)))
    for s in streams:
        main.wait_stream(s)
    torch.cuda.synchronize(device)
    for k, m, p in results:
        d, t, g = inputs[k]
        torch.testing.assert_close(m, mink_eager(d, t), rtol=1e-5, atol=0)
        torch.testing.assert_close(p, penalty_eager(g), rtol=1e-5, atol=0)
    return "60 forwards alternating between two streams, three sizes, each equal to eager"


def case_cuda_graph(device):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(10_007, generator=gen).to(device).requires_grad_(True)
    t = torch.rand(10_007, generator=gen).to(device)
    g = (0.05 * torch.randn(64, 3072, generator=gen)).to(device).requires_grad_(True)

    def step():
        loss = mink(x, t) + penalty(g)
        return (loss, *torch.autograd.grad(loss, (x, g)))

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up off the default stream, as torch.cuda.graph wants
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = step()
    for trial in range(3):
        with torch.no_grad():
            x.copy_(torch.randn(10_007, generator=gen).to(device))
            g.copy_((0.05 * torch.randn(64, 3072, generator=gen)).to(device))
        graph.replay()
        eager_now = step()  # an eager call between replays shares no scratch memory with the graph
        xe, ge = x.detach().clone().requires_grad_(True), g.detach().clone().requires_grad_(True)
        ref_loss = mink_eager(xe, t) + penalty_eager(ge)
        ref = (ref_loss.detach(), *torch.autograd.grad(ref_loss, (xe, ge)))
        for got in (static, eager_now):
            for a, b in zip(got, ref):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())
    return "forward and backward of both ops captured once, replayed on 3 new inputs, eager calls between"


def case_inductor(device):
    def loss(d, g, minkowski, gp):
        return minkowski(torch.tanh(d) * 3, torch.full_like(d, 0.9)) + gp(g * 2)

    compiled = torch.compile(lambda d, g: loss(d, g, mink, penalty), backend="inductor", fullgraph=True)
    gen = torch.Generator().manual_seed(6)
    d = torch.randn(500, generator=gen).to(device).requires_grad_(True)
    g = (0.05 * torch.randn(16, 3, 8, 8, generator=gen)).to(device).requires_grad_(True)
    results = []
    for fn in (compiled, lambda a, b: loss(a, b, mink_eager, penalty_eager)):
        value = fn(d, g)
        results.append((value.detach(), *torch.autograd.grad(value, (d, g))))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())
    return "both ops inside an inductor graph (fullgraph), forward and backward"


CASES = {"non-contiguous": (case_noncontiguous, False), "empty": (case_empty, False), "half": (case_half, False),
         "autocast": (case_autocast, False), "side-streams": (case_side_streams, True),
         "cuda-graph": (case_cuda_graph, True), "inductor": (case_inductor, False)}  # name -> (check, needs CUDA)


def edge_cases(device):
    print(f"fused backend on {device}: {ops.set_backend('on', device)}", flush=True)
    failed = 0
    for name, (case, needs_cuda) in CASES.items():
        if needs_cuda and device.type != "cuda":
            print(f"skip {name}: needs CUDA", flush=True)
            continue
        try:
            print(f"ok   {name}: {case(device)}", flush=True)
        except Exception as e:  # any failure of a case is its result; the others still run
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {str(e).strip()[:2000]}", flush=True)
    print(f"{len(CASES) - failed} of {len(CASES)} edge cases passed or were skipped on {device}")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- runs

def environment():
    """What the check ran on, for the report: versions, the GPU, nvcc and the optional packages."""
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}")
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, compute capability {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB, "
              f"{p.multi_processor_count} SMs")
    nvcc = ops._nvcc()
    print(f"nvcc {nvcc}: {ops._compiler_version(nvcc) if nvcc else None}; host compiler "
          f"{ops._compiler_version(ops._host_compiler())}")
    for name in ("torchvision", "pytorch_fid", "triton"):
        print(f"{name}: {'present' if importlib.util.find_spec(name) else 'missing'}")
    print(f"compute-sanitizer: {shutil.which('compute-sanitizer')}; CPUs: {os.cpu_count()}")
    return 0


def backend(device, want):
    name = ops.set_backend("on", device)
    print(f"fused backend for {device}: {name} (cache {ops.cache_root()}, arch flags "
          f"{ops.cuda_arch_flags() if device.type == 'cuda' else None})")
    return 0 if name == want else 1


def images(folder, n, seed=0):
    """n random 32x32 PNGs in 10 class folders: train.py's --dataset folder reads them."""
    from PIL import Image
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        os.makedirs(os.path.join(folder, f"c{i % 10}"), exist_ok=True)
        pixels = torch.randint(0, 256, (32, 32, 3), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(os.path.join(folder, f"c{i % 10}", f"{i}.png"))
    print(f"{n} images in {folder}")
    return 0


def same_run(a, b):
    """The last checkpoints of a straight run and of one resumed halfway agree to the bit: weights,
    optimizer states and both RNG states (the CUDA one is restored on a GPU)."""
    ca, cb = (torch.load(os.path.join(r, "checkpoints", "last.pt"), map_location="cpu", weights_only=True) for r in (a, b))
    differ = [key for key in ("step", "G", "D", "opt_g", "opt_d", "rng", "cuda_rng") if not _equal(ca[key], cb[key])]
    print(f"step {ca['step']} and {cb['step']}; CUDA RNG state saved: {ca['cuda_rng'] is not None}")
    print(f"differ: {', '.join(differ)}" if differ else "weights, optimizer states and RNG states identical")
    return 1 if differ else 0


def _equal(x, y):
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(map(_equal, x, y))
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
    return x == y


def steady_rate(run_dir):
    """Steps per second between the first and the last logged step (start-up excluded)."""
    m = pd.read_csv(os.path.join(run_dir, "metrics.csv"))
    return (m["step"].iloc[-1] - m["step"].iloc[0]) / (m["seconds"].iloc[-1] - m["seconds"].iloc[0])


def throughput(csv, work, counts, train_flags):
    """k train.py runs at once on one device (seeds 0..k-1, the CPU threads shared out), for each k:
    their steady steps/s, each and together, against one run alone."""
    rows, failed = [], False
    for k in counts:
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // k)))
        outs = [os.path.join(work, f"x{k}-{i}") for i in range(k)]
        start = time.time()
        procs = [subprocess.Popen([sys.executable, "train.py", *train_flags, "--seed", str(i), "--out", out], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i, out in enumerate(outs)]
        for proc, out in zip(procs, outs):
            err = proc.communicate()[1]
            if proc.returncode:
                failed = True
                print(f"{out}: exit code {proc.returncode}: {err.strip()[-2000:]}")
        wall = time.time() - start
        for i, out in enumerate(outs):
            if os.path.exists(os.path.join(out, "metrics.csv")):
                rows.append({"concurrent": k, "run": i, "steps_per_s": steady_rate(out), "wall_s": round(wall, 1)})
    table = pd.DataFrame(rows)
    atomic_write_csv(table, csv)
    together = table.groupby("concurrent")["steps_per_s"].sum()
    alone = together.get(1, math.nan)
    for k, total in together.items():
        print(f"{k} run(s) at once: {total / k:.1f} steps/s each, {total:.1f} together ({total / alone:.2f}x one run)")
    return 1 if failed or len(together) < len(counts) else 0


def sanitizer_workload():
    """Every CUDA kernel of csrc/ on a few shapes and dtypes, twice (the second call reuses the
    scratch buffer); compute-sanitizer checks what they read and write."""
    device = torch.device("cuda")
    ops.set_backend("on", device)
    gen = torch.Generator().manual_seed(7)
    for dtype in (torch.float32, torch.float16, torch.float64):
        for n in (1, 257, 100_003):
            d = torch.randn(n, generator=gen).to(device, dtype)
            for target in (None, torch.rand(n, generator=gen).to(device, dtype)):
                for _ in range(2):
                    value_and_grad(mink, d, target)
        for shape in ((1, 10), (7, 3, 5, 5), (300, 3072)):
            for _ in range(2):
                value_and_grad(penalty, torch.randn(shape, generator=gen).to(device, dtype))
    torch.cuda.synchronize()
    print("every kernel ran: minkowski forward and backward (3 dtypes, 3 sizes, both targets), penalty (3 shapes)")
    return 0


def main(argv=None):
    ap = OneLineParser(prog="python -m gpu.gpu_check", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("environment")
    p = sub.add_parser("backend")
    p.add_argument("--device", default="cuda")
    p.add_argument("--expect", default="fused-cpu+cuda", help="the backend name the build must give")
    p = sub.add_parser("edge-cases")
    p.add_argument("--device", default="cuda")
    p = sub.add_parser("images")
    p.add_argument("folder")
    p.add_argument("--n", type=int, default=640)
    p = sub.add_parser("same-run")
    p.add_argument("runs", nargs=2)
    p = sub.add_parser("throughput")
    p.add_argument("--csv", required=True)
    p.add_argument("--work", required=True, help="folder for the runs")
    p.add_argument("--concurrent", type=int, nargs="+", default=[1, 4])
    p.add_argument("train_flags", nargs=argparse.REMAINDER, help="after --: train.py's flags (not --seed, --out)")
    sub.add_parser("sanitizer-workload")
    args = ap.parse_args(argv)
    if args.command == "environment":
        return environment()
    if args.command == "backend":
        return backend(check_device(args.device), args.expect)
    if args.command == "edge-cases":
        return edge_cases(check_device(args.device))
    if args.command == "images":
        return images(args.folder, args.n)
    if args.command == "same-run":
        return same_run(*args.runs)
    if args.command == "throughput":
        return throughput(args.csv, args.work, args.concurrent, [f for f in args.train_flags if f != "--"])
    return sanitizer_workload()


if __name__ == "__main__":
    run_main(main)
