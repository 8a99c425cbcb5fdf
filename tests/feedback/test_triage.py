"""A model version's triage holds back incidents like the labelled false alarms, and releases one that grows."""

from datetime import timedelta

import numpy as np
import pytest

from detectors.algorithms.triage import SHAPES, Signature, Triage
from detectors.models import Anomaly, ModelStatus, ReviewStatus
from detectors.services.configs import detector_create
from detectors.services.scoring import chunk_score
from tests.detectors.helpers import dataset_with_series, series_frame, utc

pytestmark = pytest.mark.django_db

SHIFT_AT = 500


def _short_ones_held() -> dict:
    """A triage that keeps incidents longer than about 5 points and holds back shorter ones."""
    features = 5 + len(SHAPES)
    coef = [0.0] * features
    coef[2] = 6.0  # log(points)
    return Triage(mean=[0.0] * features, scale=[1.0] * features, coef=coef, intercept=-6.0 * np.log(5.5), cut=0.5,
                  series_rates={}, pooled_rate=0.5).to_state()  # fmt: skip


def test_triage_keeps_what_it_learnt_to_keep():
    spike = Signature("spike", 1, 3.0, 1, 0.4)
    shift = Signature("level", 1, 8.0, 40, 0.9)
    rows = [spike, shift] * 10
    triage = Triage.fit(rows, [1, 2] * 10, [False, True] * 10)
    assert triage.keeps([shift, spike], [1, 1]).tolist() == [True, False]
    again = Triage.from_state(triage.to_state())
    assert again.keeps([shift, spike], [3, 3]).tolist() == [True, False]


def test_an_incident_held_back_at_its_alarm_is_released_as_it_grows(team):
    frame = series_frame(n=560)
    frame.loc[SHIFT_AT:, "value"] += 8.0  # a lasting shift near the end
    dataset = dataset_with_series(team, [frame])
    detector = detector_create(dataset=dataset, name="w", algorithm="zscore")
    series_id = dataset.series.get().pk
    start = utc("2024-01-01") + timedelta(hours=400)
    shift = utc("2024-01-01") + timedelta(hours=SHIFT_AT)
    chunk_score(detector=detector, series_ids=[series_id], start=start, end=start + timedelta(hours=1))
    detector.model_versions.filter(status=ModelStatus.ACTIVE).update(triage=_short_ones_held())

    first = chunk_score(detector=detector, series_ids=[series_id], start=start, end=shift + timedelta(hours=2))
    incident = Anomaly.objects.get(pk__in=first.created_ids, start_ts__gte=shift)
    assert incident.status == "open" and incident.points <= 3
    assert incident.review_status == ReviewStatus.SUPPRESSED and "held_back" in incident.explanation

    later = chunk_score(detector=detector, series_ids=[series_id], start=shift + timedelta(hours=2))
    incident.refresh_from_db()
    assert incident.points > 6
    assert incident.review_status == ReviewStatus.UNREVIEWED and "held_back" not in incident.explanation
    assert incident.pk in later.created_ids  # raised now, for the first time
