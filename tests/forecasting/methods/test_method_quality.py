"""Seeded synthetic series where the right answer is known: each method must beat a naive floor."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.methods import get_method
from forecasting.methods.kernels import seasonality_test


def hourly(seed: int, n: int = 24 * 28, h: int = 48, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n + h)
    day = 10 * np.sin(2 * np.pi * t / 24)
    week = np.where((t // 24) % 7 >= 5, -12.0, 0.0)  # quieter weekends
    y = 100 + day + week + rng.normal(0, noise, n + h)
    return y[:n], y[n:]


def mae(a, b):
    return float(np.mean(np.abs(a - b)))


@pytest.mark.parametrize("key", ["ets", "theta", "lag_regression", "auto"])
def test_it_learns_daily_and_weekly_seasonality(key):
    train, test = hourly(1)
    forecast = get_method(key)(periods=[24, 168]).fit(train, horizon=48).predict(48).mean
    naive = np.full(48, train[-1])
    daily_naive = np.resize(train[-24:], 48)
    assert mae(forecast, test) < 0.5 * mae(naive, test)
    # the horizon crosses into a weekend: a method that knows the week beats repeating the last day
    assert mae(forecast, test) < mae(daily_naive, test)


def test_auto_intervals_cover_about_their_level():
    inside80, inside95, total = 0, 0, 0
    for seed in range(12):
        train, test = hourly(seed, noise=3.0)
        result = get_method("auto")(periods=[24, 168]).fit(train, horizon=48).predict(48, levels=[80, 95])
        inside80 += int(((test >= result.lower[80]) & (test <= result.upper[80])).sum())
        inside95 += int(((test >= result.lower[95]) & (test <= result.upper[95])).sum())
        total += len(test)
    assert 0.7 <= inside80 / total <= 0.95
    assert 0.88 <= inside95 / total <= 0.995


def test_ets_follows_a_trend():
    t = np.arange(200.0)
    y = 5 + 0.5 * t + np.random.default_rng(3).normal(0, 0.2, 200)
    forecast = get_method("ets")(seasonal="none").fit(y, horizon=10).predict(10).mean
    expected = 5 + 0.5 * np.arange(200, 210)
    assert np.max(np.abs(forecast - expected)) < 2.0


def test_naive2_matches_m4_definition_on_a_seasonal_series():
    train, _ = hourly(5)
    train = train - train.min() + 10  # positive, as M4's multiplicative decomposition needs
    assert seasonality_test(train, 24)
    forecast = get_method("naive2")(period=24).fit(train, horizon=24).predict(24).mean
    # the adjusted series' last value times the indices: one cycle ahead repeats the indices' shape
    assert np.argmax(forecast) == np.argmax(forecast[:24])
    assert np.corrcoef(forecast, train[-24:])[0, 1] > 0.9


def test_auto_chooses_from_its_backtest():
    train, _ = hourly(2)
    model = get_method("auto")(periods=[24, 168]).fit(train, horizon=48)
    assert model.chosen_ and set(model.chosen_) <= {"snaive_short", "snaive_long", "ets", "theta", "lag_regression"}
    # a daily repeat cannot know about weekends: it must not be chosen alone
    assert model.chosen_ != ["snaive_short"]
