"""The paper's higher-moments claim: does p = 4 bring the skewness and kurtosis of the generated
data closer to the real data's? Per coordinate (pixel, Inception pool feature, or 2-D coordinate),
from a run's checkpoint (metrics.moment_gaps).

    python -m analysis.moments RUNS/folder/minkowski-p4-seed2 RUNS/folder/gan-seed2 --csv results/moments.csv
    python -m analysis.moments RUNS/ring8/*                                  # 2-D runs: per coordinate

Images: n generated images (the evaluation's fixed noise) against the n reference train images
of the FID (the same seeded draw), per pixel (3072 values of uint8, as saved) and per Inception
feature (the real features come from the FID's cache; computed and cached there when missing).
`real_vs_real` rows give the floor at that n: the next n train images against the reference set
(pixels, and 2-D points from another seed's draw). 2-D runs: n generated points against n points
of the mixture.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/moments.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse

import pandas as pd
import torch

from minkgan import data
from minkgan import evaluation as evaluate
from minkgan import inception
from minkgan import rundir
from minkgan.metrics import moment_gaps
from minkgan.utils import OneLineParser, UserError, check_merge_target, check_writable_folder, merge_csv, run_main

KEY = ["run", "checkpoint", "space", "n"]


def image_rows(G, cfg, n, extractor, stats_dir):
    """Pixel and Inception-feature gaps of one image run, and the pixels' real-against-real floor."""
    images = data.load_images(cfg["dataset"], cfg["data_root"], "train", download=False)
    if 2 * n > len(images):
        raise UserError(f"--n {n}: the floor needs 2n = {2 * n} train images, {cfg['dataset']} has {len(images)}")
    order = inception._permutation(len(images), 0)
    real, other = images[order[:n]], images[order[n:2 * n]]
    fake = data.to_uint8(evaluate.generate(G, cfg["z_dim"], n, seed=evaluate.EVAL_NOISE_SEED))
    _, _, real_features = inception.real_statistics(extractor, cfg["dataset"], cfg["data_root"], "train", n, 0, stats_dir)
    pixels = lambda x: x.reshape(len(x), -1).numpy()  # noqa: E731
    return [("pixels", moment_gaps(pixels(fake), pixels(real))),
            ("inception", moment_gaps(extractor(fake), real_features[:n])),
            ("pixels_real_vs_real", moment_gaps(pixels(other), pixels(real)))]


def toy_rows(G, cfg, n):
    """Per-coordinate gaps of a 2-D run's points against the mixture's, and the floor of two draws."""
    fake = evaluate.generate(G, cfg["z_dim"], n, seed=evaluate.EVAL_NOISE_SEED).numpy()
    real = data.sample_toy(cfg["dataset"], n, torch.Generator().manual_seed(0)).numpy()
    other = data.sample_toy(cfg["dataset"], n, torch.Generator().manual_seed(1)).numpy()
    return [("coordinates", moment_gaps(fake, real)), ("coordinates_real_vs_real", moment_gaps(other, real))]


def build_parser():
    ap = OneLineParser(prog="python -m analysis.moments", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--checkpoint", default=None, help="a checkpoint name in each run's checkpoints/ (default last.pt)")
    ap.add_argument("--n", type=int, default=5000, help="samples per side")
    ap.add_argument("--fid-weights", default=None, help="pytorch-fid's Inception weights, for offline use")
    ap.add_argument("--stats-dir", default=inception.DEFAULT_STATS_DIR, help="the FID's cache of real features")
    ap.add_argument("--csv", default=None, help="merge the rows into this CSV (by run, checkpoint, space, n)")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.n < 3:
        raise UserError(f"--n must be at least 3, got {args.n}")
    if args.csv:
        check_merge_target(args.csv, KEY, "--csv")
    if any(rundir.read_config(r)["dataset"] not in data.TOY_DATASETS for r in args.runs if os.path.isdir(r)):
        check_writable_folder(args.stats_dir, "--stats-dir")  # an image run caches its real features there
    extractor, rows = None, []
    for run_dir in args.runs:
        G, cfg, info = evaluate.load_run(run_dir, args.checkpoint)
        if cfg["dataset"] in data.TOY_DATASETS:
            gaps = toy_rows(G, cfg, args.n)
        else:
            extractor = extractor or inception.InceptionFeatures(args.fid_weights)
            gaps = image_rows(G, cfg, args.n, extractor, args.stats_dir)
        base = {"run": f"{cfg['dataset']}/{os.path.basename(os.path.normpath(run_dir))}", "dataset": cfg["dataset"],
                "loss": cfg["loss"], "p": cfg["p"] if cfg["loss"] == "minkowski" else None,
                "n_critic": cfg.get("n_critic"), **rundir.reading(cfg), "seed": cfg["seed"], "status": "completed",
                "epochs": cfg.get("epochs"), "total_steps": cfg.get("total_steps"), "step": info["step"],
                "checkpoint": info["checkpoint"], "n": args.n, "device": cfg.get("hardware")}
        rows += [{**base, "space": space, **g} for space, g in gaps]
    table = pd.DataFrame(rows)
    print(table[["run", "space", "skew_gap", "kurtosis_gap", "real_abs_kurtosis", "coordinates"]].to_string(
        index=False, float_format="%.4g"))
    if args.csv:
        merge_csv(args.csv, table, KEY)
    return 0


if __name__ == "__main__":
    run_main(main)
