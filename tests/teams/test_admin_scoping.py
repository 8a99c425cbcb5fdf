"""Django admin is team-scoped: staff see their teams' rows only, and change them only with a write role.

Every staff user here holds *all* Django model permissions (the worst case): only their memberships limit them.
- teammate: analyst in Acme, viewer in Initech
- viewer: viewer in Acme
- owner: admin of Acme
Globex (outsider's team) must stay invisible to all of them; a superuser still sees everything.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client

from alerts.models import Alert, AlertRule, Channel, Notification
from alerts.services.alerting import alerts_open
from alerts.services.configs import channel_create, rule_save
from detectors.models import Anomaly, DetectionRun, Detector, ModelStatus, ModelVersion, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.modelling import detector_train
from detectors.services.runs import run_create, run_execute
from feedback.models import AuditLog, Label, Retraining
from feedback.services.labels import anomalies_label
from ingestion.models import Dataset, IngestBatch, Record, Series
from teams.admin_scoping import TeamScopedAdmin
from teams.models import ApiToken, Membership, Role, Team
from teams.services import membership_set, team_create
from tests.detectors.helpers import SPIKES, dataset_with_series, series_frame, utc
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db

# Each admin page, with the lookup from its model to the team.
ADMINS = {
    "ingestion/dataset": (Dataset, "team"),
    "ingestion/series": (Series, "dataset__team"),
    "ingestion/ingestbatch": (IngestBatch, "dataset__team"),
    "ingestion/record": (Record, "dataset__team"),
    "detectors/detector": (Detector, "dataset__team"),
    "detectors/modelversion": (ModelVersion, "detector__dataset__team"),
    "detectors/detectionrun": (DetectionRun, "detector__dataset__team"),
    "detectors/anomaly": (Anomaly, "detector__dataset__team"),
    "alerts/channel": (Channel, "team"),
    "alerts/alertrule": (AlertRule, "team"),
    "alerts/alert": (Alert, "rule__team"),
    "alerts/notification": (Notification, "channel__team"),
    "feedback/label": (Label, "detector__dataset__team"),
    "feedback/auditlog": (AuditLog, "team"),
    "feedback/retraining": (Retraining, "detector__dataset__team"),
    "teams/team": (Team, "pk"),
    "teams/membership": (Membership, "team"),
}
# History: nobody deletes these in the admin, whoever's they are.
NEVER_DELETED = {"feedback/label", "feedback/auditlog", "feedback/retraining"}


def _team_data(team: Team, prefix: str) -> SimpleNamespace:
    """A series dataset with a backfilled detector (runs, models, anomalies) and a table dataset with a record."""
    dataset = dataset_with_series(team, [series_frame(metric=f"{prefix}_cpu", spikes=SPIKES)], name=f"{prefix}-metrics")
    table = make_dataset(team, name=f"{prefix}-table", kind="table")
    record = Record.objects.create(dataset=table, external_id=f"{prefix}-r1", features={"amount": 1})
    detector = detector_create(dataset=dataset, name=f"{prefix} watch", algorithm="zscore")
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    assert detector.anomalies.exists() and detector.model_versions.exists()
    channel = channel_create(team=team, name=f"{prefix} mail", kind="email", config={"to": [f"{prefix}@example.com"]})
    rule_save(rule=AlertRule(team=team, name=f"{prefix} rule", min_severity="low"), sources={"detectors": [detector]},
              channels=[channel])  # fmt: skip
    alerts_open(anomaly_ids=list(detector.anomalies.values_list("pk", flat=True)))
    assert Notification.objects.filter(channel=channel).exists()
    anomalies_label(anomalies=[detector.anomalies.first()], verdict="confirmed", user=None)  # a label, an audit row
    Retraining.objects.create(detector=detector, trigger="manual")
    return SimpleNamespace(team=team, dataset=dataset, record=record, detector=detector)


def _rows(path: str, team: Team):
    model, team_path = ADMINS[path]
    return model.objects.filter(**{team_path: team.pk})


def _pks(path: str, *teams: Team) -> set[int]:
    return {pk for team in teams for pk in _rows(path, team).values_list("pk", flat=True)}


@pytest.fixture
def acme(team):
    return _team_data(team, "acme")


@pytest.fixture
def globex(other_team):
    return _team_data(other_team, "globex")


@pytest.fixture
def initech(teammate):
    team = team_create(name="Initech")
    membership_set(team=team, user=teammate, role=Role.VIEWER)
    return _team_data(team, "initech")


@pytest.fixture
def staff():
    """staff(user) -> a Client signed in as `user`, made staff with every Django model permission."""

    def sign_in(user) -> Client:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        user.user_permissions.set(Permission.objects.all())
        client = Client()
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def root_client(db):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root"))
    return client


def _messages(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def test_it_scopes_every_team_data_admin():
    registered = {model: model_admin for model, model_admin in admin.site._registry.items()}
    for model, _ in ADMINS.values():
        assert isinstance(registered[model], TeamScopedAdmin), model
    assert ApiToken in registered  # tokens are per user, not per team: not part of this scoping


def test_it_lists_only_rows_of_the_users_teams(staff, teammate, acme, globex, initech, root_client):
    client = staff(teammate)
    for path in ADMINS:
        response = client.get(f"/admin/{path}/")
        assert response.status_code == 200, path
        listed = set(response.context["cl"].queryset.values_list("pk", flat=True))
        assert listed == _pks(path, acme.team, initech.team), path
        assert not listed & _pks(path, globex.team), path
        # A superuser still sees everything.
        everything = set(root_client.get(f"/admin/{path}/").context["cl"].queryset.values_list("pk", flat=True))
        assert everything >= _pks(path, acme.team, globex.team, initech.team), path


def test_it_treats_another_teams_pages_as_missing(staff, owner, acme, globex, root_client):
    client = staff(owner)
    for path in ADMINS:
        other = _rows(path, globex.team).first()
        for page in ("change", "delete", "history"):
            response = client.get(f"/admin/{path}/{other.pk}/{page}/")
            if page == "delete" and path in NEVER_DELETED:
                assert response.status_code == 403, path  # for every row, so it tells nothing either
                continue
            assert (response.status_code, response.get("Location")) == (302, "/admin/"), (path, page)
            assert "doesn’t exist" in _messages(response)
        response = client.post(f"/admin/{path}/{other.pk}/delete/", {"post": "yes"})
        if path in NEVER_DELETED:
            assert response.status_code == 403, path
        else:
            assert (response.status_code, response.get("Location")) == (302, "/admin/"), path
        assert _rows(path, globex.team).filter(pk=other.pk).exists(), path
        assert root_client.get(f"/admin/{path}/{other.pk}/change/").status_code == 200, path


def test_it_rejects_another_teams_rows_as_foreign_keys(staff, teammate, acme, globex):
    client = staff(teammate)
    form = client.get("/admin/detectors/detector/add/").context["adminform"].form
    assert set(form.fields["dataset"].queryset) == {acme.dataset, acme.record.dataset}

    detector = {"name": "sneaky", "enabled": "on", "metric": "", "label_filter": "{}", "algorithm": "mad",
                "params": "{}", "sensitivity": "0.5", "training_points": "500", "schedule_interval": "",
                "realtime": ""}  # fmt: skip
    response = client.post("/admin/detectors/detector/add/", {**detector, "dataset": globex.dataset.pk})
    assert "dataset" in response.context["adminform"].form.errors
    assert not Detector.objects.filter(name="sneaky").exists()

    # raw_id_fields: a typed id of another team's dataset is not a valid choice either.
    series = {"metric": "sneaky", "labels": "{}"}
    response = client.post("/admin/ingestion/series/add/", {**series, "dataset": globex.dataset.pk})
    assert "dataset" in response.context["adminform"].form.errors
    assert "globex" not in response.content.decode().lower()  # the rejected id is not named beside the input
    record = {"external_id": "sneaky", "ts_0": "", "ts_1": "", "features": '{"amount": 2}'}
    response = client.post("/admin/ingestion/record/add/", {**record, "dataset": globex.record.dataset.pk})
    assert "dataset" in response.context["adminform"].form.errors
    assert not Series.objects.filter(metric="sneaky").exists() and not Record.objects.filter(external_id="sneaky")

    # Moving one's own dataset into another team is refused too.
    dataset = {"name": "acme-metrics", "description": "", "kind": "timeseries", "duplicate_policy": "keep_first",
               "created_by": "", "team": globex.team.pk}  # fmt: skip
    response = client.post(f"/admin/ingestion/dataset/{acme.dataset.pk}/change/", dataset)
    assert "team" in response.context["adminform"].form.errors
    acme.dataset.refresh_from_db()
    assert acme.dataset.team == acme.team

    # Their own team's dataset is accepted.
    response = client.post("/admin/ingestion/series/add/", {**series, "dataset": acme.dataset.pk})
    assert response.status_code == 302 and acme.dataset.series.filter(metric="sneaky").exists()


def _related_filter_labels(response) -> set[str]:
    specs = [spec for spec in response.context["cl"].filter_specs if isinstance(spec, admin.RelatedFieldListFilter)]
    return {label for spec in specs for _, label in spec.lookup_choices}


def test_it_keeps_other_teams_out_of_list_filters(staff, teammate, acme, globex, initech, root_client):
    client = staff(teammate)
    teams = {"Acme", "Initech"}
    datasets = {"acme-metrics", "acme-table", "initech-metrics", "initech-table"}
    expected = {"ingestion/dataset": teams, "ingestion/series": teams, "ingestion/ingestbatch": datasets,
                "detectors/detector": teams, "detectors/anomaly": {"acme watch", "initech watch"},
                "teams/membership": teams}  # fmt: skip
    for path, labels in expected.items():
        response = client.get(f"/admin/{path}/")
        assert _related_filter_labels(response) == labels, path
        assert "globex" not in response.content.decode().lower(), path
        # A superuser's filters still list every team.
        response = root_client.get(f"/admin/{path}/")
        assert any("globex" in label.lower() for label in _related_filter_labels(response)), path


def test_it_gives_viewers_a_read_only_admin(staff, viewer, acme):
    client = staff(viewer)
    response = client.get(f"/admin/ingestion/dataset/{acme.dataset.pk}/change/")
    assert response.status_code == 200 and response.context["has_change_permission"] is False
    change = {"name": "renamed", "description": "", "kind": "timeseries", "duplicate_policy": "keep_first",
              "created_by": "", "team": acme.team.pk}  # fmt: skip
    assert client.post(f"/admin/ingestion/dataset/{acme.dataset.pk}/change/", change).status_code == 403
    assert client.get(f"/admin/ingestion/dataset/{acme.dataset.pk}/delete/").status_code == 403
    assert client.post(f"/admin/ingestion/dataset/{acme.dataset.pk}/delete/", {"post": "yes"}).status_code == 403
    anomaly = acme.detector.anomalies.first()
    assert client.get(f"/admin/detectors/anomaly/{anomaly.pk}/change/").context["has_change_permission"] is False
    for path in ("ingestion/dataset", "ingestion/series", "ingestion/record", "detectors/detector"):
        assert client.get(f"/admin/{path}/add/").status_code == 403, path

    # No actions on rows they may only view: not offered, and refused when posted anyway.
    response = client.get("/admin/detectors/detector/")
    assert response.status_code == 200 and "run_now" not in response.content.decode()
    runs_before = DetectionRun.objects.count()
    client.post("/admin/detectors/detector/", {"action": "run_now", "_selected_action": [acme.detector.pk]})
    client.post("/admin/ingestion/record/", {"action": "delete_selected", "_selected_action": [acme.record.pk],
                                             "post": "yes"})  # fmt: skip
    assert DetectionRun.objects.count() == runs_before and Record.objects.filter(pk=acme.record.pk).exists()
    acme.dataset.refresh_from_db()
    assert acme.dataset.name == "acme-metrics"


def test_it_runs_actions_only_on_rows_the_user_may_write(staff, teammate, acme, initech):
    client = staff(teammate)  # analyst in Acme, viewer in Initech
    selected = [acme.detector.pk, initech.detector.pk]
    response = client.post("/admin/detectors/detector/", {"action": "run_now", "_selected_action": selected})
    assert response.status_code == 302
    assert "Skipped 1 of 2" in _messages(response)
    manual = DetectionRun.objects.filter(trigger=RunTrigger.MANUAL)
    assert list(manual.values_list("detector", flat=True)) == [acme.detector.pk]

    client.post("/admin/detectors/detector/", {"action": "backtest_history", "_selected_action": selected})
    backtests = DetectionRun.objects.filter(trigger=RunTrigger.BACKTEST)
    assert list(backtests.values_list("detector", flat=True)) == [acme.detector.pk]

    old_versions = []
    for data in (acme, initech):
        detector_train(detector=data.detector)
        old_versions.append(data.detector.model_versions.order_by("version").first())
    activate = {"action": "activate", "_selected_action": [version.pk for version in old_versions]}
    client.post("/admin/detectors/modelversion/", activate)
    statuses = [ModelVersion.objects.get(pk=version.pk).status for version in old_versions]
    assert statuses == [ModelStatus.ACTIVE, ModelStatus.RETIRED]

    records = [acme.record.pk, initech.record.pk]
    client.post("/admin/ingestion/record/", {"action": "delete_selected", "_selected_action": records, "post": "yes"})
    assert list(Record.objects.filter(pk__in=records).values_list("pk", flat=True)) == [initech.record.pk]


def test_it_does_not_let_staff_join_teams_or_raise_their_role(staff, owner, teammate, viewer, outsider, acme, globex):
    own = Membership.objects.get(user=viewer, team=acme.team)
    for user in (viewer, teammate):  # not admins of any team
        client = staff(user)
        join = {"team": globex.team.pk, "user": user.pk, "role": Role.ADMIN}
        assert client.post("/admin/teams/membership/add/", join).status_code == 403
        promote = {"team": acme.team.pk, "user": viewer.pk, "role": Role.ADMIN}
        assert client.post(f"/admin/teams/membership/{own.pk}/change/", promote).status_code == 403
        rename = {"name": "Acme", "slug": "acme"}
        assert client.post(f"/admin/teams/team/{acme.team.pk}/change/", rename).status_code == 403
    own.refresh_from_db()
    assert own.role == Role.VIEWER

    # An admin of Acme manages Acme's members, and only Acme's.
    client = staff(owner)
    form = client.get("/admin/teams/membership/add/").context["adminform"].form
    assert list(form.fields["team"].queryset) == [acme.team]
    response = client.post("/admin/teams/membership/add/", {"team": globex.team.pk, "user": owner.pk, "role": "admin"})
    assert "team" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(team=globex.team, user=owner).exists()
    invite = {"team": acme.team.pk, "user": outsider.pk, "role": Role.VIEWER}
    response = client.post("/admin/teams/membership/add/", invite)
    assert response.status_code == 302 and Membership.objects.get(team=acme.team, user=outsider).role == Role.VIEWER


def test_it_makes_the_creator_admin_of_a_team_created_in_admin(staff, viewer, acme):
    client = staff(viewer)
    inline = {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}  # ignored: no inline on this page
    response = client.post("/admin/teams/team/add/", {"name": "Hooli", "slug": "hooli", **inline})
    assert response.status_code == 302, response.content.decode()[:2000]
    hooli = Team.objects.get(slug="hooli")
    assert Membership.objects.get(team=hooli, user=viewer).role == Role.ADMIN
    assert client.get(f"/admin/teams/team/{hooli.pk}/change/").context["has_change_permission"] is True
