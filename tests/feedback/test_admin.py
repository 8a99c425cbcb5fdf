"""Verdicts, retraining and rollback as admin actions; labels, audit log and retrainings listed read-only."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client

from detectors.models import ModelStatus, ModelVersion, ReviewStatus
from detectors.services.modelling import model_version_activate
from feedback.models import AuditLog, Label, Retraining, RetrainingStatus
from feedback.services.labels import anomalies_label

pytestmark = pytest.mark.django_db


def staff(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.all())
    client = Client()
    client.force_login(user)
    return client


def act(client, path: str, action: str, ids: list[int]):
    return client.post(f"/admin/{path}/", {"action": action, "_selected_action": ids}, follow=True)


def messages_of(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def test_an_analyst_labels_incidents_from_the_admin_list(teammate, incidents):
    ids = [a.pk for a in incidents[:2]]
    response = act(staff(teammate), "detectors/anomaly", "label_false_positive", ids)
    assert "Labelled 2 incident(s) false positive." in messages_of(response)
    assert {a.review_status for a in incidents[0].__class__.objects.filter(pk__in=ids)} == {
        ReviewStatus.FALSE_POSITIVE}  # fmt: skip
    assert set(Label.objects.filter(current=True).values_list("anomaly_id", "created_by")) == {
        (pk, teammate.pk) for pk in ids}  # fmt: skip
    assert AuditLog.objects.filter(action="label", actor=teammate).count() == 2


def test_a_viewer_cannot_label_from_the_admin(viewer, incidents):
    client = staff(viewer)
    assert "label_confirmed" not in client.get("/admin/detectors/anomaly/").content.decode()  # not offered
    act(client, "detectors/anomaly", "label_confirmed", [incidents[0].pk])
    assert not Label.objects.exists()


def test_labels_and_the_audit_log_are_listed_read_only_and_scoped(owner, teammate, outsider, other_team, incidents):
    anomalies_label(anomalies=[incidents[0]], verdict="confirmed", user=teammate, note="outage")
    label = Label.objects.get()
    client = staff(owner)
    assert client.get("/admin/feedback/label/").context["cl"].queryset.get() == label
    assert client.get("/admin/feedback/auditlog/").context["cl"].queryset.get().actor == teammate
    assert client.get(f"/admin/feedback/label/{label.pk}/change/").status_code == 200
    assert client.post(f"/admin/feedback/label/{label.pk}/delete/").status_code == 403
    assert client.get("/admin/feedback/label/add/").status_code == 403
    stranger = staff(outsider)
    assert not stranger.get("/admin/feedback/label/").context["cl"].queryset.exists()
    assert stranger.get(f"/admin/feedback/label/{label.pk}/change/").status_code == 302  # "does not exist"


def test_retrain_now_and_roll_back_from_the_admin(owner, watched):
    client = staff(owner)
    response = act(client, "detectors/detector", "retrain_from_labels", [watched.pk])
    assert "Queued 1 retraining(s)" in messages_of(response)
    assert Retraining.objects.get(detector=watched).trigger == "manual"

    old = ModelVersion.objects.get(detector=watched, status=ModelStatus.ACTIVE)
    new = ModelVersion.objects.get(pk=old.pk)
    new.pk, new.version, new.status, new.metrics = None, old.version + 1, ModelStatus.CANDIDATE, {"replaces": old.pk}
    new.save()
    model_version_activate(version=new)
    promoted = Retraining.objects.create(detector=watched, trigger="labels", status=RetrainingStatus.PROMOTED)
    promoted.candidates.add(new)
    response = act(client, "feedback/retraining", "roll_back", [promoted.pk])
    assert "Restored 1 model version(s)." in messages_of(response)
    assert ModelVersion.objects.get(detector=watched, status=ModelStatus.ACTIVE) == old
    assert AuditLog.objects.get(action="model.rollback").actor == owner
    assert client.get(f"/admin/feedback/retraining/{promoted.pk}/change/").status_code == 200
