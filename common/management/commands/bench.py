"""manage.py bench NAME [--json]: benchmarks that report ratios against a reference measured in the same run."""

from __future__ import annotations

import importlib
import json
import logging

from django.core.management.base import BaseCommand, CommandError

# name -> "module:function"; each function takes the parsed options and returns (report lines, figures).
BENCHMARKS = {
    "api": "detectors.api_benchmark:bench_api",
    "ingest": "ingestion.benchmarks:bench_ingest",
    "nab": "detectors.benchmarks:bench_nab",
    "detect": "detectors.benchmarks:bench_detect",
    "extents": "detectors.benchmarks:bench_extents",
    "forecast": "forecasting.benchmarks:bench_forecast",
    "feedback": "feedback.benchmarks:bench_feedback",
    "alerts": "alerts.benchmarks:bench_alerts",
}


def load_benchmark(name: str):
    if name not in BENCHMARKS:
        raise CommandError(f"Unknown benchmark {name!r}; choose from: {', '.join(sorted(BENCHMARKS))}")
    module, function = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module), function)


class Command(BaseCommand):
    help = "Run a benchmark and print its figures (ratios against a reference measured in the same run)."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"one of: {', '.join(sorted(BENCHMARKS))}")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
        parser.add_argument("--scale", type=float, default=1.0, help="multiply the benchmark's size (e.g. 0.1)")
        parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are the median (ingest)")
        parser.add_argument("--algorithms", help="comma-separated algorithm keys (nab: default all; detect: auto)")
        parser.add_argument("--processes", type=int, default=2, help="worker processes (nab, detect, forecast)")
        parser.add_argument("--holdout", action="store_true", help="forecast: score the training's last horizon")

    def handle(self, *args, **options):
        benchmark = load_benchmark(options["name"])
        log = (lambda line: None) if options["json"] else self.stdout.write
        # Figures go to stdout; the platform's own log lines would only interleave with them.
        logging.disable(logging.INFO)
        algorithms = [key.strip() for key in (options["algorithms"] or "").split(",") if key.strip()]
        figures = benchmark(
            scale=options["scale"], repeat=options["repeat"], algorithms=algorithms, processes=options["processes"],
            holdout=options["holdout"], log=log,
        )  # fmt: skip
        if options["json"]:
            self.stdout.write(json.dumps(figures))
