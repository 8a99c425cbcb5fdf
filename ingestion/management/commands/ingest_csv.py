"""manage.py ingest_csv PATH --dataset ID|NAME: stream a CSV of points into a dataset, in chunks."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ingestion.models import Dataset, IngestMode, IngestStatus
from ingestion.parsers import parse_labels_text
from ingestion.services import ingest_points_csv_file


class Command(BaseCommand):
    help = (
        "Load a CSV of points (long: metric,ts,value[,labels]; or wide: ts plus one column per metric). "
        "Reads in chunks, so memory stays flat on files of any size."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dataset", required=True, help="dataset id, or name (with --team if ambiguous)")
        parser.add_argument("--team", help="team slug, to pick a dataset by name")
        parser.add_argument("--mode", choices=[m.value for m in IngestMode], default=IngestMode.STRICT)
        parser.add_argument("--labels", help="labels for every point: key=value;key=value")
        parser.add_argument("--chunk-size", type=int, default=500_000, help="rows per chunk")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        dataset = self._dataset(options["dataset"], options.get("team"))
        path = options["path"]
        if not os.path.isfile(path):
            raise CommandError(f"No such file: {path}")
        labels = self._labels(options.get("labels"))
        size = os.path.getsize(path)
        with (
            open(path, "rb") as file,
            tqdm(
                total=size, unit="B", unit_scale=True, desc=os.path.basename(path), disable=options["no_progress"]
            ) as bar,
        ):
            batch = ingest_points_csv_file(
                dataset=dataset, file=file, mode=options["mode"], filename=os.path.basename(path), labels=labels,
                chunksize=options["chunk_size"], progress=lambda done: bar.update(done - bar.n),
            )  # fmt: skip
            bar.update(size - bar.n)
        self._report(batch)

    @staticmethod
    def _dataset(ref: str, team: str | None) -> Dataset:
        datasets = Dataset.objects.select_related("team")
        if ref.isdigit():
            found = datasets.filter(pk=int(ref))
        else:
            found = datasets.filter(name=ref, **({"team__slug": team} if team else {}))
        if not found:
            raise CommandError(f"No dataset {ref!r}" + (f" in team {team!r}" if team else ""))
        if len(found) > 1:
            raise CommandError(f"Several teams have a dataset named {ref!r}; pass --team SLUG")
        return found[0]

    @staticmethod
    def _labels(text: str | None) -> dict | None:
        try:
            return parse_labels_text(text) if text else None
        except ValueError as exc:
            raise CommandError(f"--labels: {exc}") from exc

    def _report(self, batch) -> None:
        self.stdout.write(
            f"batch {batch.pk}: {batch.status}; received {batch.received:,}, inserted {batch.inserted:,}, "
            f"updated {batch.updated:,}, duplicate {batch.duplicate:,}, rejected {batch.rejected:,}"
        )
        for error in batch.errors[:20]:
            self.stderr.write(f"  row {error['row']}, {error['field']}: {error['message']} ({error.get('value')!r})")
        if batch.status == IngestStatus.REJECTED:
            raise CommandError(batch.message)
