"""The blocks of docs/clipped-regime.md: each loss's gradients against WGAN's (alignment) and G's trajectories."""
import numpy as np

from minkgan.report.text import markdown_table, sig, spread_median, value_range
from minkgan.report.facts import VERDICT_EPOCHS, alignment_facts, read_csv


def alignment_state(rows):
    """One state's row of the alignment table: its logits, and each loss against WGAN."""
    def by(loss, p=None):
        return rows[(rows["loss"] == loss) & ((rows["p"] == p) if p else rows["p"].isna())].iloc[0]
    others = rows[rows["loss"] != "lsgan"]
    compared = (("gan",), ("hinge",), ("minkowski", 1), ("minkowski", 4), ("minkowski", 8))
    return [f"{by('wgan')['logit_abs_max']:.3f}",
            ", ".join(f"{by(*k)['cos_d']:.4f}" for k in compared),
            ", ".join(sig(by("minkowski", p)["ratio_d"], 2) for p in (1, 4, 8)),
            f"{others['cos_g'].min():.4f} ({by('lsgan')['cos_g']:.2f})",
            f"{others['cos_adam_d'].min():.4f} ({by('lsgan')['cos_adam_d']:.2f})"]


def alignment(results):
    """analysis/alignment.py's comparison (results/alignment.csv): at each kept state, each loss's D
    gradient, G gradient and Adam update against WGAN's (n_critic 1)."""
    a = read_csv(results, "alignment.csv")
    rows = []
    for (clip_params, total, run, step), state in a.groupby(["clip_params", "total_steps", "run", "step"], sort=True):
        rows.append([f"{run}, {total}-step run", clip_params, f"{step} ({state['epoch'].iloc[0]:g})",
                     *alignment_state(state)])
    predicted = ", ".join(sig(a[(a["loss"] == "minkowski") & (a["p"] == p)]["pred_ratio_d"].iloc[0], 2) for p in (1, 4, 8))
    return (markdown_table(["run", "clipped", "step (epochs)", "largest \\|logit\\|",
                            "cos D gradient to WGAN's: GAN, hinge, p = 1, 4, 8",
                            f"D gradient norm ratio, p = 1, 4, 8 (predicted {predicted})",
                            "cos G gradient: smallest (LSGAN)", "cos Adam D update: smallest (LSGAN)"], rows)
            + "\n\nEvery loss compared on one batch of 64 from the same state (seed 0), DCGAN on CIFAR-10 as JPEG files, "
            "clip 0.01; \"smallest\" is over every loss but LSGAN, whose value follows. `alignment.csv` records no "
            "machine: a sweep run's row in `results/runs.csv` names the CPU it trained on; the 300-step runs have no row.")


def alignment_summary(results):
    f = alignment_facts(results)
    return "\n".join([
        f"- With every D parameter clipped, at steps 100 and 300 every loss's D gradient (but LSGAN's) has a cosine of "
        f"at least {f['early'].min():.3f} to WGAN's.",
        f"- At the end of the first epoch (the states of the GAN, WGAN with 1 critic step, p = 1 and p = 4 runs) the "
        f"cosine of p = 4 is {value_range(f['p4_1ep'])} and that of p = 8 {value_range(f['p8_1ep'])}; at the end of the "
        f"second {value_range(f['p4_2ep'])} and {value_range(f['p8_2ep'])}.",
        f"- At the states of the WGAN run with 5 critic steps, whose logits are the largest of all, p = 8 keeps "
        f"{value_range(f['p8_wgan5'])}.",
        f"- With only conv and linear weights clipped, D's largest |logit| is {value_range(f['weights_logit'], 1)} at "
        f"steps 100 and 300, and the cosines of GAN, NS-GAN and p = 1-8 fall to {value_range(f['weights'])}.",
        *h4_alignment(f["h4"])])


def h4_alignment(h4):
    """H4's runs (weights-only clipping, 2 epochs) at their kept states: do the losses still
    differ once training has gone on, and does a sigmoid that saturates leave a loss no gradient?"""
    lines = []
    for in_wgan_runs, g in h4.groupby(h4["run_loss"] == "wgan"):
        runs = g.groupby(["run", "total_steps"]).ngroups
        where = (f"At the states of H4's WGAN run{'s' * (runs > 1)} (conv and linear weights clipped, 5 critic steps)"
                 if in_wgan_runs else
                 f"In H4's GAN and Minkowski runs (conv and linear weights clipped, 2 epochs; "
                 f"{runs} run{'s' * (runs > 1)}, their states at the end of epochs 1 and 2)")
        lines.append(f"- {where} D's largest |logit| is {value_range(g['logit_abs_max'], 1)}; the cosines of GAN, NS-GAN "
                     f"and p = 1-8 to WGAN's D gradient are {value_range(g['cos_d'])}{spread_median(g['cos_d'])}, "
                     f"and in {int((g['ratio_d'] < 1e-6).sum())} of {len(g)} (loss, state) pairs the loss's D gradient "
                     f"is below 1e-6 of WGAN's: a saturated sigmoid leaves that loss no gradient.")
    return lines


def alignment_horizon(results):
    """Along the horizon (analysis/alignment.py at the kept states of the runs trained past the verdict's 2
    epochs): do p = 4's and p = 8's D gradients keep turning away from WGAN's as training goes on?"""
    a = read_csv(results, "alignment.csv")
    a = a[a["clip_params"] == "all"].assign(epoch=a["epoch"].round(1))
    a = a[a.groupby(["run", "total_steps"])["epoch"].transform("max") > VERDICT_EPOCHS]
    if not len(a):
        return "Not yet measured: `results/alignment.csv` has no state of a run trained past 2 epochs."
    rows, ends = [], []
    for (run, total), g in a.groupby(["run", "total_steps"], sort=False):
        cos = {k: g[(g["loss"] == k[0]) & ((g["p"] == k[1]) if k[1] else g["p"].isna())].set_index("epoch")["cos_d"]
               for k in (("minkowski", 4.0), ("minkowski", 8.0), ("gan", None))}
        for epoch, state in g.groupby("epoch"):
            rows.append([f"{run}, {total}-step run", f"{epoch:g}", f"{state['logit_abs_max'].iloc[0]:.3f}",
                         *(f"{c[epoch]:.4f}" for c in cos.values())])
        p8 = cos[("minkowski", 8.0)]
        ends.append(p8.iloc[-1] - p8[p8.index >= VERDICT_EPOCHS].iloc[0])
    ends = np.array(ends)
    return (markdown_table(["run", "epoch", "largest \\|logit\\|", "cos D gradient to WGAN's: p = 4", "p = 8", "GAN"], rows)
            + f"\n\nFrom epoch {VERDICT_EPOCHS} to the last kept state p = 8's cosine falls in {int((ends < 0).sum())} of "
            f"{len(ends)} runs (changes {', '.join(f'{e:+.3f}' for e in ends)}); one batch of 64 a state, seed 0, every D "
            "parameter clipped to 0.01.")


TRAJECTORY_STEPS = (25, 50, 100, 200, 400)


def trajectories(results):
    """analysis/trajectories.py's lockstep runs (results/trajectories.csv): each G's distance to WGAN's."""
    t = read_csv(results, "trajectories.csv")
    wide = t.pivot(index="step", columns="member", values="rms_distance")
    members = [m for m in t["member"].unique() if m != "wgan"]
    rows = [[s, *(f"{wide.loc[s, m]:.3f}" for m in members)] for s in TRAJECTORY_STEPS if s in wide.index]
    r = t.iloc[0]
    late = wide[wide.index >= 100]
    followers = late[[m for m in members if m in ("gan", "minkowski-p1", "minkowski-p4")]]
    nudged = late[[m for m in members if "nudged" in m][0]]
    seed = late[[m for m in members if "seed" in m][0]]
    return (markdown_table(["step", *members], rows)
            + f"\n\nRMS distance of each G's images on 256 fixed noise vectors to WGAN's G (pixels in [-1, 1]): "
            f"{r['dataset']} (CIFAR-10 as JPEG files), {r['arch']}, batch {r['batch_size']}, clip {r['clip']:g} on "
            f"{'every D parameter' if r['clip_params'] == 'all' else 'conv and linear weights'}, seed {r['seed']}, "
            f"one initialisation and the same batches for every loss, n_critic 1; CPU: {r['hardware']}. From step 100 on, "
            f"GAN, p = 1 and p = 4 lie {followers.min().min():.3f}–{followers.max().max():.3f} from WGAN, the nudged WGAN "
            f"{nudged.min():.3f}–{nudged.max():.3f}; p = 8 is on average {(late['minkowski-p8'] - nudged).mean():.3f} further "
            f"than the nudged WGAN, and WGAN with another seed {seed.min():.3f}–{seed.max():.3f} away.")
