"""GET /health: is the database and the broker reachable, and how fast. 503 when either is down.

Anyone may ask (load balancers, container health checks), but only staff see why a check failed: the
error names internal hosts and ports.
"""

from __future__ import annotations

import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

BROKER_TIMEOUT_S = 2.0


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a health check reports every failure, whatever its kind
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        # Opening a channel makes the transport talk to the broker for real.
        conn.default_channel.close()


def _for_anyone(check: dict) -> dict:
    return check if check["ok"] else {"ok": False, "error": "unavailable"}


@require_GET
def health(request):
    checks = {"database": _timed(_check_database), "broker": _timed(_check_broker)}
    healthy = all(check["ok"] for check in checks.values())
    staff = request.user.is_authenticated and request.user.is_staff
    body = {"status": "ok" if healthy else "unavailable"}
    body["checks"] = checks if staff else {name: _for_anyone(check) for name, check in checks.items()}
    if staff:
        body["broker_url"] = celery_app.conf.broker_url.split("@")[-1]
    return JsonResponse(body, status=200 if healthy else 503)
