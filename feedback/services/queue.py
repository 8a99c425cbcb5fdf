"""The review queue: which incidents an analyst sees next, held for them alone for a while.

Order: how much a verdict would teach. An incident whose score sits near its model's threshold is the
one the model is least sure of, and a severe one matters more; the n-th incident of the same detector
counts a little less, so one noisy detector does not fill the whole page.

Two analysts never hold the same incident: the rows are locked with `FOR UPDATE SKIP LOCKED` while a
claim (with an expiry) is written, and incidents claimed by someone else are left out until it expires.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Value,
    When,
    Window,
)
from django.db.models.functions import Abs, Coalesce, RowNumber
from django.utils import timezone

from detectors.algorithms.postprocess import DEFAULT_SENSITIVITY, sensitivity_threshold
from detectors.models import Anomaly
from feedback.models import ReviewClaim
from feedback.selectors import queue_candidates

SEVERITY_WEIGHT = {"low": 1.0, "medium": 1.5, "high": 2.0, "critical": 2.5}
SAME_DETECTOR_DISCOUNT = 0.25  # the n-th incident of one detector weighs 1 / (1 + 0.25 (n - 1))
CANDIDATES = 500
CLAIM_ROUNDS = 3  # rows claimed by someone else meanwhile are replaced by the next free ones


def queue_ordered(*, user, **filters):
    """Unclaimed (or own, or expired) incidents awaiting a verdict, most informative first (not locked)."""
    now = timezone.now()
    threshold = Coalesce(F("model_version__threshold"), Value(sensitivity_threshold(DEFAULT_SENSITIVITY)))
    weight = Case(*(When(severity=k, then=Value(v)) for k, v in SEVERITY_WEIGHT.items()), default=Value(1.0))
    closeness = ExpressionWrapper(Value(1.0) - Abs(F("score") - threshold), output_field=FloatField())
    taken = ReviewClaim.objects.filter(expires_at__gt=now).exclude(user=user).values("anomaly_id")
    return (
        queue_candidates(user=user, **filters)
        .exclude(pk__in=taken)
        .annotate(informative=ExpressionWrapper(closeness * weight, output_field=FloatField()))
        .annotate(nth=Window(RowNumber(), partition_by=[F("detector_id")], order_by=F("informative").desc()))
        .annotate(
            priority=ExpressionWrapper(
                F("informative") / (Value(1.0) + Value(SAME_DETECTOR_DISCOUNT) * (F("nth") - 1)),
                output_field=FloatField(),
            )
        )  # fmt: skip
        .order_by("-priority", "-start_ts")
    )


def queue_claim(*, user, limit: int = 20, **filters) -> list[Anomaly]:
    """Claim up to `limit` incidents for `user` (renewing their own claims) and return them in queue order.

    Only incidents of teams where the user may label: a viewer's claim would hide items from analysts."""
    ordered = list(queue_ordered(user=user, writable=True, **filters).values_list("pk", flat=True)[:CANDIDATES])
    if not ordered:
        return []
    now = timezone.now()
    expires = now + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
    taken = ReviewClaim.objects.filter(expires_at__gt=now).exclude(user=user).values("anomaly_id")
    position = Func(Value(ordered, output_field=ArrayField(BigIntegerField())), F("pk"), function="array_position",
                    output_field=IntegerField())  # fmt: skip
    mine: list[int] = []
    with transaction.atomic():
        # Window functions and FOR UPDATE don't mix: lock in a second statement the first free rows in queue
        # order, skipping the ones another analyst is claiming right now (only as many as needed: locking
        # every candidate would leave an analyst claiming at the same moment an empty page). Then drop the
        # ones whose claim committed after that statement's snapshot (a fresh statement sees it), and try
        # again for as many, since the rows after them are free.
        for _ in range(CLAIM_ROUNDS):
            locked = list(
                Anomaly.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk__in=ordered).exclude(pk__in=taken).exclude(pk__in=mine)
                .annotate(position=position).order_by("position").values_list("pk", flat=True)[: limit - len(mine)]
            )  # fmt: skip
            meanwhile = set(
                ReviewClaim.objects.filter(anomaly_id__in=locked, expires_at__gt=now)
                .exclude(user=user).values_list("anomaly_id", flat=True)
            )  # fmt: skip
            mine += [pk for pk in locked if pk not in meanwhile]
            if not meanwhile or len(mine) >= limit:
                break
        ReviewClaim.objects.bulk_create(
            [ReviewClaim(anomaly_id=pk, user=user, expires_at=expires) for pk in mine],
            update_conflicts=True, unique_fields=["anomaly"], update_fields=["user", "expires_at"],
        )  # fmt: skip
        mine.sort(key=ordered.index)
    found = Anomaly.objects.filter(pk__in=mine).select_related("detector__dataset", "series", "record", "model_version")
    by_pk = {a.pk: a for a in found}
    return [by_pk[pk] for pk in mine if pk in by_pk]


def anomaly_claim(*, user, anomaly: Anomaly) -> ReviewClaim:
    """Hold one incident (opened from a link) unless another analyst holds it; returns the claim in force."""
    now = timezone.now()
    with transaction.atomic():
        Anomaly.objects.select_for_update(of=("self",)).filter(pk=anomaly.pk).first()  # as queue_claim locks
        held = ReviewClaim.objects.filter(anomaly=anomaly, expires_at__gt=now).exclude(user=user).first()
        if held is not None:
            return held
        expires = now + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
        claim, _ = ReviewClaim.objects.update_or_create(anomaly=anomaly, defaults={"user": user, "expires_at": expires})
    return claim


def claim_release(*, user, anomaly_ids: list[int]) -> int:
    """Give incidents back to the queue (a skip): the user's claims on them end now."""
    return ReviewClaim.objects.filter(user=user, anomaly_id__in=anomaly_ids).delete()[0]


def claims_held(*, user) -> list[int]:
    """Ids of the incidents the user holds now, in queue order (the item page's previous and next)."""
    mine = ReviewClaim.objects.filter(user=user, expires_at__gt=timezone.now()).values("anomaly_id")
    return list(queue_ordered(user=user).filter(pk__in=mine).values_list("pk", flat=True))
