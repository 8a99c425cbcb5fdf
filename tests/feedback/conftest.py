import pytest

from detectors.models import Anomaly, ModelStatus, ModelVersion, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from tests.detectors.helpers import dataset_with_series, series_frame, utc


@pytest.fixture
def watched(team):
    """A z-score detector backfilled over an hourly series with three equal spikes (three incidents)."""
    dataset = dataset_with_series(team, [series_frame(spikes=(400, 460, 520))])
    detector = detector_create(dataset=dataset, name="cpu watch", algorithm="zscore")
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    return detector


@pytest.fixture
def incidents(watched):
    found = list(Anomaly.objects.filter(detector=watched).order_by("start_ts"))
    assert len(found) >= 3, [a.start_ts for a in found]
    return found


@pytest.fixture
def trained(team):
    """A detector with an active model on each of three series (and no incidents of its own)."""
    frames = [series_frame(metric=f"m{i}", seed=i) for i in range(3)]
    dataset = dataset_with_series(team, frames)
    detector = detector_create(dataset=dataset, name="watch", algorithm="zscore", retrain_after_labels=0)
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-20")))
    Anomaly.objects.filter(detector=detector).delete()
    assert ModelVersion.objects.filter(detector=detector, status=ModelStatus.ACTIVE).count() == 3
    return detector
