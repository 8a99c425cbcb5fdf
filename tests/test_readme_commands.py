"""Every `manage.py` command line of the README runs as written after ./run.sh, from the settings it left.

./run.sh writes what it chose (secret, database, broker, port) to var/local.env; here the same writer
(scripts/run_platform.py) writes a file pointing at the test database, and each README line runs in a
fresh process with none of those variables in its environment, from a directory holding the README's
inputs (data.csv) beside links to manage.py and .venv. Benchmarks get `--scale 0.01 --repeat 1`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.db import connection

from ingestion.models import Dataset, Point
from teams.models import Team
from tests.celery_worker import database_url

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ".venv/bin/python manage.py "
CHOSEN = ("SECRET_KEY", "SECRET_KEY_FILE", "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "PORT")


def readme_commands() -> list[list[str]]:
    """The README's manage.py lines inside ```bash blocks, as argv (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith(PREFIX)]


def _run_platform():
    spec = importlib.util.spec_from_file_location("run_platform", ROOT / "scripts" / "run_platform.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "manage.py").symlink_to(ROOT / "manage.py")
    rng = np.random.default_rng(3)
    ts = pd.date_range("2024-01-01", periods=1500, freq="h", tz="UTC")
    values = 50 + 5 * np.sin(np.arange(1500) * 2 * np.pi / 24) + rng.normal(0, 1, 1500)
    values[1300] += 40
    pd.DataFrame({"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "cpu": values}).to_csv(tmp_path / "data.csv", index=False)
    return tmp_path


def _dataset_one() -> None:
    """`--dataset 1`: on a fresh install the first sample dataset; here one made with that id."""
    if not Dataset.objects.filter(pk=1).exists():
        Dataset.objects.create(pk=1, team=Team.objects.create(name="Readme", slug="readme"), name="readme")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('ingestion_dataset', 'id'), (SELECT max(id) FROM ingestion_dataset))"
        )


def test_the_readme_has_the_commands_it_documents():
    names = {argv[2] for argv in readme_commands()}
    assert {"load_sample", "demo_detectors", "ingest_csv", "bench", "detect", "score_csv"} <= names


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_runs_every_readme_command_as_written_after_run_sh(workdir):
    local_env = workdir / "local.env"
    chosen = {"SECRET_KEY": "s" * 50, "DATABASE_URL": database_url(settings.DATABASES["default"]),
              "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "PORT": "8000"}  # fmt: skip
    _run_platform().local_env_write(local_env, chosen)
    assert local_env.stat().st_mode & 0o777 == 0o600
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN} | {"LOCAL_ENV_FILE": str(local_env)}
    _dataset_one()
    for argv in readme_commands():
        if argv[2] == "bench":
            argv = [*argv, "--scale", "0.01", "--repeat", "1"]
        done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        if argv[2:4] == ["bench", "api"]:
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            assert figures["rps"] > 0 and figures["p95_ms"] > 0 and figures["api"]["failed"] == 0
            assert figures["direct"]["requests"] > 0

    assert Point.objects.filter(series__dataset_id=1, series__labels={"host": "a"}).count() == 1500
    assert (workdir / "scored.csv").read_text().count("\n") == 1501
