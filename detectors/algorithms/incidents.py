"""Incidents: an alarm opens one, and it stays open as long as the data stays away from normal.

Alarms come from the detector's score, and from a stuck sensor (``stuck_onsets``): a value repeated exactly
for longer than the series' history makes plausible, however ordinary the value.

Normal is frozen at the alarm row ``s`` from the rows before it (already cleaned of earlier incidents),
per column:

- reference: with a seasonal period ``m``, the median of the same phase in the last ``REFERENCE_CYCLES``
  cycles, repeated; without one, the median of the last ``LEVEL_ROWS`` rows. On a column that trends, the
  reference goes on with the trend: its slope is the median change per row over the stretch before ``s``
  (seasonal differences with a period), and it is used when, frozen at earlier rows, the trended reference
  foretold what followed clearly better than the flat one (so a trend that continues is not a fault);
- spread: the robust spread of that reference's errors, measured on the stretch before ``s`` by freezing it
  at earlier rows, as a function of the lead time (so the band of a series that wanders widens the longer
  the incident lasts, and that of a stationary series does not);
- tails: how often errors of each size came at each lead; a distance counts only as far as distances that
  large were rare (a column that steps between modes and stays cannot hold an incident open);
- flat: a row that repeats the previous value exactly, where repeats were rare before ``s``, or that ends a
  run of repeats as long as a stuck one (``stuck_onsets``), or whose recent spread falls far below anything
  seen before ``s``, is flat (a stuck sensor);
- noisy: a row whose recent steps are larger than nearly all such stretches before ``s`` (a variance burst).

Each row from ``s`` on adds evidence ``min(|r|, EVIDENCE_CAP) - EVIDENCE_OFFSET`` where ``r`` is its
distance from the reference in scale units (with several columns, the largest, corrected for their number):
about -1 per row of normal data and positive for rows two scales or more away. A flat or noisy row adds at
least +1, and a row the detector itself still scores above the threshold adds evidence in proportion. The
incident ends at the row where the running sum of evidence peaks, and it closes once the sum has fallen
``close_after`` below that peak: after about ``close_after`` rows back inside the band. With ``adapt_after``
> 0, an incident still open that many rows after its alarm closes as "rebaselined": its level becomes the new
normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .rolling import IQR_TO_SIGMA, scale_floor

REFERENCE_CYCLES = 3
LEVEL_ROWS = 20
SCALE_ROWS = 400  # the stretch before the alarm whose spread tells what "flat" is
MAX_LEAD = 400  # the reference's errors are measured at leads up to this many rows
LEAD_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 400)
ORIGIN_STEP = 5
HISTORY_ROWS = 10_000  # the frozen reference's errors are measured at origins over this many rows before the alarm
MAX_ORIGINS = 300  # at most this many origins (evenly spaced, at least ORIGIN_STEP apart)
MIN_BUCKET_ERRORS = 10
SLOPE_ROWS = 100  # without a period, the slope is the median change over a lag of rows, across this many rows
# A column's distance from its reference counts as evidence only as far as distances that large were rare at
# that lead before the alarm: the errors' upper quantiles at these tail probabilities are kept per lead bucket.
# A column that often steps to a new level and stays (a state, a mode) then cannot hold an incident open.
TAIL_P = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
TAIL_Z = tuple(float(special.ndtri(1 - p / 2)) for p in TAIL_P)  # the |z| a normal error exceeds that often
MIN_SLOPE_DIFFS = 5
TREND_GAIN = 0.8  # a trended reference is used when its errors are below this share of the flat one's
EVIDENCE_CAP = 10.0
EVIDENCE_OFFSET = 1.8  # E|r| = 0.8 for normal rows, so each adds about -1
FLAT_WINDOW = 10
FLAT_RATIO = 0.1  # a row is flat when its recent spread is below this share of the usual spread
RARE_REPEATS = 0.02  # below this share of exact repeats before the alarm, a repeated value means stuck
STUCK_P = 1e-6  # a run of repeats this unlikely, given how often the series repeated before, is a stuck sensor
# A row whose last NOISY_WINDOW steps (changes from the row before) have a median above any but the top NOISY_P
# (per column) of such medians over the NOISY_HISTORY rows before the alarm is noisy: a variance burst goes on
# even where no single row is far out. Steps, not distances from the reference: they do not grow because the
# reference is a little off; and against the series' own history, as volatility comes and goes in many series.
NOISY_WINDOW = 30
NOISY_P = 0.01
NOISY_HISTORY = 4000
DEFAULT_CLOSE_AFTER = 10
DEPARTED_SPREAD = 3.0  # a column whose mean squared distance (scales) is this high departed (normal noise: about 1)
SEARCH_BLOCK = 512

RECOVERED = "recovered"
REBASELINED = "rebaselined"


@dataclass
class Reference:
    """Normal behaviour frozen at an alarm: a repeating profile per column and its scale."""

    onset: int
    profile: np.ndarray  # (m or 1, d): the value expected at onset + k is profile[k % len(profile)]
    scales: np.ndarray  # (MAX_LEAD, d): the spread of the reference's errors k rows after the onset
    growth: np.ndarray  # (d,) whether that spread kept growing with the lead (then it grows on beyond)
    flat_spread: np.ndarray | None  # (d,) rows whose recent spread is below this are flat; None: never
    repeats_rare: np.ndarray  # (d,) whether exact repeats were rare before the onset (then a repeat is stuck)
    slope: np.ndarray | None = None  # (d,) change per row of a trending column (None or 0: no trend)
    anchor: float = 0.0  # rows from the profile's centre to the onset (where the trend is measured from)
    tails: np.ndarray | None = None  # (lead buckets, TAIL_P, d) upper quantiles of |error| (NaN: not measured)
    noisy_step: np.ndarray | None = None  # (d,) rows whose recent median |step| exceeds this are noisy
    stuck_after: np.ndarray | None = None  # (d,) a run of exact repeats this long (or longer) is stuck

    @property
    def scale(self) -> np.ndarray:
        """(d,) the spread at the onset."""
        return self.scales[0]

    def values(self, rows: np.ndarray) -> np.ndarray:
        out = self.profile[(rows - self.onset) % len(self.profile)]
        if self.slope is None or not self.slope.any():
            return out
        return out + (np.asarray(rows) - self.onset + self.anchor)[:, None] * self.slope

    def to_state(self) -> dict[str, Any]:
        """JSON-safe arrays (the onset row is the caller's to keep)."""
        return {
            "profile": self.profile.tolist(), "scales": _scales_stored(self.scales), "growth": self.growth.tolist(),
            "flat_spread": None if self.flat_spread is None else self.flat_spread.tolist(),
            "repeats_rare": self.repeats_rare.tolist(),
            "slope": None if self.slope is None else self.slope.tolist(), "anchor": self.anchor,
            "tails": None if self.tails is None else np.nan_to_num(self.tails, nan=-1.0).tolist(),  # -1: unknown
            "noisy_step": None if self.noisy_step is None else self.noisy_step.tolist(),
            "stuck_after": None if self.stuck_after is None else np.nan_to_num(self.stuck_after, posinf=-1).tolist(),
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any], onset: int) -> Reference:
        flat, slope, tails = state.get("flat_spread"), state.get("slope"), state.get("tails")
        return cls(
            onset=onset, profile=np.array(state["profile"], dtype=float), scales=_scales_loaded(state["scales"]),
            growth=np.array(state["growth"], dtype=bool), flat_spread=None if flat is None else np.array(flat, float),
            repeats_rare=np.array(state["repeats_rare"], dtype=bool),
            slope=None if slope is None else np.array(slope, dtype=float), anchor=float(state.get("anchor", 0.0)),
            tails=None if tails is None else np.where(np.array(tails, dtype=float) < 0, np.nan, tails),
            noisy_step=None if state.get("noisy_step") is None else np.array(state["noisy_step"], dtype=float),
            stuck_after=_stuck_loaded(state.get("stuck_after")),
        )  # fmt: skip

    def spread(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) the expected spread of each row around ``values(rows)``."""
        lead = rows - self.onset
        out = self.scales[np.minimum(lead, MAX_LEAD - 1)]
        beyond = lead >= MAX_LEAD
        if beyond.any():
            factor = np.sqrt(lead[beyond] / (MAX_LEAD - 1))[:, None]
            out[beyond] = np.where(self.growth, out[beyond] * factor, out[beyond])
        return out

    def surprise(self, rows: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """(len(rows), d) the most a distance (in scales) can count, given how often errors that large came
        at the same lead before the onset: unbounded beyond anything seen, else the normal |z| of that rate."""
        out = np.full(distance.shape, np.inf)
        if self.tails is None:
            return out
        bucket = np.clip(np.searchsorted(LEAD_BUCKETS, rows - self.onset, side="right") - 1, 0, len(self.tails) - 1)
        tails = self.tails[bucket]  # (rows, P, d)
        error = (distance * self.spread(rows))[:, None, :]
        below = (tails < error * (1 - 1e-9)).sum(axis=1)  # quantiles the error exceeds
        known = np.isfinite(tails).all(axis=1)
        capped = known & (below < len(TAIL_P))
        out[capped] = np.array(TAIL_Z)[below[capped]]
        return out


_BUCKET_WIDTHS = np.diff(LEAD_BUCKETS)


def _scales_stored(scales: np.ndarray) -> list | dict:
    """The spread by lead as stored: one value per lead bucket when it is constant within each (as it is unless
    it grows beyond the leads measured), else every lead's."""
    knots = scales[list(LEAD_BUCKETS[:-1])]
    if np.array_equal(np.repeat(knots, _BUCKET_WIDTHS, axis=0), scales):
        return {"buckets": knots.tolist()}
    return scales.tolist()


def _scales_loaded(stored: list | dict) -> np.ndarray:
    if isinstance(stored, dict):
        return np.repeat(np.array(stored["buckets"], dtype=float), _BUCKET_WIDTHS, axis=0)
    return np.array(stored, dtype=float)


def _stuck_loaded(stored: list | None) -> np.ndarray | None:
    """A stored ``stuck_after``: -1 stands for never (a column made of repeats)."""
    if stored is None:
        return None
    values = np.array(stored, dtype=float)
    return np.where(values < 0, np.inf, values)


@dataclass
class Prior:
    """An incident found before the rows being scored: its rows are masked, and an open one is resumed."""

    start: int  # row of its alarm (negative when before the first row given)
    reference: Reference
    closed_at: int | None  # row it closed at; None while it is open
    end: int | None = None  # its last abnormal row (so far, while open)
    progress: Progress | None = None  # an open one's progress, to resume it
    level_offset: list[float] | None = None  # a re-baselined one: the new level's offset, removed after it
    onset_kept: Any = None  # what the detector measured at its alarm (raw features or raw score), kept


@dataclass
class Extent:
    start: int
    end: int  # last row of the incident
    closed_at: int | None  # the row at which it closed (None: still open at the last row)
    close_reason: str | None
    residual: np.ndarray = field(repr=False)  # (rows from max(start, 0) to end, d), in scale units
    reference: Reference = field(repr=False)
    progress: Progress | None = None  # set while it is still open


def frozen_reference(x: np.ndarray, onset: int, period: int) -> Reference:
    """Normal behaviour of ``x`` (n, d) as seen from the rows before ``onset``."""
    m = period if period >= 2 and onset >= 2 * period else 0
    profile, anchor = _profile(x, onset, m)
    curves = [_scale_curve(x[:, c], onset, m, anchor) for c in range(x.shape[1])]
    scales = np.column_stack([curve for curve, _, _, _ in curves])
    growth = np.array([grows for _, grows, _, _ in curves])
    slope = np.array([slope for _, _, slope, _ in curves])
    tails = np.stack([tails for _, _, _, tails in curves], axis=-1)
    flat_spread = _flat_spread(x, onset, scales[0])
    return Reference(
        onset, profile, scales, growth, flat_spread, repeats_rare=_repeats_rare(x, onset), slope=slope, anchor=anchor,
        tails=tails, noisy_step=_noisy_step(x, onset), stuck_after=_stuck_after(x, onset),
    )  # fmt: skip


def _noisy_step(x: np.ndarray, onset: int) -> np.ndarray | None:
    medians = _step_medians(x[max(0, onset - NOISY_HISTORY) : onset])
    medians = medians[np.isfinite(medians).all(axis=1)]
    if len(medians) < 3 * NOISY_WINDOW:
        return None
    return np.quantile(medians, 1 - NOISY_P / x.shape[1], axis=0)


def _step_medians(x: np.ndarray) -> np.ndarray:
    """(len(x), d) the median |change from the row before| over each row's last NOISY_WINDOW rows (NaN before)."""
    steps = np.abs(np.diff(x, axis=0, prepend=np.nan))
    return pd.DataFrame(steps).rolling(NOISY_WINDOW).median().to_numpy()


def _profile(x: np.ndarray, t: int, m: int) -> tuple[np.ndarray, float]:
    """(the repeating profile, how many rows its centre lies before ``t``)."""
    if m:
        cycles = min(REFERENCE_CYCLES, t // m)
        stacked = np.stack([x[t - c * m : t - c * m + m] for c in range(1, cycles + 1)])
        return np.median(stacked, axis=0), (cycles + 1) / 2 * m
    rows = min(LEVEL_ROWS, max(t, 1))
    return np.median(x[max(0, t - LEVEL_ROWS) : max(t, 1)], axis=0, keepdims=True), (rows + 1) / 2


def _scale_curve(x: np.ndarray, onset: int, m: int, anchor: float) -> tuple[np.ndarray, bool, float, np.ndarray]:
    """(spread of the frozen reference's errors at each lead 0..MAX_LEAD-1, whether it grows with the lead,
    the reference's slope per row: 0 unless a trended reference foretold the rows before ``onset`` better,
    the upper quantiles of |error| per lead bucket at TAIL_P).

    Measured before ``onset``: the reference is frozen at earlier origins and compared with what followed.
    Spreads are pooled over lead buckets, never shrink with the lead, and never fall below the data's floor.
    A series that wanders gets wider bands the longer an incident lasts; a stationary one does not.
    """
    floor = scale_floor(x[:onset]) if onset else 1e-9
    first_origin = REFERENCE_CYCLES * m if m else LEVEL_ROWS // 2
    lo = max(first_origin, onset - HISTORY_ROWS)
    origins = np.arange(lo, onset, max(ORIGIN_STEP, (onset - lo) // MAX_ORIGINS))
    curve = np.full(MAX_LEAD, np.nan)
    tails = np.full((len(LEAD_BUCKETS) - 1, len(TAIL_P)), np.nan)
    slope = 0.0
    if len(origins) >= 3:
        errors = _reference_errors(x, origins, onset, m)
        lag = m or max(1, min(LEVEL_ROWS, onset // 4))  # a short history: a shorter lag
        slopes = _slopes(x, origins, m, lag)
        known = np.isfinite(slopes)
        if known.sum() >= 3 and slopes[known].any():
            ahead = np.arange(MAX_LEAD)[None, :] + anchor
            trended = errors[known] - slopes[known, None] * ahead
            if np.nanmedian(np.abs(trended)) < TREND_GAIN * np.nanmedian(np.abs(errors[known])):
                errors, slope = trended, float(_slopes(x, np.array([onset]), m, lag)[0])
        for b, (lo, hi) in enumerate(zip(LEAD_BUCKETS[:-1], LEAD_BUCKETS[1:], strict=True)):
            bucket = errors[:, lo:hi]
            bucket = bucket[np.isfinite(bucket)]
            if len(bucket) >= MIN_BUCKET_ERRORS:
                curve[lo:hi] = _robust_spread(bucket)
                tails[b] = np.quantile(np.abs(bucket), 1 - np.array(TAIL_P))
    known = np.isfinite(curve)
    if not known.any():  # too little history (or too many gaps) to measure errors by lead: one spread
        history = x[:onset][np.isfinite(x[:onset])]
        spread = _robust_spread(history - np.median(history)) if len(history) > 2 else 0.0
        return np.full(MAX_LEAD, max(spread, floor)), False, 0.0, tails
    first, last = int(np.flatnonzero(known)[0]), int(np.flatnonzero(known)[-1])
    curve[:first] = curve[first]  # leads too short to measure (few origins): as the shortest measured
    curve[last + 1 :] = curve[last]
    curve = np.maximum.accumulate(np.maximum(np.nan_to_num(curve, nan=0.0), floor))
    grows = bool(curve[last] > 2 * curve[0])
    if grows and last < MAX_LEAD - 1:
        tail = np.arange(last + 1, MAX_LEAD)
        curve[tail] = curve[last] * np.sqrt(tail / max(last, 1))
    return curve, grows, (slope if np.isfinite(slope) else 0.0), tails


def _slopes(x: np.ndarray, origins: np.ndarray, m: int, lag: int) -> np.ndarray:
    """The change per row seen before each origin: the median difference over a lag (a cycle with a period,
    else ``lag`` rows) across the last cycle (else SLOPE_ROWS rows, or as many as there are), divided by the
    lag. NaN with fewer than MIN_SLOPE_DIFFS differences."""
    span = m or SLOPE_ROWS
    out = np.full(len(origins), np.nan)
    ends = origins - lag  # each origin's differences end before this index
    usable = ends > 0
    if not usable.any():
        return out
    first = max(0, int(ends[usable].min()) - span)
    diffs = x[first + lag : int(ends.max()) + lag] - x[first : int(ends.max())]  # diffs[j] = x[first + j + lag] - ...
    medians = pd.Series(diffs).rolling(span, min_periods=span if m else MIN_SLOPE_DIFFS).median().to_numpy()
    out[usable] = medians[ends[usable] - 1 - first] / lag
    return out


def _reference_errors(x: np.ndarray, origins: np.ndarray, onset: int, m: int) -> np.ndarray:
    """(origins, MAX_LEAD) errors of the reference frozen at each origin, NaN where the lead reaches the onset.

    The same reference as ``_profile`` (origins start REFERENCE_CYCLES cycles in, so every cycle exists),
    for all origins at once.
    """
    leads = np.arange(MAX_LEAD)
    ahead = origins[:, None] + leads[None, :]
    if m:
        cycles = [x[origins[:, None] - c * m + (leads % m)[None, :]] for c in range(1, REFERENCE_CYCLES + 1)]
        reference = np.median(np.stack(cycles), axis=0)
    else:
        level = pd.Series(x).rolling(LEVEL_ROWS, min_periods=1).median().to_numpy()
        reference = level[origins - 1][:, None]
    return np.where(ahead < onset, x[np.minimum(ahead, onset - 1)] - reference, np.nan)


def _robust_spread(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return 0.0
    q75, q25 = np.percentile(values, [75, 25])
    spread = (q75 - q25) / IQR_TO_SIGMA
    return float(spread if spread > 0 else np.std(values))


def rolling_spread(x: np.ndarray) -> np.ndarray:
    """Standard deviation of each row's last FLAT_WINDOW rows (NaN until there are that many)."""
    return pd.DataFrame(x).rolling(FLAT_WINDOW).std().to_numpy()


def _flat_spread(x: np.ndarray, onset: int, scale: np.ndarray) -> np.ndarray | None:
    before = rolling_spread(x[max(0, onset - SCALE_ROWS) : onset])
    before = before[np.isfinite(before).all(axis=1)]
    if len(before) < 3 * FLAT_WINDOW:
        return None
    usual = np.median(before, axis=0)
    flat = FLAT_RATIO * np.maximum(usual, scale)
    if (np.quantile(before, 0.01, axis=0) <= flat).any():
        return None  # the series is sometimes this flat when normal
    return flat


def stuck_onsets(x: np.ndarray) -> np.ndarray:
    """(n,) rows at which a column's run of exact repeats becomes one its history makes implausible: a stuck
    sensor raises an alarm of its own, however ordinary the stuck value. Missing values never count.

    Over the NOISY_HISTORY rows before the run, with ``q`` the share of rows that repeated the one before, the
    run must reach at least FLAT_WINDOW rows, twice the longest run seen there, and a length that repeats at
    rate ``q`` would reach by chance with probability below STUCK_P."""
    n = len(x)
    out = np.zeros(n, dtype=bool)
    if n <= 3 * FLAT_WINDOW:
        return out
    runs = repeat_runs(x)
    rows = np.arange(n)
    for c in range(x.shape[1]):
        run = runs[:, c]
        counted = pd.Series(repeats(x, 0, n)[:, c].astype(float)).rolling(NOISY_HISTORY, min_periods=3 * FLAT_WINDOW)
        q = ((counted.sum() + 1) / (counted.count() + 2)).shift(1).to_numpy()  # before each row
        longest = pd.Series(run).rolling(NOISY_HISTORY, min_periods=1).max().shift(1).to_numpy()
        begin = np.clip(rows - run + 1, 0, n - 1)  # the run's first repeat: its history ends just before
        out |= (run > 0) & (run == _stuck_length(q[begin], longest[begin]))
    return out


def repeat_runs(x: np.ndarray) -> np.ndarray:
    """(n, d) how many rows in a row each column has repeated its value exactly, ending at each row."""
    same = repeats(x, 0, len(x))
    rows = np.arange(len(x))[:, None]
    last_change = np.maximum.accumulate(np.where(same, 0, rows), axis=0)
    return rows - last_change


def _stuck_length(q: np.ndarray, longest: np.ndarray) -> np.ndarray:
    """The run of repeats that is stuck, given the share ``q`` of repeats and the longest run seen before."""
    with np.errstate(divide="ignore", invalid="ignore"):
        chance = np.ceil(np.log(STUCK_P) / np.log(q))
    return np.fmax(np.fmax(FLAT_WINDOW, 2 * longest), chance)


def _stuck_after(x: np.ndarray, onset: int) -> np.ndarray | None:
    """(d,) the run of repeats that is stuck, from the NOISY_HISTORY rows before the onset (None: too few)."""
    lo = max(0, onset - NOISY_HISTORY)
    if onset - lo < 3 * FLAT_WINDOW:
        return None
    q = (repeats(x, lo, onset).sum(axis=0) + 1) / (onset - lo + 2)
    return _stuck_length(q, repeat_runs(x[lo:onset]).max(axis=0))


def repeats(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(hi - lo, d) whether each row repeats the previous one exactly."""
    before = x[max(lo - 1, 0) : hi]
    same = np.abs(np.diff(before, axis=0)) <= 1e-12 * np.maximum(np.abs(before[1:]), 1.0)
    return same if lo > 0 else np.vstack([np.zeros((1, x.shape[1]), dtype=bool), same])


def _repeats_rare(x: np.ndarray, onset: int) -> np.ndarray:
    lo = max(1, onset - SCALE_ROWS)
    if onset - lo < 3 * FLAT_WINDOW:
        return np.zeros(x.shape[1], dtype=bool)
    return repeats(x, lo, onset).mean(axis=0) < RARE_REPEATS


@dataclass
class Progress:
    """How far an open incident has been followed: enough to resume it on later rows."""

    next_row: int  # the first row not yet judged
    total: float  # running sum of evidence
    best: float  # its peak so far
    best_row: int  # the row of that peak: the incident's end so far


def find_extent(
    x: np.ndarray,
    onset: int,
    reference: Reference,
    *,
    score_evidence: np.ndarray | None = None,
    close_after: int = DEFAULT_CLOSE_AFTER,
    adapt_after: int = 0,
    progress: Progress | None = None,
) -> Extent:
    """Where the incident that opens at ``onset`` ends (see the module docstring).

    ``score_evidence`` (n,): the detector's own score at each row relative to the threshold (1 = at it),
    so an incident the band cannot see (a broken relation between columns) lasts while the score says so.
    ``progress``: resume an incident followed by an earlier call up to ``progress.next_row`` (rows keep
    their numbers: ``onset`` may then lie before row 0 of ``x``).
    """
    n = len(x)
    progress = progress or Progress(next_row=onset, total=0.0, best=0.0, best_row=onset)
    total, best, best_row = progress.total, progress.best, progress.best_row
    stop = n if adapt_after <= 0 else min(n, onset + adapt_after)
    lo = progress.next_row
    while lo < stop:
        hi = min(stop, lo + SEARCH_BLOCK)
        rows = np.arange(lo, hi)
        residual = (x[lo:hi] - reference.values(rows)) / reference.spread(rows)
        distance = np.minimum(np.abs(residual), reference.surprise(rows, np.abs(residual)))
        evidence = _evidence(x, lo, hi, distance, reference, score_evidence)
        evidence = np.where(_noisy(x, lo, hi, onset, reference), np.maximum(evidence, 1.0), evidence)
        sums = total + np.cumsum(evidence)
        peaks = np.maximum(best, np.maximum.accumulate(sums))
        closing = np.flatnonzero(peaks - sums >= close_after)
        if len(closing):
            k = int(closing[0])
            window = np.concatenate([[best], sums[: k + 1]])
            last_peak = len(window) - 1 - int(np.argmax(window[::-1]))
            end = best_row if last_peak == 0 else lo + last_peak - 1
            return _extent(x, onset, end, lo + k, RECOVERED, reference)
        at_peak = np.flatnonzero(sums >= peaks)
        if len(at_peak):
            best_row = lo + int(at_peak[-1])
        best, total = float(peaks[-1]), float(sums[-1])
        lo = hi
    if stop < n or (adapt_after > 0 and lo >= onset + adapt_after):
        return _extent(x, onset, max(stop, lo) - 1, max(stop, lo), REBASELINED, reference)
    extent = _extent(x, onset, max(best_row, onset), None, None, reference)
    extent.progress = Progress(next_row=max(lo, n), total=total, best=best, best_row=best_row)
    return extent


def _evidence(x, lo, hi, distance, reference: Reference, score_evidence) -> np.ndarray:
    evidence = np.minimum(_joint_distance(distance), EVIDENCE_CAP) - EVIDENCE_OFFSET
    flat = (repeats(x, lo, hi) & reference.repeats_rare).any(axis=1)
    if reference.stuck_after is not None and np.isfinite(reference.stuck_after).any():
        longest = reference.stuck_after[np.isfinite(reference.stuck_after)].max()
        first = max(0, lo - int(longest))  # runs are counted from here: as far back as any needs
        flat |= (repeat_runs(x[first:hi])[lo - first :] >= reference.stuck_after).any(axis=1)
    if reference.flat_spread is not None:
        spread = rolling_spread(x[max(0, lo - FLAT_WINDOW + 1) : hi])[-(hi - lo) :]
        flat |= (spread < reference.flat_spread).any(axis=1)
    evidence = np.where(flat, np.maximum(evidence, 1.0), evidence)
    if score_evidence is not None:
        evidence = np.maximum(evidence, np.minimum(score_evidence[lo:hi], EVIDENCE_CAP) - 1.0)
    return evidence


def _noisy(x: np.ndarray, lo: int, hi: int, onset: int, reference: Reference) -> np.ndarray:
    """(hi - lo,) whether each row is noisy (see NOISY_WINDOW)."""
    if reference.noisy_step is None:
        return np.zeros(hi - lo, dtype=bool)
    first = max(0, lo - NOISY_WINDOW)  # the window may reach back before the alarm
    medians = _step_medians(x[first:hi])[lo - first :]
    with np.errstate(invalid="ignore"):
        return (medians > reference.noisy_step).any(axis=1)


def _joint_distance(distance: np.ndarray) -> np.ndarray:
    """(rows,) the distance over all columns, as one normal |z|: the largest, corrected for the number of columns
    (Bonferroni), so the noise of many columns does not look like a fault that goes on."""
    d = distance.shape[1]
    if d == 1:
        return distance[:, 0]
    p = np.minimum(special.erfc(distance.max(axis=1) / np.sqrt(2.0)) * d, 1.0)
    return np.sqrt(2.0) * special.erfcinv(p)


def _extent(x, onset, end, closed_at, reason, reference) -> Extent:
    first = max(onset, 0)
    rows = np.arange(first, max(end, first) + 1)
    residual = (x[rows] - reference.values(rows)) / reference.spread(rows)
    return Extent(onset, end, closed_at, reason, residual, reference)


def level_offset(x: np.ndarray, extent: Extent, rows: int = 50) -> np.ndarray:
    """(d,) how far the last ``rows`` rows of an incident sit from its reference: the new level's offset."""
    tail = np.arange(max(extent.start, extent.end - rows + 1), extent.end + 1)
    return np.median(x[tail] - extent.reference.values(tail), axis=0)


# --- what broke, in words ---------------------------------------------------------------------

SHAPES = {
    "spike": "a spike",
    "level": "a level shift",
    "drift": "a drift",
    "variance": "a variance burst",
    "flatline": "a flatline",
    "seasonality": "a loss of its seasonal pattern",
    "relation": "a broken relation between columns",
    "pattern": "an unusual pattern",
}


def shape_of(x: np.ndarray, extent: Extent, column: int) -> str:
    """What broke in ``column`` during the incident: one of SHAPES."""
    r = extent.residual[:, column]
    rows = len(r)
    if rows <= 2:
        return "spike" if np.abs(r).max() > 3 else "pattern"
    ref = extent.reference
    first = max(extent.start, 0)
    if ref.repeats_rare[column] and repeats(x, first, extent.end + 1)[:, column].mean() > 0.5:
        return "flatline"
    if ref.flat_spread is not None:
        spread = rolling_spread(x[first : extent.end + 1, column : column + 1])[:, 0]
        if np.nanmedian(spread) < ref.flat_spread[column] if np.isfinite(spread).any() else False:
            return "flatline"
    mean, sd = float(np.mean(r)), float(np.std(r))
    profile = ref.profile[:, column]
    if len(profile) > 2 and np.std(profile) > 2 * ref.scale[column] and rows >= len(profile) // 2:
        expected = ref.values(np.arange(first, extent.end + 1))[:, column]
        swing = (expected - np.mean(profile)) / ref.scale[column]
        if np.corrcoef(r, swing)[0, 1] < -0.6:
            return "seasonality"
    if rows >= 10 and abs(np.corrcoef(r, np.arange(rows))[0, 1]) > 0.7 and abs(r[-1]) > abs(r[0]):
        return "drift"
    if abs(mean) >= 2 and abs(mean) >= sd:
        return "level"
    if sd >= 2:
        return "variance"
    return "pattern"


def departed_columns(
    extent: Extent, names: list[str], x: np.ndarray | None = None, band_z: float = 3.0
) -> dict[str, dict[str, float]]:
    """Columns that left their band during the incident, with how far (median and peak, in scale units) and,
    given the data ``x`` (n, d), the column's value at its own peak with the expected value and band there.

    A short incident: a column that went 3 scales out. A longer one: a column whose level moved (median 2 scales
    out) or whose spread grew (mean square above DEPARTED_SPREAD), not one whose noise touched 3 scales once."""
    out: dict[str, dict[str, float]] = {}
    first = max(extent.start, 0)
    for c, name in enumerate(names):
        r = extent.residual[:, c]
        at = int(np.argmax(np.abs(r)))
        peak, median = float(r[at]), float(np.median(r))
        if len(r) <= 3:
            departed = abs(peak) >= 3
        else:
            departed = abs(median) >= 2 or float(np.mean(np.minimum(r**2, 100.0))) >= DEPARTED_SPREAD
        if not departed:
            continue
        out[name] = {"median_sigma": round(median, 2), "peak_sigma": round(peak, 2)}
        if x is not None:  # in the data's own frame: the value less its distance from the reference
            row = first + at
            spread = float(extent.reference.spread(np.array([row]))[0, c])
            value = float(x[row, c])
            expected = value - peak * spread
            out[name].update(value=value, expected=expected, lower=expected - band_z * spread,
                             upper=expected + band_z * spread)  # fmt: skip
    return out


def describe(shape: str, value: Any, lower: float | None, upper: float | None, rows: int, column: str) -> str:
    """One sentence: what the value was, what was expected, what broke."""
    where = f"{column} " if column else ""
    seen = f"{where}was {_num(value)}" if isinstance(value, int | float) else f"{where}looked unusual"
    expected = f", expected {_num(lower)} to {_num(upper)}" if lower is not None and upper is not None else ""
    span = f" for {rows} rows" if rows > 1 else ""
    return f"{seen}{expected}: {SHAPES[shape]}{span}."


def _num(value: float) -> str:
    return f"{value:.4g}"
