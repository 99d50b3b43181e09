"""The numbers the blocks and the verdict share, read from the committed results: the runs of one budget
and reading, their arms in Table 2's order, the budget line, the pooled-SD contrasts, the campaign's
rows and the horizon's curves. No sentence is written here but the budget line."""
import glob
import os

import numpy as np
import pandas as pd
from scipy import stats as sp

from minkgan import contrasts, stats
from minkgan import paper as paper_csv
from minkgan.paper import TABLE2_LOSSES
from minkgan import runs as runs_csv
from minkgan import settings
import losses
from minkgan.report.sentences import say
from minkgan.report.text import cpu, span
from minkgan.utils import UserError, read_json

PAGE = "facts"  # its sentences: minkgan/report/sentences/facts.txt


DATASET_NAMES = {"folder": "CIFAR-10 as JPEG files (quality 75, `--dataset folder`)", "cifar10": "CIFAR-10 (torchvision)"}


ARCH_NAMES = {"dcgan": "DCGAN", "pytorchgan": "PyTorch-GAN's DCGAN", "mlp": "MLP"}


LOSS_NAMES = {"gan": "GAN", "nsgan": "NS-GAN", "wgan": "WGAN", "wgan-gp": "WGAN-GP", "lsgan": "LSGAN", "hinge": "hinge"}


def read_csv(results, name):
    """A committed CSV of results/, or None where it is not committed (yet)."""
    path = os.path.join(results, name)
    return pd.read_csv(path) if os.path.isfile(path) else None


def image_runs(results, epochs, clip_params="all", adam_eps=None):
    """The runs of one table (minkgan/runs.py's image_runs) from results/runs.csv."""
    return runs_csv.image_runs(os.path.join(results, "runs.csv"), epochs, clip_params, adam_eps)


def arm_key(row):
    return row["loss"], row["p"] if row["loss"] == "minkowski" else None, int(row["n_critic"])


def arm_label(loss, p, n_critic):
    if loss == "minkowski":
        return f"Minkowski p = {p:g}"
    steps = f"{n_critic} critic step{'s' if n_critic > 1 else ''}"
    if n_critic != losses.default_n_critic(loss):
        return f"{LOSS_NAMES[loss]}, {steps}"
    return LOSS_NAMES[loss] + (f" ({steps})" if n_critic > 1 else "")


def arm_order(key):
    """The sort key of an arm (loss, p, n_critic): the baselines in Table 2's order, then Minkowski by p."""
    loss, p, n_critic = key
    return TABLE2_LOSSES.index(loss) if loss != "minkowski" else 99, p or 0, -n_critic


def arms(runs):
    """[(key, its runs in seed order)], baselines in Table 2's order, then Minkowski by p."""
    groups = {}
    for _, row in runs.sort_values("seed").iterrows():
        groups.setdefault(arm_key(row), []).append(row)
    return [(k, pd.DataFrame(groups[k])) for k in sorted(groups, key=arm_order)]


def paper_fid(results, loss, p, n_critic):
    """The paper's FID of an arm (Table 2, else Table 3), None where the paper has no such run."""
    if n_critic != losses.default_n_critic(loss):
        return None
    return paper_csv.fid(loss, p, os.path.join(results, "paper.csv"))


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
    step_text = " ".join([say(PAGE, "budget_steps", steps=steps[0][1]),
                          *(say(PAGE, "budget_critic_steps", steps=s, k=k) for k, s in steps[1:])])
    row = runs.iloc[0]
    clip = say(PAGE, "clip_all" if row["clip_params"] == "all" else "clip_weights", clip=row["clip"])
    return say(PAGE, "budget", epochs=epochs, plural="s" if epochs != 1 else "", steps=step_text, n_fake=row["n_fake"],
               n_real=row["n_real"], dataset=DATASET_NAMES[row["dataset"]], seeds=span(runs["seed"]),
               per_arm=seeds_per_arm(runs), arch=ARCH_NAMES[row["arch"]], clip=clip, floor=floor(runs),
               hardware=hardware(runs))


def floor(runs):
    """', FID floor at this count 25.2' where the runs hold it (real against real, evaluate.py)."""
    floors = runs["final_fid_floor"].dropna().unique()
    return say(PAGE, "floor", floor=floors[0]) if len(floors) == 1 else ""


def pooled_sd(runs, metric="final_fid"):
    """(SD, degrees of freedom) of the metric within arms, pooled over every arm of the runs."""
    groups = [g[metric].dropna() for _, g in arms(runs)]
    df = sum(len(g) - 1 for g in groups)
    return (np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df), df) if df else (np.nan, 0)


def arm_values(runs, name, metric="final_fid"):
    """The metric of each seed of an arm named as in contrasts.ARMS; refused with one line where the
    runs have none of that arm (a contrast, and the verdict, need both of its arms)."""
    found = [g for k, g in arms(runs) if k == contrasts.ARMS[name]]
    if not found:
        epochs = ", ".join(f"{e:g}" for e in sorted(runs["epochs"].round().unique())) or "these"
        raise UserError(f"runs.csv has no completed {epochs}-epoch run of {arm_label(*contrasts.ARMS[name])} "
                        "in this reading, and the report's contrasts need it: run that arm (ablate_p.py) or restore "
                        "its rows")
    return found[0][metric].dropna()


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


VERDICT_EPOCHS = 2  # the largest budget at which every arm has runs
H10_EPOCHS = 10  # the pre-registered 10-epoch contrast (docs/preregistration-addendum.md)
LONG_RUN_SEEDS = 3  # H9's and H10's 10-epoch arms: seeds 0, 1 and 2


def run_logs(results, epochs):
    """[(run name, config, metrics)] of the committed run logs of one budget, the paper's reading."""
    logs = []
    for config_path in sorted(glob.glob(os.path.join(results, "run_logs", "*", "*", "config.json"))):
        cfg = read_json(config_path)
        if round(cfg["epochs"]) == float(epochs) and cfg.get("clip_params") == "all" and cfg.get("arch") == "dcgan":
            metrics = runs_csv.read_log(os.path.join(os.path.dirname(config_path), "metrics.csv"))
            logs.append((os.path.basename(os.path.dirname(config_path)), cfg, metrics))
    return logs


def last_epoch(metrics):
    """The rows of a metrics.csv logged during its run's last epoch."""
    return metrics[metrics["epoch"] > metrics["epoch"].max() - 1]


def horizon_rows(results, clip_params="all"):
    """horizon.csv's rows of one reading, epochs to 0.1: WGAN's 5 critic steps make 156.2 G steps an
    epoch, so its evaluation at step 157 is epoch 1.005, the others' epoch 1."""
    table = read_csv(results, "horizon.csv")
    if table is None:
        return None
    table = table[table["clip_params"] == clip_params]
    return table.assign(epoch=table["epoch"].round(1))


def toy_rows(results, clip=None):
    """The rows of results/toy_table.csv of one reading of the clipping: each loss's default
    (WGAN's 0.01, none for the others) or `clip=C` for every loss; p only for Minkowski rows."""
    t = read_csv(results, "toy_table.csv")
    t = t.assign(p=t["p"].where(t["loss"] == "minkowski"))
    wanted = [settings.default_clip(l, d) if clip is None else float(clip) for l, d in zip(t["loss"], t["dataset"])]
    return t[np.isclose(t["clip"].fillna(0), wanted)]


def toy_arms(t):
    """(loss, p, n_critic) of the table's groups, baselines in Table 2's order, then Minkowski by p."""
    keys = {(l, None if pd.isna(p) else p, int(k)) for l, p, k in zip(t["loss"], t["p"], t["n_critic"])}
    return sorted(keys, key=arm_order)


def toy_row(t, dataset, loss, p, n_critic):
    """The one row of a group on a dataset, or None."""
    r = t[(t["dataset"] == dataset) & (t["loss"] == loss) & (t["n_critic"] == n_critic)
          & ((t["p"] == p) if p else t["p"].isna())]
    return r.iloc[0] if len(r) else None


def seed_counts(t):
    """'5' or '5–10': the seeds per group of toy_table rows."""
    low, high = t["seeds"].min(), t["seeds"].max()
    return f"{low}–{high}" if low != high else f"{high}"


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


def campaign_rows(results, epochs=VERDICT_EPOCHS, family="H1-H3"):
    """The FID contrasts of one family of the pre-registered campaign (results/contrasts.csv; the families
    of contrasts.FAMILIES), or None while it is not committed."""
    table = read_csv(results, "contrasts.csv")
    if table is None:
        return None
    return table[(table["family"] == family) & (table["metric"] == "final_fid") & (table["epochs"].round() == epochs)]


def campaign_row(results, a, b, epochs=VERDICT_EPOCHS, family="H1-H3"):
    """The FID contrast a - b of the campaign, or None while it is not committed."""
    rows = campaign_rows(results, epochs, family)
    rows = None if rows is None else rows[(rows["a"] == a) & (rows["b"] == b)]
    return rows.iloc[0] if rows is not None and len(rows) else None


H8_SEEDS = 8  # pre-registered: seeds 0-7 an arm (docs/preregistration-addendum.md)


FAILURE_RULES = {"preregistered": "the pre-registered rule", "or-blank": "the rule or precision and coverage 0 (deviation)"}


def failure_rows(results, epochs=VERDICT_EPOCHS):
    """H8's rows of results/failures.csv (analysis/failures.py), or None while it is not committed."""
    table = read_csv(results, "failures.csv")
    return None if table is None else table[(table["reading"] == "weights") & (table["epochs"].round() == epochs)]


def horizon_curves(table):
    """{arm: its FID by epoch at the evaluations' sample count} of the horizon's runs."""
    n = table["n"].min()
    return {arm_label(*arm_key(rows.iloc[0])): rows[rows["n"] == n].set_index("epoch")["fid"]
            for _, rows in table.groupby("run", sort=False)}


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
            rule = (say(PAGE, "crossing_by_rule", epoch=leads[0], ahead=cb[leads[0]] - ca[leads[0]]) if leads
                    else say(PAGE, "no_crossing_by_rule"))
            at_end = say(PAGE, "at_the_end_crossing" if cb[end] - ca[end] > sd else "at_the_end_none", ahead=cb[end] - ca[end])
            out.append(say(PAGE, "passes", a=a, b=b, rule=rule, at_end=at_end))
    return "; ".join(out) if out else say(PAGE, "no_arm_passes")
