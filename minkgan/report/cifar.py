"""The CIFAR-10 blocks of README.md and docs/results.md: the paper's tables beside ours, the tests, D's regime."""
import glob
import os

import pandas as pd

from minkgan import contrasts, p_effect, stats
from minkgan import paper as paper_csv
from minkgan import runs as runs_csv
from minkgan import settings
import losses
from minkgan.report.text import cpu, interval, markdown_table, mean_sd, not_yet, num, per_seed, sig, signed, small, span
from minkgan.report.facts import (FAILURE_RULES, H8_SEEDS, VERDICT_EPOCHS, arm_key, arm_label, arm_values, arms,
    budget, contrast, failure_rows, horizon_rows, image_runs, last_epoch, paper_fid, pooled_sd, read_csv, run_logs)


def paper(results):
    """The paper's Tables 2 and 3 (results/paper.csv)."""
    rows = paper_csv.table(os.path.join(results, "paper.csv"))
    t2, t3 = rows[rows["table"] == 2], rows[rows["table"] == 3].sort_values("p")
    labels = [arm_label(loss, p, losses.default_n_critic(loss)) for loss, p in zip(t2["loss"], t2["p"])]
    return (markdown_table(["Table 2", *labels], [["FID", *(num(v) for v in t2["fid"])]]) + "\n\n"
            + markdown_table(["Table 3: p", *(f"{p:g}" for p in t3["p"])], [["FID", *(num(v) for v in t3["fid"])]]))


def setup(results):
    """The paper's Table 1, as train.py's defaults."""
    d = vars(settings.build_parser().parse_args([]))
    lr = f"{d['lr']:.0e}".replace("e-0", "e-")
    return (f"CIFAR-10, DCGAN-style nets, z = {d['z_dim']}, Adam lr {lr}, betas ({d['beta1']:g}, "
            f"{d['beta2']:g}), batch {d['batch_size']}, {d['epochs']:g} epochs, D's weights clipped to "
            f"[-{settings.default_clip('gan', 'cifar10'):g}, {settings.default_clip('gan', 'cifar10'):g}] for every model")


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
                     f"{settings.ADAM_EPS:g}: " + (mean_sd(base[0]["final_fid"]) if base else "–"),
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


def sample_grids(results, clip_params="weights", steps=1562):
    """The final sample grids the run logs keep (an image run's last grid, since 2026-12-07), side by side in a
    table: one cell per run, labelled with its arm, seed and whether the failure rule flagged it."""
    runs = runs_csv.read(os.path.join(results, "runs.csv"))
    runs = runs[(runs["dataset"] == "folder") & (runs["reading"] == clip_params) & (runs["total_steps"] <= steps)
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


def fid_floor(results):
    """The FID floor (real against real at the same count) where the committed runs hold it."""
    runs = runs_csv.read(os.path.join(results, "runs.csv"))
    floors = runs.dropna(subset=["final_fid_floor"]).groupby("n_real")[["final_fid_floor", "final_fid_floor_test"]].first()
    if not len(floors):
        return "No FID floor is committed."
    return "; ".join(f"at {n:g} real images: {r['final_fid_floor']:.1f} (train against train), "
                     f"{r['final_fid_floor_test']:.1f} (train against test)" for n, r in floors.iterrows()) + \
        " (`final_fid_floor`, `final_fid_floor_test` of `results/runs.csv`)"
