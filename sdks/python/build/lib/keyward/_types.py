"""The wire shapes of Keyward's native API (docs/openapi.json), as typed dictionaries."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover
    from typing_extensions import NotRequired, TypedDict


class RateLimit(TypedDict):
    name: str
    limit: int
    duration_seconds: int
    auto_apply: NotRequired[bool]


class Refill(TypedDict):
    amount: int
    interval: str  # "daily" or "monthly"
    day: NotRequired[int]


class Credits(TypedDict):
    remaining: int
    refill: NotRequired[Optional[Refill]]


class RecentUse(TypedDict):
    verifications_24h: int
    valid_24h: int
    verifications_30d: int
    valid_30d: int


class Key(TypedDict):
    id: str
    name: str
    start: str
    owner_id: str
    door: str
    permissions: List[str]
    metadata: Dict[str, Any]
    enabled: bool
    state: str  # active, disabled, expired, revoked
    created_at: str
    updated_at: str
    expires_at: Optional[str]
    revoked_at: Optional[str]
    last_used_at: Optional[str]
    use_count: int
    disabled_by: Optional[str]
    ratelimits: List[RateLimit]
    ip_allowlist: List[str]
    credits: Optional[Credits]
    usage: NotRequired[RecentUse]


class IssuedKey(Key):
    """A key with its secret: shown once, by create and rotate."""

    api_key: str
    previous_expires_at: NotRequired[str]


class User(TypedDict):
    id: str
    email: str
    username: str
    display_name: str
    role: str
    active: bool
    permissions: List[str]
    ratelimits: List[RateLimit]
    created_at: str


class Page(TypedDict):
    items: List[Any]
    total: int
    offset: int
    limit: int


class Session(TypedDict):
    token: str
    expires_at: str
    user: User


class RateLimitState(TypedDict):
    name: str
    limit: int
    remaining: int
    reset_at: int
    exceeded: bool


class Verification(TypedDict):
    valid: bool
    code: str  # VALID, NOT_FOUND, EXPIRED, REVOKED, RATE_LIMITED, USAGE_EXCEEDED, ...
    key_id: Optional[str]
    name: Optional[str]
    owner_id: Optional[str]
    permissions: Optional[List[str]]
    expires_at: Optional[str]
    metadata: Optional[Dict[str, Any]]
    ratelimits: List[RateLimitState]
    credits: Optional[Dict[str, int]]
