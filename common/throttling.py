"""Request rate limits: per API token, and per IP for failed API authentications and admin logins.

The counters live in Django's cache; with several web processes it must be a shared cache.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


class TokenRateThrottle(SimpleRateThrottle):
    """Requests per API token (per user for a browser session): API_THROTTLE_TOKEN_RATE."""

    scope = "token"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        token_id = getattr(request.auth, "pk", None)
        ident = f"token-{token_id}" if token_id is not None else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def _failure_key(scope: str, request) -> str:
    return f"auth-failures:{scope}:{BaseThrottle().get_ident(request)}"


def auth_failures_exceeded(scope: str, request) -> bool:
    """Whether this IP failed to authenticate AUTH_FAILURE_LIMIT times in the current window."""
    return (cache.get(_failure_key(scope, request)) or 0) >= settings.AUTH_FAILURE_LIMIT


def auth_failure_record(scope: str, request) -> None:
    key = _failure_key(scope, request)
    cache.add(key, 0, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.AUTH_FAILURE_WINDOW_SECONDS)


def throttle_login_failures(login_view):
    """Wrap the admin's login view: after AUTH_FAILURE_LIMIT failed POSTs from an IP, answer 429."""

    @wraps(login_view)
    def view(request, *args, **kwargs):
        if request.method != "POST":
            return login_view(request, *args, **kwargs)
        if auth_failures_exceeded("admin", request):
            response = HttpResponse("Too many failed logins; try again later.", status=429, content_type="text/plain")
            response["Retry-After"] = str(settings.AUTH_FAILURE_WINDOW_SECONDS)
            return response
        response = login_view(request, *args, **kwargs)
        if response.status_code == 200:  # the form shown again: the login failed
            auth_failure_record("admin", request)
        return response

    return view
