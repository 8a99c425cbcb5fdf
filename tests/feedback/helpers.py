"""Labelled-incident builders for feedback tests."""

from datetime import timedelta

from detectors.models import Anomaly

NOISE = {"shape": "spike", "score": 0.30, "size": 2.0, "points": 1}
FAULT = {"shape": "level", "score": 0.80, "size": 9.0, "points": 30}


def make_incident(detector, series_id, start, kind: dict) -> Anomaly:
    half = 1.0
    return Anomaly.objects.create(
        detector=detector, series_id=series_id, start_ts=start, end_ts=start + timedelta(hours=kind["points"] - 1),
        peak_ts=start, value=10 + kind["size"] * half, expected=10.0, lower=10 - half, upper=10 + half,
        score=kind["score"], severity="high", points=kind["points"], status="closed",
        closed_ts=start + timedelta(hours=kind["points"]),
        explanation={"shape": kind["shape"], "deviation": kind["size"] * half, "text": "x"},
    )  # fmt: skip
