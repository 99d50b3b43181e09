"""The rules that turn the results into the verdict's words: each a function of numbers with its
threshold here, tested on both sides (tests/report/test_verdicts.py), so that changing the data changes the
words. report.py writes them; `report.py --recompute --results results` records each outcome with its
numbers in results/verdicts.csv. The wording thresholds of far_behind and one_loss were written on
2026-12-07, after the data they read (a dated deviation, docs/preregistration-addendum.md); so was
OPTIMAL_D_TOLERANCE (2026-12-07, after the closed form and the grid search were seen to agree to 1.4e-6)."""
import numpy as np

from minkgan import contrasts

FAR_BEHIND_SDS = 2.0  # an arm is "far behind" when its mean FID is this many pooled SDs above the best arm's
ONE_LOSS_COSINE = 0.99  # "nearly one loss": every loss's D gradient this close in direction to WGAN's


def best_p(means, h3_verdict):
    """Claim (b): 'seen' when the lowest mean FID is at p = 4 and the pre-registered p = 4 − p = 1
    contrast supports it, else 'not seen'."""
    best = min(means, key=means.get)
    return "seen" if best == 4 and h3_verdict == "supported" else "not seen"


def far_behind(means, sd, sds=FAR_BEHIND_SDS):
    """The p whose mean FID lies more than `sds` pooled SDs above the best p's, in order of p."""
    best = min(means.values())
    return [p for p in sorted(means) if means[p] > best + sds * sd]


def direction(low, high):
    """An interval of p = 4 − baseline with no paper gap to read: 'supported' below 0 (for a metric where
    higher is better, the caller passes the negated interval), 'contradicted' above, else 'not seen'."""
    word = contrasts.verdict(low, high, np.nan)
    return "not seen" if word == "inconclusive" else word


def setup_reproduced(differences):
    """Claim T1: 'reproduced as train.py's defaults' when no setting of the paper's Table 1 differs from
    them, else which ones do."""
    if not differences:
        return "reproduced as `train.py`'s defaults"
    return "differs from `train.py`'s defaults in " + ", ".join(
        f"{flag} ({ours} here, {paper} in the paper)" for flag, (ours, paper) in differences.items())


def one_loss(cosines, threshold=ONE_LOSS_COSINE):
    """The mechanism: 'nearly one loss' when every measured cosine of a loss's D gradient to WGAN's
    reaches the threshold, else 'not one loss'."""
    return "nearly one loss" if min(cosines) >= threshold else "not one loss"


def even_p_fails(min_loss_with_abs):
    """'p must be even' (claim e) fails when the loss with |.| is non-negative at a non-even p."""
    return min_loss_with_abs >= 0


def binomial_fails(dlog_at_4):
    """'C(p, 4) is largest at p = 4' (claim f) fails when its log-derivative there is not 0 (> 0: increasing)."""
    return abs(dlog_at_4) > 1e-9


def arguments_that_fail(min_loss_with_abs, dlog_at_4):
    """How many of the paper's two arguments about p fail (claims e and f)."""
    return int(even_p_fails(min_loss_with_abs)) + int(binomial_fails(dlog_at_4))


OPTIMAL_D_TOLERANCE = 1e-4  # D* checked when closed form and grid search agree this well (grid step 5e-6)


def optimal_d_checked(largest_gap, tolerance=OPTIMAL_D_TOLERANCE):
    """Claim (g): 'checked' when the closed form of D* agrees with a search over D everywhere tried."""
    return "checked" if largest_gap <= tolerance else "does not match"


