"""Retraining from labels: a candidate per series, judged against the active version, promoted only if better.

A candidate keeps the active version's fitted model and learns from the detector's labels how to turn its
scores into incidents (maximising F-beta over the labelled incidents, beta a detector setting):
- with FEEDBACK_MIN_SUPERVISED_LABELS labelled incidents, at least 5 of each verdict: a triage (logistic
  regression over each incident's shape, direction, size, length, score and its series' record) with the
  cut below which new incidents are held back as likely false alarms;
- with fewer: only the alarm threshold, raised to where F-beta is best (only raising can be learnt:
  incidents a lower threshold would add were never raised, so never labelled).
Missed anomalies count as misses whatever the candidate does.

Judging: a twin of the candidate learns from the earlier labels and is scored with the active version on
the latest ones (FEEDBACK_HOLDOUT_FRACTION; "latest" by each label's place in its own series' history, see
_held_out). Only when the twin beats the active version there is the candidate (which learns from all
labels) promoted; either way both keep their figures, and a rejected candidate stays stored as
`candidate`. Rollback is one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from detectors.algorithms.postprocess import sensitivity_threshold
from detectors.algorithms.triage import Signature, Triage, best_threshold, f_beta
from detectors.models import Detector, ModelReason, ModelStatus, ModelVersion
from detectors.services.labelled import signature_of
from detectors.services.modelling import model_version_activate
from feedback.models import AuditLog, Label, Retraining, RetrainingStatus, RetrainingTrigger, Verdict
from feedback.selectors import analyst_labels

LEARNT_FROM = (Verdict.CONFIRMED, Verdict.FALSE_POSITIVE)


@dataclass
class Examples:
    """Labelled incidents, oldest first, and how many missed anomalies came with them."""

    signatures: list[Signature]
    series: list[int]
    scores: np.ndarray
    positive: np.ndarray
    missed: int

    def __len__(self) -> int:
        return len(self.signatures)

    def part(self, rows: np.ndarray, missed: int) -> Examples:
        picked = np.flatnonzero(rows)
        return Examples([self.signatures[i] for i in picked], [self.series[i] for i in picked], self.scores[picked],
                        self.positive[picked], missed)  # fmt: skip


@dataclass
class Calibration:
    threshold: float
    triage: Triage | None

    def raises(self, examples: Examples) -> np.ndarray:
        raised = examples.scores >= self.threshold
        if self.triage is not None and len(examples):
            raised &= self.triage.keeps(examples.signatures, examples.series)
        return raised


def retraining_due_from_labels(*, detector_id: int) -> Retraining | None:
    """Queue a retraining when the detector has `retrain_after_labels` analyst labels since its last one."""
    detector = Detector.objects.get(pk=detector_id)
    if not detector.retrain_after_labels:
        return None
    retrainings = Retraining.objects.filter(detector=detector)
    if retrainings.filter(status__in=[RetrainingStatus.QUEUED, RetrainingStatus.RUNNING]).exists():
        return None
    last = retrainings.aggregate(last=Max("created_at"))["last"]
    new = analyst_labels(detector_id=detector_id)
    if last is not None:
        new = new.filter(created_at__gt=last)
    if new.count() < detector.retrain_after_labels:
        return None
    return retraining_queue(detector=detector, trigger=RetrainingTrigger.LABELS)


def retraining_queue(*, detector: Detector, trigger: str, user=None) -> Retraining:
    from feedback import tasks

    retraining = Retraining.objects.create(detector=detector, trigger=trigger, created_by=user)
    transaction.on_commit(lambda: tasks.retrain.delay(retraining.pk))
    return retraining


def retraining_run(*, retraining_id: int) -> Retraining:
    """Train, judge and maybe promote (idempotent: a finished retraining is left as it is)."""
    started = Retraining.objects.filter(
        pk=retraining_id, status__in=[RetrainingStatus.QUEUED, RetrainingStatus.RUNNING]
    ).update(status=RetrainingStatus.RUNNING, updated_at=timezone.now())
    retraining = Retraining.objects.select_related("detector").get(pk=retraining_id)
    if not started:
        return retraining
    detector = retraining.detector
    labels = list(
        analyst_labels(detector_id=detector.pk).filter(anomaly__isnull=False).select_related("anomaly")
        .order_by("start_ts", "pk")
    )  # fmt: skip
    retraining.labels.set(labels)
    examples, learnt_ts, missed_ts = _examples(labels)
    active = {v.series_id: v for v in ModelVersion.objects.filter(detector=detector, status=ModelStatus.ACTIVE)}
    too_few = _too_few(examples, active)
    if too_few:
        return _finish(retraining, RetrainingStatus.SKIPPED, too_few, {"labels": len(labels)})
    held_rows, held_missed = _held_out(examples, learnt_ts, missed_ts)
    train = examples.part(~held_rows, examples.missed - held_missed)
    held = examples.part(held_rows, held_missed)
    beta = detector.feedback_beta
    twin = _calibrate(train, detector)
    active_raises = _active_raises(held, active)
    figures = {
        "labels": len(labels), "trained_on": len(train), "held_out": len(held), "missed_held_out": held_missed,
        "beta": beta, "candidate": _figures(twin.raises(held), held, beta),
        "active": _figures(active_raises, held, beta),
    }  # fmt: skip
    candidate = _calibrate(examples, detector)
    figures["candidate_threshold"], figures["candidate_triage"] = candidate.threshold, candidate.triage is not None
    better = figures["candidate"]["f_beta"] > figures["active"]["f_beta"] + 1e-9
    versions = _store_candidates(detector, active, candidate, figures, promote=better)
    retraining.candidates.set(versions)
    verdict = "better" if better else "not better"
    mine, theirs = figures["candidate"]["f_beta"], figures["active"]["f_beta"]
    decision = f"Candidate F{beta:g} {mine:.3f} vs active {theirs:.3f} on the {len(held)} latest labels: {verdict}; "
    decision += "promoted." if better else "the active version stays."
    status = RetrainingStatus.PROMOTED if better else RetrainingStatus.REJECTED
    if better:
        _audit(retraining, "model.promote", {"versions": [v.pk for v in versions]})
    return _finish(retraining, status, decision, figures)


def _held_out(examples: Examples, learnt_ts: list, missed_ts: list) -> tuple[np.ndarray, int]:
    """The latest labels, by their place in their own series' labelled history: each label gets the share of its
    series' labels at or before it (mid-rank), and the highest FEEDBACK_HOLDOUT_FRACTION of all are held out.
    Series are judged on their own latest labels, whatever clock each series keeps. Missed anomalies after the
    earliest held-out label of their series are held out too."""
    series = np.asarray([str(s) for s in examples.series])
    position = np.empty(len(series))
    for key in np.unique(series):
        rows = np.flatnonzero(series == key)  # already in time order
        position[rows] = (np.arange(len(rows)) + 0.5) / len(rows)
    count = max(1, round(len(series) * settings.FEEDBACK_HOLDOUT_FRACTION))
    order = np.lexsort((np.asarray([ts.timestamp() for ts in learnt_ts]), position))
    held = np.zeros(len(series), bool)
    held[order[-count:]] = True
    first_held = {}
    for key, ts, is_held in zip(series, learnt_ts, held, strict=True):
        if is_held:
            first_held[key] = min(first_held.get(key, ts), ts)
    held_missed = sum(1 for key, ts in missed_ts if key in first_held and ts >= first_held[key])
    return held, held_missed


def _examples(labels: list[Label]) -> tuple[Examples, list, list]:
    """The labelled incidents as examples, their times, and (series, time) of the missed anomalies."""
    learnt = [label for label in labels if label.verdict in LEARNT_FROM]
    missed_ts = [(str(label.series_id), label.start_ts) for label in labels if label.verdict == Verdict.MISSED]
    examples = Examples(
        [signature_of(label.anomaly) for label in learnt], [label.series_id for label in learnt],
        np.array([label.anomaly.score for label in learnt], float),
        np.array([label.verdict == Verdict.CONFIRMED for label in learnt], bool), len(missed_ts),
    )  # fmt: skip
    return examples, [label.start_ts for label in learnt], missed_ts


def _too_few(examples: Examples, active: dict) -> str:
    if not active:
        return "The detector has no active model version to improve on yet."
    if len(examples) < settings.FEEDBACK_MIN_LABELS:
        needed = settings.FEEDBACK_MIN_LABELS
        return f"{len(examples)} labelled incidents; at least {needed} are needed to judge a candidate."
    if examples.positive.all() or not examples.positive.any():
        return "The labels are all of one kind (all confirmed or all false positives): nothing to tell apart."
    return ""


def _calibrate(examples: Examples, detector: Detector) -> Calibration:
    """A triage when there are enough labels of both kinds (it weighs the score with everything else, so the
    threshold stays where the sensitivity puts it); otherwise only the threshold is raised."""
    beta = detector.feedback_beta
    base = sensitivity_threshold(detector.sensitivity)
    positives = int(examples.positive.sum())
    if len(examples) >= settings.FEEDBACK_MIN_SUPERVISED_LABELS and min(positives, len(examples) - positives) >= 5:
        triage = Triage.fit(examples.signatures, examples.series, examples.positive, beta=beta, missed=examples.missed)
        return Calibration(base, triage)
    return Calibration(best_threshold(examples.scores, examples.positive, base, beta, examples.missed), None)


def _active_raises(examples: Examples, active: dict) -> np.ndarray:
    raised = np.zeros(len(examples), bool)
    rows = zip(examples.signatures, examples.series, examples.scores, strict=True)
    for i, (signature, series_id, score) in enumerate(rows):
        version = active.get(series_id)
        if version is None:
            raised[i] = True  # raised by whatever found it; nothing to compare against
            continue
        triage = Triage.from_state(version.triage)
        raised[i] = score >= version.threshold and (triage is None or bool(triage.keeps([signature], [series_id])[0]))
    return raised


def _figures(raised: np.ndarray, examples: Examples, beta: float) -> dict:
    tp = int((raised & examples.positive).sum())
    fp = int((raised & ~examples.positive).sum())
    fn = int((~raised & examples.positive).sum()) + examples.missed
    return {"tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0, "f_beta": f_beta(tp, fp, fn, beta)}  # fmt: skip


def _store_candidates(detector, active: dict, calibration: Calibration, figures: dict, *, promote: bool) -> list:
    """One candidate per series with an active version: its fitted model, the learnt calibration."""
    now = timezone.now()
    triage = calibration.triage.to_state() if calibration.triage is not None else {}
    with transaction.atomic():
        Detector.objects.select_for_update().filter(pk=detector.pk).exists()
        last = dict(
            ModelVersion.objects.filter(detector=detector).values("series_id").annotate(n=Max("version"))
            .values_list("series_id", "n")
        )  # fmt: skip
        candidates = ModelVersion.objects.bulk_create([
            ModelVersion(
                detector=detector, series_id=sid, version=last[sid] + 1, algorithm=v.algorithm, params=v.params,
                state=v.state, threshold=calibration.threshold, triage=triage, sensitivity=v.sensitivity,
                training_start=v.training_start, training_end=v.training_end, training_size=v.training_size,
                reason=ModelReason.FEEDBACK, code_version=v.code_version, status=ModelStatus.CANDIDATE,
                metrics={"feedback": figures, "replaces": v.pk},
            )
            for sid, v in active.items()
        ])  # fmt: skip
        for version in active.values():
            version.metrics = {**version.metrics, "feedback_as_active": figures["active"]}
            version.updated_at = now
        ModelVersion.objects.bulk_update(list(active.values()), ["metrics", "updated_at"], batch_size=500)
        if promote:
            for candidate in candidates:
                model_version_activate(version=candidate)
    return candidates


def retraining_rollback(*, retraining: Retraining, user=None) -> int:
    """Make the versions a promoted retraining replaced active again; returns how many were restored."""
    restored = 0
    with transaction.atomic():
        for candidate in retraining.candidates.filter(status=ModelStatus.ACTIVE):
            previous = ModelVersion.objects.filter(pk=candidate.metrics.get("replaces")).first()
            if previous is not None:
                model_version_activate(version=previous)
                restored += 1
        _audit(retraining, "model.rollback", {"restored": restored}, user=user)
    return restored


def _finish(retraining: Retraining, status: str, decision: str, metrics: dict) -> Retraining:
    retraining.status, retraining.decision, retraining.metrics = status, decision, metrics
    retraining.finished_at = timezone.now()
    retraining.save(update_fields=["status", "decision", "metrics", "finished_at", "updated_at"])
    return retraining


def _audit(retraining: Retraining, action: str, data: dict, user=None) -> None:
    AuditLog.objects.create(
        team_id=retraining.detector.dataset.team_id, actor=user, action=action, target_type="retraining",
        target_id=retraining.pk, data={"detector": retraining.detector_id, **data},
    )  # fmt: skip


def retrainings_scheduled() -> list[Retraining]:
    """The periodic pass: every detector with analyst labels newer than its last retraining gets one."""
    queued = []
    for detector in Detector.objects.filter(enabled=True, labels__source="analyst").distinct():
        retrainings = Retraining.objects.filter(detector=detector)
        if retrainings.filter(status__in=[RetrainingStatus.QUEUED, RetrainingStatus.RUNNING]).exists():
            continue
        last = retrainings.aggregate(last=Max("created_at"))["last"]
        if last is None or analyst_labels(detector_id=detector.pk).filter(created_at__gt=last).exists():
            queued.append(retraining_queue(detector=detector, trigger=RetrainingTrigger.SCHEDULE))
    return queued


def rebaseline(*, detector_id: int, series_id: int, since) -> int | None:
    """Fit the series a new model from `since` (a "new normal" verdict); a redelivered task fits once."""
    from detectors.services.modelling import model_version_rebaseline

    detector = Detector.objects.get(pk=detector_id)
    done = ModelVersion.objects.filter(
        detector=detector, series_id=series_id, status=ModelStatus.ACTIVE, reason=ModelReason.FEEDBACK,
        training_start__gte=since,
    ).exists()  # fmt: skip
    if done:
        return None
    version = model_version_rebaseline(detector=detector, series_id=series_id, since=since)
    return version.pk if version is not None else None
