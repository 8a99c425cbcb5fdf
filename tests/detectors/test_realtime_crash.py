"""Realtime work survives a crash of the task that scores it, and points landing during a run wake another.

The task is acks_late: after a crash it runs again (or the next upload wakes one). What it must find then
is the series still pending; before the fix the flag was cleared first, so the new points waited for the
next upload.
"""

from __future__ import annotations

import pytest

from detectors.models import SeriesCursor
from detectors.services import runs
from detectors.services.configs import detector_create
from ingestion.models import Series
from tests.detectors.helpers import SPIKES, dataset_with_series, load, series_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(team):
    dataset = dataset_with_series(team, [series_frame(spikes=SPIKES)])
    detector = detector_create(dataset=dataset, name="live", algorithm="zscore", realtime=True)
    series_ids = list(Series.objects.filter(dataset=dataset).values_list("pk", flat=True))
    runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids)
    runs.realtime_score_pending(detector_id=detector.pk)  # watches from now on
    return dataset, detector, series_ids


def _new_points(dataset, series_ids, start):
    load(dataset, series_frame(start=start, n=10, seed=3))
    return runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids)


def test_it_keeps_the_work_pending_when_scoring_crashes(live, monkeypatch):
    dataset, detector, series_ids = live
    assert _new_points(dataset, series_ids, "2024-01-26") == [detector.pk]

    def crash(**_):
        raise RuntimeError("worker died")

    with monkeypatch.context() as patched:
        patched.setattr(runs, "run_execute", crash)
        with pytest.raises(RuntimeError):
            runs.realtime_score_pending(detector_id=detector.pk)

    assert SeriesCursor.objects.get(detector=detector).pending is True
    run = runs.realtime_score_pending(detector_id=detector.pk)  # the redelivered task
    assert run is not None and run.points_scored == 10
    assert SeriesCursor.objects.get(detector=detector).pending is False


def test_it_wakes_again_for_points_that_land_during_a_run(live, monkeypatch):
    dataset, detector, series_ids = live
    _new_points(dataset, series_ids, "2024-01-26")
    real_execute, woken = runs.run_execute, []

    def execute_while_points_land(**kwargs):
        run = real_execute(**kwargs)
        assert _new_points(dataset, series_ids, "2024-01-27") == []  # already pending: no task of its own
        return run

    monkeypatch.setattr(runs, "run_execute", execute_while_points_land)
    monkeypatch.setattr("detectors.tasks.wake_realtime", woken.append)
    runs.realtime_score_pending(detector_id=detector.pk)
    monkeypatch.setattr(runs, "run_execute", real_execute)

    assert woken == [[detector.pk]] and SeriesCursor.objects.get(detector=detector).pending is True
    assert runs.realtime_score_pending(detector_id=detector.pk).points_scored == 10
    assert SeriesCursor.objects.get(detector=detector).pending is False and woken == [[detector.pk]]
