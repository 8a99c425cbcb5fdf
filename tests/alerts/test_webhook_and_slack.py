"""What the webhook and Slack channels put on the wire."""

from __future__ import annotations

import time

import pytest

from alerts.channels.base import ConfigError
from alerts.channels.slack import SlackChannel
from alerts.channels.webhook import WebhookChannel, signature
from tests.alerts.helpers import SECRET, Receiver
from tests.alerts.test_channel_conformance import message


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_it_signs_the_timestamp_and_body_with_the_channel_secret(receiver):
    WebhookChannel(config={"url": receiver.url + "/hook"}, secrets={"secret": SECRET}).send(message())
    [request] = receiver.requests
    assert abs(int(request.headers["X-Timestamp"]) - time.time()) < 5
    assert request.headers["X-Signature"] == signature(SECRET, request.headers["X-Timestamp"], request.body)
    assert request.headers["X-Signature"] != signature("another-secret-0000", request.headers["X-Timestamp"],
                                                       request.body)  # fmt: skip
    assert request.headers["X-Idempotency-Key"] == "notification-1"
    assert request.json == {"event": "opened", "summary": "cpu rose"}


def test_it_refuses_a_short_secret_and_a_url_without_host():
    with pytest.raises(ConfigError) as error:
        WebhookChannel.validate(config={"url": "ftp:nowhere"}, secrets={"secret": "short"})
    assert set(error.value.errors) == {"url", "secret"}


def test_it_posts_slack_blocks_with_the_review_link(receiver):
    SlackChannel(secrets={"webhook_url": receiver.url + "/services/x"}).send(message())
    body = receiver.requests[0].json
    assert body["text"].endswith("[high] cpu watch: cpu — opened")
    assert body["blocks"][0]["type"] == "header"
    assert body["blocks"][1]["text"]["text"] == "cpu rose to 20 where about 10 was expected."
    assert body["blocks"][2]["elements"][0]["url"] == "http://testserver/review/1"
