from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        from alerts import receivers  # noqa: F401  (detection's incidents opened, escalated, resolved)
