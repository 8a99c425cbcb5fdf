from django.apps import AppConfig


class ForecastingConfig(AppConfig):
    name = "forecasting"

    def ready(self) -> None:
        from forecasting import receivers  # noqa: F401  (subscribes to ingestion's points_arrived)
