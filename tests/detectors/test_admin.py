import pytest
from django.contrib.auth import get_user_model

from detectors.models import DetectionRun, ModelStatus, ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_it_plots_the_series_with_anomalies_and_band(admin_client, detector):
    page = admin_client.get(f"/admin/detectors/detector/{detector.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "circle" in html  # anomaly markers


def test_it_lists_detector_objects(admin_client, detector):
    for path in ["detector", "modelversion", "detectionrun", "anomaly"]:
        assert admin_client.get(f"/admin/detectors/{path}/").status_code == 200, path


def test_it_queues_a_run_from_the_admin_action(admin_client, detector):
    before = DetectionRun.objects.count()
    response = admin_client.post(
        "/admin/detectors/detector/", {"action": "run_now", "_selected_action": [detector.pk]}, follow=True
    )
    assert response.status_code == 200 and DetectionRun.objects.count() == before + 1


def test_it_rolls_back_from_the_admin(admin_client, detector):
    from detectors.services.modelling import detector_train

    detector_train(detector=detector)
    old = ModelVersion.objects.filter(detector=detector).order_by("version").first()
    admin_client.post("/admin/detectors/modelversion/", {"action": "activate", "_selected_action": [old.pk]})
    old.refresh_from_db()
    assert old.status == ModelStatus.ACTIVE


def test_it_creates_a_detector_through_the_admin_form(admin_client, spiky_dataset):
    response = admin_client.post(
        "/admin/detectors/detector/add/",
        {"dataset": spiky_dataset.pk, "name": "from admin", "enabled": "on", "metric": "", "label_filter": "{}",
         "algorithm": "mad", "params": "{}", "sensitivity": "0.5", "training_points": "500", "close_after": "10",
         "adapt_after": "0", "mask_after": "0", "forecast_config": "", "forecast_level": "95",
         "schedule_interval": "", "realtime": ""},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    assert spiky_dataset.detectors.get(name="from admin").algorithm == "mad"


def test_it_queues_a_backtest_from_the_admin(admin_client, detector):
    admin_client.post("/admin/detectors/detector/", {"action": "backtest_history", "_selected_action": [detector.pk]})
    run = DetectionRun.objects.latest("pk")
    assert run.trigger == "backtest" and run.detector == detector
    assert admin_client.get(f"/admin/detectors/detectionrun/{run.pk}/change/").status_code == 200
