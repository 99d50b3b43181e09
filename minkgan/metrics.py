"""Metrics: pure functions of features or samples, importable without Inception, runs or tables.

Images (on Inception pool3 features, see evaluate.py): the Frechet distance of two feature
statistics (FID), KID, and precision, recall, density and coverage. 2-D benchmarks: toy_metrics.

Frechet distance: float64, Tr sqrt(S1 S2) = sum sqrt(eig(R S2 R^T)) with R^T R = S1 (Cholesky, or
the symmetric square root when S1 is singular), tiny negative eigenvalues clipped to 0; equal to
pytorch-fid's sqrtm formula to ~1e-9 relative and about 10x faster.

KID (Binkowski et al. 2018, as clean-fid): unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3,
averaged over random subsets drawn from up to 5000 features per side; kid_std is the standard
deviation of the subset estimates (the subsets overlap, so it is not a standard error).

Precision and recall (Kynkaanniemi et al. 2019, k = 3), density and coverage (Naeem et al. 2020,
k = 5): k-nearest-neighbour balls around each feature, as prdc's reference code (a point on a
ball's boundary is outside). Up to 5000 features per side; squared distances in float32 blocks.
"""
import numpy as np
import torch

from minkgan.utils import UserError

KID_MAX_FEATURES = 5000
PRDC_MAX_FEATURES = 5000
PRDC_COLUMNS = ["precision", "recall", "density", "coverage"]


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)) in float64.

    S1 S2 is similar to a symmetric PSD matrix R S2 R^T (R^T R = S1), so Tr sqrt(S1 S2) is the sum
    of the square roots of that matrix's eigenvalues (tiny negative ones from rounding clipped to
    0). R = chol(S1)^T when S1 is positive definite (one Cholesky and one eigvalsh: about 10x
    faster than scipy's sqrtm at 2048-d), else R = sqrt(S1) from an eigen-decomposition.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise UserError(f"statistics of different sizes: {mu1.shape} vs {mu2.shape}, {s1.shape} vs {s2.shape}")
    t1, t2 = torch.from_numpy(s1), torch.from_numpy(s2)  # torch's LAPACK calls are the fastest here
    t1 = (t1 + t1.T) / 2
    chol, info = torch.linalg.cholesky_ex(t1)
    if int(info) == 0:
        m = chol.T @ t2 @ chol
    else:  # singular (fewer samples than dimensions): the symmetric square root
        w, v = torch.linalg.eigh(t1)
        root = (v * w.clamp(min=0).sqrt()) @ v.T
        m = root @ t2 @ root
    tr_covmean = float(torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def statistics(features):
    """(mu, sigma) as pytorch-fid computes them: float64 mean and unbiased covariance."""
    f = np.asarray(features, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def kid(fake, real, n_subsets=100, subset_size=1000, seed=0):
    """(KID, std over subsets): unbiased MMD^2, kernel (x.y/d + 1)^3, as clean-fid / Binkowski et al."""
    rng = np.random.default_rng(seed)
    fake, real = at_most(fake, KID_MAX_FEATURES, rng), at_most(real, KID_MAX_FEATURES, rng)
    d = fake.shape[1]
    m = min(len(fake), len(real), subset_size)
    if m < 2:
        return float("nan"), float("nan")

    def gram(a, b):  # float32 dot products (fast), cubed in float64
        return (torch.from_numpy(a) @ torch.from_numpy(b).T).double().div_(d).add_(1).pow_(3).numpy()

    kxx, kyy, kxy = gram(fake, fake), gram(real, real), gram(fake, real)
    est = np.empty(n_subsets)
    for i in range(n_subsets):
        x = rng.choice(len(fake), m, replace=False)
        y = rng.choice(len(real), m, replace=False)
        a, b = kxx[np.ix_(x, x)], kyy[np.ix_(y, y)]
        off = (a.sum() - np.trace(a) + b.sum() - np.trace(b)) / (m * (m - 1))
        est[i] = off - 2 * kxy[np.ix_(x, y)].mean()
    return float(est.mean()), float(est.std())


def prdc(fake, real, k_pr=3, k_dc=5, block=1024, seed=0):
    """Precision, recall (k = k_pr), density and coverage (k = k_dc) of fake against real features.

    With B(x, k) the ball around x of radius its distance to its k-th nearest neighbour in its own
    set (itself excluded), N real and M fake features:
      precision = share of fakes inside some B(real, k_pr)       (fakes that look real)
      recall    = share of reals inside some B(fake, k_pr)       (reals the fakes reach)
      density   = (1 / (k_dc M)) sum over fakes of the number of B(real, k_dc) holding it
      coverage  = share of reals whose B(real, k_dc) holds some fake
    Density is ~1 when fake and real come from one distribution and can exceed 1. More than
    PRDC_MAX_FEATURES per side are subsampled (seeded). NaN when a set is too small for its k.
    The block size (rows of distances at a time) changes memory, not the result.
    """
    rng = np.random.default_rng(seed)
    real = torch.from_numpy(at_most(real, PRDC_MAX_FEATURES, rng))
    fake = torch.from_numpy(at_most(fake, PRDC_MAX_FEATURES, rng))
    if len(real) <= max(k_pr, k_dc) or len(fake) <= k_pr:
        return dict.fromkeys(PRDC_COLUMNS, float("nan"))
    real_radii = _kth_neighbour_sq_distances(real, (k_pr, k_dc), block)
    fake_radii = _kth_neighbour_sq_distances(fake, (k_pr,), block)[0]
    in_real = torch.zeros(len(fake), dtype=torch.bool)
    real_balls_holding = torch.zeros(len(fake), dtype=torch.int64)
    reached, covered = torch.zeros(len(real), dtype=torch.bool), torch.zeros(len(real), dtype=torch.bool)
    for i in range(0, len(fake), block):
        d = _sq_distances(fake[i:i + block], real)  # (fakes of the block, reals)
        in_real[i:i + block] = (d < real_radii[0]).any(1)
        inside_dc = d < real_radii[1]
        real_balls_holding[i:i + block] = inside_dc.sum(1)
        covered |= inside_dc.any(0)
        reached |= (d < fake_radii[i:i + block, None]).any(0)
    return {"precision": float(in_real.double().mean()), "recall": float(reached.double().mean()),
            "density": float(real_balls_holding.sum()) / (k_dc * len(fake)), "coverage": float(covered.double().mean())}


def _sq_distances(a, b):
    """Squared Euclidean distances (len(a), len(b)) in float32: |a|^2 + |b|^2 - 2 a.b, clipped at 0."""
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2 * (a @ b.T)
    return d.clamp_(min=0)


def _kth_neighbour_sq_distances(x, ks, block):
    """For each k of ks, the squared distance of every row of x to its k-th nearest other row."""
    out = torch.empty(len(ks), len(x))
    for i in range(0, len(x), block):
        d = _sq_distances(x[i:i + block], x)
        rows = torch.arange(len(d))
        d[rows, rows + i] = float("inf")  # a point is not its own neighbour
        nearest = d.topk(max(ks), dim=1, largest=False).values
        for j, k in enumerate(ks):
            out[j, i:i + block] = nearest[:, k - 1]
    return out


def at_most(features, n_max, rng):
    """float32 rows of features, a seeded random subset of n_max when there are more."""
    f = np.asarray(features, np.float32)
    if len(f) > n_max:
        f = f[np.sort(rng.choice(len(f), n_max, replace=False))]
    return np.ascontiguousarray(f)


def toy_metrics(samples, centres, std, threshold=3.0):
    """Mode metrics of 2-D samples against a Gaussian mixture (VEEGAN / PacGAN protocol).

    A sample is high quality when it lies within `threshold` standard deviations (Euclidean
    distance <= threshold * std, std = the mixture's) of some centre; it is assigned to its
    nearest centre. Returns a dict:
      modes:  the number of centres with at least one high-quality sample;
      hq_pct: 100 * (high-quality samples) / (all samples);
      rkl:    KL(q || uniform) = sum_k q_k log(q_k K), where q is the histogram of high-quality
              samples over the K centres (q_k = n_k / sum n, terms with q_k = 0 are 0). It is 0
              when every mode holds the same number, log(K / c) when c modes hold equal shares
              and the rest none, and NaN when there is no high-quality sample.
    """
    x = torch.as_tensor(samples, dtype=torch.float64).reshape(-1, 2)
    c = torch.as_tensor(centres, dtype=torch.float64)
    if len(x) == 0:
        raise UserError("no samples to evaluate")
    dist = torch.cdist(x, c)
    dmin, nearest = dist.min(1)
    finite = torch.isfinite(x).all(1)
    hq = (dmin <= threshold * std) & finite
    counts = torch.bincount(nearest[hq], minlength=len(c)).double()
    total = counts.sum()
    if total > 0:
        q = counts[counts > 0] / total
        rkl = float((q * torch.log(q * len(c))).sum())
    else:
        rkl = float("nan")
    return {"modes": int((counts > 0).sum()), "hq_pct": float(100 * hq.double().mean()), "rkl": rkl}


def moment_gaps(fake, real):
    """How far the generated data's third and fourth moments are from the real data's, coordinate by
    coordinate (pixels, Inception features or 2-D coordinates; rows are samples): the mean over
    coordinates of |skewness(fake) - skewness(real)| and of |excess kurtosis(fake) - that of real|,
    with the population estimators (scipy.stats.skew and kurtosis with their defaults). Coordinates
    constant in either set have no moments and are left out (the count of those used comes back)."""
    skew_f, kurt_f = _standard_moments(fake)
    skew_r, kurt_r = _standard_moments(real)
    used = np.isfinite(skew_f) & np.isfinite(skew_r)
    if not used.any():
        raise UserError("every coordinate is constant in the generated or the real set: no moments to compare")
    return {"skew_gap": float(np.abs(skew_f - skew_r)[used].mean()), "kurtosis_gap": float(np.abs(kurt_f - kurt_r)[used].mean()),
            "real_abs_skew": float(np.abs(skew_r[used]).mean()), "real_abs_kurtosis": float(np.abs(kurt_r[used]).mean()),
            "coordinates": int(used.sum())}


def _standard_moments(x):
    """Per column: skewness and excess kurtosis (NaN where the column is constant), in float64."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    var = (centred ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = (centred ** 3).mean(axis=0) / var ** 1.5
        kurt = (centred ** 4).mean(axis=0) / var ** 2 - 3.0
    constant = var <= 1e-12 * np.maximum(1.0, np.abs(x).max(axis=0) ** 2)
    return np.where(constant, np.nan, skew), np.where(constant, np.nan, kurt)
