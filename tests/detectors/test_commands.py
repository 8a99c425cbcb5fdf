"""manage.py detect (backfill) and manage.py score_csv (no database)."""

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from detectors.models import Anomaly, DetectionRun, RunTrigger
from detectors.services.configs import detector_create


@pytest.mark.django_db
def test_detect_backfills_a_window(spiky_dataset):
    detector = detector_create(dataset=spiky_dataset, name="cpu", algorithm="mad")
    call_command("detect", str(detector.pk), "--from", "2024-01-02", "--to", "2024-01-30", "--no-progress")
    run = DetectionRun.objects.get(detector=detector)
    # 24 points before --from are too few to fit on, so the first 15 % of the points read (90) train the model.
    assert run.trigger == RunTrigger.BACKFILL and run.status == "succeeded" and run.points_scored == 600 - 90
    assert Anomaly.objects.filter(detector=detector).exists()


@pytest.mark.django_db
def test_detect_refuses_a_backwards_window(spiky_dataset):
    detector = detector_create(dataset=spiky_dataset, name="cpu", algorithm="mad")
    with pytest.raises(CommandError, match="before its end"):
        call_command("detect", "cpu", "--from", "2024-02-01", "--to", "2024-01-01", "--no-progress")
    assert not DetectionRun.objects.filter(detector=detector).exists()


def write_csv(path, n=1500, columns=1, spike_at=1200, seed=3):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")})
    base = rng.normal(0, 1, n)
    for c in range(columns):
        frame[f"v{c}"] = base * (c + 1) + rng.normal(0, 0.1, n)
    frame.loc[spike_at, "v0"] += 12
    frame.to_csv(path, index=False)
    return frame


def test_score_csv_writes_a_calibrated_score_per_row(tmp_path):
    source = write_csv(tmp_path / "in.csv")
    call_command("score_csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"), "--algorithm", "zscore",
                 "--train-rows", "500")  # fmt: skip
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["timestamp", "anomaly_score", "anomaly", "alarm"] and len(out) == len(source)
    assert out["anomaly_score"].between(0, 1).all()
    assert out["anomaly_score"].idxmax() == 1200 and out.loc[1200, "anomaly"] == 1
    assert out.loc[:499, "anomaly"].sum() == 0  # training rows raise no alarm


def test_score_csv_scores_several_columns_together(tmp_path):
    write_csv(tmp_path / "in.csv", columns=3)
    call_command("score_csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"), "--algorithm", "gmm",
                 "--train-rows", "600")  # fmt: skip
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["anomaly_score"].idxmax() == 1200


def test_score_csv_fits_on_a_separate_training_file(tmp_path):
    write_csv(tmp_path / "train.csv", n=800, spike_at=10, seed=1)
    write_csv(tmp_path / "in.csv", n=400, spike_at=200, seed=2)
    call_command("score_csv", str(tmp_path / "in.csv"), "--train", str(tmp_path / "train.csv"),
                 "--out", str(tmp_path / "out.csv"), "--algorithm", "mad")  # fmt: skip
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 400 and out["anomaly_score"].idxmax() == 200


def test_score_csv_is_causal(tmp_path):
    """Changing the file's last rows changes no earlier score."""
    frame = write_csv(tmp_path / "a.csv")
    frame.loc[1400:, "v0"] += 50
    frame.to_csv(tmp_path / "b.csv", index=False)
    for name in "ab":
        call_command("score_csv", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / f"{name}.out"),
                     "--algorithm", "auto", "--train-rows", "300")  # fmt: skip
    a, b = pd.read_csv(tmp_path / "a.out"), pd.read_csv(tmp_path / "b.out")
    assert np.allclose(a.loc[:1399, "anomaly_score"], b.loc[:1399, "anomaly_score"])


def test_score_csv_explains_bad_input(tmp_path):
    (tmp_path / "bad.csv").write_text("timestamp,v\n2024-01-01,1\nnot a time,2\n")
    with pytest.raises(CommandError, match="row 2"):
        call_command("score_csv", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o.csv"))
    (tmp_path / "text.csv").write_text("timestamp,v\n2024-01-01,a\n2024-01-02,b\n")
    with pytest.raises(CommandError, match="numeric"):
        call_command("score_csv", str(tmp_path / "text.csv"), "--out", str(tmp_path / "o.csv"))
    write_csv(tmp_path / "two.csv", columns=2)
    with pytest.raises(CommandError, match="one column"):
        call_command("score_csv", str(tmp_path / "two.csv"), "--out", str(tmp_path / "o.csv"), "--algorithm", "cusum")


def test_score_csv_auto_sees_a_broken_relation_between_columns(tmp_path):
    """Each column alone looks normal at row 1500; only their relation breaks there."""
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 2000)
    b = 2 * a + rng.normal(0, 0.1, 2000)
    b[1500] += 3
    stamps = pd.date_range("2024-01-01", periods=2000, freq="5min", tz="UTC")
    pd.DataFrame({"timestamp": stamps, "a": a, "b": b}).to_csv(tmp_path / "in.csv", index=False)
    call_command("score_csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"), "--train-rows", "1000")
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["anomaly_score"].idxmax() == 1500 and out.loc[1500, "alarm"] == 1
    assert out["alarm"].sum() == 1 and out["anomaly"].sum() <= 5  # one short incident


def daily_sine(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    return stamps, 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)


def score_file(tmp_path, stamps, values, *args):
    pd.DataFrame({"timestamp": stamps, "v": values}).to_csv(tmp_path / "in.csv", index=False)
    call_command("score_csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"), "--train-rows", "600",
                 *args)  # fmt: skip
    return pd.read_csv(tmp_path / "out.csv")


def test_score_csv_marks_every_row_of_a_lasting_level_shift(tmp_path):
    stamps, values = daily_sine()
    values[1500:1900] += 10
    out = score_file(tmp_path, stamps, values)
    inside = out.loc[1500:1899, "anomaly"]
    assert inside.mean() >= 0.98
    assert out.loc[1500:1899, "alarm"].sum() == 1 and out.loc[1500, "alarm"] == 1  # one incident, one alarm
    assert out["anomaly"].sum() - inside.sum() <= 20  # it closes soon after the series is back


def test_score_csv_finds_a_second_deviation_after_a_spike_and_no_echo_a_day_later(tmp_path):
    stamps, values = daily_sine()
    values[1500] += 40
    values[1520] -= 20
    values[1545] -= 20
    out = score_file(tmp_path, stamps, values, "--mask-after", "1")
    assert out.loc[[1500, 1520, 1545], "alarm"].tolist() == [1, 1, 1]  # nothing holds the dips back
    assert out.loc[1500 + 288 - 5 : 1500 + 288 + 5, "anomaly"].sum() == 0  # the spike did not become "normal"


def test_score_csv_closes_a_lasting_change_as_the_new_normal_when_asked(tmp_path):
    stamps, values = daily_sine()
    values[1500:] += 10
    out = score_file(tmp_path, stamps, values, "--adapt-after", "100")
    assert out.loc[1500:1599, "anomaly"].all() and out.loc[1500, "alarm"] == 1
    assert out.loc[1650:, "anomaly"].sum() <= 20  # the new level is normal from then on


def test_score_csv_takes_epoch_numbers_a_row_index_or_no_time_column(tmp_path):
    rng = np.random.default_rng(1)
    values = {f"m{c}": np.sin(np.arange(1500) / 40 + c) + rng.normal(0, 0.1, 1500) for c in range(3)}
    values["m1"][1000:1100] += 2
    for name, time in (("epoch", {"timestamp": 1_700_000_000 + 60 * np.arange(1500)}),
                       ("index", {"time": np.arange(1500)}), ("none", {})):  # fmt: skip
        pd.DataFrame({**time, **values}).to_csv(tmp_path / f"{name}.csv", index=False)
        call_command("score_csv", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / f"{name}.out"))
        out = pd.read_csv(tmp_path / f"{name}.out")
        assert list(out.columns) == [next(iter(time), "row"), "anomaly_score", "anomaly", "alarm"]
        assert out.iloc[:, 0].tolist() == (list(next(iter(time.values()))) if time else list(range(1500)))
        assert out["anomaly"][1000:1100].mean() > 0.9 and out["anomaly"][300:1000].mean() < 0.1
