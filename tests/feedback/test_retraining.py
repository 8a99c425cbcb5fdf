"""Retraining from labels: a candidate that is better on the latest labels is promoted, a worse one never."""

from datetime import timedelta

import pytest

from detectors.models import ModelStatus, ModelVersion
from feedback.models import AuditLog, Retraining, RetrainingStatus, RetrainingTrigger, Verdict
from feedback.services.labels import anomalies_label
from feedback.services.retraining import retraining_rollback, retraining_run
from tests.detectors.helpers import utc
from tests.feedback.helpers import FAULT, NOISE, make_incident

pytestmark = pytest.mark.django_db


def _label_history(detector, user, verdict_of) -> None:
    """Twelve incidents per series, alternating noise and faults, labelled by `verdict_of(i, kind)`."""
    series_ids = list(ModelVersion.objects.filter(detector=detector).values_list("series_id", flat=True).distinct())
    for i in range(12):
        kind = NOISE if i % 2 == 0 else FAULT
        for series_id in series_ids:
            incident = make_incident(detector, series_id, utc("2024-01-01") + timedelta(days=i), kind)
            anomalies_label(anomalies=[incident], verdict=verdict_of(i, kind), user=user)


def test_a_better_candidate_is_promoted_and_can_be_rolled_back(trained, teammate):
    before = {v.series_id: v.pk for v in ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE)}
    _label_history(trained, teammate, lambda i, kind: Verdict.CONFIRMED if kind is FAULT else Verdict.FALSE_POSITIVE)
    retraining = Retraining.objects.create(detector=trained, trigger=RetrainingTrigger.MANUAL)
    retraining = retraining_run(retraining_id=retraining.pk)
    assert retraining.status == RetrainingStatus.PROMOTED, retraining.decision
    figures = retraining.metrics
    assert figures["candidate"]["f_beta"] > figures["active"]["f_beta"]
    assert figures["candidate"]["fp"] < figures["active"]["fp"]
    active = ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE)
    assert set(active.values_list("reason", flat=True)) == {"feedback"}
    assert all(v.triage and v.metrics["replaces"] == before[v.series_id] for v in active)
    assert retraining.labels.count() == 36
    assert AuditLog.objects.filter(action="model.promote", target_id=retraining.pk).exists()

    assert retraining_rollback(retraining=retraining, user=teammate) == 3
    restored = ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE)
    assert {v.series_id: v.pk for v in restored} == before


def test_a_worse_candidate_is_never_promoted(trained, teammate):
    """Early labels say faults are real and noise is not; the latest say the opposite. A candidate that learnt
    the early lesson does worse than the active version on the latest labels, so it stays a candidate."""
    before = set(ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE).values_list("pk", flat=True))

    def verdict_of(i, kind):
        real = kind is FAULT if i < 8 else kind is NOISE
        return Verdict.CONFIRMED if real else Verdict.FALSE_POSITIVE

    _label_history(trained, teammate, verdict_of)
    retraining = Retraining.objects.create(detector=trained, trigger=RetrainingTrigger.MANUAL)
    retraining = retraining_run(retraining_id=retraining.pk)
    assert retraining.status == RetrainingStatus.REJECTED, retraining.decision
    assert retraining.metrics["candidate"]["f_beta"] <= retraining.metrics["active"]["f_beta"]
    after = set(ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE).values_list("pk", flat=True))
    assert after == before
    assert set(retraining.candidates.values_list("status", flat=True)) == {ModelStatus.CANDIDATE}


def test_too_few_labels_skip_the_retraining(trained, teammate):
    series_id = ModelVersion.objects.filter(detector=trained).values_list("series_id", flat=True).first()
    incident = make_incident(trained, series_id, utc("2024-01-05"), FAULT)
    anomalies_label(anomalies=[incident], verdict=Verdict.CONFIRMED, user=teammate)
    retraining = Retraining.objects.create(detector=trained, trigger=RetrainingTrigger.MANUAL)
    assert retraining_run(retraining_id=retraining.pk).status == RetrainingStatus.SKIPPED
    assert not retraining.candidates.exists()


def test_enough_new_labels_queue_a_retraining(trained, teammate, django_capture_on_commit_callbacks):
    trained.retrain_after_labels = 3
    trained.save()
    series_id = ModelVersion.objects.filter(detector=trained).values_list("series_id", flat=True).first()
    for day in range(3):
        incident = make_incident(trained, series_id, utc("2024-01-05") + timedelta(days=day), NOISE)
        anomalies_label(anomalies=[incident], verdict=Verdict.FALSE_POSITIVE, user=teammate)
    queued = Retraining.objects.get(detector=trained)
    assert (queued.trigger, queued.status) == (RetrainingTrigger.LABELS, RetrainingStatus.QUEUED)
