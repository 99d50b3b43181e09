"""The verdict, the README's answer and the claims table: one line per claim of the paper, each conclusion
word chosen by a rule of minkgan/verdicts.py or analysis/contrasts.py from the committed results."""
import functools
import glob
import os

import numpy as np
import pandas as pd

from minkgan import contrasts, derivations, settings, verdicts
from minkgan.report.text import interval, listed_p, num, ranked, sig, signed, span, value_range
from minkgan.report.facts import (H8_SEEDS, H10_EPOCHS, LONG_RUN_SEEDS, UNINFORMATIVE_HQ_PCT, VERDICT_EPOCHS, alignment_facts, arm_key, arm_label,
    arms, campaign_row, campaign_rows, contrast, crossings, failure_rows, horizon_curves, horizon_rows, image_runs,
    last_epoch, paper_fid, pooled_sd, read_csv, run_logs, seeds_per_arm, toy_contrast, toy_rows)
from minkgan.report.sentences import say
from minkgan.report.toys import clipped_toys, h7, higher_moments, toy_higher_moments
from minkgan.utils import UserError

PAGE = "verdict"  # its sentences: minkgan/report/sentences/verdict.txt


def contrast_text(results, a, b, epochs=VERDICT_EPOCHS, family="H1-H3"):
    """'+8.4 FID (95 % interval ...; paper -98.2): <reading>' for a - b, from the campaign where it
    is committed, else from the committed seeds: the pooled interval, and Welch's where its reading
    differs; the power where the reading is inconclusive."""
    r = campaign_row(results, a, b, epochs, family)
    if r is not None:
        text = say(PAGE, "contrast_campaign", diff=signed(r["mean_diff"]), interval=interval(r["ci_low"], r["ci_high"]),
                   n_a=r["n_a"], n_b=r["n_b"], paper=num(r["paper_gap"]), verdict=r["verdict"])
        size = len(campaign_rows(results, epochs, family))
        if r["verdict"] in ("supported", "contradicted"):
            text += " " + (say(PAGE, "contrast_holm", p=sig(r["p_value"]), p_holm=sig(r["p_holm"]), family=size)
                           if size > 1 else say(PAGE, "contrast_p", p=sig(r["p_value"])))
        return text + power_note(r["verdict"], r["power_at_paper_gap"])
    c = contrast(results, image_runs(results, epochs), a, b)
    text = say(PAGE, "contrast_pooled_split" if c["welch_verdict"] != c["verdict"] else "contrast_pooled",
               diff=signed(c["diff"]), interval=interval(c["low"], c["high"]), paper=num(c["paper_gap"]),
               verdict=c["verdict"], welch=interval(c["welch_low"], c["welch_high"]), welch_verdict=c["welch_verdict"])
    return text + power_note(c["verdict"], c["power"])


def campaign_text(results, a, b, epochs, family="H1-H3", seeds=LONG_RUN_SEEDS):
    """contrast_text of a contrast that the campaign alone tests (H9, H10: no committed seeds to pool
    beforehand), said to be interim while an arm has fewer than its pre-registered seeds, or 'not yet
    measured' while results/contrasts.csv has no row of it."""
    r = campaign_row(results, a, b, epochs, family)
    if r is None:
        return say(PAGE, "not_yet_measured")
    fewest = int(min(r["n_a"], r["n_b"]))
    interim = " " + say(PAGE, "interim_arm", have=fewest, seeds=seeds) if fewest < seeds else ""
    return contrast_text(results, a, b, epochs, family) + interim


def power_note(word, power):
    """' (power 0.23)' beside an inconclusive reading, where the power says how little a miss means."""
    return " " + say(PAGE, "power", power=power) if word == "inconclusive" else ""


def campaign_progress(results, epochs=VERDICT_EPOCHS, seeds=5):
    """' Interim: ...' while the campaign's arms have fewer than their pre-registered seeds."""
    r = campaign_row(results, "minkowski-p4", "gan", epochs)
    if r is None:
        return ""
    rows = campaign_rows(results, epochs)
    fewest = int(min(rows["n_a"].min(), rows["n_b"].min()))
    most = int(max(rows["n_a"].max(), rows["n_b"].max()))
    have = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    return "" if fewest >= seeds else " " + say(PAGE, "interim", have=have, seeds=seeds)


def contrast_source(results, epochs=VERDICT_EPOCHS):
    """Where the verdict's intervals come from, in one sentence."""
    if campaign_row(results, "minkowski-p4", "gan", epochs) is not None:
        return say(PAGE, "source_campaign")
    sd, df = pooled_sd(image_runs(results, epochs))
    return say(PAGE, "source_pooled", epochs=epochs, sd=sd, df=df)


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
    text = say(PAGE, "cv_measured", what=STEADINESS[column], epochs=epochs, listed=listed)
    p4, gan = cv.get("Minkowski p = 4", pd.Series(dtype=float)), cv.get("GAN", pd.Series(dtype=float))
    if min(len(p4), len(gan)) < 2:
        return "not decidable", text, say(PAGE, "cv_too_few", n=len(p4))
    w = contrasts.welch(p4, gan)
    return (contrasts.verdict(w["ci_low"], w["ci_high"], float("nan")), text,
            say(PAGE, "cv_test", diff=signed(w["mean_diff"], 3), interval=interval(w["ci_low"], w["ci_high"], 3)))


def h6(results, epochs=VERDICT_EPOCHS):
    """Claim (c) by the pre-registered measure (H6): cv_contrast of D's gradient norm."""
    return cv_contrast(results, "cv_grad_norm_d", epochs)


def steadiness(results, epochs=VERDICT_EPOCHS):
    """The verdict's sentence on claim (c), from h6."""
    word, measured, test = h6(results, epochs)
    if word == "untested":
        return say(PAGE, "steadiness_untested")
    if word == "not decidable":
        return say(PAGE, "steadiness_not_decidable", test=test, measured=measured)
    return say(PAGE, "steadiness", word=word, test=test, measured=measured)


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
    for name, row in {"gan": ("gan", epochs, "H1-H3"), "wgan": ("wgan", epochs, "H1-H3"),
                      "minkowski-p1": ("minkowski-p1", epochs, "H1-H3"), "wgan_equal_g": ("wgan-equal-g", epochs, "H9"),
                      "gan_10epochs": ("gan", H10_EPOCHS, "H1-H3")}.items():
        r = campaign_row(results, "minkowski-p4", *row)
        words[f"p4_vs_{name}"] = r["verdict"] if r is not None else "not yet measured"
    return words


# The sentence that says each word of the pre-registered contrast rule (contrasts.verdict) for p = 4 − a baseline
CONTRAST_SENTENCES = {"supported": "contrast_supported", "contradicted": "contrast_contradicted",
                      "paper's gap excluded": "contrast_gap_excluded", "inconclusive": "contrast_inconclusive",
                      "not yet measured": "not_yet_measured"}
# The sentence for the number of the paper's two arguments about p that fail (verdicts.arguments_that_fail)
ARGUMENTS_SENTENCES = {0: "arguments_0", 1: "arguments_1", 2: "arguments_2"}


def phrase(words, baseline):
    """How the answer and the claims table say the contrast p = 4 − baseline's word."""
    return say(PAGE, CONTRAST_SENTENCES[words[f"p4_vs_{baseline}"]])


def h8_counts(results, epochs=VERDICT_EPOCHS):
    """The pre-registered rule's failure counts and Fisher words of H8 (results/failures.csv) as the fields of
    a sentence, or None before H8 is measured."""
    h8 = failure_rows(results, epochs)
    if h8 is None or not len(h8):
        return None
    r = h8[h8["rule"] == "preregistered"].set_index("b")
    return dict(p4=r["failed_a"].iloc[0], n_p4=r["n_a"].iloc[0], gan=r.loc["gan", "failed_b"], n_gan=r.loc["gan", "n_b"],
                wgan=r.loc["wgan", "failed_b"], n_wgan=r.loc["wgan", "n_b"], vs_gan=r.loc["gan", "failure_verdict"],
                vs_wgan=r.loc["wgan", "failure_verdict"],
                so_far=" so far" if min(r["n_a"].min(), r["n_b"].min()) < H8_SEEDS else "")


def far_behind(w):
    """'; p = 7 and 8 far behind' where the rule finds p far behind the best, else ''."""
    return say(PAGE, "far_behind", ps=listed_p(w["far_behind"])) if w["far_behind"] else ""


def claim_a(results, w):
    counts = h8_counts(results)
    weights = say(PAGE, "claim_a_weights", **counts) if counts else say(PAGE, "not_yet_measured")
    return say(PAGE, "claim_a", gan=phrase(w, "gan"), wgan=phrase(w, "wgan"), wgan_g=phrase(w, "wgan_equal_g"),
               gan_10=phrase(w, "gan_10epochs"), weights=weights)


def claim_b(results, w):
    return say(PAGE, "claim_b", best_p=w["best_p"], p1=phrase(w, "minkowski-p1"), behind=far_behind(w))


def claim_c(results, w):
    return say(PAGE, "claim_c", word=w["steadier_d"])


def claim_curves(results, w):
    """Claim (c)'s loss curves, by the same measure as H6 (exploratory: H6 pre-registered D's gradient only).
    The coefficient of variation is free of the loss's scale, which (1/p)|D − t|^p ≤ 1/p makes smaller by itself."""
    _, measured_g, test_g = cv_contrast(results, "cv_loss_g")
    _, _, test_d = cv_contrast(results, "cv_loss_d")
    if measured_g is None:
        return say(PAGE, "claim_curves_untested")
    return say(PAGE, "claim_curves", word_g=w["steadier_loss_g"], test_g=test_g, word_d=w["steadier_loss_d"],
               test_d=test_d, measured_g=measured_g)


def claim_setup(results, w):
    return say(PAGE, "claim_setup", word=w["setup"])


def claim_d(results, w):
    best_clipped = toy_rows(results, 0.01)["final_hq_pct_mean"].max()
    clipped = say(PAGE, "claim_d_clipped_uninformative" if best_clipped < UNINFORMATIVE_HQ_PCT else "claim_d_clipped_see")
    return say(PAGE, "claim_d", ring8=w["modes_ring8"], grid25=w["modes_grid25"], coverage=w["coverage"], clipped=clipped)


def claim_e(results, w):
    return say(PAGE, "claim_e", word=w["even_p"])


def claim_f(results, w):
    return say(PAGE, "claim_f", word=w["binomial"])


def claim_g(results, w):
    return say(PAGE, "claim_g", word=w["optimal_d"])


def claim_h(results, w):
    return say(PAGE, "claim_h", word=w["moments"])


def claim_i(results, w):
    table = horizon_rows(results)
    if table is None:
        return say(PAGE, "claim_i_untested")
    sd, _ = pooled_sd(image_runs(results, VERDICT_EPOCHS))
    return say(PAGE, "claim_i", epochs=table["epoch"].max(), verdict_epochs=VERDICT_EPOCHS,
               crossings=crossings(horizon_curves(table), sd))


def claim_ours(results, w):
    return say(PAGE, "claim_ours", one_loss=w["one_loss"], one_loss_weights=w["one_loss_weights"])


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
    seeds = f"{int(rows['n_a'].min())}" if rows is not None and len(rows) else say(PAGE, "answer_seeds_none")
    counts = h8_counts(results, epochs)
    other = say(PAGE, "answer_h8", **counts) if counts else say(PAGE, "answer_h8_none")
    return say(PAGE, "answer", epochs=epochs, seeds=seeds, wgan=phrase(w, "wgan"), wgan_g=phrase(w, "wgan_equal_g"),
               gan=phrase(w, "gan"),
               p1=phrase(w, "minkowski-p1"), best_p=w["best_p"], behind=far_behind(w), ring8=w["modes_ring8"],
               grid25=w["modes_grid25"], coverage=w["coverage"], one_loss=w["one_loss"], other=other)


def verdict(results):
    runs = image_runs(results, VERDICT_EPOCHS)
    means = {k[1]: g["final_fid"].mean() for k, g in arms(runs[runs["loss"] == "minkowski"])}
    ratios = gradient_ratios(results, VERDICT_EPOCHS)
    align = alignment_facts(results)
    ring, grid = toy_contrast(results, "ring8"), toy_contrast(results, "grid25")
    cov = contrast(results, runs, "minkowski-p4", "gan", "final_coverage")
    words = claim_words(results)
    behind = words["far_behind"]
    level = [v for p, v in means.items() if p not in behind]
    predicted = {p: r / 2 ** p for p, r in ratios.items()}
    far = say(PAGE, "verdict_b_behind", ps=listed_p(behind), fids=", ".join(f"{means[p]:.1f}" for p in behind),
              sds=verdicts.FAR_BEHIND_SDS) if behind else ""
    return "\n".join([
        contrast_source(results) + "\n",
        say(PAGE, "verdict_a", epochs=VERDICT_EPOCHS, gan=contrast_text(results, "minkowski-p4", "gan"),
            wgan=contrast_text(results, "minkowski-p4", "wgan"), progress=campaign_progress(results),
            wgan_g=campaign_text(results, "minkowski-p4", "wgan-equal-g", VERDICT_EPOCHS, "H9"),
            gan_10=campaign_text(results, "minkowski-p4", "gan", H10_EPOCHS)),
        say(PAGE, "verdict_b", best_p=words["best_p"], epochs=VERDICT_EPOCHS, lowest=min(means, key=means.get),
            p1=contrast_text(results, "minkowski-p4", "minkowski-p1"), low=min(level), high=max(level), behind=far),
        say(PAGE, "verdict_c", steadiness=steadiness(results),
            ratios=", ".join(f"{r:.0f}x" if r >= 10 else f"{r:.1f}x" for r in ratios.values()),
            ps=", ".join(f"{p:g}" for p in ratios), predicted=", ".join(f"{2 ** p:g}" for p in ratios),
            low=min(predicted.values()), high=max(predicted.values())),
        say(PAGE, "verdict_d", ring8=words["modes_ring8"], grid25=words["modes_grid25"], coverage=words["coverage"],
            ring_diff=signed(ring["diff"]), ring_interval=interval(ring["low"], ring["high"]), ring_n=ring["n"],
            grid_diff=signed(grid["diff"]), grid_interval=interval(grid["low"], grid["high"]), grid_n=grid["n"],
            epochs=VERDICT_EPOCHS, cov_diff=signed(cov["diff"], 3), cov_interval=interval(cov["low"], cov["high"], 3),
            recall=runs["final_recall"].max(), clipped_toys=clipped_toys(results)),
        say(PAGE, "verdict_mechanism", one_loss=words["one_loss"], early=align["early"].min(),
            p8_2ep=value_range(align["p8_2ep"])),
        say(PAGE, "verdict_derivations", arguments=say(PAGE, ARGUMENTS_SENTENCES[words["arguments_fail"]]),
            dlog=derivations.binomial_table()["dlog_digamma"], paper=derivations.PAPER_DLOG_BINOMIAL),
        weights_only_line(results),
        horizon_line(results),
        say(PAGE, "verdict_moments", epochs=VERDICT_EPOCHS, cifar=higher_moments(results), toys=toy_higher_moments(results)),
        say(PAGE, "verdict_200")])


def weights_only_line(results, epochs=VERDICT_EPOCHS):
    """The verdict's line on the other reading of the clipping (H4, exploratory): its contrasts,
    and how many Minkowski runs learned no images (precision and coverage 0)."""
    if campaign_row(results, "minkowski-p4", "gan", epochs, "H4") is None:
        return say(PAGE, "weights_none")
    runs = image_runs(results, epochs, clip_params="weights")
    mink = runs[runs["loss"] == "minkowski"]
    blank = mink[(mink["final_precision"] == 0) & (mink["final_coverage"] == 0)]
    text = lambda b: contrast_text(results, "minkowski-p4", b, epochs, "H4")  # noqa: E731
    return say(PAGE, "weights", seeds=seeds_per_arm(runs), epochs=epochs, logits=value_range(runs["final_logit_absmax"], 1),
               logits_all=value_range(image_runs(results, epochs)["final_logit_absmax"], 2), gan=text("gan"),
               wgan=text("wgan"), p1=text("minkowski-p1"), p8=text("minkowski-p8"), blank=len(blank), mink=len(mink),
               h8=h8_line(results, epochs))


def h8_line(results, epochs=VERDICT_EPOCHS):
    """The verdict's sentence on H8, from results/failures.csv: failures and the tests' words, both rules."""
    rows = failure_rows(results, epochs)
    if rows is None or not len(rows):
        return say(PAGE, "h8_none")
    pre = rows[rows["rule"] == "preregistered"].set_index("b")
    dev = rows[rows["rule"] == "or-blank"].set_index("b")
    first = pre.iloc[0]
    counts = (f"p = 4 {first['failed_a']} of {first['n_a']}, "
              + ", ".join(f"{arm_label(*contrasts.ARMS[b])} {r['failed_b']} of {r['n_b']}" for b, r in pre.iterrows()))
    tests = "; ".join(say(PAGE, "h8_test", arm=arm_label(*contrasts.ARMS[b]), p=r["fisher_p"], word=r["failure_verdict"],
                          power=r["fisher_power"]) for b, r in pre.iterrows())
    deviation = ", ".join(say(PAGE, "h8_deviation", failed=r["failed_a"], n=r["n_a"], arm=arm_label(*contrasts.ARMS[b]),
                              failed_b=r["failed_b"], word=r["failure_verdict"]) for b, r in dev.iterrows())
    ranks = "; ".join(say(PAGE, "h8_rank", arm=arm_label(*contrasts.ARMS[b]), p=r["mw_p"], word=r["mw_verdict"])
                      for b, r in pre.iterrows())
    have = int(min(first["n_a"], pre["n_b"].min()))
    interim = " " + say(PAGE, "h8_interim", have=have, seeds=H8_SEEDS) if have < H8_SEEDS else ""
    return say(PAGE, "h8", counts=counts, tests=tests, deviation=deviation, ranks=ranks, interim=interim)


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
        return say(PAGE, "horizon_none")
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
    text = say(PAGE, "horizon", epochs=epochs, seeds=span(table["seed"]), n=n, verdict_epochs=VERDICT_EPOCHS,
               early=by_fid(early), late=by_fid(late), crossings=crossings(curves, sd), sd=sd, finals=ranked(finals),
               logits=", ".join(logits))
    fits = fits[fits["run"].isin(table["run"])] if fits is not None else pd.DataFrame()
    if len(fits):
        at_200 = fits["logit_absmax_at_200"]
        text += say(PAGE, "horizon_growth", growing=int((fits["exponent"] > 0).sum()), fits=len(fits),
                    largest=fits["exponent"].max(), points=int(fits["points"].max()),
                    at_200=num(at_200.min(), 2) + (f"–{num(at_200.max(), 2)}" if len(fits) > 1 else ""))
        for run in fits[fits["exponent"] > 0]["run"]:  # does the growth go on, or level off before the end?
            last = table[(table["run"] == run) & (table["n"] == n)].sort_values("epoch").tail(3)
            text += say(PAGE, "horizon_growth_run", arm=arm_label(*arm_key(last.iloc[0])),
                        epochs=", ".join(f"{e:g}" for e in last["epoch"]),
                        values=", ".join(num(v, 2) for v in last["logit_absmax"]))
    missing = [arm for arm in HORIZON_ARMS if arm not in labels]
    return text + (say(PAGE, "horizon_missing", arms=", ".join(missing)) if missing else "") + say(PAGE, "horizon_link")
