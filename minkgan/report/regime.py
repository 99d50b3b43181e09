"""The blocks of docs/clipped-regime.md: each loss's gradients against WGAN's (alignment) and G's trajectories."""
import numpy as np

from minkgan.report.text import markdown_table, sig, spread_median, value_range
from minkgan.report.facts import VERDICT_EPOCHS, alignment_facts, read_csv
from minkgan.report.sentences import say

PAGE = "regime"  # its sentences: minkgan/report/sentences/regime.txt


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
            + "\n\n" + say(PAGE, "alignment_note"))


def alignment_summary(results):
    f = alignment_facts(results)
    return "\n".join([
        say(PAGE, "early", early=f["early"].min()),
        say(PAGE, "first_epochs", **{k: value_range(f[k]) for k in ("p4_1ep", "p8_1ep", "p4_2ep", "p8_2ep")}),
        say(PAGE, "wgan5", p8_wgan5=value_range(f["p8_wgan5"])),
        say(PAGE, "weights_only", logit=value_range(f["weights_logit"], 1), cosines=value_range(f["weights"])),
        *h4_alignment(f["h4"])])


def h4_alignment(h4):
    """H4's runs (weights-only clipping, 2 epochs) at their kept states: do the losses still
    differ once training has gone on, and does a sigmoid that saturates leave a loss no gradient?"""
    lines = []
    for in_wgan_runs, g in h4.groupby(h4["run_loss"] == "wgan"):
        runs = g.groupby(["run", "total_steps"]).ngroups
        where = say(PAGE, "h4_where_wgan" if in_wgan_runs else "h4_where_others", runs=runs, plural="s" * (runs > 1))
        lines.append(say(PAGE, "h4", where=where, logit=value_range(g["logit_abs_max"], 1), cosines=value_range(g["cos_d"]),
                         median=spread_median(g["cos_d"]), saturated=int((g["ratio_d"] < 1e-6).sum()), pairs=len(g)))
    return lines


def alignment_horizon(results):
    """Along the horizon (analysis/alignment.py at the kept states of the runs trained past the verdict's 2
    epochs): do p = 4's and p = 8's D gradients keep turning away from WGAN's as training goes on?"""
    a = read_csv(results, "alignment.csv")
    a = a[a["clip_params"] == "all"].assign(epoch=a["epoch"].round(1))
    a = a[a.groupby(["run", "total_steps"])["epoch"].transform("max") > VERDICT_EPOCHS]
    if not len(a):
        return say(PAGE, "horizon_none")
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
            + "\n\n" + say(PAGE, "horizon_note", epochs=VERDICT_EPOCHS, falls=int((ends < 0).sum()), runs=len(ends),
                             changes=", ".join(f"{e:+.3f}" for e in ends)))


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
            + "\n\n" + say(PAGE, "trajectories_note", dataset=r["dataset"], arch=r["arch"], batch_size=r["batch_size"],
                             clip=r["clip"], clipped=say(PAGE, "clipped_all" if r["clip_params"] == "all" else "clipped_weights"),
                             seed=r["seed"], hardware=r["hardware"], followers_low=followers.min().min(),
                             followers_high=followers.max().max(), nudged_low=nudged.min(), nudged_high=nudged.max(),
                             p8_further=(late["minkowski-p8"] - nudged).mean(), seed_low=seed.min(), seed_high=seed.max()))
