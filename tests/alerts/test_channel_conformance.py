"""Every registered channel: its config schema, its secrets, and a real send that succeeds or fails right."""

from __future__ import annotations

import dataclasses

import pytest
from django.core import mail

from alerts.channels.base import ConfigError, DeliveryError, Message
from alerts.channels.registry import CHANNELS, channel_kinds, get_channel
from alerts.services.messages import ALL_PARTS
from tests.alerts.helpers import Receiver

KINDS = list(CHANNELS)


def message() -> Message:
    return Message(key="notification-1", event="opened", subject="[high] cpu watch: cpu — opened",
                   text="cpu rose to 20 where about 10 was expected.", html="<p>cpu rose</p>",
                   payload={"event": "opened", "summary": "cpu rose"}, url="http://testserver/review/1",
                   png=b"\x89PNG\r\n\x1a\n", severity="high")  # fmt: skip


def pointed_at(kind: str, url: str) -> tuple[dict, dict]:
    """The kind's test config with every address it has pointed at `url`."""
    config, secrets = get_channel(kind).get_test_config()
    return {
        "webhook": ({"url": url}, secrets), "slack": (config, {"webhook_url": url}),
        "apprise": (config, {"urls": [url.replace("http://", "json://")]}), "email": (config, secrets),
    }[kind]  # fmt: skip


@pytest.fixture
def receiver():
    server = Receiver(respond=lambda path, n: {"/fail": 503, "/gone": 404}.get(path, 200)).start()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_it_declares_its_key_label_and_valid_test_config(kind):
    cls = get_channel(kind)
    assert cls.key == kind and channel_kinds()[kind]
    config, secrets = cls.validate(**dict(zip(("config", "secrets"), cls.get_test_config(), strict=True)))
    assert set(config) == {f.name for f in dataclasses.fields(cls.Config)}
    assert set(secrets) == set(cls.secret_fields())
    assert cls.parts and cls.parts <= ALL_PARTS  # what it reads of a message is rendered


@pytest.mark.parametrize("kind", KINDS)
def test_it_names_every_bad_field(kind):
    cls = get_channel(kind)
    with pytest.raises(ConfigError) as error:
        cls.validate(config={"bogus": 1}, secrets={})
    assert "bogus" in error.value.errors
    assert set(cls.required()) <= set(error.value.errors)  # each required field is named, not only the first


@pytest.mark.parametrize("kind", KINDS)
def test_it_delivers_a_message(kind, receiver):
    config, secrets = pointed_at(kind, receiver.url + "/ok")
    get_channel(kind)(config=config, secrets=secrets).send(message())
    if kind == "email":
        assert len(mail.outbox) == 1 and mail.outbox[0].subject == message().subject
    else:
        [request] = receiver.to("/ok")
        assert b"cpu rose" in request.body


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "email"])
def test_it_reports_a_503_as_transient(kind, receiver):
    config, secrets = pointed_at(kind, receiver.url + "/fail")
    with pytest.raises(DeliveryError) as error:
        get_channel(kind)(config=config, secrets=secrets).send(message())
    assert not error.value.permanent


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_it_reports_a_404_as_permanent_with_its_status(kind, receiver):
    config, secrets = pointed_at(kind, receiver.url + "/gone")
    with pytest.raises(DeliveryError) as error:
        get_channel(kind)(config=config, secrets=secrets).send(message())
    assert error.value.permanent and error.value.http_status == 404


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_it_reports_a_refused_connection_as_transient(kind):
    config, secrets = pointed_at(kind, "http://127.0.0.1:9/nothing-listens")
    with pytest.raises(DeliveryError) as error:
        get_channel(kind)(config=config, secrets=secrets).send(message())
    assert not error.value.permanent
