"""README.md and docs/: every results table is what report.py writes from the committed results, the
prose types no result by hand, every link and file named resolves, and the README stays a front page."""
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
from scipy import stats
import pytest

import report
from minkgan.report import blocks, cifar, facts, regime, toys, verdict
from minkgan.utils import UserError

from layout import ROOT  # noqa: E402
README = os.path.join(ROOT, "README.md")
# Numbers with a decimal point that prose may type: settings, not results (each one a train.py,
# analysis/dynamics.py or protocol value, or a quantity in a formula). A result goes in a generated block.
SETTINGS = {"0.01", "0.02", "0.05", "0.2", "0.5", "0.8", "0.999", "1.5", "2.5", "3.10"}  # 3.10: Python's version
# A dated plan, not edited once its runs start: its numbers are those of the results it was written
# beside, so the checks of typed numbers and named files pass it by (its links are still checked).
FROZEN = ["docs/preregistration.md", "docs/preregistration-addendum.md"]
# The pre-registered campaign's results files: a block says "not yet measured" until they are committed.
PENDING = ["results/contrasts.csv", "results/horizon.csv", "results/moments.csv"]


def text(path):
    with open(path) as f:
        return f.read()


def prose(path):
    """A document without its generated blocks, code (fenced, indented, inline), comments and link targets."""
    body = blocks.BLOCK.sub("", text(path))
    body = re.sub(r"```.*?```", "", body, flags=re.S)
    body = re.sub(r"^(    |\t).*$", "", body, flags=re.M)
    body = re.sub(r"<!--.*?-->", "", body, flags=re.S)
    body = re.sub(r"`[^`]*`", "", body)
    return re.sub(r"\]\([^)]*\)", "]", body)


def test_every_generated_block_is_what_report_writes_from_the_committed_results():
    assert blocks.stale() == [], "run python report.py"


def test_a_changed_fid_in_runs_csv_makes_the_documents_stale(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    runs = pd.read_csv(results / "runs.csv")
    row = runs.index[(runs["run"] == "folder/minkowski-p4-seed0") & (runs["total_steps"] == 1562)][0]
    runs.loc[row, "final_fid"] += 1.0
    runs.to_csv(results / "runs.csv", index=False)
    assert "README.md" in blocks.stale(results=str(results))
    assert report.main(["--check", "--results", str(results)]) == 1


def with_row(results, **changes):
    """results/runs.csv with one more run: a copy of GAN seed 0 at 2 epochs, changed."""
    runs = pd.read_csv(results / "runs.csv")
    row = runs[(runs["run"] == "folder/gan-seed0") & (runs["total_steps"] == 1562)].assign(**changes)
    pd.concat([runs, row]).to_csv(results / "runs.csv", index=False)


def test_tables_never_average_two_readings_of_the_clipping(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    before, before3 = cifar.table2(str(results), 2), cifar.table3(str(results), 2, clip_params="weights")
    with_row(results, clip_params="weights", seed=7, final_fid=999.0)
    assert cifar.table2(str(results), 2) == before
    weights = cifar.table2(str(results), 2, clip_params="weights")
    gan_row = weights.split("| GAN | 197.8 | ")[1].split("\n")[0]
    assert "999.0" in gan_row and "conv and linear weights only" in weights  # seed 7 joins the weights-only GAN
    assert cifar.table3(str(results), 2, clip_params="weights") == before3  # a GAN row is no Table 3 row
    runs = pd.read_csv(results / "runs.csv")
    clip_all = runs[(runs["clip_params"] == "all") & (runs["loss"] == "minkowski") & (runs["p"] == 4) & (runs["epochs"] == 2)]
    assert len(clip_all) >= 2 and not any(f"{fid:.1f}" in before3 for fid in clip_all["final_fid"])  # no clip-all FID in the weights table


def test_one_budget_of_two_fid_protocols_is_an_error(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    with_row(results, seed=7, n_fake=2000)
    with pytest.raises(UserError, match="FID sample counts"):
        cifar.table2(str(results), 2)


def test_files_not_yet_committed_are_one_line_and_rendered_once_they_are(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    for name in ("contrasts.csv", "horizon.csv"):
        (results / name).unlink(missing_ok=True)
    assert cifar.contrasts_csv(str(results)).startswith("Not yet measured") and "\n" not in cifar.contrasts_csv(str(results))
    assert cifar.horizon(str(results)).startswith("Not yet measured")
    pd.DataFrame([{"family": "H1-H3", "reading": "all", "metric": "final_fid", "epochs": 2.0, "steps": 1562, "a": "minkowski-p4",
                   "b": "gan", "n_a": 5, "n_b": 5, "mean_a": 170.0, "mean_b": 160.0, "mean_diff": 10.0,
                   "ci_low": -4.5, "ci_high": 24.5, "p_value": 0.15, "p_holm": 0.3, "paper_gap": -98.2,
                   "power_at_paper_gap": 1.0, "excludes_zero": False, "excludes_paper_gap": True,
                   "verdict": "paper's gap excluded", "hardware": "AMD EPYC x2 threads"}]).to_csv(results / "contrasts.csv",
                                                                                          index=False)
    assert "minkowski-p4 − gan" in cifar.contrasts_csv(str(results))
    text = verdict.verdict(str(results))
    assert "+10.0 FID (-4.5 to +24.5, Welch, 5 and 5 seeds; paper -98.2): **paper's gap excluded**" in text
    assert "results/contrasts.csv" in text
    rows = [{"run": f"folder/{loss}-seed0", "loss": loss, "p": p, "n_critic": 1, "seed": 0, "clip_params": "all", "total_steps": 3124, "epoch": e,
             "step": 781 * e, "n": n, "fid": 300.0 - e - (n == 5000) * 10, "logit_absmax": 0.2 * e,
             "device": "Intel(R) Xeon(R) Processor x2 threads"}
            for loss, p in (("gan", None), ("minkowski", 4.0)) for e in (1, 2, 4) for n in ((2000, 5000) if e == 4 else (2000,))]
    rows += [{**rows[0], "run": "folder/wgan-seed0", "loss": "wgan", "n_critic": 5, "total_steps": 625, "epoch": e,
              "step": step, "fid": 350.0 - step / 10} for e, step in ((1.005, 157), (2.004, 313), (4.001, 625))]
    pd.DataFrame(rows).to_csv(results / "horizon.csv", index=False)
    pd.DataFrame([{"run": "folder/gan-seed0", "label": "gan", "from_epoch": 2, "to_epoch": 4, "points": 2,
                   "exponent": 1.0, "r2": 1.0, "logit_absmax_at_200": 40.0}]).to_csv(results / "horizon_fits.csv", index=False)
    horizon = cifar.horizon(str(results))
    assert "| Minkowski p = 4, seed 0 | 299.0 | 298.0 | 296.0 |" in horizon  # FID of 2000: one protocol per table
    assert "| WGAN (5 critic steps), seed 0 | 334.3 | 318.7 | 287.5 |" in horizon  # epoch 1.005 is epoch 1
    assert "| FID of 5000 at epoch | 4 |" in horizon and "| GAN, seed 0 | 286.0 |" in horizon
    assert "| GAN, seed 0 | 0.200 | 0.400 | 0.800 |" in horizon and "Intel Xeon x2 threads" in horizon
    line = verdict.horizon_line(str(results))
    sd, _ = facts.pooled_sd(facts.image_runs(str(results), 2))
    assert 296.0 - 287.5 < sd  # so WGAN's lead at epoch 4 is within the seed SD
    assert "FID of 2000, best first, at epoch 2: GAN 298.0, Minkowski p = 4 298.0, WGAN (5 critic steps) 318.7; " \
           "at epoch 4: WGAN (5 critic steps) 287.5, GAN 296.0, Minkowski p = 4 296.0" in line
    assert "WGAN (5 critic steps) passes GAN: no crossing by the rule (never ahead by more than the seed SD); +8.5 FID " \
           "ahead at the end: none by the end-only reading; WGAN (5 critic steps) passes Minkowski p = 4: no crossing" in line
    assert "(the paper's at 200 epochs in brackets): GAN 286.0 (197.8), Minkowski p = 4 286.0 (99.6)." in line
    assert "GAN 0.80 (epoch^1.00, r² 1.00), Minkowski p = 4 0.80" in line and "Still to run: Minkowski p = 8." in line
    assert "it grows in 1 of 1 runs (largest exponent +1.00); extrapolated to 200 epochs, 40.00, a trend of 2 points" in line
    assert "; GAN's at epochs 1, 2, 4: 0.20, 0.40, 0.80." in line  # a growing run's last three: does it level off?


def test_a_marker_naming_no_block_is_a_one_line_error():
    with pytest.raises(UserError, match="no such block"):
        blocks.render("<!-- report:tabel2 epochs=2 -->\n<!-- /report:tabel2 epochs=2 -->\n")
    with pytest.raises(UserError, match="epoch"):
        blocks.render("<!-- report:table2 epoch=2 -->\n<!-- /report:table2 epoch=2 -->\n")


def test_a_rerun_replaces_exactly_the_blocks():
    document = "Prose 1.\n<!-- report:paper -->\nold\n<!-- /report:paper -->\nProse 2: <!-- report:setup -->x<!-- /report:setup -->.\n"
    rendered = blocks.render(document)
    assert rendered.startswith("Prose 1.\n<!-- report:paper -->\n\n| Table 2 |") and "old" not in rendered
    assert re.search(r"Prose 2: <!-- report:setup -->CIFAR-10[^\n]*<!-- /report:setup -->\.\n$", rendered)
    assert blocks.render(rendered) == rendered


def documents(frozen=True):
    return [d for d in (os.path.relpath(p, ROOT) for p in blocks.documents(ROOT)) if frozen or d not in FROZEN]


def tracked():
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("document", documents(frozen=False))
def test_prose_types_no_result_by_hand(document):
    """A number with a decimal point outside a generated block is a setting, or it is a typed result
    that will drift from its file."""
    typed = set(re.findall(r"(?<![\w.:])\d+\.\d+(?![\w/])", prose(os.path.join(ROOT, document)))) - SETTINGS
    assert not typed, f"{document}: {sorted(typed)} typed by hand: generate them with report.py"


def budgets():
    """Every epochs budget of the committed results, and the paper's and the pre-registered horizon's."""
    runs = pd.read_csv(os.path.join(ROOT, "results", "runs.csv"))
    toy = pd.read_csv(os.path.join(ROOT, "results", "toy_table.csv"))
    return {round(e) for e in [*runs["epochs"], *toy["epochs"]]} | {200, 10}


@pytest.mark.parametrize("document", documents(frozen=False))
def test_every_budget_the_prose_names_has_results(document):
    named = {int(n) for n in re.findall(r"(\d+) epochs?\b", prose(os.path.join(ROOT, document)))}
    assert named <= budgets(), f"{document} names {sorted(named - budgets())} epochs, which no committed result has"


def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text(path), flags=re.M)}


@pytest.mark.parametrize("document", documents())
def test_every_link_is_relative_and_resolves(document):
    path = os.path.join(ROOT, document)
    body = re.sub(r"`[^`\n]*`", "", text(path))
    for target in re.findall(r"\]\(([^)\s]+)\)", body):
        if re.match(r"https?://", target):
            continue
        assert not target.startswith("/"), f"{document}: {target} is absolute; link relatively"
        file, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        assert os.path.exists(linked), f"{document}: dead link {target}"
        if anchor:
            assert anchor in anchors(linked), f"{document}: {target} names no heading of {file or document}"


@pytest.mark.parametrize("document", documents(frozen=False))
def test_every_repository_path_the_prose_names_exists(document):
    """A script or a path into one of the repository's folders, in backticks, exists (paths inside a
    run directory are not the repository's, and what .gitignore names is made by running the code)."""
    folders = {p.split("/")[0] for p in tracked() if "/" in p}
    named = re.findall(r"`([\w.][\w./-]*/[\w./*-]*|[\w-]+\.(?:py|sh|sbatch))`", text(os.path.join(ROOT, document)))
    missing = [n for n in named if (n.split("/")[0] in folders or "/" not in n) and "*" not in n
               and n not in PENDING and not os.path.exists(os.path.join(ROOT, n))
               and subprocess.run(["git", "check-ignore", "-q", n], cwd=ROOT).returncode != 0]
    assert not missing, f"{document} names {missing}, which the repository does not hold"


def test_the_readme_is_a_front_page_that_lists_every_file_and_folder():
    readme = text(README)
    assert len(readme.splitlines()) <= 250
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    top = {p.split("/")[0] + ("/" if "/" in p else "") for p in tracked()} - {"README.md"}
    missing = [t for t in top if f"`{t.rstrip('/')}" not in layout and f"`{t}" not in layout]
    assert not missing, f"README's layout lists no line for {missing}"


def toy_group(dataset, loss, p, clip, modes, sd, hq, n=5, n_critic=1):
    """A toy_table.csv row of n seeds."""
    return {"dataset": dataset, "loss": loss, "p": p, "n_critic": n_critic, "arch": "mlp", "clip": clip,
            "clip_params": "all" if clip else None, "final_modes_mean": modes, "final_modes_std": sd,
            "final_modes_n": n, "final_hq_pct_mean": hq, "final_hq_pct_std": 1.0, "final_hq_pct_n": n,
            "final_rkl_mean": 0.5, "final_rkl_std": 0.1, "final_rkl_n": n, "seeds": n, "samples": 2500,
            "completed": n, "diverged": 0, "failed": 0, "steps": 10000, "epochs": 6.4, "device": "x86_64 x1 threads"}


def test_the_clipped_2d_rows_are_read_by_h5s_rule_and_never_mix_with_the_unclipped(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    committed = toys.clipped_toys(str(results))
    assert "(H5, 5 seeds an arm)" in committed and "uninformative" in committed  # WGAN's 5-critic-step rows not H5's
    table = pd.read_csv(results / "toy_table.csv")
    table = table[(table["clip"] == 0) | (table["n_critic"] == 5)]  # without H5's committed rows
    table.to_csv(results / "toy_table.csv", index=False)
    unclipped = facts.toy_contrast(str(results), "ring8")
    assert "not yet run" in toys.clipped_toys(str(results))
    flat = [toy_group(d, loss, p, 0.01, 3.0, 1.0, 1.0) for d in ("ring8", "grid25")
            for loss, p in (("gan", None), ("minkowski", 4.0), ("wgan", None))]
    pd.concat([pd.DataFrame(flat), table]).to_csv(results / "toy_table.csv", index=False)
    assert facts.toy_contrast(str(results), "ring8") == unclipped  # the default reading's contrast is unchanged
    assert "uninformative" in toys.clipped_toys(str(results))
    learned = [toy_group("ring8", "gan", None, 0.01, 6.0, 1.0, 40.0), toy_group("ring8", "minkowski", 4.0, 0.01, 4.0, 0.5, 60.0),
               toy_group("grid25", "gan", None, 0.01, 10.0, 2.0, 30.0), toy_group("grid25", "minkowski", 4.0, 0.01, 11.0, 3.0, 30.0)]
    pd.concat([pd.DataFrame(learned), table]).to_csv(results / "toy_table.csv", index=False)
    spread = np.array([-2, -1, 0, 1, 2]) / np.std([-2, -1, 0, 1, 2], ddof=1)  # 5 seeds of mean 0, SD 1
    low, high = stats.ttest_ind(4.0 + 0.5 * spread, 6.0 + spread, equal_var=False).confidence_interval()
    line = toys.clipped_toys(str(results))
    assert f"ring8 -2.0 ({low:+.1f} to {high:+.1f}, 5 seeds: contradicted)" in line and "grid25 +1.0" in line
    assert "inconclusive" in line
    assert "| GAN, 1 critic step |" not in toys.toy(str(results)) and "| GAN |" in toys.toy(str(results), clip=0.01)


def moment_row(loss, p, seed, space, kurtosis_gap, n_critic=1):
    return {"run": f"folder/{loss}-seed{seed}", "dataset": "folder", "loss": loss, "p": p, "n_critic": n_critic,
            "arch": "dcgan", "clip": 0.01, "clip_params": "all", "seed": seed, "status": "completed", "epochs": 2,
            "total_steps": 1562, "step": 1562, "checkpoint": "checkpoints/last.pt", "n": 5000,
            "device": "AMD EPYC x2 threads", "space": space, "skew_gap": 0.1, "kurtosis_gap": kurtosis_gap,
            "real_abs_skew": 0.5, "real_abs_kurtosis": 1.0, "coordinates": 3072}


def test_the_higher_moments_verdict_follows_h7s_rule(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    (results / "moments.csv").unlink(missing_ok=True)
    assert toys.moments(str(results)).startswith("Not yet measured")
    gaps = {("minkowski", 4.0, 1): [0.10, 0.12], ("gan", None, 1): [0.30, 0.34], ("wgan", None, 5): [0.20]}
    rows = [moment_row(loss, p, seed, space, g, k) for (loss, p, k), values in gaps.items()
            for seed, g in enumerate(values) for space in ("pixels", "inception")]
    rows.append(moment_row("gan", None, 0, "pixels_real_vs_real", 0.01))
    pd.DataFrame(rows).to_csv(results / "moments.csv", index=False)
    line = toys.higher_moments(str(results))
    assert "not decidable" in line and "p = 4 2, GAN 2, WGAN 1" in line
    pd.DataFrame(rows + [moment_row("wgan", None, 1, s, 0.22, 5) for s in ("pixels", "inception")]).to_csv(
        results / "moments.csv", index=False)
    line = toys.higher_moments(str(results))
    gan = stats.ttest_ind([0.10, 0.12], [0.30, 0.34], equal_var=False).confidence_interval()
    assert f"p = 4 − GAN -0.210 ({gan.low:+.3f} to {gan.high:+.3f})" in line and line.count(": supported") == 2
    table = toys.moments(str(results))
    assert "| Minkowski p = 4 | 2 (0, 1) | 0.100 ± 0.000 | 0.110 ± 0.014 |" in table and "real against real" in table


def test_h6_reads_the_2_epoch_runs_only(tmp_path):
    """The horizon's 10-epoch WGAN has WGAN's 2-epoch budget in G steps (1562) and the same epoch 2:
    its row in stability.csv must not count as another seed of the 2-epoch arm."""
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    before = verdict.steadiness(str(results))
    table = pd.read_csv(results / "stability.csv")
    longer = table[table["loss"] == "wgan"].iloc[[0]].assign(run="folder/wgan-seed0", total_steps=1562, epochs=10.0,
                                                             cv_grad_norm_d=5.0)
    pd.concat([table, longer]).to_csv(results / "stability.csv", index=False)
    assert verdict.steadiness(str(results)) == before


def toy_moment_row(dataset, loss, p, seed, kurtosis_gap, space="coordinates"):
    return {**moment_row(loss, p, seed, space, kurtosis_gap), "run": f"{dataset}/{loss}-seed{seed}", "dataset": dataset,
            "arch": "mlp", "epochs": 6.4, "total_steps": 10000, "step": 10000, "coordinates": 2}


def test_the_2d_higher_moments_follow_h7s_rule_per_dataset(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    images = pd.read_csv(results / "moments.csv")
    images = images[~images["dataset"].isin(["ring8", "grid25"])]
    images.to_csv(results / "moments.csv", index=False)
    assert toys.toy_moments(str(results)).startswith("Not yet measured")
    assert toys.toy_higher_moments(str(results)).startswith("untested")
    gaps = {"ring8": {("minkowski", 4.0): [0.1, 0.2, 0.3], ("gan", None): [1.0, 1.2, 1.1], ("wgan", None): [0.9, 1.0, 1.4]},
            "grid25": {("minkowski", 4.0): [0.5, 0.6, 0.4], ("gan", None): [0.4, 0.5, 0.6], ("wgan", None): [0.1, 0.2, 0.2]}}
    rows = [toy_moment_row(d, loss, p, seed, g) for d, arms in gaps.items() for (loss, p), values in arms.items()
            for seed, g in enumerate(values)]
    rows += [toy_moment_row(d, "gan", None, 0, 0.01, "coordinates_real_vs_real") for d in gaps]
    pd.concat([images, pd.DataFrame(rows)]).to_csv(results / "moments.csv", index=False)
    line = toys.toy_higher_moments(str(results))
    gan = stats.ttest_ind([0.1, 0.2, 0.3], [1.0, 1.2, 1.1], equal_var=False).confidence_interval()
    assert f"ring8 (10000 steps, 3 seeds) supported; p = 4 − GAN -0.90 ({gan.low:+.2f} to {gan.high:+.2f})" in line
    assert "grid25 (10000 steps, 3 seeds) not supported" in line
    assert toys.higher_moments(str(results)) == toys.higher_moments(os.path.join(ROOT, "results"))  # images apart
    assert "| Minkowski p = 4 | 0.20 ± 0.10 | 0.50 ± 0.10 | 0–2 |" in toys.toy_moments(str(results))


def test_the_horizons_alignment_reads_only_runs_trained_past_2_epochs(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    rows = [{"run": run, "total_steps": total, "n_critic": 1, "clip": 0.01, "clip_params": "all", "step": step,
             "epoch": epoch, "loss": loss, "p": p, "cos_d": cos, "logit_abs_max": 0.5}
            for run, total, states in (("gan-seed0", 1562, ((781, 1.0, 0.99), (1562, 2.0, 0.5))),
                                       ("wgan-seed0", 1562, ((313, 2.004, 0.90), (781, 5.0, 0.80), (1562, 10.0, 0.85))))
            for step, epoch, cos in states for loss, p in (("minkowski", 4.0), ("minkowski", 8.0), ("gan", None))]
    pd.DataFrame(rows).to_csv(results / "alignment.csv", index=False)
    block = regime.alignment_horizon(str(results))
    assert "| wgan-seed0, 1562-step run | 2 | 0.500 | 0.9000 | 0.9000 | 0.9000 |" in block  # epoch 2.004 is epoch 2
    assert "| gan-seed0" not in block and "falls in 1 of 1 runs (changes -0.050)" in block
    pd.DataFrame(rows[:6]).to_csv(results / "alignment.csv", index=False)
    assert regime.alignment_horizon(str(results)).startswith("Not yet measured")


def test_h4s_alignment_lines_read_only_the_weights_only_runs_past_300_steps(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    a = pd.read_csv(results / "alignment.csv")
    a = a[~((a["clip_params"] == "weights") & (a["total_steps"] > 300))]
    a.to_csv(results / "alignment.csv", index=False)
    assert not regime.h4_alignment(facts.alignment_facts(str(results))["h4"])  # only the 300-step weights runs
    state = lambda run, step, loss, p, cos, ratio, logit: {  # noqa: E731
        "run": run, "total_steps": 1562, "run_loss": run.split("-")[0], "n_critic": 1, "clip": 0.01, "clip_params": "weights",
        "step": step, "epoch": step / 781, "loss": loss, "p": p, "cos_d": cos, "ratio_d": ratio, "logit_abs_max": logit}
    new = [state("gan-clipweights-seed0", 781, "gan", None, 0.30, 0.5, 6.0), state("gan-clipweights-seed0", 781, "hinge", None, 0.02, 1.0, 6.0),
           state("gan-clipweights-seed0", 1562, "minkowski", 4.0, 0.12, 1e-9, 9.5), state("gan-clipweights-seed0", 1562, "wgan", None, 1.0, 1.0, 9.5),
           state("wgan-clipweights-seed0", 313, "gan", None, 0.0, 1e-25, 80.0), state("wgan-clipweights-seed0", 313, "minkowski", 8.0, 0.0, 0.0, 80.0)]
    pd.concat([a, pd.DataFrame(new)]).to_csv(results / "alignment.csv", index=False)
    others, wgan = regime.h4_alignment(facts.alignment_facts(str(results))["h4"])
    assert "2 epochs; 1 run, their" in others and "largest |logit| is 6.0–9.5" in others  # hinge, WGAN left out
    assert "are 0.12–0.30 (median 0.21), and in 1 of 2 (loss, state) pairs" in others
    assert "WGAN run (" in wgan and "is 80.0;" in wgan and "are 0.00, and in 2 of 2 (loss, state) pairs" in wgan


def test_a_crossing_is_a_lead_above_the_seed_sd_at_any_evaluation_after_epoch_2():
    """The pre-registered rule as written (any later evaluation), with the end-only reading beside it: B leads A
    by 30 at epoch 6 and by 10 at the end (a crossing by the rule, none at the end); C ends 16 ahead; D is never
    more than 15 ahead."""
    curve = lambda *fids: pd.Series(fids, index=[2.0, 6.0, 10.0])  # noqa: E731
    curves = {"A": curve(100.0, 120.0, 110.0), "B": curve(150.0, 90.0, 100.0), "C": curve(160.0, 130.0, 94.0)}
    text = facts.crossings(curves, 15.0)
    assert "B passes A: a crossing by the rule at epoch 6 (30.0 FID ahead); +10.0 FID ahead at the end: none by the end-only" in text
    assert "C passes A: a crossing by the rule at epoch 10 (16.0 FID ahead); +16.0 FID ahead at the end: a crossing" in text
    near = facts.crossings({"A": curve(100.0, 100.0, 100.0), "D": curve(110.0, 90.0, 86.0)}, 15.0)
    assert near == "D passes A: no crossing by the rule (never ahead by more than the seed SD); +14.0 FID ahead at the end: none by the end-only reading"
    assert facts.crossings({"A": curve(100.0, 100.0, 100.0), "B": curve(150.0, 150.0, 150.0)}, 15.0) == "no arm passes another"


def test_weights_only_line_reads_h4s_contrasts_and_counts_the_blank_runs(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    contrasts = pd.read_csv(results / "contrasts.csv")
    contrasts = contrasts[contrasts["reading"] == "all"]
    contrasts.to_csv(results / "contrasts.csv", index=False)
    assert "not yet measured" in verdict.weights_only_line(str(results))
    row = lambda b, diff, verdict: {"family": "H4", "reading": "weights", "metric": "final_fid", "epochs": 2.0, "a": "minkowski-p4", "b": b,  # noqa: E731
                                    "n_a": 2, "n_b": 2, "mean_diff": diff, "ci_low": diff - 5, "ci_high": diff + 5,
                                    "p_value": 0.01, "p_holm": 0.04, "paper_gap": -98.2, "power_at_paper_gap": 0.5,
                                    "verdict": verdict}
    new = [row("gan", 30.0, "contradicted"), row("wgan", 1.0, "inconclusive"), row("minkowski-p1", 2.0, "inconclusive"),
           row("minkowski-p8", 3.0, "inconclusive")]
    pd.concat([contrasts, pd.DataFrame(new)]).to_csv(results / "contrasts.csv", index=False)
    runs = pd.read_csv(results / "runs.csv")
    runs = runs[~((runs["clip_params"] == "weights") & (runs["seed"] > 1))]  # H4's seeds alone, as committed then
    mink = (runs["clip_params"] == "weights") & (runs["loss"] == "minkowski")
    runs.loc[mink, ["final_precision", "final_coverage"]] = [0.0, 0.0]
    runs.loc[mink & (runs["p"] == 1.0), "final_coverage"] = 0.01
    runs.to_csv(results / "runs.csv", index=False)
    line = verdict.weights_only_line(str(results))
    assert "2 seeds an arm), at 2 epochs" in line
    assert "p = 4 − GAN: +30.0 FID (+25.0 to +35.0, Welch, 2 and 2 seeds; paper -98.2): **contradicted** (p = 0.01; " \
           "0.04 after Holm's correction over the 4 contrasts)" in line
    assert "p = 4 − p = 8: +3.0 FID (-2.0 to +8.0, Welch, 2 and 2 seeds; paper -98.2): **inconclusive** (power 0.50)" in line
    assert "4 of 6 Minkowski runs end with precision and coverage 0" in line  # p = 1's two runs cover something


def test_sample_grids_show_the_grids_the_run_logs_keep(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results, ignore=shutil.ignore_patterns("figures", "dynamics"))
    runs = pd.read_csv(results / "runs.csv")
    gan = runs[(runs["run"] == "folder/gan-clipweights-seed0") & (runs["total_steps"] == 1562)]
    assert len(gan) == 1
    grid = results / "run_logs" / "folder-1562steps" / "gan-clipweights-seed0" / "step0001562.png"
    grid.write_bytes(b"png")
    cells = cifar.sample_grids(str(results))
    assert "GAN, seed 0 (not failed by the rule)" in cells
    assert "(results/run_logs/folder-1562steps/gan-clipweights-seed0/step0001562.png)" in cells


def test_the_fid_precision_block_says_which_way_bfloat16_moved_the_fid(tmp_path):
    from minkgan.report import appendix
    rows = [{"n": 2000, "sample_set": i, "fid_float32": 25.0, "fid_bfloat16": 25.0 * (1 + d), "rel_diff": d,
             "cpu": "Intel(R) Xeon(R) Processor", "bf16_hardware": "AMX"} for i, d in enumerate((-0.004, -0.003))]
    pd.DataFrame(rows).to_csv(tmp_path / "fid_precision.csv", index=False)
    assert "moved every FID down, by at most 0.40 %" in appendix.fid_precision(str(tmp_path))
    rows[1]["rel_diff"] = 0.001
    pd.DataFrame(rows).to_csv(tmp_path / "fid_precision.csv", index=False)
    assert "moved every FID up or down" in appendix.fid_precision(str(tmp_path))
    assert appendix.fid_precision(str(tmp_path / "none")).startswith("Not yet measured")
    assert appendix.bench_fid(str(tmp_path)).startswith("Not yet measured")


def test_the_step_profile_block_sums_ops_per_variant_and_names_bfloat16s_float32_ops(tmp_path):
    from minkgan.report import appendix
    base = {"device": "AMD EPYC x2 threads", "arch": "dcgan", "steps": 5, "torch": "2.14.1", "loadavg_1m": 1.0,
            "cpu": "AMD EPYC", "bf16_hardware": "AVX512-BF16", "calls": 1.0, "share": 0.0}
    ops = {"plain": [("convolution_backward", "float32", 300.0), ("convolution", "float32", 100.0), ("(other)", "-", 20.0)],
           "bfloat16": [("convolution_backward", "bfloat16", 150.0), ("convolution", "bfloat16", 40.0),
                        ("convolution", "float32", 10.0), ("_to_copy", "float32", 12.0), ("copy_", "bfloat16", 3.0),
                        ("add_", "float32", 7.0), ("(other)", "-", 8.0)]}
    rows = [{**base, "variant": v, "op": op, "dtypes": dt, "layout": "contiguous", "ms": ms,
             "step_ms": sum(m for _, _, m in ops[v])} for v in ops for op, dt, ms in ops[v]]
    pd.DataFrame(rows).to_csv(tmp_path / "step_profile.csv", index=False)
    text = appendix.step_profile(str(tmp_path), top=3)
    assert "| `convolution_backward` | 300 | 150 |" in text and "| `convolution` | 100 | 50 |" in text
    assert "| `_to_copy` | – | 12 |" in text and "| every other op | 20 | 18 |" in text
    assert "| step (sum of its ops) | 420 | 230 |" in text
    assert "The convolutions, forward and backward, take of each step: plain 95%, bfloat16 87%." in text
    assert "Under bfloat16, 29 of the 230 ms are ops whose floating inputs are all float32 (the largest: `_to_copy`, " \
           "12 ms), and 15 ms are dtype and layout conversions" in text
    assert "AMD EPYC x2 threads (bfloat16 hardware: AVX512-BF16), dcgan's step" in text
    pd.DataFrame(rows + [{**r, "bf16_hardware": "none"} for r in rows]).to_csv(tmp_path / "step_profile.csv", index=False)
    two = appendix.step_profile(str(tmp_path), top=3)  # one CPU name, two machines: two tables
    assert two.count("| step (sum of its ops) | 420 | 230 |") == 2 and "(bfloat16 hardware: none)" in two
    assert appendix.step_profile(str(tmp_path / "none")).startswith("Not yet measured")
