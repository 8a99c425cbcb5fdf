import pytest

from detectors.models import RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from tests.detectors.helpers import SPIKES, dataset_with_series, series_frame, utc


@pytest.fixture
def spiky_dataset(team):
    """One hourly series, "cpu", with spikes at hours 400 and 520."""
    return dataset_with_series(team, [series_frame(spikes=SPIKES)])


@pytest.fixture
def detector(spiky_dataset):
    """A z-score detector backfilled over the spiky series (so it has anomalies and a model)."""
    detector = detector_create(dataset=spiky_dataset, name="cpu watch", algorithm="zscore")
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    return detector
