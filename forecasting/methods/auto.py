"""``auto``: choose or combine methods per series by a rolling-origin backtest on its own history.

Candidates (each with the series' calendar periods): seasonal naive at the shortest and the longest
period, ETS and Theta on the seasonally adjusted series, and the direct lag regression. Every
candidate is refitted at ``origins`` points before the end of the training values and forecasts the
horizon from each; a candidate's backtest error is its sMAPE and its MASE, each relative to the best
candidate's, added (OWA's shape). Every combination (plain mean) of the ``top`` best candidates is
scored on the same backtest forecasts and the best single method or combination wins. Only the
training values are used: the last backtest origin ends where the training values end.

The intervals come from the winner's backtest errors (``base.conformal_widths``), widened for the
small number of origins (``base.SELECTED_SMALL_SAMPLE``) and by ``interval_inflation``, because the winner was
picked on those same few errors.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import CALIBRATED_LEVELS, SELECTED_SMALL_SAMPLE, Forecaster, backtest_origins, conformal_widths

CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "snaive_short": ("seasonal_naive", {}),
    "snaive_long": ("seasonal_naive", {"period": "longest"}),
    "ets": ("ets", {}),
    "theta": ("theta", {}),
    "lag_regression": ("lag_regression", {}),
}


def default_origins(h: int) -> int:
    """Enough origins for about 150 backtest steps: 6 for a horizon of 48, 12 for 24 or less."""
    return int(min(12, max(6, -(-144 // max(1, h // 2)))))


@dataclass
class AutoParams:
    periods: list | None = None
    origins: int | None = field(default=None, metadata={"min": 2, "max": 50})
    top: int = field(default=3, metadata={"min": 1, "max": 5})
    interval_inflation: float = field(default=1.0, metadata={"min": 0.5, "max": 3.0})
    candidates: list | None = None


class AutoForecaster(Forecaster):
    """Per-series choice or combination of methods by rolling-origin backtest."""

    key = "auto"
    Params = AutoParams
    interval_source = "self"

    @classmethod
    def validate_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        from .base import ParamsError

        validated = super().validate_params(params)
        chosen = validated["candidates"]
        if chosen is not None and (not chosen or any(c not in CANDIDATES for c in chosen)):
            raise ParamsError({"candidates": f"must be a non-empty list from {', '.join(CANDIDATES)}"})
        return validated

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"periods": [24], "origins": 3}

    def _candidates(self) -> dict[str, tuple[str, dict[str, Any]]]:
        from .registry import get_method

        names = self.p.candidates or list(CANDIDATES)
        out = {}
        for name in names:
            key, params = CANDIDATES[name]
            params = dict(params)
            if params.get("period") == "longest":
                if len(self.periods_) < 2:
                    continue
                params["period"] = max(self.periods_)
            if "periods" in get_method(key).Params.__dataclass_fields__:
                params["periods"] = list(self.periods_)
            out[name] = (key, params)
        return out

    def _fit(self, y: np.ndarray) -> None:
        from .registry import get_method

        h = self.horizon_
        candidates = self._candidates()
        min_train = max(16, 2 * max(self.periods_, default=1))
        origins = backtest_origins(len(y), h, self.p.origins or default_origins(h), min_train)
        scale = _mase_scale(y, min(self.periods_, default=1))
        names = list(candidates)
        if origins:
            forecasts = np.full((len(names), len(origins), h), np.nan)
            actual = np.full((len(origins), h), np.nan)
            for j, origin in enumerate(origins):
                end = min(origin + h, len(y))
                actual[j, : end - origin] = y[origin:end]
                for i, name in enumerate(names):
                    key, params = candidates[name]
                    model = get_method(key)(**params).fit_inner(y[:origin], h, self.periods_)
                    forecasts[i, j] = model._mean(h)
            chosen, errors = _choose(names, forecasts, actual, scale, self.p.top)
        else:
            chosen, errors = [names[0]], None
        self.members_ = []
        for name in chosen:
            key, params = candidates[name]
            model = get_method(key)(**params).fit_inner(y, h, self.periods_)
            self.members_.append((name, key, params, model))
        self.chosen_ = chosen
        if errors is not None:
            self.calib_ = conformal_widths(
                errors, CALIBRATED_LEVELS, inflate=self.p.interval_inflation, small_sample=SELECTED_SMALL_SAMPLE
            )
        diffs = np.diff(y)
        self.sigma_ = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else 0.0

    def _mean(self, h: int) -> np.ndarray:
        return np.mean([model._mean(h) for *_, model in self.members_], axis=0)

    def _get_state(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen_,
            "sigma": self.sigma_,
            "members": [
                {"name": name, "key": key, "params": params, "state": model.get_state()}
                for name, key, params, model in self.members_
            ],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        from .registry import get_method

        self.chosen_ = list(state["chosen"])
        self.sigma_ = float(state["sigma"])
        self.members_ = []
        for member in state["members"]:
            model = get_method(member["key"]).from_state(member["params"], member["state"])
            self.members_.append((member["name"], member["key"], member["params"], model))


def _mase_scale(y: np.ndarray, m: int) -> float:
    if len(y) <= m:
        m = 1
    d = np.abs(y[m:] - y[:-m])
    value = float(np.mean(d)) if len(d) else 0.0
    return value if value > 0 else max(float(np.mean(np.abs(y))), 1e-9)


def _choose(names, forecasts, actual, scale, top) -> tuple[list[str], np.ndarray]:
    """Best single candidate or mean of candidates by backtest (sMAPE and MASE relative to the best)."""

    def errs(f):
        e = actual - f
        den = np.abs(actual) + np.abs(f)
        smape = np.nanmean(np.where(den > 0, 200 * np.abs(e) / np.where(den > 0, den, 1), 0.0))
        mase = np.nanmean(np.abs(e)) / scale
        return smape, mase

    ok = np.isfinite(forecasts).reshape(len(names), -1)[:, np.isfinite(actual).ravel()].all(axis=1)
    single = {i: errs(forecasts[i]) for i in range(len(names)) if ok[i]}
    if not single:
        return [names[0]], actual - forecasts[0]
    s_best = max(min(v[0] for v in single.values()), 1e-9)
    m_best = max(min(v[1] for v in single.values()), 1e-9)
    ranked = sorted(single, key=lambda i: single[i][0] / s_best + single[i][1] / m_best)[:top]
    best, best_score, best_f = None, np.inf, None
    for size in range(1, len(ranked) + 1):
        for combo in itertools.combinations(ranked, size):
            f = forecasts[list(combo)].mean(axis=0)
            s, m = errs(f)
            score = s / s_best + m / m_best
            if score < best_score - 1e-12:
                best, best_score, best_f = combo, score, f
    return [names[i] for i in best], actual - best_f
