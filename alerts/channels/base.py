"""Channel plugin contract: a small class built from a channel's config and secrets, with one `send`.

`send(message)` delivers a rendered `Message` or raises `DeliveryError(text, permanent=..., http_status=...)`:
permanent failures (a 4xx other than 429, an address refused) disable the channel, the others are retried.
`Config` and `Secrets` are plain dataclasses validated per field (detectors/algorithms/params.py); `check`
adds what a field's bounds cannot say (an address, a URL). Secrets are never shown back.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

from django.conf import settings

from detectors.algorithms.params import NoParams, ParamsError, validate_params


@dataclass
class Message:
    """What a channel sends: one event of one alert, rendered once for every channel."""

    key: str  # the idempotency key: the notification's id, the same on every attempt
    event: str
    subject: str
    text: str
    html: str
    payload: dict
    url: str = ""  # the incident in the review queue
    png: bytes | None = None
    severity: str = ""


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, http_status: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.http_status = http_status


class ConfigError(ValueError):
    """Invalid channel config or secrets; `errors` maps each bad field to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class Channel:
    key: ClassVar[str] = ""
    # Which parts of a Message `send` reads (the others are not rendered): subject, text, html, payload, png.
    parts: ClassVar[frozenset] = frozenset({"subject", "text", "html", "payload", "png"})
    Config: ClassVar[type] = NoParams
    Secrets: ClassVar[type] = NoParams

    def __init__(self, *, config: dict | None = None, secrets: dict | None = None):
        self.config = validate_params(self.Config, config)
        self.secrets = validate_params(self.Secrets, secrets)

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Secrets)]

    @classmethod
    def validate(cls, *, config: dict | None, secrets: dict | None) -> tuple[dict, dict]:
        """(config, secrets) as stored, defaults filled in; ConfigError naming every bad field."""
        errors, parsed = {}, []
        for schema, data in ((cls.Config, config), (cls.Secrets, secrets)):
            try:
                parsed.append(validate_params(schema, data))
            except ParamsError as exc:
                errors.update(exc.errors)
                parsed.append(None)
        missing = {name: "is required" for name in cls.required() if not (config or {}).get(name)
                   and not (secrets or {}).get(name)}  # fmt: skip
        errors = {**missing, **errors}
        if not errors:
            errors = cls.check(*parsed)
        if errors:
            raise ConfigError(errors)
        return dataclasses.asdict(parsed[0]), dataclasses.asdict(parsed[1])

    @classmethod
    def required(cls) -> list[str]:
        """Fields without a usable default (an empty string or list)."""
        return [
            f.name for schema in (cls.Config, cls.Secrets) for f in dataclasses.fields(schema)
            if f.metadata.get("required")
        ]  # fmt: skip

    @classmethod
    def check(cls, config, secrets) -> dict[str, str]:
        return {}

    @classmethod
    def get_test_config(cls) -> tuple[dict, dict]:
        """Small valid (config, secrets) for the conformance test."""
        return {}, {}

    def send(self, message: Message) -> int | None:
        """Deliver; returns the HTTP status where there is one. Raises DeliveryError."""
        raise NotImplementedError


def required(default=""):
    """A field that must be given (its default is only the empty value of its type)."""
    if isinstance(default, list):
        return field(default_factory=list, metadata={"required": True})
    return field(default=default, metadata={"required": True})


def check_http_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    return None


class HttpChannel(Channel):
    """POSTs JSON. 429, 5xx, timeouts and connection errors are transient; other 4xx are permanent."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=settings.ALERTS_HTTP_TIMEOUT_SECONDS) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code != 429
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}", permanent=permanent, http_status=exc.code) from exc
        except urllib.error.URLError as exc:
            # A name that does not resolve is a bad address; a refused or reset connection may pass.
            permanent = isinstance(exc.reason, socket.gaierror) and exc.reason.errno == socket.EAI_NONAME
            raise DeliveryError(f"cannot reach {urlsplit(url).hostname}: {exc.reason}", permanent=permanent) from exc
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
