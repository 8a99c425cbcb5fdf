"""Token authentication for scripts: `Authorization: Bearer <key>` (or `Token <key>`)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import authentication, exceptions

from common.throttling import auth_failure_record, auth_failures_exceeded
from teams import selectors, services


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if auth_failures_exceeded("api", request):
            raise exceptions.Throttled(
                wait=settings.AUTH_FAILURE_WINDOW_SECONDS, detail="Too many failed authentications from this address."
            )
        try:
            token = self._token(header)
        except exceptions.AuthenticationFailed:
            auth_failure_record("api", request)
            raise
        services.api_token_touch(token=token)
        return token.user, token

    @staticmethod
    def _token(header: list[bytes]):
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be '<Bearer|Token> <key>'.")
        token = selectors.api_token_by_key(key=header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.is_expired():
            raise exceptions.AuthenticationFailed("Token expired.")
        return token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
