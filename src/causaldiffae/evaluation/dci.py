"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, ICLR 2018).

One regressor per factor predicts it from the codes; the absolute feature importances form
the matrix ``R`` (codes x factors). Disentanglement: each code should matter to one factor
(1 - entropy of its row, base K), weighted by the code's share of total importance.
Completeness: each factor should be captured by one code (1 - entropy of its column, base D).
Informativeness is the regressors' R^2 (and MAE) on held-out codes, never on the codes they
were fitted to (the reference compared floats for equality, which is always about 0).
"""

from __future__ import annotations

import numpy as np


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy of probability vectors along ``axis``, in base ``base`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -(p * logs).sum(axis=axis) / np.log(base)


def disentanglement(importance: np.ndarray) -> float | None:
    """Importance-weighted mean over codes of ``1 - H_K(row)``; ``importance`` is ``(D, K)``, non-negative.

    None (undefined) for a single factor: every code would trivially "matter to one factor".
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    if k < 2:
        return None
    row_sum = r.sum(axis=1)
    total = row_sum.sum()
    if total <= 0:
        return 0.0
    p = r / np.where(row_sum > 0, row_sum, 1.0)[:, None]
    per_code = 1.0 - _entropy(p, k, axis=1)
    weights = row_sum / total
    return float(np.sum(weights * per_code))


def completeness(importance: np.ndarray) -> float | None:
    """Mean over factors of ``1 - H_D(column)``: is each factor captured by few codes?

    An unweighted mean (disentanglement_lib weights factors by their share of importance; with the
    default gradient-boosted trees every column sums to 1 and the two agree). None for a single code.
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    if d < 2:
        return None
    col_sum = r.sum(axis=0)
    p = r / np.where(col_sum > 0, col_sum, 1.0)[None, :]
    per_factor = np.where(col_sum > 0, 1.0 - _entropy(p, d, axis=0), 0.0)
    return float(per_factor.mean())


def importance_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    method: str = "gbt",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one regressor per factor on the train codes; return ``(R (D, K), test R^2 (K,), test MAE (K,))``.

    ``gbt``: gradient-boosted trees, importance = impurity decrease (scale-free, nonlinear).
    ``lasso``: linear with L1 on standardised codes and factors, importance = |coefficient|.
    MAE is in the factors' own units.
    """
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Lasso
    from sklearn.metrics import r2_score

    xtr, xte = np.asarray(codes_train, np.float64), np.asarray(codes_test, np.float64)
    ytr, yte = np.asarray(factors_train, np.float64), np.asarray(factors_test, np.float64)
    if xtr.ndim != 2 or ytr.ndim != 2 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError("codes and factors must be 2-D arrays with matching rows")
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    xtr_s, xte_s = (xtr - mu) / sd, (xte - mu) / sd
    d, k = xtr.shape[1], ytr.shape[1]
    r = np.zeros((d, k))
    r2 = np.zeros(k)
    mae = np.zeros(k)
    for j in range(k):
        ymu, ysd = ytr[:, j].mean(), ytr[:, j].std() or 1.0
        target = (ytr[:, j] - ymu) / ysd
        if method == "gbt":
            reg = GradientBoostingRegressor(n_estimators=60, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=seed)
            reg.fit(xtr_s, target)
            r[:, j] = reg.feature_importances_
        elif method == "lasso":
            reg = Lasso(alpha=0.02, max_iter=5000, random_state=seed)
            reg.fit(xtr_s, target)
            r[:, j] = np.abs(reg.coef_)
        else:
            raise ValueError(f"unknown DCI method {method!r} (use 'gbt' or 'lasso')")
        pred = reg.predict(xte_s) * ysd + ymu
        r2[j] = r2_score(yte[:, j], pred)
        mae[j] = np.mean(np.abs(yte[:, j] - pred))
    return r, r2, mae


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    method: str = "gbt",
    seed: int = 0,
) -> dict:
    """All three DCI scores plus the per-factor test R^2 / MAE and the importance matrix."""
    r, r2, mae = importance_matrix(codes_train, factors_train, codes_test, factors_test, method=method, seed=seed)
    return {
        "method": method,
        "n_train": len(codes_train),
        "n_test": len(codes_test),
        "disentanglement": disentanglement(r),
        "completeness": completeness(r),
        "informativeness_r2": float(np.mean(r2)),
        "r2": [float(v) for v in r2],
        "mae": [float(v) for v in mae],
        "importance": r.tolist(),
    }


def block_codes(z: np.ndarray, n_blocks: int) -> np.ndarray:
    """Mean of each latent block, ``(N, n_blocks)``: the code the model's prior aligns with each label."""
    z = np.asarray(z)
    if z.shape[1] % n_blocks:
        raise ValueError(f"latent width {z.shape[1]} is not divisible into {n_blocks} blocks")
    return z.reshape(len(z), n_blocks, -1).mean(axis=2)
