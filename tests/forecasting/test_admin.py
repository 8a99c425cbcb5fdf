import pytest
from django.contrib.auth import get_user_model

from forecasting.models import Forecast, ForecastRun, RunTrigger
from forecasting.services import runs
from tests.forecasting.helpers import make_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def config(hourly_dataset):
    config = make_config(hourly_dataset, horizon=24)
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    return config


def test_the_config_page_plots_forecasts_with_bands_and_shows_accuracy(admin_client, config):
    html = admin_client.get(f"/admin/forecasting/forecastconfig/{config.pk}/change/").content.decode()
    for metric in ("cpu", "mem"):  # one plot per series
        assert f"{metric}: forecast from 2024-01-21 23:00 UTC, 95 % band" in html
    assert "<polygon" in html  # the band
    assert "points with actuals" in html and "seasonal_naive" in html


def test_the_forecast_page_plots_history_and_forecast(admin_client, config):
    forecast = Forecast.objects.filter(config=config).first()
    html = admin_client.get(f"/admin/forecasting/forecast/{forecast.pk}/change/").content.decode()
    assert "<svg" in html and "<polygon" in html and "95 % band" in html


def test_every_list_page_renders(admin_client, config):
    for path in ["forecastconfig", "forecast", "forecastrun", "forecastmodelversion"]:
        assert admin_client.get(f"/admin/forecasting/{path}/").status_code == 200, path


def test_forecast_now_action_queues_a_run(admin_client, config):
    before = ForecastRun.objects.count()
    admin_client.post("/admin/forecasting/forecastconfig/", {"action": "run_now", "_selected_action": [config.pk]})
    assert ForecastRun.objects.count() == before + 1
