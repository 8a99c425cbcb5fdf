"""Work that races: two uploads on one series, and a realtime and a scheduled run on one detector at once.

Each side runs in its own thread with its own database connection, released together by a barrier.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest
from django.db import connection

from detectors.models import Anomaly, DetectionRun, RunStatus, RunTrigger
from detectors.services import runs
from detectors.services.configs import detector_create
from ingestion.models import IngestSource, Point, Series
from ingestion.services import ingest_points
from tests.detectors.helpers import dataset_with_series, load, series_frame
from tests.ingestion.helpers import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _together(*functions) -> list:
    barrier, results = threading.Barrier(len(functions)), [None] * len(functions)

    def run(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as exc:  # reported by the assertion below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not [r for r in results if isinstance(r, Exception)], results
    return results


def _points(start: str, n: int, value: float) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="min", tz="UTC")
    return pd.DataFrame({"metric": "cpu", "ts": ts, "value": value})


def test_two_uploads_racing_on_one_series_lose_and_double_nothing(team):
    dataset = make_dataset(team)
    load(dataset, _points("2024-01-01", 10, 0.0))  # the series exists, its last point at 00:09
    first = _points("2024-01-01 00:05", 20_000, 1.0)  # overlaps the stored points and the other upload
    second = _points("2024-01-01 00:10", 30_000, 2.0)
    upload = lambda frame: lambda: ingest_points(dataset=dataset, data=frame, source=IngestSource.API_JSON)  # noqa: E731

    batches = _together(upload(first), upload(second))

    stored = Point.objects.filter(series__dataset=dataset)
    expected = set(_points("2024-01-01", 10, 0).ts) | set(first.ts) | set(second.ts)
    assert stored.count() == len(expected) == 30_010
    series = Series.objects.get(dataset=dataset)
    assert series.point_count == 30_010 and series.last_ts == max(expected)
    assert sum(b.inserted for b in batches) == 30_000  # the rest counted as duplicates, once each
    assert sum(b.inserted + b.duplicate for b in batches) == 50_000


def test_a_realtime_and_a_scheduled_run_at_once_store_each_incident_once(team):
    dataset = dataset_with_series(team, [series_frame(n=300)])
    detector = detector_create(dataset=dataset, name="both", algorithm="zscore", realtime=True,
                               schedule_interval=timedelta(minutes=5))  # fmt: skip
    series_ids = list(Series.objects.filter(dataset=dataset).values_list("pk", flat=True))
    runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids)
    runs.realtime_score_pending(detector_id=detector.pk)  # watches from its latest point on
    load(dataset, series_frame(start="2024-01-13T12:00:00Z", n=200, spikes=(100, 150), seed=4))
    runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids)
    scheduled = runs.run_create(detector=detector, trigger=RunTrigger.SCHEDULE)

    _together(
        lambda: runs.realtime_score_pending(detector_id=detector.pk),
        lambda: runs.run_execute(run=DetectionRun.objects.get(pk=scheduled.pk)),
    )

    anomalies = list(Anomaly.objects.filter(detector=detector).values_list("series_id", "start_ts"))
    assert anomalies and len(anomalies) == len(set(anomalies))
    assert Anomaly.objects.filter(detector=detector, status="open").count() <= 1
    finished = DetectionRun.objects.filter(detector=detector).exclude(trigger=RunTrigger.BACKFILL)
    assert {r.status for r in finished} == {RunStatus.SUCCEEDED}, [r.error for r in finished]
    assert sum(r.anomalies_found for r in finished) == len(anomalies)
