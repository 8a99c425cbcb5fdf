"""Admin pages for datasets, series (with the plot), ingest batches and records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ingestion.admin import EstimatedCountPaginator
from ingestion.models import Dataset, DatasetKind, IngestBatch, IngestStatus, Point, Record, Series
from ingestion.plots import line_svg

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client.force_login(user)
    return client


@pytest.fixture
def series(team):
    dataset = Dataset.objects.create(team=team, name="web")
    series = Series.objects.create(dataset=dataset, metric="cpu", labels={"host": "<a&b>"})
    Point.objects.bulk_create([Point(series=series, ts=T0 + timedelta(minutes=i), value=i % 7) for i in range(3000)])
    Series.objects.filter(pk=series.pk).update(point_count=3000, first_ts=T0, last_ts=T0 + timedelta(minutes=2999))
    return series


@pytest.fixture
def batch(series):
    return IngestBatch.objects.create(
        dataset=series.dataset,
        source="api_csv",
        status=IngestStatus.PARTIAL,
        filename="cpu.csv",
        received=5,
        inserted=3,
        rejected=2,
        errors=[{"row": 4, "field": "value", "message": "not a number: <abc>"}],
    )


def test_it_lists_datasets_series_batches_and_records(admin_client, series, batch):
    table = Dataset.objects.create(team=series.dataset.team, name="payments", kind=DatasetKind.TABLE)
    Record.objects.create(dataset=table, external_id="t1", features={"amount": 1})
    for name in ("dataset", "series", "ingestbatch", "record"):
        response = admin_client.get(f"/admin/ingestion/{name}/")
        assert response.status_code == 200, name
    response = admin_client.get("/admin/ingestion/series/")
    assert b"cpu{host=&lt;a&amp;b&gt;}" in response.content
    response = admin_client.get("/admin/ingestion/dataset/")
    assert f'?dataset__id__exact={series.dataset.pk}">1<'.encode() in response.content


def test_it_filters_and_searches(admin_client, series, batch):
    assert admin_client.get("/admin/ingestion/ingestbatch/?status__exact=partial").status_code == 200
    assert admin_client.get(f"/admin/ingestion/ingestbatch/?dataset__id__exact={series.dataset.pk}").status_code == 200
    assert admin_client.get("/admin/ingestion/ingestbatch/?source__exact=api_csv").status_code == 200
    assert admin_client.get("/admin/ingestion/series/?q=cpu").status_code == 200
    assert admin_client.get("/admin/ingestion/dataset/?q=web&kind__exact=timeseries").status_code == 200
    assert admin_client.get("/admin/ingestion/record/?q=t1").status_code == 200


def test_the_series_page_plots_the_latest_points(admin_client, series):
    response = admin_client.get(f"/admin/ingestion/series/{series.pk}/change/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "<svg" in content and '<path class="line"' in content
    # The latest 2000 of 3000 points: the plot starts at minute 1000.
    assert "05-01 16:40" in content
    assert "cpu{host=&lt;a&amp;b&gt;}" in content
    assert "latest 2000 points" in content.lower()


def test_the_add_pages_render(admin_client, db):
    assert admin_client.get("/admin/ingestion/dataset/add/").status_code == 200
    assert admin_client.get("/admin/ingestion/series/add/").status_code == 200
    assert admin_client.get("/admin/ingestion/record/add/").status_code == 200


def test_an_empty_series_page_says_no_data(admin_client, team):
    dataset = Dataset.objects.create(team=team, name="empty")
    empty = Series.objects.create(dataset=dataset, metric="idle")
    response = admin_client.get(f"/admin/ingestion/series/{empty.pk}/change/")
    assert response.status_code == 200 and b"No data" in response.content


def test_the_dataset_page_shows_its_summary(admin_client, series):
    response = admin_client.get(f"/admin/ingestion/dataset/{series.dataset.pk}/change/")
    assert response.status_code == 200
    assert b"3000" in response.content and b"1min" in response.content


def test_the_batch_page_shows_errors_as_a_table(admin_client, batch):
    response = admin_client.get(f"/admin/ingestion/ingestbatch/{batch.pk}/change/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "<td>4</td><td>value</td><td>not a number: &lt;abc&gt;</td>" in content
    assert "1 more rejected rows" in content
    assert admin_client.get("/admin/ingestion/ingestbatch/add/").status_code == 403


def test_the_paginator_estimates_unfiltered_tables_without_counting(team):
    dataset = Dataset.objects.create(team=team, name="payments", kind=DatasetKind.TABLE)
    Record.objects.bulk_create([Record(dataset=dataset, external_id=str(i), features={}) for i in range(50)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_record")

    class Small(EstimatedCountPaginator):
        cap = 10

    with CaptureQueriesContext(connection) as queries:
        assert Small(Record.objects.all(), 20).count == 50
    assert not any("COUNT(" in q["sql"].upper() for q in queries)
    # Filtered: counted, but never past the cap.
    assert Small(Record.objects.filter(dataset=dataset), 20).count == 11
    assert Small(Record.objects.filter(external_id="7"), 20).count == 1


def test_the_plot_draws_band_markers_gaps_and_escapes_text():
    points = [(T0 + timedelta(minutes=i), float(i)) for i in range(10)]
    points[4] = (points[4][0], None)
    svg = line_svg(
        points,
        markers=[(T0 + timedelta(minutes=8), 8.0)],
        band=[(T0 + timedelta(minutes=i), i - 1.0, i + 1.0) for i in range(10)],
        title='cpu{host="<x>"}',
    )
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "&lt;x&gt;" in svg and "<x>" not in svg
    assert '<polygon class="band"' in svg
    assert svg.count("<circle") == 1
    path = svg.split(' d="')[1].split('"')[0]
    assert path.count("M") == 2  # the missing value splits the line
    # Axis labels: min and max of everything drawn (band included) and times.
    assert ">-1<" in svg and ">10<" in svg
    assert ">00:00:00<" in svg and ">00:09:00<" in svg


def test_the_plot_of_nothing_says_so():
    assert "No data" in line_svg([])
    assert "No data" in line_svg([(T0, None)])
    single = line_svg([(T0, 5.0)])
    assert "<path" in single and ">5<" in single


def test_deleting_a_series_counts_its_points_instead_of_listing_them(admin_client, series):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"/admin/ingestion/series/{series.pk}/delete/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Points: 3000" in content and "Series: 1" in content
    assert not any('FROM "ingestion_point"' in q["sql"] for q in queries)

    response = admin_client.post(f"/admin/ingestion/series/{series.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Series.objects.filter(pk=series.pk).exists()
    assert not Point.objects.filter(series_id=series.pk).exists()


def test_deleting_a_dataset_counts_what_goes(admin_client, series, batch):
    response = admin_client.get(f"/admin/ingestion/dataset/{series.dataset.pk}/delete/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Points: 3000" in content and "Ingest batches: 1" in content and "Records: " not in content
    response = admin_client.post(
        "/admin/ingestion/dataset/",
        {"action": "delete_selected", "_selected_action": [series.dataset.pk]},
    )
    assert response.status_code == 200 and "Points: 3000" in response.content.decode()
