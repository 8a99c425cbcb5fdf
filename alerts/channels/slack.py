"""A Slack incoming webhook: blocks with the incident's sentence and a link to it in the review queue."""

from __future__ import annotations

import json
from dataclasses import dataclass

from alerts.channels.base import HttpChannel, Message, check_http_url, required

EMOJI = {"low": ":large_blue_circle:", "medium": ":large_yellow_circle:", "high": ":red_circle:",
         "critical": ":rotating_light:"}  # fmt: skip


class SlackChannel(HttpChannel):
    key = "slack"
    parts = frozenset({"subject", "text"})

    @dataclass
    class Secrets:
        # The incoming webhook's URL is its credential.
        webhook_url: str = required()

    @classmethod
    def check(cls, config, secrets) -> dict[str, str]:
        message = check_http_url(secrets.webhook_url)
        return {"webhook_url": message} if message else {}

    @classmethod
    def get_test_config(cls) -> tuple[dict, dict]:
        return {}, {"webhook_url": "http://127.0.0.1:9/services/T0/B0/x"}

    def send(self, message: Message) -> int:
        return self.post(self.secrets.webhook_url, json.dumps(blocks(message)).encode(),
                         {"Content-Type": "application/json"})  # fmt: skip


def blocks(message: Message) -> dict:
    """Slack's message layout: a header, the text, and the link to the plot and review page."""
    layout = [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message.text[:2900]}},
    ]
    if message.url:
        layout.append({
            "type": "actions",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Plot and review"},
                          "url": message.url}],
        })  # fmt: skip
    return {"text": f"{EMOJI.get(message.severity, '')} {message.subject}".strip(), "blocks": layout}
