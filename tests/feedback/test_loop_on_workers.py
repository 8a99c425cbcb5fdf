"""The loop through the broker and a real worker: labels queue a retraining, a new normal refits a series."""

from __future__ import annotations

import pytest

from detectors.models import Anomaly, ModelReason, ModelStatus, ModelVersion
from feedback.models import Retraining, RetrainingStatus
from tests.detectors.helpers import utc
from tests.detectors.test_detection_on_workers import wait_for
from tests.feedback.helpers import FAULT, NOISE, make_incident

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_enough_labels_retrain_the_detector_on_a_worker(celery_worker, trained, client_for, teammate):
    from datetime import timedelta

    trained.retrain_after_labels = 24
    trained.save(update_fields=["retrain_after_labels"])
    series_ids = list(ModelVersion.objects.filter(detector=trained).values_list("series_id", flat=True).distinct())
    client = client_for(teammate)
    for i in range(8):
        kind = NOISE if i % 2 == 0 else FAULT
        ids = [make_incident(trained, sid, utc("2024-01-01") + timedelta(days=i), kind).pk for sid in series_ids]
        verdict = "confirmed" if kind is FAULT else "false_positive"
        response = client.post("/api/v1/anomalies/label", {"anomalies": ids, "verdict": verdict}, format="json")
        assert response.status_code == 201, response.content
    done = wait_for(
        lambda: Retraining.objects.filter(detector=trained, status=RetrainingStatus.PROMOTED).first(),
        celery_worker, "the retraining",
    )  # fmt: skip
    assert done.labels.count() == 24
    assert len(client.get(f"/api/v1/retrainings/{done.pk}").json()["labels"]) == 24
    active = ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE)
    assert set(active.values_list("reason", flat=True)) == {ModelReason.FEEDBACK}
    listed = client.get("/api/v1/retrainings", {"detector": trained.pk}).json()["results"]
    assert listed[0]["status"] == "promoted" and listed[0]["metrics"]["candidate"]["f_beta"] > 0


def test_new_normal_refits_the_series_on_a_worker(celery_worker, trained, client_for, teammate):
    version = ModelVersion.objects.filter(detector=trained, status=ModelStatus.ACTIVE).first()
    incident = make_incident(trained, version.series_id, utc("2024-01-20"), FAULT)
    Anomaly.objects.filter(pk=incident.pk).update(status="open", closed_ts=None)
    response = client_for(teammate).post(f"/api/v1/anomalies/{incident.pk}/label", {"verdict": "new_normal"})
    assert response.status_code == 201
    refit = wait_for(
        lambda: ModelVersion.objects.filter(
            detector=trained, series_id=version.series_id, status=ModelStatus.ACTIVE, reason=ModelReason.FEEDBACK
        ).first(),
        celery_worker, "the refit from the new level",
    )  # fmt: skip
    assert refit.training_start >= incident.start_ts
    incident.refresh_from_db()
    assert (incident.status, incident.close_reason) == ("closed", "rebaselined")
