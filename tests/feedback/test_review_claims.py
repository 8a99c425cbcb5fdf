"""Two analysts never hold the same incident: claims from concurrent connections, locks and expiry."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from detectors.models import Anomaly
from feedback.models import ReviewClaim
from feedback.services.queue import queue_claim

pytestmark = pytest.mark.django_db(transaction=True)


def in_threads(*calls):
    """Run the calls at the same moment, each in its own thread (so its own database connection)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(10)
            results[i] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_analysts_claiming_at_once_never_get_the_same_incident(owner, teammate, incidents):
    total = len(incidents)
    for _ in range(5):
        alice, bob = in_threads(lambda: queue_claim(user=owner, limit=2), lambda: queue_claim(user=teammate, limit=2))
        alice, bob = {a.pk for a in alice}, {a.pk for a in bob}
        assert not alice & bob
        assert len(alice | bob) == min(4, total)
        held = dict(ReviewClaim.objects.values_list("anomaly_id", "user_id"))
        assert held == {pk: owner.pk for pk in alice} | {pk: teammate.pk for pk in bob}
        ReviewClaim.objects.all().delete()


def test_a_claim_skips_incidents_another_claim_is_locking_without_waiting(teammate, incidents):
    locked, release = threading.Event(), threading.Event()

    def hold_first():
        try:
            with transaction.atomic():
                list(Anomaly.objects.select_for_update().filter(pk=incidents[0].pk))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_first)
    holder.start()
    assert locked.wait(10)
    try:
        started = time.monotonic()
        claimed = {a.pk for a in queue_claim(user=teammate, limit=10)}
        assert time.monotonic() - started < 5
    finally:
        release.set()
        holder.join(10)
    assert claimed == {a.pk for a in incidents[1:]}


def test_an_expired_claim_frees_the_incident(owner, teammate, incidents):
    mine = {a.pk for a in queue_claim(user=teammate, limit=10)}
    assert mine == {a.pk for a in incidents} and queue_claim(user=owner, limit=10) == []
    ReviewClaim.objects.filter(anomaly_id=incidents[0].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert [a.pk for a in queue_claim(user=owner, limit=10)] == [incidents[0].pk]
    assert ReviewClaim.objects.get(anomaly_id=incidents[0].pk).user == owner
