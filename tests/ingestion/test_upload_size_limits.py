"""DATA_UPLOAD_MAX_MEMORY_SIZE bounds every form and body but the uploads (INGEST_MAX_UPLOAD_BYTES)."""

import pytest
from django.test import Client, override_settings

from tests.ingestion.helpers import make_dataset, points_url

pytestmark = pytest.mark.django_db


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_uploads_may_be_larger_than_the_site_wide_body_limit(owner_client, team):
    dataset = make_dataset(team)
    text = "metric,ts,value\n" + "".join(f"m,2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{i}\n" for i in range(200))
    response = owner_client.post(points_url(dataset), text.encode(), content_type="text/csv")
    assert response.status_code == 201, response.content[:300]
    rows = [{"metric": "j", "ts": 1704067200 + i, "value": i} for i in range(100)]
    response = owner_client.post(points_url(dataset), rows, format="json")
    assert response.status_code == 201, response.content[:300]
    records = make_dataset(team, name="t", kind="table")
    rows = [{"external_id": str(i), "amount": i} for i in range(100)]
    assert owner_client.post(f"/api/v1/datasets/{records.pk}/records", rows, format="json").status_code == 201


def test_the_admin_login_refuses_a_body_over_the_site_wide_limit(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < settings.INGEST_MAX_UPLOAD_BYTES
    client = Client()
    client.cookies["csrftoken"] = "x" * 32
    body = "username=a&password=" + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = client.post("/admin/login/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_other_api_bodies_keep_the_site_wide_limit(owner_client, settings):
    body = {"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    response = owner_client.post("/api/v1/datasets", body, format="json")
    assert response.status_code in (400, 413)
