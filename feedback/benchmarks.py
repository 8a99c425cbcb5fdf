"""`manage.py bench feedback`: does labelling part of each NAB stream make the rest of it better?

Through the platform's own services, on a throwaway team:
1. every NAB file becomes a series; an `auto` detector fits each series' first model on NAB's probationary
   rows and scores the next 10 % of the stream (the labelling period), storing its incidents;
2. *before*: the rest of each stream is scored with that first model (its incidents are noted, then
   removed, so nothing the analyst could not have seen yet is labelled);
3. a simulated analyst answers from NAB's truth windows: every incident of the labelling period is
   confirmed when it overlaps a window and labelled false positive otherwise; windows there that no
   incident touched are marked missed;
4. the detector retrains from those labels (the same service the Celery job runs): the candidate is
   judged against the active version on the latest labels and promoted only if better;
5. *after*: the rest is scored again with whatever version is active, new incidents pass the
   false-positive suppression as they do after a run, and the raised ones (not suppressed) count.

Per incident: true when it overlaps a window; a window is found when an incident overlaps it (windows
that end before the rest starts don't count). NAB standard score: the raised incidents' alarms over the
rest of each stream, scored by NAB's scorer at the fixed threshold 0.5.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from detectors.evaluation.nab import DEFAULT_BENCH_ROOT, data_files, load_scorer, probation_rows
from detectors.models import Anomaly, IncidentKind, ReviewStatus
from detectors.services.configs import detector_create
from detectors.services.scoring import chunk_score
from feedback.models import Retraining, RetrainingTrigger, Verdict
from feedback.services.labels import anomalies_label, missed_mark
from feedback.services.retraining import retraining_run
from feedback.services.suppression import suppress_repeats
from ingestion.models import Dataset, IngestSource, Series
from ingestion.services import ingest_points
from teams.models import Team

LABEL_FRACTION = 0.10


def bench_feedback(*, log=print, **_) -> dict:
    started = time.perf_counter()
    root = Path(DEFAULT_BENCH_ROOT)
    windows = json.loads((root / "nab" / "labels" / "combined_windows.json").read_text())
    files = data_files(root)
    suffix = uuid.uuid4().hex[:8]
    team = Team.objects.create(name=f"bench feedback {suffix}", slug=f"bench-feedback-{suffix}")
    try:
        streams = _load(team, root, files, windows)
        detector = detector_create(
            dataset=streams[0]["series"].dataset, name="nab", algorithm="auto", training_points=750,
            retrain_after_labels=0,
        )  # fmt: skip
        log(f"NAB v1.1: {len(files)} streams; labelling {LABEL_FRACTION:.0%} of each after its probation")
        for stream in streams:
            chunk_score(detector=detector, series_ids=[stream["series"].pk], start=stream["probation_end"],
                        end=stream["rest_start"])  # fmt: skip
        before = _score_rest(detector, streams)
        labelled = _simulate_analyst(detector, streams)
        retraining = Retraining.objects.create(detector=detector, trigger=RetrainingTrigger.MANUAL)
        retraining = retraining_run(retraining_id=retraining.pk)
        after = _score_rest(detector, streams)
        scorer = load_scorer(root)
        bench = scorer.NabBenchmark(root / "nab")
        figures = {
            "before": _figures(before, streams, bench), "after": _figures(after, streams, bench),
            "labels": labelled, "retraining": {"status": retraining.status, "decision": retraining.decision},
            "seconds": round(time.perf_counter() - started, 1),
        }  # fmt: skip
    finally:
        team.delete()
    _report(figures, log)
    return figures


def _load(team: Team, root: Path, files: list[str], windows: dict) -> list[dict]:
    dataset = Dataset.objects.create(team=team, name="nab")
    streams = []
    for rel in files:
        frame = pd.read_csv(root / "nab" / "data" / rel)
        stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])).tz_localize("UTC")
        ingest_points(
            dataset=dataset, source=IngestSource.API_JSON,
            data=pd.DataFrame({"metric": rel, "ts": stamps, "value": frame["value"].to_numpy(float)}),
        )  # fmt: skip
        n = len(frame)
        probation = max(1, probation_rows(n))
        rest = min(n - 1, probation + int(LABEL_FRACTION * n))
        streams.append({
            "rel": rel, "series": Series.objects.get(dataset=dataset, metric=rel), "stamps": stamps,
            "probation_end": stamps[probation].to_pydatetime(), "rest_start": stamps[rest].to_pydatetime(),
            "windows": [(pd.Timestamp(a, tz="UTC"), pd.Timestamp(b, tz="UTC")) for a, b in windows.get(rel, [])],
        })  # fmt: skip
    return streams


def _score_rest(detector, streams: list[dict]) -> dict[str, list[tuple]]:
    """Score each stream's rest with the active versions; returns its raised incidents and removes them all."""
    raised = {}
    for stream in streams:
        outcome = chunk_score(detector=detector, series_ids=[stream["series"].pk], start=stream["rest_start"])
        suppress_repeats(anomaly_ids=outcome.created_ids)  # what the run's "anomalies created" receiver does
        rest = Anomaly.objects.filter(detector=detector, series=stream["series"], start_ts__gte=stream["rest_start"])
        raised[stream["rel"]] = list(
            rest.exclude(review_status=ReviewStatus.SUPPRESSED).values_list("start_ts", "end_ts")
        )
        rest.delete()
    return raised


def _overlaps(start, end, windows) -> bool:
    return any(start <= b and end >= a for a, b in windows)


def _simulate_analyst(detector, streams: list[dict]) -> dict:
    counts = {Verdict.CONFIRMED: 0, Verdict.FALSE_POSITIVE: 0, Verdict.MISSED: 0}
    for stream in streams:
        found = list(Anomaly.objects.filter(
            detector=detector, series=stream["series"], kind=IncidentKind.OBSERVED,
            start_ts__gte=stream["probation_end"], start_ts__lt=stream["rest_start"],
        ))  # fmt: skip
        for incident in found:
            verdict = Verdict.CONFIRMED if _overlaps(incident.start_ts, incident.end_ts, stream["windows"]) else (
                Verdict.FALSE_POSITIVE)  # fmt: skip
            anomalies_label(anomalies=[incident], verdict=verdict, user=None)
            counts[verdict] += 1
        for a, b in stream["windows"]:
            lo, hi = max(a, pd.Timestamp(stream["probation_end"])), min(b, pd.Timestamp(stream["rest_start"]))
            if lo >= hi or any(i.start_ts <= hi and i.end_ts >= lo for i in found):
                continue
            missed_mark(detector=detector, series=stream["series"], start=lo.to_pydatetime(), end=hi.to_pydatetime(),
                        user=None, note="simulated analyst")  # fmt: skip
            counts[Verdict.MISSED] += 1
    return {str(k): v for k, v in counts.items()}


def _figures(raised: dict[str, list[tuple]], streams: list[dict], bench) -> dict:
    true = total = found = windows = 0
    alarms = {}
    for stream in streams:
        incidents = raised[stream["rel"]]
        total += len(incidents)
        true += sum(_overlaps(s, e, stream["windows"]) for s, e in incidents)
        for a, b in stream["windows"]:
            if b >= pd.Timestamp(stream["rest_start"]):
                windows += 1
                found += any(s <= b and e >= a for s, e in incidents)
        scores = np.zeros(len(stream["stamps"]))
        rows = stream["stamps"].searchsorted(pd.DatetimeIndex([s for s, _ in incidents], tz="UTC"))
        scores[rows[rows < len(scores)]] = 1.0
        alarms[stream["rel"]] = scores
    precision = true / total if total else 0.0
    recall = found / windows if windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    nab = bench.score(alarms, fixed_threshold=0.5)["standard"].normalised
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "nab_standard": round(float(nab), 2), "incidents": total, "windows": windows}  # fmt: skip


def _report(figures: dict, log) -> None:
    labels = figures["labels"]
    log(f"labels: {labels['confirmed']} confirmed, {labels['false_positive']} false positive, "
        f"{labels['missed']} missed; retraining {figures['retraining']['status']}: "
        f"{figures['retraining']['decision']}")  # fmt: skip
    log(f"{'':<8} {'incidents':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'NAB std':>8}")
    for name in ("before", "after"):
        f = figures[name]
        log(f"{name:<8} {f['incidents']:>9} {f['precision']:>9.3f} {f['recall']:>7.3f} {f['f1']:>6.3f} "
            f"{f['nab_standard']:>8.1f}")  # fmt: skip
    log(
        f"{figures['before']['windows']} windows in the scored rest; {figures['seconds']:.0f} s. "
        "Target: precision +0.20 with recall -0.05 at most."
    )
