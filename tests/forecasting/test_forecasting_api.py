"""The forecasting API: configs (validated per field), runs, backfills, forecasts, the series' latest, accuracy."""

import pytest

from forecasting.models import Forecast, ForecastConfig, ForecastRun, RunTrigger
from forecasting.services import runs
from tests.forecasting.helpers import make_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def config(hourly_dataset):
    config = make_config(hourly_dataset, horizon=12)
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    return config


def test_it_creates_a_config_with_defaults(owner_client, hourly_dataset):
    response = owner_client.post(
        "/api/v1/forecast-configs",
        {"dataset": hourly_dataset.pk, "name": "cpu", "metric": "cpu", "schedule_interval": "01:00:00"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["method"] == "auto" and body["levels"] == [80, 95] and body["horizon"] == 48
    assert body["next_run_at"] is not None
    assert ForecastConfig.objects.get(pk=body["id"]).created_by.username == "alice"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"method": "prophet"}, "method"),
        ({"method": "ets", "params": {"trend": "X"}}, "params"),
        ({"levels": [80, 120]}, "levels"),
        ({"levels": [95, 95]}, "levels"),
        ({"horizon": 0}, "horizon"),
        ({"schedule_interval": "00:00:10"}, "schedule_interval"),
        ({"training_points": 3}, "training_points"),
    ],
)
def test_it_answers_400_naming_the_bad_field(owner_client, hourly_dataset, change, field):
    body = {"dataset": hourly_dataset.pk, "name": "x", **change}
    response = owner_client.post("/api/v1/forecast-configs", body, format="json")
    assert response.status_code == 400, response.json()
    payload = response.json()
    assert payload.get("field") == field or field in payload, payload
    if field == "params":
        assert payload["params"] == {"trend": "must be one of auto, N, A, Ad"}


def test_it_lists_forecasts_and_shows_one_with_its_steps(owner_client, config):
    listing = owner_client.get(f"/api/v1/forecasts?config={config.pk}").json()["results"]
    assert len(listing) == 2 and {row["metric"] for row in listing} == {"cpu", "mem"}
    detail = owner_client.get(f"/api/v1/forecasts/{listing[0]['id']}").json()
    assert len(detail["points"]) == 12
    step = detail["points"][0]
    assert set(step["lower"]) == {"80", "95"} and step["lower"]["95"] <= step["mean"] <= step["upper"]["95"]


def test_it_serves_the_latest_forecast_of_a_series(owner_client, config):
    series = Forecast.objects.filter(config=config).first().series
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))  # same points: nothing new
    assert Forecast.objects.filter(config=config, series=series).count() == 1
    response = owner_client.get(f"/api/v1/series/{series.pk}/forecast")
    assert response.status_code == 200
    assert response.json()["id"] == Forecast.objects.get(config=config, series=series).pk
    assert owner_client.get(f"/api/v1/series/{series.pk}/forecast?config=x").status_code == 400


def test_a_series_without_forecast_is_404(owner_client, hourly_dataset):
    series = hourly_dataset.series.first()
    assert owner_client.get(f"/api/v1/series/{series.pk}/forecast").status_code == 404


def test_an_outsider_gets_404_everywhere(outsider_client, config):
    forecast = Forecast.objects.filter(config=config).first()
    urls = [
        f"/api/v1/forecast-configs/{config.pk}",
        f"/api/v1/forecast-configs/{config.pk}/accuracy",
        f"/api/v1/forecasts/{forecast.pk}",
        f"/api/v1/series/{forecast.series_id}/forecast",
        f"/api/v1/forecast-runs/{ForecastRun.objects.get(config=config).pk}",
        f"/api/v1/forecast-model-versions/{forecast.model_version_id}",
    ]
    for url in urls:
        assert outsider_client.get(url).status_code == 404, url
    assert outsider_client.post(f"/api/v1/forecast-configs/{config.pk}/run").status_code == 404
    assert outsider_client.get(f"/api/v1/forecasts?config={config.pk}").json()["results"] == []


def test_a_viewer_reads_but_cannot_run(client_for, viewer, config):
    client = client_for(viewer)
    assert client.get(f"/api/v1/forecast-configs/{config.pk}").status_code == 200
    assert client.post(f"/api/v1/forecast-configs/{config.pk}/run").status_code == 403


def test_run_and_backfill_queue_runs(owner_client, config, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        manual = owner_client.post(f"/api/v1/forecast-configs/{config.pk}/run")
        backfill = owner_client.post(
            f"/api/v1/forecast-configs/{config.pk}/backfill",
            {"start": "2024-01-10T00:00:00Z", "end": "2024-01-12T00:00:00Z", "every": "12:00:00"},
            format="json",
        )
    assert manual.status_code == 202 and backfill.status_code == 202, backfill.json()
    assert backfill.json()["trigger"] == "backfill" and len(backfill.json()["origins"]) == 4
    assert len(sent) == 2  # one chunk task per run


def test_a_backfill_without_every_or_schedule_is_400(owner_client, config):
    response = owner_client.post(
        f"/api/v1/forecast-configs/{config.pk}/backfill",
        {"start": "2024-01-10T00:00:00Z", "end": "2024-01-12T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "every"


def test_accuracy_lists_each_model_version(owner_client, config):
    body = owner_client.get(f"/api/v1/forecast-configs/{config.pk}/accuracy").json()
    assert [row["version"] for row in body] == [1]
    assert body[0]["forecasts"] == 2 and body[0]["points_realised"] == 0 and body[0]["smape"] is None
