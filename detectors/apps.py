from django.apps import AppConfig


class DetectorsConfig(AppConfig):
    name = "detectors"

    def ready(self) -> None:
        from detectors import receivers  # noqa: F401  (subscribes to ingestion's points_arrived)
