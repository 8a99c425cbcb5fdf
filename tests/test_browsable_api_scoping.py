"""The browsable API's filter forms list only the caller's objects, and filters do not reveal other teams' ids."""

import pytest
from rest_framework.test import APIClient

from alerts.models import AlertRule
from alerts.services.alerting import alerts_open
from alerts.services.configs import channel_create, rule_save
from detectors.models import RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from ingestion.models import IngestSource
from ingestion.services import ingest_records
from tests.detectors.helpers import SPIKES, dataset_with_series, series_frame, utc
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db

LISTS = [
    "datasets", "batches", "series", "detectors", "runs", "anomalies", "model-versions", "teams", "tokens",
    "channels", "alert-rules", "alerts", "notifications",
]  # fmt: skip
SECRET = "acme-secret"


@pytest.fixture
def acme_data(team):
    dataset = dataset_with_series(team, [series_frame(metric=f"{SECRET}-metric", spikes=SPIKES)], name=f"{SECRET}-ds")
    detector = detector_create(dataset=dataset, name=f"{SECRET}-detector", algorithm="zscore")
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    table = make_dataset(team, name=f"{SECRET}-table", kind="table")
    ingest_records(dataset=table, data=[{"external_id": f"{SECRET}-record", "x": 1.0}], source=IngestSource.API_JSON)
    assert detector.anomalies.exists()
    channel = channel_create(team=team, name=f"{SECRET}-channel", kind="email", config={"to": ["a@example.com"]})
    rule = rule_save(rule=AlertRule(team=team, name=f"{SECRET}-rule"), sources={"detectors": [detector]},
                     channels=[channel])  # fmt: skip
    alerts_open(anomaly_ids=list(detector.anomalies.values_list("pk", flat=True)))
    assert rule.alerts.exists()
    return {"dataset": dataset, "detector": detector, "table": table, "channel": channel, "rule": rule}


@pytest.fixture
def outsider_browser(outsider, other_team):
    client = APIClient()
    client.force_login(outsider)
    return client


@pytest.mark.parametrize("name", LISTS)
def test_it_renders_no_other_teams_objects_in_filter_forms(outsider_browser, acme_data, name):
    response = outsider_browser.get(f"/api/v1/{name}?format=api")
    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET not in page
    assert ">Acme<" not in page


@pytest.mark.parametrize(
    ("name", "field", "target"),
    [
        ("detectors", "dataset", "dataset"),
        ("batches", "dataset", "dataset"),
        ("datasets", "team", None),
        ("runs", "detector", "detector"),
        ("anomalies", "detector", "detector"),
        ("anomalies", "dataset", "dataset"),
        ("model-versions", "detector", "detector"),
        ("channels", "team", None),
        ("alert-rules", "team", None),
        ("alerts", "rule", "rule"),
        ("alerts", "detector", "detector"),
        ("notifications", "channel", "channel"),
    ],
)
def test_it_answers_another_teams_id_like_an_id_that_does_not_exist(outsider_client, acme_data, name, field, target):
    acme_id = acme_data[target].pk if target else acme_data["dataset"].team_id
    theirs = outsider_client.get(f"/api/v1/{name}", {field: acme_id})
    missing = outsider_client.get(f"/api/v1/{name}", {field: 10**9})
    assert theirs.status_code == missing.status_code == 200
    assert theirs.json()["results"] == missing.json()["results"] == []


def test_it_refuses_an_id_that_is_not_a_whole_number(outsider_client):
    assert outsider_client.get("/api/v1/detectors", {"dataset": "1.5"}).status_code == 400
