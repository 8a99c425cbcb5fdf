"""Builders for forecasting tests: a team's dataset with seeded hourly series (daily and weekly pattern)."""

import numpy as np
import pandas as pd

from forecasting.services.configs import forecast_config_create
from tests.detectors.helpers import dataset_with_series, load, utc

__all__ = ["dataset_with_series", "hourly_frame", "load", "make_config", "utc"]


def hourly_frame(*, metric="cpu", n=24 * 21, start="2024-01-01", seed=0, level=50.0, noise=1.0):
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq="h", tz="UTC")
    t = np.arange(n)
    values = level + 10 * np.sin(2 * np.pi * t / 24) - 8 * (ts.day_of_week >= 5) + rng.normal(0, noise, n)
    return pd.DataFrame({"metric": metric, "ts": ts, "value": values})


def make_config(dataset, name="cpu forecast", **fields):
    fields.setdefault("method", "seasonal_naive")
    fields.setdefault("horizon", 24)
    return forecast_config_create(dataset=dataset, name=name, **fields)
