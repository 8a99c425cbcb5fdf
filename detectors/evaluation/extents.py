"""Sustained faults with known extents, injected into normal stretches of real series, scored row by row.

Base series: NAB's artificialNoAnomaly files, the probationary period (the clean first 15 %, at most 750
rows) of every NAB file, and the platform's sample datasets. Into each, after its training rows, one fault
of 50 to 500 rows is injected per fault type (seeded, so every run scores the same cases):

- ``level``: a shift of 2 to 4 fault scales, up or down;
- ``variance``: added noise of 1 to 2 fault scales;
- ``flatline``: the value sticks at the last one before the fault (not on series already flat);
- ``drift``: a ramp from 0 to 3 to 5 fault scales;
- ``seasonality``: the seasonal swing disappears, leaving the local level and its noise (seasonal bases only);
- ``relation`` (two columns): a second column that follows the first (the first plus noise) is replaced
  during the fault by another stretch of itself, so each column alone still looks normal.

The fault scale is the series' robust spread (IQR / 1.349) over its training rows, at least its noise (the
spread around a short rolling median): faults that a person looking at the series would call clear. Each
case is scored by ``score_values`` (what ``score_csv`` runs) with its defaults: ``auto`` at the default
sensitivity, trained on the first 15 %. A row is predicted when it lies inside an incident; the truth is the
fault's rows. Figures are pooled over all cases of a type (and overall): precision, recall, F1, the
false-alarm rate on clean scored rows, and the median onset delay (rows from the fault's start to the first
alarm inside it, over the faults that got one).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from detectors.algorithms.postprocess import DEFAULT_SENSITIVITY
from detectors.algorithms.seasonality import infer_period
from detectors.evaluation.nab import DEFAULT_BENCH_ROOT, data_files, probation_rows
from detectors.services.files import TRAIN_FRACTION, score_values

FAULTS = ("level", "variance", "flatline", "drift", "seasonality", "relation")
MIN_LENGTH, MAX_LENGTH = 50, 500
TAIL = 50  # clean rows kept after each fault, so its end is seen


@dataclass
class Case:
    name: str
    fault: str
    values: np.ndarray  # (n,) or (n, 2)
    timestamps: pd.DatetimeIndex
    start: int
    end: int  # exclusive


def base_series(bench_root: Path = DEFAULT_BENCH_ROOT) -> list[tuple[str, np.ndarray, pd.DatetimeIndex]]:
    bases = []
    for rel in data_files(bench_root):
        frame = pd.read_csv(Path(bench_root) / "nab" / "data" / rel)
        rows = len(frame) if rel.startswith("artificialNoAnomaly/") else probation_rows(len(frame))
        bases.append((rel, frame["value"].to_numpy(float)[:rows], pd.DatetimeIndex(frame["timestamp"][:rows])))
    bases.extend(_sample_series())
    return bases


def _sample_series() -> list[tuple[str, np.ndarray, pd.DatetimeIndex]]:
    from ingestion.management.commands.load_sample import SAMPLES

    out = []
    for sample in SAMPLES:
        if sample.kind != "timeseries":
            continue
        frame = sample.load()
        for metric, rows in frame.groupby("metric"):
            rows = rows.sort_values("ts")
            out.append((f"sample/{sample.name}/{metric}", rows["value"].to_numpy(float), pd.DatetimeIndex(rows["ts"])))
    return out


def fault_scale(x: np.ndarray) -> float:
    """The series' robust spread (IQR / 1.349), at least its noise: what a person sees as its usual range."""
    local = pd.Series(x).rolling(5, center=True, min_periods=1).median().to_numpy()
    noise = np.subtract(*np.percentile(x - local, [75, 25])) / 1.349
    spread = np.subtract(*np.percentile(x, [75, 25])) / 1.349
    return float(max(noise, spread, 1e-6 * abs(float(np.median(x))), 1e-6))


def make_cases(bases, seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for name, x, ts in bases:
        n = len(x)
        train = max(1, int(TRAIN_FRACTION * n))
        room = n - TAIL - train - train // 2  # faults start at least half a training length after training
        if room < MIN_LENGTH or not np.isfinite(x).all():
            continue
        scale = fault_scale(x[:train])
        period = infer_period(x[:train], step=_step(ts))
        for fault in FAULTS:
            length = int(rng.integers(MIN_LENGTH, min(MAX_LENGTH, room) + 1))
            start = int(rng.integers(train + train // 2, n - TAIL - length + 1))
            values = _inject(fault, x, start, start + length, scale, period, rng)
            if values is not None:
                cases.append(Case(name, fault, values, ts, start, start + length))
    return cases


def _step(ts: pd.DatetimeIndex) -> float | None:
    return float(np.median(np.diff(ts.asi8[:1000]))) / 1e9 if len(ts) > 1 else None


def _inject(fault, x, start, end, scale, period, rng) -> np.ndarray | None:
    y = x.copy()
    length = end - start
    if fault == "level":
        y[start:end] += rng.choice([-1, 1]) * rng.uniform(2, 4) * scale
    elif fault == "variance":
        y[start:end] += rng.normal(0, rng.uniform(1, 2) * scale, length)
    elif fault == "flatline":
        if np.ptp(x[start - 20 : start]) == 0:
            return None  # already flat: nothing to inject
        y[start:end] = x[start - 1]
    elif fault == "drift":
        y[start:end] += rng.choice([-1, 1]) * np.linspace(0, rng.uniform(3, 5) * scale, length)
    elif fault == "seasonality":
        if not _seasonal(x[:start], period, scale) or length < period:
            return None
        level = pd.Series(x).rolling(period, min_periods=1).mean().to_numpy()
        y[start:end] = level[start - 1] + rng.normal(0, 0.1 * scale, length)
    elif fault == "relation":
        second = x + rng.normal(0, 0.1 * scale, len(x))
        donor = _donor(start, end, len(x), rng)
        if donor is None:
            return None
        moved = second[donor : donor + length]
        second[start:end] = moved - np.median(moved) + np.median(second[start:end])
        return np.column_stack([y, second])
    return y


def _seasonal(x: np.ndarray, period: int, scale: float) -> bool:
    if period < 4 or len(x) < 3 * period:
        return False
    cycles = x[len(x) - 3 * period :].reshape(3, period)
    profile = np.median(cycles, axis=0)
    return float(np.ptp(profile)) > 2 * scale


def _donor(start: int, end: int, n: int, rng) -> int | None:
    """Start of another stretch of the same length that does not overlap the fault (from the normal part)."""
    length = end - start
    choices = [d for d in range(0, n - length + 1, max(1, length // 4)) if d + length <= start or d >= end]
    choices = [d for d in choices if abs(d - start) >= length]
    return int(rng.choice(choices)) if choices else None


def score_case(case: Case) -> dict:
    n = len(case.values)
    train = max(1, int(TRAIN_FRACTION * n))
    result = score_values(case.values, case.timestamps, sensitivity=DEFAULT_SENSITIVITY, train_rows=train)
    predicted = result.in_incident[train:].astype(bool)
    truth = np.zeros(n, dtype=bool)
    truth[case.start : case.end] = True
    truth = truth[train:]
    alarms = np.flatnonzero(result.is_anomaly[case.start : case.end])
    return {
        "fault": case.fault,
        "tp": int((predicted & truth).sum()),
        "fp": int((predicted & ~truth).sum()),
        "fn": int((~predicted & truth).sum()),
        "clean": int((~truth).sum()),
        "delay": int(alarms[0]) if len(alarms) else None,
    }


def summarise(outcomes: list[dict]) -> dict:
    def figures(rows: list[dict]) -> dict:
        tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
        clean = sum(r["clean"] for r in rows)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        delays = [r["delay"] for r in rows if r["delay"] is not None]
        return {
            "cases": len(rows),
            "detected": len(delays),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "far": round(fp / clean, 4) if clean else 0.0,
            "onset_delay_median": float(np.median(delays)) if delays else None,
        }

    by_fault = {fault: figures([r for r in outcomes if r["fault"] == fault]) for fault in FAULTS}
    return {"faults": {k: v for k, v in by_fault.items() if v["cases"]}, "overall": figures(outcomes)}


def run_extents(*, processes: int = 2, bench_root: Path = DEFAULT_BENCH_ROOT, seed: int = 0) -> dict:
    cases = make_cases(base_series(bench_root), seed=seed)
    if processes > 1:
        ctx = get_context("fork") if sys.platform != "win32" else get_context()
        with ctx.Pool(processes) as pool:
            outcomes = pool.map(score_case, cases, chunksize=4)
    else:
        outcomes = [score_case(case) for case in cases]
    return summarise(outcomes)
