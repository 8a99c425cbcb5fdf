"""schemathesis over the OpenAPI schema against a live server, as each persona: no 500, no other team's data.

Personas: an analyst of team Acme (writes too), a viewer of Acme, and an analyst of Globex. Both teams own
data (datasets, series with points, a detector with anomalies, a table dataset with a record) whose names
carry a marker; no response to one team's persona may contain the other team's markers. Cases are generated
for every operation of the schema (hypothesis, FUZZ_EXAMPLES each per persona; the README gives the total).
"""

from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from detectors.models import RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from ingestion.models import Record
from teams.models import Role, TokenScope
from teams.services import api_token_create, membership_set, team_create
from tests.detectors.helpers import SPIKES, dataset_with_series, series_frame, utc
from tests.ingestion.helpers import make_dataset

FUZZ_EXAMPLES = 8
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _team_with_data(owner, name: str) -> tuple:
    marker = f"{name.lower()}{uuid.uuid4().hex[:8]}"
    team = team_create(name=f"{name} {marker}", owner=owner)
    dataset = dataset_with_series(
        team, [series_frame(metric=f"{marker}_cpu", labels={"host": f"{marker}-h"}, spikes=SPIKES)], name=marker
    )
    detector = detector_create(dataset=dataset, name=f"{marker} watch", algorithm="zscore")
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    table = make_dataset(team, name=f"{marker} table", kind="table")
    Record.objects.create(dataset=table, external_id=f"{marker}-row", features={"x": 1.0})
    return team, marker


@pytest.fixture
def personas(django_user_model):
    users = {name: django_user_model.objects.create_user(name, password="pw") for name in ("a", "v", "o", "oo")}
    acme, acme_marker = _team_with_data(users["a"], "Acme")
    membership_set(team=acme, user=users["a"], role=Role.ANALYST)  # the owner as an analyst
    membership_set(team=acme, user=users["v"], role=Role.VIEWER)
    globex, globex_marker = _team_with_data(users["oo"], "Globex")
    membership_set(team=globex, user=users["o"], role=Role.ANALYST)
    key = lambda user: api_token_create(user=user, name="fuzz", scope=TokenScope.ADMIN).key  # noqa: E731
    return {
        "owner analyst": (key(users["a"]), globex_marker),
        "viewer": (key(users["v"]), globex_marker),
        "analyst of another team": (key(users["o"]), acme_marker),
    }


def test_it_answers_every_generated_request_without_500_or_another_teams_data(live_server, personas):
    headers = {"Authorization": f"Bearer {personas['viewer'][0]}"}
    raw = requests.get(f"{live_server.url}/api/schema/?format=json", headers=headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    failures, cases = [], 0
    for persona, (key, foreign) in personas.items():
        for result in schema.get_all_operations():
            operation = result.ok()
            count, found = _fuzz(operation, live_server.url, key, foreign)
            cases += count
            failures += [f"{persona}: {line}" for line in found]
    print(f"schemathesis: {cases} cases")
    assert not failures, "\n".join(failures[:30])


def _fuzz(operation, base_url: str, key: str, foreign: str) -> tuple[int, list[str]]:
    calls, found = [0], []

    @given(case=operation.as_strategy())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case):
        calls[0] += 1
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        where = f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}"
        if response.status_code >= 500:
            found.append(f"{where}: {response.text[:300]}")
        elif foreign in response.text:
            found.append(f"{where}: another team's data in {response.text[:300]}")

    check()
    return calls[0], found
