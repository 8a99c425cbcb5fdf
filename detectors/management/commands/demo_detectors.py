"""manage.py demo_detectors: a detector on each sample dataset of team "Demo", its backfill queued."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction

from detectors.models import RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_enqueue
from ingestion.models import Dataset, DatasetKind

DEMO_TEAM_SLUG = "demo"


class Command(BaseCommand):
    help = (
        'Give every dataset of team "Demo" a detector (auto for series, a Gaussian mixture for tables, run '
        "daily) and queue its first run, a backfill over the whole history, for the workers. Idempotent."
    )

    def handle(self, *args, **options):
        for dataset in Dataset.objects.filter(team__slug=DEMO_TEAM_SLUG).order_by("pk"):
            name = f"{dataset.name} watch"
            if dataset.detectors.filter(name=name).exists():
                self.stdout.write(f"{name}: exists")
                continue
            algorithm = "gmm" if dataset.kind == DatasetKind.TABLE else "auto"
            with transaction.atomic():
                detector = detector_create(dataset=dataset, name=name, algorithm=algorithm,
                                           schedule_interval=timedelta(days=1))  # fmt: skip
                run_enqueue(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL))
            self.stdout.write(f"{name}: detector created ({algorithm}); backfill queued for the workers")
