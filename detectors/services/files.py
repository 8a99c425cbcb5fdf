"""Scoring a file's columns without a dataset: what `score_csv` and `bench extents` run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.algorithms.postprocess import DEFAULT_SENSITIVITY, DetectionResult, detect

TRAIN_FRACTION = 0.15


def score_values(
    values: np.ndarray,
    timestamps: pd.DatetimeIndex | pd.Series | None,
    *,
    algorithm: str = "auto",
    params: dict | None = None,
    sensitivity: float = DEFAULT_SENSITIVITY,
    train_rows: int | None = None,
    columns: list[str] | None = None,
    close_after: int | None = None,
    adapt_after: int = 0,
    mask_after: int = 0,
) -> DetectionResult:
    """Fit on the first `train_rows` rows (default 15 %), score every row causally, find incidents.

    `values` is (n,) for one column or (n, d) for several scored together.
    """
    n = len(values)
    train = max(1, int(TRAIN_FRACTION * n)) if train_rows is None else train_rows
    extra = {} if close_after is None else {"close_after": close_after}
    return detect(
        algorithm, values, timestamps=timestamps, train_size=train, sensitivity=sensitivity, params=params,
        columns=columns, adapt_after=adapt_after, mask_after=mask_after, **extra,
    )  # fmt: skip
