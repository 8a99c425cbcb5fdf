"""One channel for every service the `apprise` library reaches (Teams, Telegram, PagerDuty, Opsgenie, ...),
each named by an apprise URL such as `tgram://bottoken/chat_id` (https://github.com/caronc/apprise/wiki)."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.channels.base import Channel, DeliveryError, Message, required


def _apprise(urls: list[str]):
    import apprise  # imported on first use: the registry stays cheap to load

    client = apprise.Apprise()
    bad = [url for url in urls if not client.add(url)]
    return client, bad


class AppriseChannel(Channel):
    key = "apprise"
    parts = frozenset({"subject", "text"})

    @dataclass
    class Secrets:
        # Apprise URLs carry the services' tokens.
        urls: list = required([])

    @classmethod
    def check(cls, config, secrets) -> dict[str, str]:
        if not all(isinstance(url, str) for url in secrets.urls):
            return {"urls": "must be a list of apprise URLs (strings)"}
        _, bad = _apprise(secrets.urls)
        return {"urls": f"apprise does not recognise {len(bad)} of them"} if bad else {}

    @classmethod
    def get_test_config(cls) -> tuple[dict, dict]:
        return {}, {"urls": ["json://127.0.0.1:9/notify"]}

    def send(self, message: Message) -> None:
        client, bad = _apprise(self.secrets.urls)
        if bad:
            raise DeliveryError("apprise no longer recognises a URL of this channel", permanent=True)
        body = message.text + (f"\n\n{message.url}" if message.url else "")
        # Apprise reports only success or failure, whichever service failed: retried as transient.
        if not client.notify(title=message.subject, body=body):
            raise DeliveryError("apprise could not deliver to every URL")
