"""The blocks of the 2-D mixtures (modes, H5) and of the higher moments (H7), on CIFAR-10 and the mixtures."""
import numpy as np

from minkgan import contrasts, data
from minkgan.report.text import cpu, interval, markdown_table, mean_sd, not_yet, num, signed, span
from minkgan.report.facts import (UNINFORMATIVE_HQ_PCT, arm_label, arms, read_csv, seed_counts, toy_arms, toy_contrast,
    toy_row, toy_rows)


def toy(results, clip=None):
    """The 2-D benchmarks (results/toy_table.csv), one reading of the clipping (toy_rows)."""
    t = toy_rows(results, clip)
    if not len(t):
        return f"Not yet measured: `results/toy_table.csv` has no 2-D runs with clip {clip}."
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
        budgets.append(f"{d}: {seeds} seeds, {r['steps'].max()} G steps ({r['epochs'].min():g} epochs; "
                       f"{r['epochs'].max():g} with 5 critic steps), metrics of {r['samples'].max()} samples at the last "
                       f"step, CPU {', '.join(cpu(d) for d in r['device'].unique())}")
    return (markdown_table(header, rows) + "\n\nMean ± SD over the seeds; reverse KL is the mean over the seeds that "
            "captured a mode (\"k of n\" where some did not). Budget: " + "; ".join(budgets) + ".")


def clipped_toys(results, clip=0.01):
    """Claim (d) on the 2-D mixtures with every D parameter clipped (H5): uninformative when every
    arm's mean high-quality share is below 5 % on both datasets, else p = 4 − GAN in modes per
    dataset, "supported" only for an interval above 0 and "contradicted" below."""
    t = toy_rows(results, clip)
    t = t[t["n_critic"] == 1]  # H5's arms; WGAN's 5-critic-step rows are the default reading's
    if not len(t[t["loss"] == "gan"]):
        return "H5 (every D parameter clipped to 0.01) is not yet run."
    seeds = seed_counts(t)
    best = t["final_hq_pct_mean"].max()
    if best < UNINFORMATIVE_HQ_PCT:
        return (f"With every D parameter clipped to 0.01 (H5, {seeds} seeds an arm) no arm's mean high-quality share "
                f"reaches {UNINFORMATIVE_HQ_PCT:g} % (at most {best:.1f} %): no arm, WGAN's included, learns a mixture (the "
                "clip value is mis-scaled for that MLP), so the clipped 2-D benchmark is uninformative, as pre-registered.")
    parts = []
    for d in ("ring8", "grid25"):
        c = toy_contrast(results, d, clip=clip)
        if c is not None:
            rule = "supported" if c["low"] > 0 else "contradicted" if c["high"] < 0 else "inconclusive"
            parts.append(f"{d} {signed(c['diff'])} ({interval(c['low'], c['high'])}, {c['n']} seeds: {rule})")
    return "With every D parameter clipped to 0.01 (H5), modes p = 4 − GAN: " + "; ".join(parts) + "."


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
        return not_yet("moments.csv", "analysis/moments.py on the campaign's final checkpoints")
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
    return (markdown_table(header, rows) + f"\n\nMean ± SD over runs of the mean over coordinates of |moment of the "
            f"generated images − that of the real images|, {int(m['n'].max())} generated (the evaluation's noise) against "
            f"{int(m['n'].max())} real train images (the FID's reference set), at each run's final checkpoint "
            f"({epochs} epochs); the floor is the next {int(m['n'].max())} train images against the same reference. "
            f"CPU {', '.join(sorted(cpu(d) for d in m['device'].dropna().unique()))}.")


def h7_test(rows, space, compared, digits):
    """H7's rule in one space: ("supported" when p = 4's gap is below each baseline's (compared: p = 4
    first, then the baselines, name -> (loss, p, n_critic)) with a Welch interval entirely below 0, else
    "not supported"; the differences with their intervals)."""
    (_, p4_arm), *baselines = compared.items()
    p4, found = moment_gaps(rows, space, p4_arm), []
    for _, arm in baselines:
        w = contrasts.welch(p4, moment_gaps(rows, space, arm))
        found.append((f"p = 4 − {arm_label(*arm)} {signed(w['mean_diff'], digits)} "
                      f"({interval(w['ci_low'], w['ci_high'], digits)})", w["ci_high"] < 0))
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
        return "untested: `analysis/moments.py` has not been run on committed checkpoints."
    if word == "not decidable":
        return (f"not decidable: H7's Welch intervals need two runs an arm, and the checkpoints that survived give "
                f"p = 4 {found['minkowski-p4']}, GAN {found['gan']}, WGAN {found['wgan']} (the single runs' gaps are in "
                "the table).")
    return "; ".join(f"{label}, kurtosis gap: {rule}; {text}" for label, rule, text in found) + "."


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
        return not_yet("moments.csv", f"analysis/moments.py on the 2-D runs with every D parameter clipped to {clip:g}")
    rows = []
    for key, runs in arms(m[m["space"] == "coordinates"]):
        rows.append([arm_label(*key), *(mean_sd(runs[runs["dataset"] == d]["kurtosis_gap"], 2) for d in data.TOY_DATASETS),
                     span(runs["seed"])])
    floor = m[m["space"] == "coordinates_real_vs_real"].groupby("dataset")["kurtosis_gap"].mean()
    rows.append(["real against real (floor)", *(num(floor.get(d), 2) for d in data.TOY_DATASETS), "–"])
    return (markdown_table(["arm", *(f"{d}: kurtosis gap" for d in data.TOY_DATASETS), "seeds"], rows)
            + f"\n\nMean ± SD over seeds of the mean over the 2 coordinates of |excess kurtosis of the generated points − "
            f"that of the mixture's|, {int(m['n'].max())} points a side, at each run's last step (H5's runs: every D "
            f"parameter clipped to {clip:g}, 1 critic step). CPU {', '.join(sorted(cpu(d) for d in m['device'].dropna().unique()))}.")


def toy_higher_moments(results, clip=0.01):
    """H7's rule on the 2-D mixtures, per dataset: p = 4's kurtosis gap below GAN's and WGAN's, each
    Welch interval entirely below 0."""
    m = toy_moment_rows(results, clip)
    if m is None:
        return "untested on the 2-D mixtures (`analysis/moments.py` has not been run on committed 2-D runs)."
    parts = []
    for d in data.TOY_DATASETS:
        rows = m[m["dataset"] == d]
        if len(rows):
            seeds = len(moment_gaps(rows, "coordinates", TOY_MOMENT_ARMS["minkowski-p4"]))
            parts.append(f"{d} ({int(rows['total_steps'].max())} steps, {seeds} seeds) "
                         + h7_rule(rows, "coordinates", TOY_MOMENT_ARMS, 2))
    learned = toy_rows(results, clip)["final_hq_pct_mean"].max() >= UNINFORMATIVE_HQ_PCT
    reading = "" if learned else (" The rule's words are moot there: no arm learned a mixture (H5), so the 2-D part "
                                  "of H7 is uninformative.")
    return (f"On the 2-D mixtures with every D parameter clipped to {clip:g} (H5's runs), the per-coordinate kurtosis "
            "gap: " + "; ".join(parts) + "." + reading)
