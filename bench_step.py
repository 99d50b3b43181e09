"""Benchmark one training step per architecture: the plain way against --fused, --channels-last
and --compile, and against the machine's sgemm rate. Not a test.

    python bench_step.py                              # print the table
    python bench_step.py --csv results/bench_step.csv # also write it there

A step is train.py's own (Trainer.train_step: one D step, one G step, clipping and the logged
statistics; Minkowski p = 4, batch 64, 32x32 images). The variants of one architecture are built
from the same seed and timed in alternating rounds, and each figure is the median over rounds, so
load from other processes hits them alike; `ratio` is the plain step's time over the variant's.
`of_sgemm` is the step's FLOP rate (torch's FLOP counter: convolutions and matmuls, forward and
backward) over the rate of a 2048^3 float32 matmul on the same device and threads: the share of
the machine's dense-math ceiling the step reaches.
"""
import os
import statistics

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

import ops
import train
from bench_ops import per_call_ms
from utils import OneLineParser, atomic_write_csv, run_main

VARIANTS = {  # name -> (train.py flags, fused ops)
    "plain": ([], "off"),
    "fused": ([], "on"),
    "channels_last": (["--channels-last"], "on"),
    "compile": (["--compile"], "on"),
    "channels_last+compile": (["--channels-last", "--compile"], "on"),
}


def make_step(arch, flags, device, batch=64):
    """A Trainer of train.py and its batches on random images; returns step() -> None."""
    cfg = train.resolve(train.build_parser().parse_args(
        ["--dataset", "folder", "--arch", arch, "--batch-size", str(batch), "--device", str(device), *flags]))
    torch.manual_seed(0)
    trainer = train.Trainer(cfg, device)
    images = torch.randint(0, 256, (4 * batch, 3, 32, 32), dtype=torch.uint8, device=device)
    batches = train.Batches(images, batch, seed=0)
    return lambda: trainer.train_step(batches, total_steps=10**9)


def step_flops(step):
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def sgemm_gflops(device, n=2048, repeats=5):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    return 2 * n**3 / per_call_ms(lambda: a @ b, device, repeats) / 1e6


def bench_arch(arch, device, rounds, calls):
    """Median ms per step of every variant, timed round-robin after a warm-up (compilation)."""
    steps = {}
    for name, (flags, fused) in VARIANTS.items():
        ops.set_backend(fused)
        steps[name] = make_step(arch, flags, device)
        for _ in range(3):
            steps[name]()
    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, (_, fused) in VARIANTS.items():
            ops.set_backend(fused)
            times[name].append(per_call_ms(steps[name], device, calls))
    ops.set_backend("off")
    gflop = step_flops(steps["plain"]) / 1e9
    return {name: statistics.median(t) for name, t in times.items()}, gflop


def main(argv=None):
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["dcgan", "pytorchgan"])
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    ap.add_argument("--calls", type=int, default=2, help="steps per timing")
    ap.add_argument("--csv", default=None, help="also write the table here")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, fused backend {ops.set_backend('on')}", flush=True)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        ceiling = sgemm_gflops(device)
        for arch in args.archs:
            ms, gflop = bench_arch(arch, device, args.rounds, args.calls)
            for name in VARIANTS:
                rows.append({"device": train.hardware_name(device), "arch": arch, "variant": name,
                             "ms": ms[name], "ratio": ms["plain"] / ms[name], "gflop_per_step": gflop,
                             "of_sgemm": gflop / (ms[name] / 1e3) / ceiling, "sgemm_gflops": ceiling,
                             "torch": torch.__version__, "loadavg_1m": round(os.getloadavg()[0], 2)})
    table = pd.DataFrame(rows)
    print(table.drop(columns=["torch"]).to_string(index=False, float_format="{:.3g}".format))
    if args.csv:
        atomic_write_csv(table, args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    run_main(main)
