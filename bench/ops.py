"""Benchmark the fused ops (csrc/) against the same math in eager PyTorch. Not a test.

    python -m bench.ops                               # print the table, every device present
    python -m bench.ops --csv results/bench_ops.csv   # also write it there
    python -m bench.ops --rounds 9                    # more repeats (medians over rounds)

Per device (and per CPU thread count, --threads; default 1 and torch's default): forward + backward (torch.autograd.grad) of the Minkowski power loss (p = 4 on
probabilities, target 1) for N in {64, 4096, 262144}, and of the gradient penalty on
B x 3072 per-sample gradients for B in {64, 256, 1024}. Eager and fused runs alternate,
round by round, and each figure is the median over rounds, so load from other processes
hits both alike. The whole training step, fused or not, is bench/step.py's.
"""
import os
import sys

if not __package__:  # run as a path (python bench/ops.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import statistics

import pandas as pd
import torch

from minkgan import ops
from minkgan.timing import per_call_ms
from minkgan.utils import atomic_write_csv, run_main


def compare(make_call, device, rounds, budget_s=0.05):
    """Median ms per call of make_call(mode)() for mode 'off' (eager) and 'on' (fused)."""
    calls = {}
    for mode in ("off", "on"):
        ops.set_backend(mode, device)  # the fused ops run on `device` only once checked there
        fn = make_call()
        for _ in range(3):
            fn()
        calls[mode] = fn
    ops.set_backend("off")
    one = per_call_ms(calls["off"], device, 3)
    iters = max(3, min(2000, int(budget_s * 1e3 / max(one, 1e-3))))
    times = {"off": [], "on": []}
    for _ in range(rounds):
        for mode in ("off", "on"):
            ops.set_backend(mode, device)
            times[mode].append(per_call_ms(calls[mode], device, iters))
    ops.set_backend("off")
    return statistics.median(times["off"]), statistics.median(times["on"])


def bench_ops(device, rounds):
    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in (64, 4096, 262144):
        d = torch.randn(n, generator=gen).to(device).requires_grad_(True)

        def make_call():
            def call():
                (g,) = torch.autograd.grad(ops.minkowski_power(d, 1.0, 4.0, True), d)
                return g
            return call

        rows.append(("minkowski_p4", n, *compare(make_call, device, rounds)))
    for b in (64, 256, 1024):
        g = torch.randn(b, 3072, generator=gen).to(device).requires_grad_(True)

        def make_call():
            def call():
                (gg,) = torch.autograd.grad(ops.gradient_penalty(g, 10.0, 1.0), g)
                return gg
            return call

        rows.append(("gradient_penalty", f"{b}x3072", *compare(make_call, device, rounds)))
    return rows


def frame(device, rows):
    df = pd.DataFrame(rows, columns=["op", "size", "eager_ms", "fused_ms"])
    df.insert(0, "device", device.type)
    df["speedup"] = df.eager_ms / df.fused_ms
    df["torch"] = torch.__version__
    df["cpu_threads"] = torch.get_num_threads()
    df["loadavg_1m"] = round(os.getloadavg()[0], 2)  # other processes on the machine skew the figures
    df["backend"] = ops.set_backend("on", device)
    ops.set_backend("off")
    return df


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternating eager/fused rounds per figure (median)")
    ap.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                    help="comma-separated CPU thread counts to run (torch.set_num_threads)")
    ap.add_argument("--csv", default=None, help="also write the table here")
    args = ap.parse_args(argv)

    name = ops.set_backend("on")  # builds on first use; fails loudly if it cannot
    print(f"backend {name}, torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    threads = sorted({int(t) for t in args.threads.split(",")})
    runs = [(torch.device("cpu"), t) for t in threads]
    runs += [(torch.device("cuda"), max(threads))] if torch.cuda.is_available() else []
    fmt = {"eager_ms": "{:.4f}".format, "fused_ms": "{:.4f}".format, "speedup": "{:.2f}x".format}
    cols = ["device", "cpu_threads", "op", "size", "eager_ms", "fused_ms", "speedup"]
    tables = []
    for device, nthreads in runs:
        torch.set_num_threads(nthreads)
        df = frame(device, bench_ops(device, args.rounds))
        print(df[cols].to_string(index=False, formatters=fmt), flush=True)
        tables.append(df)
    if args.csv:
        atomic_write_csv(pd.concat(tables, ignore_index=True), args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    run_main(main)
