"""Detection runs in-process (the same code the workers run): backfill, reruns, cursors, models."""

import pytest

from detectors.models import Anomaly, ModelStatus, ModelVersion, RunStatus, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from ingestion.models import Series
from tests.detectors.helpers import SPIKES, dataset_with_series, load, series_frame, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(team):
    return dataset_with_series(team, [series_frame(spikes=SPIKES), series_frame(metric="mem", seed=1)])


def backfill(detector, start="2024-01-02"):
    run = run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc(start))
    return run_execute(run=run)


def test_it_finds_the_injected_spikes_in_a_backfill(dataset):
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    run = backfill(detector)
    assert run.status == RunStatus.SUCCEEDED and run.series_done == 2 and run.chunks_done == 1
    cpu = Series.objects.get(dataset=dataset, metric="cpu")
    found = sorted(Anomaly.objects.filter(series=cpu).values_list("peak_ts", flat=True))
    hours = [int((ts - utc("2024-01-01")).total_seconds() // 3600) for ts in found]
    assert set(SPIKES) <= set(hours), hours
    assert run.anomalies_found == Anomaly.objects.filter(detector=detector).count()


def test_it_creates_no_duplicates_when_a_window_is_rerun(dataset):
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    backfill(detector)
    first = Anomaly.objects.filter(detector=detector).count()
    again = backfill(detector)
    assert first > 0 and Anomaly.objects.filter(detector=detector).count() == first
    assert again.anomalies_found == 0


def test_it_stores_one_active_model_per_series(dataset):
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    backfill(detector)
    active = ModelVersion.objects.filter(detector=detector, status=ModelStatus.ACTIVE)
    assert active.count() == 2
    assert all(isinstance(v.state, dict) and v.training_size > 0 for v in active)


def test_it_scores_only_new_points_on_scheduled_runs(dataset):
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    first = run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))
    assert first.points_scored == 0  # a new detector watches from its creation on
    load(dataset, series_frame(start="2024-01-26", n=48, spikes=(30,), seed=5))
    second = run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))
    assert second.points_scored == 48
    assert Anomaly.objects.filter(detector=detector, run_id=second.pk).exists()
    third = run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))
    assert third.points_scored == 0


def test_it_backtests_without_storing_and_scores_against_labels(dataset):
    from detectors.models import ReviewStatus

    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    backfill(detector)
    Anomaly.objects.filter(detector=detector).update(review_status=ReviewStatus.CONFIRMED)
    stored_before = Anomaly.objects.count()
    run = run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKTEST, start=utc("2024-01-02")))
    assert Anomaly.objects.count() == stored_before
    assert len(run.result["anomalies"]) == run.anomalies_found > 0
    assert run.result["metrics"]["recall"] == 1.0 and run.result["metrics"]["labels"] == stored_before
    rows = run.result["metrics"]["rows"]  # the same, point by point
    assert rows["recall"] > 0.9 and 0 < rows["precision"] <= 1


def test_it_fails_the_run_when_a_chunk_fails_for_good(dataset):
    from detectors import tasks

    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    run = run_create(detector=detector, trigger=RunTrigger.MANUAL)
    tasks.ScoreChunkTask.on_failure(tasks.score_chunk, RuntimeError("disk full"), "task-id", (run.pk, 0, []), {}, None)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "chunk 0 failed: RuntimeError: disk full" in run.error


def test_it_reports_a_spike_right_after_an_alarm_already_reported(team):
    """An event that began in history (already judged) must not swallow a new spike after it."""
    frame = series_frame(metric="a", n=2024, spikes=(2012,), seed=ord("a"))  # history alarms near row 1972
    dataset = dataset_with_series(team, [frame.iloc[:2000]])
    detector = detector_create(dataset=dataset, name="d", algorithm="auto")
    load(dataset, frame.iloc[2000:].reset_index(drop=True))
    run = run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))
    assert run.points_scored == 24
    peaks = list(Anomaly.objects.filter(detector=detector).values_list("peak_ts", flat=True))
    assert frame["ts"][2012].to_pydatetime() in peaks


def test_it_trains_each_series_once_per_request(dataset):
    from django.utils import timezone

    from detectors.services.modelling import detector_train

    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    requested = timezone.now()
    assert detector_train(detector=detector, requested_at=requested) == 2
    assert detector_train(detector=detector, requested_at=requested) == 0  # the same request, redelivered
    assert detector_train(detector=detector, requested_at=timezone.now()) == 2  # a new request


def test_it_coalesces_realtime_work_per_series(dataset):
    from detectors.services.runs import realtime_mark_pending, realtime_score_pending

    detector = detector_create(dataset=dataset, name="live", algorithm="zscore", realtime=True)
    series_ids = list(Series.objects.filter(dataset=dataset).values_list("pk", flat=True))
    assert realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids) == [detector.pk]
    assert realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids) == []  # already queued
    load(dataset, series_frame(start="2024-01-26", n=10, seed=3))
    run = realtime_score_pending(detector_id=detector.pk)
    assert run.trigger == RunTrigger.REALTIME and run.series_done == 2 and run.points_scored == 10
    assert realtime_score_pending(detector_id=detector.pk) is None  # nothing pending any more
    assert realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids) == [detector.pk]
