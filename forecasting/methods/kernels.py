"""Numerical kernels shared by the forecasting methods (numpy only, no Django).

Smoothing recursions run over a grid of parameters at once (one numpy vector per time step), so
fitting exponential smoothing costs one pass over the series instead of an optimiser's hundreds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Z = {80: 1.2815515655446004, 90: 1.6448536269514722, 95: 1.959963984540054, 99: 2.5758293035489004}


def fill_missing(x: np.ndarray) -> np.ndarray:
    """Interpolate interior gaps linearly and carry the ends (a copy)."""
    x = np.asarray(x, dtype=float).copy()
    bad = ~np.isfinite(x)
    if bad.all():
        raise ValueError("the series has no finite values")
    if bad.any():
        idx = np.arange(len(x))
        x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return x


def acf(x: np.ndarray, nlags: int) -> np.ndarray:
    """Autocorrelations r_1..r_nlags (M4's definition: sums over the whole mean-removed series)."""
    x = np.asarray(x, dtype=float) - np.mean(x)
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, size)
    corr = np.fft.irfft(spec * np.conj(spec), size)[: nlags + 1]
    return corr[1:] / corr[0] if corr[0] > 0 else np.zeros(nlags)


def seasonality_test(x: np.ndarray, m: int) -> bool:
    """M4's test: |r_m| above the 90 % limit of the ACF with Bartlett's variance, n >= 3m."""
    n = len(x)
    if m < 2 or n < 3 * m or np.std(x) == 0:
        return False
    r = acf(x, m)
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[: m - 1] ** 2)) / n)
    return bool(abs(r[m - 1]) > limit)


def centred_ma(x: np.ndarray, m: int) -> np.ndarray:
    """Centred moving average of order m (2 x m for even m); NaN where the window does not fit."""
    s = pd.Series(x)
    if m % 2:
        return s.rolling(m, center=True).mean().to_numpy()
    first = s.rolling(m).mean()
    return ((first + first.shift(-1)) / 2).shift(-(m // 2) + 1).to_numpy()


def classical_indices(x: np.ndarray, m: int) -> np.ndarray:
    """Multiplicative seasonal indices of classical decomposition, phase 0 = first row (mean 1)."""
    n = len(x)
    ratio = x / centred_ma(x, m)
    phase = np.arange(n) % m
    idx = np.array([np.nanmean(ratio[phase == k]) for k in range(m)])
    idx = np.where(np.isfinite(idx) & (idx > 0), idx, 1.0)
    return idx / idx.mean()


def seasonal_profiles(x: np.ndarray, periods: list[int], cycles: int = 4, iterations: int = 2) -> list[np.ndarray]:
    """Additive seasonal profiles, one per period, estimated from the last ``cycles`` cycles.

    Like MSTL with moving averages in place of LOESS: for each period in turn (shortest first) the
    series without the other components is detrended with a centred moving average of the longest
    period, and the profile is the median by phase over the recent cycles (zero mean). Two passes let
    the daily and weekly shapes separate. Phase 0 of every profile is the series' first row.
    """
    n = len(x)
    if not periods:
        return []
    longest = max(periods)
    trend = centred_ma(x, longest) if n >= 2 * longest else centred_ma(x, min(periods))
    # the centred average stops half a period short of either end: hold its first and last values there
    trend = pd.Series(trend).bfill().ffill().to_numpy()
    detrended = x - trend
    profiles = [np.zeros(p) for p in periods]
    for _ in range(iterations):
        for i, p in enumerate(periods):
            others = sum((np.resize(profiles[j], n) for j in range(len(periods)) if j != i), start=np.zeros(n))
            resid = detrended - others
            span = min(n - n % p if n % p else n, cycles * p)
            if span < 2 * p:
                span = (n // p) * p
            if span < p:
                profiles[i] = np.zeros(p)
                continue
            tail_start = n - span
            block = resid[tail_start:]
            ph = np.arange(tail_start, n) % p
            order = np.argsort(ph, kind="stable")
            counts = np.bincount(ph, minlength=p)
            splits = np.split(block[order], np.cumsum(counts)[:-1])
            prof = np.array([np.median(s) if len(s) else 0.0 for s in splits])
            profiles[i] = prof - prof.mean()
    return profiles


def seasonal_path(profiles: list[np.ndarray], periods: list[int], start: int, length: int) -> np.ndarray:
    """Sum of the profiles over rows ``start .. start+length-1`` (row numbers of the fitted series)."""
    out = np.zeros(length)
    rows = np.arange(start, start + length)
    for prof, p in zip(profiles, periods, strict=True):
        out += prof[rows % p]
    return out


# -- exponential smoothing on a grid --------------------------------------------------------------

ALPHAS = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99])
BETAS = np.array([0.0, 0.01, 0.03, 0.07, 0.15, 0.3])
PHIS = np.array([0.8, 0.88, 0.94, 0.98])


def holt_grid(trend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, beta, phi) vectors of the grid for trend 'N', 'A' or 'Ad'."""
    if trend == "N":
        return ALPHAS, np.zeros_like(ALPHAS), np.ones_like(ALPHAS)
    a, b = np.meshgrid(ALPHAS, BETAS[1:], indexing="ij")
    keep = b <= a
    a, b = a[keep], b[keep]
    if trend == "A":
        return a, b, np.ones_like(a)
    a3, p3 = np.repeat(a, len(PHIS)), np.tile(PHIS, len(a))
    return a3, np.repeat(b, len(PHIS)), p3


def holt_filter(y: np.ndarray, alpha: np.ndarray, beta: np.ndarray, phi: np.ndarray, b0: np.ndarray | float):
    """Run additive (damped) Holt over y for every parameter set at once.

    Returns (sse of one-step errors, final level, final trend), each one value per parameter set.
    """
    level = np.full(alpha.shape, y[0], dtype=float)
    trend = np.broadcast_to(np.asarray(b0, dtype=float), alpha.shape).copy()
    sse = np.zeros(alpha.shape)
    ab = alpha * beta
    pred = np.empty(alpha.shape)
    err = np.empty(alpha.shape)
    for value in y[1:]:
        np.multiply(phi, trend, out=trend)
        np.add(level, trend, out=pred)
        np.subtract(value, pred, out=err)
        sse += err * err
        np.add(pred, alpha * err, out=level)
        trend += ab * err
    return sse, level, trend


def holt_fit(y: np.ndarray, trend: str) -> dict[str, float]:
    """Grid-fitted (damped) Holt / SES on y: params, final state and AICc of the fit."""
    return holt_select(y, [trend])


def holt_select(y: np.ndarray, trends: list[str]) -> dict[str, float]:
    """The best of the given trend types by AICc, every grid filtered in one pass over y."""
    n = len(y)
    b0 = float(np.mean(np.diff(y[: min(n, 10)]))) if n >= 3 else 0.0
    grids = [holt_grid(t) for t in trends]
    alpha, beta, phi = (np.concatenate([g[i] for g in grids]) for i in range(3))
    b_init = np.concatenate([np.full(len(g[0]), 0.0 if t == "N" else b0) for t, g in zip(trends, grids, strict=True)])
    sse, level, tr = holt_filter(y, alpha, beta, phi, b_init)
    best_fit, start = None, 0
    m = max(n - 1, 1)
    for t, g in zip(trends, grids, strict=True):
        stop = start + len(g[0])
        i = start + int(np.argmin(sse[start:stop]))
        start = stop
        k = {"N": 2, "A": 4, "Ad": 5}[t]
        sigma2 = max(float(sse[i]) / m, 1e-12)
        aicc = m * np.log(sigma2) + 2 * k + (2 * k * (k + 1) / (m - k - 1) if m - k - 1 > 0 else 1e9)
        fit = {
            "trend": t,
            "alpha": float(alpha[i]),
            "beta": float(beta[i]),
            "phi": float(phi[i]),
            "level": float(level[i]),
            "slope": float(tr[i]) if t != "N" else 0.0,
            "sigma": float(np.sqrt(sigma2)),
            "aicc": float(aicc),
        }
        if best_fit is None or fit["aicc"] < best_fit["aicc"]:
            best_fit = fit
    return best_fit


def holt_forecast(fit: dict[str, float], h: int) -> np.ndarray:
    steps = np.arange(1, h + 1)
    phi = fit["phi"]
    damp = steps.astype(float) if phi == 1.0 else np.cumsum(phi**steps)
    return fit["level"] + damp * fit["slope"]


def ses_fit(y: np.ndarray) -> dict[str, float]:
    return holt_fit(y, "N")


def theta_forecast(y: np.ndarray, h: int) -> tuple[np.ndarray, float, float]:
    """Standard Theta (SES with drift = half the linear-trend slope); returns (forecast, alpha, sigma)."""
    n = len(y)
    fit = ses_fit(y)
    alpha = max(fit["alpha"], 1e-3)
    t = np.arange(n)
    slope = float(np.polyfit(t, y, 1)[0]) if n > 2 else 0.0
    steps = np.arange(1, h + 1)
    drift = 0.5 * slope * (steps - 1 + 1 / alpha - ((1 - alpha) ** n) / alpha)
    return fit["level"] + drift, alpha, fit["sigma"]


# -- direct multi-horizon lag regression ----------------------------------------------------------


def lag_windows(x: np.ndarray, lags: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Input windows of ``lags`` values and the ``h`` values after each, for every origin in x."""
    win = np.lib.stride_tricks.sliding_window_view(x, lags + h)
    return win[:, :lags], win[:, lags:]


def normalise(windows: np.ndarray, tail: int) -> tuple[np.ndarray, np.ndarray]:
    """(location, scale) per window: mean and mean absolute deviation of its last ``tail`` values."""
    recent = windows[:, -tail:]
    loc = recent.mean(axis=1)
    scale = np.abs(windows - loc[:, None]).mean(axis=1)
    scale = np.where(scale > 1e-12 * (1 + np.abs(loc)), scale, 1.0)
    return loc, scale


def ridge_solve(X: np.ndarray, Y: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge coefficients (intercept first, not penalised) of Y on X."""
    Xa = np.hstack([np.ones((len(X), 1)), X])
    gram = Xa.T @ Xa
    reg = penalty * np.trace(gram[1:, 1:]) / max(X.shape[1], 1)
    gram[1:, 1:] += reg * np.eye(X.shape[1])
    return np.linalg.solve(gram, Xa.T @ Y)
