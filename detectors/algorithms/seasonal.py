"""Seasonal and forecast-residual detectors: STL residuals, Holt-Winters, SARIMAX.

Each forecasts row ``i`` from rows before it and scores the standardized forecast error
``|x - expected| / sigma``; ``expected`` and the band ``expected +- band_z * sigma`` are exposed.
The seasonal period is inferred from the training rows (autocorrelation) unless ``period`` is
given; 0 means "no seasonality".

Phase alignment: with timestamps the seasonal phase follows the clock; without them row 0 of the
scored data is taken to be row 0 of the training data (as ``detect`` does).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .base import Detector, ScoreResult, as_array
from .rolling import fill_nan, prev_median, robust_sigma, scale_floor
from .seasonality import infer_period, phases, time_origin


@dataclass
class STLParams:
    period: int | None = field(default=None, metadata={"min": 0, "max": 10_000})
    cycles: int = field(default=6, metadata={"min": 2, "max": 100})
    refit_every: int | None = field(default=None, metadata={"min": 1, "max": 100_000})
    level_window: int = field(default=10, metadata={"min": 1, "max": 10_000})
    robust: bool = False
    band_z: float = field(default=3.0, metadata={"min": 0.1, "max": 100.0})


class _Forecaster(Detector):
    tags = {**Detector.tags, "has_expected_band": True, "score_unit": "z"}

    def _fit_common(self, x: np.ndarray, timestamps: pd.DatetimeIndex | None, period: int | None) -> None:
        self.center_ = float(np.median(x))
        self.sigma_ = robust_sigma(x)
        self.floor_ = scale_floor(x)
        self.origin_, self.step_ = time_origin(timestamps)
        found = infer_period(x, step=self.step_) if period is None else int(period)
        self.period_ = found if found >= 2 and 2 * found <= len(x) else 0

    def _common_state(self) -> dict[str, Any]:
        return {
            "center": self.center_,
            "sigma": self.sigma_,
            "floor": self.floor_,
            "origin": self.origin_,
            "step": self.step_,
            "period": self.period_,
        }

    def _set_common(self, state: dict[str, Any]) -> None:
        self.center_, self.sigma_, self.floor_ = float(state["center"]), float(state["sigma"]), float(state["floor"])
        self.origin_, self.step_, self.period_ = state["origin"], state["step"], int(state["period"])

    def _phases(self, n: int, timestamps: pd.DatetimeIndex | None) -> np.ndarray:
        return phases(n, self.period_, timestamps, self.origin_, self.step_)

    def _result(self, x: np.ndarray, expected: np.ndarray, sigma: np.ndarray | float) -> ScoreResult:
        sigma = np.maximum(sigma, self.floor_)
        band = self.p.band_z * sigma
        expected = fill_nan(expected, self.center_)
        return ScoreResult(np.abs(x - expected) / sigma, expected, expected - band, expected + band)


class STLResidual(_Forecaster):
    """Residuals of an STL decomposition refitted causally on a rolling window.

    Rows are scored in blocks of ``refit_every`` rows (default: one period, at least 100 rows); each
    block uses an STL fit on the ``cycles`` periods before it (``robust`` LOESS weights are optional:
    about six times slower). Expected = recent median of the deseasonalized series + seasonal
    profile at the row's phase; sigma = robust sigma of that fit's residuals.
    """

    key = "stl"
    Params = STLParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"period": 24, "cycles": 3}

    @property
    def context_size(self) -> int:
        return int(self.p.cycles * max(self.period_, 1) + self.p.level_window + 1)

    def _decompose(self, x: np.ndarray, ph: np.ndarray) -> tuple[np.ndarray, float]:
        """(seasonal profile by phase, residual sigma) of an STL fit on ``x``."""
        from statsmodels.tsa.seasonal import STL

        m = self.period_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = STL(x, period=m, robust=self.p.robust).fit()
        profile = np.zeros(m)
        seasonal = np.asarray(fit.seasonal)
        tail = slice(len(x) - m, len(x))
        profile[ph[tail]] = seasonal[tail]
        return profile, robust_sigma(np.asarray(fit.resid))

    def _fit(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> None:
        x = X[:, 0]
        self._fit_common(x, timestamps, self.p.period)
        if self.period_:
            span = self.p.cycles * self.period_
            ph = self._phases(len(x), timestamps)
            self.profile_, sigma = self._decompose(x[-span:], ph[-span:])
            self.resid_sigma_ = max(sigma, self.floor_)
        else:
            self.profile_ = np.zeros(1)
            self.resid_sigma_ = max(robust_sigma(np.diff(x)) if len(x) > 2 else self.sigma_, self.floor_)

    def _score(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> ScoreResult:
        x = X[:, 0]
        n = len(x)
        ph = self._phases(n, timestamps)
        m = self.period_
        block = self.p.refit_every or max(m, 100)
        span = self.p.cycles * max(m, 1)
        expected = np.empty(n)
        sigma = np.empty(n)
        for start in range(0, n, block):
            stop = min(start + block, n)
            profile, sig = self.profile_, self.resid_sigma_
            if m and start >= span:
                profile, sig = self._decompose(x[start - span : start], ph[start - span : start])
            lo = max(0, start - self.p.level_window)
            seasonal = profile[ph[lo:stop]] if m else np.zeros(stop - lo)
            level = fill_nan(prev_median(x[lo:stop] - seasonal, self.p.level_window, 1), self.center_)
            offset = start - lo
            expected[start:stop] = level[offset:] + seasonal[offset:]
            sigma[start:stop] = max(sig, self.floor_)
        return self._result(x, expected, sigma)

    def _get_state(self) -> dict[str, Any]:
        return {**self._common_state(), "profile": self.profile_, "resid_sigma": self.resid_sigma_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._set_common(state)
        self.profile_ = as_array(state["profile"])
        self.resid_sigma_ = float(state["resid_sigma"])


@dataclass
class HoltWintersParams:
    period: int | None = field(default=None, metadata={"min": 0, "max": 2000})
    damped_trend: bool = True
    max_fit_rows: int = field(default=3000, metadata={"min": 20, "max": 100_000})
    band_z: float = field(default=3.0, metadata={"min": 0.1, "max": 100.0})


class HoltWinters(_Forecaster):
    """Additive Holt-Winters (ETS) with a damped trend, fitted by statsmodels on the training rows.

    Scoring runs the smoothing recursion over the data with the fitted smoothing parameters: the
    expected value of row ``i`` is the one-step-ahead forecast from the state filtered up to
    ``i - 1``. The recursion starts from the fitted initial state and converges within a few
    ``1 / alpha`` rows, so a streaming window should span a few periods.
    """

    key = "holt_winters"
    Params = HoltWintersParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"period": 24}

    @property
    def context_size(self) -> int:
        return int(4 * max(self.period_, 25))

    def _fit(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        x = X[:, 0]
        self._fit_common(x, timestamps, self.p.period)
        seg = x[-self.p.max_fit_rows :]
        self.seg_start_ = len(x) - len(seg)
        if self.period_ and len(seg) < 2 * self.period_ + 1:
            self.period_ = 0
        self.seg_phase_ = int(self._phases(len(x), timestamps)[self.seg_start_]) if self.period_ else 0
        self.coef_ = {"alpha": 0.5, "beta": 0.0, "gamma": 0.0, "phi": 1.0}
        self.init_level_, self.init_trend_ = float(seg[0]), 0.0
        self.init_season_ = np.zeros(max(self.period_, 1))
        if np.std(seg) > 0 and len(seg) >= 10:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = ExponentialSmoothing(
                        seg,
                        trend="add",
                        damped_trend=self.p.damped_trend,
                        seasonal="add" if self.period_ else None,
                        seasonal_periods=self.period_ or None,
                        initialization_method="heuristic" if self.period_ else "estimated",
                    ).fit()
                par = model.params
                self.coef_ = {
                    "alpha": float(par["smoothing_level"]),
                    "beta": float(np.nan_to_num(par.get("smoothing_trend", 0.0))),
                    "gamma": float(np.nan_to_num(par.get("smoothing_seasonal", 0.0))) if self.period_ else 0.0,
                    "phi": float(np.nan_to_num(par.get("damping_trend", 1.0), nan=1.0)),
                }
                self.init_level_ = float(par["initial_level"])
                self.init_trend_ = float(np.nan_to_num(par.get("initial_trend", 0.0)))
                if self.period_:
                    self.init_season_ = np.asarray(par["initial_seasons"], dtype=float)
            except (ValueError, np.linalg.LinAlgError):
                pass
        forecast = self._filter(seg, self._seg_phases(len(seg)))
        self.resid_sigma_ = max(robust_sigma(seg - forecast), self.floor_)

    def _seg_phases(self, n: int) -> np.ndarray:
        m = max(self.period_, 1)
        return (np.arange(n) + self.seg_phase_) % m

    def _filter(self, x: np.ndarray, ph: np.ndarray) -> np.ndarray:
        """One-step-ahead forecasts of the additive damped Holt-Winters recursion."""
        c = self.coef_
        alpha, beta, gamma, phi = c["alpha"], c["beta"], c["gamma"], c["phi"]
        level, trend = self.init_level_, self.init_trend_
        season = self.init_season_.copy()
        # initial seasons are indexed by the phase of the fitting segment's first row
        season = np.roll(season, self.seg_phase_) if self.period_ else season
        out = np.empty(len(x))
        for i, (y, p) in enumerate(zip(x.tolist(), ph.tolist(), strict=True)):
            s = season[p] if self.period_ else 0.0
            base = level + phi * trend
            out[i] = base + s
            new_level = alpha * (y - s) + (1 - alpha) * base
            trend = beta * (new_level - level) + (1 - beta) * phi * trend
            if self.period_:
                season[p] = gamma * (y - base) + (1 - gamma) * s
            level = new_level
        return out

    def _score(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> ScoreResult:
        x = X[:, 0]
        ph = self._phases(len(x), timestamps) if self.period_ else np.zeros(len(x), dtype=int)
        return self._result(x, self._filter(x, ph), self.resid_sigma_)

    def _get_state(self) -> dict[str, Any]:
        return {
            **self._common_state(),
            "coef": self.coef_,
            "init_level": self.init_level_,
            "init_trend": self.init_trend_,
            "init_season": self.init_season_,
            "seg_start": self.seg_start_,
            "seg_phase": self.seg_phase_,
            "resid_sigma": self.resid_sigma_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._set_common(state)
        self.coef_ = {k: float(v) for k, v in state["coef"].items()}
        self.init_level_, self.init_trend_ = float(state["init_level"]), float(state["init_trend"])
        self.init_season_ = as_array(state["init_season"])
        self.seg_start_, self.seg_phase_ = int(state["seg_start"]), int(state["seg_phase"])
        self.resid_sigma_ = float(state["resid_sigma"])


@dataclass
class SARIMAXParams:
    period: int | None = field(default=None, metadata={"min": 0, "max": 10_000})
    p: int = field(default=1, metadata={"min": 0, "max": 5})
    d: int = field(default=1, metadata={"min": 0, "max": 2})
    q: int = field(default=1, metadata={"min": 0, "max": 5})
    fourier_terms: int = field(default=3, metadata={"min": 0, "max": 20})
    max_fit_rows: int = field(default=1500, metadata={"min": 30, "max": 100_000})
    band_z: float = field(default=3.0, metadata={"min": 0.1, "max": 100.0})


class SARIMAXResidual(_Forecaster):
    """ARIMA(p, d, q) with Fourier terms for the seasonal period (statsmodels SARIMAX).

    Fitted on the last ``max_fit_rows`` training rows (standardized). Scoring runs the Kalman
    filter with the fitted parameters over the data: expected = one-step-ahead prediction from the
    state filtered up to ``i - 1``; score = |standardized innovation|. Seasonality enters as
    ``fourier_terms`` sine/cosine pairs of the phase rather than seasonal ARMA lags, which keeps
    long periods (e.g. 288 five-minute rows a day) fast.
    """

    key = "sarimax"
    Params = SARIMAXParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"period": 24, "fourier_terms": 2, "max_fit_rows": 300}

    @property
    def context_size(self) -> int:
        return int(4 * max(self.period_, 25))

    def _exog(self, ph: np.ndarray) -> np.ndarray | None:
        k = min(self.p.fourier_terms, self.period_ // 2)
        if not self.period_ or k < 1:
            return None
        angle = 2 * np.pi * ph[:, None] * np.arange(1, k + 1)[None, :] / self.period_
        return np.hstack([np.sin(angle), np.cos(angle)])

    def _model(self, y: np.ndarray, ph: np.ndarray) -> Any:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        return SARIMAX(y, exog=self._exog(ph), order=(self.p.p, self.p.d, self.p.q), trend="n")

    def _fit(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> None:
        x = X[:, 0]
        self._fit_common(x, timestamps, self.p.period)
        self.scale_ = max(self.sigma_, self.floor_)
        ph = self._phases(len(x), timestamps)
        seg = slice(max(0, len(x) - self.p.max_fit_rows), len(x))
        y = (x[seg] - self.center_) / self.scale_
        self.coef_: list[float] | None = None
        if np.std(y) > 0 and len(y) >= 20:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = self._model(y, ph[seg]).fit(disp=False, maxiter=50)
                if np.all(np.isfinite(res.params)):
                    self.coef_ = [float(v) for v in res.params]
            except (ValueError, np.linalg.LinAlgError):
                self.coef_ = None

    def _score(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> ScoreResult:
        x = X[:, 0]
        if self.coef_ is None:  # flat or unfittable training data: expect the previous value
            expected = np.concatenate([[self.center_], x[:-1]])
            return self._result(x, expected, self.sigma_)
        y = (x - self.center_) / self.scale_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self._model(y, self._phases(len(x), timestamps)).filter(np.asarray(self.coef_))
        pred = np.asarray(res.filter_results.forecasts[0])
        var = np.asarray(res.filter_results.forecasts_error_cov[0, 0])
        sigma = np.sqrt(np.clip(var, 1e-12, 1e12)) * self.scale_
        expected = self.center_ + pred * self.scale_
        return self._result(x, expected, sigma)

    def _get_state(self) -> dict[str, Any]:
        return {**self._common_state(), "scale": self.scale_, "coef": self.coef_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._set_common(state)
        self.scale_ = float(state["scale"])
        self.coef_ = None if state["coef"] is None else [float(v) for v in state["coef"]]
