"""Forecaster base class: the template methods every forecasting method shares.

The contract mirrors ``detectors.algorithms``: ``__init__(**params)`` only stores params (a
dataclass ``Params``, validated per field); ``fit(values, timestamps=None, horizon=24) -> self``;
``predict(h, levels=(80, 95)) -> ForecastResult``; fitted state in trailing-underscore attributes;
``get_state()`` returns JSON only and ``from_state(params, state)`` rebuilds a forecaster that predicts
exactly the same; ``get_test_params()`` for the conformance tests over the registry.

Intervals. A method either has its own (``interval_source = "model"``: statsmodels' analytic ones)
or, by default, is calibrated on its own rolling-origin backtest over the training values
(``"backtest"``): the method is refitted at a few origins before the end of the training values,
each refit forecasts ``horizon`` steps, and the absolute errors give a width per step. Errors are
divided by a per-step scale (their RMS, made non-decreasing over the horizon), pooled over origins
and steps, and the band at level L is ``scale_j * quantile_L(|error| / scale)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.algorithms.base import as_array, jsonable
from detectors.algorithms.params import NoParams, ParamsError, validate_params

from .kernels import Z, fill_missing

STATE_VERSION = 1
DEFAULT_LEVELS = (80, 95)
CALIBRATED_LEVELS = list(range(1, 100))  # every integer level a config may ask for
MIN_TRAIN = 8


class NotFittedError(RuntimeError):
    """Raised when a forecaster is asked to predict before it was fitted."""


@dataclass
class ForecastResult:
    """``mean`` (h,), ``lower``/``upper``: level -> (h,), ``timestamps`` of the steps when known."""

    mean: np.ndarray
    lower: dict[int, np.ndarray] = field(default_factory=dict)
    upper: dict[int, np.ndarray] = field(default_factory=dict)
    timestamps: pd.DatetimeIndex | None = None


def calendar_periods(step_seconds: float | None, n: int) -> list[int]:
    """Seasonal periods (in rows) implied by the sampling step: hour of day and day of week, or year.

    A period is kept when the training values hold at least two full cycles of it.
    """
    if not step_seconds:
        return []
    candidates = [86400 / step_seconds, 7 * 86400 / step_seconds]
    if step_seconds >= 86400:
        candidates.append(365.25 * 86400 / step_seconds)
    out = []
    for c in candidates:
        p = int(round(c))
        if p >= 2 and abs(c - p) < 1e-6 * c + 0.01 and 2 * p <= n:
            out.append(p)
    return sorted(set(out))


def check_periods(periods: Any) -> str | None:
    if periods is None:
        return None
    if not isinstance(periods, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in periods):
        return "must be a list of integers"
    if any(p < 2 or p > 10_000 for p in periods):
        return "each period must be between 2 and 10000"
    if len(periods) > 3:
        return "at most 3 periods"
    return None


# Widening of the backtest quantile for K origins: 1 + SMALL_SAMPLE / K. Errors at a few origins
# understate the errors to come; more so when a method was picked on those same errors (``auto``,
# SELECTED_SMALL_SAMPLE: 1.4 at 6 origins, 1.2 at 12) than for a method fixed in advance (1.15 at 6).
# Both chosen on M4 Hourly and Weekly with the last horizon of each training part held out, never
# on the test part.
SMALL_SAMPLE = 0.9
SELECTED_SMALL_SAMPLE = 2.4


def conformal_widths(
    errors: np.ndarray, levels: list[int], inflate: float = 1.0, small_sample: float = SMALL_SAMPLE
) -> dict[str, Any]:
    """Per-step half-widths from backtest errors ``(origins, steps)`` (NaN where unobserved).

    Errors are divided by a per-step scale (their RMS, smoothed and made non-decreasing over the
    horizon) and pooled; the half-width at level L is ``scale_j * q_L``, with ``q_L`` the L % quantile of
    the pooled |error| / scale, widened by ``1 + small_sample / origins`` and ``inflate``.
    """
    with np.errstate(invalid="ignore"):
        rms = np.sqrt(np.nanmean(errors**2, axis=0)) if np.isfinite(errors).any() else np.full(errors.shape[1], np.nan)
    if not np.isfinite(rms).any():
        return {"scale": [], "q": {}}
    rms = pd.Series(rms).rolling(5, center=True, min_periods=1).mean().ffill().bfill().to_numpy()
    rms = np.maximum.accumulate(np.maximum(rms, 1e-12))
    z = np.abs(errors) / rms[None, :]
    z = z[np.isfinite(z)]
    widen = (1 + small_sample / len(errors)) * inflate
    return {"scale": rms.tolist(), "q": {str(lv): float(np.quantile(z, lv / 100) * widen) for lv in levels}}


def widths_for(calib: dict[str, Any], h: int, level: int, sigma1: float) -> np.ndarray:
    """Half-widths for steps 1..h from a calibration; beyond its horizon the scale grows as sqrt(step)."""
    scale = np.asarray(calib.get("scale") or [], dtype=float)
    q = (calib.get("q") or {}).get(str(level))
    if len(scale) == 0 or q is None:
        return Z.get(level, 1.96) * sigma1 * np.sqrt(np.arange(1, h + 1))
    if h <= len(scale):
        return q * scale[:h]
    k = len(scale)
    extra = scale[-1] * np.sqrt(np.arange(k + 1, h + 1) / k)
    return q * np.concatenate([scale, extra])


def z_for(level: int) -> float:
    if level in Z:
        return Z[level]
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 200))


class Forecaster(ABC):
    """Base of every forecasting method (see the module docstring for the contract)."""

    key: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    # "backtest": calibrated on the method's own rolling-origin errors; "model": the method's own
    # intervals (``_interval``); "self": the method sets ``calib_`` in ``_fit`` (``auto``)
    interval_source: ClassVar[str] = "backtest"
    backtest_origins: ClassVar[int] = 6

    def __init__(self, **params: Any):
        self.params = dict(params)

    # -- params ---------------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        """Full params (defaults filled in) or ``ParamsError`` with a message per bad field."""
        validated = validate_params(cls.Params, params)
        errors = {}
        if hasattr(validated, "periods"):
            message = check_periods(validated.periods)
            if message:
                errors["periods"] = message
        if errors:
            raise ParamsError(errors)
        return asdict(validated)

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {}

    @property
    def p(self) -> Any:
        cached = self.__dict__.get("_validated")
        if cached is None or cached[0] != self.params:
            self.validate_params(self.params)
            cached = (dict(self.params), validate_params(self.Params, self.params))
            self.__dict__["_validated"] = cached
        return cached[1]

    # -- template methods -------------------------------------------------------------------------
    def fit(self, values: Any, timestamps: Any = None, horizon: int = 24) -> Forecaster:
        self.validate_params(self.params)
        y = np.asarray(values, dtype=float).ravel()
        if len(y) < MIN_TRAIN:
            raise ValueError(f"need at least {MIN_TRAIN} values to forecast, got {len(y)}")
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        y = fill_missing(y)
        self.n_train_ = len(y)
        self.horizon_ = int(horizon)
        self.last_ts_, self.step_ = None, None
        if timestamps is not None:
            ts = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamps)))
            if len(ts) != len(y):
                raise ValueError(f"got {len(ts)} timestamps for {len(y)} values")
            secs = ts.as_unit("ns").asi8 / 1e9
            step = float(np.median(np.diff(secs))) if len(secs) > 1 else 0.0
            if step > 0:
                self.last_ts_, self.step_ = float(secs[-1]), step
        self.periods_ = self._periods(y)
        self.calib_ = {}
        self._fit(y)
        if self.interval_source == "backtest":
            errors = self.backtest_errors(y, self.horizon_)
            if errors is not None:
                self.calib_ = conformal_widths(errors, CALIBRATED_LEVELS)
        return self

    def _periods(self, y: np.ndarray) -> list[int]:
        given = getattr(self.p, "periods", None)
        if given is not None:
            return sorted(p for p in given if 2 * p <= len(y))
        return calendar_periods(self.step_, len(y))

    def backtest_errors(self, y: np.ndarray, h: int) -> np.ndarray | None:
        """Errors ``(origins, h)`` of refits at origins before the end of ``y`` (None if too short)."""
        origins = backtest_origins(len(y), h, self.backtest_origins, self._min_train())
        if not origins:
            return None
        errors = np.full((len(origins), h), np.nan)
        for i, origin in enumerate(origins):
            clone = type(self)(**self.params).fit_inner(y[:origin], h, self.periods_)
            end = min(origin + h, len(y))
            errors[i, : end - origin] = y[origin:end] - clone._mean(h)[: end - origin]
        return errors

    def fit_inner(self, y: np.ndarray, h: int, periods: list[int]) -> Forecaster:
        """Fit on clean values without calibrating intervals (backtests and ``auto``'s members)."""
        self.step_, self.last_ts_, self.n_train_, self.horizon_, self.calib_ = None, None, len(y), h, {}
        self.periods_ = [p for p in periods if 2 * p <= len(y)]
        self._fit(y)
        return self

    def _min_train(self) -> int:
        return max(MIN_TRAIN, 2 * max(self.periods_, default=1))

    def predict(self, h: int | None = None, levels: Any = DEFAULT_LEVELS) -> ForecastResult:
        if not hasattr(self, "n_train_"):
            raise NotFittedError(f"{type(self).__name__} must be fitted (or loaded with from_state) before predicting")
        h = int(h or self.horizon_)
        if h < 1:
            raise ValueError("h must be >= 1")
        levels = [int(lv) for lv in levels]
        if any(not 0 < lv < 100 for lv in levels):
            raise ValueError("levels must be between 0 and 100 (exclusive)")
        mean = np.asarray(self._mean(h), dtype=float)
        result = ForecastResult(mean=mean)
        for level in levels:
            lo, hi = self._interval(h, level, mean)
            result.lower[level], result.upper[level] = np.minimum(lo, mean), np.maximum(hi, mean)
        if self.last_ts_ is not None:
            start = pd.Timestamp(self.last_ts_ + self.step_, unit="s", tz="UTC")
            step = pd.Timedelta(seconds=self.step_)
            result.timestamps = pd.date_range(start, periods=h, freq=step).as_unit("ns")
        return result

    def _interval(self, h: int, level: int, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = widths_for(self.calib_, h, level, self._sigma1())
        return mean - width, mean + width

    def _sigma1(self) -> float:
        return float(getattr(self, "sigma_", 0.0))

    @abstractmethod
    def _fit(self, y: np.ndarray) -> None: ...

    @abstractmethod
    def _mean(self, h: int) -> np.ndarray:
        """Point forecast for the h steps after the training values."""

    # -- persistence ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        if not hasattr(self, "n_train_"):
            raise NotFittedError("nothing to save: the forecaster is not fitted")
        return jsonable(
            {
                "version": STATE_VERSION,
                "key": self.key,
                "n_train": self.n_train_,
                "horizon": self.horizon_,
                "last_ts": self.last_ts_,
                "step": self.step_,
                "periods": self.periods_,
                "calib": self.calib_,
                "model": self._get_state(),
            }
        )

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> Forecaster:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        if state.get("key") != cls.key:
            raise ValueError(f"state belongs to {state.get('key')!r}, not {cls.key!r}")
        model = cls(**params)
        model.validate_params(params)
        model.n_train_, model.horizon_ = int(state["n_train"]), int(state["horizon"])
        model.last_ts_ = None if state["last_ts"] is None else float(state["last_ts"])
        model.step_ = None if state["step"] is None else float(state["step"])
        model.periods_ = [int(p) for p in state["periods"]]
        model.calib_ = state["calib"] or {}
        model._set_state(state["model"])
        return model

    @abstractmethod
    def _get_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None: ...

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def backtest_origins(n: int, h: int, count: int, min_train: int) -> list[int]:
    """Up to ``count`` origins, the last one ``h`` before the end, spaced by max(1, h // 2)."""
    step = max(1, h // 2)
    origins = [n - h - k * step for k in range(count)]
    return sorted(o for o in origins if o >= min_train)


__all__ = [
    "DEFAULT_LEVELS",
    "ForecastResult",
    "Forecaster",
    "NotFittedError",
    "ParamsError",
    "as_array",
    "backtest_origins",
    "calendar_periods",
    "conformal_widths",
    "z_for",
]
