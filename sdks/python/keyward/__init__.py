"""Keyward's Python client: manage and verify API keys, sync or async."""
from ._client import AsyncKeyward, Keyward, presented_key, refusal_status
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    KeywardError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from ._types import IssuedKey, Key, Page, Session, User, Verification

__all__ = [
    "Keyward", "AsyncKeyward", "presented_key", "refusal_status",
    "KeywardError", "BadRequestError", "AuthenticationError", "PermissionDeniedError",
    "NotFoundError", "ConflictError", "ValidationError", "RateLimitedError", "UnavailableError",
    "IssuedKey", "Key", "Page", "Session", "User", "Verification",
]
