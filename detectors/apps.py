from django.apps import AppConfig


class DetectorsConfig(AppConfig):
    name = "detectors"

    def ready(self) -> None:
        from detectors import receivers  # noqa: F401  (ingestion's points_arrived, forecasting's crossings)
