"""M4 Hourly and Weekly harness: fit every method on each series' training part, score with M4's rules.

The scorer is ``m4_score.py`` from ``M4_ROOT`` (by default ``../shared/benchmarks/m4`` beside the
repository), imported by path. Rules kept: one origin; each series is fitted on its training part
only; the test part is read only by the scorer. ``holdout=True`` scores on the last horizon of the
training part instead (fitting on the rest), for developing methods without looking at the test part.

Periods: Hourly uses hour of day and day of week (24, 168), Weekly the year (52) where a method
tests for it; Naive2 and seasonal naive use M4's own m (24 and 1), as M4 defines those benchmarks.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from forecasting.methods import get_method

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_M4_ROOT = Path(os.environ.get("M4_ROOT", REPO_ROOT.parent / "shared" / "benchmarks" / "m4"))
FREQUENCIES = {"hourly": ("Hourly", 48, [24, 168]), "weekly": ("Weekly", 13, [52])}
# M4's seasonal period per frequency: the benchmarks (Naive2, seasonal naive) use it as M4 defines them
M4_PERIOD = {"hourly": 24, "weekly": 1}
LEVEL = 95


def load_scorer(root: Path = DEFAULT_M4_ROOT) -> Any:
    """Import ``m4_score.py`` (it lives outside this package) and return the module."""
    path = Path(root) / "m4_score.py"
    if not path.exists():
        raise FileNotFoundError(f"M4 scorer not found at {path} (set M4_ROOT)")
    spec = importlib.util.spec_from_file_location("m4_score", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("m4_score", module)
    spec.loader.exec_module(module)
    return module


def _one_thread() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


def forecast_one(task: tuple[str, dict[str, Any], np.ndarray, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key, params, values, h = task
    model = get_method(key)(**params).fit(values, horizon=h)
    result = model.predict(h, levels=[LEVEL])
    return result.mean, result.lower[LEVEL], result.upper[LEVEL]


def run_method(key, params, train, h, processes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    tasks = [(key, params, x, h) for x in train]
    started = time.perf_counter()
    if processes > 1:
        with get_context("fork").Pool(processes, initializer=_one_thread) as pool:
            out = pool.map(forecast_one, tasks, chunksize=4)
    else:
        out = [forecast_one(t) for t in tasks]
    seconds = time.perf_counter() - started
    mean, lower, upper = (np.vstack([o[i] for o in out]) for i in range(3))
    return mean, lower, upper, seconds


def method_params(key: str, freq: str) -> dict[str, Any]:
    """Calendar periods for the methods that take several; M4's own period for its benchmarks."""
    fields = get_method(key).Params.__dataclass_fields__
    if "periods" in fields:
        return {"periods": list(FREQUENCIES[freq][2])}
    if "period" in fields:
        return {"period": M4_PERIOD[freq]}
    return {}


def run_m4(
    keys: list[str],
    frequencies: list[str],
    processes: int = 2,
    limit: int | None = None,
    holdout: bool = False,
    root: Path = DEFAULT_M4_ROOT,
    log=print,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{frequency: {key: {smape, mase, owa, msis, coverage_95, seconds}}}``."""
    scorer = load_scorer(root)
    report: dict[str, dict[str, dict[str, float]]] = {}
    for freq in frequencies:
        name, h, _ = FREQUENCIES[freq]
        train, test = scorer.load(name)
        if holdout:
            test = np.vstack([x[-h:] for x in train])
            train = [x[:-h] for x in train]
        if limit:
            train, test = train[:limit], test[:limit]
        report[freq] = {}
        for key in keys:
            params = method_params(key, freq)
            mean, lower, upper, seconds = run_method(key, params, train, h, processes)
            scores = scorer.evaluate(name, mean, lower, upper, train=train, test=test)
            row = {
                "smape": round(scores["sMAPE"], 3),
                "mase": round(scores["MASE"], 3),
                "owa": round(scores["OWA"], 3),
                "msis": round(scores["MSIS"], 3),
                "coverage_95": round(scores["coverage"], 3),
                "seconds": round(seconds, 1),
            }
            report[freq][key] = row
            log(
                f"  {freq:<7} {key:<15} sMAPE {row['smape']:7.3f}  MASE {row['mase']:6.3f}  OWA {row['owa']:6.3f}"
                f"  MSIS {row['msis']:7.3f}  cov95 {row['coverage_95']:.3f}  {row['seconds']:7.1f} s"
            )
    return report
