"""The review queue's pages: login, team scoping, claims, filters, skip, and what each item shows."""

import re

import pytest
from django.test import Client

from detectors.models import Anomaly, ReviewStatus, RunTrigger
from detectors.selectors import incident_plot_data
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from feedback.models import Label, ReviewClaim
from feedback.selectors import departed_columns
from feedback.services.labels import anomalies_label, missed_mark
from ingestion.models import Series
from tests.detectors.helpers import dataset_with_series, series_frame, utc

pytestmark = pytest.mark.django_db


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown_ids(response) -> list[int]:
    return [int(x) for x in re.findall(r'class="item[^"]*" id="item-\d+" data-id="(\d+)"', response.content.decode())]


def test_it_sends_a_visitor_to_the_login_and_back(teammate, team):
    anonymous = Client()
    assert anonymous.get("/review/")["Location"] == "/accounts/login/?next=/review/"
    response = anonymous.post("/accounts/login/", {"username": "bob", "password": "pw-bob", "next": "/review/"})
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert anonymous.get("/review/").status_code == 200


def test_it_claims_a_page_for_an_analyst_in_queue_order(teammate, incidents):
    response = session(teammate).get("/review/")
    assert response.status_code == 200
    ids = shown_ids(response)
    assert sorted(ids) == sorted(a.pk for a in incidents)
    assert set(ReviewClaim.objects.filter(user=teammate).values_list("anomaly_id", flat=True)) == set(ids)
    page = response.content.decode()
    assert page.count("data-t0=") == len(ids)  # each item plotted, with its time scale for dragging
    assert incidents[0].explanation["text"].split(":")[0] in page


def test_the_queue_shows_only_the_users_teams(outsider, other_team, incidents):
    theirs = detector_create(dataset=dataset_with_series(other_team, [series_frame(spikes=(450,))], name="theirs"),
                             name="their watch", algorithm="zscore")  # fmt: skip
    run_execute(run=run_create(detector=theirs, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    shown = shown_ids(session(outsider).get("/review/"))
    assert shown and set(shown) == set(Anomaly.objects.filter(detector=theirs).values_list("pk", flat=True))
    assert not ReviewClaim.objects.filter(anomaly__in=incidents).exists()


def test_an_outsider_gets_404_on_an_item(outsider, other_team, incidents):
    assert session(outsider).get(f"/review/{incidents[0].pk}/").status_code == 404


def test_a_viewer_sees_but_cannot_label_or_claim(viewer, incidents):
    client = session(viewer)
    queue = client.get("/review/")
    assert sorted(shown_ids(queue)) == sorted(a.pk for a in incidents)
    assert "your role is viewer" in queue.content.decode().lower()
    item = client.get(f"/review/{incidents[0].pk}/")
    assert item.status_code == 200 and 'data-verdict="confirmed" disabled' in item.content.decode()
    assert not ReviewClaim.objects.exists()
    token = client.cookies["csrftoken"].value
    refused = client.post(f"/api/v1/anomalies/{incidents[0].pk}/label", {"verdict": "confirmed"},
                          content_type="application/json", HTTP_X_CSRFTOKEN=token)  # fmt: skip
    assert refused.status_code == 403
    assert not Label.objects.exists()


def test_an_analyst_labels_through_the_api_with_the_session(teammate, incidents):
    client = session(teammate)
    client.get("/review/")
    token = client.cookies["csrftoken"].value
    without_token = Client(enforce_csrf_checks=True)
    without_token.force_login(teammate)
    url = f"/api/v1/anomalies/{incidents[0].pk}/label"
    assert without_token.post(url, {"verdict": "confirmed"}, content_type="application/json").status_code == 403
    done = client.post(url, {"verdict": "confirmed"}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 201
    assert Anomaly.objects.get(pk=incidents[0].pk).review_status == ReviewStatus.CONFIRMED
    assert incidents[0].pk not in shown_ids(client.get("/review/"))


def test_opening_an_item_holds_it_and_a_second_analyst_is_told(owner, teammate, incidents):
    assert session(teammate).get(f"/review/{incidents[0].pk}/").status_code == 200
    assert ReviewClaim.objects.get(anomaly=incidents[0]).user == teammate
    other = session(owner)
    page = other.get(f"/review/{incidents[0].pk}/").content.decode()
    assert "bob is reviewing this incident now" in page
    assert ReviewClaim.objects.get(anomaly=incidents[0]).user == teammate
    assert incidents[0].pk not in shown_ids(other.get("/review/"))


def test_bad_filters_are_a_400_naming_the_field(teammate, outsider, other_team, incidents):
    client = session(teammate)
    bad = client.get("/review/", {"severity": "apocalyptic"})
    assert bad.status_code == 400 and "severity:" in bad.content.decode()
    theirs = dataset_with_series(other_team, [series_frame()], name="theirs")
    foreign = client.get("/review/", {"dataset": theirs.pk})
    assert foreign.status_code == 400 and "dataset:" in foreign.content.decode()
    assert not ReviewClaim.objects.exists()


def test_filters_narrow_the_queue(teammate, incidents):
    severity = incidents[0].severity
    response = session(teammate).get("/review/", {"severity": severity, "detector": incidents[0].detector_id})
    assert sorted(shown_ids(response)) == sorted(a.pk for a in incidents if a.severity == severity)
    assert session(teammate).get("/review/", {"status": "open"}).status_code == 200


def test_skip_gives_the_claims_back(teammate, incidents):
    client = session(teammate)
    client.get("/review/")
    response = client.post("/review/skip", {"anomalies": [incidents[0].pk, incidents[1].pk]})
    assert response.json() == {"released": 2}
    assert set(ReviewClaim.objects.values_list("anomaly_id", flat=True)) == {a.pk for a in incidents[2:]}
    bad = client.post("/review/skip", {"anomalies": ["x"]})
    assert bad.status_code == 400 and "anomalies" in bad.json()
    assert client.post("/review/skip", {}).status_code == 400
    assert client.get("/review/skip").status_code == 405


def test_an_item_shows_the_most_similar_labelled_incidents(teammate, incidents):
    anomalies_label(anomalies=[incidents[0]], verdict="false_positive", user=teammate, note="deploy noise")
    page = session(teammate).get(f"/review/{incidents[1].pk}/").content.decode()
    similar = page.split("Most similar labelled incidents")[1].split("</ol>")[0]
    assert "False positive" in similar and "deploy noise" in similar
    assert f"/review/{incidents[0].pk}/" in similar


def test_next_and_previous_follow_the_users_claims(teammate, incidents):
    client = session(teammate)
    ids = shown_ids(client.get("/review/"))
    page = client.get(f"/review/{ids[1]}/").content.decode()
    assert f'data-previous="/review/{ids[0]}/"' in page and f'data-next="/review/{ids[2]}/"' in page


def test_the_plot_window_surrounds_the_incident(incidents):
    incident = Anomaly.objects.select_related("model_version").get(pk=incidents[1].pk)
    plot = incident_plot_data(anomalies=[incident], before=30, after=20)[incident.pk]
    stamps = [ts for ts, _ in plot.points]
    assert sum(ts < incident.start_ts for ts in stamps) == 30
    assert sum(ts > incident.end_ts for ts in stamps) == 20
    assert plot.spans[0][:2] == (incident.start_ts, incident.end_ts)
    assert plot.band and plot.markers == [(incident.peak_ts, pytest.approx(incident.value))]


def test_departed_columns_are_listed_strongest_first():
    several = Anomaly(explanation={"columns": {"cpu": {"median_sigma": 3.1, "peak_sigma": 4.0},
                                               "mem": {"median_sigma": -5.0, "peak_sigma": -9.5}}})  # fmt: skip
    assert [name for name, _ in departed_columns(several)] == ["mem", "cpu"]
    row = Anomaly(record_id=1, explanation={"features": {"area": 0.8}})
    assert departed_columns(row) == [("area", "contribution +0.8")]
    assert departed_columns(Anomaly(explanation={"features": {"shift": 0.4}})) == []  # a series' components
    assert departed_columns(Anomaly(explanation={})) == []
    assert departed_columns(Anomaly(explanation={"columns": {"": {"peak_sigma": 9.0}}})) == []  # one unnamed


def test_a_missed_anomaly_has_its_page_with_a_plot_and_takes_no_verdict(teammate, watched):
    series = Series.objects.get(dataset=watched.dataset)
    label = missed_mark(detector=watched, series=series, start=utc("2024-01-10"), end=utc("2024-01-10 05:00"),
                        user=teammate, note="slow leak")  # fmt: skip
    page = session(teammate).get(f"/review/{label.anomaly_id}/").content.decode()
    assert "data-t0=" in page and "Missed by bob" in page and 'data-verdict="confirmed"' not in page
    assert not ReviewClaim.objects.exists()


def test_failed_logins_are_throttled_like_the_admins(settings, teammate, team):
    settings.AUTH_FAILURE_LIMIT = 2
    client, wrong = Client(), {"username": "bob", "password": "nope"}
    assert [client.post("/accounts/login/", wrong).status_code for _ in range(3)] == [200, 200, 429]
