"""The API's single error shape: {"detail": message, ...extra}. Field errors keep DRF's structure."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from common.exceptions import ApplicationError

DATABASE_RETRY_AFTER_S = 5


def exception_handler(exc, context):
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away (a restart, a failover): the request's transaction is gone with it, so
        # nothing of it is stored, and the same request can simply be sent again.
        body = {"detail": "The database is unavailable; nothing of this request was stored. Retry shortly."}
        return Response(body, status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})
    if isinstance(exc, ApplicationError):
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_S)} if exc.status == 503 else None
        return Response({"detail": exc.message, **exc.extra}, status=exc.status, headers=retry)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    return drf_exception_handler(exc, context)
