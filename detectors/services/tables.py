"""Scoring the rows of a table dataset on their own features (row-wise outliers).

Each record is judged alone, so there is no merging: every flagged record is one anomaly, explained by
the features that deviate most. The model is fitted on the records before those scored (the latest
`training_points` of them), or on the first 15 % when there are too few.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest

from detectors.algorithms.postprocess import calibrate, sensitivity_threshold, severity_of, to_anomaly_score
from detectors.models import Anomaly, CloseReason, Detector, IncidentStatus
from detectors.services.incidents import incidents_insert
from detectors.services.modelling import (
    MIN_TRAINING_POINTS,
    FittedModel,
    active_models,
    algorithm_fit,
    algorithm_load,
    model_is_current,
    model_versions_store,
)
from detectors.services.scoring import TRAINING_FRACTION
from ingestion.models import Record

MAX_EXPLAINED_FEATURES = 5


@dataclass
class TableScore:
    points_scored: int = 0
    anomalies_created: list[Anomaly] = field(default_factory=list)  # stored, or only found (backtests)
    errors: list[str] = field(default_factory=list)

    @property
    def created_ids(self) -> list[int]:
        return [a.pk for a in self.anomalies_created if a.pk]

    @property
    def resolved_ids(self) -> list[int]:
        return self.created_ids  # a record's incident opens and closes with it

    @property
    def escalated_ids(self) -> list[int]:
        return []  # ... so it never escalates


def _records(detector: Detector):
    return Record.objects.filter(dataset_id=detector.dataset_id).annotate(at=Coalesce("ts", "created_at"))


def table_score(
    *, detector: Detector, start: datetime | None, end: datetime | None, from_cursor: bool, persist: bool,
    run_id: int | None,
) -> TableScore:  # fmt: skip
    """Score the records in [start, end) by their time (ts, else arrival), or those after the cursor."""
    window = _records(detector)
    if from_cursor:
        window = window.filter(pk__gt=detector.record_cursor or 0)
    if start is not None:
        window = window.filter(at__gte=start)
    if end is not None:
        window = window.filter(at__lt=end)
    window = list(window.order_by("at", "pk").values("pk", "at", "features"))
    if not window:
        return TableScore()
    earlier = _records(detector).filter(at__lt=window[0]["at"]).order_by("-at", "-pk")
    history = list(earlier.values("pk", "at", "features")[: detector.training_points])[::-1]
    rows = history + window
    frame = pd.DataFrame.from_records([row["features"] for row in rows])
    model = active_models(detector=detector, series_ids=None).get(None)
    # Windows (backfills, backtests) refit on the records before them, as series do: no look-ahead.
    usable = model is not None and from_cursor and model_is_current(version=model, detector=detector)
    first_scored = len(history)
    if usable:
        fitted = algorithm_load(version=model)
    else:
        train = (
            len(history)
            if len(history) >= MIN_TRAINING_POINTS
            else max(MIN_TRAINING_POINTS, int(TRAINING_FRACTION * len(rows)))
        )
        if train >= len(rows):
            return TableScore()
        fitted = algorithm_fit(detector=detector, values=frame.iloc[:train])
        first_scored = max(first_scored, train)
        if persist and (model is None or not model_is_current(version=model, detector=detector)):
            stamps = np.array([int(row["at"].timestamp() * 1e6) for row in rows[:train]], dtype=np.int64)
            model = model_versions_store(detector=detector, models=[FittedModel(None, fitted, stamps, train)])[None]
    details = fitted.score_details(frame)
    probability = calibrate(details.score, fitted.tags.get("score_unit", "raw"))
    score = to_anomaly_score(probability)
    flagged = np.flatnonzero(score >= sensitivity_threshold(detector.sensitivity))
    flagged = flagged[flagged >= first_scored]
    anomalies = [_anomaly(detector, rows[i], details, i, score[i], probability[i], model, run_id) for i in flagged]
    outcome = TableScore(points_scored=len(rows) - first_scored)
    if persist:
        with transaction.atomic():
            outcome.anomalies_created = incidents_insert(incidents=anomalies)
            last = max(row["pk"] for row in rows[first_scored:])
            Detector.objects.filter(pk=detector.pk).update(
                record_cursor=Greatest(Coalesce(F("record_cursor"), 0), last)
            )
    else:
        outcome.anomalies_created = anomalies
    return outcome


def _anomaly(detector, row, details, i, score, probability, model, run_id) -> Anomaly:
    explanation: dict = {"kind": "features"}
    if details.contributions is not None:
        names = details.feature_names or [f"f{j}" for j in range(details.contributions.shape[1])]
        contributions = np.asarray(details.contributions[i], dtype=float)
        top = np.argsort(-np.abs(contributions))[:MAX_EXPLAINED_FEATURES]
        explanation["features"] = {
            names[j]: round(float(contributions[j]), 4) for j in top if np.isfinite(contributions[j])
        }
    unusual = ", ".join(list(explanation.get("features", {}))[:3]) or "its features together"
    explanation["text"] = f"This record looked unusual, mostly by {unusual}."
    return Anomaly(
        detector=detector, record_id=row["pk"], model_version=model, run_id=run_id, start_ts=row["at"],
        end_ts=row["at"], peak_ts=row["at"], value=row["features"], score=float(score),
        severity=severity_of(float(probability)), explanation=explanation, status=IncidentStatus.CLOSED,
        closed_ts=row["at"], last_seen=row["at"], close_reason=CloseReason.RECOVERED, points=1,
    )  # fmt: skip
