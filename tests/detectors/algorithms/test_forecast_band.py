"""ForecastBand: a forecast's interval replaces a fitted detector's expectation where it covers a row."""

import numpy as np
import pandas as pd
import pytest

from detectors.algorithms.forecast_band import ForecastBand, band_neglog10p, z_of_level
from detectors.algorithms.postprocess import calibrate
from detectors.algorithms.registry import get_algorithm


def _fitted_and_data():
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-01", periods=400, freq="h", tz="UTC")
    values = 10 + rng.normal(0, 1, len(ts))
    fitted = get_algorithm("zscore")().fit(values[:200], ts[:200])
    return fitted, ts, values


def test_it_scores_covered_rows_by_their_distance_beyond_the_band():
    fitted, ts, values = _fitted_and_data()
    us = ts.as_unit("us").asi8
    mean = np.full(len(ts), np.nan)
    mean[300:] = 10.0
    lower, upper = mean - 2.0, mean + 2.0
    band = ForecastBand(fitted, us, mean, lower, upper, level=95)
    x = values.copy()
    x[310], x[320], x[330] = 11.9, 14.0, 20.0  # inside, beyond, far beyond
    result = band.score_details(x, ts)
    assert result.score[310] < -np.log10(0.05) < result.score[320] < result.score[330]
    assert result.score[320] == pytest.approx(band_neglog10p(np.array([14.0]), 10.0, 8.0, 12.0, 95)[0])
    assert (result.lower[320], result.upper[320]) == (8.0, 12.0)
    inner = -np.log10(calibrate(fitted.score_details(x, ts).score, "z"))
    assert result.score[:300] == pytest.approx(inner[:300])  # no forecast there: the algorithm's own


def test_the_level_sets_how_wide_a_sigma_is():
    assert z_of_level(95) == pytest.approx(1.959964, rel=1e-5)
    at_bound = band_neglog10p(np.array([12.0]), 10.0, 8.0, 12.0, 95)[0]
    assert 10**-at_bound == pytest.approx(0.05, rel=1e-6)
