"""Scores comparing two sets of Inception features: FID, KID, precision and recall.

* FID, Frechet Inception Distance (Heusel et al. 2017, https://arxiv.org/abs/1706.08500):
  the Frechet distance between Gaussians fitted to the two feature sets,
  ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The matrix square root and its
  numerical safeguards follow the reference code (bioinf-jku/TTUR ``fid.py`` and
  mseitzer/pytorch-fid ``calculate_frechet_distance``).
* KID, Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs",
  https://arxiv.org/abs/1801.01401): the unbiased estimate of the squared MMD with the
  cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets
  (mean and standard deviation over subsets, as in the authors' ``compute_scores.py``).
  Unlike FID it has no bias from the sample size, so it can be compared across sizes.
* Improved precision and recall (Kynkäänniemi et al. 2019,
  https://arxiv.org/abs/1904.06991): each sample of a set is the centre of a ball reaching
  its k-th nearest neighbour in the same set; precision is the share of generated samples
  inside some real ball (quality), recall the share of real samples inside some generated
  ball (coverage). The paper uses VGG-16 features; here the same Inception features as FID.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # With fewer samples than dimensions the covariances are singular and SciPy warns on every
    # call; the reference code (sqrtm(..., disp=False)) ignores that and checks the result
    # below instead, so do we.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    As in the reference code: if the product of the covariances is singular enough for
    sqrtm to return non-finite values, ``eps`` is added to the diagonals and it is retried;
    a complex result with negligible imaginary diagonal is replaced by its real part, a
    significant imaginary part (> 1e-3) raises ValueError.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mismatched shapes: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2

    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"fid calculation produces singular product; adding {eps} to diagonal of cov estimates")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the matrix square root")
        covmean = covmean.real

    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of (N, d) features, in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, d) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_features(real_f: np.ndarray, fake_f: np.ndarray) -> float:
    """FID between two (N, 2048) feature sets.

    With fewer samples than dimensions (n_real + n_fake < d, e.g. quick checks on a few
    hundred images) both covariances live in the span of the centred samples. Expressed in an
    orthonormal basis of that span, the FID is exactly the same, because (S1 S2)^(1/2) is zero
    outside it, but sqrtm works on an (n_real + n_fake)-sized matrix instead of a d-sized one.
    The component of the mean difference outside the span is added back separately.
    """
    real_f, fake_f = np.asarray(real_f, np.float64), np.asarray(fake_f, np.float64)
    if len(real_f) + len(fake_f) >= real_f.shape[1]:
        return frechet_distance(*feature_statistics(real_f), *feature_statistics(fake_f))
    mu1, mu2 = real_f.mean(axis=0), fake_f.mean(axis=0)
    basis, _ = np.linalg.qr(np.concatenate([real_f - mu1, fake_f - mu2]).T)  # (d, n1 + n2), orthonormal
    outside = (mu1 - mu2) - basis @ (basis.T @ (mu1 - mu2))
    projected = frechet_distance(*feature_statistics(real_f @ basis), *feature_statistics(fake_f @ basis))
    return float(projected + outside @ outside)


def kernel_inception_distance(
    real_f: np.ndarray, fake_f: np.ndarray, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and standard deviation over ``num_subsets`` random subsets of the unbiased MMD^2.

    Each subset draws m = min(subset_size, len(real_f), len(fake_f)) samples of each set
    without replacement.
    """
    real_f, fake_f = np.asarray(real_f, np.float64), np.asarray(fake_f, np.float64)
    d = real_f.shape[1]
    m = min(subset_size, len(real_f), len(fake_f))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        x = fake_f[rng.choice(len(fake_f), m, replace=False)]
        y = real_f[rng.choice(len(real_f), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        # Unbiased: the diagonal terms k(x_i, x_i) are left out of the within-set means.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        mmds[i] = within - 2 * k_xy.mean()
    return float(mmds.mean()), float(mmds.std())


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return np.maximum(d, 0)


def _kth_neighbour_radii(features: np.ndarray, k: int, block: int = 1000) -> np.ndarray:
    """Squared distance of every sample to its k-th nearest other sample of the same set."""
    radii = np.empty(len(features))
    for start in range(0, len(features), block):
        d = _squared_distances(features[start : start + block], features)
        radii[start : start + block] = np.partition(d, k, axis=1)[:, k]  # column 0 is the sample itself
    return radii


def _share_covered(probes: np.ndarray, manifold: np.ndarray, radii: np.ndarray, block: int = 1000) -> float:
    """Share of probes inside at least one ball (manifold[j], radii[j])."""
    covered = 0
    for start in range(0, len(probes), block):
        d = _squared_distances(probes[start : start + block], manifold)
        covered += int((d <= radii[None, :]).any(axis=1).sum())
    return covered / len(probes)


def precision_recall(real_f: np.ndarray, fake_f: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall with k-nearest-neighbour balls (k=3 as in the paper)."""
    real_f, fake_f = np.asarray(real_f, np.float64), np.asarray(fake_f, np.float64)
    if min(len(real_f), len(fake_f)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples in each set")
    precision = _share_covered(fake_f, real_f, _kth_neighbour_radii(real_f, k))
    recall = _share_covered(real_f, fake_f, _kth_neighbour_radii(fake_f, k))
    return precision, recall


def count_label(n: int) -> str:
    """Sample count as used in metric names: 500 -> '500', 1000 -> '1k', 2500 -> '2.5k', 50000 -> '50k'."""
    if n < 1000:
        return str(n)
    return f"{n / 1000:.3f}".rstrip("0").rstrip(".") + "k"


PR_K = 3  # the neighbour precision/recall balls reach (the paper's k)
MIN_SAMPLES = PR_K + 1  # each set: a sample and its k nearest others; FID and KID need 2
FULL_RANK_SAMPLES = 2049  # more than the 2048 feature dimensions: a covariance of full rank


class TooFewSamples(ValueError):
    """A set too small for the scores to be defined."""


def sample_count_note(num_real: int, num_fake: int) -> str | None:
    """Raises TooFewSamples when a set has fewer than MIN_SAMPLES; returns a sentence on FID's bias
    when a set has no more samples than the 2048 feature dimensions, else None.

    Below FULL_RANK_SAMPLES the covariance is singular: the FID authors ask for more samples than
    the 2048 dimensions and recommend 10,000 (bioinf-jku/TTUR README, "Frechet Inception Distance").
    `fid_from_features` still gives the exact Frechet distance of the fitted Gaussians then, but the
    estimate is biased and the bias grows as the count falls (Binkowski et al. 2018; Chong & Forsyth
    2020, "Effectively Unbiased FID"), so such FIDs compare only at equal counts; KID is unbiased at
    any count. Refusing below 2049 would stop the quick checks this project runs on small folders
    (the 45 illustrations), so that is said, not refused.
    """
    small = [f"{name} {n}" for name, n in (("real", num_real), ("generated", num_fake)) if n < MIN_SAMPLES]
    if small:
        raise TooFewSamples(
            f"too few images to score ({', '.join(small)}): precision and recall need at least {MIN_SAMPLES} in "
            f"each set (each image's ball reaches its {PR_K}rd nearest neighbour in its own set)"
        )
    if min(num_real, num_fake) < FULL_RANK_SAMPLES:
        return (f"FID of {num_real} real and {num_fake} generated images: with fewer than {FULL_RANK_SAMPLES} in a "
                f"set the covariance of the 2048 features is singular and FID is biased, the more the fewer images; "
                f"compare it only with FIDs of the same counts, or read KID (unbiased at any count)")
    return None


def compute_all(real_f: np.ndarray, fake_f: np.ndarray) -> dict[str, float]:
    """FID, KID (mean, std), precision and recall, named after the number of generated samples.

    E.g. for 5000 generated samples: fid5k, kid5k, kid5k_std, precision5k, recall5k.
    Raises TooFewSamples below MIN_SAMPLES in a set.
    """
    sample_count_note(len(real_f), len(fake_f))
    label = count_label(len(fake_f))
    kid, kid_std = kernel_inception_distance(real_f, fake_f)
    precision, recall = precision_recall(real_f, fake_f, k=PR_K)
    return {
        f"fid{label}": fid_from_features(real_f, fake_f),
        f"kid{label}": kid,
        f"kid{label}_std": kid_std,
        f"precision{label}": precision,
        f"recall{label}": recall,
    }
