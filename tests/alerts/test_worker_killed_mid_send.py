"""A worker killed in the middle of a send: the message is neither lost nor marked sent twice.

The receiver holds the first request until the test has SIGKILLed the sender, so the message reached
the receiver but was never marked sent. What the design guarantees then: the notification is sent again
(after the dead sender's lease), with the same idempotency key, and is marked sent once: the receiver
that keeps keys has it exactly once. (Killed before the request left, there would be a single copy.)

Two ways to die: the pool process alone (the worker puts the task back: reject_on_worker_lost), or the
whole worker (the broker keeps the task unacknowledged for its visibility timeout, an hour on Redis: beat's
sweep re-enqueues the notification once the lease has run out, and a new worker sends it).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import psutil
import pytest

from alerts import tasks
from alerts.models import AttemptStatus, Notification, NotificationStatus
from alerts.services.alerting import alerts_open
from alerts.services.delivery import notifications_redispatch_due
from tests.alerts.helpers import Receiver, incident, rule, watched_detector, webhook
from tests.celery_worker import READY_TIMEOUT_S, WorkerProcess, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LEASE_S = 6
TIMEOUT_S = 60


@pytest.fixture
def queue():
    return f"alerts-kill-{uuid.uuid4().hex[:8]}"  # this test's own: no other worker takes its tasks


@pytest.fixture
def start_worker(queue):
    started = []

    def start(pool: str) -> WorkerProcess:
        env = worker_env(ALERTS_HTTP_TIMEOUT_SECONDS="5", ALERTS_SEND_LEASE_SECONDS=str(LEASE_S))
        worker = WorkerProcess(env, name=f"{queue}-{len(started)}@%h", queues=queue, pool=pool, purge=False)
        started.append(worker)
        worker.wait_ready(READY_TIMEOUT_S)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def receiver():
    server = Receiver(hold=threading.Event()).start()
    yield server
    server.stop()


def notification_to(team, url: str) -> Notification:
    detector = watched_detector(team)
    rule(team, [webhook(team, url)], detectors=[detector])
    [notification_id] = alerts_open(anomaly_ids=[incident(detector).pk])
    return Notification.objects.get(pk=notification_id)


def wait_sent(notification: Notification, workers, nudge=None) -> Notification:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        notification.refresh_from_db()
        if notification.status == NotificationStatus.SENT:
            return notification
        if nudge:
            nudge()
        time.sleep(0.5)
    raise AssertionError("not sent; workers said:\n" + "\n".join(w.output() for w in workers))


def assert_once_by_key(notification: Notification, receiver: Receiver) -> None:
    time.sleep(1)  # a third copy would arrive by now
    keys = [r.headers["X-Idempotency-Key"] for r in receiver.requests]
    assert keys == [f"notification-{notification.pk}"] * 2  # reached it, then again after the kill
    assert len(set(keys)) == 1 and all(r.signature_ok() for r in receiver.requests)
    statuses = list(notification.delivery_attempts.order_by("number").values_list("status", flat=True))
    assert statuses == [AttemptStatus.ABANDONED, AttemptStatus.SENT] and notification.attempts == 2


def test_a_killed_pool_process_puts_the_send_back_and_it_goes_out_once(team, receiver, start_worker, queue):
    worker = start_worker("prefork")
    notification = notification_to(team, receiver.url + "/hook")
    tasks.send_notification.apply_async((notification.pk,), queue=queue)
    assert receiver.arrived.wait(30), worker.output()
    [child] = psutil.Process(worker.process.pid).children()
    os.kill(child.pid, signal.SIGKILL)
    receiver.hold.set()  # later requests are answered at once
    assert_once_by_key(wait_sent(notification, [worker]), receiver)
    assert "WorkerLostError" in worker.output(200) or "exited prematurely" in worker.output(200)


def test_a_killed_worker_is_replaced_and_the_sweep_finishes_its_send_once(
    team, receiver, start_worker, queue, settings
):
    settings.ALERTS_REDISPATCH_SECONDS = 1
    first = start_worker("solo")
    notification = notification_to(team, receiver.url + "/hook")
    tasks.send_notification.apply_async((notification.pk,), queue=queue)
    assert receiver.arrived.wait(30), first.output()
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    receiver.hold.set()
    second = start_worker("solo")

    def beat_tick():  # what beat's redispatch_due does every ALERTS_SWEEP_SECONDS, to this test's queue
        for notification_id in notifications_redispatch_due():
            tasks.send_notification.apply_async((notification_id,), queue=queue)

    assert_once_by_key(wait_sent(notification, [first, second], nudge=beat_tick), receiver)
