"""How far bfloat16 Inception (--fid-precision bfloat16) moves FID: the same images scored in float32
and in bfloat16, each against real statistics of the same precision, on disjoint sample sets.

    python -m analysis.fid_precision --real-root cifar10-jpeg/train --fake-root cifar10-jpeg/test \\
        --n 2000 5000 --sets 3 1 --csv results/fid_precision.csv

At each --n (paired with its --sets) the real statistics are those of evaluate.py's reference draw at
that count (the first n of its seed-0 permutation of --real-root), and the sample sets consecutive,
disjoint slices of n images of a seeded permutation of --fake-root (the sets of one n never overlap;
those of two n may). Every image's features are computed once per precision. rel_diff is
(fid_bfloat16 - fid_float32) / fid_float32. Rows merge into --csv by (n, sample_set, cpu).
"""
import os
import sys

if not __package__:  # run as a path (python analysis/fid_precision.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import pandas as pd

from minkgan import data
from minkgan import inception
from minkgan import precision
from minkgan.metrics import frechet_distance, statistics
from minkgan.utils import OneLineParser, UserError, check_merge_target, merge_csv, run_main

KEY = ["n", "sample_set", "cpu"]


def features(images, fid_weights, batch_size):
    """{precision: the features of images} for float32 and bfloat16 Inception."""
    out = {}
    for name in precision.PRECISIONS:
        print(f"{len(images)} images through {name} Inception", flush=True)
        out[name] = inception.InceptionFeatures(fid_weights, "cpu", batch_size, precision=name)(images)
    return out


def fid_rows(real, fake, plan):
    """One row per (n, sample set): both precisions' FIDs of the set against the first n real features."""
    rows = []
    for n, sets in plan:
        reference = {p: statistics(real[p][:n]) for p in precision.PRECISIONS}
        for k in range(sets):
            fids = {p: frechet_distance(*statistics(fake[p][k * n:(k + 1) * n]), *reference[p])
                    for p in precision.PRECISIONS}
            rows.append({"n": n, "sample_set": k, "fid_float32": fids["float32"], "fid_bfloat16": fids["bfloat16"],
                         "rel_diff": (fids["bfloat16"] - fids["float32"]) / fids["float32"], **precision.cpu_row()})
            print(f"n {n}, set {k}: FID {fids['float32']:.4f} (float32), {fids['bfloat16']:.4f} (bfloat16), "
                  f"relative difference {rows[-1]['rel_diff']:+.2e}", flush=True)
    return rows


def drawn(images, count, seed):
    """The first `count` images of evaluate.py's seeded permutation."""
    if count > len(images):
        raise UserError(f"{count} images needed, the folder holds {len(images)}; lower --n or --sets")
    return images[inception._permutation(len(images), seed)[:count]]


def main(argv=None):
    ap = OneLineParser(prog="python -m analysis.fid_precision", description=__doc__.splitlines()[0])
    ap.add_argument("--real-root", required=True, help="folder of the real images (evaluate.py's reference draw)")
    ap.add_argument("--fake-root", required=True, help="folder of the images scored (e.g. the test images)")
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000], help="images per set and per real statistics")
    ap.add_argument("--sets", type=int, nargs="+", default=[3, 1], help="disjoint sample sets at each --n")
    ap.add_argument("--seed", type=int, default=1, help="seed of the permutation the sample sets are cut from")
    ap.add_argument("--fid-weights", default=None, help="pytorch-fid's Inception weights (default: torch hub's cache)")
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--csv", default=None, help="merge the rows here")
    args = ap.parse_args(argv)
    if len(args.n) != len(args.sets) or min(args.n) < 2 or min(args.sets) < 1:
        raise UserError("--n and --sets pair up: as many of each, every n at least 2 and every count at least 1")
    if args.csv:
        check_merge_target(args.csv, KEY, "--csv")
    plan = list(zip(args.n, args.sets))
    real_images = drawn(data.load_images("folder", args.real_root), max(args.n), 0)
    fake_images = drawn(data.load_images("folder", args.fake_root), max(n * s for n, s in plan), args.seed)
    note = precision.emulated_note()
    if note:
        print(note)
    rows = fid_rows(features(real_images, args.fid_weights, args.batch_size),
                    features(fake_images, args.fid_weights, args.batch_size), plan)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(f"largest |rel_diff|: {np.abs(table['rel_diff']).max():.2e}")
    if args.csv:
        merge_csv(args.csv, table, KEY)
        print(f"merged into {args.csv}")
    return 0


if __name__ == "__main__":
    run_main(main)
