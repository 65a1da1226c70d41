"""The clients: `Keyward` (sync) and `AsyncKeyward`, one method per operation of the
native API. Both build each request with the same function of `_requests` and read each
answer with the same code; only sending differs."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, AsyncIterator, List, Optional, Sequence, Union, cast

import httpx

from ._errors import KeywardError, error_for
from ._types import IssuedKey, Key, Page, Session, User, Verification

Json = Any
Permissions = Union[str, Sequence[str], None]

DEFAULT_TIMEOUT = 10.0
RETRIED = (429, 503)


@dataclass
class Request:
    method: str
    path: str
    params: Dict[str, Any] = field(default_factory=dict)
    body: Optional[Json] = None

    def query(self) -> Dict[str, Any]:
        return {k: _wire(v) for k, v in self.params.items() if v is not None}


def _wire(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def _fields(**values: Any) -> Dict[str, Any]:
    """A body with the fields given; `...` (the default) leaves a field out."""
    return {k: v for k, v in values.items() if v is not ...}


class _Requests:
    """Every operation as a request: shared by both clients."""

    @staticmethod
    def login(email: str, password: str, tenant: Optional[str]) -> Request:
        return Request("POST", "/v0/auth/login", body=_fields(email=email, password=password, tenant=tenant if tenant else ...))

    @staticmethod
    def create_key(name: str, **fields: Any) -> Request:
        return Request("POST", "/v0/api_keys", body=_fields(name=name, **fields))

    @staticmethod
    def list_keys(**params: Any) -> Request:
        return Request("GET", "/v0/api_keys", params=params)

    @staticmethod
    def key(method: str, key_id: str, suffix: str = "", body: Optional[Json] = None) -> Request:
        return Request(method, f"/v0/api_keys/{key_id}{suffix}", body=body)

    @staticmethod
    def verify(key: str, permissions: Permissions, credits: Optional[int], ratelimits: Optional[Sequence[Union[str, Dict[str, Any]]]], ip: Optional[str]) -> Request:
        body: Dict[str, Any] = {"key": key}
        if permissions is not None:
            body["permissions"] = permissions if isinstance(permissions, str) else list(permissions)
        if credits is not None:
            body["credits"] = {"cost": credits}
        if ratelimits is not None:
            body["ratelimits"] = [{"name": r} if isinstance(r, str) else r for r in ratelimits]
        if ip is not None:
            body["ip"] = ip
        return Request("POST", "/v0/keys/verify", body=body)


class _Base:
    def __init__(self, base_url: str, token: Optional[str], timeout: float, max_retries: int, max_retry_wait: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait

    def _headers(self) -> Dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "keyward-python/0.1.0"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def _retry_wait(self, response: httpx.Response, attempt: int) -> Optional[float]:
        """How long to wait before trying again, or None to give up."""
        if response.status_code not in RETRIED or attempt >= self.max_retries:
            return None
        wait = _retry_after(response)
        if wait is None:
            wait = min(0.25 * 2**attempt, 4.0) * (0.5 + random.random() / 2)
        return wait if wait <= self.max_retry_wait else None

    @staticmethod
    def _answer(response: httpx.Response) -> Json:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise error_for(response.status_code, body, _retry_after(response))
        return body


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Keyward(_Base):
    """A synchronous client. `token` is an API key (`kw_...`) or a session token."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", token: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT, max_retries: int = 2, max_retry_wait: float = 30.0, http: Optional[httpx.Client] = None) -> None:
        super().__init__(base_url, token, timeout, max_retries, max_retry_wait)
        self._http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Keyward":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _run(self, request: Request) -> Json:
        attempt = 0
        while True:
            response = self._http.request(request.method, self.base_url + request.path, params=request.query(), json=request.body, headers=self._headers())
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return self._answer(response)
            time.sleep(wait)
            attempt += 1

    # ---- Sessions ----

    def login(self, email: str, password: str, tenant: Optional[str] = None) -> Session:
        """Logs in; the client then acts with the session token."""
        session = cast(Session, self._run(_Requests.login(email, password, tenant)))
        self.token = session["token"]
        return session

    def logout(self) -> None:
        self._run(Request("POST", "/v0/auth/logout"))

    def me(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._run(Request("GET", "/v0/me")))

    # ---- Keys ----

    def create_key(self, name: str, *, permissions: Any = ..., expires_at: Any = ..., metadata: Any = ..., owner_id: Any = ..., ratelimits: Any = ..., credits: Any = ..., ip_allowlist: Any = ...) -> IssuedKey:
        """Creates a key; `["api_key"]` of the answer is its secret, shown this once."""
        return cast(IssuedKey, self._run(_Requests.create_key(name, permissions=permissions, expires_at=expires_at, metadata=metadata, owner_id=owner_id, ratelimits=ratelimits, credits=credits, ip_allowlist=ip_allowlist)))

    def list_keys(self, *, offset: int = 0, limit: int = 50, owner_id: Optional[str] = None, include_revoked: Optional[bool] = None, search: Optional[str] = None, state: Optional[str] = None) -> Page:
        return cast(Page, self._run(_Requests.list_keys(offset=offset, limit=limit, owner_id=owner_id, include_revoked=include_revoked, search=search, state=state)))

    def iter_keys(self, *, page_size: int = 100, **filters: Any) -> Iterator[Key]:
        """Every key the filters select, page by page."""
        offset = 0
        while True:
            page = self.list_keys(offset=offset, limit=page_size, **filters)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def get_key(self, key_id: str) -> Key:
        return cast(Key, self._run(_Requests.key("GET", key_id)))

    def update_key(self, key_id: str, **changes: Any) -> Key:
        """Changes the fields given (name, permissions, expires_at, metadata, enabled,
        ratelimits, credits, ip_allowlist); `None` clears expires_at and credits."""
        return cast(Key, self._run(_Requests.key("PATCH", key_id, body=changes)))

    def revoke_key(self, key_id: str) -> Key:
        return cast(Key, self._run(_Requests.key("DELETE", key_id)))

    def rotate_key(self, key_id: str, *, grace_seconds: int = 0) -> IssuedKey:
        return cast(IssuedKey, self._run(_Requests.key("POST", key_id, "/rotate", {"grace_seconds": grace_seconds})))

    def change_credits(self, key_id: str, op: str, value: int) -> int:
        """`op` is set, increment or decrement; answers the credits left."""
        return int(self._run(_Requests.key("POST", key_id, "/credits", {"op": op, "value": value}))["remaining"])

    def verify_key(self, key: str, *, permissions: Permissions = None, credits: Optional[int] = None, ratelimits: Optional[Sequence[Union[str, Dict[str, Any]]]] = None, ip: Optional[str] = None) -> Verification:
        """Checks a key presented to your service. A refused key is an answer with
        `valid` false and its `code`, not an exception."""
        return cast(Verification, self._run(_Requests.verify(key, permissions, credits, ratelimits, ip)))

    # ---- Users, audit, analytics ----

    def create_user(self, email: str, password: str, **fields: Any) -> User:
        return cast(User, self._run(Request("POST", "/v0/users", body={"email": email, "password": password, **fields})))

    def list_users(self, *, offset: int = 0, limit: int = 50) -> Page:
        return cast(Page, self._run(Request("GET", "/v0/users", params={"offset": offset, "limit": limit})))

    def get_user(self, user_id: str) -> User:
        return cast(User, self._run(Request("GET", f"/v0/users/{user_id}")))

    def update_user(self, user_id: str, **changes: Any) -> User:
        return cast(User, self._run(Request("PATCH", f"/v0/users/{user_id}", body=changes)))

    def audit_events(self, **filters: Any) -> Dict[str, Any]:
        """One page of the audit log (action, actor_id, target_id, since, until, cursor, limit)."""
        return cast(Dict[str, Any], self._run(Request("GET", "/v0/audit", params=filters)))

    def verifications(self, **query: Any) -> Dict[str, Any]:
        """Verification counts over time (key_id, owner_id, group_by, granularity, since, until)."""
        return cast(Dict[str, Any], self._run(Request("GET", "/v0/analytics/verifications", params=query)))


class AsyncKeyward(_Base):
    """The asynchronous client: the same operations, awaited."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", token: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT, max_retries: int = 2, max_retry_wait: float = 30.0, http: Optional[httpx.AsyncClient] = None) -> None:
        super().__init__(base_url, token, timeout, max_retries, max_retry_wait)
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncKeyward":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def _run(self, request: Request) -> Json:
        attempt = 0
        while True:
            response = await self._http.request(request.method, self.base_url + request.path, params=request.query(), json=request.body, headers=self._headers())
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return self._answer(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def login(self, email: str, password: str, tenant: Optional[str] = None) -> Session:
        session = cast(Session, await self._run(_Requests.login(email, password, tenant)))
        self.token = session["token"]
        return session

    async def logout(self) -> None:
        await self._run(Request("POST", "/v0/auth/logout"))

    async def me(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], await self._run(Request("GET", "/v0/me")))

    async def create_key(self, name: str, *, permissions: Any = ..., expires_at: Any = ..., metadata: Any = ..., owner_id: Any = ..., ratelimits: Any = ..., credits: Any = ..., ip_allowlist: Any = ...) -> IssuedKey:
        return cast(IssuedKey, await self._run(_Requests.create_key(name, permissions=permissions, expires_at=expires_at, metadata=metadata, owner_id=owner_id, ratelimits=ratelimits, credits=credits, ip_allowlist=ip_allowlist)))

    async def list_keys(self, *, offset: int = 0, limit: int = 50, owner_id: Optional[str] = None, include_revoked: Optional[bool] = None, search: Optional[str] = None, state: Optional[str] = None) -> Page:
        return cast(Page, await self._run(_Requests.list_keys(offset=offset, limit=limit, owner_id=owner_id, include_revoked=include_revoked, search=search, state=state)))

    async def iter_keys(self, *, page_size: int = 100, **filters: Any) -> AsyncIterator[Key]:
        offset = 0
        while True:
            page = await self.list_keys(offset=offset, limit=page_size, **filters)
            for item in page["items"]:
                yield item
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    async def get_key(self, key_id: str) -> Key:
        return cast(Key, await self._run(_Requests.key("GET", key_id)))

    async def update_key(self, key_id: str, **changes: Any) -> Key:
        return cast(Key, await self._run(_Requests.key("PATCH", key_id, body=changes)))

    async def revoke_key(self, key_id: str) -> Key:
        return cast(Key, await self._run(_Requests.key("DELETE", key_id)))

    async def rotate_key(self, key_id: str, *, grace_seconds: int = 0) -> IssuedKey:
        return cast(IssuedKey, await self._run(_Requests.key("POST", key_id, "/rotate", {"grace_seconds": grace_seconds})))

    async def change_credits(self, key_id: str, op: str, value: int) -> int:
        return int((await self._run(_Requests.key("POST", key_id, "/credits", {"op": op, "value": value})))["remaining"])

    async def verify_key(self, key: str, *, permissions: Permissions = None, credits: Optional[int] = None, ratelimits: Optional[Sequence[Union[str, Dict[str, Any]]]] = None, ip: Optional[str] = None) -> Verification:
        return cast(Verification, await self._run(_Requests.verify(key, permissions, credits, ratelimits, ip)))

    async def create_user(self, email: str, password: str, **fields: Any) -> User:
        return cast(User, await self._run(Request("POST", "/v0/users", body={"email": email, "password": password, **fields})))

    async def list_users(self, *, offset: int = 0, limit: int = 50) -> Page:
        return cast(Page, await self._run(Request("GET", "/v0/users", params={"offset": offset, "limit": limit})))

    async def get_user(self, user_id: str) -> User:
        return cast(User, await self._run(Request("GET", f"/v0/users/{user_id}")))

    async def update_user(self, user_id: str, **changes: Any) -> User:
        return cast(User, await self._run(Request("PATCH", f"/v0/users/{user_id}", body=changes)))

    async def audit_events(self, **filters: Any) -> Dict[str, Any]:
        return cast(Dict[str, Any], await self._run(Request("GET", "/v0/audit", params=filters)))

    async def verifications(self, **query: Any) -> Dict[str, Any]:
        return cast(Dict[str, Any], await self._run(Request("GET", "/v0/analytics/verifications", params=query)))


def presented_key(headers: Any) -> Optional[str]:
    """The key a request to your service carries: `Authorization: Bearer <key>` or
    `apikey <key>`, or `X-API-Key`."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() in ("bearer", "apikey") and value.strip():
            return value.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def refusal_status(verdict: Verification) -> int:
    """The status a service answers for a refused key: 429 for spent limits or credits,
    403 for missing permissions or a forbidden address, 401 otherwise."""
    code = verdict["code"]
    if code in ("RATE_LIMITED", "USAGE_EXCEEDED"):
        return 429
    if code in ("INSUFFICIENT_PERMISSIONS", "FORBIDDEN"):
        return 403
    return 401


__all__ = ["Keyward", "AsyncKeyward", "KeywardError", "presented_key", "refusal_status"]
