"""The tests of the addendum's H8 (docs/preregistration-addendum.md), beside contrasts.py's Welch:
Fisher's exact test of two failure counts and its exact power, Mann-Whitney's U over every run, and
the power of the two-sided Welch test by the noncentral t, as the pre-registration names it."""
import numpy as np
from scipy import stats

ALPHA = 0.05


def fisher(failed_a, n_a, failed_b, n_b):
    """Two-sided p-value of Fisher's exact test of failed_a of n_a against failed_b of n_b."""
    return float(stats.fisher_exact([[failed_a, n_a - failed_a], [failed_b, n_b - failed_b]])[1])


def fisher_power(rate_a, n_a, rate_b, n_b, alpha=ALPHA):
    """Exact power of the two-sided Fisher test at alpha when the true failure rates are rate_a and
    rate_b: the binomial probability of every outcome (k_a, k_b) whose p-value is below alpha."""
    pa, pb = stats.binom.pmf(np.arange(n_a + 1), n_a, rate_a), stats.binom.pmf(np.arange(n_b + 1), n_b, rate_b)
    return float(sum(pa[i] * pb[j] for i in range(n_a + 1) for j in range(n_b + 1) if fisher(i, n_a, j, n_b) < alpha))


def mann_whitney(a, b):
    """(U of a, two-sided p-value): exact where there are no ties and few runs, else the normal form."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    tied = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
    test = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic" if tied else "exact")
    return float(test.statistic), float(test.pvalue)


def t_power(effect, se, df, alpha=ALPHA):
    """Power of a two-sided t test with standard error se and df degrees of freedom at a true
    difference `effect`: the noncentral t's two tails (cdf(-c, nc) as sf(c, -nc), which scipy keeps
    finite where the cdf underflows to NaN)."""
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, effect / se) + stats.nct.sf(critical, df, -effect / se))


def welch_power_noncentral(gap, sd_a, sd_b, n_a, n_b, alpha=ALPHA):
    """Power of the two-sided Welch test at a true difference `gap` with SDs sd_a, sd_b: the noncentral
    t at the Welch-Satterthwaite degrees of freedom of those SDs (the pre-registered formula; at a few
    seeds it overstates the power a little, as the sample SDs have fewer degrees of freedom:
    tests/analysis/test_contrasts.py bounds the difference by a simulation)."""
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    if va + vb == 0:
        return float(gap != 0)
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    return t_power(gap, np.sqrt(va + vb), df, alpha)


def anova_power(means, counts, sd, alpha=ALPHA):
    """Power of the one-way ANOVA F test at alpha when the groups' true means are `means`, with
    `counts` runs each (the design as run, not a balanced one) and a common SD: the noncentral F with
    noncentrality sum n_i (mu_i - mu)^2 / sd^2, mu the mean weighted by the n_i."""
    means, counts = np.asarray(means, float), np.asarray(counts, float)
    grand = (counts * means).sum() / counts.sum()
    df_between, df_within = len(means) - 1, counts.sum() - len(means)
    noncentrality = (counts * (means - grand) ** 2).sum() / sd ** 2
    critical = stats.f.ppf(1 - alpha, df_between, df_within)
    if noncentrality == 0:  # scipy's noncentral F is wrong at 0: the central F, power = alpha
        return float(stats.f.sf(critical, df_between, df_within))
    return float(stats.ncf.sf(critical, df_between, df_within, noncentrality))
