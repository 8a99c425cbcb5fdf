"""``manage.py bench forecast``: every forecasting method on M4 Hourly and Weekly (see README: Forecasting)."""

from __future__ import annotations

from forecasting.evaluation.m4 import FREQUENCIES, run_m4
from forecasting.methods import method_keys

# Naive2 first: the table's OWA is relative to it, computed by the scorer in the same run.
DEFAULT_ORDER = ["naive2", "seasonal_naive", "theta", "ets", "arima", "lag_regression", "auto"]


def bench_forecast(
    *, algorithms: list[str], processes: int = 2, scale: float = 1.0, holdout: bool = False, log=print, **_
) -> dict:
    """``{"hourly": {key: {smape, mase, owa, msis, coverage_95, seconds}}, "weekly": {...}}``.

    ``algorithms`` picks methods (default: all); ``scale`` < 1 scores that share of the series
    (the first ones); ``holdout`` scores on the last horizon of each training part instead of the test.
    """
    keys = algorithms or [k for k in DEFAULT_ORDER if k in method_keys()]
    unknown = [k for k in keys if k not in method_keys()]
    if unknown:
        raise ValueError(f"unknown forecasting methods: {', '.join(unknown)}")
    log(
        f"M4 forecast benchmark ({'last horizon of the training part' if holdout else 'test part'}), "
        f"{processes} processes; OWA against Naive2 from the same run"
    )
    report = {}
    for freq in FREQUENCIES:
        limit = None if scale >= 1 else max(2, int(scale * (414 if freq == "hourly" else 359)))
        report.update(run_m4(keys, [freq], processes=processes, limit=limit, holdout=holdout, log=log))
    return report
