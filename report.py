"""Write the results tables of README.md and docs/*.md from the committed results/.

    python report.py            # rewrite every generated block in place
    python report.py --check    # exit 1, naming each document whose blocks are stale

A generated block lies between two marker comments that carry its name and arguments:

    <!-- report:table3 epochs=2 -->
    (what report.py writes)
    <!-- /report:table3 epochs=2 -->

A rerun replaces exactly what lies between them, so the prose around a block is never touched; a
pair of markers inside a line gives an inline value. The name picks a function of BLOCKS, the
key=value words are its arguments. Every table states its budget (epochs, G steps, samples, seeds,
hardware) and every comparison its 95 % interval; a results file not committed yet
(results/contrasts.csv, results/horizon.csv) gives one line saying so. Runs of two readings of the
paper's setup (the nets, the clip, what it clips: runs.csv's arch, clip, clip_params) never share a
mean: a table shows one reading, the paper's by default, another when its arguments name it.
tests/test_docs.py fails when a committed document differs from what this script writes.
"""
import argparse
import glob
import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
from scipy import stats as sp

from minkgan import paths
from minkgan import contrasts
from minkgan import data
from minkgan import derivations
import losses
from minkgan import p_effect, stats, verdicts
from minkgan import training as train
from minkgan.evaluation import TABLE2_LOSSES
from minkgan.utils import OneLineParser, UserError, atomic_write_text, read_json, run_main

HERE, RESULTS = paths.ROOT, paths.RESULTS
BLOCK = re.compile(r"<!-- report:(?P<key>[^>]+?) -->(?P<body>.*?)<!-- /report:(?P=key) -->", re.S)
DATASET_NAMES = {"folder": "CIFAR-10 as JPEG files (quality 75, `--dataset folder`)", "cifar10": "CIFAR-10 (torchvision)"}
ARCH_NAMES = {"dcgan": "DCGAN", "pytorchgan": "PyTorch-GAN's DCGAN", "mlp": "MLP"}
LOSS_NAMES = {"gan": "GAN", "nsgan": "NS-GAN", "wgan": "WGAN", "wgan-gp": "WGAN-GP", "lsgan": "LSGAN", "hinge": "hinge"}


def documents(root=HERE):
    """README.md and every page of docs/: the documents that may hold generated blocks."""
    return [os.path.join(root, "README.md"), *sorted(glob.glob(os.path.join(root, "docs", "*.md")))]


# ----------------------------------------------------------------------------- formatting

def num(x, digits=1):
    return "–" if pd.isna(x) else f"{x:.{digits}f}"


def sig(x, digits=2):
    """Significant digits, for values that span decades (logit gaps, p-values, ratios)."""
    return "–" if pd.isna(x) else f"{x:.{digits}g}"


def mean_sd(values, digits=1):
    values = pd.Series(values, dtype=float).dropna()
    if len(values) == 1:
        return num(values.iloc[0], digits)
    return f"{num(values.mean(), digits)} ± {num(values.std(), digits)}" if len(values) else "–"


def signed(x, digits=1):
    return "–" if pd.isna(x) else f"{x:+.{digits}f}"


def interval(low, high, digits=1):
    return f"{signed(low, digits)} to {signed(high, digits)}"


def small(x):
    """Two decimals, or two significant digits below 0.1 (D's logit gaps span four decades)."""
    return "–" if pd.isna(x) else f"{x:.2f}" if abs(x) >= 0.095 else f"{x:.2g}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def span(values):
    """'0–3' for consecutive integers, else '0, 2, 5'."""
    values = sorted({int(v) for v in values})
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(str(v) for v in values)


def not_yet(path, what):
    return f"Not yet measured: `results/{path}` ({what}) is not committed yet."


# ----------------------------------------------------------------------------- reading the results

def read_csv(results, name):
    """A committed CSV of results/, or None where it is not committed (yet)."""
    path = os.path.join(results, name)
    return pd.read_csv(path) if os.path.isfile(path) else None


def image_runs(results, epochs, clip_params="all", adam_eps=None):
    """The completed CIFAR-10 runs of one budget and one reading (DCGAN, clip 0.01 on clip_params),
    with torch's Adam eps unless adam_eps names another. Epochs are rounded (157 G steps of WGAN's 5
    critic steps are 1.0051 epochs); one budget must have one FID sample count, or its means would
    mix protocols."""
    runs = pd.read_csv(os.path.join(results, "runs.csv"))
    eps = runs["adam_eps"].isna() if adam_eps is None else runs["adam_eps"] == float(adam_eps)
    runs = runs[runs["dataset"].isin(data.IMAGE_DATASETS) & (runs["status"] == "completed") & eps
                & (runs["epochs"].round() == float(epochs)) & (runs["clip_params"] == clip_params)
                & (runs["arch"] == "dcgan") & (runs["clip"] == 0.01)]
    if runs["n_fake"].nunique() > 1:
        raise UserError(f"results/runs.csv holds {epochs}-epoch runs of {runs['n_fake'].nunique()} FID sample counts; "
                        "give each its own block")
    return runs.assign(p=runs["p"].where(runs["loss"] == "minkowski"))


def arm_key(row):
    return row["loss"], row["p"] if row["loss"] == "minkowski" else None, int(row["n_critic"])


def arm_label(loss, p, n_critic):
    if loss == "minkowski":
        return f"Minkowski p = {p:g}"
    steps = f"{n_critic} critic step{'s' if n_critic > 1 else ''}"
    if n_critic != losses.default_n_critic(loss):
        return f"{LOSS_NAMES[loss]}, {steps}"
    return LOSS_NAMES[loss] + (f" ({steps})" if n_critic > 1 else "")


def arms(runs):
    """[(key, its runs in seed order)], baselines in Table 2's order, then Minkowski by p."""
    groups = {}
    for _, row in runs.sort_values("seed").iterrows():
        groups.setdefault(arm_key(row), []).append(row)
    order = lambda k: (TABLE2_LOSSES.index(k[0]) if k[0] != "minkowski" else 99, k[1] or 0, -k[2])  # noqa: E731
    return [(k, pd.DataFrame(groups[k])) for k in sorted(groups, key=order)]


def paper_fid(results, loss, p, n_critic):
    """The paper's FID of an arm (Table 2, else Table 3), None where the paper has no such run."""
    if n_critic != losses.default_n_critic(loss):
        return None
    paper = pd.read_csv(os.path.join(results, "paper.csv"))
    rows = paper[(paper["loss"] == loss) & ((paper["p"] == p) if p is not None else paper["p"].isna())]
    return float(rows["fid"].iloc[0]) if len(rows) else None


def cpu(device):
    """'Intel(R) Xeon(R) Processor x2 threads' -> 'Intel Xeon x2 threads'."""
    return device.replace("(R)", "").replace(" Processor", "")


def hardware(runs):
    """'Intel Xeon x2 threads (12 runs, median 16 min), ...': the machines and how long a run took."""
    parts = []
    for device, group in runs.groupby("device"):
        parts.append(f"{cpu(device)} ({len(group)} run{'s' if len(group) > 1 else ''}, median "
                     f"{group['seconds'].median() / 60:.0f} min)")
    return "; ".join(parts)


def seeds_per_arm(runs):
    """'2' or '2–5': the fewest and most seeds of any arm (loss, p, critic steps)."""
    seeds = runs.groupby([runs["loss"], runs["p"].fillna(0), runs["n_critic"]])["seed"].nunique()
    return f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"


def budget(runs):
    """The budget line under a table of runs: epochs, G steps, FID samples, seeds, reading, hardware."""
    epochs = runs["epochs"].round().max()
    steps = sorted(runs.groupby("n_critic")["total_steps"].max().items())
    step_text = f"{steps[0][1]:g} G steps" + "".join(f" ({s:g} with {k} critic steps)" for k, s in steps[1:])
    row = runs.iloc[0]
    clip = f"D clipped to {row['clip']:g} on " + ("every parameter, BatchNorm's included (`--clip-params all`)"
                                                 if row["clip_params"] == "all" else "conv and linear weights only "
                                                 "(`--clip-params weights`)")
    return (f"Budget: **{epochs:g} epoch{'s' if epochs != 1 else ''}** = {step_text}; final FID of "
            f"**{row['n_fake']:g}** generated against {row['n_real']:g} real train images of "
            f"{DATASET_NAMES[row['dataset']]}; seeds {span(runs['seed'])} ({seeds_per_arm(runs)} per arm); "
            f"{ARCH_NAMES[row['arch']]} nets, "
            f"{clip}; the paper's Table 1 settings otherwise{floor(runs)}. CPU: {hardware(runs)}.")


def floor(runs):
    """', FID floor at this count 25.2' where the runs hold it (real against real, evaluate.py)."""
    floors = runs["final_fid_floor"].dropna().unique()
    return f"; FID floor at this count {floors[0]:.1f}" if len(floors) == 1 else ""


# ----------------------------------------------------------------------------- statistics

def pooled_sd(runs, metric="final_fid"):
    """(SD, degrees of freedom) of the metric within arms, pooled over every arm of the runs."""
    groups = [g[metric].dropna() for _, g in arms(runs)]
    df = sum(len(g) - 1 for g in groups)
    return (np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df), df) if df else (np.nan, 0)


def arm_values(runs, name, metric="final_fid"):
    """The metric of each seed of an arm named as in contrasts.ARMS."""
    return [g for k, g in arms(runs) if k == contrasts.ARMS[name]][0][metric].dropna()


def contrast(results, runs, a, b, metric="final_fid"):
    """a - b of two arms (names of contrasts.ARMS): the difference of means with its 95 % interval
    from the SD pooled over every arm of the runs (more degrees of freedom than two arms' own, if
    the arms share one SD), the pooled test's power at the paper's gap and the pre-registered rule's
    reading of the interval; Welch's interval from the two arms alone (contrasts.welch) beside it."""
    x, y = arm_values(runs, a, metric), arm_values(runs, b, metric)
    sd, df = pooled_sd(runs, metric)
    se = sd * np.sqrt(1 / len(x) + 1 / len(y))
    diff, half = x.mean() - y.mean(), sp.t.ppf(0.975, df) * se
    gap = np.nan
    if metric == "final_fid":
        gap = paper_fid(results, *contrasts.ARMS[a]) - paper_fid(results, *contrasts.ARMS[b])
    welch = contrasts.welch(x, y)
    return {"n_a": len(x), "n_b": len(y), "diff": diff, "low": diff - half, "high": diff + half, "paper_gap": gap,
            "power": stats.t_power(gap, se, df), "verdict": contrasts.verdict(diff - half, diff + half, gap),
            "welch_low": welch["ci_low"], "welch_high": welch["ci_high"],
            "welch_verdict": contrasts.verdict(welch["ci_low"], welch["ci_high"], gap)}


# ----------------------------------------------------------------------------- blocks: CIFAR-10

def paper(results):
    """The paper's Tables 2 and 3 (results/paper.csv)."""
    rows = pd.read_csv(os.path.join(results, "paper.csv"))
    t2, t3 = rows[rows["table"] == 2], rows[rows["table"] == 3].sort_values("p")
    labels = [arm_label(loss, p, losses.default_n_critic(loss)) for loss, p in zip(t2["loss"], t2["p"])]
    return (markdown_table(["Table 2", *labels], [["FID", *(num(v) for v in t2["fid"])]]) + "\n\n"
            + markdown_table(["Table 3: p", *(f"{p:g}" for p in t3["p"])], [["FID", *(num(v) for v in t3["fid"])]]))


def setup(results):
    """The paper's Table 1, as train.py's defaults."""
    d = vars(train.build_parser().parse_args([]))
    lr = f"{d['lr']:.0e}".replace("e-0", "e-")
    return (f"CIFAR-10, DCGAN-style nets, z = {d['z_dim']}, Adam lr {lr}, betas ({d['beta1']:g}, "
            f"{d['beta2']:g}), batch {d['batch_size']}, {d['epochs']:g} epochs, D's weights clipped to "
            f"[-{train.default_clip('gan', 'cifar10'):g}, {train.default_clip('gan', 'cifar10'):g}] for every model")


def per_seed(values, fmt=num):
    return ", ".join(fmt(v) for v in values)


def table2(results, epochs, clip_params="all"):
    """The paper's Table 2 beside ours at one budget: every loss but Minkowski's other p."""
    runs = image_runs(results, epochs, clip_params)
    runs = runs[(runs["loss"] != "minkowski") | (runs["p"] == 4)]
    if not len(runs):
        return f"Not yet measured: `results/runs.csv` has no completed {epochs}-epoch run with `--clip-params {clip_params}`."
    gaps = runs["final_logit_gap"].notna().any()
    header = ["loss", "paper (200 epochs)", "FID by seed", "mean ± SD", *(["D's logit gap at the end"] if gaps else []),
              "KID", "precision", "recall", "coverage"]
    rows = []
    for key, arm in arms(runs):
        rows.append([arm_label(*key), num(paper_fid(results, *key)), per_seed(arm["final_fid"]), mean_sd(arm["final_fid"]),
                     *([per_seed(arm["final_logit_gap"], small)] if gaps else []), num(arm["final_kid"].mean(), 3),
                     num(arm["final_precision"].mean(), 3), num(arm["final_recall"].mean(), 4),
                     num(arm["final_coverage"].mean(), 3)])
    return markdown_table(header, rows) + "\n\n" + budget(runs) + "\n" + metric_note(gaps)


def metric_note(gaps):
    return ("KID, precision, recall and coverage are means over the seeds" + ("; D's logit gap (its mean logit on "
            "real minus fake images) and largest |logit| are those of the last logged interval of `metrics.csv`."
            if gaps else "."))


def table3(results, epochs, clip_params="all"):
    """The paper's Table 3 beside ours at one budget: FID by p."""
    runs = image_runs(results, epochs, clip_params)
    runs = runs[runs["loss"] == "minkowski"]
    if not len(runs):
        return (f"Not yet measured: `results/runs.csv` has no completed {epochs}-epoch Minkowski run with "
                f"`--clip-params {clip_params}`.")
    groups = arms(runs)
    rows = [["paper (200 epochs)", *(num(paper_fid(results, *k)) for k, _ in groups)],
            ["seeds", *(span(g["seed"]) for _, g in groups)],
            ["FID by seed", *(per_seed(g["final_fid"]) for _, g in groups)],
            ["mean ± SD", *(mean_sd(g["final_fid"]) for _, g in groups)]]
    gaps = runs["final_logit_gap"].notna().any()
    if gaps:
        rows += [["D's logit gap at the end", *(per_seed(g["final_logit_gap"], small) for _, g in groups)],
                 ["D's largest \\|logit\\| at the end", *(per_seed(g["final_logit_absmax"], small) for _, g in groups)]]
    rows += [["precision (mean)", *(num(g["final_precision"].mean(), 3) for _, g in groups)],
             ["recall (mean)", *(num(g["final_recall"].mean(), 4) for _, g in groups)],
             ["coverage (mean)", *(num(g["final_coverage"].mean(), 3) for _, g in groups)]]
    return (markdown_table(["p (Table 3)", *(f"{k[1]:g}" for k, _ in groups)], rows) + "\n\n" + budget(runs) + "\n"
            + metric_note(gaps))


def p_range(text):
    """'1-6' -> [1.0, ..., 6.0]."""
    low, high = (float(v) for v in text.split("-"))
    return [float(p) for p in range(int(low), int(high) + 1)]


def anova(results, epochs, among=None):
    """analysis/p_effect.py's test of p against the seed (results/p_effect.csv); `among=1-6` adds the test
    of those p alone, computed here from runs.csv, with its power at the paper's differences."""
    tests = read_csv(results, "p_effect.csv")
    row = tests[(tests["metric"] == "final_fid") & (tests["epochs"].round() == float(epochs))
                & (tests["clip_params"] == "all")].iloc[0]
    text = (f"One-way ANOVA of the final FID on p over the {row['runs']} Minkowski runs (`results/p_effect.csv`): "
            f"F = {row['F']:.2f}, df ({row['df_between']}, {row['df_within']}), p = {sig(row['p_anova'])}, "
            f"permutation p = {sig(row['p_permutation'])} ({row['permutations']} permutations), "
            f"η² = {row['eta2']:.2f}, ω² = {row['omega2']:.2f}.")
    if among is None:
        return text
    ps = p_range(among)
    runs = p_effect.minkowski_runs(os.path.join(results, "runs.csv"), "final_fid", steps=int(row["steps"]), ps=ps)
    sub = p_effect.p_test(runs["final_fid"], runs["p"])
    sd, _ = pooled_sd(image_runs(results, epochs))
    paper = pd.Series([paper_fid(results, "minkowski", p, 1) for p in ps])
    counts = runs.groupby("p").size().reindex(ps)
    power = stats.anova_power(paper, counts, sd)
    seeds = "–".join(str(n) for n in sorted({counts.min(), counts.max()}))
    found = ("p matters among them at this budget" if sub["p_anova"] < stats.ALPHA
             else "\"no effect of p among them\" is not established")
    return (text + f" Among p = {among.replace('-', '–')} alone ({len(runs)} runs; a subset chosen after seeing the "
            f"larger p fall behind, computed from `results/runs.csv`): F = {sub['F']:.2f}, df ({sub['df_between']}, "
            f"{sub['df_within']}), p = {sig(sub['p_anova'])}, permutation p = {sig(sub['p_permutation'])}, "
            f"ω² = {sub['omega2']:.2f}. With {seeds} seeds per p (the design as run) and the pooled SD of {sd:.1f} FID, "
            f"this test had a power of {power:.2f} to detect differences between these p as large as the paper's "
            f"Table 3 (noncentral F): {found}.")


def contrasts_block(results, epochs):
    """The pre-registered contrasts (H1-H3, contrasts.CONTRASTS) on the seeds committed so far."""
    runs = image_runs(results, epochs)
    rows = []
    for i, (a, b) in enumerate(contrasts.CONTRASTS["all"], 1):
        c = contrast(results, runs, a, b)
        x, y = arm_values(runs, a), arm_values(runs, b)
        welch_power = stats.welch_power_noncentral(c["paper_gap"], x.std(), y.std(), len(x), len(y))
        name = f"H{i}: {arm_label(*contrasts.ARMS[a])} − {arm_label(*contrasts.ARMS[b])}"
        rows.append([name, f"{c['n_a']}, {c['n_b']}",
                     signed(c["diff"]), num(c["paper_gap"]), interval(c["low"], c["high"]), num(c["power"], 2),
                     c["verdict"], interval(c["welch_low"], c["welch_high"]), num(welch_power, 2), c["welch_verdict"]])
    sd, df = pooled_sd(runs)
    return (markdown_table(["contrast (a − b), final FID", "seeds", "difference", "paper's gap",
                            "95 % interval, pooled SD", "power at the paper's gap", "reading",
                            "95 % interval, Welch", "power", "reading"], rows)
            + f"\n\nThe pooled interval uses the within-arm SD pooled over every arm of this budget ({sd:.1f} FID, "
            f"{df} degrees of freedom), which assumes the arms share one SD; Welch's uses the two arms' own seeds "
            "alone, as the [pre-registration](preregistration.md) does for its campaign (its power by the noncentral t, as pre-registered, in "
            "`minkgan/stats.py`). Each reading applies the "
            "pre-registered rule to its interval. Seeds 0 and 1 were seen before the plan was written.\n\n"
            + budget(runs))


def contrasts_csv(results):
    """The campaign's contrasts (results/contrasts.csv), as the pre-registration specifies them."""
    table = read_csv(results, "contrasts.csv")
    if table is None:
        return not_yet("contrasts.csv", "H1–H4 of the pre-registration, 5 seeds per arm")
    rows = [[r["reading"], r["metric"], f"{r['epochs']:g}", f"{r['a']} − {r['b']}", f"{r['n_a']}, {r['n_b']}",
             f"{num(r['mean_a'])}, {num(r['mean_b'])}",
             signed(r["mean_diff"]), interval(r["ci_low"], r["ci_high"]), sig(r["p_value"]), sig(r["p_holm"]),
             num(r["paper_gap"]), num(r["power_at_paper_gap"], 2), r["verdict"]] for _, r in table.iterrows()]
    machines = sorted({cpu(m.strip()) for h in table["hardware"].dropna() for m in h.split("/")})
    return (markdown_table(["reading", "metric", "epochs", "a − b", "seeds", "means", "difference",
                            "95 % interval (Welch)", "p", "p (Holm)", "paper's gap", "power at the paper's gap",
                            "verdict"], rows)
            + "\n\nThe runs and their budget are those of the tables above at the same epochs (`analysis/contrasts.py` reads "
            f"`results/runs.csv`); CPU: {', '.join(machines)}.")


def run_logs(results, epochs):
    """[(run name, config, metrics)] of the committed run logs of one budget, the paper's reading."""
    logs = []
    for config_path in sorted(glob.glob(os.path.join(results, "run_logs", "*", "*", "config.json"))):
        cfg = read_json(config_path)
        if round(cfg["epochs"]) == float(epochs) and cfg.get("clip_params") == "all" and cfg.get("arch") == "dcgan":
            metrics = pd.read_csv(os.path.join(os.path.dirname(config_path), "metrics.csv"))
            logs.append((os.path.basename(os.path.dirname(config_path)), cfg, metrics))
    return logs


def last_epoch(metrics):
    """The rows of a metrics.csv logged during its run's last epoch."""
    return metrics[metrics["epoch"] > metrics["epoch"].max() - 1]


def regime(results, epochs):
    """D's regime over training, from the committed run logs: how large its logits grow, and its
    gradient norm (the paper's Figure 1) over the last epoch."""
    rows = []
    for name, cfg, m in run_logs(results, epochs):
        peak = m.loc[m["logit_absmax"].idxmax()]
        quarter = m[m["step"] >= m["step"].max() * 0.75]
        rows.append([name, cpu(cfg["hardware"]),
                     f"{peak['logit_absmax']:.3f} (step {peak['step']:g})", f"{m['logit_absmax'].iloc[-1]:.3f}",
                     f"{quarter['logit_absmax'].iloc[-1] - quarter['logit_absmax'].iloc[0]:+.3f}",
                     sig(last_epoch(m)["grad_norm_d"].mean(), 3)])
    if not rows:
        return f"No run logs of {epochs}-epoch runs are committed."
    every = sorted({int(cfg["log_every"]) for _, cfg, _ in run_logs(results, epochs)})
    return (markdown_table(["run", "CPU", "largest \\|logit\\|: peak (step)", "at the end", "change over the last quarter",
                            "D's gradient norm, mean over the last epoch"], rows)
            + f"\n\nFrom `results/run_logs/` (`metrics.csv`, logged every {', '.join(map(str, every))} steps: each value "
            "is the mean over one interval of the batch statistic). Only the runs trained after runs kept their logs "
            "have them.")


def machines(results, epochs):
    """Each machine's mean FID per arm, where an arm ran on more than one: is the CPU a seed?"""
    runs = image_runs(results, epochs)
    devices = sorted(runs["device"].unique())
    rows = []
    for key, arm in arms(runs):
        if arm["device"].nunique() > 1:
            means = arm.groupby("device")["final_fid"].agg(["mean", "size"])
            rows.append([arm_label(*key), *(f"{means.loc[d, 'mean']:.1f} ({means.loc[d, 'size']})" if d in means.index
                                            else "–" for d in devices)])
    return markdown_table(["arm: mean FID (runs) on", *map(cpu, devices)], rows)


def adam_eps(results, epochs, eps):
    """Runs with another Adam eps beside the same arm with torch's default."""
    rows = []
    other = image_runs(results, epochs, adam_eps=eps)
    default = image_runs(results, epochs)
    for key, arm in arms(other):
        base = [g for k, g in arms(default) if k == key]
        rows.append([arm_label(*key), f"{float(eps):g}: " + per_seed(arm["final_fid"]) + f" ({mean_sd(arm['final_fid'])})",
                     f"{train.ADAM_EPS:g}: " + (mean_sd(base[0]["final_fid"]) if base else "–"),
                     per_seed(arm["final_logit_gap"], small)])
    header = ["arm", "FID by seed, Adam eps", "mean ± SD at the default eps", "D's logit gap at the end"]
    return markdown_table(header, rows) + "\n\n" + budget(other)


def earlier_2epochs(results):
    """An earlier session's GAN, WGAN and p = 4 at 2 epochs (results/cifar10_2epochs.csv)."""
    t = read_csv(results, "cifar10_2epochs.csv")
    rows = [[arm_label(r["loss"], r["p"] if r["loss"] == "minkowski" else None, losses.default_n_critic(r["loss"])),
             num(r["paper_fid"]), f"{num(r['fid_seed0'])}, {num(r['fid_seed1'])}",
             f"{num(r['fid_mean'])} ± {num(r['fid_std'])}",
             num(r["kid_mean"], 3)] for _, r in t.iterrows()]
    r = t.iloc[0]
    return (markdown_table(["loss", "paper (200 epochs)", "FID seeds 0, 1", "mean ± SD", "KID"], rows)
            + f"\n\nBudget: **{r['epochs']:g} epochs** = {r['steps']} G steps (WGAN, 5 critic steps: "
            f"{t['steps'].min()}); final FID of **{r['n_fake']}** generated against {r['n_real']} real train images of "
            f"CIFAR-10 as JPEG files; seeds {r['seeds'].replace(' ', ', ')}; CPU: {r['hardware']}. "
            f"The file's note: {r['note']}.")


def horizon_rows(results, clip_params="all"):
    """horizon.csv's rows of one reading, epochs to 0.1: WGAN's 5 critic steps make 156.2 G steps an
    epoch, so its evaluation at step 157 is epoch 1.005, the others' epoch 1."""
    table = read_csv(results, "horizon.csv")
    if table is None:
        return None
    table = table[table["clip_params"] == clip_params]
    return table.assign(epoch=table["epoch"].round(1))


def horizon(results, clip_params="all"):
    """The 10-epoch horizon (analysis/horizon.py's results/horizon.csv): the FID at each evaluation, a table
    per sample count, and D's largest |logit| there."""
    table = horizon_rows(results, clip_params)
    if table is None:
        return not_yet("horizon.csv", "the pre-registered 10-epoch horizon, one seed")
    table = table.assign(arm=[f"{arm_label(*arm_key(r))}, seed {r['seed']}" for _, r in table.iterrows()])
    out = []
    for n, rows in table.groupby("n"):
        wide = rows.pivot_table(index="arm", columns="epoch", values="fid", sort=False)
        out.append(markdown_table([f"FID of {n} at epoch", *(f"{e:g}" for e in wide.columns)],
                                  [[arm, *(num(v) for v in wide.loc[arm])] for arm in wide.index]))
    curves = table[table["n"] == table["n"].min()].drop_duplicates(["arm", "epoch"])
    for column, title, digits in (("coverage", "coverage at epoch", 3), ("logit_gap", "D's logit gap at epoch", 3),
                                  ("logit_absmax", "D's largest \\|logit\\| at epoch", 3)):
        if column not in curves:  # a horizon.csv from before the column
            continue
        wide = curves.pivot(index="arm", columns="epoch", values=column)
        out.append(markdown_table([title, *(f"{e:g}" for e in wide.columns)],
                                  [[arm, *(num(v, digits) for v in wide.loc[arm])] for arm in wide.index]))
    floors = table.dropna(subset=["fid_floor"]).drop_duplicates("n") if "fid_floor" in table else None
    floor = "" if floors is None else "".join(f" The FID floor (real against other real images) at {n}: {num(f)}."
                                              for n, f in zip(floors["n"], floors["fid_floor"]))
    return "\n\n".join(out) + (
        f"\n\nOne run per arm (seed {span(table['seed'])}), up to {table['total_steps'].max():g} G steps, D clipped to "
        f"0.01 on {'every parameter' if clip_params == 'all' else 'conv and linear weights'}; FID of n generated "
        f"against n real train images of CIFAR-10 as JPEG files; CPU: {', '.join(sorted(map(cpu, table['device'].unique())))}. "
        "A description of one seed, not a test "
        "([pre-registered](preregistration.md#the-horizon-issue-24-descriptive-one-seed))." + floor)


# ----------------------------------------------------------------------------- blocks: 2-D data

def toy_rows(results, clip=None):
    """The rows of results/toy_table.csv of one reading of the clipping: each loss's default
    (WGAN's 0.01, none for the others) or `clip=C` for every loss; p only for Minkowski rows."""
    t = read_csv(results, "toy_table.csv")
    t = t.assign(p=t["p"].where(t["loss"] == "minkowski"))
    wanted = [train.default_clip(l, d) if clip is None else float(clip) for l, d in zip(t["loss"], t["dataset"])]
    return t[np.isclose(t["clip"].fillna(0), wanted)]


def toy_arms(t):
    """(loss, p, n_critic) of the table's groups, baselines in Table 2's order, then Minkowski by p."""
    keys = {(l, None if pd.isna(p) else p, int(k)) for l, p, k in zip(t["loss"], t["p"], t["n_critic"])}
    return sorted(keys, key=lambda k: (TABLE2_LOSSES.index(k[0]) if k[0] != "minkowski" else 99, k[1] or 0, -k[2]))


def toy_row(t, dataset, loss, p, n_critic):
    """The one row of a group on a dataset, or None."""
    r = t[(t["dataset"] == dataset) & (t["loss"] == loss) & (t["n_critic"] == n_critic)
          & ((t["p"] == p) if p else t["p"].isna())]
    return r.iloc[0] if len(r) else None


def seed_counts(t):
    """'5' or '5–10': the seeds per group of toy_table rows."""
    low, high = t["seeds"].min(), t["seeds"].max()
    return f"{low}–{high}" if low != high else f"{high}"


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


def toy_contrast(results, dataset, metric="final_modes", clip=None):
    """Minkowski p = 4 − GAN on a 2-D benchmark, one reading of the clipping: Welch's interval from
    the table's means and SDs; None where either arm is missing."""
    t = toy_rows(results, clip)
    a, b = toy_row(t, dataset, "minkowski", 4.0, 1), toy_row(t, dataset, "gan", None, 1)
    if a is None or b is None:
        return None
    va, vb = a[f"{metric}_std"] ** 2 / a[f"{metric}_n"], b[f"{metric}_std"] ** 2 / b[f"{metric}_n"]
    df = (va + vb) ** 2 / (va ** 2 / (a[f"{metric}_n"] - 1) + vb ** 2 / (b[f"{metric}_n"] - 1))
    diff, half = a[f"{metric}_mean"] - b[f"{metric}_mean"], sp.t.ppf(0.975, df) * np.sqrt(va + vb)
    return {"diff": diff, "low": diff - half, "high": diff + half, "n": int(a[f"{metric}_n"])}


UNINFORMATIVE_HQ_PCT = 5.0  # H5: below this mean high-quality share in every arm, the clipped benchmark says nothing


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
    return f"With every D parameter clipped to 0.01 (H5), modes p = 4 − GAN: " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------- blocks: higher moments

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


def h7_rule(rows, space, compared, digits):
    """H7's rule in one space: "supported" when p = 4's gap is below each baseline's (compared: p = 4 first,
    then the baselines, name -> (loss, p, n_critic)) with a Welch interval entirely below 0; then the
    differences with their intervals."""
    (_, p4_arm), *baselines = compared.items()
    p4, found = moment_gaps(rows, space, p4_arm), []
    for _, arm in baselines:
        w = contrasts.welch(p4, moment_gaps(rows, space, arm))
        found.append((f"p = 4 − {arm_label(*arm)} {signed(w['mean_diff'], digits)} "
                      f"({interval(w['ci_low'], w['ci_high'], digits)})", w["ci_high"] < 0))
    rule = "supported" if all(below for _, below in found) else "not supported"
    return f"{rule}; " + ", ".join(text for text, _ in found)


def higher_moments(results, epochs=2):
    """The verdict on the higher-moments claim by H7's rule: p = 4's kurtosis gap below GAN's and
    WGAN's, each with a Welch interval entirely below 0, per space; not decidable below two runs an arm."""
    m = moment_rows(results, epochs)
    if m is None or not len(m):
        return "untested: `analysis/moments.py` has not been run on committed checkpoints."
    runs = {name: len(moment_gaps(m, "pixels", contrasts.ARMS[name])) for name in ("minkowski-p4", "gan", "wgan")}
    if min(runs.values()) < 2:
        return (f"not decidable: H7's Welch intervals need two runs an arm, and the checkpoints that survived give "
                f"p = 4 {runs['minkowski-p4']}, GAN {runs['gan']}, WGAN {runs['wgan']} (the single runs' gaps are in "
                "the table).")
    compared = {name: contrasts.ARMS[name] for name in ("minkowski-p4", "gan", "wgan")}
    parts = [f"{label}, kurtosis gap: {h7_rule(m, space, compared, 3)}" for space, label in MOMENT_SPACES.items()]
    return "; ".join(parts) + "."


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


# ----------------------------------------------------------------------------- blocks: the clipped regime

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


def alignment_facts(results):
    """The numbers the text draws from the alignment table: cosines of D's gradient to WGAN's,
    over states (the reference itself, and hinge, exactly WGAN below its margin, left out)."""
    a = read_csv(results, "alignment.csv")
    a = a[~a["loss"].isin(["lsgan", "wgan", "hinge"])]
    cos = lambda clip_params, steps, n_critic=1, p=None: a[  # noqa: E731
        (a["clip_params"] == clip_params) & a["step"].isin(steps) & (a["n_critic"] == n_critic)
        & (((a["loss"] == "minkowski") & (a["p"] == p)) if p else True)]
    return {"early": cos("all", [100, 300])["cos_d"], "p4_1ep": cos("all", [781], p=4)["cos_d"],
            "p8_1ep": cos("all", [781], p=8)["cos_d"], "p4_2ep": cos("all", [1562], p=4)["cos_d"],
            "p8_2ep": cos("all", [1562], p=8)["cos_d"], "p8_wgan5": cos("all", [156, 313], 5, 8)["cos_d"],
            "weights": cos("weights", [100, 300])["cos_d"], "weights_logit": cos("weights", [100, 300])["logit_abs_max"],
            "h4": a[(a["clip_params"] == "weights") & (a["total_steps"] > 300)]}


def value_range(values, digits=2):
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return low if low == high else f"{low}–{high}"


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


def spread_median(values):
    """' (median m)' beside a range, nothing beside a single value."""
    return "" if f"{values.min():.2f}" == f"{values.max():.2f}" else f" (median {values.median():.2f})"


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


# ----------------------------------------------------------------------------- blocks: evaluation, ops, games, derivations

def fid_floor(results):
    """The FID floor (real against real at the same count) where the committed runs hold it."""
    runs = read_csv(results, "runs.csv")
    floors = runs.dropna(subset=["final_fid_floor"]).groupby("n_real")[["final_fid_floor", "final_fid_floor_test"]].first()
    if not len(floors):
        return "No FID floor is committed."
    return "; ".join(f"at {n:g} real images: {r['final_fid_floor']:.1f} (train against train), "
                     f"{r['final_fid_floor_test']:.1f} (train against test)" for n, r in floors.iterrows()) + \
        " (`final_fid_floor`, `final_fid_floor_test` of `results/runs.csv`)"


def bench_ops(results):
    """bench/ops.py (results/bench_ops.csv): fused against eager, forward + backward."""
    b = read_csv(results, "bench_ops.csv")
    threads = sorted(b["cpu_threads"].unique())
    header, rows = ["op", "size"], []
    for n in threads:
        header += [f"eager ms ({n} thread{'s' if n > 1 else ''})", "fused ms", "speed-up"]
    for (op, size), g in b.groupby(["op", "size"], sort=False):
        row = [op, size]
        for n in threads:
            r = g[g["cpu_threads"] == n].iloc[0]
            row += [sig(r["eager_ms"], 3), sig(r["fused_ms"], 3), f"{r['speedup']:.2f}x"]
        rows.append(row)
    return (markdown_table(header, rows) + f"\n\nMedian of alternating rounds, one run; {', '.join(b['device'].unique())}, "
            f"torch {b['torch'].iloc[0]}, load average {b['loadavg_1m'].min():g}–{b['loadavg_1m'].max():g} "
            f"(2 cores), backend {b['backend'].iloc[0]}.")


def bench_step(results):
    """bench/step.py (results/bench_step.csv): one training step per variant, as ratios to plain float32,
    one table per device (a CPU's bfloat16 hardware named where the row records it)."""
    b = read_csv(results, "bench_step.csv")
    parts = []
    for device, d in b.groupby("device", sort=False):
        variants = [v for v in d["variant"].unique() if v != "plain"]
        rows = []
        for arch, g in d.groupby("arch", sort=False):
            g = g.set_index("variant")
            rows.append([f"{arch} ({g['gflop_per_step'].iloc[0]:.1f} GFLOP)", f"{g.loc['plain', 'ms']:.0f}",
                         *(f"{g.loc[v, 'ratio']:.2f}x" if v in g.index else "–" for v in variants),
                         f"{g.loc['plain', 'of_sgemm']:.2f}"])
        hw = d["bf16_hardware"].dropna() if "bf16_hardware" in d else pd.Series(dtype=str)
        parts.append(markdown_table(["arch", "plain ms", *variants, "of_sgemm (plain)"], rows)
                     + f"\n\n{device}" + (f" (bfloat16 hardware: {hw.iloc[0]})" if len(hw) else "")
                     + f", torch {d['torch'].iloc[0]}, a 2048³ float32 matmul at {d['sgemm_gflops'].iloc[0]:.0f} "
                     f"GFLOP/s, load average {d['loadavg_1m'].min():g}–{d['loadavg_1m'].max():g}.")
    return ("\n\n".join(parts) + "\n\nMinkowski p = 4, batch 64, 32x32; median of 5 alternating rounds; each "
            "device's ratios are against its own plain float32 step, measured in the same run.")


def aten_ops(results):
    """bench/step.py --count-only (results/aten_ops.csv): ATen ops per training step, each revision."""
    a = read_csv(results, "aten_ops.csv")
    if a is None:
        return "No ATen op counts are committed yet (`python -m bench.step --count-only --csv results/aten_ops.csv`)."
    first = a["revision"].iloc[0]
    rows = []
    for (arch, loss), g in a.groupby(["arch", "loss"], sort=False):
        counts = [int(g.loc[g["revision"] == rev, "aten_ops"].iloc[0]) if (g["revision"] == rev).any() else None
                  for rev in a["revision"].unique()]
        change = f"{counts[-1] / counts[0] - 1:+.1%}" if None not in (counts[0], counts[-1]) else ""
        rows.append([arch, loss, *(str(c) if c is not None else "" for c in counts), change])
    revisions = [f"at {rev[:7]}" for rev in a["revision"].unique()]
    return (markdown_table(["arch", "loss", *revisions, "change"], rows)
            + f"\n\nOne plain step (`Trainer.train_step`, batch 64, 32x32; WGAN's holds 5 critic steps) on the CPU, "
              f"counted by a TorchDispatchMode (views included), torch {a['torch'].iloc[0]}; the first column is "
              f"the code of {first[:7]}, counted with today's counter.")


def dirac(results):
    """analysis/dynamics.py's Dirac-GAN (results/dynamics/dirac.csv): the Jacobian's eigenvalues at the
    equilibrium without a penalty and with R1, and whether the iterates converge."""
    d = read_csv(results, os.path.join("dynamics", "dirac.csv"))
    rows = []
    for loss, g in d.groupby("loss", sort=False):
        g = g.set_index("penalty")
        none, r1 = g.loc["none"], g.loc["r1"]
        eigen = f"±{none['eig1_im']:.4g}i" if none["eig1_im"] else "0, 0"
        rows.append([loss, eigen, "yes" if none["sim_converged"] or none["alt_converged"] else "no",
                     f"{r1['max_re']:.3g}", "yes" if r1["sim_converged"] else "no",
                     "yes" if g.loc["wgan-gp", "sim_converged"] else "no"])
    lam = d[d["penalty"] == "r1"]["lam"].iloc[0]
    return (markdown_table(["loss", "eigenvalues, no penalty", "converges (simultaneous or alternating)",
                            f"with R1 (λ = {lam:g}): largest real part", "converges with R1",
                            "converges with the WGAN-GP penalty"], rows)
            + "\n\n\"Converges\": the simulated iterates (`analysis/dynamics.py dirac`'s steps) end at the equilibrium.")


def two_point(results):
    """analysis/dynamics.py's two-point game (results/dynamics/two_point.csv), one row per setting."""
    t = read_csv(results, os.path.join("dynamics", "two_point.csv"))
    rows = []
    for setting, g in t.groupby("setting", sort=False):
        rows.append([setting, f"{g['eta_g'].iloc[0]:g}, {g['eta_d'].iloc[0]:g}", f"{g['converged'].sum()} of {len(g)}",
                     f"{g['q_min_last'].min():.2f}–{g['q_max_last'].max():.2f}",
                     sig(g["spectral_radius_at_equilibrium"].iloc[0], 4),
                     sig(g["q_after_hold_at_lambda0"].iloc[0], 3)])
    held = t.dropna(subset=["hold_steps"]).iloc[0]
    return markdown_table(["setting", "η_G, η_D", "starts that reach q = ½", "q over the last steps",
                           "spectral radius at the equilibrium",
                           f"q after {held['hold_steps']:g} steps at λ = 0 from a {held['hold_perturbation_du']:g} nudge"],
                          rows)


def bilinear(results):
    """analysis/dynamics.py's bilinear game (results/dynamics/bilinear.csv): the radius after the last step."""
    b = read_csv(results, os.path.join("dynamics", "bilinear.csv"))
    last = b.groupby("method", sort=False).tail(1)
    return markdown_table(["method", f"radius at step {last['step'].iloc[0]}", "closed form"],
                          [[r["method"], f"{r['radius']:.4f}", num(r["radius_closed_form"], 4)] for _, r in last.iterrows()])


def derivation_table(results):
    """analysis/derivations.py's closed forms, checked there against the repository's losses by tests/test_derivations.py."""
    ps = range(1, 9)
    b = derivations.binomial_table()
    g = [derivations.generator_gradient(p, [1 / (p + 1), 0.5]).abs().tolist() for p in ps]
    rows = [["C(p, 4)", *b["C"]],
            ["size of G's gradient through the logit at its peak, D = 1/(p + 1)", *(f"{v[0]:.3f}" for v in g)],
            ["... at D = ½, where a clipped D sits", *(sig(v[1], 3) for v in g)],
            ["optimal D for p_g / p_data = 1/3", "–", *(f"{derivations.optimal_d(p, 1 / 3):.3f}" for p in ps if p > 1)]]
    return (markdown_table(["p", *map(str, ps)], rows) + f"\n\nd/dp ln C(p, 4) at p = 4: {b['dlog_digamma']:.4f} "
            f"(digamma; a finite difference of ln Γ gives {b['dlog_numeric']:.4f}); the paper prints "
            f"{derivations.PAPER_DLOG_BINOMIAL}. Optimal D for p_g / p_data = 1/3 at p = 32: "
            f"{derivations.optimal_d(32, 1 / 3):.3f}.")


# ----------------------------------------------------------------------------- the verdict
# One line or two per claim of the paper, from the committed results. When results/contrasts.csv
# lands, its rows replace the interim intervals (contrast_row). Revise the wording here.

VERDICT_EPOCHS = 2  # the largest budget at which every arm has runs


def campaign_rows(results, epochs=VERDICT_EPOCHS, reading="all"):
    """The FID contrasts of the pre-registered campaign (results/contrasts.csv) for one reading of
    the clipping, or None while it is not committed."""
    table = read_csv(results, "contrasts.csv")
    if table is None:
        return None
    return table[(table["reading"] == reading) & (table["metric"] == "final_fid") & (table["epochs"].round() == epochs)]


def campaign_row(results, a, b, epochs=VERDICT_EPOCHS, reading="all"):
    """The FID contrast a - b of the campaign, or None while it is not committed."""
    rows = campaign_rows(results, epochs, reading)
    rows = None if rows is None else rows[(rows["a"] == a) & (rows["b"] == b)]
    return rows.iloc[0] if rows is not None and len(rows) else None


def contrast_text(results, a, b, epochs=VERDICT_EPOCHS, reading="all"):
    """'+8.4 FID (95 % interval ...; paper -98.2): <reading>' for a - b, from the campaign where it
    is committed, else from the committed seeds: the pooled interval, and Welch's where its reading
    differs; the power where the reading is inconclusive."""
    r = campaign_row(results, a, b, epochs, reading)
    if r is not None:
        text = (f"{signed(r['mean_diff'])} FID ({interval(r['ci_low'], r['ci_high'])}, Welch, {r['n_a']} and {r['n_b']} "
                f"seeds; paper {num(r['paper_gap'])}): **{r['verdict']}**")
        if r["verdict"] in ("supported", "contradicted"):
            text += (f" (p = {r['p_value']:.3f}; {r['p_holm']:.3f} after Holm's correction over the "
                     f"{len(campaign_rows(results, epochs, reading))} contrasts)")
        return text + (f" (power {r['power_at_paper_gap']:.2f})" if r["verdict"] == "inconclusive" else "")
    c = contrast(results, image_runs(results, epochs), a, b)
    text = f"{signed(c['diff'])} FID ({interval(c['low'], c['high'])}"
    if c["welch_verdict"] != c["verdict"]:
        text += (f"; Welch {interval(c['welch_low'], c['welch_high'])}; paper {num(c['paper_gap'])}): {c['verdict']} "
                 f"with the pooled SD, {c['welch_verdict']} by Welch's interval")
    else:
        text += f"; paper {num(c['paper_gap'])}): {c['verdict']}"
    return text + (f" (power {c['power']:.2f})" if c["verdict"] == "inconclusive" else "")


def campaign_progress(results, epochs=VERDICT_EPOCHS, seeds=5):
    """' Interim: ...' while the campaign's arms have fewer than their pre-registered seeds."""
    r = campaign_row(results, "minkowski-p4", "gan", epochs)
    if r is None:
        return ""
    rows = campaign_rows(results, epochs)
    fewest = int(min(rows["n_a"].min(), rows["n_b"].min()))
    most = int(max(rows["n_a"].max(), rows["n_b"].max()))
    have = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    return "" if fewest >= seeds else f" *Interim: {have} of the {seeds} pre-registered seeds an arm.*"


def contrast_source(results, epochs=VERDICT_EPOCHS):
    """Where the verdict's intervals come from, in one sentence."""
    if campaign_row(results, "minkowski-p4", "gan", epochs) is not None:
        return ("Differences a − b with the Welch 95 % intervals of the pre-registered campaign "
                "(`results/contrasts.csv`), read by its rule against 0 and the paper's gap.")
    sd, df = pooled_sd(image_runs(results, epochs))
    return (f"Differences a − b with 95 % intervals from the committed {epochs}-epoch seeds, 2 an arm, with the SD "
            f"({sd:.1f} FID) pooled over every arm ({df} degrees of freedom), read by the pre-registered rule against 0 "
            "and the paper's gap; the pre-registered campaign's 5 seeds an arm will replace them.")


def gradient_ratios(results, epochs):
    """{p: GAN's mean D gradient norm over the last epoch / that of Minkowski p}, from the run logs."""
    norms = pd.DataFrame([{"loss": cfg["loss"], "p": cfg["p"], "norm": last_epoch(m)["grad_norm_d"].mean()}
                          for _, cfg, m in run_logs(results, epochs) if cfg["loss"] in ("gan", "minkowski")])
    gan = norms[norms["loss"] == "gan"]["norm"].mean()
    return (gan / norms[norms["loss"] == "minkowski"].groupby("p")["norm"].mean()).to_dict()


def steadiness(results, epochs=VERDICT_EPOCHS):
    """Claim (c) by the pre-registered measure (H6): the coefficient of variation of D's gradient norm
    over epoch 2 (results/stability.csv), per arm, and p = 4 - GAN with Welch's interval once both arms
    have two runs with logs."""
    table = read_csv(results, "stability.csv")
    if table is None:
        return "untested (H6: `analysis/stability.py` has not been run on committed logs)."
    table = table[(table["clip_params"] == "all") & np.isclose(table["to_epoch"], epochs)
                  & np.isclose(table["epochs"], epochs, atol=0.01)]  # a longer run's epoch 2 is not another seed
    cv = {arm_label(loss, p, int(k)): g["cv_grad_norm_d"] for (loss, p, k), g in
          table.fillna({"p": 0}).groupby(["loss", "p", "n_critic"])}
    listed = ", ".join(f"{name} {v.mean():.2f} ({len(v)})" for name, v in sorted(cv.items(), key=lambda kv: kv[1].mean()))
    text = f"the coefficient of variation of D's gradient norm over epoch {epochs:g} (mean over runs; runs): {listed}"
    p4, gan = cv.get("Minkowski p = 4", pd.Series(dtype=float)), cv.get("GAN", pd.Series(dtype=float))
    if min(len(p4), len(gan)) < 2:
        return f"not decidable yet (H6 needs two p = 4 runs with logs; {len(p4)} so far). Measured: {text}."
    w = contrasts.welch(p4, gan)
    return (f"{contrasts.verdict(w['ci_low'], w['ci_high'], float('nan'))} by H6: p = 4 − GAN {signed(w['mean_diff'], 3)} "
            f"(Welch 95 % interval {interval(w['ci_low'], w['ci_high'], 3)}). Measured: {text}.")


def listed_p(ps):
    """'p = 7 and 8', 'p = 8', 'p = 5, 7 and 8'."""
    names = [f"{p:g}" for p in ps]
    return "p = " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def claim_words(results, epochs=VERDICT_EPOCHS):
    """Every rule's word of the verdict (minkgan/verdicts.py), from the committed results: what the
    verdict, the answer and results/verdicts.csv say."""
    runs = image_runs(results, epochs)
    means = {k[1]: g["final_fid"].mean() for k, g in arms(runs[runs["loss"] == "minkowski"])}
    h3 = campaign_row(results, "minkowski-p4", "minkowski-p1", epochs)
    words = {"best_p": verdicts.best_p(means, h3["verdict"] if h3 is not None else contrast(
                 results, runs, "minkowski-p4", "minkowski-p1")["verdict"]),
             "far_behind": verdicts.far_behind(means, pooled_sd(runs)[0])}
    for d in ("ring8", "grid25"):
        c = toy_contrast(results, d)
        words[f"modes_{d}"] = verdicts.direction(-c["high"], -c["low"]) if c else "untested"  # more modes is better
    cov = contrast(results, runs, "minkowski-p4", "gan", "final_coverage")
    words["coverage"] = verdicts.direction(-cov["high"], -cov["low"])
    words["one_loss"] = verdicts.one_loss(alignment_facts(results)["early"])
    words["arguments_fail"] = verdicts.arguments_that_fail(derivations.loss_d_minimum(2.5),
                                                           derivations.binomial_table()["dlog_digamma"])
    for name in ("gan", "wgan", "minkowski-p1"):
        r = campaign_row(results, "minkowski-p4", name, epochs)
        words[f"p4_vs_{name}"] = r["verdict"] if r is not None else "not yet measured"
    return words


def claim(results, name):
    """The 'verdict now' cell of one row of docs/claims.md, its words from claim_words' rules."""
    w = claim_words(results)
    say = lambda b: verdicts.CONTRAST_PHRASES[w[f"p4_vs_{b}"]]  # noqa: E731
    if name == "a":
        h8 = failure_rows(results)
        weights = "not yet measured"
        if h8 is not None and len(h8):
            r = h8[h8["rule"] == "preregistered"].set_index("b")
            weights = (f"failures p = 4 {r['failed_a'].iloc[0]} of {r['n_a'].iloc[0]}, GAN {r.loc['gan', 'failed_b']} of "
                       f"{r.loc['gan', 'n_b']}, WGAN {r.loc['wgan', 'failed_b']} of {r.loc['wgan', 'n_b']}: "
                       f"{r.loc['gan', 'failure_verdict']} against GAN, {r.loc['wgan', 'failure_verdict']} against WGAN")
        return (f"against GAN: {say('gan')} (H1); against WGAN (5 critic steps, equal epochs): {say('wgan')} (H2); at "
                f"equal G steps: not yet measured (H9). With only conv and linear weights clipped (H8, interim): {weights}")
    if name == "b":
        behind = f"; {listed_p(w['far_behind'])} far behind" if w["far_behind"] else ""
        return f"{w['best_p']}: p = 4 − p = 1: {say('minkowski-p1')} (H3){behind}"
    if name == "d":
        best_clipped = toy_rows(results, 0.01)["final_hq_pct_mean"].max()
        clipped = "uninformative (no arm, WGAN's included, learns a mixture)" if best_clipped < UNINFORMATIVE_HQ_PCT \
            else "see the verdict"
        return (f"{w['modes_ring8']} on ring8 and {w['modes_grid25']} on grid25 without clipping (not the paper's "
                f"setup); {w['coverage']} on CIFAR-10 (coverage); the clipped 2-D benchmark (H5): {clipped}")
    if name == "i":
        table = horizon_rows(results)
        if table is None:
            return "untested past 2 epochs"
        sd, _ = pooled_sd(image_runs(results, VERDICT_EPOCHS))
        return (f"untested at 200 epochs. At {table['epoch'].max():g} epochs (one seed an arm, a description, not a test), "
                f"after epoch {VERDICT_EPOCHS}: {crossings(horizon_curves(table), sd)}")
    raise UserError(f"<!-- report:claim name={name} -->: no such claim row; rows a, b, d, i are generated")


def sample_grids(results, clip_params="weights", steps=1562):
    """The final sample grids the run logs keep (an image run's last grid, since 2026-12-07), side by side in a
    table: one cell per run, labelled with its arm, seed and whether the failure rule flagged it."""
    runs = read_csv(results, "runs.csv")
    runs = runs[(runs["dataset"] == "folder") & (runs["clip_params"] == clip_params) & (runs["total_steps"] <= steps)
                & (runs["status"] == "completed")]
    cells = []
    for r in runs.sort_values(["loss", "seed"]).to_dict("records"):
        dataset, name = r["run"].split("/")
        folder = os.path.join(results, "run_logs", f"{dataset}-{int(r['total_steps'])}steps", name)
        grids = sorted(glob.glob(os.path.join(folder, "step*.png")))
        if grids:
            state = {"yes": "failed", "no": "not failed by the rule"}.get(r.get("failed"), "no failure value")
            if r.get("final_precision") == 0 and r.get("final_coverage") == 0:
                state += ", precision and coverage 0"
            label = f"{arm_label(r['loss'], r['p'] if r['loss'] == 'minkowski' else None, int(r['n_critic']))}, seed {r['seed']:g} ({state})"
            cells.append((label, os.path.relpath(grids[-1], os.path.dirname(results))))
    if not cells:
        return "No run log of this reading keeps a sample grid yet."
    return markdown_table([c[0] for c in cells], [[f"![{c[0]}]({c[1]})" for c in cells]])


def answer(results, epochs=VERDICT_EPOCHS):
    """The README's answer in one paragraph, every conclusion word from claim_words' rules."""
    w = claim_words(results, epochs)
    rows = campaign_rows(results, epochs)
    seeds = f"{int(rows['n_a'].min())}" if rows is not None and len(rows) else "the committed"
    say = lambda name: verdicts.CONTRAST_PHRASES[w[f"p4_vs_{name}"]]  # noqa: E731
    behind = f"; {listed_p(w['far_behind'])} far behind" if w["far_behind"] else ""
    h8 = failure_rows(results, epochs)
    if h8 is not None and len(h8):
        r = h8[h8["rule"] == "preregistered"].set_index("b")
        other = (f"runs fail by the pre-registered rule: p = 4 {r['failed_a'].iloc[0]} of {r['n_a'].iloc[0]}, GAN "
                 f"{r.loc['gan', 'failed_b']} of {r.loc['gan', 'n_b']}, WGAN {r.loc['wgan', 'failed_b']} of "
                 f"{r.loc['wgan', 'n_b']} (H8 so far: against GAN {r.loc['gan', 'failure_verdict']}, against WGAN "
                 f"{r.loc['wgan', 'failure_verdict']})")
    else:
        other = "H8 is not yet measured"
    return (f"**The answer so far.** At a CPU budget of {epochs} epochs (the paper trained 200), with {seeds} seeds an arm "
            "in a [pre-registered](docs/preregistration.md) campaign with every D parameter clipped (the repository's "
            f"default reading of the paper's clipping): against WGAN {say('wgan')} (at equal epochs; WGAN's 5 critic steps "
            f"make 5 times fewer G steps); against GAN {say('gan')}; against p = 1 {say('minkowski-p1')}. p = 4 as the best "
            f"p: {w['best_p']}{behind}. Less mode collapse: {w['modes_ring8']} on ring8 and {w['modes_grid25']} on grid25 "
            f"without clipping, {w['coverage']} on CIFAR-10. Under this reading the losses are {w['one_loss']}: D's logits "
            "stay small, where every loss's D gradient is nearly WGAN's times a constant, which Adam divides out. Under "
            f"the other reading (conv and linear weights only) D's logits grow and the losses differ; there {other}. "
            "Each claim, with its interval and its budget, is in the [verdict](#verdict) and the "
            "[claims table](docs/claims.md).")


def verdict(results):
    runs = image_runs(results, VERDICT_EPOCHS)
    means = {k[1]: g["final_fid"].mean() for k, g in arms(runs[runs["loss"] == "minkowski"])}
    ratios = gradient_ratios(results, VERDICT_EPOCHS)
    align = alignment_facts(results)
    ring, grid = toy_contrast(results, "ring8"), toy_contrast(results, "grid25")
    cov = contrast(results, runs, "minkowski-p4", "gan", "final_coverage")
    b = derivations.binomial_table()
    at = f"at {VERDICT_EPOCHS} epochs"
    words = claim_words(results)
    behind = words["far_behind"]
    level = [v for p, v in means.items() if p not in behind]
    predicted = {p: r / 2 ** p for p, r in ratios.items()}
    return "\n".join([
        contrast_source(results) + "\n",
        f"- **(a) p = 4 beats GAN and WGAN (Table 2), {at}.** p = 4 − GAN: "
        f"{contrast_text(results, 'minkowski-p4', 'gan')}; p = 4 − WGAN (5 critic steps, so 5 times fewer G steps in "
        f"the same epochs): {contrast_text(results, 'minkowski-p4', 'wgan')}. "
        f"[Contrasts](docs/results.md#contrasts){campaign_progress(results)}",
        f"- **(b) p = 4 is the best p (Table 3): {words['best_p']} {at}.** The lowest mean FID is at "
        f"p = {min(means, key=means.get):g}; "
        f"p = 4 − p = 1: {contrast_text(results, 'minkowski-p4', 'minkowski-p1')}. The other p lie within "
        f"{min(level):.1f}–{max(level):.1f}"
        + (f"; {listed_p(behind)} far behind ({', '.join(f'{means[p]:.1f}' for p in behind)}: more than "
           f"{verdicts.FAR_BEHIND_SDS:g} pooled SDs above the best p)" if behind else "")
        + ". Whether p matters among the others: [ANOVA and power](docs/results.md#does-p-matter)",
        f"- **(c) Steadier loss curves and D gradients (Figures 1–3):** {steadiness(results)} What differs for sure "
        f"is scale: over the last epoch GAN's D gradient norm is "
        + ", ".join(f"{r:.0f}x" if r >= 10 else f"{r:.1f}x" for r in ratios.values()) + " that of p = "
        + ", ".join(f"{p:g}" for p in ratios) + " (the run logs; the clipped regime predicts 2^p: "
        + ", ".join(f"{2 ** p:g}" for p in ratios) + f"; measured over predicted {min(predicted.values()):.1f}–"
        f"{max(predicted.values()):.1f}x). [D's regime](docs/results.md#ds-regime)",
        f"- **(d) Less mode collapse (Figures 4–5): {words['modes_ring8']} on ring8 and {words['modes_grid25']} on "
        f"grid25 without clipping (not the paper's setup), {words['coverage']} on CIFAR-10.** Modes captured, "
        f"p = 4 − GAN, without clipping: ring8 {signed(ring['diff'])} "
        f"(Welch 95 % interval {interval(ring['low'], ring['high'])}, "
        f"{ring['n']} seeds), grid25 {signed(grid['diff'])} ({interval(grid['low'], grid['high'])}, {grid['n']} seeds). "
        f"CIFAR-10 {at}: coverage p = 4 − GAN {signed(cov['diff'], 3)} ({interval(cov['low'], cov['high'], 3)}, pooled SD); "
        f"recall is at most {runs['final_recall'].max():.4f} in every run, too small to rank. "
        f"{clipped_toys(results)} [2-D benchmarks](docs/results.md#2-d-benchmarks)",
        f"- **The mechanism (ours): under the paper's clipping the losses are {words['one_loss']}.** Every loss's D gradient "
        f"but LSGAN's points along WGAN's (cosine ≥ {align['early'].min():.3f} at steps 100–300); by the end of "
        f"epoch 2 p = 8's is "
        f"{value_range(align['p8_2ep'])}. [The clipped regime](docs/clipped-regime.md)",
        f"- **The derivations: {verdicts.ARGUMENTS_SENTENCE[words['arguments_fail']]}.** p need not be even (with |·| the loss is "
        f"non-negative for every real p ≥ 1), and C(p, 4) has no maximum at p = 4 (its log-derivative there is "
        f"{b['dlog_digamma']:.4f} > 0; the paper prints {derivations.PAPER_DLOG_BINOMIAL}). [Derivations](docs/derivations.md)",
        weights_only_line(results),
        horizon_line(results),
        f"- **Higher moments closer to the data's (H7), {at}:** {higher_moments(results)} {toy_higher_moments(results)} "
        "[Higher moments](docs/results.md#higher-moments)",
        "- **Anything at the paper's 200 epochs: untested.** [Claims](docs/claims.md)"])


def weights_only_line(results, epochs=VERDICT_EPOCHS):
    """The verdict's line on the other reading of the clipping (H4, exploratory): its contrasts,
    and how many Minkowski runs learned no images (precision and coverage 0)."""
    if campaign_row(results, "minkowski-p4", "gan", epochs, "weights") is None:
        return "- **The other reading of the clipping (conv and linear weights only, H4): not yet measured.**"
    runs = image_runs(results, epochs, clip_params="weights")
    mink = runs[runs["loss"] == "minkowski"]
    blank = mink[(mink["final_precision"] == 0) & (mink["final_coverage"] == 0)]
    text = lambda b: contrast_text(results, "minkowski-p4", b, epochs, "weights")  # noqa: E731
    return (f"- **The other reading of the clipping (H4: conv and linear weights only, exploratory, "
            f"{seeds_per_arm(runs)} seeds an arm), at {epochs} epochs:** D's largest |logit| at the end is "
            f"{value_range(runs['final_logit_absmax'], 1)} (with every parameter clipped "
            f"{value_range(image_runs(results, epochs)['final_logit_absmax'], 2)}) and the losses differ, yet "
            f"p = 4 − GAN: {text('gan')}; p = 4 − WGAN (5 critic steps): "
            f"{text('wgan')}; p = 4 − p = 1: {text('minkowski-p1')}; p = 4 − p = 8: {text('minkowski-p8')}. "
            f"{len(blank)} of {len(mink)} Minkowski runs end with precision and coverage 0 (no image like the data's). "
            "[H4](docs/results.md#the-weights-only-reading-of-the-clipping-h4) " + h8_line(results, epochs))


H8_SEEDS = 8  # pre-registered: seeds 0-7 an arm (docs/preregistration-addendum.md)
FAILURE_RULES = {"preregistered": "the pre-registered rule", "or-blank": "the rule or precision and coverage 0 (deviation)"}


def failure_rows(results, epochs=VERDICT_EPOCHS):
    """H8's rows of results/failures.csv (analysis/failures.py), or None while it is not committed."""
    table = read_csv(results, "failures.csv")
    return None if table is None else table[(table["reading"] == "weights") & (table["epochs"].round() == epochs)]


def failures(results, epochs=VERDICT_EPOCHS):
    """H8: failures per arm under each rule, Fisher's test, and the FID with and without the failed runs."""
    rows = failure_rows(results, int(epochs))
    if rows is None or not len(rows):
        return not_yet("failures.csv", "H8, `python -m analysis.failures`")
    body = []
    for r in rows.to_dict("records"):
        trained = (f"{interval(r['trained_ci_low'], r['trained_ci_high'])} ({r['n_trained_a']}, {r['n_trained_b']}): "
                   if r["welch_verdict"] != "not decidable" else f"({r['n_trained_a']}, {r['n_trained_b']} runs): ")
        body.append([FAILURE_RULES[r["rule"]], f"{arm_label(*contrasts.ARMS[r['a']])} − {arm_label(*contrasts.ARMS[r['b']])}",
                     f"{r['failed_a']} of {r['n_a']}", f"{r['failed_b']} of {r['n_b']}",
                     f"{r['fisher_p']:.3f} ({r['fisher_p_holm']:.3f})", num(r["fisher_power"], 2), r["failure_verdict"],
                     trained + r["welch_verdict"], f"{r['mw_p']:.3f}: {r['mw_verdict']}"])
    runs = image_runs(results, int(epochs), clip_params="weights")
    runs = runs[runs["loss"].isin(["gan", "wgan"]) | (runs["p"] == 4)]
    return (markdown_table(["failure rule", "contrast", "failed (a)", "failed (b)", "Fisher p (Holm)",
                            "power at 1/2 vs 0", "failures", "FID of the runs that trained: Welch 95 % interval (n)",
                            "every run: Mann-Whitney p"], body)
            + f"\n\n{len(runs)} of the {3 * H8_SEEDS} pre-registered runs are committed. " + budget(runs))


def h8_line(results, epochs=VERDICT_EPOCHS):
    """The verdict's sentence on H8, from results/failures.csv: failures and the tests' words, both rules."""
    rows = failure_rows(results, epochs)
    if rows is None or not len(rows):
        return "H8 (the weights-only reading, powered): not yet measured."
    pre = rows[rows["rule"] == "preregistered"].set_index("b")
    dev = rows[rows["rule"] == "or-blank"].set_index("b")
    first = pre.iloc[0]
    counts = (f"p = 4 {first['failed_a']} of {first['n_a']}, "
              + ", ".join(f"{arm_label(*contrasts.ARMS[b])} {r['failed_b']} of {r['n_b']}" for b, r in pre.iterrows()))
    tests = "; ".join(f"against {arm_label(*contrasts.ARMS[b])} Fisher p = {r['fisher_p']:.3f}: **{r['failure_verdict']}** "
                      f"(power {r['fisher_power']:.2f} at failure rates 1/2 and 0)" for b, r in pre.iterrows())
    deviation = ", ".join(f"{r['failed_a']} of {r['n_a']} against {arm_label(*contrasts.ARMS[b])}'s {r['failed_b']}: "
                          f"{r['failure_verdict']}" for b, r in dev.iterrows())
    ranks = "; ".join(f"against {arm_label(*contrasts.ARMS[b])} p = {r['mw_p']:.3f}, {r['mw_verdict']}" for b, r in pre.iterrows())
    have = int(min(first["n_a"], pre["n_b"].min()))
    interim = f" *Interim: {have} of the {H8_SEEDS} pre-registered seeds in the smallest arm.*" if have < H8_SEEDS else ""
    return (f"H8 (pre-registered): runs failed by the failure rule: {counts}; {tests}. Counting also the runs that end "
            f"with precision and coverage 0 (a deviation, chosen after p = 4's seed 2): {deviation}. Over every run "
            f"(Mann-Whitney): {ranks}. [H8](docs/results.md#failures-under-the-weights-only-reading-h8){interim}")


HORIZON_ARMS = ["GAN", "WGAN (5 critic steps)", "Minkowski p = 4", "Minkowski p = 8"]  # pre-registered


def ranked(values):
    """'A 83.1, B 90.0, C 133.1' from (value, text) pairs, best (lowest) first."""
    return ", ".join(text for _, text in sorted(values))


def by_fid(fids):
    return ranked((v, f"{k} {num(v)}") for k, v in fids.items())


def crossings(curves, sd, start=VERDICT_EPOCHS):
    """The pairs of arms whose order by FID flips after epoch `start` ({arm: Series of FID by epoch}):
    by the pre-registered rule as written, a crossing at the first later evaluation where the arm behind
    at `start` leads by more than sd; beside it, named as such, the end-only reading (the last evaluation
    alone) that the code applied before the correction of 2026-12-07."""
    out = []
    for a, ca in curves.items():
        for b, cb in curves.items():
            if start not in ca or start not in cb or not ca[start] > cb[start]:
                continue
            later = [e for e in ca.index if e > start and e in cb.index]
            leads = [e for e in later if cb[e] - ca[e] > sd]
            end = later[-1] if later else None
            if not leads and (end is None or ca[end] >= cb[end]):
                continue
            rule = (f"a crossing by the rule at epoch {leads[0]:g} ({cb[leads[0]] - ca[leads[0]]:.1f} FID ahead)" if leads
                    else "no crossing by the rule (never ahead by more than the seed SD)")
            at_end = (f"{cb[end] - ca[end]:+.1f} FID ahead at the end: "
                      + ("a crossing" if cb[end] - ca[end] > sd else "none") + " by the end-only reading")
            out.append(f"{a} passes {b}: {rule}; {at_end}")
    return "; ".join(out) if out else "no arm passes another"


def horizon_curves(table):
    """{arm: its FID by epoch at the evaluations' sample count} of the horizon's runs."""
    n = table["n"].min()
    return {arm_label(*arm_key(rows.iloc[0])): rows[rows["n"] == n].set_index("epoch")["fid"]
            for _, rows in table.groupby("run", sort=False)}


def horizon_line(results):
    """The verdict's line on the budget, compact for four runs: the arms ranked by FID at epoch 2 and
    at the end (neighbours closer than the 2-epoch seed SD are ties, as pre-registered), the final
    FID of 5000 beside the paper's 200-epoch value, and whether D's largest |logit| grows
    (horizon_fits.csv); the epoch-by-epoch tables are in docs/results.md."""
    table, fits = horizon_rows(results), read_csv(results, "horizon_fits.csv")
    if table is None:
        return "- **The budget: untested past 2 epochs**; the 10-epoch horizon is pre-registered and running."
    sd, _ = pooled_sd(image_runs(results, VERDICT_EPOCHS))
    epochs, n = table["epoch"].max(), table["n"].min()
    finals, early, late, logits, labels = [], {}, {}, [], []
    curves = horizon_curves(table)
    for _, rows in table.groupby("run", sort=False):
        row = rows.iloc[0]
        name = arm_label(*arm_key(row))
        labels.append(name)
        curve = curves[name]
        final = rows[rows["n"] == 5000]
        paper = paper_fid(results, *arm_key(row))
        if len(final):
            finals.append((final["fid"].iloc[-1], f"{name} {num(final['fid'].iloc[-1])}" + (f" ({num(paper)})" if paper else "")))
        for at, out in ((VERDICT_EPOCHS, early), (epochs, late)):
            if at in curve:
                out[name] = curve[at]
        fit = fits[fits["run"] == row["run"]] if fits is not None else pd.DataFrame()
        absmax = rows[rows["n"] == n].sort_values("epoch")["logit_absmax"].iloc[-1]
        logits.append(f"{name} {num(absmax, 2)}"
                      + (f" (epoch^{fit['exponent'].iloc[0]:.2f}, r² {fit['r2'].iloc[0]:.2f})" if len(fit) else ""))
    text = (f"- **The budget, {epochs:g} epochs (seed {span(table['seed'])}, one run an arm: a description, not a test):** "
            f"FID of {n}, best first, at epoch {VERDICT_EPOCHS}: {by_fid(early)}; at epoch {epochs:g}: {by_fid(late)}; "
            f"after epoch {VERDICT_EPOCHS}: {crossings(curves, sd)} (the 2-epoch seed SD: {sd:.1f} FID). "
            f"FID 5000 vs 5000 at epoch {epochs:g} (the paper's at 200 epochs in brackets): {ranked(finals)}. D's largest |logit| at epoch "
            f"{epochs:g} (its growth fitted from epoch 2 on): " + ", ".join(logits))
    fits = fits[fits["run"].isin(table["run"])] if fits is not None else pd.DataFrame()
    if len(fits):
        growing = int((fits["exponent"] > 0).sum())
        at_200 = fits["logit_absmax_at_200"]
        text += (f"; it grows in {growing} of {len(fits)} runs (largest exponent {fits['exponent'].max():+.2f}); "
                 f"extrapolated to 200 epochs, {num(at_200.min(), 2)}" + (f"–{num(at_200.max(), 2)}" if len(fits) > 1 else "")
                 + f", a trend of {int(fits['points'].max())} points of one seed")
        for run in fits[fits["exponent"] > 0]["run"]:  # does the growth go on, or level off before the end?
            last = table[(table["run"] == run) & (table["n"] == n)].sort_values("epoch").tail(3)
            text += (f"; {arm_label(*arm_key(last.iloc[0]))}'s at epochs {', '.join(f'{e:g}' for e in last['epoch'])}: "
                     + ", ".join(num(v, 2) for v in last["logit_absmax"]))
    missing = [arm for arm in HORIZON_ARMS if arm not in labels]
    return text + (f". Still to run: {', '.join(missing)}" if missing else "") + \
        ". [Horizon](docs/results.md#the-10-epoch-horizon)"


BLOCKS = {"paper": paper, "setup": setup, "table2": table2, "table3": table3, "anova": anova, "contrasts": contrasts_block,
          "contrasts-csv": contrasts_csv, "regime": regime, "machines": machines, "adam-eps": adam_eps,
          "earlier-2epochs": earlier_2epochs, "horizon": horizon, "toy": toy, "alignment": alignment,
          "alignment-summary": alignment_summary, "alignment-horizon": alignment_horizon, "trajectories": trajectories, "fid-floor": fid_floor,
          "bench-ops": bench_ops, "bench-step": bench_step, "aten-ops": aten_ops, "moments": moments, "toy-moments": toy_moments, "dirac": dirac, "two-point": two_point,
          "bilinear": bilinear, "derivations": derivation_table, "verdict": verdict, "failures": failures, "answer": answer, "claim": claim, "samples": sample_grids}


# ----------------------------------------------------------------------------- rendering

def block_text(key, results):
    """What BLOCKS writes for a marker's key, 'name arg=value ...'."""
    name, *words = key.split()
    if name not in BLOCKS or not all("=" in w for w in words):
        raise UserError(f"<!-- report:{key} -->: no such block; the blocks are {', '.join(BLOCKS)}")
    kwargs = dict(w.split("=", 1) for w in words)
    try:
        inspect.signature(BLOCKS[name]).bind(results, **kwargs)
    except TypeError as e:
        raise UserError(f"<!-- report:{key} -->: {e}") from None
    return BLOCKS[name](results, **kwargs).strip()


def render(text, results=RESULTS):
    """text with every generated block rewritten from results: a block whose opening marker starts a
    line on lines of its own, one inside a line inline."""
    def fill(match):
        key, body = match["key"], block_text(match["key"], results)
        if match.start() == 0 or text[match.start() - 1] == "\n":  # blank lines: Markdown ends the comment there
            body = "\n\n" + body + "\n\n"
        return f"<!-- report:{key} -->{body}<!-- /report:{key} -->"
    return BLOCK.sub(fill, text)


def stale(root=HERE, results=RESULTS):
    """The documents whose generated blocks differ from what results gives."""
    out = []
    for path in documents(root):
        with open(path) as f:
            text = f.read()
        if render(text, results) != text:
            out.append(os.path.relpath(path, root))
    return out


# The analyses that derive a results file from runs.csv and the run logs, as `--recompute` reruns them
# ({r} is the results folder): each merges its rows by key, so a rerun on the same data changes nothing.
RECOMPUTE = [
    ["analysis.contrasts", "{r}/runs.csv", "--csv", "{r}/contrasts.csv", "--figure", "{r}/figures/contrasts.png"],
    ["analysis.p_effect", "{r}/runs.csv", "--steps", "1562", "--csv", "{r}/p_effect.csv",
     "--figure", "{r}/figures/fid_vs_p_2ep.png"],
    ["analysis.p_effect", "{r}/runs.csv", "--steps", "781", "--csv", "{r}/p_effect.csv", "--figure", "{r}/figures/fid_vs_p.png"],
    ["analysis.stability", "{r}/run_logs/folder-1562steps", "{r}/run_logs/folder-313steps", "--csv", "{r}/stability.csv"],
    ["analysis.failures", "{r}/runs.csv", "--csv", "{r}/failures.csv", "--figure", "{r}/figures/failures.png"],
]


def recompute(results):
    """Rerun every analysis of RECOMPUTE on results/ (as separate processes: report.py imports no command);
    the first that fails stops it with its one-line error."""
    for module, *argv in RECOMPUTE:
        cmd = [sys.executable, "-m", module, *(a.format(r=results) for a in argv)]
        done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"python -m {module} failed ({last}); fix it, then rerun report.py --recompute")
        print(f"recomputed: python -m {module} {' '.join(argv[:1])}".replace("{r}", os.path.relpath(results, HERE)))


def write_verdicts(results):
    """results/verdicts.csv: each rule's word (claim_words) with the rule that chose it, so that a reader
    of the results files sees the outcomes the documents state."""
    rules = {"best_p": "verdicts.best_p", "far_behind": "verdicts.far_behind", "modes_ring8": "verdicts.direction",
             "modes_grid25": "verdicts.direction", "coverage": "verdicts.direction", "one_loss": "verdicts.one_loss",
             "arguments_fail": "verdicts.arguments_that_fail"}
    rows = [{"outcome": name, "word": " ".join(f"{p:g}" for p in word) if isinstance(word, list) else word,
             "rule": rules.get(name, "contrasts.verdict")} for name, word in claim_words(results).items()]
    atomic_write_text(os.path.join(results, "verdicts.csv"), pd.DataFrame(rows).to_csv(index=False))
    print(f"wrote {os.path.join(results, 'verdicts.csv')}")


def main(argv=None):
    ap = OneLineParser(prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    ap.add_argument("--recompute", action="store_true",
                    help="first rerun every analysis that derives a results file from runs.csv and the run logs "
                         "(contrasts, p_effect, stability, failures), then rewrite the documents")
    ap.add_argument("--results", default=None, help="the results folder to read (default results/; "
                    "--recompute rewrites its files, so it must be named there)")
    args = ap.parse_args(argv)
    if args.recompute and args.results is None:
        raise UserError("--recompute rewrites results files: name the folder, e.g. --recompute --results results")
    args.results = args.results or RESULTS
    if not os.path.isdir(args.results):
        raise UserError(f"--results {args.results} is not a folder; name the results folder to read")
    if args.check and args.recompute:
        raise UserError("--check writes nothing and --recompute rewrites the results files: use one")
    if args.recompute:
        recompute(args.results)
        write_verdicts(args.results)
    if args.check:
        changed = stale(HERE, args.results)
        for path in changed:
            print(f"{path} differs from what report.py writes: run python report.py")
        return 1 if changed else 0
    for path in documents():
        with open(path) as f:
            text = f.read()
        new = render(text, args.results)
        if new != text:
            atomic_write_text(path, new)
            print(f"wrote {os.path.relpath(path, HERE)}")
    return 0


if __name__ == "__main__":
    run_main(main)
