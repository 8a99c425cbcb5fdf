"""manage.py detect DETECTOR --from --to: backfill detection over history, with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from common.exceptions import ApplicationError
from detectors.models import Detector, RunTrigger
from detectors.services.runs import run_create, run_execute
from ingestion.selectors import parse_timestamp


class Command(BaseCommand):
    help = "Score a window of history (a backfill): a model fitted on the points before --from, no look-ahead."

    def add_arguments(self, parser):
        parser.add_argument("detector", help="detector id or name")
        parser.add_argument("--from", dest="start", help="window start, ISO 8601 or epoch seconds (default: all)")
        parser.add_argument("--to", dest="end", help="window end, exclusive (default: the latest point)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        detector = self._detector(options["detector"])
        try:
            start = parse_timestamp(options["start"], name="--from")
            end = parse_timestamp(options["end"], name="--to")
            run = run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=start, end=end)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        with tqdm(unit="series", desc=detector.name, disable=options["no_progress"]) as bar:
            run = run_execute(run=run, progress=lambda n: (setattr(bar, "total", run.series_total), bar.update(n)))
        self.stdout.write(
            f"run {run.pk}: {run.status}; {run.series_done} series, {run.points_scored:,} points scored, "
            f"{run.anomalies_found} new anomalies"
        )
        if run.error:
            self.stderr.write(run.error)

    @staticmethod
    def _detector(ref: str) -> Detector:
        found = Detector.objects.select_related("dataset").filter(
            **({"pk": int(ref)} if ref.isdigit() else {"name": ref})
        )
        if not found:
            raise CommandError(f"No detector {ref!r}")
        if len(found) > 1:
            raise CommandError(f"Several detectors are named {ref!r}; use the id")
        return found[0]
