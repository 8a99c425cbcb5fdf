"""Email through Django's email backend: plain text, HTML and the incident's plot as an inline PNG."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.mime.image import MIMEImage

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email

from alerts.channels.base import Channel, DeliveryError, Message, required

MAX_RECIPIENTS = 50


class EmailChannel(Channel):
    key = "email"

    @dataclass
    class Config:
        to: list = required([])

    @classmethod
    def check(cls, config, secrets) -> dict[str, str]:
        if len(config.to) > MAX_RECIPIENTS:
            return {"to": f"at most {MAX_RECIPIENTS} addresses"}
        for address in config.to:
            try:
                validate_email(address)
            except (ValidationError, TypeError):
                return {"to": f"{address!r} is not an email address"}
        return {}

    @classmethod
    def get_test_config(cls) -> tuple[dict, dict]:
        return {"to": ["ops@example.com"]}, {}

    def send(self, message: Message) -> None:
        mail = EmailMultiAlternatives(
            subject=message.subject, body=message.text, from_email=settings.DEFAULT_FROM_EMAIL, to=self.config.to,
            headers={"X-Idempotency-Key": message.key},
        )  # fmt: skip
        mail.attach_alternative(message.html, "text/html")
        if message.png:
            image = MIMEImage(message.png, "png")
            image.add_header("Content-ID", "<plot>")
            image.add_header("Content-Disposition", "inline", filename="incident.png")
            mail.attach(image)
        try:
            mail.send()
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"address refused: {', '.join(exc.recipients)}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            # 5xx replies are final (no such user, relaying denied); 4xx ask to try again later.
            permanent = exc.smtp_code >= 500
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
