"""A Flask decorator that verifies the caller's key with Keyward.

    keyward = Keyward("http://127.0.0.1:8080", token=SERVICE_KEY)

    @app.get("/invoices")
    @require_key(keyward, permissions="invoices.read")
    def invoices():
        return {"owner": g.keyward["owner_id"]}
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional, Sequence, TypeVar, Union, cast

from flask import g, jsonify, request

from ._client import Keyward, Permissions, presented_key, refusal_status

View = TypeVar("View", bound=Callable[..., Any])


def require_key(
    client: Keyward,
    *,
    permissions: Permissions = None,
    ratelimits: Optional[Sequence[Union[str, Dict[str, Any]]]] = None,
    credits: Optional[int] = None,
) -> Callable[[View], View]:
    """Refuses requests without a valid key (401), without the permissions (403) or over
    a limit (429); a verified key's answer is in `flask.g.keyward`."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def verified(*args: Any, **kwargs: Any) -> Any:
            key = presented_key(request.headers)
            if key is None:
                return jsonify(error="an API key is required", code="MISSING"), 401
            verdict = client.verify_key(key, permissions=permissions, ratelimits=ratelimits, credits=credits)
            if not verdict["valid"]:
                return jsonify(error="the API key was refused", code=verdict["code"]), refusal_status(verdict)
            g.keyward = verdict
            return view(*args, **kwargs)

        return cast(View, verified)

    return decorator
