"""Verdicts through the API: who may give them, what is stored, and what each one changes."""

import numpy as np
import pytest

from detectors.models import Anomaly, CloseReason, IncidentKind, IncidentStatus, ModelReason, ModelStatus, ReviewStatus
from detectors.services.labelled import without_spans
from feedback.models import AuditLog, Label, LabelSource, Verdict
from feedback.services.retraining import rebaseline
from feedback.services.suppression import suppress_repeats
from ingestion.models import Series

pytestmark = pytest.mark.django_db


def test_analyst_confirms_an_incident(client_for, teammate, incidents):
    incident = incidents[0]
    response = client_for(teammate).post(
        f"/api/v1/anomalies/{incident.pk}/label", {"verdict": "confirmed", "note": "disk died"}, format="json"
    )
    assert response.status_code == 201, response.content
    incident.refresh_from_db()
    assert incident.review_status == ReviewStatus.CONFIRMED
    label = Label.objects.get(anomaly=incident, current=True)
    assert (label.verdict, label.note, label.created_by) == (Verdict.CONFIRMED, "disk died", teammate)
    audit = AuditLog.objects.get(target_type="anomaly", target_id=incident.pk)
    assert (audit.actor, audit.data["verdict"]) == (teammate, "confirmed")


def test_a_new_verdict_replaces_the_old_one_and_keeps_its_history(client_for, teammate, incidents):
    client = client_for(teammate)
    for verdict in ("confirmed", "false_positive"):
        assert client.post(f"/api/v1/anomalies/{incidents[0].pk}/label", {"verdict": verdict}).status_code == 201
    labels = Label.objects.filter(anomaly=incidents[0]).order_by("created_at")
    assert [(x.verdict, x.current) for x in labels] == [("confirmed", False), ("false_positive", True)]
    listed = client.get("/api/v1/labels", {"anomaly": incidents[0].pk, "current": "true"}).json()["results"]
    assert [x["verdict"] for x in listed] == ["false_positive"]


def test_viewer_cannot_label_and_outsider_cannot_see(client_for, viewer, outsider, other_team, incidents):
    url = f"/api/v1/anomalies/{incidents[0].pk}/label"
    assert client_for(viewer).post(url, {"verdict": "confirmed"}).status_code == 403
    assert client_for(outsider).post(url, {"verdict": "confirmed"}).status_code == 404
    assert client_for(outsider).get("/api/v1/labels").json()["results"] == []
    assert not Label.objects.exists()


def test_bad_verdict_and_unknown_ids_are_400_and_label_nothing(client_for, teammate, incidents):
    client = client_for(teammate)
    bad = client.post(f"/api/v1/anomalies/{incidents[0].pk}/label", {"verdict": "maybe"})
    assert bad.status_code == 400 and "verdict" in bad.json()
    missed_here = client.post(f"/api/v1/anomalies/{incidents[0].pk}/label", {"verdict": "missed"})
    assert missed_here.status_code == 400
    bulk = client.post(
        "/api/v1/anomalies/label", {"anomalies": [incidents[0].pk, 10**9], "verdict": "confirmed"}, format="json"
    )
    assert bulk.status_code == 400 and "anomalies" in bulk.json()
    assert not Label.objects.exists()


def test_bulk_verdict(client_for, teammate, incidents):
    ids = [a.pk for a in incidents[:2]]
    response = client_for(teammate).post(
        "/api/v1/anomalies/label", {"anomalies": ids, "verdict": "expected"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert set(Anomaly.objects.filter(pk__in=ids).values_list("review_status", flat=True)) == {"expected"}
    assert AuditLog.objects.filter(action="label").count() == 2


def test_missed_anomaly_on_a_series(client_for, teammate, outsider, other_team, watched):
    series = Series.objects.get(dataset=watched.dataset)
    body = {"start": "2024-01-10T00:00:00Z", "end": "2024-01-10T05:00:00Z", "note": "slow leak"}
    assert client_for(outsider).post(f"/api/v1/series/{series.pk}/missed", body).status_code == 404
    backwards = client_for(teammate).post(f"/api/v1/series/{series.pk}/missed", {**body, "end": "2024-01-09T00:00:00Z"})
    assert backwards.status_code == 400 and "end" in backwards.json()
    response = client_for(teammate).post(f"/api/v1/series/{series.pk}/missed", body)
    assert response.status_code == 201, response.content
    label = Label.objects.get(verdict=Verdict.MISSED)
    assert (label.series, label.detector, label.note) == (series, watched, "slow leak")
    marked = label.anomaly
    assert (marked.kind, marked.review_status, marked.status) == (IncidentKind.MISSED, "confirmed", "closed")


def test_false_positive_suppresses_near_identical_incidents(teammate, incidents):
    from feedback.services.labels import anomalies_label

    first, second = incidents[0], incidents[1]
    anomalies_label(anomalies=[first], verdict=Verdict.FALSE_POSITIVE, user=teammate)
    assert suppress_repeats(anomaly_ids=[second.pk]) == [second.pk]
    second.refresh_from_db()
    assert second.review_status == ReviewStatus.SUPPRESSED
    auto = Label.objects.get(anomaly=second)
    assert (auto.source, auto.similar_to.anomaly_id) == (LabelSource.SIMILARITY, first.pk)


def test_false_positive_does_not_suppress_a_different_incident(teammate, incidents):
    from feedback.services.labels import anomalies_label

    first, second = incidents[0], incidents[1]
    Anomaly.objects.filter(pk=second.pk).update(points=first.points * 10, value=-1000.0)
    second.refresh_from_db()
    anomalies_label(anomalies=[first], verdict=Verdict.FALSE_POSITIVE, user=teammate)
    assert suppress_repeats(anomaly_ids=[second.pk]) == []


def test_new_normal_closes_the_incident_and_fits_from_its_start(teammate, incidents, watched):
    from feedback.services.labels import anomalies_label

    incident = incidents[-1]
    Anomaly.objects.filter(pk=incident.pk).update(status=IncidentStatus.OPEN, closed_ts=None, close_reason="")
    incident.refresh_from_db()
    anomalies_label(anomalies=[incident], verdict=Verdict.NEW_NORMAL, user=teammate)
    incident.refresh_from_db()
    assert (incident.status, incident.close_reason) == (IncidentStatus.CLOSED, CloseReason.REBASELINED)
    assert incident.review_status == ReviewStatus.NEW_NORMAL
    version_id = rebaseline(detector_id=watched.pk, series_id=incident.series_id, since=incident.start_ts)
    active = watched.model_versions.get(status=ModelStatus.ACTIVE, series_id=incident.series_id)
    assert active.pk == version_id and active.reason == ModelReason.FEEDBACK
    assert active.training_start >= incident.start_ts
    assert rebaseline(detector_id=watched.pk, series_id=incident.series_id, since=incident.start_ts) is None


def test_labelled_spans_are_replaced_by_a_line_before_fitting():
    ts = np.arange(10, dtype=np.int64) * 1_000_000
    values = np.array([0, 1, 2, 3, 100, 100, 6, 7, 8, 9], float)
    cleaned = without_spans(ts, values, [(4_000_000, 5_000_000)])
    assert cleaned.tolist() == list(range(10))
    assert values[4] == 100  # the input is left alone
