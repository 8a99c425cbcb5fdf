import pytest

from tests.forecasting.helpers import dataset_with_series, hourly_frame


@pytest.fixture
def hourly_dataset(team):
    """Two hourly series, "cpu" and "mem", three weeks each (2024-01-01 .. 2024-01-21 23:00)."""
    return dataset_with_series(team, [hourly_frame(), hourly_frame(metric="mem", seed=1, level=80)])
