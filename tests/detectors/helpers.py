"""Builders for detection tests: a team's dataset with seeded series, some with injected spikes."""

import numpy as np
import pandas as pd

from ingestion.models import IngestSource
from ingestion.services import ingest_points
from tests.ingestion.helpers import make_dataset

SPIKES = (400, 520)


def utc(text: str):
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


def series_frame(*, metric="cpu", labels=None, n=600, start="2024-01-01", freq="h", spikes=(), seed=0, level=10.0):
    """A noisy daily-seasonal series with spikes of +12 sigma at the given positions."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    values = level + np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 0.3, n)
    for position in spikes:
        values[position] += 12 * 0.3 + 4
    frame = pd.DataFrame({"metric": metric, "ts": ts, "value": values})
    if labels:
        frame["labels"] = [labels] * n
    return frame


def load(dataset, frame) -> None:
    batch = ingest_points(dataset=dataset, data=frame, source=IngestSource.API_JSON)
    assert batch.status == "completed", batch.message


def dataset_with_series(team, frames, name="metrics"):
    dataset = make_dataset(team, name=name)
    for frame in frames:
        load(dataset, frame)
    return dataset
