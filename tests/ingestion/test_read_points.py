"""GET /api/v1/series/{id}/points: raw and resampled points, ranges, limits, scoping and errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.models import Dataset, Point, Series
from ingestion.selectors import series_points

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)


def make_series(dataset, points, *, metric="cpu", labels=None) -> Series:
    series = Series.objects.create(dataset=dataset, metric=metric, labels=labels or {})
    Point.objects.bulk_create([Point(series=series, ts=ts, value=value) for ts, value in points])
    if points:
        times = [ts for ts, _ in points]
        Series.objects.filter(pk=series.pk).update(point_count=len(points), first_ts=min(times), last_ts=max(times))
    series.refresh_from_db()
    return series


@pytest.fixture
def series(team):
    dataset = Dataset.objects.create(team=team, name="web")
    # One point a minute from 00:00 to 00:11, values 0..11.
    return make_series(dataset, [(T0 + timedelta(minutes=i), float(i)) for i in range(12)])


def url(series, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/api/v1/series/{series.pk}/points" + (f"?{query}" if query else "")


def values(response) -> list:
    assert response.status_code == 200, response.content
    return [point["value"] for point in response.json()["points"]]


def test_it_returns_raw_points_to_a_viewer(client_for, viewer, series):
    response = client_for(viewer).get(url(series))
    assert values(response) == [float(i) for i in range(12)]
    body = response.json()
    assert body["points"][0]["ts"] == "2024-05-01T00:00:00Z"
    assert body["count"] == 12
    assert body["truncated"] is False and body["next_from"] is None
    assert body["resample"] is None and body["agg"] is None


def test_it_returns_points_to_an_analyst(client_for, teammate, series):
    assert len(values(client_for(teammate).get(url(series)))) == 12


def test_it_hides_another_teams_series_and_points(outsider_client, series):
    assert outsider_client.get(f"/api/v1/series/{series.pk}").status_code == 404
    assert outsider_client.get(url(series)).status_code == 404
    assert outsider_client.get(url(series, resample="5min")).status_code == 404


def test_it_requires_authentication(series):
    from rest_framework.test import APIClient

    assert APIClient().get(url(series)).status_code in (401, 403)


def test_it_filters_from_inclusive_to_exclusive(client_for, viewer, series):
    response = client_for(viewer).get(url(series, **{"from": "2024-05-01T00:03:00Z", "to": "2024-05-01T00:06:00Z"}))
    assert values(response) == [3.0, 4.0, 5.0]


def test_it_accepts_epoch_seconds_offsets_and_naive_utc(client_for, viewer, series):
    client = client_for(viewer)
    start = int((T0 + timedelta(minutes=9)).timestamp())
    assert values(client.get(url(series, **{"from": start}))) == [9.0, 10.0, 11.0]
    # 02:02+02:00 is 00:02 UTC; the "+" is percent-encoded as a browser would.
    assert values(client.get(url(series, to="2024-05-01T02:02:00%2B02:00"))) == [0.0, 1.0]
    # A "+" left unencoded arrives as a space and still means an offset.
    assert values(client.get(url(series, to="2024-05-01T02:02:00+02:00"))) == [0.0, 1.0]
    assert values(client.get(url(series, **{"from": "2024-05-01T00:10:00"}))) == [10.0, 11.0]


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        ("mean", [2.0, 7.0, 10.5]),
        ("min", [0.0, 5.0, 10.0]),
        ("max", [4.0, 9.0, 11.0]),
        ("sum", [10.0, 35.0, 21.0]),
        ("count", [5.0, 5.0, 2.0]),
        ("first", [0.0, 5.0, 10.0]),
        ("last", [4.0, 9.0, 11.0]),
        ("median", [2.0, 7.0, 10.5]),
    ],
)
def test_it_resamples_in_the_database(client_for, viewer, series, agg, expected):
    response = client_for(viewer).get(url(series, resample="5min", agg=agg))
    assert values(response) == expected
    body = response.json()
    assert [p["ts"] for p in body["points"]] == [
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:05:00Z",
        "2024-05-01T00:10:00Z",
    ]
    assert body["resample"] == "5min" and body["resample_seconds"] == 300.0 and body["agg"] == agg


def test_it_aligns_buckets_to_the_epoch_whatever_the_range(client_for, viewer, series):
    response = client_for(viewer).get(url(series, resample="5min", agg="sum", **{"from": "2024-05-01T00:03:00Z"}))
    body = response.json()
    assert values(response) == [3.0 + 4.0, 35.0, 21.0]
    assert body["points"][0]["ts"] == "2024-05-01T00:00:00Z"


def test_it_resamples_with_hours_and_days(client_for, viewer, series):
    client = client_for(viewer)
    assert values(client.get(url(series, resample="1h", agg="count"))) == [12.0]
    assert values(client.get(url(series, resample="1D", agg="max"))) == [11.0]
    assert values(client.get(url(series, resample="30s", agg="count"))) == [1.0] * 12


def test_it_truncates_at_the_limit_and_says_where_to_continue(client_for, viewer, series):
    client = client_for(viewer)
    body = client.get(url(series, limit=5)).json()
    assert [p["value"] for p in body["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert body["truncated"] is True
    assert body["next_from"] == "2024-05-01T00:05:00Z"
    rest = client.get(url(series, limit=100, **{"from": body["next_from"]})).json()
    assert [p["value"] for p in rest["points"]] == [float(i) for i in range(5, 12)]
    assert rest["truncated"] is False

    buckets = client.get(url(series, resample="5min", agg="sum", limit=2)).json()
    assert [p["value"] for p in buckets["points"]] == [10.0, 35.0]
    assert buckets["truncated"] is True and buckets["next_from"] == "2024-05-01T00:10:00Z"


def test_it_returns_exactly_limit_rows_without_truncation(client_for, viewer, series):
    body = client_for(viewer).get(url(series, limit=12)).json()
    assert body["count"] == 12 and body["truncated"] is False


def test_it_returns_null_for_non_finite_values(client_for, viewer, team):
    dataset = Dataset.objects.create(team=team, name="odd")
    minute = timedelta(minutes=1)
    odd = make_series(dataset, [(T0, math.nan), (T0 + minute, 1.0), (T0 + 2 * minute, math.inf)])
    assert values(client_for(viewer).get(url(odd))) == [None, 1.0, None]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"resample": "5"}, "resample"),
        ({"resample": "fortnight"}, "resample"),
        ({"resample": "1M"}, "resample"),
        ({"resample": "-5min"}, "resample"),
        ({"resample": "5min", "agg": "avg"}, "agg"),
        ({"agg": "mode"}, "agg"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2024-13-45"}, "to"),
        ({"from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100001"}, "limit"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_it_rejects_bad_parameters_with_a_clear_message(client_for, viewer, series, params, message):
    response = client_for(viewer).get(url(series, **params))
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_selector_returns_a_dataclass(series):
    result = series_points(series=series, start=T0 + timedelta(minutes=10), resample="1h", agg="mean")
    assert result.points == [(T0, 10.5)]
    assert result.resample_seconds == 3600.0 and not result.truncated


def test_it_pages_resampled_buckets_across_gaps(client_for, viewer, team):
    dataset = Dataset.objects.create(team=team, name="sparse")
    minutes = [0, 1, 2, 100, 101, 102]
    sparse = make_series(dataset, [(T0 + timedelta(minutes=m), float(m)) for m in minutes])
    client = client_for(viewer)
    # Only the span that can fill limit + 1 buckets is aggregated; the gap after it is skipped over.
    first = client.get(url(sparse, resample="1min", agg="max", limit=5)).json()
    assert [p["value"] for p in first["points"]] == [0.0, 1.0, 2.0]
    assert first["truncated"] is True and first["next_from"] == "2024-05-01T01:40:00Z"
    rest = client.get(url(sparse, resample="1min", agg="max", limit=5, **{"from": first["next_from"]})).json()
    assert [p["value"] for p in rest["points"]] == [100.0, 101.0, 102.0]
    assert rest["truncated"] is False and rest["next_from"] is None
    # Within `to`, nothing follows: not truncated.
    bounded = client.get(url(sparse, resample="1min", limit=5, to="2024-05-01T01:00:00Z")).json()
    assert bounded["count"] == 3 and bounded["truncated"] is False
    # A window wide enough for everything reads it all at once.
    assert values(client.get(url(sparse, resample="1D", agg="count"))) == [6.0]


def test_it_resamples_an_empty_series(client_for, viewer, team):
    dataset = Dataset.objects.create(team=team, name="empty")
    empty = make_series(dataset, [])
    body = client_for(viewer).get(url(empty, resample="5min")).json()
    assert body["points"] == [] and body["truncated"] is False
