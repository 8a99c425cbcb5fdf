"""`manage.py bench forecast --json` on a slice of M4: its shape, and Naive2 as the OWA reference."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from forecasting.evaluation.m4 import DEFAULT_M4_ROOT, load_scorer, run_m4

pytestmark = pytest.mark.skipif(not (DEFAULT_M4_ROOT / "m4_score.py").exists(), reason="M4 data not present")


def test_it_prints_one_object_per_frequency_and_method():
    out = StringIO()
    call_command(
        "bench", "forecast", "--json", "--scale", "0.01", "--algorithms", "naive2,seasonal_naive", "--processes", "1",
        stdout=out,
    )  # fmt: skip
    figures = json.loads(out.getvalue())
    assert set(figures) == {"hourly", "weekly"}
    for freq in ("hourly", "weekly"):
        assert set(figures[freq]) == {"naive2", "seasonal_naive"}
        for row in figures[freq].values():
            assert set(row) == {"smape", "mase", "owa", "msis", "coverage_95", "seconds"}
        assert figures[freq]["naive2"]["owa"] == 1.0  # the scorer's own Naive2, recomputed the same way


def test_seasonal_naive_matches_the_scorers_baseline():
    scorer = load_scorer()
    report = run_m4(["seasonal_naive"], ["hourly"], processes=1, limit=20, log=lambda line: None)
    train, test = scorer.load("Hourly")
    expected = scorer.evaluate("Hourly", scorer.snaive(train[:20], 48, 24), train=train[:20], test=test[:20])
    assert report["hourly"]["seasonal_naive"]["smape"] == round(expected["sMAPE"], 3)
    assert report["hourly"]["seasonal_naive"]["mase"] == round(expected["MASE"], 3)


def test_holdout_never_reads_the_test_part(monkeypatch):
    scorer = load_scorer()
    train, test = scorer.load("Weekly")
    poisoned = test * 0 + 1e9  # if the holdout scored against the test part, the errors would explode
    monkeypatch.setattr(scorer, "load", lambda name: ([x.copy() for x in train], poisoned))
    report = run_m4(["naive2"], ["weekly"], processes=1, limit=10, holdout=True, log=lambda line: None)
    assert report["weekly"]["naive2"]["smape"] < 50
