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
3. Alarms: a row at or above the threshold raises an alarm only when its score also beats every
   score in the ``quiet`` rows before it (by 0.05, i.e. 0.4 decades of probability), so a noisy
   stretch raises one alarm, not one per row that crosses. Scores of rows inside earlier incidents
   do not count there (see 4), so a new deviation after a spike is found whatever the spike's score;
   nor do the scores of the rows the detector was fitted on (a warm-up with baselines of few rows).
4. Incidents (see ``incidents``): an alarm opens an incident, which lasts while the data stays away
   from the normal behaviour frozen at the alarm and closes after about ``close_after`` rows back
   inside the band. One incident raises one alarm; the next alarm can only come after it closed.
   With ``mask_after`` > 0, the rows of an incident at least that long, from its alarm until it
   closes, are replaced by that normal behaviour in what the detector sees and the detector scores
   the rest again, so they never become part of its baselines or of its score calibration; only the
   alarm's own surprise stays in the calibration (the detector keeps learning how often alarms come).
5. Each incident carries start (the alarm), end, peak, the peak value with the expected value and
   band, score, a severity that follows the distance beyond the band, and an explanation: a sentence
   plus the shape of the change, the columns that departed and the detector's strongest features.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from . import incidents
from .base import Detector, ScoreResult, to_timestamps
from .incidents import DEFAULT_CLOSE_AFTER
from .seasonality import infer_period

SCORE_DECADES = 8.0  # anomaly_score 1.0 == tail probability 1e-8
P_FLOOR = 1e-12
DEFAULT_SENSITIVITY = 0.5
DEFAULT_CALIBRATION_WINDOW = 4000
DEFAULT_QUIET = 100
ESCALATION_MARGIN = 0.05
MIN_HISTORY = 20
TAIL_FRACTION = 0.05  # the exponential tail takes over beyond the history's top 5 %
MIN_TAIL = 5  # ... and is fitted to at least this many scores (one or two give it no scale)
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
    lag: int = 0,
) -> np.ndarray:
    """Causal tail probability of each score against the ``window`` scores before it.

    With fewer than ``min_history`` earlier scores, ``p`` is the prior (1 without one). ``lag``: the last
    ``lag`` scores before a row are left out of its history. A score computed over a window of rows
    shares data with the scores just before it; a deviation that persists raises them step by step, and
    without the lag each step would be judged against the previous ones and never look unusual.
    """
    min_history = MIN_HISTORY if min_history is None else min_history
    tail_fraction = TAIL_FRACTION if tail_fraction is None else tail_fraction
    scores = np.asarray(scores, dtype=float)
    out = np.ones(len(scores))
    hist: list[float] = []
    values = scores.tolist()
    for i, s in enumerate(values):
        if lag and i >= lag:  # the score `lag` rows back joins the history only now
            _history_add(hist, values, i - lag, window)
        n = len(hist)
        p = 1.0
        if n >= min_history:
            k = max(MIN_TAIL, int(tail_fraction * n))
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
        if not lag:
            _history_add(hist, values, i, window)
    return out


def _history_add(hist: list[float], values: list[float], i: int, window: int) -> None:
    """Add score ``i`` to the sorted history, dropping the one that leaves the window."""
    bisect.insort(hist, values[i])
    if len(hist) > window:
        del hist[bisect.bisect_left(hist, values[i - window])]


def to_anomaly_score(p: np.ndarray) -> np.ndarray:
    return np.clip(-np.log10(np.maximum(p, P_FLOOR)) / SCORE_DECADES, 0.0, 1.0) + 0.0  # no -0.0


def sensitivity_threshold(sensitivity: float) -> float:
    """The ``anomaly_score`` at which an alarm is raised (see the module docstring)."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError("sensitivity must be within [0, 1]")
    return (1.0 + 5.0 * (1.0 - sensitivity) ** 2) / SCORE_DECADES


def false_alarm_rate(sensitivity: float) -> float:
    """The per-row tail probability at which a row counts as unusual: ``10 ** -(1 + 5 (1 - s)^2)``."""
    return 10.0 ** -(sensitivity_threshold(sensitivity) * SCORE_DECADES)


def suppress(score: np.ndarray, quiet: int = DEFAULT_QUIET, margin: float | None = None) -> np.ndarray:
    """Mask of rows whose score beats every score in the ``quiet`` rows before them by ``margin``."""
    margin = ESCALATION_MARGIN if margin is None else margin
    score = np.asarray(score, dtype=float)
    if len(score) == 0:
        return np.zeros(0, dtype=bool)
    padded = np.concatenate([np.full(quiet, -np.inf), score])
    windows = np.lib.stride_tricks.sliding_window_view(padded[:-1], quiet)
    return score > windows.max(axis=1) + margin


SUPPRESSED_FACTOR = 0.1  # repeats, and rows inside an incident after its alarm, keep this share of their score
# Incidents of at least this many points are masked (step 4); shorter ones stay in what the detector sees.
# 0 (the default): none is masked. See the README: with masking on, NAB fell below its floor of 60.
DEFAULT_MASK_AFTER = 0

SEVERITY_BEYOND_BAND = ((5.0, "critical"), (2.0, "high"), (0.0, "medium"))  # scales beyond the band


def severity_of(p: float) -> str:
    level = -math.log10(max(p, P_FLOOR))
    return next(name for bound, name in SEVERITY_LEVELS if level >= bound)


def severity_beyond_band(distance: float, p: float) -> str:
    """Severity from how far the incident went beyond its band (in scales); inside it, at most medium."""
    if distance > 0:
        return next(name for bound, name in SEVERITY_BEYOND_BAND if distance > bound)
    return "medium" if p <= 1e-6 else "low"


@dataclass
class Event:
    """One incident: from its alarm (``start``) to its last abnormal row (``end``)."""

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
    closed_at: int | None = None  # the row at which it closed; None while it is still open
    close_reason: str | None = None  # "recovered" or "rebaselined"
    resumed: bool = False  # an incident opened before these rows (a ``Prior``), followed further
    reference: Any = None  # its frozen normal behaviour (``incidents.Reference``)
    progress: Any = None  # while open: ``incidents.Progress``, to resume it on later rows
    level_offset: list[float] | None = None  # re-baselined: how far the new level sits from the old, per column
    onset_kept: Any = None  # what the detector measured at the alarm (kept in its calibration; see Prior)
    start_ts: Any = None
    end_ts: Any = None
    peak_ts: Any = None
    closed_ts: Any = None

    @property
    def rows(self) -> int:
        return self.end - self.start + 1


@dataclass
class DetectionResult:
    """Per row: ``anomaly_score`` (calibrated 0..1; rows inside an incident after its alarm keep a tenth),
    ``is_anomaly`` (1 on the alarm row of each incident), ``in_incident`` (1 on every row of one).
    ``events``: the incidents."""

    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    events: list[Event]
    raw_score: np.ndarray
    probability: np.ndarray
    threshold: float
    in_incident: np.ndarray | None = None
    expected: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
    calibration_window: int = DEFAULT_CALIBRATION_WINDOW,
    alarm_from: int = 0,
    quiet: int = DEFAULT_QUIET,
    close_after: int = DEFAULT_CLOSE_AFTER,
    adapt_after: int = 0,
    mask_after: int = DEFAULT_MASK_AFTER,
    columns: list[str] | None = None,
    threshold: float | None = None,
    priors: list[incidents.Prior] | None = None,
    trained_rows: int = 0,
) -> DetectionResult:
    """Fit ``algorithm`` on the first ``train_size`` rows, score every row causally, find incidents.

    ``algorithm`` is a registry key (built with ``params``) or an already fitted detector (then
    ``train_size`` is ignored). ``train_size`` defaults to 15 % of the rows (at least 1); the
    training rows are scored too (they seed the calibration history) but raise no alarms.
    ``alarm_from``: rows before it are history already judged (by an earlier run); they calibrate
    but raise no alarm, so incidents begin at or after it.
    ``values`` is a 1-D series, an ``(n, d)`` array (named by ``columns``) or, for table detectors,
    a DataFrame. ``quiet`` (rows): see step 3 above; ``close_after`` and ``adapt_after`` (rows): see
    ``incidents``; ``mask_after`` (rows): incidents at least this long are masked (step 4; 0: none).
    ``threshold``: the anomaly score that alarms, when a model version holds its own (else the one
    ``sensitivity`` gives). ``trained_rows``: with an already fitted detector, how many of the first rows
    it was fitted on (as ``train_size`` when this call fits it): their scores are a warm-up, judged by
    nobody, and never keep a later row from raising an alarm (step 3). ``priors``: incidents found by
    earlier runs on these rows (rows numbered as in ``values``): masked as they were when found, and an
    open one is followed on.
    """
    detector, train = _fitted(algorithm, values, timestamps, train_size, params)
    threshold = sensitivity_threshold(sensitivity) if threshold is None else threshold
    ts = None if timestamps is None else to_timestamps(timestamps, len(values))
    first = max(train, alarm_from)
    if detector._is_table(values):
        return _detect_rows(detector, values, ts, threshold, first, calibration_window)
    search = _IncidentSearch(detector, values, ts, threshold, calibration_window, first, columns)
    search.mask_after = mask_after
    search.warmup = max(train, trained_rows)
    return search.run(quiet=quiet, close_after=close_after, adapt_after=adapt_after, priors=priors or [])


def _fitted(algorithm, values, timestamps, train_size, params) -> tuple[Detector, int]:
    from .registry import get_algorithm

    if isinstance(algorithm, Detector):
        return algorithm, 0
    n = len(values)
    detector = get_algorithm(algorithm)(**(params or {}))
    train = max(1, int(0.15 * n)) if train_size is None else int(train_size)
    if not 1 <= train <= n:
        raise ValueError(f"train_size must be within [1, {n}]")
    fit_values = values.iloc[:train] if hasattr(values, "iloc") else np.asarray(values)[:train]
    detector.fit(fit_values, None if timestamps is None else list(timestamps)[:train])
    return detector, train


def _detect_rows(detector, values, ts, threshold, first, calibration_window) -> DetectionResult:
    """Table rows are independent records: each row above the threshold is an incident of its own."""
    result = detector.score_details(values, ts)
    probability = calibrate(result.score, detector.tags.get("score_unit", "raw"), calibration_window)
    calibrated = to_anomaly_score(probability)
    alarms = calibrated >= threshold
    alarms[:first] = False
    events = []
    for row in np.flatnonzero(alarms).tolist():
        value = _row_value(values, row)
        p = float(probability[row])
        events.append(Event(
            start=row, end=row, peak=row, value=value, expected=None, lower=None, upper=None,
            score=float(calibrated[row]), probability=p, severity=severity_of(p),
            explanation=_feature_explanation(result, row, value), closed_at=row, close_reason=incidents.RECOVERED,
        ))  # fmt: skip
        _stamp(events[-1], ts)
    return DetectionResult(
        anomaly_score=calibrated, is_anomaly=alarms.astype(np.int8), events=events, raw_score=result.score,
        probability=probability, threshold=threshold, in_incident=alarms.astype(np.int8),
    )  # fmt: skip


class _IncidentSearch:
    """Scores a series, opens an incident at each alarm, follows it to its end, then searches on.

    With ``mask_after``, the rows of a long enough incident are replaced, in the data the detector sees, by
    the normal behaviour frozen at its alarm, and the detector scores again from there: they teach it
    nothing (not its baselines, not its seasonal reference, not the calibration of its scores).
    """

    def __init__(self, detector, values, ts, threshold, calibration_window, first, columns):
        self.detector, self.ts, self.threshold, self.first = detector, ts, threshold, first
        self.calibration_window = calibration_window
        self.values = values
        self.x = np.array(values, dtype=float).reshape(len(values), -1)
        self.columns = columns or ([""] if self.x.shape[1] == 1 else [f"column {c}" for c in range(self.x.shape[1])])
        self.work = self.x.copy()  # what the detector sees: incidents replaced, rebaselined levels removed
        self.clean = self.x.copy()  # what a new incident's reference is frozen from: every earlier incident replaced
        self.shift = np.zeros(len(self.x))  # what was removed from column 0, to show bands in the data's frame
        self.unit = detector.tags.get("score_unit", "raw")
        self.band_z = float(getattr(detector.p, "band_z", 3.0))
        self.step = None if ts is None or len(ts) < 2 else float(np.median(np.diff(ts.asi8[:1000]))) / 1e9
        n = len(self.x)
        self.anomaly_score, self.raw, self.probability = np.zeros(n), np.zeros(n), np.ones(n)
        self.in_incident, self.alarm = np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int8)
        self.expected = self.lower = self.upper = None
        self.events: list[Event] = []
        self.kept: dict[int, Any] = {}  # alarm rows: what the detector measured there before they were masked
        self.mask_after = DEFAULT_MASK_AFTER
        self.warmup = 0  # rows the detector was fitted on: their scores don't count in step 3

    def run(self, *, quiet: int, close_after: int, adapt_after: int, priors: list[incidents.Prior]) -> DetectionResult:
        n = len(self.x)
        pos = self.first
        for prior in priors:  # what earlier runs masked, masked again; re-baselined levels removed again
            stop = min(n, self.first if prior.closed_at is None else prior.closed_at)
            if prior.level_offset is not None:
                self.work[max(stop, 0) :] -= prior.level_offset
                self.clean[max(stop, 0) :] -= prior.level_offset
                self.shift[max(stop, 0) :] += prior.level_offset[0]
            rows = np.arange(max(prior.start, 0), max(stop, 0))
            self.clean[rows] = prior.reference.values(rows)
            if not self._masks(prior.start, prior.end):
                continue
            self.work[rows] = prior.reference.values(rows)
            if prior.onset_kept is not None and 0 <= prior.start < n:
                self.kept[prior.start] = (
                    np.asarray(prior.onset_kept) if isinstance(prior.onset_kept, list) else prior.onset_kept
                )
        calibrated, neglog, fresh = self._score_from(0, quiet)
        still_open = [prior for prior in priors if prior.closed_at is None and prior.progress is not None]
        for prior in still_open[:1]:
            extent = incidents.find_extent(
                _filled(self.x), prior.start, prior.reference, close_after=close_after,
                adapt_after=adapt_after, progress=prior.progress,
                score_evidence=self._score_evidence(neglog),
            )  # fmt: skip
            masked = self._masks(extent.start, extent.end)
            self._record(extent, calibrated, resumed=True, masked=masked)
            pos = n if extent.closed_at is None else max(extent.closed_at, pos)
            if masked and pos < n:
                calibrated, neglog, fresh = self._score_from(pos, quiet)
        stuck = incidents.stuck_onsets(self.x)
        while pos < n:
            candidates = np.flatnonzero(((calibrated[pos:] >= self.threshold) & fresh[pos:]) | stuck[pos:])
            if not len(candidates):
                break
            onset = pos + int(candidates[0])
            work, clean = _filled(self.work), _filled(self.clean)
            reference = incidents.frozen_reference(clean, onset, self._period(clean, onset))
            # With several columns a broken relation between them stays inside every band: the detector's
            # own score, while above the threshold, keeps the incident open too.
            score_evidence = self._score_evidence(neglog)
            extent = incidents.find_extent(
                work, onset, reference, score_evidence=score_evidence, close_after=close_after,
                adapt_after=adapt_after,
            )  # fmt: skip
            masked = self._masks(extent.start, extent.end)
            self._record(extent, calibrated, masked=masked)
            pos = n if extent.closed_at is None else extent.closed_at
            if masked and pos < n:
                calibrated, neglog, fresh = self._score_from(pos, quiet)
            else:  # the same scores, but the incident's own no longer hold back a new alarm (step 3)
                fresh = suppress(self._judged(calibrated), quiet)
        return DetectionResult(
            anomaly_score=self.anomaly_score, is_anomaly=self.alarm, events=self.events, raw_score=self.raw,
            probability=self.probability, threshold=self.threshold, in_incident=self.in_incident,
            expected=self.expected, lower=self.lower, upper=self.upper,
        )  # fmt: skip

    def _masks(self, start: int, end: int | None) -> bool:
        """Whether an incident over these rows is masked (step 4): a long one is; a spike is not."""
        return self.mask_after > 0 and end is not None and end - start + 1 >= self.mask_after

    def _measured(self, row: int) -> Any:
        """What the last pass measured at ``row``: its raw features, or its raw score."""
        result, i = self.last_result, row - self.last_lo
        return result.features[i].copy() if result.features is not None else float(result.score[i])

    def _score_evidence(self, neglog: np.ndarray) -> np.ndarray | None:
        return neglog / (self.threshold * SCORE_DECADES) if self.x.shape[1] > 1 else None

    def _period(self, work: np.ndarray, onset: int) -> int:
        """The detector's seasonal period, else one inferred from the rows before the alarm."""
        period = getattr(self.detector, "period_", 0) or 0
        if period or onset < 8:
            return int(period)
        return infer_period(work[:onset, 0], step=self.step)

    def _judged(self, calibrated: np.ndarray) -> np.ndarray:
        """Scores that can keep a later alarm from being fresh: not the warm-up rows the detector was fitted
        on (baselines with little data score them high), nor rows inside incidents."""
        out = np.where(self.in_incident > 0, 0.0, calibrated)
        out[: self.warmup] = 0.0
        return out

    def _score_from(self, fill_from: int, quiet: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score the working data and keep the outputs of rows from ``fill_from`` on.

        Only the rows the detector and the calibration need before ``fill_from`` are rescored, so rows
        from ``fill_from`` on get exactly the scores a full pass would give them. Returns the calibrated
        score, its -log10 p and whether it is fresh (step 3) for every row (rows before the rescored
        stretch hold zeros).
        """
        n = len(self.x)
        context = self.detector.context_size + (0 if self.unit == "neglog10p" else self.calibration_window)
        lo = 0 if fill_from == 0 else max(0, fill_from - context)
        ts = None if self.ts is None else self.ts[lo:]
        data = self.work[lo:] if self.work.shape[1] > 1 else self.work[lo:, 0]
        kept = {row - lo: value for row, value in self.kept.items() if row >= lo}
        result = self.detector.score_details(data, ts, exact_from=fill_from - lo, kept=kept)
        probability = calibrate(result.score, self.unit, self.calibration_window)
        keep = slice(fill_from - lo, None)
        calibrated, neglog = np.zeros(n), np.zeros(n)
        calibrated[lo:] = to_anomaly_score(probability)
        neglog[lo:] = -np.log10(probability)
        fresh = suppress(self._judged(calibrated), quiet)  # step 3
        self.anomaly_score[fill_from:] = np.where(fresh, calibrated, SUPPRESSED_FACTOR * calibrated)[fill_from:]
        self.raw[fill_from:] = result.score[keep]
        self.probability[fill_from:] = probability[keep]
        if result.expected is not None:
            if self.expected is None:
                self.expected, self.lower, self.upper = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
            shift = self.shift[fill_from:]
            self.expected[fill_from:] = result.expected[keep] + shift
            self.lower[fill_from:] = result.lower[keep] + shift
            self.upper[fill_from:] = result.upper[keep] + shift
        self.last_result, self.last_lo = result, lo
        return calibrated, neglog, fresh

    def _record(
        self, extent: incidents.Extent, calibrated: np.ndarray, *, resumed: bool = False, masked: bool = True
    ) -> None:
        start, end = extent.start, extent.end
        rows = np.arange(max(start, 0), end + 1)
        reference = extent.reference
        normal = reference.values(rows)
        if not resumed:
            self.alarm[start] = 1
        self.in_incident[rows] = 1
        # After its alarm and until it closes, a row is scored by its distance from the incident's band, held
        # down like a repeat: the same in one pass and across runs, whatever else was rescored.
        held = np.arange(max(start + 1, 0), len(self.x) if extent.closed_at is None else extent.closed_at)
        distance = np.abs((self.work[held] - reference.values(held)) / reference.spread(held)).max(axis=1)
        self.anomaly_score[held] = SUPPRESSED_FACTOR * to_anomaly_score(special.erfc(distance / math.sqrt(2.0)))
        band = self.band_z * reference.spread(rows)[:, 0]
        if self.expected is None:
            n = len(self.x)
            self.expected, self.lower, self.upper = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        self.expected[rows] = normal[:, 0] + self.shift[rows]
        self.lower[rows] = self.expected[rows] - band
        self.upper[rows] = self.expected[rows] + band
        self.events.append(self._event(extent, calibrated, resumed=resumed))
        # From the alarm until it closed (rows decided as they came), nothing is normal for a later reference.
        hidden = np.arange(max(start, 0), len(self.x) if extent.closed_at is None else extent.closed_at)
        if not masked:
            self.clean[hidden] = reference.values(hidden)
            return
        if not resumed and start >= self.last_lo:  # the alarm's own surprise stays in the calibration
            self.kept[start] = self._measured(start)
            self.events[-1].onset_kept = np.asarray(self.kept[start]).tolist()
        if extent.close_reason == incidents.REBASELINED:  # its level is the new normal from here on
            offset = incidents.level_offset(_filled(self.work), extent)
            self.work[end + 1 :] -= offset
            self.clean[end + 1 :] -= offset
            self.shift[end + 1 :] += offset[0]
            self.events[-1].level_offset = offset.tolist()
        self.work[hidden] = reference.values(hidden)  # nor does the detector learn from them
        self.clean[hidden] = reference.values(hidden)

    def _event(self, extent: incidents.Extent, calibrated: np.ndarray, *, resumed: bool) -> Event:
        start, end = extent.start, extent.end
        first = max(start, 0)  # a resumed incident may have opened before these rows
        residual = np.abs(extent.residual)
        peak_offset = int(np.argmax(residual.max(axis=1)))
        peak = first + peak_offset
        column = int(np.argmax(residual[peak_offset]))
        scores = calibrated[first : end + 1]
        strongest = first + int(np.argmax(scores))
        p = float(self.probability[strongest]) if strongest == start else float(10 ** -(scores.max() * SCORE_DECADES))
        value = _row_value(self.values, peak)
        expected, lower, upper = (float(a[peak]) for a in (self.expected, self.lower, self.upper))
        shape = incidents.shape_of(_filled(self.x), extent, column)
        departed = incidents.departed_columns(extent, self.columns, _filled(self.x), self.band_z)
        if not departed and len(self.columns) > 1:
            shape = "relation"
        shown_value = value[column] if isinstance(value, list) else value
        band = (lower, upper) if column == 0 else (None, None)
        if column and self.columns[column] in departed:  # another column's own band, at the same peak row
            band = (departed[self.columns[column]]["lower"], departed[self.columns[column]]["upper"])
        text = incidents.describe(shape, shown_value, *band, end - start + 1, self.columns[column])
        explanation = {
            "text": text, "shape": shape, "expected": expected, "band": [lower, upper],
            "deviation": float(self.x[peak, 0] - expected), "columns": departed,
            **_feature_explanation(self.last_result, first - self.last_lo, value, features_only=True),
        }  # fmt: skip
        distance = float(residual.max()) - self.band_z
        event = Event(
            start=start, end=end, peak=peak, value=value, expected=expected, lower=lower, upper=upper,
            score=float(scores.max()), probability=p, severity=severity_beyond_band(distance, p),
            explanation=explanation, closed_at=extent.closed_at, close_reason=extent.close_reason,
            resumed=resumed, reference=extent.reference, progress=extent.progress,
        )  # fmt: skip
        _stamp(event, self.ts)
        return event


def _filled(x: np.ndarray) -> np.ndarray:
    """Missing values carried forward (leading ones take the first value seen)."""
    if not np.isnan(x).any():
        return x
    frame = pd.DataFrame(x).ffill().bfill()
    return frame.fillna(0.0).to_numpy()


def _stamp(event: Event, ts) -> None:
    if ts is None:
        return
    event.start_ts = ts[event.start] if event.start >= 0 else None  # a resumed incident's start is the caller's
    event.end_ts, event.peak_ts = ts[event.end], ts[event.peak]
    if event.closed_at is not None and event.closed_at < len(ts):
        event.closed_ts = ts[event.closed_at]


def _feature_explanation(result: ScoreResult, i: int, value: Any, *, features_only: bool = False) -> dict[str, Any]:
    """Which of the detector's features (or components) made row ``i`` unusual, strongest first."""
    explanation: dict[str, Any] = {}
    if result.expected is not None and not features_only:
        explanation["expected"] = float(result.expected[i])
    if result.contributions is not None and 0 <= i < len(result.contributions):
        names = result.feature_names or [f"f{j}" for j in range(result.contributions.shape[1])]
        row = np.asarray(result.contributions[i], dtype=float)
        order = np.argsort(-np.abs(row))[:5]
        explanation["features"] = {names[j]: round(float(row[j]), 4) for j in order if np.isfinite(row[j])}
    return explanation


def _row_value(values: Any, i: int) -> Any:
    if hasattr(values, "iloc"):
        row = values.iloc[i]
        return row.to_dict() if hasattr(row, "to_dict") else row
    v = np.asarray(values)[i]
    return v.tolist() if isinstance(v, np.ndarray) else float(v)
