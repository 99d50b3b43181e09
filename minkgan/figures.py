"""The paper's figures from a folder of runs (e.g. a sweep of ablate_p.py), for anyone's runs.

    python -m analysis.figures runs/sweep-ring8 --out results/figures --prefix ring8-

Writes <prefix>grad_norm_d.png (the paper's Figure 1), <prefix>losses.png (Figures 2-3),
<prefix>samples.png (Figures 4-5: the last sample of seed 0 of each loss side by side),
<prefix>regime.png (D's largest |logit| and the share of its clipped parameters at the bound:
whether the losses differ at all, see analysis/alignment.py), <prefix>eval_curves.png (FID, or modes captured for 2-D data, over training) and
<prefix>fid_vs_p.png or modes_vs_p.png (final FID or modes against p, mean and std over seeds).
Curves are means over seeds at each logged step.
"""
import argparse
import glob
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import losses  # noqa: E402
from minkgan import runs as runs_csv  # noqa: E402
from minkgan.settings import ADAM_EPS  # noqa: E402
from minkgan.utils import OneLineParser, UserError, atomic_save_figure, check_writable_folder, read_json  # noqa: E402


def label(cfg):
    """The loss, its p, and n_critic and Adam's eps where they are not the defaults (WGAN with 1 critic
    step is another run)."""
    name = f"minkowski p={cfg['p']:g}" if cfg["loss"] == "minkowski" else cfg["loss"]
    n_critic = cfg.get("n_critic", losses.default_n_critic(cfg["loss"]))
    name += f" n_critic={n_critic}" if n_critic != losses.default_n_critic(cfg["loss"]) else ""
    eps = cfg.get("adam_eps", ADAM_EPS)
    return name + (f" eps={eps:g}" if eps != ADAM_EPS else "")


def load_runs(runs_dir):
    """[(config, metrics, eval rows or None, run dir)] of every run directory with metrics."""
    runs = []
    for run_dir in sorted(glob.glob(os.path.join(runs_dir, "*"))):
        config, metrics = os.path.join(run_dir, "config.json"), os.path.join(run_dir, "metrics.csv")
        cfg = read_json(config)
        if cfg is None or not os.path.exists(metrics):
            continue
        evals = os.path.join(run_dir, "eval.csv")
        runs.append((cfg, runs_csv.read_log(metrics, torn_tail="drop"),  # a live run may be mid-append
                     runs_csv.read_log(evals, torn_tail="drop") if os.path.exists(evals) else None, run_dir))
    if not runs:
        raise UserError(f"no run directories with metrics.csv under {runs_dir}; pass the folder that holds the runs")
    return runs


def by_label(runs, frame_index):
    """{label: mean over seeds of the frames (metrics or evals), indexed by step}."""
    groups = {}
    for run in runs:
        frame = run[frame_index]
        if frame is not None and len(frame):
            groups.setdefault(label(run[0]), []).append(frame.set_index("step"))
    return {k: pd.concat(v).groupby(level=0).mean(numeric_only=True) for k, v in sorted(groups.items(), key=order)}


def order(item):
    """Baselines first, then Minkowski by p."""
    name = item[0]
    return (1, float(name.split("=")[1].split()[0])) if name.startswith("minkowski") else (0, name)


def line_style(name, curves):
    """Minkowski curves shaded by p (viridis, solid); baselines in distinct colours, dashed."""
    minkowski = [n for n in curves if n.startswith("minkowski")]
    if name in minkowski:
        return {"color": plt.cm.viridis(minkowski.index(name) / max(1, len(minkowski) - 1) * 0.9)}
    baselines = [n for n in curves if n not in minkowski]
    return {"color": plt.cm.tab10(baselines.index(name) % 10), "ls": "--"}


def save_figure(fig, path):
    """Lay out, write atomically (creating the folder) and close: every figure of the repository ends here."""
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def plot_lines(curves, columns, titles, path, logy=False):
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 4), squeeze=False)
    for ax, column, title in zip(axes[0], columns, titles):
        for name, frame in curves.items():
            if column in frame:
                ax.plot(frame.index, frame[column], label=name, lw=1.2, **line_style(name, curves))
        ax.set(xlabel="generator step", title=title, yscale="log" if logy else "linear")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def plot_samples(runs, path):
    """The last sample image of seed 0 (or the lowest seed) of each loss, side by side; False (and
    nothing drawn) where no run has samples, as in the run logs that ablate_p.py --collect keeps."""
    picks = {}
    for cfg, _, _, run_dir in sorted(runs, key=lambda r: r[0]["seed"]):
        samples = sorted(glob.glob(os.path.join(run_dir, "samples", "*.png")))
        if samples:
            picks.setdefault(label(cfg), samples[-1])
    if not picks:
        return False
    picks = dict(sorted(picks.items(), key=order))
    cols = min(4, len(picks))
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, sample) in zip(axes.flat, picks.items()):
        ax.imshow(plt.imread(sample))
        ax.set_title(name, fontsize=9)
    save_figure(fig, path)
    return True


def plot_metric_vs_p(runs, metric, path):
    rows = []
    for cfg, _, evals, _ in runs:
        if cfg["loss"] == "minkowski" and evals is not None and metric in evals:
            rows.append({"p": cfg["p"], metric: evals[metric].iloc[-1]})
    if not rows:
        return False
    stats = pd.DataFrame(rows).groupby("p")[metric].agg(["mean", "std"]).fillna(0)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3)
    ax.set(xlabel="p", ylabel=f"final {metric}", title=f"Minkowski loss: final {metric} against p")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return True


def make_figures(runs_dir, out, prefix=""):
    """Write every figure for the runs under runs_dir into out; return the paths written."""
    runs = load_runs(runs_dir)
    path = lambda name: os.path.join(out, prefix + name)  # noqa: E731
    metrics = by_label(runs, 1)
    plot_lines(metrics, ["grad_norm_d"], ["gradient norm of D's loss"], path("grad_norm_d.png"), logy=True)
    plot_lines(metrics, ["loss_d", "loss_g"], ["D loss", "G loss"], path("losses.png"))
    written = [path("grad_norm_d.png"), path("losses.png")]
    if plot_samples(runs, path("samples.png")):
        written.append(path("samples.png"))
    if any("logit_absmax" in frame for frame in metrics.values()):  # runs from before these columns lack them
        plot_lines(metrics, ["logit_absmax", "clip_share"], ["largest |logit| of D (batch)",
                   "share of clipped D parameters at the bound"], path("regime.png"))
        written.append(path("regime.png"))
    evals = by_label(runs, 2)
    metric = "fid" if any("fid" in e for e in evals.values()) else "modes"
    if evals:
        plot_lines(evals, [metric], [f"{metric} over training"], path("eval_curves.png"))
        written.append(path("eval_curves.png"))
    if plot_metric_vs_p(runs, metric, path(f"{metric}_vs_p.png")):
        written.append(path(f"{metric}_vs_p.png"))
    return written


def main(argv=None):
    ap = OneLineParser(prog="python -m analysis.figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="folder holding run directories")
    ap.add_argument("--out", default=os.path.join("runs", "figures"),
                    help="where the figures go (default runs/figures; the committed ones are in results/figures)")
    ap.add_argument("--prefix", default="", help="prefix of the file names, e.g. ring8-")
    args = ap.parse_args(argv)
    check_writable_folder(args.out, "--out")
    for path in make_figures(args.runs, args.out, args.prefix):
        print(f"wrote {path}")

