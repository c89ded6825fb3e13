"""Realism: Frechet distance between feature distributions, and reconstruction error.

The features come from the project's own predictors (no Inception weights are available
offline, and an ImageNet network says little about 28x28 digits anyway).
"""

from __future__ import annotations

import warnings

import numpy as np


class UnreliableFrechet(RuntimeWarning):
    """A Frechet distance whose covariances are too ill-conditioned to trust (``evaluate`` counts a table's alike)."""


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``(N, F)`` features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least two feature vectors, got shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` between two feature sets.

    Singular covariances (few samples, many features) get ``eps * I`` added before the square root.
    A square root with a sizeable imaginary part, or a clearly negative distance, means the
    covariances are too ill-conditioned to trust: that is warned about, not hidden.
    """
    from scipy import linalg

    mu_a, s_a = gaussian_stats(features_a)
    mu_b, s_b = gaussian_stats(features_b)
    with warnings.catch_warnings():  # singular products (dead ReLU features) are handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_a @ s_b)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(len(s_a)) * eps
        covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    scale = np.trace(s_a) + np.trace(s_b)
    imaginary = float(np.abs(np.imag(covmean)).max()) if np.iscomplexobj(covmean) else 0.0
    if imaginary > 1e-3 * max(scale, 1e-12):
        few = f"; {len(features_a)} and {len(features_b)} images for {s_a.shape[0]} features leave the covariances singular: score more images" \
            if min(len(features_a), len(features_b)) <= s_a.shape[0] else ""
        warnings.warn(f"Frechet distance: the covariance square root has an imaginary part of {imaginary:.3g} "
                      f"(traces {scale:.3g}); the distance is unreliable{few}", UnreliableFrechet, stacklevel=2)
    diff = mu_a - mu_b
    value = float(diff @ diff + scale - 2.0 * np.trace(np.real(covmean)))
    if value < -1e-6 * max(scale, 1e-12):
        warnings.warn(f"Frechet distance came out negative ({value:.3g}); reported as 0, the covariances are ill-conditioned",
                      UnreliableFrechet, stacklevel=2)
    return max(0.0, value)


def l1_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean absolute difference with pixels scaled to ``[0, 1]``; inputs are in ``[-1, 1]``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.abs(a - b).reshape(len(a), -1).mean(axis=1) / 2.0
