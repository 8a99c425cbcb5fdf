"""Every point is read back from exactly the series it was sent for, whatever labels each row carries.

Hypothesis generates long uploads (JSON and CSV) whose rows carry labels as columns, as a `labels`
object or `key=value` text, present in some rows and absent in others, over up to 15 label keys (a
combined key of that many columns once overflowed int64), with and without upload-level labels.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.models import Point
from tests.ingestion.helpers import make_dataset, points_url

pytestmark = pytest.mark.django_db

KEYS = [f"k{i}" for i in range(15)]
TEXT_VALUES = ["a", "b", "007", "1", "x y", "é", ""]
JSON_VALUES = [*TEXT_VALUES, 1, 7, None]
START = datetime(2024, 1, 1, tzinfo=UTC)
_datasets = itertools.count()


def label_text(value) -> str:
    return "" if value is None else str(value)


def rows_strategy(values):
    label_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(values), max_size=6)
    row = st.fixed_dictionaries(
        {
            "metric": st.sampled_from(["cpu", "mem", "007"]),
            "columns": label_sets,
            "cell": label_sets,
            "cell_form": st.sampled_from(["none", "object", "text", "json-text"]),
        }
    )
    return st.lists(row, min_size=1, max_size=40)


upload_labels = st.one_of(
    st.just({}), st.dictionaries(st.sampled_from(KEYS[:4]), st.sampled_from(["u", "v"]), max_size=2)
)


def expected_points(rows, upload: dict) -> dict:
    """Labels, lowest precedence first: columns, the row's labels cell, the upload's labels."""
    expected = {}
    for i, row in enumerate(rows):
        labels = {k: label_text(v) for k, v in row["columns"].items() if label_text(v) != ""}
        if row["cell_form"] != "none":
            labels.update({k: label_text(v) for k, v in row["cell"].items() if label_text(v) != ""})
        labels.update(upload)
        expected[(row["metric"], tuple(sorted(labels.items())), START + timedelta(seconds=i))] = i + 0.5
    return expected


def stored_points(dataset) -> dict:
    points = Point.objects.filter(series__dataset=dataset).select_related("series")
    return {(p.series.metric, tuple(sorted(p.series.labels.items())), p.ts): p.value for p in points}


def cell_value(row, *, as_text: bool):
    cell = {k: v for k, v in row["cell"].items() if v is not None}
    if row["cell_form"] == "object" and not as_text:
        return cell
    if row["cell_form"] == "text" and all("=" not in str(v) and ";" not in str(v) for v in cell.values()):
        return ";".join(f"{k}={v}" for k, v in cell.items())
    return json.dumps(cell)


def json_rows(rows) -> list[dict]:
    sent = []
    for i, row in enumerate(rows):
        item = {"metric": row["metric"], "ts": (START + timedelta(seconds=i)).isoformat(), "value": i + 0.5}
        item.update({k: v for k, v in row["columns"].items() if v is not None})
        if row["cell_form"] != "none":
            item["labels"] = cell_value(row, as_text=row["cell_form"] != "object")
        sent.append(item)
    return sent


def csv_text(rows) -> str:
    keys = sorted({k for row in rows for k in row["columns"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["metric", "ts", "value", *keys, "labels"])
    for i, row in enumerate(rows):
        cell = cell_value(row, as_text=True) if row["cell_form"] != "none" else ""
        writer.writerow(
            [row["metric"], (START + timedelta(seconds=i)).isoformat(), i + 0.5]
            + [label_text(row["columns"].get(k)) for k in keys]
            + [cell]
        )
    return out.getvalue()


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(rows=rows_strategy(JSON_VALUES), upload=upload_labels)
def test_it_stores_json_rows_under_the_series_they_name(owner_client, team, rows, upload):
    dataset = make_dataset(team, name=f"json-{next(_datasets)}")
    response = owner_client.post(points_url(dataset), {"labels": upload, "points": json_rows(rows)}, format="json")
    assert response.status_code == 201, response.json()
    assert stored_points(dataset) == expected_points(rows, upload)


@PROPERTY
@given(rows=rows_strategy(TEXT_VALUES), upload=upload_labels)
def test_it_stores_csv_rows_under_the_series_they_name(owner_client, team, rows, upload):
    dataset = make_dataset(team, name=f"csv-{next(_datasets)}")
    query = f"?labels={json.dumps(upload)}" if upload else ""
    response = owner_client.post(points_url(dataset) + query, csv_text(rows).encode(), content_type="text/csv")
    assert response.status_code == 201, response.json()
    assert stored_points(dataset) == expected_points(rows, upload)


def test_it_stores_a_row_without_labels_apart_from_a_labelled_row(owner_client, team):
    dataset = make_dataset(team)
    rows = [
        {"metric": "cpu", "ts": "2024-01-01T00:00:00Z", "value": 1, "labels": {"host": "a"}},
        {"metric": "mem", "ts": "2024-01-01T00:00:00Z", "value": 2},
        {"metric": "cpu", "ts": "2024-01-01T00:00:00Z", "value": 3, "shard": 7},
    ]
    response = owner_client.post(points_url(dataset), rows, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["inserted"] == 3
    when = START
    assert stored_points(dataset) == {
        ("cpu", (("host", "a"),), when): 1.0,
        ("mem", (), when): 2.0,
        ("cpu", (("shard", "7"),), when): 3.0,
    }


def test_it_keeps_label_text_as_sent_in_csv(owner_client, team):
    dataset = make_dataset(team)
    text = "metric,ts,value,zone\nm,2024-01-01T00:00:00Z,1,007\nm,2024-01-01T00:01:00Z,2,7\n"
    assert owner_client.post(points_url(dataset), text.encode(), content_type="text/csv").status_code == 201
    assert {labels for _, labels, _ in stored_points(dataset)} == {(("zone", "007"),), (("zone", "7"),)}
