"""A FastAPI dependency that verifies the caller's key with Keyward.

    keyward = AsyncKeyward("http://127.0.0.1:8080", token=SERVICE_KEY)

    @app.get("/invoices")
    async def invoices(key: Verification = Depends(require_key(keyward, permissions="invoices.read"))):
        ...
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional, Sequence, Union

from fastapi import HTTPException, Request

from ._client import AsyncKeyward, Permissions, presented_key, refusal_status
from ._types import Verification


def require_key(
    client: AsyncKeyward,
    *,
    permissions: Permissions = None,
    ratelimits: Optional[Sequence[Union[str, Dict[str, Any]]]] = None,
    credits: Optional[int] = None,
) -> Callable[[Request], Awaitable[Verification]]:
    """A dependency answering the key's verification, or refusing the request: 401
    without a valid key, 403 without the permissions, 429 when a limit is spent."""

    async def verified_key(request: Request) -> Verification:
        key = presented_key(request.headers)
        if key is None:
            raise HTTPException(401, "an API key is required", {"WWW-Authenticate": 'Bearer realm="api"'})
        verdict = await client.verify_key(key, permissions=permissions, ratelimits=ratelimits, credits=credits)
        if not verdict["valid"]:
            status = refusal_status(verdict)
            headers = {"WWW-Authenticate": 'Bearer realm="api"'} if status == 401 else None
            raise HTTPException(status, verdict["code"], headers)
        return verdict

    return verified_key
