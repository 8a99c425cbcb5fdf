"""Channel registry: a plain dict of kind -> "module:Class", imported lazily on first use."""

from __future__ import annotations

from common.registry import registered_class

CHANNELS: dict[str, str] = {
    "email": "alerts.channels.mail:EmailChannel",
    "webhook": "alerts.channels.webhook:WebhookChannel",
    "slack": "alerts.channels.slack:SlackChannel",
    "apprise": "alerts.channels.apprise_urls:AppriseChannel",
}

LABELS = {"email": "Email", "webhook": "Webhook", "slack": "Slack", "apprise": "Apprise (Teams, Telegram, ...)"}


def channel_kinds() -> dict[str, str]:
    """{kind: label}, for the model's choices."""
    return {key: LABELS[key] for key in CHANNELS}


def get_channel(kind: str) -> type:
    return registered_class(CHANNELS, kind, "channel kind")
