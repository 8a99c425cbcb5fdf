from ingestion.models import Dataset, DuplicatePolicy, Point


def points_url(dataset) -> str:
    return f"/api/v1/datasets/{dataset.pk}/points"


def stored(dataset) -> dict:
    """{(metric, labels items, iso ts): value} of everything stored in the dataset."""
    rows = Point.objects.filter(series__dataset=dataset).select_related("series")
    return {(p.series.metric, tuple(sorted(p.series.labels.items())), p.ts.isoformat()): p.value for p in rows}


def make_dataset(team, name="metrics", policy=DuplicatePolicy.KEEP_FIRST, kind="timeseries"):
    return Dataset.objects.create(team=team, name=name, duplicate_policy=policy, kind=kind)
