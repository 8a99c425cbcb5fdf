"""docker-compose.yml describes the production layout; these checks keep it in step with the project."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ["postgres", "redis", "web", "worker", "beat"]
APP_SERVICES = ["web", "worker", "beat"]
ENV_FILE = ".env"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_keys(path: Path) -> set[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#") and "=" in line}


def _words(command) -> list[str]:
    """A service's command as words; `sh -c "a && b"` becomes the words of a and b."""
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] == ["sh", "-c"]:
        return [word for part in command[2:] for word in shlex.split(part) if word not in {"&&", "||", ";"}]
    return list(command)


def _module_exists(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_it_has_every_required_service(compose):
    assert set(REQUIRED) <= set(compose["services"])


@pytest.mark.parametrize("name", REQUIRED)
def test_it_gives_each_service_a_healthcheck(compose, name):
    test = compose["services"][name]["healthcheck"]["test"]
    assert test and test[0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize("name", REQUIRED)
def test_it_gives_each_service_the_one_env_file(compose, name):
    env_file = compose["services"][name]["env_file"]
    assert env_file in (ENV_FILE, [ENV_FILE])


def test_it_documents_every_env_var_the_settings_read():
    """.env.example, the template of .env, lists every variable config/settings reads."""
    source = (ROOT / "config" / "settings" / "base.py").read_text()
    read = set(re.findall(r"\benv(?:bool|int|list|secret)?\(\s*\"([A-Z_]+)\"", source))
    assert read and read <= _env_keys(ROOT / ".env.example")


def test_it_keeps_the_database_password_in_step(compose):
    keys = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys[key] = value
    credentials = f"{keys['POSTGRES_USER']}:{keys['POSTGRES_PASSWORD']}"
    assert keys["DATABASE_URL"] == f"postgres://{credentials}@postgres:5432/{keys['POSTGRES_DB']}"
    assert keys["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert {"postgres", "redis"} <= set(compose["services"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_builds_app_services_from_the_project_dockerfile(compose, name):
    build = compose["services"][name]["build"]
    context = ROOT / build.get("context", ".")
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_it_runs_the_web_app_after_migrating(compose):
    words = _words(compose["services"]["web"]["command"])
    assert words[:4] == ["python", "manage.py", "migrate", "--noinput"]
    assert (ROOT / "manage.py").is_file()
    for index, word in enumerate(words):
        if word == "manage.py":
            assert words[index + 1] in get_commands(), f"unknown management command {words[index + 1]}"
    wsgi = next(word for word in words if word.endswith(".wsgi") or ".wsgi:" in word)
    assert _module_exists(wsgi.split(":")[0]), wsgi
    assert words.index("collectstatic") < words.index("gunicorn")


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_it_points_celery_at_the_project_app(compose, name):
    words = _words(compose["services"][name]["command"])
    assert words[0] == "celery" and words[words.index("-A") + 1] == "config"
    assert (ROOT / "config" / "celery.py").is_file()
    assert name in words


def test_it_has_the_worker_consume_every_queue(compose):
    words = _words(compose["services"]["worker"]["command"])
    queues = words[words.index("-Q") + 1].split(",")
    assert sorted(queues) == sorted(settings.CELERY_WORKER_QUEUES.split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= set(queues)


def test_it_checks_web_health_on_the_health_endpoint(compose):
    test = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "/health" in test


def _gunicorn_option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def _nginx(directive: str) -> str:
    match = re.search(rf"^\s*{directive}\s+([^;]+);", (ROOT / "deploy" / "nginx.conf").read_text(), re.M)
    assert match, f"{directive} missing from deploy/nginx.conf"
    return match.group(1).strip()


def _size_bytes(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(text[:-1]) * units[text[-1].lower()] if text[-1].lower() in units else int(text)


def _seconds(text: str) -> int:
    return int(text.rstrip("s"))


def test_it_puts_a_buffering_proxy_in_front_of_gunicorn(compose):
    proxy, web = compose["services"]["proxy"], compose["services"]["web"]
    assert any("deploy/nginx.conf" in volume for volume in proxy["volumes"])
    assert proxy["ports"] == ["8000:8000"] and "ports" not in web  # gunicorn is reached only through nginx
    assert _nginx("proxy_pass") == "http://web" and _nginx("proxy_request_buffering") == "on"
    words = _words(web["command"])
    assert _gunicorn_option(words, "--forwarded-allow-ips") == "*"
    assert "X-Forwarded-For" in (ROOT / "deploy" / "nginx.conf").read_text()
    assert _env_values()["NUM_PROXIES"] == "1"


def test_it_lets_the_largest_upload_through_within_every_timeout(compose):
    """nginx accepts INGEST_MAX_UPLOAD_BYTES, and waits for gunicorn at least as long as gunicorn lets a
    worker run; that is long enough to load the largest upload (about 3 million rows at over 300,000 rows/s,
    README) on a busy server."""
    limit = int(_env_values()["INGEST_MAX_UPLOAD_BYTES"])
    timeout = int(_gunicorn_option(_words(compose["services"]["web"]["command"]), "--timeout"))
    assert _size_bytes(_nginx("client_max_body_size")) >= limit
    assert _seconds(_nginx("proxy_read_timeout")) >= timeout >= 120


def test_it_creates_the_cache_table_before_serving(compose):
    words = _words(compose["services"]["web"]["command"])
    assert words.index("migrate") < words.index("createcachetable") < words.index("gunicorn")


def _env_values() -> dict[str, str]:
    lines = (line for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line)
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))
