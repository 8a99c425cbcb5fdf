"""manage.py ingest_csv: streamed in chunks, all or nothing in strict mode."""

import pytest
from django.core.management import CommandError, call_command

from ingestion.models import IngestBatch, IngestSource, IngestStatus, Series
from tests.ingestion.helpers import make_dataset, stored

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(team):
    return make_dataset(team)


def write_csv(tmp_path, rows: list[str], header="metric,ts,value"):
    path = tmp_path / "points.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_it_loads_a_file_in_several_chunks(tmp_path, dataset):
    rows = [f"m{i % 3},2024-01-01T00:{i:02d}:00Z,{i}" for i in range(50)]
    call_command("ingest_csv", write_csv(tmp_path, rows), dataset=str(dataset.pk), chunk_size=7, no_progress=True)
    batch = IngestBatch.objects.get(dataset=dataset)
    assert (batch.source, batch.status, batch.received, batch.inserted) == (IngestSource.CLI, "completed", 50, 50)
    assert sorted(Series.objects.filter(dataset=dataset).values_list("point_count", flat=True)) == [16, 17, 17]


def test_it_counts_duplicates_across_chunks(tmp_path, dataset):
    rows = ["m,2024-01-01,1", "m,2024-01-02,2", "m,2024-01-01,3", "m,2024-01-02,4"]
    call_command("ingest_csv", write_csv(tmp_path, rows), dataset=str(dataset.pk), chunk_size=2, no_progress=True)
    batch = IngestBatch.objects.get(dataset=dataset)
    assert (batch.inserted, batch.duplicate) == (2, 2)
    assert sorted(stored(dataset).values()) == [1.0, 2.0]


def test_it_stores_nothing_when_a_later_chunk_is_bad(tmp_path, dataset):
    rows = [f"m,2024-01-{d:02d},1" for d in range(1, 20)] + ["m,2024-02-30,1"]
    with pytest.raises(CommandError, match="nothing was stored"):
        call_command("ingest_csv", write_csv(tmp_path, rows), dataset=str(dataset.pk), chunk_size=5, no_progress=True)
    assert stored(dataset) == {}
    batch = IngestBatch.objects.get(dataset=dataset)
    assert (batch.status, batch.errors[0]["row"], batch.errors[0]["field"]) == (IngestStatus.REJECTED, 20, "ts")


def test_it_finds_the_dataset_by_name_and_team(tmp_path, dataset, team):
    path = write_csv(tmp_path, ["2024-01-01,5"], header="ts,temperature")
    call_command("ingest_csv", path, dataset="metrics", team=team.slug, labels="room=kitchen", no_progress=True)
    assert stored(dataset) == {("temperature", (("room", "kitchen"),), "2024-01-01T00:00:00+00:00"): 5.0}


def test_it_says_when_the_dataset_or_file_does_not_exist(tmp_path, dataset):
    with pytest.raises(CommandError, match="No dataset"):
        call_command("ingest_csv", write_csv(tmp_path, []), dataset="nope", no_progress=True)
    with pytest.raises(CommandError, match="No such file"):
        call_command("ingest_csv", str(tmp_path / "missing.csv"), dataset=str(dataset.pk), no_progress=True)


def test_it_lets_labels_given_on_the_command_line_win_over_a_label_column(tmp_path, dataset):
    path = write_csv(tmp_path, ["m,2024-01-01,1,b", "m,2024-01-02,2,"], header="metric,ts,value,host")
    call_command("ingest_csv", path, dataset=str(dataset.pk), labels="host=a;env=prod", no_progress=True)
    assert {labels for _, labels, _ in stored(dataset)} == {(("env", "prod"), ("host", "a"))}
