"""Production settings: HTTPS-only cookies, HSTS and the proxy header outside DEBUG; no placeholder secret.

Settings are read once per process, so each case imports them in a fresh interpreter with its own
environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent
PRINT = (
    "from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k) for k in "
    "['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', "
    "'SECURE_SSL_REDIRECT', 'DEBUG']}))"
)
PLACEHOLDER = next(
    line.split("=", 1)[1] for line in (ROOT / ".env.example").read_text().splitlines() if line.startswith("SECRET_KEY=")
)


def _settings(**env: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "HTTPS", "SECRET_KEY", "SECRET_KEY_FILE"}}
    environ = {**keep, "DJANGO_SETTINGS_MODULE": "config.settings.base", "LOCAL_ENV_FILE": os.devnull, **env}
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=environ, capture_output=True, text=True)


def test_it_makes_cookies_https_only_and_sends_hsts_outside_debug():
    done = _settings(SECRET_KEY="x" * 50)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "SECURE_SSL_REDIRECT": True, "DEBUG": False,
    }  # fmt: skip


def test_it_serves_plain_http_in_debug_or_when_told():
    for env in ({"DEBUG": "true"}, {"HTTPS": "false"}):
        figures = json.loads(_settings(SECRET_KEY="x" * 50, **env).stdout)
        assert figures["SESSION_COOKIE_SECURE"] is False and figures["SECURE_HSTS_SECONDS"] == 0
        assert figures["SECURE_PROXY_SSL_HEADER"] is None and figures["SECURE_SSL_REDIRECT"] is False


def test_it_refuses_the_env_example_placeholder_secret():
    done = _settings(SECRET_KEY=PLACEHOLDER)

    assert done.returncode != 0
    assert "SECRET_KEY is still the .env.example placeholder" in done.stderr


@pytest.mark.django_db
def test_it_redirects_plain_http_but_trusts_the_proxy_header_and_spares_health(client):
    https = dict(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True, SECURE_HSTS_SECONDS=3600,
                 SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))  # fmt: skip
    with override_settings(**https):
        plain = client.get("/admin/login/")
        proxied = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
        health = client.get("/health")

    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=3600"
    assert proxied.cookies["csrftoken"]["secure"] is True
    assert health.status_code == 200
