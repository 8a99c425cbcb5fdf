from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"

    def ready(self) -> None:
        from feedback import receivers  # noqa: F401  (detectors' anomalies_created)
