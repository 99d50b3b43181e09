"""The verdict, the README's answer and the claims table: one line per claim of the paper, each conclusion
word chosen by a rule of minkgan/verdicts.py or analysis/contrasts.py from the committed results."""
import functools
import glob
import os

import numpy as np
import pandas as pd

from minkgan import contrasts, derivations, settings, verdicts
from minkgan.report.text import interval, listed_p, num, ranked, signed, span, value_range
from minkgan.report.facts import (H8_SEEDS, UNINFORMATIVE_HQ_PCT, VERDICT_EPOCHS, alignment_facts, arm_key, arm_label,
    arms, campaign_row, campaign_rows, contrast, crossings, failure_rows, horizon_curves, horizon_rows, image_runs,
    last_epoch, paper_fid, pooled_sd, read_csv, run_logs, seeds_per_arm, toy_contrast, toy_rows)
from minkgan.report.toys import clipped_toys, h7, higher_moments, toy_higher_moments
from minkgan.utils import UserError


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


STEADINESS = {"cv_grad_norm_d": "D's gradient norm", "cv_loss_d": "D's loss", "cv_loss_g": "G's loss"}


def cv_contrast(results, column, epochs=VERDICT_EPOCHS):
    """The coefficient of variation of one logged quantity (STEADINESS) over epoch `epochs`
    (results/stability.csv), per arm, and p = 4 - GAN with Welch's interval once both arms have two runs
    with logs. (word, what was measured, the test): "untested" without stability.csv, "not decidable"
    below two runs an arm, else the contrast rule's word with no paper gap to read (lower is steadier)."""
    table = read_csv(results, "stability.csv")
    if table is None:
        return "untested", None, None
    table = table[(table["clip_params"] == "all") & np.isclose(table["to_epoch"], epochs)
                  & np.isclose(table["epochs"], epochs, atol=0.01)]  # a longer run's epoch 2 is not another seed
    cv = {arm_label(loss, p, int(k)): g[column] for (loss, p, k), g in
          table.fillna({"p": 0}).groupby(["loss", "p", "n_critic"])}
    listed = ", ".join(f"{name} {v.mean():.2f} ({len(v)})" for name, v in sorted(cv.items(), key=lambda kv: kv[1].mean()))
    text = f"the coefficient of variation of {STEADINESS[column]} over epoch {epochs:g} (mean over runs; runs): {listed}"
    p4, gan = cv.get("Minkowski p = 4", pd.Series(dtype=float)), cv.get("GAN", pd.Series(dtype=float))
    if min(len(p4), len(gan)) < 2:
        return "not decidable", text, f"the contrast needs two p = 4 runs with logs; {len(p4)} so far"
    w = contrasts.welch(p4, gan)
    return (contrasts.verdict(w["ci_low"], w["ci_high"], float("nan")), text,
            f"p = 4 − GAN {signed(w['mean_diff'], 3)} (Welch 95 % interval {interval(w['ci_low'], w['ci_high'], 3)})")


def h6(results, epochs=VERDICT_EPOCHS):
    """Claim (c) by the pre-registered measure (H6): cv_contrast of D's gradient norm."""
    return cv_contrast(results, "cv_grad_norm_d", epochs)


def steadiness(results, epochs=VERDICT_EPOCHS):
    """The verdict's sentence on claim (c), from h6."""
    word, measured, test = h6(results, epochs)
    if word == "untested":
        return "untested (H6: `analysis/stability.py` has not been run on committed logs)."
    if word == "not decidable":
        return f"not decidable yet ({test}). Measured: {measured}."
    return f"{word} by H6: {test}. Measured: {measured}."


HOLDS = {True: "holds", False: "does not hold"}


def claim_words(results, epochs=VERDICT_EPOCHS):
    """Every rule's word of the verdict (minkgan/verdicts.py), from the committed results: what the
    verdict, the answer and results/verdicts.csv say. Computed once per state of the results' CSVs (a
    render fills about ten claim cells; D*'s grid search alone takes a second), again when one changes."""
    return dict(words_of(results, epochs, csv_fingerprint(results)))


def csv_fingerprint(results):
    """(name, size, modification time) of every CSV in the results folder: the words' inputs."""
    paths_ = sorted(glob.glob(os.path.join(results, "*.csv")))
    return tuple((os.path.basename(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths_)


@functools.lru_cache(maxsize=4)
def words_of(results, epochs, fingerprint):
    """claim_words' rules, once per fingerprint."""
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
    align = alignment_facts(results)
    words["one_loss"] = verdicts.one_loss(align["early"])
    words["one_loss_weights"] = verdicts.one_loss(align["weights"])
    words["steadier_d"] = h6(results, epochs)[0]
    words["steadier_loss_d"] = cv_contrast(results, "cv_loss_d", epochs)[0]
    words["steadier_loss_g"] = cv_contrast(results, "cv_loss_g", epochs)[0]
    words["setup"] = verdicts.setup_reproduced(settings.paper_setup_differences())
    words["moments"] = h7(results, epochs)[0]
    min_loss, dlog = derivations.loss_d_minimum(2.5), derivations.binomial_table()["dlog_digamma"]
    words["arguments_fail"] = verdicts.arguments_that_fail(min_loss, dlog)
    words["even_p"] = HOLDS[not verdicts.even_p_fails(min_loss)]
    words["binomial"] = HOLDS[not verdicts.binomial_fails(dlog)]
    words["optimal_d"] = verdicts.optimal_d_checked(derivations.optimal_d_largest_gap())
    for name in ("gan", "wgan", "minkowski-p1"):
        r = campaign_row(results, "minkowski-p4", name, epochs)
        words[f"p4_vs_{name}"] = r["verdict"] if r is not None else "not yet measured"
    return words


def say(words, baseline):
    """How the answer and the claims table say the contrast p = 4 − baseline's word."""
    return verdicts.CONTRAST_PHRASES[words[f"p4_vs_{baseline}"]]


def claim_a(results, w):
    h8 = failure_rows(results)
    weights = "not yet measured"
    if h8 is not None and len(h8):
        r = h8[h8["rule"] == "preregistered"].set_index("b")
        weights = (f"failures p = 4 {r['failed_a'].iloc[0]} of {r['n_a'].iloc[0]}, GAN {r.loc['gan', 'failed_b']} of "
                   f"{r.loc['gan', 'n_b']}, WGAN {r.loc['wgan', 'failed_b']} of {r.loc['wgan', 'n_b']}: "
                   f"{r.loc['gan', 'failure_verdict']} against GAN, {r.loc['wgan', 'failure_verdict']} against WGAN")
    return (f"against GAN: {say(w, 'gan')} (H1); against WGAN (5 critic steps, equal epochs): {say(w, 'wgan')} (H2); "
            f"at equal G steps: not yet measured (H9). With only conv and linear weights clipped (H8, interim): {weights}")


def claim_b(results, w):
    behind = f"; {listed_p(w['far_behind'])} far behind" if w["far_behind"] else ""
    return f"{w['best_p']}: p = 4 − p = 1: {say(w, 'minkowski-p1')} (H3){behind}"


def claim_c(results, w):
    return (f"{w['steadier_d']} by its pre-registered measure (H6: the coefficient of variation of D's gradient norm "
            "over epoch 2, p = 4 against GAN; the interval is in the verdict with every arm's value); the smaller "
            "scale is measured and explained by 2^-(p+1)")


def claim_curves(results, w):
    """Claim (c)'s loss curves, by the same measure as H6 (exploratory: H6 pre-registered D's gradient only).
    The coefficient of variation is free of the loss's scale, which (1/p)|D − t|^p ≤ 1/p makes smaller by itself."""
    _, measured_g, test_g = cv_contrast(results, "cv_loss_g")
    _, _, test_d = cv_contrast(results, "cv_loss_d")
    if measured_g is None:
        return "untested (`analysis/stability.py` has not been run on committed logs); in scale the curves are " \
               "smaller by construction: (1/p)\\|D − t\\|^p ≤ 1/p"
    return (f"G's loss: {w['steadier_loss_g']} ({test_g}); D's loss: {w['steadier_loss_d']} ({test_d}); exploratory, "
            f"by H6's measure, which is free of scale: in scale the curves are smaller by construction, "
            f"(1/p)\\|D − t\\|^p ≤ 1/p. Measured: {measured_g}")


def claim_setup(results, w):
    return (f"{w['setup']}; the layers are not listed (DCGAN assumed), \"weight clipping\" read two ways "
            "(H4, H8)")


def claim_d(results, w):
    best_clipped = toy_rows(results, 0.01)["final_hq_pct_mean"].max()
    clipped = "uninformative (no arm, WGAN's included, learns a mixture)" if best_clipped < UNINFORMATIVE_HQ_PCT \
        else "see the verdict"
    return (f"{w['modes_ring8']} on ring8 and {w['modes_grid25']} on grid25 without clipping (not the paper's "
            f"setup); {w['coverage']} on CIFAR-10 (coverage); the clipped 2-D benchmark (H5): {clipped}")


def claim_e(results, w):
    return f"{w['even_p']} with the absolute value (the rule's question: does the loss stay non-negative at p = 2.5?)"


def claim_f(results, w):
    return (f"{w['binomial']} (the rule's question: is the log-derivative of C(p, 4) at p = 4 zero? Its value and the "
            "printed one are in the derivations)")


def claim_g(results, w):
    return (f"{w['optimal_d']}: D* = 1 / (1 + (p_g/p_data)^(1/(p−1))) against a search over D, which tends to ½ as "
            "p grows")


def claim_h(results, w):
    return (f"{w['moments']} (H7) on CIFAR-10, per pixel and per Inception feature (the runs are in the table); "
            "on the 2-D mixtures only H5's runs (every D parameter clipped, a benchmark H5 found uninformative) "
            "were measured, and the unclipped 2-D runs kept no checkpoints")


def claim_i(results, w):
    table = horizon_rows(results)
    if table is None:
        return "untested past 2 epochs"
    sd, _ = pooled_sd(image_runs(results, VERDICT_EPOCHS))
    return (f"untested at 200 epochs. At {table['epoch'].max():g} epochs (one seed an arm, a description, not a test), "
            f"after epoch {VERDICT_EPOCHS}: {crossings(horizon_curves(table), sd)}")


def claim_ours(results, w):
    return (f"under every D parameter clipped, {w['one_loss']} early (D-gradient cosines to WGAN's, loosening with "
            f"training and with p); with only conv and linear weights clipped, {w['one_loss_weights']}, at 300 steps "
            "and at H4's states at 2 epochs, where WGAN's large logits leave every sigmoid loss without a D gradient")


CLAIMS = {"T1": claim_setup, "a": claim_a, "b": claim_b, "c": claim_c, "c_curves": claim_curves, "d": claim_d, "e": claim_e, "f": claim_f, "g": claim_g,
          "h": claim_h, "i": claim_i, "ours": claim_ours}


def claim(results, name):
    """The 'verdict now' cell of one row of docs/claims.md, its words from claim_words' rules."""
    if name not in CLAIMS:
        raise UserError(f"<!-- report:claim name={name} -->: no such claim row; the rows generated are "
                        f"{', '.join(CLAIMS)}")
    return CLAIMS[name](results, claim_words(results))


def answer(results, epochs=VERDICT_EPOCHS):
    """The README's answer in one paragraph, every conclusion word from claim_words' rules."""
    w = claim_words(results, epochs)
    rows = campaign_rows(results, epochs)
    seeds = f"{int(rows['n_a'].min())}" if rows is not None and len(rows) else "the committed"
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
            f"default reading of the paper's clipping): against WGAN {say(w, 'wgan')} (at equal epochs; WGAN's 5 critic steps "
            f"make 5 times fewer G steps); against GAN {say(w, 'gan')}; against p = 1 {say(w, 'minkowski-p1')}. p = 4 as the best "
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


def by_fid(fids):
    return ranked((v, f"{k} {num(v)}") for k, v in fids.items())


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
