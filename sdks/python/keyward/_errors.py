"""Errors: every refusal of the server as an exception carrying its fields."""
from __future__ import annotations

from typing import Any, Dict, Optional


class KeywardError(Exception):
    """A refusal or failure answered by Keyward: `{message, error_code, details}`."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str,
        details: Optional[Dict[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.message = message
        self.error_code = error_code
        self.details = details
        self.retry_after = retry_after


class BadRequestError(KeywardError):
    """400: a malformed id, query string or body."""


class AuthenticationError(KeywardError):
    """401: no credential, or one that is not valid."""


class PermissionDeniedError(KeywardError):
    """403: the credential may not do this."""


class NotFoundError(KeywardError):
    """404: no such record, or one the caller may not see."""


class ConflictError(KeywardError):
    """409: a name already taken."""


class ValidationError(KeywardError):
    """422: a field's value is refused; `details["field"]` names it."""


class RateLimitedError(KeywardError):
    """429: a rate limit, the credits or the login throttle; see `retry_after`."""


class UnavailableError(KeywardError):
    """503: the store does not answer, or the server is busy."""


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitedError,
    503: UnavailableError,
}


def error_for(status: int, body: Any, retry_after: Optional[float]) -> KeywardError:
    """The exception for an answer of `status` with its JSON body (or text)."""
    if isinstance(body, dict):
        message = str(body.get("message", ""))
        code = str(body.get("error_code", "Error"))
        details = body.get("details") if isinstance(body.get("details"), dict) else None
    else:
        message, code, details = str(body or ""), "Error", None
    return _BY_STATUS.get(status, KeywardError)(status, message, code, details, retry_after)
