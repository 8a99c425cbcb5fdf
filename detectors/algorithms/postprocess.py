"""From raw scores to decisions and events, shared by every detector.

1. Calibration: each raw score becomes a tail probability ``p`` against the series' own recent
   history of scores (the previous ``calibration_window`` scores, never the current or later ones):
   the empirical share of history at least as high, and beyond the history's top 5 % an exponential
   tail fitted to the excesses over that quantile, so that scores above anything seen still get a
   finite, graded probability. Detectors whose raw score has a known null distribution (``|z|`` or
   ``-log10 p``) give a prior that ``p`` never goes below, so a flat history cannot turn a tiny
   wobble into an alarm. ``anomaly_score = min(1, -log10(p) / 8)``: 0.5 is "once in 10,000 rows",
   1.0 is "once in 10^8 rows or rarer".
2. Threshold: ``sensitivity`` in [0, 1] sets the tail probability at which a row counts as
   unusual, ``alpha = 10 ** -(1 + 5 * (1 - sensitivity) ** 2)``: 1 in 10 rows at sensitivity 1,
   about 1 in 180 at the default 0.5, 1 in a million at 0. It is the rate at which rows of data
   like the series' own history cross the threshold; alarms are far rarer, because of step 3.
3. Suppression of repeats: a row can only raise an alarm when its calibrated score beats every
   score in the ``quiet`` rows before it (by a margin of 0.05, i.e. 0.4 decades of probability),
   so an event raises one alarm (plus one per clear escalation) and nothing new fires until the
   score has been quiet for ``quiet`` rows. Suppressed rows keep a tenth of their score in
   ``anomaly_score``, so no useful threshold picks them.
4. Events: alarms closer than ``quiet`` rows apart form one event, which extends while the
   calibrated score stays above the threshold. Each event carries start/end/peak rows, the peak value,
   the expected value and band (if the detector has one), score, severity and an explanation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from .base import Detector, ScoreResult, to_timestamps

SCORE_DECADES = 8.0  # anomaly_score 1.0 == tail probability 1e-8
P_FLOOR = 1e-12
DEFAULT_SENSITIVITY = 0.5
DEFAULT_CALIBRATION_WINDOW = 4000
DEFAULT_QUIET = 100
MIN_HISTORY = 20
TAIL_FRACTION = 0.05  # the exponential tail takes over beyond the history's top 5 %
SEVERITY_LEVELS = ((6.0, "critical"), (4.5, "high"), (3.0, "medium"), (0.0, "low"))  # -log10 p


def z_prior(z: float) -> float:
    """Two-sided normal tail probability of a ``|z|`` score."""
    return float(special.erfc(abs(z) / math.sqrt(2.0)))


def neglog10p_prior(s: float) -> float:
    return 10.0 ** (-max(s, 0.0))


PRIORS: dict[str, Callable[[float], float]] = {"z": z_prior, "neglog10p": neglog10p_prior}


def tail_probability(
    scores: np.ndarray,
    window: int = DEFAULT_CALIBRATION_WINDOW,
    min_history: int | None = None,
    tail_fraction: float | None = None,
    prior: Callable[[float], float] | None = None,
) -> np.ndarray:
    """Causal tail probability of each score against the ``window`` scores before it.

    With fewer than ``min_history`` earlier scores, ``p`` is the prior (1 without one).
    """
    min_history = MIN_HISTORY if min_history is None else min_history
    tail_fraction = TAIL_FRACTION if tail_fraction is None else tail_fraction
    scores = np.asarray(scores, dtype=float)
    out = np.ones(len(scores))
    hist: list[float] = []
    for i, s in enumerate(scores.tolist()):
        n = len(hist)
        p = 1.0
        if n >= min_history:
            k = max(1, int(tail_fraction * n))
            q = hist[n - k]
            if s > q:
                excess = sum(hist[n - k :]) / k - q
                spread = hist[-1] - hist[0]
                scale = max(excess, 1e-3 * spread, 1e-9 * (abs(q) + 1.0))
                p = (k / (n + 1)) * math.exp(-(s - q) / scale)
            else:
                count = n - bisect.bisect_left(hist, s)
                p = (count + 1) / (n + 1)
        if prior is not None:
            p = max(p, prior(s)) if n >= min_history else prior(s)
        out[i] = max(p, P_FLOOR)
        bisect.insort(hist, s)
        if n + 1 > window:
            old = scores[i - window]
            del hist[bisect.bisect_left(hist, old)]
    return out


def to_anomaly_score(p: np.ndarray) -> np.ndarray:
    return np.clip(-np.log10(np.maximum(p, P_FLOOR)) / SCORE_DECADES, 0.0, 1.0) + 0.0  # no -0.0


def sensitivity_threshold(sensitivity: float) -> float:
    """The ``anomaly_score`` at which an alarm is raised (see the module docstring)."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError("sensitivity must be within [0, 1]")
    return (1.0 + 5.0 * (1.0 - sensitivity) ** 2) / SCORE_DECADES


SUPPRESSED_FACTOR = 0.1
ESCALATION_MARGIN = 0.05


def suppress(score: np.ndarray, quiet: int = DEFAULT_QUIET, margin: float | None = None) -> np.ndarray:
    """Mask of rows whose score beats every score in the ``quiet`` rows before them by ``margin``."""
    margin = ESCALATION_MARGIN if margin is None else margin
    score = np.asarray(score, dtype=float)
    if len(score) == 0:
        return np.zeros(0, dtype=bool)
    padded = np.concatenate([np.full(quiet, -np.inf), score])
    windows = np.lib.stride_tricks.sliding_window_view(padded[:-1], quiet)
    return score > windows.max(axis=1) + margin


def severity_of(p: float) -> str:
    level = -math.log10(max(p, P_FLOOR))
    return next(name for bound, name in SEVERITY_LEVELS if level >= bound)


@dataclass
class Event:
    start: int
    end: int
    peak: int
    value: Any
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    probability: float
    severity: str
    explanation: dict[str, Any]
    start_ts: Any = None
    end_ts: Any = None
    peak_ts: Any = None


@dataclass
class DetectionResult:
    """``anomaly_score``: calibrated 0..1 per row with suppressed repeats halved; ``is_anomaly``:
    1 on rows that raise an alarm (event onsets and escalations); ``events``: merged anomalies."""

    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    events: list[Event]
    raw_score: np.ndarray
    probability: np.ndarray
    threshold: float
    expected: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _explain(result: ScoreResult, i: int, value: Any) -> dict[str, Any]:
    explanation: dict[str, Any] = {}
    if result.expected is not None:
        expected = float(result.expected[i])
        explanation["kind"] = "expectation"
        explanation["expected"] = expected
        if result.lower is not None and result.upper is not None:
            explanation["band"] = [float(result.lower[i]), float(result.upper[i])]
        try:
            explanation["deviation"] = float(value) - expected
        except (TypeError, ValueError):
            pass
    if result.contributions is not None:
        names = result.feature_names or [f"f{j}" for j in range(result.contributions.shape[1])]
        row = np.asarray(result.contributions[i], dtype=float)
        order = np.argsort(-np.abs(row))[:5]
        explanation.setdefault("kind", "features")
        explanation["features"] = {names[j]: round(float(row[j]), 4) for j in order if np.isfinite(row[j])}
    return explanation


def _row_value(values: Any, i: int) -> Any:
    if hasattr(values, "iloc"):
        row = values.iloc[i]
        return row.to_dict() if hasattr(row, "to_dict") else row
    v = np.asarray(values)[i]
    return v.tolist() if isinstance(v, np.ndarray) else float(v)


def build_events(
    flags: np.ndarray,
    over: np.ndarray,
    anomaly_score: np.ndarray,
    probability: np.ndarray,
    result: ScoreResult,
    values: Any,
    timestamps: Any,
    quiet: int,
) -> list[Event]:
    events: list[Event] = []
    rows = np.flatnonzero(flags)
    n = len(flags)
    groups: list[list[int]] = []
    for r in rows.tolist():
        if groups and r - groups[-1][-1] <= quiet:
            groups[-1].append(r)
        else:
            groups.append([r])
    for group in groups:
        start, end = group[0], group[-1]
        while end + 1 < n and over[end + 1]:
            end += 1
        peak = start + int(np.argmax(anomaly_score[start : end + 1]))
        value = _row_value(values, peak)

        def pick(a: np.ndarray | None, row: int = peak) -> float | None:
            return None if a is None else float(a[row])

        ev = Event(
            start=start,
            end=end,
            peak=peak,
            value=value,
            expected=pick(result.expected),
            lower=pick(result.lower),
            upper=pick(result.upper),
            score=float(anomaly_score[peak]),
            probability=float(probability[peak]),
            severity=severity_of(float(probability[peak])),
            explanation=_explain(result, peak, value),
        )
        if timestamps is not None:
            ev.start_ts, ev.end_ts, ev.peak_ts = timestamps[start], timestamps[end], timestamps[peak]
        events.append(ev)
    return events


def calibrate(
    raw: np.ndarray, score_unit: str = "raw", calibration_window: int = DEFAULT_CALIBRATION_WINDOW
) -> np.ndarray:
    """Tail probability per row (step 1 of the module docstring).

    A score already in ``-log10 p`` units (a detector that calibrates itself, such as ``auto`` or
    ``ensemble``) is converted directly, not calibrated a second time.
    """
    if score_unit == "neglog10p":
        return np.maximum(10.0 ** -np.maximum(np.asarray(raw, dtype=float), 0.0), P_FLOOR)
    return tail_probability(raw, window=calibration_window, prior=PRIORS.get(score_unit))


def detect(
    algorithm: str | Detector,
    values: Any,
    timestamps: Any = None,
    train_size: int | None = None,
    sensitivity: float = DEFAULT_SENSITIVITY,
    params: dict[str, Any] | None = None,
    quiet: int = DEFAULT_QUIET,
    calibration_window: int = DEFAULT_CALIBRATION_WINDOW,
    alarm_from: int = 0,
) -> DetectionResult:
    """Fit ``algorithm`` on the first ``train_size`` rows, score every row causally, post-process.

    ``algorithm`` is a registry key (built with ``params``) or an already fitted detector (then
    ``train_size`` is ignored). ``train_size`` defaults to 15 % of the rows (at least 1); the
    training rows are scored too (they seed the calibration history) but raise no alarms.
    ``alarm_from``: rows before it are history already judged (by an earlier run); they calibrate and
    suppress repeats but raise no alarm, so events begin at or after it.
    ``values`` is a 1-D series, an ``(n, d)`` array or, for table detectors, a DataFrame.
    """
    from .registry import get_algorithm

    n = len(values)
    train = 0
    if isinstance(algorithm, Detector):
        detector = algorithm
    else:
        detector = get_algorithm(algorithm)(**(params or {}))
        train = max(1, int(0.15 * n)) if train_size is None else int(train_size)
        if not 1 <= train <= n:
            raise ValueError(f"train_size must be within [1, {n}]")
        fit_values = values.iloc[:train] if hasattr(values, "iloc") else np.asarray(values)[:train]
        detector.fit(fit_values, None if timestamps is None else list(timestamps)[:train])
    result = detector.score_details(values, timestamps)
    probability = calibrate(result.score, detector.tags.get("score_unit", "raw"), calibration_window)
    calibrated = to_anomaly_score(probability)
    fresh = suppress(calibrated, quiet)
    anomaly_score = np.where(fresh, calibrated, SUPPRESSED_FACTOR * calibrated)
    threshold = sensitivity_threshold(sensitivity)
    flags = fresh & (calibrated >= threshold)
    flags[: max(train, alarm_from)] = False  # training rows and already judged history raise no alarms
    ts = None if timestamps is None else to_timestamps(timestamps, n)
    events = build_events(flags, calibrated >= threshold, calibrated, probability, result, values, ts, quiet)
    return DetectionResult(
        anomaly_score=anomaly_score,
        is_anomaly=flags.astype(np.int8),
        events=events,
        raw_score=result.score,
        probability=probability,
        threshold=threshold,
        expected=result.expected,
        lower=result.lower,
        upper=result.upper,
    )
