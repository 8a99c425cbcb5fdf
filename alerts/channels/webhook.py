"""A JSON POST signed with the channel's secret.

Headers: `X-Timestamp` (Unix seconds), `X-Signature: sha256=<hex>` with the HMAC-SHA256 of
`<timestamp>.<body>` under the secret, and `X-Idempotency-Key`, the same on every attempt of a message:
a receiver that keeps the keys it has seen drops the rare second copy (see README: exactly once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from alerts.channels.base import HttpChannel, Message, check_http_url, required

MIN_SECRET_LENGTH = 16


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookChannel(HttpChannel):
    key = "webhook"
    parts = frozenset({"payload"})

    @dataclass
    class Config:
        url: str = required()

    @dataclass
    class Secrets:
        secret: str = required()

    @classmethod
    def check(cls, config, secrets) -> dict[str, str]:
        errors = {}
        if message := check_http_url(config.url):
            errors["url"] = message
        if len(secrets.secret) < MIN_SECRET_LENGTH:
            errors["secret"] = f"must be at least {MIN_SECRET_LENGTH} characters"
        return errors

    @classmethod
    def get_test_config(cls) -> tuple[dict, dict]:
        return {"url": "http://127.0.0.1:9/hook"}, {"secret": "s" * MIN_SECRET_LENGTH}

    def send(self, message: Message) -> int:
        body = json.dumps(message.payload, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "anomaly-platform-alerts",
            "X-Timestamp": timestamp,
            "X-Signature": signature(self.secrets.secret, timestamp, body),
            "X-Idempotency-Key": message.key,
        }
        return self.post(self.config.url, body, headers)
