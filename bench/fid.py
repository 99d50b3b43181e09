"""Benchmark (not a test): evaluate.py's FID against the PNG + `python -m pytorch_fid` route.

    python -m bench.fid --data-root /path/to/imagefolder --n 1000 [--run RUN_DIR] [--real-n 1000]
    python -m bench.fid --throughput-only --csv results/bench_fid.csv     # step 1 only, rows merged

1. Inception throughput (images/s), each variant timed --rounds times in alternation (the median):
   evaluate.py's extractor (BatchNorm folded into the convs, channels_last, batch 200) in float32 and
   in bfloat16 (--fid-precision bfloat16), and pytorch-fid's InceptionV3 as its CLI runs it (batch 50);
   `ratio` is a variant's rate over evaluate.py's float32 one on the same CPU and threads. Each row
   names the CPU and its bfloat16 hardware; on a CPU with none the run says bfloat16 is emulated.
   --csv merges the rows by (device, variant).
2. End to end, from a checkpoint, with the real statistics cached (both routes read the same
   pytorch-fid compatible .npz):
     ours:     python evaluate.py RUN --n N        (generate in memory -> uint8 -> Inception)
     baseline: generate, save N PNGs, python -m pytorch_fid PNG_DIR real.npz
   and the two FIDs, which must agree (same samples, same quantisation).
Without --run it makes a run directory with a randomly initialised DCGAN generator (the FID is
then meaningless, the timing is not). --data-root: an ImageFolder (--dataset folder) or CIFAR-10.
"""
import os
import sys

if not __package__:  # run as a path (python bench/fid.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import statistics
import re
import subprocess
import tempfile
import time

import pandas as pd
import torch
from PIL import Image

from minkgan import paths
from minkgan import data
from minkgan import evaluation as evaluate
from minkgan import inception
from minkgan import precision
from minkgan import rundir
from minkgan.utils import check_merge_target, merge_csv
import models

CSV_KEY = [*precision.MACHINE_KEY, "variant"]



def make_random_run(root, dataset, data_root):
    run = os.path.join(root, "random-run")
    os.makedirs(os.path.join(run, "checkpoints"), exist_ok=True)
    cfg = dict(loss="minkowski", p=4.0, dataset=dataset, data_root=data_root, arch="dcgan", z_dim=100, width=64,
               d_norm="batch", sn=False, seed=0, epochs=0, steps=0, batch_size=64, device="cpu")
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(cfg, f)
    torch.manual_seed(0)
    G, D = models.build("dcgan", 100, 64)
    torch.save({"G": G.state_dict(), "D": D.state_dict(), "step": 0, "epoch": 0}, os.path.join(run, "checkpoints", "last.pt"))
    return run


def extractors():
    """name -> (a callable on uint8 images, or on [0, 1] floats for pytorch-fid's own forward)."""
    plain = inception.pytorch_fid_inception()

    def pytorch_fid(x):
        with torch.inference_mode():
            for i in range(0, len(x), 50):
                plain(x[i:i + 50].float() / 255)
    out = {"pytorch-fid InceptionV3, batch 50": pytorch_fid}
    for bs in (50, 200):
        out[f"evaluate.py (folded BN, channels_last), batch {bs}"] = inception.InceptionFeatures(None, "cpu", bs)
    out["evaluate.py bfloat16 (folded BN, channels_last), batch 200"] = inception.InceptionFeatures(
        None, "cpu", 200, precision="bfloat16")
    return out


BASELINE = "evaluate.py (folded BN, channels_last), batch 200"  # the ratios' float32 reference


def throughput(n, rounds=3):
    """images/s of every extractor (the median of `rounds` alternating timings of n images each)."""
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    runs = extractors()
    for f in runs.values():
        f(x[:4])  # warm-up: oneDNN's kernels for each shape
    rates = {name: [] for name in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t = time.perf_counter()
            f(x)
            rates[name].append(n / (time.perf_counter() - t))
    return {name: statistics.median(r) for name, r in rates.items()}


def throughput_rows(n, rounds):
    """One CSV row per extractor: its rate and its ratio to evaluate.py's float32 rate, on this CPU."""
    rates = throughput(n, rounds)
    device = rundir.hardware_name(torch.device("cpu"))
    return [{"device": device, "variant": name, "images_per_s": ips, "ratio": ips / rates[BASELINE], "n": n,
             "rounds": rounds, "torch": torch.__version__, "loadavg_1m": round(os.getloadavg()[0], 2),
             **precision.cpu_row()} for name, ips in rates.items()]


def timed(cmd):
    t = time.time()
    r = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True)
    dt = time.time() - t
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return dt, r.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None)
    ap.add_argument("--dataset", default="folder")
    ap.add_argument("--data-root", default=None, help="needed but with --throughput-only")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--real-n", type=int, default=1000)
    ap.add_argument("--throughput-n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="alternating throughput timings (the median)")
    ap.add_argument("--throughput-only", action="store_true", help="time the Inception variants only (step 1)")
    ap.add_argument("--csv", default=None, help="merge the throughput rows here, by (device, bf16_hardware, variant)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.data_root is None and not args.throughput_only:
        ap.error("--data-root is needed but with --throughput-only")
    if args.csv:  # before minutes of timing
        check_merge_target(args.csv, CSV_KEY, "--csv", added=precision.ADDED_KEY)
    note = precision.emulated_note()
    if note:
        print(note)
    rows = throughput_rows(args.throughput_n, args.rounds)
    for row in rows:
        print(f"throughput  {row['variant']}: {row['images_per_s']:.2f} images/s ({row['ratio']:.2f}x float32)")
    if args.csv:
        merge_csv(args.csv, pd.DataFrame(rows), CSV_KEY, added=precision.ADDED_KEY)
        print(f"merged into {args.csv}")
    if args.throughput_only:
        return
    work = args.work or tempfile.mkdtemp(prefix="bench_fid-")
    stats_dir = os.path.join(work, "stats")
    run = args.run or make_random_run(work, args.dataset, args.data_root)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; work dir {work}")

    common = [sys.executable, "evaluate.py", run, "--n", str(args.n), "--real-n", str(args.real_n), "--stats-dir",
              stats_dir, "--data-root", args.data_root, "--csv", os.path.join(work, "fid.csv"), "--device", "cpu"]
    dt, _ = timed(common)  # computes and caches the real statistics
    print(f"real statistics ({args.real_n} images) + first evaluation: {dt:.1f} s")
    (stats,) = [os.path.join(stats_dir, f) for f in os.listdir(stats_dir) if f.endswith(".npz")]  # not the floor

    dt_ours, _ = timed(common)
    fid_ours = float(pd.read_csv(os.path.join(work, "fid.csv"))["fid"].iloc[-1])
    print(f"ours      end to end, {args.n} samples: {dt_ours:.1f} s  (FID {fid_ours:.4f})")

    t = time.time()
    G, cfg, _ = evaluate.load_run(run)
    samples = data.to_uint8(evaluate.generate(G, cfg["z_dim"], args.n, seed=0))
    png_dir = os.path.join(work, "png")
    os.makedirs(png_dir, exist_ok=True)
    for i, img in enumerate(samples.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(os.path.join(png_dir, f"{i:05d}.png"))
    dt_png = time.time() - t
    dt_pf, out = timed([sys.executable, "-m", "pytorch_fid", png_dir, stats, "--device", "cpu"])
    fid_pf = float(re.search(r"FID:\s+(\S+)", out).group(1))
    print(f"baseline  generate + save PNG: {dt_png:.1f} s; python -m pytorch_fid: {dt_pf:.1f} s; "
          f"total {dt_png + dt_pf:.1f} s  (FID {fid_pf:.4f})")
    print(f"speed-up end to end: {(dt_png + dt_pf) / dt_ours:.2f}x; FID relative difference "
          f"{abs(fid_ours - fid_pf) / abs(fid_pf):.2e}")


if __name__ == "__main__":
    main()
