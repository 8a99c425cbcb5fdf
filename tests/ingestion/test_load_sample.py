"""manage.py load_sample: the bundled datasets land in team "Demo", and running it again adds nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from ingestion.models import Dataset, DatasetKind, IngestBatch, IngestSource, Point, Record, Series
from teams.models import Team

POINTS = {"CO2 at Mauna Loa": 2225, "Sunspots": 309, "Nile flow": 100, "US macroeconomic data": 203 * 12}


def _counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Dataset, Series, Point, Record, IngestBatch))


def _load() -> str:
    out = StringIO()
    call_command("load_sample", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_loads_every_sample_into_the_demo_team():
    _load()

    team = Team.objects.get(slug="demo")
    for name, count in POINTS.items():
        dataset = Dataset.objects.get(team=team, name=name)
        assert dataset.kind == DatasetKind.TIMESERIES
        assert Point.objects.filter(series__dataset=dataset).count() == count
    assert Series.objects.filter(dataset__name="US macroeconomic data").count() == 12
    table = Dataset.objects.get(team=team, name="Breast cancer (Wisconsin)")
    assert table.kind == DatasetKind.TABLE
    record = Record.objects.filter(dataset=table).get(external_id="case-000")
    assert len(record.features) == 30 and "mean_radius" in record.features
    assert set(IngestBatch.objects.values_list("source", flat=True)) == {IngestSource.SAMPLE}


@pytest.mark.django_db
def test_it_inserts_nothing_when_run_again():
    _load()
    counts = _counts()

    output = _load()

    assert _counts() == counts
    assert output.count("already loaded") == 5


@pytest.mark.django_db
def test_it_uses_an_existing_demo_team(owner):
    from teams.services import team_create

    team = team_create(name="Demo", slug="demo", owner=owner)

    _load()

    assert Team.objects.filter(slug="demo").get() == team
    assert Dataset.objects.filter(team=team).count() == 5
