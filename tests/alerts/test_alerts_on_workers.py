"""Alerts through the broker and a real Celery worker: incidents found by a detection run become signed
webhooks and emails (with the plot), once each; transient failures are retried; test messages go out."""

from __future__ import annotations

import email
import time

import pytest

from alerts.models import AttemptStatus, IncidentEvent, Notification, NotificationStatus
from alerts.services.configs import channel_create
from detectors.models import Anomaly, DetectionRun, RunStatus, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_enqueue
from detectors.signals import anomalies_created, send_after_commit
from tests.alerts.helpers import Receiver, incident, rule, watched_detector, webhook
from tests.detectors.helpers import SPIKES, dataset_with_series, series_frame, utc

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_S = 60


def wait_for(condition, worker, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {TIMEOUT_S} s; worker output:\n{worker.output()}")


@pytest.fixture(autouse=True)
def settled():
    """The worker is done with this test's alerting before the database is flushed under it."""
    yield
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and (
        IncidentEvent.objects.filter(processed_at=None).exists()
        or Notification.objects.filter(status__in=["pending", "sending"]).exists()
    ):
        time.sleep(0.25)
    time.sleep(0.5)


@pytest.fixture
def receiver():
    server = Receiver(respond=lambda path, n: 503 if path == "/flaky" and n == 0 else 200).start()
    yield server
    server.stop()


def sent(**filters) -> int:
    return Notification.objects.filter(status=NotificationStatus.SENT, **filters).count()


def test_it_notifies_each_incident_of_a_run_once_by_webhook_and_email(celery_worker, team, receiver):
    dataset = dataset_with_series(team, [series_frame(spikes=SPIKES)])
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    hook = webhook(team, receiver.url + "/hook")
    mail = channel_create(team=team, name="mail", kind="email", config={"to": ["ops@example.com"]})
    rule(team, [hook, mail], datasets=[dataset], min_severity="low")
    run_enqueue(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    wait_for(lambda: DetectionRun.objects.filter(detector=detector, status=RunStatus.SUCCEEDED).exists(),
             celery_worker, "the backfill")  # fmt: skip
    incidents = set(Anomaly.objects.filter(detector=detector).values_list("pk", flat=True))
    assert len(incidents) >= 2  # the two spikes at least
    wait_for(lambda: sent() == 2 * len(incidents), celery_worker, "every notification")
    time.sleep(1)  # anything sent twice would arrive by now
    bodies = [r.json for r in receiver.to("/hook")]
    assert all(r.signature_ok() for r in receiver.to("/hook"))
    assert sorted(b["incident"]["id"] for b in bodies) == sorted(incidents)  # once each
    assert len({b["idempotency_key"] for b in bodies}) == len(bodies)
    mails = [email.message_from_bytes(part.encode()) for path in celery_worker.mail_dir.iterdir()
             for part in path.read_text().split("\n" + "-" * 79 + "\n") if part.strip()]  # fmt: skip
    mails = [m for m in mails if m["To"] == "ops@example.com" and "/review" in m.as_string()]
    assert len(mails) == len(incidents)
    for message in mails:
        types = {part.get_content_type() for part in message.walk()}
        assert {"text/plain", "text/html", "image/png"} <= types


def test_it_retries_a_503_and_delivers_once(celery_worker, team, receiver):
    detector = watched_detector(team)
    rule(team, [webhook(team, receiver.url + "/flaky")], detectors=[detector])
    found = incident(detector)
    send_after_commit(anomalies_created, sender=Anomaly, run_id=None, anomaly_ids=[found.pk])
    wait_for(lambda: sent(), celery_worker, "the retried delivery")
    notification = Notification.objects.get()
    attempts = list(notification.delivery_attempts.values_list("status", "http_status"))
    assert attempts == [(AttemptStatus.RETRY, 503), (AttemptStatus.SENT, 200)]
    assert [r.status for r in receiver.to("/flaky")] == [503, 200]
    assert (
        receiver.to("/flaky")[0].headers["X-Idempotency-Key"] == receiver.to("/flaky")[1].headers["X-Idempotency-Key"]
    )


def test_it_sends_a_test_message_asked_through_the_api(celery_worker, team, owner_client, receiver):
    channel = webhook(team, receiver.url + "/test")
    response = owner_client.post(f"/api/v1/channels/{channel.pk}/test")
    assert response.status_code == 202
    wait_for(lambda: sent(pk=response.json()["id"]), celery_worker, "the test message")
    [request] = receiver.to("/test")
    assert request.json["event"] == "test" and request.signature_ok()
