import pytest


@pytest.mark.django_db
def test_it_serves_the_openapi_schema_and_the_docs_page(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/datasets/{id}/points", "/api/v1/series/{id}/points", "/api/v1/tokens"):
        assert path in text
    assert "bearer" in text
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
