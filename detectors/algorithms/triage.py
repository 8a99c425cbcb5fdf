"""What labels teach about incidents: their likeness, and which new ones are likely false alarms.

An incident is described by a few numbers that a detector knows when it raises or extends one (its
*signature*): its shape, the direction and size of its departure in units of the expected band, how many
points it has lasted so far, and its calibrated score. Two uses:

- ``near_identical``: a new incident that matches one labelled false positive on the same series (same
  shape and direction, size and length within a factor) is suppressed instead of raised again.
- ``Triage``: a logistic regression over signatures, fitted on labelled incidents, with a cut chosen to
  maximise F-beta on them. Incidents it rates below the cut are held back (stored, shown, not raised).
  Its state is plain JSON (coefficients and scaling), like every fitted state here.

No Django here; the callers turn stored incidents or fresh events into signatures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

SHAPES = ("spike", "dip", "level", "variance", "pattern", "seasonality", "drift", "flatline", "relation")
# Near-identical: within these factors of each other (size in band units, length in points).
SIZE_FACTOR = 1.5
LENGTH_FACTOR = 2.0
# A series' own labels count as this many pooled ones when its share of real incidents is estimated.
SERIES_PRIOR_WEIGHT = 2.0


@dataclass(frozen=True)
class Signature:
    shape: str
    direction: int  # +1 above the expected band, -1 below, 0 unknown
    size: float  # |value - expected| / half the band's width
    points: int
    score: float  # calibrated anomaly score 0..1 at the peak (its tail probability, on a log scale)

    @classmethod
    def of(cls, *, explanation: dict | None, value: Any, expected, lower, upper, points, score) -> Signature:
        explanation = explanation or {}
        deviation = explanation.get("deviation")
        if deviation is None and isinstance(value, int | float) and expected is not None:
            deviation = float(value) - float(expected)
        half = (float(upper) - float(lower)) / 2 if upper is not None and lower is not None else None
        size = abs(deviation) / half if deviation is not None and half and half > 0 else 0.0
        direction = 0 if deviation is None else int(np.sign(deviation))
        return cls(str(explanation.get("shape") or ""), direction, float(size), max(int(points or 1), 1), float(score))

    def vector(self, series_rate: float) -> list[float]:
        shapes = [float(self.shape == shape) for shape in SHAPES]
        size, length = math.log1p(min(self.size, 1e6)), math.log(self.points)
        return [self.score, size, length, float(self.direction), series_rate, *shapes]


def near_identical(a: Signature, b: Signature) -> bool:
    """Same shape and direction, size within SIZE_FACTOR and length within LENGTH_FACTOR of each other."""
    if a.shape != b.shape or a.direction != b.direction:
        return False
    if not _within(a.size, b.size, SIZE_FACTOR):
        return False
    return _within(a.points, b.points, LENGTH_FACTOR)


def distance(a: Signature, b: Signature) -> float:
    """How unalike two incidents are (0: alike), for "most similar labelled incidents"."""
    return (
        abs(math.log1p(a.size) - math.log1p(b.size)) + abs(math.log(a.points) - math.log(b.points)) / 2
        + (a.shape != b.shape) + (a.direction != b.direction) + abs(a.score - b.score)
    )  # fmt: skip


def _within(x: float, y: float, factor: float) -> bool:
    lo, hi = sorted((max(x, 1e-9), max(y, 1e-9)))
    return hi / lo <= factor


def series_rates(series: list[Any], positive: np.ndarray) -> np.ndarray:
    """Per label (in time order): the share of real incidents among the *earlier* labels of its series, shrunk
    towards the pooled share. Only earlier ones, as when a new incident is judged: a label's own verdict in
    its series' share would teach the model the answer it is asked to predict."""
    positive = np.asarray(positive, float)
    pooled = float(positive.mean()) if len(positive) else 0.5
    keys = np.asarray([str(s) for s in series])
    rates = np.empty(len(positive))
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        earlier_total = np.concatenate([[0.0], np.cumsum(positive[rows])[:-1]])
        earlier_count = np.arange(len(rows))
        rates[rows] = (earlier_total + SERIES_PRIOR_WEIGHT * pooled) / (earlier_count + SERIES_PRIOR_WEIGHT)
    return rates


def series_rate_table(series: list[Any], positive: np.ndarray) -> tuple[dict[str, float], float]:
    """{series: its shrunk share of real incidents over all its labels}, and the pooled share (series without
    labels), for judging new incidents."""
    positive = np.asarray(positive, float)
    pooled = float(positive.mean()) if len(positive) else 0.5
    keys = np.asarray([str(s) for s in series])
    table = {}
    for key in np.unique(keys):
        members = positive[keys == key]
        table[str(key)] = float((members.sum() + SERIES_PRIOR_WEIGHT * pooled) / (len(members) + SERIES_PRIOR_WEIGHT))
    return table, pooled


def f_beta(tp: float, fp: float, fn: float, beta: float) -> float:
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / denominator if denominator else 0.0


@dataclass
class Triage:
    """A logistic regression over signatures, and the probability below which an incident is held back."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    cut: float
    series_rates: dict[str, float]
    pooled_rate: float

    @classmethod
    def fit(cls, signatures: list[Signature], series: list[Any], positive, *, beta: float = 1.0,
            missed: int = 0) -> Triage:  # fmt: skip
        """Fit on labelled incidents; ``missed`` anomalies no incident found count as misses at every cut."""
        positive = np.asarray(positive, bool)
        rates = series_rates(series, positive)
        X = np.array([s.vector(r) for s, r in zip(signatures, rates, strict=True)])
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        X = (X - mean) / scale
        model = _regression().fit(X, positive)
        table, pooled = series_rate_table(series, positive)
        triage = cls(mean.tolist(), scale.tolist(), model.coef_[0].tolist(), float(model.intercept_[0]), 0.0,
                     table, pooled)  # fmt: skip
        triage.cut = best_cut(_out_of_fold(X, positive, model), positive, beta, missed)
        return triage

    def probability(self, signatures: list[Signature], series: list[Any], *, rates=None) -> np.ndarray:
        """P(real incident) for each signature."""
        if not signatures:
            return np.empty(0)
        if rates is None:
            rates = [self.series_rates.get(str(s), self.pooled_rate) for s in series]
        X = (np.array([s.vector(r) for s, r in zip(signatures, rates, strict=True)]) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(X @ np.asarray(self.coef) + self.intercept)))

    def keeps(self, signatures: list[Signature], series: list[Any]) -> np.ndarray:
        return self.probability(signatures, series) >= self.cut

    def to_state(self) -> dict:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
                "cut": self.cut, "series_rates": self.series_rates, "pooled_rate": self.pooled_rate}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> Triage | None:
        return cls(**state) if state else None


def _regression() -> LogisticRegression:
    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)


def _out_of_fold(X: np.ndarray, positive: np.ndarray, fitted: LogisticRegression, folds: int = 5) -> np.ndarray:
    """Each label's probability from a model that did not see it (contiguous folds, as the labels are in time
    order), so the cut is chosen on honest figures; in-sample ones where a fold would lack a verdict."""
    probability = fitted.predict_proba(X)[:, 1]
    for rows in np.array_split(np.arange(len(X)), min(folds, len(X))):
        rest = np.setdiff1d(np.arange(len(X)), rows)
        if len(rows) and len(np.unique(positive[rest])) == 2:
            probability[rows] = _regression().fit(X[rest], positive[rest]).predict_proba(X[rows])[:, 1]
    return probability


def best_cut(probability: np.ndarray, positive: np.ndarray, beta: float, missed: int = 0) -> float:
    """The cut maximising F-beta over labelled incidents (0: keep all, when nothing does better), halfway
    between the lowest probability kept and the highest one held back, so a new incident a little below
    the ones kept is not held back for that alone."""
    positive = np.asarray(positive, bool)
    levels = np.unique(probability)
    best, best_score = 0.0, f_beta(positive.sum(), (~positive).sum(), missed, beta)
    for i, cut in enumerate(levels[1:], start=1):
        kept = probability >= cut
        score = f_beta((kept & positive).sum(), (kept & ~positive).sum(), (~kept & positive).sum() + missed, beta)
        if score > best_score + 1e-12:
            best, best_score = float((levels[i - 1] + cut) / 2), score
    return best


def best_threshold(scores: np.ndarray, positive: np.ndarray, current: float, beta: float, missed: int = 0) -> float:
    """The alarm threshold, at or above ``current``, that maximises F-beta over labelled incidents.

    Only raising is learnt: incidents a lower threshold would add were never raised, so never labelled.
    """
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    best, best_score = current, f_beta(positive.sum(), (~positive).sum(), missed, beta)
    for threshold in np.unique(scores[scores > current]):
        kept = scores >= threshold
        score = f_beta((kept & positive).sum(), (kept & ~positive).sum(), (~kept & positive).sum() + missed, beta)
        if score > best_score + 1e-12:
            best, best_score = float(threshold), score
    return best
