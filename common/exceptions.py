"""One domain error type; the API's exception handler turns it into the shared JSON error shape."""

from __future__ import annotations


class ApplicationError(Exception):
    """A request the domain refuses. `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, extra: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if status is not None:
            self.status = status


class PayloadTooLarge(ApplicationError):
    status = 413


class UnsupportedFormat(ApplicationError):
    status = 415
