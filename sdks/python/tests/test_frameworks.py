"""The FastAPI dependency and the Flask decorator refuse a missing, revoked or
under-privileged key and let a good one through."""
import os

from keyward import AsyncKeyward, Keyward


def keys(admin: Keyward, unique: str):
    reader = admin.create_key(f"reader-{unique}", permissions=["invoices.read"])
    writer = admin.create_key(f"writer-{unique}", permissions=["invoices.read", "invoices.write"])
    revoked = admin.create_key(f"gone-{unique}", permissions=["invoices.write"])
    admin.revoke_key(revoked["id"])
    return reader["api_key"], writer["api_key"], revoked["api_key"]


def test_fastapi_dependency(admin: Keyward, url: str, unique: str) -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from keyward.fastapi import require_key

    service = AsyncKeyward(url, token=admin.token)
    app = FastAPI()

    @app.post("/invoices")
    async def create_invoice(key=Depends(require_key(service, permissions="invoices.write"))):
        return {"by": key["key_id"]}

    reader, writer, revoked = keys(admin, unique)
    with TestClient(app) as http:
        assert http.post("/invoices").status_code == 401
        assert http.post("/invoices", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
        refused = http.post("/invoices", headers={"X-API-Key": reader})
        assert refused.status_code == 403 and refused.json()["detail"] == "INSUFFICIENT_PERMISSIONS"
        assert http.post("/invoices", headers={"Authorization": f"Bearer {writer}"}).status_code == 200


def test_flask_decorator(admin: Keyward, url: str, unique: str) -> None:
    from flask import Flask, g

    from keyward.flask import require_key

    service = Keyward(url, token=admin.token)
    app = Flask(__name__)

    @app.post("/invoices")
    @require_key(service, permissions="invoices.write")
    def create_invoice():
        return {"by": g.keyward["key_id"]}

    reader, writer, revoked = keys(admin, unique)
    http = app.test_client()
    assert http.post("/invoices").status_code == 401
    assert http.post("/invoices", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
    refused = http.post("/invoices", headers={"X-API-Key": reader})
    assert refused.status_code == 403 and refused.get_json()["code"] == "INSUFFICIENT_PERMISSIONS"
    assert http.post("/invoices", headers={"Authorization": f"Bearer {writer}"}).status_code == 200
