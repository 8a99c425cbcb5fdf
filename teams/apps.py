from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"

    def ready(self) -> None:
        from teams import schema  # noqa: F401  (registers the OpenAPI auth extension)
