"""Detector base class: the template methods every algorithm shares.

Subclasses implement ``_fit(X, timestamps)`` and ``_score(X, timestamps)``; the public ``fit`` and
``score`` here validate params, check shapes, fill missing values and refuse to score before fit.

Input: a 1-D array (one series), an ``(n, d)`` array (``d`` series observed together; only for
detectors tagged ``multivariate``) or, for detectors tagged ``table``, a pandas DataFrame of mixed
types (one row per record). Missing values in a series are carried forward (the first ones take the
training median) and their rows score 0. Scores are finite floats, higher = more anomalous.

Scoring is causal: the score of row ``i`` depends only on rows ``0..i`` of ``X`` and the fitted
state. Streaming is ``score(window)[-1]`` where the window holds at least ``context_size`` rows.

Persistence: ``get_state()`` returns JSON-safe values only (numbers, strings, lists, dicts; no NaN)
that fit in a JSONB column; ``from_state(params, state)`` rebuilds an equivalent fitted detector.
Nothing is ever pickled.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .params import NoParams, ParamsError, validate_params

STATE_VERSION = 1
MAX_SCORE = 1e6  # raw scores are clipped here so that nothing downstream sees inf


class NotFittedError(RuntimeError):
    """Raised when a detector is asked to score before it was fitted."""


@dataclass
class ScoreResult:
    """Per-row output of a detector.

    ``score``: raw anomaly score (higher = more anomalous). ``expected``, ``lower`` and ``upper``:
    the value the model expected and its band (first column for multivariate input), or None when the
    model has no expectation. ``contributions``: ``(n, k)`` per-feature deviations (for feature
    models) named by ``feature_names``, or None.
    """

    score: np.ndarray
    expected: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    contributions: np.ndarray | None = None
    feature_names: list[str] | None = None
    features: np.ndarray | None = None  # (n, k) raw features before any calibration (detectors that keep them)


def jsonable(value: Any) -> Any:
    """Convert numpy values and containers to JSON-safe python (non-finite floats become None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value


def as_array(value: Any, dtype: Any = float) -> np.ndarray:
    """Inverse of ``jsonable`` for numeric arrays (None becomes NaN)."""
    if value is None:
        return np.array([], dtype=dtype)
    arr = np.array(value, dtype=object)
    arr[arr == None] = np.nan  # noqa: E711  (element-wise comparison)
    return arr.astype(dtype)


def to_timestamps(timestamps: Any, n: int) -> pd.DatetimeIndex | None:
    if timestamps is None:
        return None
    if isinstance(timestamps, pd.DatetimeIndex):
        ts = timestamps  # already parsed: converting through numpy objects would cost a Python call per row
    else:
        ts = pd.DatetimeIndex(pd.to_datetime(pd.Series(np.asarray(timestamps))))
    if len(ts) != n:
        raise ValueError(f"got {len(ts)} timestamps for {n} rows")
    if ts.hasnans:
        raise ValueError("timestamps contain missing values")
    return ts


class Detector(ABC):
    """Base of every anomaly detector (see the module docstring for the contract)."""

    key: ClassVar[str] = ""
    tags: ClassVar[dict[str, Any]] = {
        "multivariate": False,  # accepts (n, d) input
        "table": False,  # accepts a DataFrame of records (row-wise outliers)
        "needs_fit": True,  # fit learns something from the training rows
        "has_expected_band": False,  # ScoreResult carries expected/lower/upper
        "score_unit": "raw",  # "z" (|z-score|), "neglog10p" (-log10 tail probability) or "raw"
        "partial_scoring": False,  # _score takes exact_from (see score_details)
        "keeps_features": False,  # _score takes kept rows' raw features and returns them (see score_details)
    }
    Params: ClassVar[type] = NoParams

    def __init__(self, **params: Any):
        self.params = dict(params)

    # -- params ---------------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        """Full params (defaults filled in) or ``ParamsError`` with a message per bad field."""
        return asdict(validate_params(cls.Params, params))

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        """Small valid params for the conformance tests."""
        return {}

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def p(self) -> Any:
        """The validated params (a ``Params`` instance), validated once per params dict."""
        cached = self.__dict__.get("_validated")
        if cached is None or cached[0] != self.params:
            cached = (dict(self.params), validate_params(self.Params, self.params))
            self.__dict__["_validated"] = cached
        return cached[1]

    @property
    def context_size(self) -> int:
        """How many trailing rows a streaming window must hold to score its last row exactly."""
        return 1

    # -- input checks ---------------------------------------------------------------------------
    def _is_table(self, X: Any) -> bool:
        return bool(self.tags.get("table")) and getattr(self.p, "mode", "series") == "table"

    def _check_X(self, X: Any, fitting: bool) -> Any:
        if self._is_table(X):
            frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
            if len(frame) == 0:
                raise ValueError("no rows to score")
            return frame.reset_index(drop=True)
        if isinstance(X, pd.DataFrame):
            non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
            if non_numeric:
                raise ValueError(f"non-numeric columns {non_numeric}: use an ML detector with mode='table'")
        arr = np.array(X, dtype=float)  # a copy: the caller's data is never modified
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"expected a non-empty 1-D series or (n, d) array, got shape {np.shape(X)}")
        if arr.shape[1] > 1 and not self.tags.get("multivariate"):
            raise ValueError(f"{self.key} takes a single series, got {arr.shape[1]} columns")
        if not fitting and arr.shape[1] != self.n_features_in_:
            raise ValueError(f"fitted on {self.n_features_in_} columns, got {arr.shape[1]}")
        arr[np.isinf(arr)] = np.nan
        return arr

    def _fill(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Carry missing values forward (leading ones take the training median); return the mask."""
        missing = np.isnan(arr).any(axis=1)
        if not missing.any():
            return arr, missing
        frame = pd.DataFrame(arr).ffill()
        filled = np.array(frame, dtype=float)
        rows, cols = np.nonzero(np.isnan(filled))
        filled[rows, cols] = np.asarray(self.fill_)[cols]
        return filled, missing

    # -- template methods -------------------------------------------------------------------------
    def fit(self, X: Any, timestamps: Any = None) -> Detector:
        self.validate_params(self.params)
        data = self._check_X(X, fitting=True)
        ts = to_timestamps(timestamps, len(data))
        if isinstance(data, pd.DataFrame):
            self.n_features_in_ = data.shape[1]
            self.fill_ = []
            self._fit(data, ts)
            return self
        self.n_features_in_ = data.shape[1]
        med = np.nanmedian(data, axis=0) if np.isfinite(data).any() else np.zeros(data.shape[1])
        self.fill_ = np.nan_to_num(np.asarray(med, dtype=float)).tolist()
        filled, _ = self._fill(data)
        self._fit(filled, ts)
        return self

    def score_details(
        self, X: Any, timestamps: Any = None, exact_from: int = 0, kept: dict[int, Any] | None = None
    ) -> ScoreResult:
        """Scores and evidence per row. ``exact_from``: the caller needs exact scores only from this row
        on; earlier rows serve as history, and a detector tagged ``partial_scoring`` may leave their
        scores approximate to save time. ``kept``: {row: what an earlier scoring measured there}, used at
        those rows instead of what the values given say: the raw features (``keeps_features``
        detectors, from ``ScoreResult.features``) or else the raw score."""
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"{type(self).__name__} must be fitted (or loaded with from_state) before scoring")
        data = self._check_X(X, fitting=False)
        ts = to_timestamps(timestamps, len(data))
        if isinstance(data, pd.DataFrame):
            result = self._as_result(self._score(data, ts), len(data))
            return result
        filled, missing = self._fill(data)
        extra: dict[str, Any] = {}
        if self.tags.get("partial_scoring") and exact_from:
            extra["exact_from"] = exact_from
        if kept and self.tags.get("keeps_features"):
            extra["kept"] = kept
        result = self._as_result(self._score(filled, ts, **extra), len(filled))
        if kept and not self.tags.get("keeps_features"):
            for row, score in kept.items():
                result.score[row] = score
        result.score[missing] = 0.0
        return result

    def score(self, X: Any, timestamps: Any = None) -> np.ndarray:
        return self.score_details(X, timestamps).score

    @staticmethod
    def _as_result(out: ScoreResult | np.ndarray, n: int) -> ScoreResult:
        result = out if isinstance(out, ScoreResult) else ScoreResult(score=np.asarray(out, dtype=float))
        score = np.nan_to_num(np.asarray(result.score, dtype=float).ravel(), nan=0.0, posinf=MAX_SCORE)
        result.score = np.clip(score, -MAX_SCORE, MAX_SCORE)
        if len(result.score) != n:
            raise AssertionError(f"detector returned {len(result.score)} scores for {n} rows")
        return result

    @abstractmethod
    def _fit(self, X: Any, timestamps: pd.DatetimeIndex | None) -> None: ...

    @abstractmethod
    def _score(self, X: Any, timestamps: pd.DatetimeIndex | None) -> ScoreResult | np.ndarray: ...

    # -- persistence ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError("nothing to save: the detector is not fitted")
        state = {
            "version": STATE_VERSION,
            "key": self.key,
            "n_features_in": int(self.n_features_in_),
            "fill": list(self.fill_),
            "model": self._get_state(),
        }
        return jsonable(state)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> Detector:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        if state.get("key") != cls.key:
            raise ValueError(f"state belongs to {state.get('key')!r}, not {cls.key!r}")
        detector = cls(**params)
        detector.validate_params(params)
        detector.n_features_in_ = int(state["n_features_in"])
        detector.fill_ = [0.0 if v is None else float(v) for v in state["fill"]]
        detector._set_state(state["model"])
        return detector

    @abstractmethod
    def _get_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None: ...

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


__all__ = ["Detector", "NotFittedError", "ParamsError", "ScoreResult", "as_array", "jsonable"]
