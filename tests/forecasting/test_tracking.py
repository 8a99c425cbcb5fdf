"""Tracking: actuals arriving after a forecast fill in its realised sMAPE, MASE and coverage."""

import numpy as np
import pytest

from forecasting.models import Forecast, ForecastPoint, RunTrigger
from forecasting.selectors import config_accuracy
from forecasting.services import runs
from forecasting.services.tracking import forecasts_track
from tests.forecasting.helpers import dataset_with_series, hourly_frame, load, make_config, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def forecast_then_actuals(team):
    full = hourly_frame(n=24 * 22)
    dataset = dataset_with_series(team, [full.iloc[: 24 * 21]])
    config = make_config(dataset, horizon=24, levels=[80, 95])
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    load(dataset, full.iloc[24 * 21 : 24 * 21 + 12])  # half the horizon arrives
    return config, full


def test_it_fills_actuals_and_scores_the_realised_part(forecast_then_actuals):
    config, full = forecast_then_actuals
    forecast = Forecast.objects.get(config=config)
    assert forecast.points_realised == 0
    changed = forecasts_track(series_ids=[forecast.series_id], since=utc("2024-01-22"))
    assert changed == 1
    forecast.refresh_from_db()
    assert forecast.points_realised == 12
    steps = list(ForecastPoint.objects.filter(forecast=forecast).order_by("ts"))
    np.testing.assert_allclose([s.actual for s in steps[:12]], full["value"].to_numpy()[24 * 21 : 24 * 21 + 12])
    assert all(s.actual is None for s in steps[12:])
    actual = np.array([s.actual for s in steps[:12]])
    mean = np.array([s.mean for s in steps[:12]])
    assert forecast.smape == pytest.approx(np.mean(200 * np.abs(actual - mean) / (np.abs(actual) + np.abs(mean))))
    assert forecast.mase == pytest.approx(np.mean(np.abs(actual - mean)) / forecast.mase_scale)
    assert len(forecast.coverage) == 2 and forecast.coverage[0] <= forecast.coverage[1]


def test_tracking_twice_changes_nothing(forecast_then_actuals):
    config, _ = forecast_then_actuals
    forecast = Forecast.objects.get(config=config)
    forecasts_track(series_ids=[forecast.series_id])
    assert forecasts_track(series_ids=[forecast.series_id]) == 0


def test_accuracy_is_reported_per_model_version(forecast_then_actuals):
    config, _ = forecast_then_actuals
    forecast = Forecast.objects.get(config=config)
    forecasts_track(series_ids=[forecast.series_id])
    forecast.refresh_from_db()
    (row,) = config_accuracy(config=config)
    assert row["version"] == 1 and row["method"] == "seasonal_naive"
    assert row["forecasts"] == 1 and row["forecasts_realised"] == 1 and row["points_realised"] == 12
    assert row["smape"] == pytest.approx(forecast.smape, abs=1e-4)
    assert row["mase"] == pytest.approx(forecast.mase, abs=1e-4)
    assert row["coverage"] == {"80": pytest.approx(forecast.coverage[0], abs=1e-4),
                               "95": pytest.approx(forecast.coverage[1], abs=1e-4)}  # fmt: skip
