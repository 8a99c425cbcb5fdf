"""Incidents on the platform: opened by one run, extended and closed by later ones, as one pass finds them."""

import numpy as np
import pandas as pd
import pytest

from detectors import signals
from detectors.algorithms import detect
from detectors.models import Anomaly, IncidentStatus, ModelStatus, ModelVersion, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.modelling import algorithm_load
from detectors.services.runs import run_create, run_execute
from ingestion.models import IngestSource, Series
from ingestion.services import ingest_points
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db(transaction=True)

START = pd.Timestamp("2024-01-01", tz="UTC")
SHIFT = slice(2100, 2500)


def sine(n=2800, seed=0):
    rng = np.random.default_rng(seed)
    values = 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    values[SHIFT] += 10
    return pd.date_range(START, periods=n, freq="5min"), values


def send(dataset, ts, values):
    frame = pd.DataFrame({"metric": "latency", "ts": ts, "value": values})
    assert ingest_points(dataset=dataset, data=frame, source=IngestSource.API_JSON).status == "completed"


def run(detector):
    return run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))


@pytest.fixture
def heard():
    got = {"created": [], "resolved": [], "escalated": []}

    def on_created(run_id, anomaly_ids, **_):
        got["created"].append(anomaly_ids)

    def on_resolved(run_id, anomaly_ids, **_):
        got["resolved"].append(anomaly_ids)

    def on_escalated(run_id, anomaly_ids, **_):
        got["escalated"].append(anomaly_ids)

    def broken(**_):
        raise RuntimeError("a receiver that fails")

    signals.anomalies_created.connect(on_created, dispatch_uid="t-created")
    signals.incident_resolved.connect(on_resolved, dispatch_uid="t-resolved")
    signals.incident_escalated.connect(on_escalated, dispatch_uid="t-escalated")
    signals.anomalies_created.connect(broken, dispatch_uid="t-broken")
    yield got
    connected = (("t-created", signals.anomalies_created), ("t-resolved", signals.incident_resolved),
                 ("t-escalated", signals.incident_escalated), ("t-broken", signals.anomalies_created))  # fmt: skip
    for uid, signal in connected:
        signal.disconnect(dispatch_uid=uid)


def test_a_lasting_fault_is_one_incident_followed_across_runs(team, heard):
    dataset = make_dataset(team)
    ts, values = sine()
    send(dataset, ts[:2000], values[:2000])
    detector = detector_create(dataset=dataset, name="latency", algorithm="auto")
    run(detector)  # fits the model; watches from now on
    severities = []
    for lo, hi in ((2000, 2200), (2200, 2400), (2400, 2800)):
        send(dataset, ts[lo:hi], values[lo:hi])
        outcome = run(detector)
        assert outcome.status == "succeeded", outcome.error
        severities.append(Anomaly.objects.filter(detector=detector).values_list("severity", "status").first())
        if hi == 2200:
            incident = Anomaly.objects.get(detector=detector)
            assert incident.status == IncidentStatus.OPEN and incident.start_ts == ts[2100]
        if hi == 2400:
            incident.refresh_from_db()
            assert incident.status == IncidentStatus.OPEN and incident.last_seen == ts[2399]
            assert incident.points >= 290
    incident = Anomaly.objects.get(detector=detector, start_ts=ts[2100])
    assert incident.status == IncidentStatus.CLOSED and incident.close_reason == "recovered"
    assert abs((incident.end_ts - ts[2499]).total_seconds()) <= 5 * 300 and incident.points >= 395
    assert incident.explanation["shape"] == "level"
    assert heard["created"] == [[incident.pk]] and heard["resolved"] == [[incident.pk]]
    # Escalated: each later run that left it open with a higher severity than the run before.
    rank = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    rises = sum(1 for (before, _), (after, status) in zip(severities, severities[1:], strict=False)
                if status == "open" and rank[after] > rank[before])  # fmt: skip
    assert heard["escalated"] == [[incident.pk]] * rises

    # What one pass with the same model finds over the same points.
    series = Series.objects.get(dataset=dataset)
    model = ModelVersion.objects.get(detector=detector, series=series, status=ModelStatus.ACTIVE)
    whole = detect(algorithm_load(version=model), values, ts, alarm_from=2000, threshold=model.threshold)
    assert [(ts[e.start], ts[e.end]) for e in whole.events] == list(
        Anomaly.objects.filter(detector=detector).order_by("start_ts").values_list("start_ts", "end_ts")
    )


def test_late_points_behind_the_cursor_are_scored(team):
    dataset = make_dataset(team)
    ts, values = sine(n=2400)
    values[SHIFT] -= 10  # no shift in this one
    send(dataset, ts[:2000], values[:2000])
    detector = detector_create(dataset=dataset, name="latency", algorithm="auto")
    run(detector)
    send(dataset, ts[2000:2300], values[2000:2300])
    assert run(detector).status == "succeeded"
    assert not Anomaly.objects.filter(detector=detector).exists()
    late = ts[2150] + pd.Timedelta(seconds=150)  # between two points already scored
    send(dataset, [late], [values[2150] + 40])
    assert run(detector).points_scored >= 150
    (incident,) = Anomaly.objects.filter(detector=detector)
    assert incident.start_ts == late
    assert run(detector).points_scored == 0  # done with them


def test_a_new_model_closes_the_open_incident_of_the_old_one_as_superseded(team, heard):
    """A stale model's open incident is not followed by the refitted model: it closes as superseded (and is
    announced as resolved), so the new model's own incidents can be stored."""
    dataset = make_dataset(team)
    ts, values = sine()
    send(dataset, ts[:2000], values[:2000])
    detector = detector_create(dataset=dataset, name="latency", algorithm="auto")
    run(detector)
    send(dataset, ts[2000:2200], values[2000:2200])
    run(detector)
    old = Anomaly.objects.get(detector=detector, status=IncidentStatus.OPEN)
    detector.params = {**detector.params, "long_window": 5000}  # the active model is stale now
    detector.save(update_fields=["params"])
    send(dataset, ts[2200:2800], values[2200:2800])
    assert run(detector).status == "succeeded"
    old.refresh_from_db()
    assert (old.status, old.close_reason, old.closed_ts) == (IncidentStatus.CLOSED, "superseded", old.last_seen)
    assert old.pk in [pk for ids in heard["resolved"] for pk in ids]
    assert Anomaly.objects.filter(detector=detector, status=IncidentStatus.OPEN).count() <= 1
    assert ModelVersion.objects.filter(detector=detector, status=ModelStatus.ACTIVE).get().params["long_window"] == 5000
