"""dataset_summary: counters from the series, inferred frequency, and records of table datasets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ingestion.api.read_views import dataset_summary_response
from ingestion.models import Dataset, DatasetKind, Point, Record, Series
from ingestion.selectors import dataset_summary, frequency_alias

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def make_series(dataset, times, *, metric="cpu", labels=None) -> Series:
    series = Series.objects.create(dataset=dataset, metric=metric, labels=labels or {})
    Point.objects.bulk_create([Point(series=series, ts=ts, value=float(i)) for i, ts in enumerate(times)])
    if times:
        Series.objects.filter(pk=series.pk).update(point_count=len(times), first_ts=min(times), last_ts=max(times))
    return series


def every(step: timedelta, n: int, start: datetime = T0) -> list[datetime]:
    return [start + step * i for i in range(n)]


def test_it_sums_the_series_counters(team):
    dataset = Dataset.objects.create(team=team, name="web")
    make_series(dataset, every(timedelta(minutes=5), 100), labels={"host": "a"})
    make_series(dataset, every(timedelta(minutes=5), 40, T0 - timedelta(days=1)), labels={"host": "b"})
    make_series(dataset, every(timedelta(minutes=5), 10), metric="mem")
    summary = dataset_summary(dataset=dataset)
    assert summary["series_count"] == 3
    assert summary["metric_count"] == 2
    assert summary["point_count"] == 150
    assert summary["first_ts"] == T0 - timedelta(days=1)
    assert summary["last_ts"] == T0 + timedelta(minutes=5 * 99)
    assert summary["frequency"] == "5min"
    assert summary["frequency_seconds"] == 300.0
    assert summary["record_count"] is None and summary["feature_keys"] is None


def test_it_reads_the_counters_not_the_points(team):
    dataset = Dataset.objects.create(team=team, name="web")
    series = make_series(dataset, every(timedelta(hours=1), 3))
    # Counters are the loader's: the summary trusts them rather than counting points.
    Series.objects.filter(pk=series.pk).update(point_count=1_000_000)
    with CaptureQueriesContext(connection) as queries:
        summary = dataset_summary(dataset=dataset)
    assert summary["point_count"] == 1_000_000
    assert not any("count(*)" in q["sql"].lower() and "ingestion_point" in q["sql"] for q in queries)


def test_it_infers_the_frequency_from_the_latest_points_of_the_largest_series(team):
    dataset = Dataset.objects.create(team=team, name="web")
    # Old data was hourly; the latest 1000+ points are a minute apart, with one gap and some jitter.
    hourly = every(timedelta(hours=1), 50, T0 - timedelta(days=10))
    minutely = every(timedelta(minutes=1), 1200)
    minutely = [ts + timedelta(milliseconds=300 * (i % 2)) for i, ts in enumerate(minutely)]
    del minutely[600:610]
    make_series(dataset, hourly + minutely)
    # A small daily series does not sway it.
    make_series(dataset, every(timedelta(days=1), 5), metric="daily")
    summary = dataset_summary(dataset=dataset)
    assert summary["frequency"] == "1min"
    assert summary["frequency_seconds"] == 60.0


@pytest.mark.parametrize(
    ("step", "alias"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(hours=1), "1h"),
        (timedelta(days=1), "1D"),
        (timedelta(seconds=90), "90s"),
    ],
)
def test_it_names_the_frequency_as_a_pandas_alias(team, step, alias):
    dataset = Dataset.objects.create(team=team, name="web")
    make_series(dataset, every(step, 20))
    assert dataset_summary(dataset=dataset)["frequency"] == alias


def test_it_says_unknown_frequency_when_there_is_too_little_data(team):
    empty = Dataset.objects.create(team=team, name="empty")
    summary = dataset_summary(dataset=empty)
    assert summary["series_count"] == 0 and summary["point_count"] == 0
    assert summary["first_ts"] is None and summary["frequency"] is None and summary["frequency_seconds"] is None
    single = Dataset.objects.create(team=team, name="single")
    make_series(single, [T0])
    assert dataset_summary(dataset=single)["frequency"] is None


def test_it_summarises_the_records_of_a_table_dataset(team):
    dataset = Dataset.objects.create(team=team, name="payments", kind=DatasetKind.TABLE)
    Record.objects.bulk_create(
        [
            Record(dataset=dataset, external_id="t1", ts=T0, features={"amount": 10.5, "country": "DE"}),
            Record(dataset=dataset, external_id="t2", ts=T0 + timedelta(hours=2), features={"amount": 3}),
            Record(dataset=dataset, external_id="t3", ts=None, features={"amount": None, "card": "visa"}),
        ]
    )
    summary = dataset_summary(dataset=dataset)
    assert summary["record_count"] == 3
    assert summary["records_first_ts"] == T0 and summary["records_last_ts"] == T0 + timedelta(hours=2)
    assert summary["feature_keys"] == ["amount", "card", "country"]
    assert summary["feature_types"] == {"amount": ["null", "number"], "card": ["string"], "country": ["string"]}
    assert summary["series_count"] == 0 and summary["frequency"] is None


def test_the_response_helper_serialises_the_summary(team):
    dataset = Dataset.objects.create(team=team, name="web")
    make_series(dataset, every(timedelta(minutes=15), 8))
    response = dataset_summary_response(dataset)
    assert response.status_code == 200
    assert response.data["point_count"] == 8
    assert response.data["frequency"] == "15min"
    assert response.data["first_ts"] == "2024-05-01T00:00:00Z"


def test_frequency_alias():
    assert frequency_alias(300) == "5min"
    assert frequency_alias(7200) == "2h"
    assert frequency_alias(604800) == "7D"
    assert frequency_alias(0.25) == "250ms"
    assert frequency_alias(None) is None
    assert frequency_alias(0) is None


def test_it_summarises_what_the_loader_stored(team, client_for, viewer):
    import pandas as pd

    from ingestion.services import ingest_points

    dataset = Dataset.objects.create(team=team, name="loaded")
    times = pd.date_range("2024-05-01", periods=288, freq="5min", tz="UTC")
    frame = pd.concat(
        [
            pd.DataFrame({"metric": "cpu", "ts": times, "value": range(288), "labels": [{"host": host}] * 288})
            for host in ("a", "b")
        ]
    )
    ingest_points(dataset=dataset, data=frame, source="api_json", user=None)
    summary = dataset_summary(dataset=dataset)
    assert (summary["series_count"], summary["point_count"], summary["frequency"]) == (2, 576, "5min")
    assert summary["last_ts"] == datetime(2024, 5, 1, 23, 55, tzinfo=UTC)

    series = Series.objects.get(dataset=dataset, labels={"host": "b"})
    body = client_for(viewer).get(f"/api/v1/series/{series.pk}/points?resample=1h&agg=max&limit=3").json()
    assert [p["value"] for p in body["points"]] == [11.0, 23.0, 35.0]
    assert body["truncated"] is True and body["next_from"] == "2024-05-01T03:00:00Z"
