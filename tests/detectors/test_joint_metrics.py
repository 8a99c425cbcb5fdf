"""Several metrics of one entity (series with the same labels) scored jointly by a multivariate detector.

Each host reports `cpu` and `mem`, and mem follows cpu. The faults are injected on host a only: a broken
relation (mem drifts away from cpu while staying inside its own usual range) or a level shift of mem.
"""

import numpy as np
import pandas as pd
import pytest

from detectors.models import Anomaly, IncidentStatus, ModelStatus, ModelVersion, RunTrigger, SeriesCursor
from detectors.services import runs
from detectors.services.configs import detector_create
from detectors.services.modelling import detector_train
from ingestion.models import Series
from tests.detectors.helpers import load
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db

N = 1600
TRAIN = 1300  # points stored before the detectors start watching
FAULT = slice(1300, 1400)
TS = pd.date_range("2024-01-01", periods=N, freq="5min", tz="UTC")


def wander(n, rng, phi=0.95, sd=0.6):
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.normal(0, sd)
    return x


def host_metrics(seed, fault=None):
    """cpu wanders (no seasonality); mem = 0.8 cpu + 10 plus a little noise, unless a fault is injected."""
    rng = np.random.default_rng(seed)
    cpu = 50 + 3 * wander(N, rng)
    mem = 0.8 * cpu + 10 + rng.normal(0, 0.5, N)
    width = FAULT.stop - FAULT.start
    if fault == "relation":  # mem drifts from cpu and back: a smooth bump, inside mem's own range
        mem[FAULT] += 7 * np.sin(np.pi * np.arange(width) / width)
    elif fault == "level":
        mem[FAULT] += 15
    return {"cpu": cpu, "mem": mem}


def frame(hosts, rows, metrics=("cpu", "mem")):
    """Long rows of the given hosts' metrics over `rows`, labelled {host: ...}."""
    parts = []
    for host, values in hosts.items():
        for metric in metrics:
            part = pd.DataFrame({"metric": metric, "ts": TS[rows], "value": values[metric][rows]})
            part["labels"] = [{"host": host}] * len(part)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def series(dataset, host, metric):
    return Series.objects.get(dataset=dataset, metric=metric, labels={"host": host})


def run(detector, trigger=RunTrigger.MANUAL):
    outcome = runs.run_execute(run=runs.run_create(detector=detector, trigger=trigger))
    assert outcome.status == "succeeded", outcome.error
    return outcome


def in_fault(detector, series_obj):
    return Anomaly.objects.filter(detector=detector, series=series_obj, start_ts__lt=TS[FAULT.stop],
                                  end_ts__gte=TS[FAULT.start])  # fmt: skip


@pytest.fixture
def hosts_with_relation_fault():
    return {"a": host_metrics(1, fault="relation"), "b": host_metrics(3)}


@pytest.fixture
def watched(team, hosts_with_relation_fault):
    """Two hosts' history stored, a joint detector and a per-series one, both with fitted models."""
    dataset = make_dataset(team)
    load(dataset, frame(hosts_with_relation_fault, slice(0, TRAIN)))
    joint = detector_create(dataset=dataset, name="joint", algorithm="auto", joint_metrics=True)
    alone = detector_create(dataset=dataset, name="alone", algorithm="auto")
    run(joint)
    run(alone)
    return dataset, joint, alone


def test_it_finds_a_broken_relation_that_neither_metric_shows_alone(watched, hosts_with_relation_fault):
    dataset, joint, alone = watched
    load(dataset, frame(hosts_with_relation_fault, slice(TRAIN, N)))
    outcome = run(joint)
    run(alone)

    cpu_a, mem_a = series(dataset, "a", "cpu"), series(dataset, "a", "mem")
    assert outcome.series_total == 4 and outcome.points_scored == (N - TRAIN) * 4  # rows x metrics
    found = list(in_fault(joint, cpu_a))
    assert len(found) == 1, [a.explanation.get("text") for a in found]
    incident = found[0]
    assert incident.explanation["series"] == [{"id": cpu_a.pk, "metric": "cpu"}, {"id": mem_a.pk, "metric": "mem"}]
    assert incident.explanation["shape"] == "relation" or "mem" in incident.explanation["columns"]
    assert "mem" in incident.explanation["text"]
    assert not Anomaly.objects.filter(detector=joint, series=mem_a).exists()  # incidents live on the lead
    assert not in_fault(joint, series(dataset, "b", "cpu")).exists()
    # Scored one at a time, each metric stays inside its usual behaviour throughout.
    assert not in_fault(alone, cpu_a).exists() and not in_fault(alone, mem_a).exists()


def test_it_names_the_metric_that_left_its_level(team):
    dataset = make_dataset(team)
    hosts = {"a": host_metrics(1, fault="level"), "b": host_metrics(3)}
    load(dataset, frame(hosts, slice(0, TRAIN)))
    joint = detector_create(dataset=dataset, name="joint", algorithm="auto", joint_metrics=True)
    run(joint)
    load(dataset, frame(hosts, slice(TRAIN, N)))
    run(joint)

    incident = in_fault(joint, series(dataset, "a", "cpu")).get()
    assert list(incident.explanation["columns"]) == ["mem"]
    assert incident.explanation["columns"]["mem"]["peak_sigma"] > 3
    assert "Departed: mem" in incident.explanation["text"]


def test_a_later_run_follows_the_open_incident_without_duplicates(watched, hosts_with_relation_fault):
    dataset, joint, _ = watched
    cpu_a = series(dataset, "a", "cpu")
    load(dataset, frame(hosts_with_relation_fault, slice(TRAIN, 1330)))
    run(joint, RunTrigger.SCHEDULE)
    opened = in_fault(joint, cpu_a).get()
    assert opened.status == IncidentStatus.OPEN

    load(dataset, frame(hosts_with_relation_fault, slice(1330, N)))
    run(joint, RunTrigger.SCHEDULE)
    followed = in_fault(joint, cpu_a).get()  # one incident, the same one
    assert followed.pk == opened.pk and followed.start_ts == opened.start_ts
    assert followed.status == IncidentStatus.CLOSED and followed.end_ts > opened.end_ts
    assert followed.explanation["series"][1]["metric"] == "mem"
    assert SeriesCursor.objects.get(detector=joint, series=cpu_a).scored_until == TS[N - 1]


def test_points_on_a_member_wake_and_get_scored_with_their_entity(team):
    dataset = make_dataset(team)
    hosts = {"a": host_metrics(1), "b": host_metrics(3)}
    load(dataset, frame(hosts, slice(0, TRAIN)))
    live = detector_create(dataset=dataset, name="live", algorithm="auto", joint_metrics=True, realtime=True)
    run(live)
    cpu_a, mem_a = series(dataset, "a", "cpu"), series(dataset, "a", "mem")
    load(dataset, frame({"a": hosts["a"]}, slice(TRAIN, TRAIN + 10), metrics=["cpu"]))
    load(dataset, frame({"a": hosts["a"]}, slice(TRAIN, TRAIN + 5), metrics=["mem"]))
    assert runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=[cpu_a.pk, mem_a.pk]) == [live.pk]
    first = runs.realtime_score_pending(detector_id=live.pk)
    assert first.points_scored == 5 * 2  # only the rows both metrics have
    cursor = SeriesCursor.objects.get(detector=live, series=cpu_a)
    assert cursor.scored_until == TS[TRAIN + 4] and not cursor.pending

    load(dataset, frame({"a": hosts["a"]}, slice(TRAIN + 5, TRAIN + 10), metrics=["mem"]))  # the member catches up
    assert runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=[mem_a.pk]) == [live.pk]
    assert SeriesCursor.objects.get(detector=live, series=cpu_a).pending
    second = runs.realtime_score_pending(detector_id=live.pk)
    assert second.points_scored == 5 * 2 and second.series_total == 2
    cursor.refresh_from_db()
    assert cursor.scored_until == TS[TRAIN + 9] and not cursor.pending


def test_points_on_a_member_during_a_realtime_run_keep_the_entity_pending(team):
    dataset = make_dataset(team)
    hosts = {"a": host_metrics(1)}
    load(dataset, frame(hosts, slice(0, TRAIN)))
    live = detector_create(dataset=dataset, name="live", algorithm="auto", joint_metrics=True, realtime=True)
    cpu_a = series(dataset, "a", "cpu")
    load(dataset, frame(hosts, slice(TRAIN, TRAIN + 5)))
    runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=[cpu_a.pk])
    claimed = runs.realtime_claim(detector_id=live.pk)
    load(dataset, frame(hosts, slice(TRAIN + 5, TRAIN + 6), metrics=["mem"]))  # lands while the run scores
    assert runs.realtime_clear_pending(detector_id=live.pk, claimed=claimed) == [cpu_a.pk]


def test_late_points_on_a_member_rescore_the_entity(watched, hosts_with_relation_fault):
    dataset, joint, _ = watched
    cpu_a, mem_a = series(dataset, "a", "cpu"), series(dataset, "a", "mem")
    late = TS[TRAIN - 3]
    moved = runs.late_points_mark(dataset_id=dataset.pk, series_ranges={mem_a.pk: (late, late)})
    assert moved >= 1
    assert SeriesCursor.objects.get(detector=joint, series=cpu_a).rescore_from == late


def test_a_new_metric_of_an_entity_refits_its_model(watched, hosts_with_relation_fault):
    dataset, joint, _ = watched
    cpu_a = series(dataset, "a", "cpu")
    before = ModelVersion.objects.get(detector=joint, series=cpu_a, status=ModelStatus.ACTIVE)
    assert before.state["metrics"] == ["cpu", "mem"]
    with_disk = {"a": {**hosts_with_relation_fault["a"], "disk": hosts_with_relation_fault["a"]["cpu"] / 2}}
    load(dataset, frame(with_disk, slice(0, TRAIN), metrics=["disk"]))
    load(dataset, frame(hosts_with_relation_fault, slice(TRAIN, TRAIN + 20)))
    load(dataset, frame(with_disk, slice(TRAIN, TRAIN + 20), metrics=["disk"]))
    outcome = run(joint)
    assert outcome.series_total == 5
    after = ModelVersion.objects.get(detector=joint, series=cpu_a, status=ModelStatus.ACTIVE)
    assert after.version == before.version + 1 and after.state["metrics"] == ["cpu", "disk", "mem"]
    assert after.state["n_features_in"] == 3


def test_it_trains_one_model_per_entity(watched):
    dataset, joint, _ = watched
    assert detector_train(detector=joint) == 2
    leads = {series(dataset, host, "cpu").pk for host in "ab"}
    active = ModelVersion.objects.filter(detector=joint, status=ModelStatus.ACTIVE)
    assert set(active.values_list("series_id", flat=True)) == leads
    assert all(version.state["metrics"] == ["cpu", "mem"] for version in active)


def test_run_plan_keeps_each_entity_in_one_chunk(team):
    dataset = make_dataset(team)
    metrics = ("cpu", "disk", "mem")
    hosts = {f"h{i:02}": {m: np.full(N, float(i)) for m in metrics} for i in range(17)}  # 51 series
    load(dataset, frame(hosts, slice(0, 3), metrics=metrics))
    joint = detector_create(dataset=dataset, name="joint", algorithm="auto", joint_metrics=True)
    run_ = runs.run_create(detector=joint, trigger=RunTrigger.MANUAL)
    chunks = runs.run_plan(run=run_)
    entity_of = dict(Series.objects.filter(dataset=dataset).values_list("pk", "labels__host"))
    assert run_.series_total == 51 and sorted(sum(chunks, [])) == sorted(entity_of)
    assert all(len(chunk) <= runs.CHUNK_SIZE for chunk in chunks)
    hosts_per_chunk = [{entity_of[sid] for sid in chunk} for chunk in chunks]
    for i, chunk_hosts in enumerate(hosts_per_chunk):
        others = set().union(*(h for j, h in enumerate(hosts_per_chunk) if j != i))
        assert not chunk_hosts & others  # no host is split across chunks


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"algorithm": "zscore"}, "multivariate"),
        ({"algorithm": "auto", "metric": "cpu"}, "metric empty"),
    ],
)
def test_the_api_refuses_joint_metrics_it_cannot_score(owner_client, team, fields, said):
    dataset = make_dataset(team)
    body = {"dataset": dataset.pk, "name": "joint", "joint_metrics": True, **fields}
    response = owner_client.post("/api/v1/detectors", body, format="json")
    assert response.status_code == 400
    assert said in response.json()["detail"] and response.json()["field"] == "joint_metrics"


def test_the_api_shows_the_option(owner_client, team):
    dataset = make_dataset(team)
    body = {"dataset": dataset.pk, "name": "joint", "joint_metrics": True, "algorithm": "ensemble"}
    response = owner_client.post("/api/v1/detectors", body, format="json")
    assert response.status_code == 201, response.json()
    assert owner_client.get(f"/api/v1/detectors/{response.json()['id']}").json()["joint_metrics"] is True


def test_the_admin_form_refuses_a_single_series_algorithm(client, owner, team):
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    dataset = make_dataset(team)
    response = client.post(
        "/admin/detectors/detector/add/",
        {"dataset": dataset.pk, "name": "joint", "enabled": "on", "metric": "", "label_filter": "{}",
         "joint_metrics": "on", "algorithm": "mad", "params": "{}", "sensitivity": 0.5, "training_points": 2000,
         "close_after": 10, "adapt_after": 0, "mask_after": 0, "forecast_level": 95, "retrain_after_labels": 10,
         "feedback_beta": 2.0},
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with the error
    assert "needs a multivariate algorithm" in response.content.decode()
    assert not dataset.detectors.exists()


def test_the_admin_api_and_review_queue_show_the_entitys_incident(
    watched, hosts_with_relation_fault, owner, owner_client
):
    from django.contrib.auth import get_user_model
    from django.test import Client

    dataset, joint, _ = watched
    load(dataset, frame({"a": host_metrics(1, fault="level"), "b": hosts_with_relation_fault["b"]}, slice(TRAIN, N)))
    run(joint)
    cpu_a = series(dataset, "a", "cpu")
    incident = in_fault(joint, cpu_a).get()

    listed = owner_client.get("/api/v1/anomalies", {"detector": joint.pk}).json()["results"]
    shown = next(a for a in listed if a["id"] == incident.pk)
    assert shown["metric"] == "cpu" and "mem" in shown["explanation"]["columns"]

    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    detector_page = staff.get(f"/admin/detectors/detector/{joint.pk}/change/").content.decode()
    assert "<svg" in detector_page and "cpu{host=a}" in detector_page
    anomalies_page = staff.get("/admin/detectors/anomaly/").content.decode()
    assert "cpu{host=a} with mem" in anomalies_page

    analyst = Client()
    analyst.force_login(owner)
    item = analyst.get(f"/review/{incident.pk}/").content.decode()
    assert "Scored together: cpu, mem" in item and "<b>mem</b>" in item


def test_a_backfill_scores_the_entity_with_a_model_fitted_before_its_window(team, hosts_with_relation_fault):
    dataset = make_dataset(team)
    load(dataset, frame(hosts_with_relation_fault, slice(0, N)))
    joint = detector_create(dataset=dataset, name="joint", algorithm="auto", joint_metrics=True)
    runs.run_execute(run=runs.run_create(detector=joint, trigger=RunTrigger.BACKFILL, start=TS[TRAIN]))

    incident = in_fault(joint, series(dataset, "a", "cpu")).get()
    assert [m["metric"] for m in incident.explanation["series"]] == ["cpu", "mem"]
    assert not Anomaly.objects.filter(detector=joint, series__metric="mem").exists()


def test_a_new_metric_that_sorts_first_becomes_the_lead_and_carries_on(watched, hosts_with_relation_fault):
    dataset, joint, _ = watched
    host_a = hosts_with_relation_fault["a"]
    with_bytes = {"a": {**host_a, "bytes": host_a["cpu"] * 3}}  # "bytes" sorts before "cpu"
    load(dataset, frame(with_bytes, slice(0, TRAIN + 20), metrics=["bytes"]))
    load(dataset, frame(hosts_with_relation_fault, slice(TRAIN, TRAIN + 20)))
    outcome = run(joint)

    new_lead = series(dataset, "a", "bytes")
    model = ModelVersion.objects.get(detector=joint, series=new_lead, status=ModelStatus.ACTIVE)
    assert model.state["metrics"] == ["bytes", "cpu", "mem"]
    assert outcome.points_scored == 20 * 3 + 20 * 2  # host a from the former lead's cursor on; host b as before
    assert SeriesCursor.objects.get(detector=joint, series=new_lead).scored_until == TS[TRAIN + 19]
