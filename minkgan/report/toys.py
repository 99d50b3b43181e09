"""The blocks of the 2-D mixtures (modes, H5) and of the higher moments (H7), on CIFAR-10 and the mixtures."""
import numpy as np

from minkgan import contrasts, data
from minkgan.report.text import cpu, interval, markdown_table, mean_sd, not_yet, num, signed, span
from minkgan.report.facts import (UNINFORMATIVE_HQ_PCT, arm_label, arms, read_csv, seed_counts, toy_arms, toy_contrast,
    toy_row, toy_rows)
from minkgan.report.sentences import say

PAGE = "toys"  # its sentences: minkgan/report/sentences/toys.txt


def toy(results, clip=None):
    """The 2-D benchmarks (results/toy_table.csv), one reading of the clipping (toy_rows)."""
    t = toy_rows(results, clip)
    if not len(t):
        return say(PAGE, "toy_none", clip=clip)
    datasets = sorted(t["dataset"].unique(), reverse=True)  # ring8, then grid25
    header, rows = ["loss"], []
    for d in datasets:
        header += [f"{d} modes", "high-quality %", "reverse KL"]
    for key in toy_arms(t):
        row = [arm_label(*key)]
        for d in datasets:
            r = toy_row(t, d, *key)
            if r is None:
                row += ["–"] * 3
                continue
            rkl = num(r["final_rkl_mean"], 2) + (f" ({r['final_rkl_n']} of {r['final_modes_n']})"
                                                  if r["final_rkl_n"] < r["final_modes_n"] else "")
            row += [f"{r['final_modes_mean']:.1f} ± {r['final_modes_std']:.1f}",
                    f"{r['final_hq_pct_mean']:.0f} ± {r['final_hq_pct_std']:.0f}", rkl if r["final_rkl_n"] else "–"]
        rows.append(row)
    budgets = []
    for d in datasets:
        r = t[t["dataset"] == d]
        seeds = seed_counts(r)
        budgets.append(say(PAGE, "toy_budget", dataset=d, seeds=seeds, steps=r["steps"].max(), epochs=r["epochs"].min(),
                           epochs_5=r["epochs"].max(), samples=r["samples"].max(),
                           cpus=", ".join(cpu(d) for d in r["device"].unique())))
    return markdown_table(header, rows) + "\n\n" + say(PAGE, "toy_note", budgets="; ".join(budgets))


def clipped_toys(results, clip=0.01):
    """Claim (d) on the 2-D mixtures with every D parameter clipped (H5): uninformative when every
    arm's mean high-quality share is below 5 % on both datasets, else p = 4 − GAN in modes per
    dataset, "supported" only for an interval above 0 and "contradicted" below."""
    t = toy_rows(results, clip)
    t = t[t["n_critic"] == 1]  # H5's arms; WGAN's 5-critic-step rows are the default reading's
    if not len(t[t["loss"] == "gan"]):
        return say(PAGE, "h5_not_run")
    seeds = seed_counts(t)
    best = t["final_hq_pct_mean"].max()
    if best < UNINFORMATIVE_HQ_PCT:
        return say(PAGE, "h5_uninformative", seeds=seeds, threshold=UNINFORMATIVE_HQ_PCT, best=best)
    parts = []
    for d in ("ring8", "grid25"):
        c = toy_contrast(results, d, clip=clip)
        if c is not None:
            rule = "supported" if c["low"] > 0 else "contradicted" if c["high"] < 0 else "inconclusive"
            parts.append(say(PAGE, "h5_contrast", dataset=d, diff=signed(c["diff"]), interval=interval(c["low"], c["high"]),
                             n=c["n"], rule=rule))
    return say(PAGE, "h5", contrasts="; ".join(parts))


MOMENT_SPACES = {"pixels": "pixels", "inception": "Inception features"}


def moment_rows(results, epochs=2):
    """analysis/moments.py's rows (results/moments.csv) of the campaign's CIFAR-10 runs (DCGAN, every D
    parameter clipped, one budget), or None where the file is not committed yet."""
    m = read_csv(results, "moments.csv")
    if m is None:
        return None
    m = m[m["dataset"].isin(data.IMAGE_DATASETS) & (m["clip_params"] == "all") & (m["arch"] == "dcgan")
          & (m["epochs"].round() == float(epochs))]
    return m.assign(p=m["p"].where(m["loss"] == "minkowski"))


def moment_gaps(rows, space, arm, column="kurtosis_gap"):
    """The gap of each run of an arm, (loss, p, n_critic), in one space."""
    loss, p, n_critic = arm
    r = rows[(rows["space"] == space) & (rows["loss"] == loss) & (rows["n_critic"] == n_critic)
             & ((rows["p"] == p) if p else rows["p"].isna())]
    return r[column]


def moments(results, epochs=2):
    """The higher-moments table (H7): per arm, the mean absolute difference of the generated images'
    skewness and excess kurtosis to the real images', per pixel and per Inception feature."""
    m = moment_rows(results, epochs)
    if m is None or not len(m):
        return not_yet("moments.csv", say(PAGE, "moments_not_yet"))
    header, rows = ["arm", "runs (seeds)"], []
    for space in MOMENT_SPACES.values():
        header += [f"{space}: skewness gap", "kurtosis gap"]
    for key, runs in arms(m[m["space"] == "pixels"]):
        row = [arm_label(*key), f"{len(runs)} ({span(runs['seed'])})"]
        for space in MOMENT_SPACES:
            r = m[(m["space"] == space) & m["run"].isin(runs["run"])]
            row += [mean_sd(r["skew_gap"], 3), mean_sd(r["kurtosis_gap"], 3)]
        rows.append(row)
    floor = m[m["space"] == "pixels_real_vs_real"].iloc[0]
    rows.append(["real against real (floor)", "–", num(floor["skew_gap"], 3), num(floor["kurtosis_gap"], 3), "–", "–"])
    return markdown_table(header, rows) + "\n\n" + say(PAGE, "moments_note", n=int(m["n"].max()), epochs=epochs,
                                                       cpus=", ".join(sorted(cpu(d) for d in m["device"].dropna().unique())))


def h7_test(rows, space, compared, digits):
    """H7's rule in one space: ("supported" when p = 4's gap is below each baseline's (compared: p = 4
    first, then the baselines, name -> (loss, p, n_critic)) with a Welch interval entirely below 0, else
    "not supported"; the differences with their intervals)."""
    (_, p4_arm), *baselines = compared.items()
    p4, found = moment_gaps(rows, space, p4_arm), []
    for _, arm in baselines:
        w = contrasts.welch(p4, moment_gaps(rows, space, arm))
        found.append((say(PAGE, "h7_difference", baseline=arm_label(*arm), diff=signed(w["mean_diff"], digits),
                          interval=interval(w["ci_low"], w["ci_high"], digits)), w["ci_high"] < 0))
    rule = "supported" if all(below for _, below in found) else "not supported"
    return rule, ", ".join(text for text, _ in found)


def h7_rule(rows, space, compared, digits):
    return "; ".join(h7_test(rows, space, compared, digits))


H7_ARMS = ("minkowski-p4", "gan", "wgan")


def h7(results, epochs=2):
    """Claim (h) on CIFAR-10 by H7's rule, per space: (the word, [(space's label, rule, differences)] or the
    runs an arm where there are too few). "untested" without moments.csv, "not decidable" below two
    runs an arm, "supported" where both spaces support it, else "not supported"."""
    m = moment_rows(results, epochs)
    if m is None or not len(m):
        return "untested", None
    runs = {name: len(moment_gaps(m, "pixels", contrasts.ARMS[name])) for name in H7_ARMS}
    if min(runs.values()) < 2:
        return "not decidable", runs
    compared = {name: contrasts.ARMS[name] for name in H7_ARMS}
    tests = [(label, *h7_test(m, space, compared, 3)) for space, label in MOMENT_SPACES.items()]
    return ("supported" if all(rule == "supported" for _, rule, _ in tests) else "not supported"), tests


def higher_moments(results, epochs=2):
    """The verdict on the higher-moments claim by H7's rule: p = 4's kurtosis gap below GAN's and
    WGAN's, each with a Welch interval entirely below 0, per space; not decidable below two runs an arm."""
    word, found = h7(results, epochs)
    if word == "untested":
        return say(PAGE, "h7_untested")
    if word == "not decidable":
        return say(PAGE, "h7_not_decidable", p4=found["minkowski-p4"], gan=found["gan"], wgan=found["wgan"])
    return "; ".join(say(PAGE, "h7_space", space=label, rule=rule, differences=text) for label, rule, text in found) + "."


TOY_MOMENT_ARMS = {"minkowski-p4": ("minkowski", 4.0, 1), "gan": ("gan", None, 1), "wgan": ("wgan", None, 1)}


def toy_moment_rows(results, clip=0.01):
    """analysis/moments.py's rows of the 2-D runs of one reading of the clipping (H5's: every D parameter
    clipped, 1 critic step for every loss), or None where there are none."""
    m = read_csv(results, "moments.csv")
    if m is None:
        return None
    m = m[m["dataset"].isin(data.TOY_DATASETS) & np.isclose(m["clip"].fillna(0), clip) & (m["n_critic"] == 1)]
    return m.assign(p=m["p"].where(m["loss"] == "minkowski")) if len(m) else None


def toy_moments(results, clip=0.01):
    """H7 on the 2-D mixtures: per arm and dataset the per-coordinate kurtosis gap, over seeds."""
    m = toy_moment_rows(results, clip)
    if m is None:
        return not_yet("moments.csv", say(PAGE, "toy_moments_not_yet", clip=clip))
    rows = []
    for key, runs in arms(m[m["space"] == "coordinates"]):
        rows.append([arm_label(*key), *(mean_sd(runs[runs["dataset"] == d]["kurtosis_gap"], 2) for d in data.TOY_DATASETS),
                     span(runs["seed"])])
    floor = m[m["space"] == "coordinates_real_vs_real"].groupby("dataset")["kurtosis_gap"].mean()
    rows.append(["real against real (floor)", *(num(floor.get(d), 2) for d in data.TOY_DATASETS), "–"])
    return (markdown_table(["arm", *(f"{d}: kurtosis gap" for d in data.TOY_DATASETS), "seeds"], rows) + "\n\n"
            + say(PAGE, "toy_moments_note", n=int(m["n"].max()), clip=clip,
                  cpus=", ".join(sorted(cpu(d) for d in m["device"].dropna().unique()))))


def toy_higher_moments(results, clip=0.01):
    """H7's rule on the 2-D mixtures, per dataset: p = 4's kurtosis gap below GAN's and WGAN's, each
    Welch interval entirely below 0."""
    m = toy_moment_rows(results, clip)
    if m is None:
        return say(PAGE, "toy_h7_untested")
    parts = []
    for d in data.TOY_DATASETS:
        rows = m[m["dataset"] == d]
        if len(rows):
            seeds = len(moment_gaps(rows, "coordinates", TOY_MOMENT_ARMS["minkowski-p4"]))
            parts.append(say(PAGE, "toy_h7_dataset", dataset=d, steps=int(rows["total_steps"].max()), seeds=seeds,
                             rule=h7_rule(rows, "coordinates", TOY_MOMENT_ARMS, 2)))
    learned = toy_rows(results, clip)["final_hq_pct_mean"].max() >= UNINFORMATIVE_HQ_PCT
    reading = "" if learned else " " + say(PAGE, "toy_h7_moot")
    return say(PAGE, "toy_h7", clip=clip, datasets="; ".join(parts)) + reading
