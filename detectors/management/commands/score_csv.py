"""manage.py score_csv PATH --out OUT.csv: score a CSV file with any algorithm, no dataset needed.

The same code the platform's detectors run (fit on the training rows, score every later row causally
in file order, calibrate, threshold, follow each incident to its end), only without the database.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from detectors.algorithms.incidents import DEFAULT_CLOSE_AFTER
from detectors.algorithms.params import ParamsError
from detectors.algorithms.postprocess import DEFAULT_SENSITIVITY
from detectors.algorithms.registry import algorithm_keys, get_algorithm
from detectors.services.files import TRAIN_FRACTION, score_values
from ingestion.parsers import EPOCH_MS_THRESHOLD, TS_COLUMNS


class Command(BaseCommand):
    help = (
        "Score a CSV of one or more numeric columns and a time column (ts, timestamp or time: dates or epoch "
        "numbers; else a first column of dates; else none, and rows are steps); several columns are scored "
        "together (multivariate). Writes the time column (or row), anomaly_score (0-1, calibrated), anomaly "
        "(1 on every row inside an incident) and alarm (1 on the row that opened it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--out", required=True, help="where to write the scored CSV")
        parser.add_argument("--algorithm", default="auto", choices=algorithm_keys())
        parser.add_argument("--params", default="{}", help="algorithm params as JSON")
        train = parser.add_mutually_exclusive_group()
        train.add_argument("--train-rows", type=int, help="fit on the first N rows (default: 15%% of the file)")
        train.add_argument("--train", help="fit on this CSV (same columns) instead; every input row is scored")
        parser.add_argument("--sensitivity", type=float, default=DEFAULT_SENSITIVITY, help="0-1 (default 0.5)")
        parser.add_argument(
            "--close-after", type=int, default=DEFAULT_CLOSE_AFTER,
            help=f"an incident closes after about this many rows back inside its band (default {DEFAULT_CLOSE_AFTER})",
        )  # fmt: skip
        parser.add_argument(
            "--adapt-after", type=int, default=0,
            help="an incident still open after this many rows closes and its level becomes normal (0: never)",
        )  # fmt: skip
        parser.add_argument(
            "--mask-after", type=int, default=0,
            help="incidents at least this many rows long are kept out of what the detector learns (0: none)",
        )  # fmt: skip

    def handle(self, *args, **options):
        if not 0 <= options["sensitivity"] <= 1:
            raise CommandError("--sensitivity must be between 0 and 1")
        stamps, values, written = self._read(options["path"])
        train_rows = self._train_rows(options, len(values))
        if options["train"]:
            train_stamps, train_values, _ = self._read(options["train"], columns=list(values.columns))
            train_rows = len(train_values)
            stamps = pd.concat([train_stamps, stamps], ignore_index=True)
            values = pd.concat([train_values, values], ignore_index=True)
            if written.name == "row" and written.name not in values.columns:  # steps go on from the training's
                stamps = pd.Series(pd.date_range("1970-01-01", periods=len(values), freq="s", tz="UTC"))
        params = self._params(options["algorithm"], options["params"], multivariate=values.shape[1] > 1)
        if options["close_after"] < 1 or options["adapt_after"] < 0:
            raise CommandError("--close-after must be at least 1 and --adapt-after at least 0")
        try:
            result = score_values(
                values.to_numpy(float) if values.shape[1] > 1 else values.iloc[:, 0].to_numpy(), stamps,
                algorithm=options["algorithm"], params=params, sensitivity=options["sensitivity"],
                train_rows=train_rows, columns=[str(c) for c in values.columns],
                close_after=options["close_after"], adapt_after=options["adapt_after"],
                mask_after=options["mask_after"],
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        first = train_rows if options["train"] else 0
        out = pd.DataFrame({
            written.name: written.to_numpy() if pd.api.types.is_numeric_dtype(written)
            else stamps.iloc[first:].dt.strftime("%Y-%m-%dT%H:%M:%S%z").to_numpy(),
            "anomaly_score": np.round(result.anomaly_score[first:], 6) + 0.0,  # no "-0.0"
            "anomaly": result.in_incident[first:].astype(int),
            "alarm": result.is_anomaly[first:].astype(int),
        })  # fmt: skip
        out.to_csv(options["out"], index=False)
        self.stdout.write(
            f"{len(out):,} rows scored with {options['algorithm']} on {values.shape[1]} column(s); "
            f"{len(result.events)} incidents covering {int(out['anomaly'].sum()):,} rows -> {options['out']}"
        )
        for event in result.events[:20]:
            self.stdout.write(f"  {event.start_ts}: {event.explanation.get('text', '')}")

    @staticmethod
    def _read(path: str, columns: list[str] | None = None) -> tuple[pd.Series, pd.DataFrame, pd.Series]:
        """(timestamps, numeric columns, the time column as written), see the help: the time column is ``ts``,
        ``timestamp`` or ``time`` (dates, or epoch numbers), else a first column of dates, else none."""
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        ts_name = next((c for c in TS_COLUMNS if c in frame.columns), None)
        if ts_name is None and len(frame.columns) and not pd.api.types.is_numeric_dtype(frame[frame.columns[0]]):
            ts_name = frame.columns[0]
        if ts_name is None:  # no time column: rows are steps of one second, named by their position
            written = pd.Series(np.arange(len(frame)), name="row")
            stamps = pd.Series(pd.date_range("1970-01-01", periods=len(frame), freq="s", tz="UTC"))
        else:
            written = frame[ts_name]
            stamps = _timestamps(written)
        if stamps.isna().any():
            row = int(np.flatnonzero(stamps.isna().to_numpy())[0]) + 1
            raise CommandError(f"{path}: row {row}: column {ts_name!r} is not a timestamp")
        values = frame if ts_name is None else frame.drop(columns=[ts_name])
        if columns is not None:
            missing = set(columns) - set(values.columns)
            if missing:
                raise CommandError(f"{path}: missing columns {sorted(missing)}")
            values = values[columns]
        bad = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
        if bad or values.empty:
            raise CommandError(f"{path}: every column but {ts_name!r} must be numeric (not: {bad or 'none given'})")
        return stamps.reset_index(drop=True), values.reset_index(drop=True), written.reset_index(drop=True)

    @staticmethod
    def _train_rows(options, n: int) -> int:
        if options["train"]:
            return 0  # set after the training file is read
        rows = options["train_rows"] or max(1, int(TRAIN_FRACTION * n))
        if not 1 <= rows < n:
            raise CommandError(f"--train-rows must be between 1 and {n - 1}")
        return rows

    @staticmethod
    def _params(algorithm: str, text: str, *, multivariate: bool) -> dict:
        try:
            params = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"--params is not JSON: {exc}") from exc
        cls = get_algorithm(algorithm)
        if multivariate and not cls.tags.get("multivariate"):
            multi = [k for k in algorithm_keys() if get_algorithm(k).tags.get("multivariate")]
            raise CommandError(f"{algorithm} scores one column; for several use one of: {', '.join(multi)}")
        try:
            return cls.validate_params(params)
        except ParamsError as exc:
            raise CommandError(f"--params: {exc}") from exc


def _timestamps(column: pd.Series) -> pd.Series:
    """Dates as they are; numbers as epoch seconds (milliseconds from EPOCH_MS_THRESHOLD on), so a plain row
    index works too. NaT where a value is neither."""
    if pd.api.types.is_numeric_dtype(column):
        numbers = column.astype(float)
        unit = "ms" if numbers.abs().max() >= EPOCH_MS_THRESHOLD else "s"
        return pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce")
    return pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
