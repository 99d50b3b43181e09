"""metrics.py against independent formulas written out here: Frechet distance (against
pytorch-fid and scipy's sqrtm), KID, precision / recall / density / coverage, toy metrics."""
import math

import numpy as np
import pytest
import torch

from minkgan import data
from minkgan import metrics


# ----------------------------------------------------------------------------- helpers

def random_cov(rng, d, n):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / math.sqrt(d) + rng.normal(size=d)
    return metrics.statistics(x)


def sqrtm_fid(mu1, s1, mu2, s2):
    """The textbook formula with scipy's sqrtm (pytorch-fid's, without its fallbacks)."""
    from scipy import linalg
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))



# ----------------------------------------------------------------------------- Frechet distance, KID

@pytest.mark.parametrize("d,n", [(16, 200), (128, 1000), (128, 60)])  # last: singular covariances
def test_frechet_distance_matches_pytorch_fid(d, n):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(d + n)
    mu1, s1 = random_cov(rng, d, n)
    mu2, s2 = random_cov(rng, d, n)
    ours = metrics.frechet_distance(mu1, s1, mu2, s2)
    theirs = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours > 1.0
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours == pytest.approx(sqrtm_fid(mu1, s1, mu2, s2), rel=1e-6)


def test_frechet_distance_of_equal_and_shifted_gaussians():
    rng = np.random.default_rng(1)
    mu, s = random_cov(rng, 64, 500)
    assert abs(metrics.frechet_distance(mu, s, mu, s)) < 1e-8 * np.trace(s)
    shift = np.full(64, 0.5)
    assert metrics.frechet_distance(mu + shift, s, mu, s) == pytest.approx(64 * 0.25, rel=1e-6)
    # N(0, a I) vs N(0, b I): d (sqrt a - sqrt b)^2
    assert metrics.frechet_distance(np.zeros(8), 4 * np.eye(8), np.zeros(8), np.eye(8)) == pytest.approx(8.0)


def test_kid_matches_direct_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 10)).astype(np.float32)
    y = (rng.normal(size=(30, 10)) + 0.3).astype(np.float32)
    # one subset holding every sample of the smaller set is a fixed number: check it by the formula
    k, std = metrics.kid(x[:30], y, n_subsets=1, subset_size=30)
    kern = lambda a, b: (a.astype(np.float64) @ b.astype(np.float64).T / 10 + 1) ** 3
    kxx, kyy, kxy = kern(x[:30], x[:30]), kern(y, y), kern(x[:30], y)
    m = 30
    expected = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                - 2 * kxy.mean())
    assert k == pytest.approx(expected, rel=1e-5)
    assert std == 0.0
    # same distribution: near 0 and below the shifted one
    same, _ = metrics.kid(x, rng.normal(size=(40, 10)).astype(np.float32), n_subsets=20, subset_size=20)
    shifted, shifted_std = metrics.kid(x, x + 1.0, n_subsets=20, subset_size=20)
    assert abs(same) < shifted / 5 and shifted > 0 and shifted_std > 0


# ----------------------------------------------------------------------------- toy metrics

def points_on(name, counts, offset=0.0):
    centres, std = data.toy_mixture(name)
    pts = [centres[k].repeat(c, 1) + offset * std for k, c in counts.items()]
    return torch.cat(pts)


def test_toy_three_of_eight_modes_equal_shares():
    x = points_on("ring8", {0: 100, 3: 100, 5: 100})
    centres, std = data.toy_mixture("ring8")
    m = metrics.toy_metrics(x, centres, std)
    assert m["modes"] == 3 and m["hq_pct"] == 100.0
    assert m["rkl"] == pytest.approx(math.log(8 / 3))


def test_toy_unequal_shares_and_outliers():
    centres, std = data.toy_mixture("grid25")
    on = points_on("grid25", {0: 200, 7: 100, 24: 100}, offset=2.9)  # 2.9 std along both axes: 4.1 std away
    near = points_on("grid25", {12: 100}) + torch.tensor([2.9 * std, 0.0])  # 2.9 std: high quality
    far = torch.full((100, 2), 1.0)  # between modes: 1.41 from the nearest, i.e. 28 std
    m = metrics.toy_metrics(torch.cat([on, near, far]), centres, std)
    assert m["modes"] == 1 and m["hq_pct"] == pytest.approx(100 * 100 / 600)
    assert m["rkl"] == pytest.approx(math.log(25))
    on = points_on("grid25", {0: 200, 7: 100, 24: 100})
    m = metrics.toy_metrics(on, centres, std)
    q = np.array([0.5, 0.25, 0.25])
    assert m["modes"] == 3 and m["rkl"] == pytest.approx(float((q * np.log(q * 25)).sum()))


def test_toy_uniform_and_far_away():
    centres, std = data.toy_mixture("ring8")
    x = data.sample_toy("ring8", 8000, torch.Generator().manual_seed(0))
    m = metrics.toy_metrics(x, centres, std)
    # 2-D Gaussian noise: P(|noise| <= 3 std) = 1 - exp(-9/2) = 98.89%
    assert m["modes"] == 8 and m["hq_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.4)
    assert 0 <= m["rkl"] < 0.01
    m = metrics.toy_metrics(torch.full((50, 2), 10.0), centres, std)
    assert m["modes"] == 0 and m["hq_pct"] == 0 and math.isnan(m["rkl"])




# ----------------------------------------------------------------------------- precision, recall, density, coverage

def knn_radii(x, k):
    """Distance of each row to its k-th nearest other row, by a full float64 sort."""
    from scipy.spatial.distance import cdist
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def prdc_by_definition(fake, real, k_pr, k_dc):
    """Kynkaanniemi et al. 2019 and Naeem et al. 2020, written out in float64 with scipy."""
    from scipy.spatial.distance import cdist
    fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    d = cdist(fake, real)  # d[j, i]: fake j to real i
    r_pr, r_dc, f_pr = knn_radii(real, k_pr), knn_radii(real, k_dc), knn_radii(fake, k_pr)
    return {"precision": np.mean([(d[j] < r_pr).any() for j in range(len(fake))]),
            "recall": np.mean([(d[:, i] < f_pr).any() for i in range(len(real))]),
            "density": sum((d[j] < r_dc).sum() for j in range(len(fake))) / (k_dc * len(fake)),
            "coverage": np.mean([d[:, i].min() < r_dc[i] for i in range(len(real))])}


def clusters(rng, n_per, which, d=8, spread=20.0):
    """n_per Gaussian points (std 1) around each centre spread * e_c, c in which."""
    return np.concatenate([rng.normal(size=(n_per, d)) + spread * np.eye(d)[c] for c in which]).astype(np.float32)


def test_prdc_of_identical_sets_is_one():
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    m = metrics.prdc(x, x)
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    assert m["density"] == pytest.approx(1.0, abs=0.01)  # each real ball holds itself and k - 1 neighbours


def test_prdc_of_disjoint_clusters_is_zero():
    rng = np.random.default_rng(1)
    m = metrics.prdc(clusters(rng, 100, [0]), clusters(rng, 100, [1]))
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_of_dropped_modes():
    """Fakes from 4 of the 8 real clusters: precise (high precision and density), but recall and
    coverage near the kept share 4/8."""
    rng = np.random.default_rng(2)
    real = clusters(rng, 100, range(8))
    fake = clusters(rng, 100, range(4))
    m = metrics.prdc(fake, real)
    assert m["precision"] > 0.8 and m["density"] > 0.9  # 100 points per cluster in 8-d: balls leave gaps
    assert 0.4 < m["recall"] <= 0.5 and 0.45 < m["coverage"] <= 0.5


@pytest.mark.parametrize("k_pr,k_dc", [(3, 5), (1, 2), (4, 10)])
def test_prdc_equals_the_definitions(k_pr, k_dc):
    """Same distribution, overlapping but shifted: every metric strictly between 0 and 1, equal to
    the float64 formulas (a fake or real on a radius to within float32 rounding may flip: 1 point)."""
    rng = np.random.default_rng(3)
    real = rng.normal(size=(250, 6)).astype(np.float32)
    fake = (rng.normal(size=(200, 6)) * 1.3 + 0.4).astype(np.float32)
    ours = metrics.prdc(fake, real, k_pr, k_dc)
    expected = prdc_by_definition(fake, real, k_pr, k_dc)
    for key in metrics.PRDC_COLUMNS:
        assert 0.05 < expected[key] < 1.0, key  # far from the trivial ends, so k and 1/(kM) matter
        assert ours[key] == pytest.approx(expected[key], abs=1.01 / 200), key


def test_prdc_defaults_are_the_papers_k():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(150, 5)).astype(np.float32)
    fake = (rng.normal(size=(150, 5)) + 0.5).astype(np.float32)
    ours, expected = metrics.prdc(fake, real), prdc_by_definition(fake, real, 3, 5)
    assert all(ours[k] == pytest.approx(expected[k], abs=1.01 / 150) for k in metrics.PRDC_COLUMNS)


def test_prdc_does_not_depend_on_the_block_size():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(301, 32)).astype(np.float32)
    fake = (rng.normal(size=(257, 32)) + 0.2).astype(np.float32)
    results = [metrics.prdc(fake, real, block=b) for b in (1, 7, 64, 1000)]
    assert all(r == results[0] for r in results)


def test_prdc_subsamples_and_needs_enough_points(monkeypatch):
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(40, 4)), rng.normal(size=(30, 4))
    monkeypatch.setattr(metrics, "PRDC_MAX_FEATURES", 20)
    sub = np.random.default_rng(0)  # prdc's own seeded draw: real first, then fake
    real_rows = metrics.at_most(real, 20, sub)
    fake_rows = metrics.at_most(fake, 20, sub)
    assert metrics.prdc(fake, real, seed=0) == metrics.prdc(fake_rows, real_rows)
    assert all(math.isnan(v) for v in metrics.prdc(fake[:3], real[:5]).values())  # 5 reals: no 5th neighbour


def test_prdc_boundary_of_a_ball_is_outside():
    """As prdc's reference code: strictly inside. Reals 0..9 on a line (k = 1: every radius is 1);
    the fake at 10 lies on the ball of 9, the one at 9.5 inside it."""
    real = np.arange(10.0)[:, None]
    assert metrics.prdc(np.array([[10.0], [30.0]]), real, k_pr=1, k_dc=1)["precision"] == 0.0
    assert metrics.prdc(np.array([[9.5], [30.0]]), real, k_pr=1, k_dc=1)["precision"] == 0.5


def test_moment_gaps_are_the_mean_absolute_differences_of_scipys_skewness_and_kurtosis():
    from scipy import stats as sstats
    rng = np.random.default_rng(0)
    real = np.column_stack([rng.normal(size=4000), rng.exponential(size=4000), rng.standard_t(6, size=4000)])
    fake = np.column_stack([rng.uniform(size=3000), rng.normal(size=3000), rng.exponential(size=3000)])
    gaps = metrics.moment_gaps(fake, real)
    skew = np.abs(sstats.skew(fake) - sstats.skew(real)).mean()
    kurt = np.abs(sstats.kurtosis(fake) - sstats.kurtosis(real)).mean()
    assert gaps["skew_gap"] == pytest.approx(skew, rel=1e-10) and gaps["kurtosis_gap"] == pytest.approx(kurt, rel=1e-10)
    assert gaps["real_abs_kurtosis"] == pytest.approx(np.abs(sstats.kurtosis(real)).mean(), rel=1e-10)
    same = metrics.moment_gaps(real * 7.0 + 3.0, real)  # moments are free of location and scale
    assert same["skew_gap"] == pytest.approx(0, abs=1e-9) and same["kurtosis_gap"] == pytest.approx(0, abs=1e-9)


def test_constant_coordinates_have_no_moments_and_are_left_out():
    rng = np.random.default_rng(1)
    real = np.column_stack([rng.normal(size=500), np.full(500, 2.0)])
    fake = np.column_stack([rng.normal(size=500), rng.normal(size=500)])
    assert metrics.moment_gaps(fake, real)["coordinates"] == 1
    with pytest.raises(metrics.UserError):
        metrics.moment_gaps(np.ones((10, 2)), real)
