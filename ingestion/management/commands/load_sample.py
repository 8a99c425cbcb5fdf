"""manage.py load_sample: real datasets that ship with statsmodels and scikit-learn, loaded into team "Demo".

Everything goes through the ingestion service, like any upload. Running it again inserts nothing:
a dataset that already holds all its rows is skipped, and re-sent rows are duplicates by key anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from ingestion.models import Dataset, DatasetKind, IngestSource, IngestStatus, Point, Record
from ingestion.services import ingest_points, ingest_records
from teams.models import Team
from teams.services import team_create

DEMO_TEAM_NAME = "Demo"
DEMO_TEAM_SLUG = "demo"
MACRO_METRICS = [
    "realgdp",
    "realcons",
    "realinv",
    "realgovt",
    "realdpi",
    "cpi",
    "m1",
    "tbilrate",
    "unemp",
    "pop",
    "infl",
    "realint",
]


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str
    description: str
    load: Callable[[], pd.DataFrame]


def _long(metric: str, ts: pd.Series, values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"metric": metric, "ts": pd.to_datetime(ts, utc=True), "value": values.astype(float)})


def _years(years: pd.Series) -> pd.Series:
    return pd.to_datetime(years.astype(int).astype(str) + "-01-01", utc=True)


def load_co2() -> pd.DataFrame:
    from statsmodels.datasets import co2

    data = co2.load_pandas().data.dropna()
    return _long("co2_ppm", pd.Series(data.index, index=data.index), data["co2"])


def load_sunspots() -> pd.DataFrame:
    from statsmodels.datasets import sunspots

    data = sunspots.load_pandas().data
    return _long("sunspot_activity", _years(data["YEAR"]), data["SUNACTIVITY"])


def load_nile() -> pd.DataFrame:
    from statsmodels.datasets import nile

    data = nile.load_pandas().data
    return _long("nile_volume", _years(data["year"]), data["volume"])


def load_macrodata() -> pd.DataFrame:
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    months = (data["quarter"].astype(int) - 1) * 3 + 1
    ts = pd.to_datetime(
        pd.DataFrame({"year": data["year"].astype(int), "month": months, "day": 1}), utc=True
    ).reset_index(drop=True)
    wide = data[MACRO_METRICS].reset_index(drop=True).assign(ts=ts)
    return wide.melt(id_vars="ts", var_name="metric", value_name="value")[["metric", "ts", "value"]]


def load_breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

    frame = sklearn_breast_cancer(as_frame=True).frame.drop(columns="target")
    frame.columns = [column.replace(" ", "_") for column in frame.columns]
    frame.insert(0, "external_id", [f"case-{number:03d}" for number in range(len(frame))])
    return frame


SAMPLES = [
    Sample(
        "CO2 at Mauna Loa",
        DatasetKind.TIMESERIES,
        "Weekly atmospheric CO2 (ppm) at Mauna Loa, 1958-2001; weeks without a reading dropped (statsmodels).",
        load_co2,
    ),
    Sample(
        "Sunspots",
        DatasetKind.TIMESERIES,
        "Yearly sunspot activity, 1700-2008 (statsmodels).",
        load_sunspots,
    ),
    Sample(
        "Nile flow",
        DatasetKind.TIMESERIES,
        "Yearly flow volume of the Nile at Aswan, 1871-1970; the dam at 1898 is a known level shift (statsmodels).",
        load_nile,
    ),
    Sample(
        "US macroeconomic data",
        DatasetKind.TIMESERIES,
        "Quarterly US macroeconomic indicators, 1959-2009, one series per indicator (statsmodels).",
        load_macrodata,
    ),
    Sample(
        "Breast cancer (Wisconsin)",
        DatasetKind.TABLE,
        "569 cases with 30 cell-nucleus features each, as table records; the diagnosis is left out "
        "(212 malignant, 357 benign) so it can serve as ground truth (scikit-learn).",
        load_breast_cancer,
    ),
]


def demo_team() -> Team:
    team = Team.objects.filter(slug=DEMO_TEAM_SLUG).first()
    return team or team_create(name=DEMO_TEAM_NAME, slug=DEMO_TEAM_SLUG)


def stored_rows(dataset: Dataset) -> int:
    if dataset.kind == DatasetKind.TABLE:
        return Record.objects.filter(dataset=dataset).count()
    return Point.objects.filter(series__dataset=dataset).count()


class Command(BaseCommand):
    help = 'Load the sample datasets (CO2, sunspots, Nile, US macro data, breast cancer) into team "Demo".'

    def handle(self, *args, **options):
        team = demo_team()
        for sample in SAMPLES:
            self.load(team, sample)

    def load(self, team: Team, sample: Sample) -> None:
        dataset, _ = Dataset.objects.get_or_create(
            team=team, name=sample.name, defaults={"kind": sample.kind, "description": sample.description}
        )
        frame = sample.load()
        if stored_rows(dataset) >= len(frame):
            self.stdout.write(f"{sample.name}: already loaded ({len(frame)} rows)")
            return
        ingest = ingest_records if dataset.kind == DatasetKind.TABLE else ingest_points
        batch = ingest(dataset=dataset, data=frame, source=IngestSource.SAMPLE, user=None)
        if batch.status not in (IngestStatus.COMPLETED, IngestStatus.PARTIAL):
            raise CommandError(f"{sample.name}: batch {batch.pk} {batch.status}: {batch.message} {batch.errors[:3]}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{sample.name}: {batch.inserted} inserted, {batch.duplicate} already there, "
                f"{batch.rejected} rejected (batch {batch.pk})"
            )
        )
