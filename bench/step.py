"""Benchmark one training step per device and architecture: the plain way against --fused,
--channels-last, --compile, torch.compile's mode reduce-overhead (CUDA graphs, GPU only) and
--precision bfloat16 (alone, with channels_last, and with both and --compile), and against the
device's sgemm rate. Not a test.

    python -m bench.step                              # the GPU where there is one, else the CPU
    python -m bench.step --devices cpu cuda --csv results/bench_step.csv
    python -m bench.step --variants plain fused --archs dcgan --rounds 3
    python -m bench.step --count-only --csv results/aten_ops.csv      # ATen ops per step, no timing
    python -m bench.step --profile --archs dcgan --csv results/step_profile.csv   # time per ATen op

A step is train.py's own (Trainer.train_step: one D step, one G step, clipping and the logged
statistics; Minkowski p = 4, batch 64, 32x32 images), with train.py's cuDNN settings. The variants
of one architecture are built from the same seed and timed in alternating rounds, each timing as
many steps as fill --min-time seconds (a GPU step takes milliseconds: a few of them are too short a
window), and each figure is the median over rounds, so load from other processes hits them alike;
`ratio` is the plain (float32) step's time over the variant's, on the same CPU and threads; each row
names the CPU (`cpu`) and its bfloat16 hardware (`bf16_hardware`: AMX, AVX512-BF16 or none, where
bfloat16 is emulated and the run says so). Rows merge into --csv by (device, bf16_hardware, arch,
variant): a run on another machine adds its rows, the others stay. `aten_ops` counts the ATen operators one step
dispatches, views included (a TorchDispatchMode; eager variants only): each of the others is about
one kernel launch on a GPU, where a step of these small networks is launch-bound; `--count-only`
counts them (for Minkowski p = 4 and WGAN, whose step has 5 critic steps) without timing anything, a
deterministic figure that load cannot move: the CSV's `revision` (git's) says which code it counted,
so counts of two revisions can share one file (rows merged by revision, arch, loss). `of_sgemm` is the
step's FLOP rate (torch's FLOP counter: convolutions and matmuls, forward and backward) over the
rate of a 2048^3 float32 matmul on the same device and threads: the share of the device's
dense-math ceiling the step reaches. A variant that fails is reported in `error` (exit code 1).

`--profile` times every ATen op of --rounds steps of each eager variant (by a TorchDispatchMode, below
autograd, so backward's ops too; a GPU is synchronized around each op), keyed by the op, the dtypes of
its floating inputs and the layout of its 4-D input: which ops stay float32 under bfloat16, what the
layout and dtype conversions (`_to_copy`, `copy_`) cost. Ops under 0.5 % of a step are summed as
`(other)`; rows merge into --csv by (device, bf16_hardware, arch, variant, op, dtypes, layout).
"""
import os
import sys

if not __package__:  # run as a path (python bench/step.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import collections
import math
import statistics
import time

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from minkgan import ops
from minkgan import precision
from minkgan import training as train
from minkgan import rundir
from minkgan import settings
from minkgan import trainstep
from minkgan.timing import per_call_ms, sync
from minkgan.utils import OneLineParser, UserError, check_device, check_merge_target, merge_csv, run_main

VARIANTS = {  # name -> (train.py flags, fused ops, torch.compile mode applied here, or None)
    "plain": ([], "off", None),
    "fused": ([], "on", None),
    "channels_last": (["--channels-last"], "on", None),
    "compile": (["--compile"], "on", None),
    "channels_last+compile": (["--channels-last", "--compile"], "on", None),
    "compile_reduce_overhead": ([], "on", "reduce-overhead"),
    "bfloat16": (["--precision", "bfloat16"], "on", None),
    "bfloat16+channels_last": (["--precision", "bfloat16", "--channels-last"], "on", None),
    "bfloat16+channels_last+compile": (["--precision", "bfloat16", "--channels-last", "--compile"], "on", None),
}
CSV_KEY = [*precision.MACHINE_KEY, "arch", "variant"]  # a rerun on the same machine and threads replaces its rows
GPU_ONLY = {"compile_reduce_overhead"}  # CUDA graphs: on the CPU the mode is plain --compile
PROFILE_KEY = [*precision.MACHINE_KEY, "arch", "variant", "op", "dtypes", "layout"]
PROFILE_SMALL = 0.005  # ops under this share of a step are summed into one (other) row


def make_step(arch, variant, device, batch=64, loss=("--loss", "minkowski", "--p", "4")):
    """A Trainer of train.py and its batches on random images; returns step() -> None."""
    flags, _, mode = VARIANTS[variant]
    cfg = settings.resolve(settings.build_parser().parse_args(
        ["--dataset", "folder", "--arch", arch, "--batch-size", str(batch), "--device", str(device), *loss, *flags]))
    torch.manual_seed(0)
    train.set_determinism(device, False)
    trainer = trainstep.Trainer(cfg, device)
    if mode:  # what --compile does, in a mode train.py has no flag for
        trainer.G.compile(mode=mode)
        trainer.D.compile(mode=mode)
    images = torch.randint(0, 256, (4 * batch, 3, 32, 32), dtype=torch.uint8, device=device)
    batches = trainstep.Batches(images, batch, seed=0)

    def step():
        if mode:
            torch.compiler.cudagraph_mark_step_begin()  # a new step: the graphs' previous outputs may be reused
        trainer.train_step(batches, total_steps=10**9)
    return step


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def aten_ops(step):
    """The ATen operators one call of step() dispatches (below autograd, so backward's count too)."""
    with _OpCounter() as counter:
        step()
    return counter.count


def step_flops(step):
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def sgemm_gflops(device, n=2048, repeats=5):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    return 2 * n**3 / per_call_ms(lambda: a @ b, device, repeats) / 1e6


def prepare(arch, device, variants):
    """Each variant's step, warmed up (compilation, cuDNN's search), with its ATen count; or its error."""
    steps, counts, errors = {}, {}, {}
    for name in variants:
        try:
            ops.set_backend(VARIANTS[name][1], device)
            steps[name] = make_step(arch, name, device)
            for _ in range(3):
                steps[name]()
            counts[name] = aten_ops(steps[name]) if eager(name) else math.nan
        except (RuntimeError, UserError) as e:  # e.g. a compile mode that fails on this device
            steps.pop(name, None)
            errors[name] = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return steps, counts, errors


def bench_arch(arch, device, variants, rounds, min_time):
    """Median ms per step of every variant that runs, timed round-robin, each timing >= min_time seconds."""
    steps, counts, errors = prepare(arch, device, variants)
    if "plain" not in steps:
        raise UserError(f"the plain step of {arch} fails on {device}: {errors.get('plain')}")
    ops.set_backend("off")
    one = per_call_ms(steps["plain"], device, 3)
    calls = max(2, math.ceil(min_time * 1e3 / one))
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name in steps:
            ops.set_backend(VARIANTS[name][1], device)
            times[name].append(per_call_ms(steps[name], device, calls))
    ops.set_backend("off")
    gflop = step_flops(steps["plain"]) / 1e9
    ms = {name: statistics.median(t) for name, t in times.items()}
    return ms, counts, errors, calls, gflop


def rows_of(device, arch, variants, rounds, min_time, ceiling):
    ms, counts, errors, calls, gflop = bench_arch(arch, device, variants, rounds, min_time)
    hardware = precision.device_row(device)
    rows = []
    for name in variants:
        t = ms.get(name, math.nan)
        rows.append({"device": rundir.hardware_name(device), "arch": arch, "variant": name, "ms": t,
                     "ratio": ms["plain"] / t, "calls": calls, "aten_ops": counts.get(name, math.nan),
                     "gflop_per_step": gflop, "of_sgemm": gflop / (t / 1e3) / ceiling, "sgemm_gflops": ceiling,
                     "error": errors.get(name, ""), "torch": torch.__version__,
                     "loadavg_1m": round(os.getloadavg()[0], 2), **hardware})
    return rows


def eager(variant):
    """A variant whose ops the dispatch mode sees one by one (torch.compile's generated kernels it does not)."""
    flags, _, mode = VARIANTS[variant]
    return mode is None and "--compile" not in flags


def floating_dtypes(args):
    """'bfloat16+float32': the dtypes of an op's floating tensor inputs, '-' for none."""
    names = {str(a.dtype).removeprefix("torch.") for a in tree_leaves(args)
             if isinstance(a, torch.Tensor) and a.is_floating_point()}
    return "+".join(sorted(names)) or "-"


def layout_of(args):
    """How an op's first 4-D tensor input is stored: 'channels_last', 'contiguous' (NCHW or strided), '-'."""
    for a in tree_leaves(args):
        if isinstance(a, torch.Tensor) and a.dim() == 4:
            channels_last = a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous()
            return "channels_last" if channels_last else "contiguous"
    return "-"


class _OpTimer(TorchDispatchMode):
    """Milliseconds and calls of every ATen op, by (op, input dtypes, input layout)."""
    def __init__(self, device):
        super().__init__()
        self.device, self.ms, self.calls = device, collections.Counter(), collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        key = (func.overloadpacket.__name__, floating_dtypes(args), layout_of(args))
        sync(self.device)
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        sync(self.device)
        self.ms[key] += (time.perf_counter() - start) * 1e3
        self.calls[key] += 1
        return out


def op_rows(timer, steps):
    """The timer's ops per step, largest first, those under PROFILE_SMALL of the step summed as (other)."""
    total = sum(timer.ms.values())
    rows, other = [], {"op": "(other)", "dtypes": "-", "layout": "-", "calls": 0.0, "ms": 0.0}
    for key, ms in timer.ms.most_common():
        row = dict(zip(["op", "dtypes", "layout"], key), calls=timer.calls[key] / steps, ms=ms / steps)
        if ms >= PROFILE_SMALL * total:
            rows.append(row)
        else:
            other["calls"], other["ms"] = other["calls"] + row["calls"], other["ms"] + row["ms"]
    return [dict(r, share=r["ms"] * steps / total, step_ms=total / steps) for r in rows + [other]]


def profile_rows(device, arch, variants, steps):
    """Per variant, each ATen op's milliseconds and calls per step over `steps` steps after the warm-up."""
    prepared, _, errors = prepare(arch, device, variants)
    if errors:
        raise UserError(f"{arch} on {device}: " + "; ".join(f"{v} fails: {e}" for v, e in errors.items()))
    context = {"device": rundir.hardware_name(device), "arch": arch, "steps": steps, **precision.device_row(device)}
    rows = []
    for name, step in prepared.items():
        ops.set_backend(VARIANTS[name][1], device)
        with _OpTimer(device) as timer:
            for _ in range(steps):
                step()
        rows += [{**context, "variant": name, **r, "torch": torch.__version__,
                  "loadavg_1m": round(os.getloadavg()[0], 2)} for r in op_rows(timer, steps)]
    ops.set_backend("off")
    return rows


COUNTED_LOSSES = {"minkowski-p4": ("--loss", "minkowski", "--p", "4"), "wgan": ("--loss", "wgan")}


def count_rows(device, archs):
    """ATen ops of one plain step (after a warm-up) per architecture and loss, and the code's git revision."""
    ops.set_backend("off", device)
    revision, rows = rundir.environment(device)["git"], []  # two git calls: once, not per row
    for arch in archs:
        for loss, flags in COUNTED_LOSSES.items():
            step = make_step(arch, "plain", device, loss=flags)
            for _ in range(2):
                step()
            rows.append({"revision": revision, "device": rundir.hardware_name(device), "arch": arch,
                         "loss": loss, "aten_ops": aten_ops(step), "torch": torch.__version__})
    return rows


def write_profile(devices, args):
    """--profile: each device's op table, printed (largest ops) and merged into --csv."""
    table = pd.DataFrame([row for device in devices for arch in args.archs
                          for row in profile_rows(device, arch, ["plain", *(v for v in args.variants if v != "plain")],
                                                  args.rounds)])
    for (device, arch, variant), g in table.groupby(["device", "arch", "variant"], sort=False):
        print(f"{device}, {arch}, {variant}: {g['step_ms'].iloc[0]:.1f} ms of ops per step")
        print(g[["op", "dtypes", "layout", "calls", "ms", "share"]].head(12).to_string(index=False, float_format="{:.3g}".format))
    if args.csv:
        merge_csv(args.csv, table, PROFILE_KEY, added=precision.ADDED_KEY)
        print(f"merged into {args.csv}")
    return 0


def main(argv=None):
    ap = OneLineParser(prog="python -m bench.step", description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cuda where there is a GPU, else cpu")
    ap.add_argument("--archs", nargs="+", default=["dcgan", "pytorchgan"])
    ap.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                    help="plain is always timed: the ratios are against it (default: all; with --profile the eager ones)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median); with --profile, steps profiled")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds of steps per timing")
    ap.add_argument("--csv", default=None, help="also write the table here")
    ap.add_argument("--count-only", action="store_true",
                    help="count the ATen ops of a plain step, time nothing; --csv then merges by revision, arch, loss")
    ap.add_argument("--profile", action="store_true",
                    help="time each ATen op of the eager variants (dtype, layout); --csv then merges by " + ", ".join(PROFILE_KEY))
    args = ap.parse_args(argv)
    if args.rounds < 1 or not args.min_time > 0:
        raise UserError("--rounds must be at least 1 and --min-time positive")
    if args.profile and args.count_only:
        raise UserError("--profile and --count-only are two modes: pass one")
    if args.variants is None:
        args.variants = [v for v in VARIANTS if eager(v)] if args.profile else list(VARIANTS)
    if args.profile and not all(eager(v) for v in args.variants):
        raise UserError("--profile times eager ops only: leave out " + ", ".join(v for v in args.variants if not eager(v)))
    devices = [check_device(d) for d in (args.devices or ["cuda" if torch.cuda.is_available() else "cpu"])]
    if args.csv:  # before minutes of timing
        key = ["revision", "device", "arch", "loss"] if args.count_only else PROFILE_KEY if args.profile else CSV_KEY
        check_merge_target(args.csv, key, "--csv", added=() if args.count_only else precision.ADDED_KEY)
    if args.profile:
        return write_profile(devices, args)
    if args.count_only:
        table = pd.DataFrame([row for device in devices for row in count_rows(device, args.archs)])
        print(table.to_string(index=False))
        if args.csv:
            merge_csv(args.csv, table, ["revision", "device", "arch", "loss"])
            print(f"wrote {args.csv}")
        return 0
    rows = []
    for device in devices:
        print(f"torch {torch.__version__}, {rundir.hardware_name(device)}, fused backend "
              f"{ops.set_backend('on', device)}", flush=True)
        note = precision.emulated_note() if device.type == "cpu" else None
        if note and any("bfloat16" in VARIANTS[v][0] for v in args.variants):
            print(note, flush=True)
        variants = ["plain"] + [v for v in args.variants if v != "plain" and (device.type == "cuda" or v not in GPU_ONLY)]
        ceiling = sgemm_gflops(device)
        for arch in args.archs:
            rows += rows_of(device, arch, variants, args.rounds, args.min_time, ceiling)
    table = pd.DataFrame(rows)
    print(table.drop(columns=["torch"]).to_string(index=False, float_format="{:.3g}".format))
    if args.csv:
        merge_csv(args.csv, table, CSV_KEY, added=precision.ADDED_KEY)
        print(f"merged into {args.csv}")
    return 1 if table["error"].astype(bool).any() else 0


if __name__ == "__main__":
    run_main(main)
