"""Detector limits: ensemble members, training points, detectors per team, the shortest schedule."""

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def create(client, dataset, **fields):
    return client.post("/api/v1/detectors", {"dataset": dataset.pk, "name": "d", **fields}, format="json")


@override_settings(DETECTOR_MAX_ENSEMBLE_MEMBERS=3)
def test_it_refuses_an_ensemble_with_too_many_members(owner_client, spiky_dataset):
    response = create(owner_client, spiky_dataset, algorithm="ensemble", params={"members": ["zscore"] * 4})
    assert response.status_code == 400 and "members" in response.json()["params"]


def test_it_refuses_a_huge_ensemble_quickly(owner_client, spiky_dataset):
    response = create(owner_client, spiky_dataset, algorithm="ensemble", params={"members": ["zscore"] * 100_000})
    assert response.status_code == 400


@override_settings(DETECTOR_MAX_TRAINING_POINTS=5000)
def test_it_refuses_too_many_training_points(owner_client, spiky_dataset):
    response = create(owner_client, spiky_dataset, training_points=5001)
    assert response.status_code == 400 and "training_points" in str(response.json())
    assert create(owner_client, spiky_dataset, training_points=5000).status_code == 201


@override_settings(DETECTOR_MAX_PER_TEAM=2)
def test_it_refuses_more_detectors_than_a_team_may_have(owner_client, spiky_dataset):
    for name in ("a", "b"):
        assert create(owner_client, spiky_dataset, name=name).status_code == 201
    response = create(owner_client, spiky_dataset, name="c")
    assert response.status_code == 400 and "DETECTOR_MAX_PER_TEAM" in response.json()["detail"]


@override_settings(SCHEDULE_MIN_SECONDS=600)
def test_it_refuses_a_schedule_shorter_than_the_setting(owner_client, spiky_dataset):
    assert create(owner_client, spiky_dataset, schedule_interval="00:05:00").status_code == 400
    assert create(owner_client, spiky_dataset, schedule_interval="00:10:00").status_code == 201
