"""Detectors on table datasets: each record scored on its own features."""

import numpy as np
import pytest

from common.exceptions import ApplicationError
from detectors.models import Anomaly, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from ingestion.models import IngestSource, Record
from ingestion.services import ingest_records
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def table(team):
    rng = np.random.default_rng(4)
    rows = [
        {"external_id": f"t{i}", "ts": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
         "amount": float(rng.normal(50, 5)), "items": int(rng.integers(1, 4)), "country": ["FR", "DE"][i % 2]}
        for i in range(400)
    ]  # fmt: skip
    rows[300].update(amount=900.0, items=40)
    dataset = make_dataset(team, name="orders", kind="table")
    assert ingest_records(dataset=dataset, data=rows, source=IngestSource.API_JSON).status == "completed"
    return dataset


def test_it_flags_the_odd_record_and_explains_it(table):
    detector = detector_create(dataset=table, name="orders", algorithm="gmm")
    run = run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL))
    assert run.status == "succeeded" and run.points_scored == 400 - 60
    odd = Record.objects.get(dataset=table, external_id="t300")
    anomaly = Anomaly.objects.get(detector=detector, record=odd)
    assert set(anomaly.explanation["features"]) & {"amount", "items"}
    assert anomaly.explanation["text"].startswith("This record looked unusual, mostly by ")
    rerun = run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL))
    assert rerun.anomalies_found == 0  # no duplicates


def test_it_scores_only_new_records_on_later_runs(table):
    detector = detector_create(dataset=table, name="orders", algorithm="isolation_forest")
    assert run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL)).points_scored == 0
    rows = [{"external_id": f"n{i}", "amount": 50.0 + i, "items": 2, "country": "FR"} for i in range(5)]
    ingest_records(dataset=table, data=rows, source=IngestSource.API_JSON)
    assert run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL)).points_scored == 5


def test_it_refuses_a_series_algorithm_on_a_table(table):
    with pytest.raises(ApplicationError, match="table dataset needs"):
        detector_create(dataset=table, name="bad", algorithm="zscore")


def test_a_scheduled_table_detector_runs_on_schedule(table):
    from datetime import timedelta

    from django.utils import timezone

    from detectors.models import DetectionRun
    from detectors.services.runs import detectors_dispatch_due

    detector = detector_create(dataset=table, name="orders", algorithm="gmm", schedule_interval=timedelta(minutes=5))
    started = detectors_dispatch_due(now=timezone.now() + timedelta(minutes=6))
    assert DetectionRun.objects.filter(pk__in=started, detector=detector, trigger=RunTrigger.SCHEDULE).exists()
