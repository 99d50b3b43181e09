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
from minkgan.report.sentences import say

PAGE = "cifar"  # its sentences: minkgan/report/sentences/cifar.txt


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
    return say(PAGE, "setup", z_dim=d["z_dim"], lr=lr, beta1=d["beta1"], beta2=d["beta2"], batch_size=d["batch_size"],
               epochs=d["epochs"], clip=settings.default_clip("gan", "cifar10"))


def table2(results, epochs, clip_params="all"):
    """The paper's Table 2 beside ours at one budget: every loss but Minkowski's other p."""
    runs = image_runs(results, epochs, clip_params)
    runs = runs[(runs["loss"] != "minkowski") | (runs["p"] == 4)]
    if not len(runs):
        return say(PAGE, "table2_none", epochs=epochs, clip_params=clip_params)
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
    return say(PAGE, "metric_note_gaps" if gaps else "metric_note")


def table3(results, epochs, clip_params="all"):
    """The paper's Table 3 beside ours at one budget: FID by p."""
    runs = image_runs(results, epochs, clip_params)
    runs = runs[runs["loss"] == "minkowski"]
    if not len(runs):
        return say(PAGE, "table3_none", epochs=epochs, clip_params=clip_params)
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
    text = say(PAGE, "anova", runs=row["runs"], F=row["F"], df_between=row["df_between"], df_within=row["df_within"],
               p=sig(row["p_anova"]), p_permutation=sig(row["p_permutation"]), permutations=row["permutations"],
               eta2=row["eta2"], omega2=row["omega2"])
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
    found = say(PAGE, "anova_p_matters" if sub["p_anova"] < stats.ALPHA else "anova_not_established")
    return text + " " + say(PAGE, "anova_among", among=among.replace("-", "–"), runs=len(runs), F=sub["F"],
                            df_between=sub["df_between"], df_within=sub["df_within"], p=sig(sub["p_anova"]),
                            p_permutation=sig(sub["p_permutation"]), omega2=sub["omega2"], seeds=seeds, sd=sd,
                            power=power, found=found)


def contrasts_block(results, epochs):
    """The pre-registered contrasts (H1-H3 of contrasts.FAMILIES) on the seeds committed so far."""
    runs = image_runs(results, epochs)
    rows = []
    for i, (a, b) in enumerate(contrasts.FAMILIES["H1-H3"][1], 1):
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
            + "\n\n" + say(PAGE, "contrasts_note", sd=sd, df=df) + "\n\n" + budget(runs))


def contrasts_csv(results):
    """The campaign's contrasts (results/contrasts.csv), as the pre-registration specifies them."""
    table = read_csv(results, "contrasts.csv")
    if table is None:
        return not_yet("contrasts.csv", say(PAGE, "contrasts_csv_not_yet"))
    rows = [[r["family"], r["reading"], r["metric"], f"{r['epochs']:g}", f"{r['a']} − {r['b']}", f"{r['n_a']}, {r['n_b']}",
             f"{num(r['mean_a'])}, {num(r['mean_b'])}",
             signed(r["mean_diff"]), interval(r["ci_low"], r["ci_high"]), sig(r["p_value"]), sig(r["p_holm"]),
             num(r["paper_gap"]), num(r["power_at_paper_gap"], 2), r["verdict"]] for _, r in table.iterrows()]
    machines = sorted({cpu(m.strip()) for h in table["hardware"].dropna() for m in h.split("/")})
    return (markdown_table(["family", "reading", "metric", "epochs", "a − b", "seeds", "means", "difference",
                            "95 % interval (Welch)", "p", "p (Holm)", "paper's gap", "power at the paper's gap",
                            "verdict"], rows)
            + "\n\n" + say(PAGE, "contrasts_csv_note", machines=", ".join(machines))
            + (" " + say(PAGE, "contrasts_csv_long") if (table["epochs"] > 2).any() or (table["family"] == "H9").any() else ""))


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
        return say(PAGE, "regime_none", epochs=epochs)
    every = sorted({int(cfg["log_every"]) for _, cfg, _ in run_logs(results, epochs)})
    return (markdown_table(["run", "CPU", "largest \\|logit\\|: peak (step)", "at the end", "change over the last quarter",
                            "D's gradient norm, mean over the last epoch"], rows)
            + "\n\n" + say(PAGE, "regime_note", every=", ".join(map(str, every))))


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
            + "\n\n" + say(PAGE, "earlier_note", epochs=r["epochs"], steps=r["steps"], wgan_steps=t["steps"].min(),
                             n_fake=r["n_fake"], n_real=r["n_real"], seeds=r["seeds"].replace(" ", ", "),
                             hardware=r["hardware"], note=r["note"]))


def horizon(results, clip_params="all"):
    """The 10-epoch horizon (analysis/horizon.py's results/horizon.csv): the FID at each evaluation, a table
    per sample count, and D's largest |logit| there."""
    table = horizon_rows(results, clip_params)
    if table is None:
        return not_yet("horizon.csv", say(PAGE, "horizon_not_yet"))
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
    floor = "" if floors is None else "".join(" " + say(PAGE, "horizon_floor", n=n, floor=num(f))
                                              for n, f in zip(floors["n"], floors["fid_floor"]))
    clipped = say(PAGE, "clipped_all" if clip_params == "all" else "clipped_weights")
    return "\n\n".join(out) + "\n\n" + say(PAGE, "horizon_note", seeds=span(table["seed"]),
                                             steps=table["total_steps"].max(), clipped=clipped,
                                             cpus=", ".join(sorted(map(cpu, table["device"].unique())))) + floor


def failures(results, epochs=VERDICT_EPOCHS):
    """H8: failures per arm under each rule, Fisher's test, and the FID with and without the failed runs."""
    rows = failure_rows(results, int(epochs))
    if rows is None or not len(rows):
        return not_yet("failures.csv", say(PAGE, "failures_not_yet"))
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
            + "\n\n" + say(PAGE, "failures_note", committed=len(runs), planned=3 * H8_SEEDS) + " " + budget(runs))


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
        return say(PAGE, "grids_none")
    return markdown_table([c[0] for c in cells], [[f"![{c[0]}]({c[1]})" for c in cells]])


def fid_floor(results):
    """The FID floor (real against real at the same count) where the committed runs hold it."""
    runs = runs_csv.read(os.path.join(results, "runs.csv"))
    floors = runs.dropna(subset=["final_fid_floor"]).groupby("n_real")[["final_fid_floor", "final_fid_floor_test"]].first()
    if not len(floors):
        return say(PAGE, "fid_floor_none")
    return "; ".join(say(PAGE, "fid_floor_at", n=n, train=r["final_fid_floor"], test=r["final_fid_floor_test"])
                     for n, r in floors.iterrows()) + " " + say(PAGE, "fid_floor_source")
