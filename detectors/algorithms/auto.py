"""``auto``: the default detector, a calibrated ensemble of robust causal features.

For each series (column) it computes deviation features at every row, each against a baseline of
earlier rows only. The default set (``features``) is the first five; the others are available:

- ``value``: distance from the median of the last ``long_window`` rows (robust sigma units), i.e.
  how unusual the level is against (nearly) all history;
- ``shift``: median of the last ``shift_window`` rows against the long median before them (a median, so
  a spike in the history does not make every later shift of the level look ordinary);
- ``shift_long``: the same over ``4 * shift_window`` rows: a smaller shift that lasts;
- ``seasonal``: deviation from the same phase one cycle earlier (only when a period is found);
- ``pattern``: distance from the shape of the last ``pattern_length`` values to the nearest
  earlier, non-overlapping stretch of the series (a causal nearest-neighbour novelty);
- ``spike``, ``jump``, ``volatility``, ``pattern_long``, ``pattern_shape``: distance from the short
  median, size of the last step, short-window spread, and longer (optionally mean-removed)
  patterns. On NAB these add false alarms more than detections, so they are off by default.
- ``stuck``: how many rows in a row the value has repeated exactly (a stuck sensor; calibrated like
  every feature). Off by default: on NAB it alarmed on series whose values repeat now and then.
- ``relation`` (several columns): distance of each column from what a linear model of the other columns,
  fitted on the training rows, expects (a broken relation between columns, each of which still looks normal);
- ``window_model``: optionally one machine-learning detector (e.g. ``kmeans``) on window features
  as one more component; with several columns it defaults to ``gmm``, which sees the columns jointly.

What it chooses from the training rows: the seasonal period (given or inferred by
autocorrelation), whether the seasonal feature is used at all, and, by a one-step backtest on the
training rows, which expectation (recent median or seasonal naive) provides the expected value and
band. Baselines are rolling, so the model follows drift without refitting.

Each feature is calibrated against its own history as a tail probability (see
``postprocess.tail_probability``) and the features are combined by the minimum probability with a
Bonferroni correction (or by the mean, ``combine="mean"``). The score is ``-log10`` of that
probability (``score_unit = "neglog10p"``, so ``detect`` does not calibrate it again), and
``contributions`` per row read as "how surprising was each feature".

Streaming needs a long window (``context_size``: ``long_window + calibration_window`` rows and a
few cycles): the baselines and calibrations are meant to see the series' long history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .base import Detector, ScoreResult
from .postprocess import tail_probability, z_prior
from .rolling import fill_nan, prev_iqr_sigma, prev_median, robust_sigma, scale_floor
from .seasonality import infer_period, phases, time_origin

FEATURES = (
    "value",
    "spike",
    "shift",
    "shift_long",
    "jump",
    "volatility",
    "seasonal",
    "pattern",
    "pattern_shape",
    "pattern_long",
    "stuck",
    "relation",
)
SIGNED = ("value", "spike", "shift", "shift_long", "seasonal")
LONG_SHIFT = 4  # ``shift_long`` looks at this many shift windows
SEASONAL_CYCLES = 1
DEFAULT_FEATURES = ("value", "shift", "shift_long", "seasonal", "pattern", "relation")
RELATION_RIDGE = 0.01  # ridge penalty per training row, on standardised columns
RELATION_MIN_VALUES = 10  # a column with at most this many distinct training values is a state, not a measure
RELATION_OUTLIER = 5.0  # training rows with a residual beyond this many sigmas are left out of the refit
MULTIVARIATE_WINDOW_MODEL = "gmm"


@dataclass
class AutoParams:
    period: int | None = field(default=None, metadata={"min": 0, "max": 100_000})
    long_window: int = field(default=10_000, metadata={"min": 20, "max": 100_000})
    short_window: int = field(default=10, metadata={"min": 2, "max": 1000})
    shift_window: int = field(default=10, metadata={"min": 2, "max": 1000})
    calibration_window: int = field(default=4000, metadata={"min": 50, "max": 100_000})
    combine: str = field(default="max", metadata={"choices": ("max", "mean")})
    component_prior: bool = False
    band_z: float = field(default=3.0, metadata={"min": 0.1, "max": 100.0})
    split_directions: bool = False
    pattern_length: int = field(default=4, metadata={"min": 2, "max": 100})
    pattern_history: int = field(default=10_000, metadata={"min": 10, "max": 100_000})
    window_model: str | None = field(
        default=None, metadata={"choices": ("kmeans", "gmm", "lof", "isolation_forest", "one_class_svm")}
    )
    features: list = field(default_factory=lambda: list(DEFAULT_FEATURES))


def stuck_run(x: np.ndarray) -> np.ndarray:
    """How many rows in a row the value has repeated exactly (0 when it just changed)."""
    same = np.zeros(len(x), dtype=bool)
    same[1:] = np.abs(np.diff(x)) <= 1e-12 * np.maximum(np.abs(x[1:]), 1.0)
    rows = np.arange(len(x))
    last_change = np.maximum.accumulate(np.where(same, 0, rows))
    return (rows - last_change).astype(float)


def pattern_novelty(z: np.ndarray, length: int, history: int, block: int = 256, start: int = 0) -> np.ndarray:
    """Distance from the window of the last ``length`` values to its nearest earlier window.

    Earlier windows are those ending at least ``length`` rows before (no overlap), at most the last
    ``history`` of them. Rows without a full window or without history score 0, and so do rows before
    ``start`` (not computed: the caller does not need them).
    """
    n = len(z)
    out = np.zeros(n)
    if n < 2 * length + 1:
        return out
    emb = np.lib.stride_tricks.sliding_window_view(z, length)  # emb[j] ends at row j + length - 1
    norms = (emb**2).sum(axis=1)
    for lo in range(max(length, start - length + 1), len(emb), block):
        hi = min(lo + block, len(emb))
        # Window q may be compared with windows r in [q - length - history, q - length]. Those in the middle
        # range are allowed for every q of the block; only the two edge ranges need a mask.
        ref_lo, ref_hi = max(0, lo - length - history), hi - length
        mid_lo, mid_hi = max(ref_lo, hi - 1 - length - history), max(ref_lo, lo - length + 1)
        queries = emb[lo:hi]
        best = np.full(hi - lo, np.inf)
        if mid_hi > mid_lo:
            products = norms[None, mid_lo:mid_hi] - 2.0 * queries @ emb[mid_lo:mid_hi].T
            best = products.min(axis=1) + norms[lo:hi]
        q = np.arange(lo, hi)[:, None]
        for edge_lo, edge_hi in ((ref_lo, mid_lo), (mid_hi, ref_hi)):
            if edge_hi <= edge_lo:
                continue
            d2 = norms[lo:hi, None] + norms[None, edge_lo:edge_hi] - 2.0 * queries @ emb[edge_lo:edge_hi].T
            r = np.arange(edge_lo, edge_hi)[None, :]
            d2[(r > q - length) | (r < q - length - history)] = np.inf
            best = np.minimum(best, d2.min(axis=1))
        out[lo + length - 1 : hi + length - 1] = np.sqrt(np.maximum(np.where(np.isfinite(best), best, 0.0), 0.0))
    return out


def _standardised(X: np.ndarray, columns: list[dict[str, Any]]) -> np.ndarray:
    center = np.array([c["center"] for c in columns])
    scale = np.array([max(c["sigma"], c["floor"]) for c in columns])
    return (X - center) / scale


def _fit_relations(X: np.ndarray, columns: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Ridge regressions of each measured column on the other measured ones (standardised), refitted without
    the rows whose residuals were extreme (so a fault in the training rows does not bend them). Columns with
    few distinct values (states, modes, counts of a few) take no part: a linear relation does not describe them.
    None with fewer than two measured columns."""
    measured = [c for c in range(X.shape[1]) if len(np.unique(X[:, c][np.isfinite(X[:, c])])) > RELATION_MIN_VALUES]
    if len(measured) < 2:
        return None
    X = X[:, measured]
    columns = [columns[c] for c in measured]
    Z = _standardised(X, columns)
    keep = np.isfinite(Z).all(axis=1)
    coef, mean, sigma = _ridge_all(Z[keep])
    extreme = (np.abs(_residuals(Z, coef, mean)) > RELATION_OUTLIER * sigma).any(axis=1)
    if (keep & ~extreme).sum() > X.shape[1] + 2:
        coef, mean, sigma = _ridge_all(Z[keep & ~extreme])
    return {"columns": measured, "coef": coef.tolist(), "mean": mean.tolist(), "sigma": sigma.tolist()}


def _ridge_all(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, d) coefficients whose column c predicts column c from the others (zero diagonal), the means, and
    each column's robust residual sigma."""
    mean = Z.mean(axis=0)
    centred = Z - mean
    gram = centred.T @ centred
    d = Z.shape[1]
    coef = np.zeros((d, d))
    penalty = RELATION_RIDGE * len(Z) * np.eye(d - 1)
    for c in range(d):
        others = np.delete(np.arange(d), c)
        coef[others, c] = np.linalg.solve(gram[np.ix_(others, others)] + penalty, gram[others, c])
    sigma = np.array([max(robust_sigma(r), 1e-9) for r in _residuals(Z, coef, mean).T])
    return coef, mean, sigma


def _residuals(Z: np.ndarray, coef: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return (Z - mean) - (Z - mean) @ coef


def _relation_distances(X: np.ndarray, columns: list[dict[str, Any]], relations: dict[str, Any]) -> np.ndarray:
    """(n, measured columns) |residual| of each from its relation to the others, in residual sigmas."""
    measured = relations["columns"]
    Z = np.nan_to_num(_standardised(X[:, measured], [columns[c] for c in measured]))
    residuals = _residuals(Z, np.array(relations["coef"]), np.array(relations["mean"]))
    return np.abs(residuals) / np.array(relations["sigma"])


class AutoDetector(Detector):
    key = "auto"
    tags = {
        **Detector.tags, "multivariate": True, "has_expected_band": True, "score_unit": "neglog10p",
        "partial_scoring": True, "keeps_features": True,
    }  # fmt: skip
    Params = AutoParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"long_window": 100, "calibration_window": 300}

    @property
    def context_size(self) -> int:
        p = self.p
        return int(p.long_window + p.calibration_window + 3 * max(self.period_ or 0, 1))

    # -- fit --------------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> None:
        x0 = X[:, 0]
        self.origin_, self.step_ = time_origin(timestamps)
        if self.p.period is not None:
            period = int(self.p.period)
        else:
            period = infer_period(x0, max_period=min(len(x0) // 2, 2 * self.p.long_window), step=self.step_)
        self.period_ = period if period >= 2 and period * 2 <= len(x0) else 0
        self.model_ = None
        # Several columns together: a Gaussian mixture over the rows' joint window features also sees a
        # broken relation between columns, which per-column features cannot.
        window_model = self.p.window_model or (MULTIVARIATE_WINDOW_MODEL if X.shape[1] > 1 else None)
        if window_model:
            from .registry import get_algorithm

            self.model_ = get_algorithm(window_model)().fit(X, timestamps)
        self.columns_ = []
        for c in range(X.shape[1]):
            x = X[:, c]
            self.columns_.append(
                {
                    "center": float(np.median(x)),
                    "sigma": robust_sigma(x),
                    "floor": scale_floor(x),
                    "step_sigma": robust_sigma(np.diff(x)) if len(x) > 2 else 0.0,
                    "expectation": self._backtest(x),
                }
            )
        self.relations_ = _fit_relations(X, self.columns_) if X.shape[1] > 1 else None

    def _backtest(self, x: np.ndarray) -> str:
        """'seasonal' when the seasonal naive forecast beats the recent median on training rows."""
        m = self.period_
        if not m or len(x) < 2 * m + 10:
            return "level"
        level = fill_nan(prev_median(x, self.p.short_window), float(np.median(x)))
        seasonal = np.concatenate([np.full(m, np.nan), x[:-m]])
        tail = slice(m, None)
        err_level = np.nanmean(np.abs(x[tail] - level[tail]))
        err_seasonal = np.nanmean(np.abs(x[tail] - seasonal[tail]))
        return "seasonal" if err_seasonal < err_level else "level"

    # -- score ------------------------------------------------------------------------------------
    def _features(self, x: np.ndarray, col: dict[str, Any], ph: np.ndarray, start: int = 0) -> dict[str, np.ndarray]:
        p = self.p
        floor = col["floor"]
        sig = np.maximum(fill_nan(prev_iqr_sigma(x, p.long_window), col["sigma"]), floor)
        med_long = fill_nan(prev_median(x, p.long_window), col["center"])
        med_short = fill_nan(prev_median(x, p.short_window), col["center"])
        k = p.shift_window
        recent_mean = pd.Series(x).rolling(k, min_periods=1).median().to_numpy()
        before = np.concatenate([np.full(k - 1, col["center"]), med_long[: len(x) - k + 1]])[: len(x)]
        steps = np.abs(np.diff(x, prepend=x[0]))
        step_sigma = np.maximum(fill_nan(prev_iqr_sigma(steps, p.long_window), col["step_sigma"]), floor)
        vol = pd.Series(x).rolling(k, min_periods=2).std().fillna(0.0).to_numpy()
        vol_ref = np.maximum(fill_nan(prev_median(vol, p.long_window), col["sigma"]), floor)
        kl = LONG_SHIFT * k
        recent_long = pd.Series(x).rolling(kl, min_periods=1).median().to_numpy()
        before_long = np.concatenate([np.full(kl - 1, col["center"]), med_long[: len(x) - kl + 1]])[: len(x)]
        feats = {
            "value": (x - med_long) / sig,
            "spike": (x - med_short) / sig,
            "shift": (recent_mean - before) / sig,
            "shift_long": (recent_long - before_long) / sig,
            "jump": steps / step_sigma,
            "volatility": vol / vol_ref,
            "stuck": stuck_run(x),
        }
        if self.period_:
            lagged = self._seasonal_naive(x)
            resid = x - lagged
            rs = np.maximum(fill_nan(prev_iqr_sigma(resid, p.long_window), col["sigma"]), floor)
            feats["seasonal"] = fill_nan(resid / rs, 0.0)
        if "pattern" in p.features:
            z = x / max(col["sigma"], floor)
            feats["pattern"] = pattern_novelty(z, p.pattern_length, p.pattern_history, start=start)
        if "pattern_shape" in p.features:
            z = x / max(col["sigma"], floor)
            dev = z - pd.Series(z).rolling(p.pattern_length * 3, min_periods=1).mean().to_numpy()
            feats["pattern_shape"] = pattern_novelty(dev, p.pattern_length * 3, p.pattern_history, start=start)
        if "pattern_long" in p.features:
            feats["pattern_long"] = pattern_novelty(
                x / max(col["sigma"], floor), p.pattern_length * 3, p.pattern_history
            )
        out = {}
        for name, values in feats.items():
            if self.p.split_directions and name in SIGNED:
                out[f"{name}_up"] = np.maximum(values, 0.0)
                out[f"{name}_down"] = np.maximum(-values, 0.0)
            else:
                out[name] = np.abs(values)
        return out

    def feature_lag(self, name: str) -> int:
        """Features over a window of rows are calibrated against history that ends before the window (see
        ``tail_probability``): a lasting shift then stands out when its window has filled."""
        base = name.split("[", 1)[0].removesuffix("_up").removesuffix("_down")
        windows = {"shift": self.p.shift_window, "shift_long": LONG_SHIFT * self.p.shift_window}
        return {**windows, "pattern": self.p.pattern_length}.get(base, 0)

    def _seasonal_naive(self, x: np.ndarray) -> np.ndarray:
        """Median of the same phase in the last ``seasonal_cycles`` cycles (NaN before one cycle)."""
        m = self.period_
        lags = [
            np.concatenate([np.full(c * m, np.nan), x[: len(x) - c * m]])[: len(x)]
            for c in range(1, SEASONAL_CYCLES + 1)
        ]
        stacked = np.vstack(lags)
        out = np.full(len(x), np.nan)
        seen = np.isfinite(stacked).any(axis=0)
        with np.errstate(all="ignore"):
            out[seen] = np.nanmedian(stacked[:, seen], axis=0)
        return out

    def _expected(self, x: np.ndarray, col: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        sig = np.maximum(fill_nan(prev_iqr_sigma(x, p.long_window), col["sigma"]), col["floor"])
        level = fill_nan(prev_median(x, p.short_window), col["center"])
        if col["expectation"] == "seasonal" and self.period_:
            lagged = self._seasonal_naive(x)
            level = np.where(np.isfinite(lagged), lagged, level)
        return level, sig

    def _score(
        self, X: np.ndarray, timestamps: pd.DatetimeIndex | None, exact_from: int = 0, kept: dict | None = None
    ) -> ScoreResult:
        """``kept``: {row: its raw feature values from an earlier scoring}, used at those rows instead of the
        features of the values given (an incident's alarm row, whose value is replaced by normal behaviour
        but whose surprise the calibration keeps)."""
        p = self.p
        # Rows before `start` are not needed to score rows from `exact_from` on exactly: their features
        # only fill the calibration window, so the costly ones are computed from `start` on.
        start = max(0, exact_from - p.calibration_window)
        ph = phases(len(X), self.period_, timestamps, self.origin_, self.step_)
        names: list[str] = []
        raw: list[np.ndarray] = []
        for c, col in enumerate(self.columns_):
            for name, values in self._features(X[:, c], col, ph, start=start).items():
                if name.removesuffix("_up").removesuffix("_down") in p.features:
                    raw.append(values)
                    names.append(name if X.shape[1] == 1 else f"{name}[{c}]")
        if self.relations_ is not None and "relation" in p.features:
            distances = _relation_distances(X, self.columns_, self.relations_)
            for c, distance in zip(self.relations_["columns"], distances.T, strict=True):
                raw.append(distance)
                names.append(f"relation[{c}]")
        if self.model_ is not None:
            raw.append(self.model_.score(X, timestamps))
            names.append(self.model_.key)
        features = np.column_stack(raw)
        for row, values in (kept or {}).items():
            features[row] = values
        prior = z_prior if p.component_prior else None
        contrib = np.zeros_like(features)
        for j, name in enumerate(names):
            component_prior = None if name == getattr(self.model_, "key", None) else prior
            contrib[start:, j] = -np.log10(tail_probability(
                features[start:, j], window=p.calibration_window, prior=component_prior, lag=self.feature_lag(name),
            ))  # fmt: skip
        if p.combine == "max":
            score = np.maximum(contrib.max(axis=1) - np.log10(contrib.shape[1]), 0.0)
        else:
            score = contrib.mean(axis=1)
        expected, sig = self._expected(X[:, 0], self.columns_[0])
        band = p.band_z * sig
        return ScoreResult(score, expected, expected - band, expected + band, contrib, names, features=features)

    # -- state ------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        model = None
        if self.model_ is not None:
            model = {"key": self.model_.key, "params": self.model_.get_params(), "state": self.model_.get_state()}
        return {
            "period": self.period_,
            "origin": self.origin_,
            "step": self.step_,
            "columns": self.columns_,
            "window_model": model,
            "relations": self.relations_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.period_ = int(state["period"])
        self.origin_ = state["origin"]
        self.step_ = state["step"]
        self.columns_ = [dict(c) for c in state["columns"]]
        self.relations_ = state.get("relations")
        self.model_ = None
        if state.get("window_model"):
            from .registry import get_algorithm

            model = state["window_model"]
            key = model.get("key") or self.p.window_model
            self.model_ = get_algorithm(key).from_state(model["params"], model["state"])
