"""A client generated from docs/openapi.json by an independent generator
(openapi-python-client) makes a create / verify / revoke round trip against the real
server. Run by crates/server/tests/api/sdks.rs with the generated package on sys.path."""
import os

from generated_keyward.api.keys import create_key, revoke_key
from generated_keyward.api.sessions import login
from generated_keyward.api.verification import verify_key
from generated_keyward.client import AuthenticatedClient, Client
from generated_keyward.models import (
    CreateKeyRequest,
    ErrorBody,
    IssuedKeyView,
    KeyView,
    LoginRequest,
    SessionView,
    VerifyAnswer,
    VerifyRequest,
)

url = os.environ["KEYWARD_URL"]
session = login.sync(
    client=Client(base_url=url),
    body=LoginRequest(email=os.environ["KEYWARD_ADMIN_EMAIL"], password=os.environ["KEYWARD_ADMIN_PASSWORD"]),
)
assert isinstance(session, SessionView), session
admin = AuthenticatedClient(base_url=url, token=session.token)

made = create_key.sync(client=admin, body=CreateKeyRequest(name="generated", permissions=["invoices.read"]))
assert isinstance(made, IssuedKeyView), made
verdict = verify_key.sync(client=admin, body=VerifyRequest(key=made.api_key, permissions="invoices.read"))
assert isinstance(verdict, VerifyAnswer) and verdict.valid and verdict.code == "VALID", verdict

revoked = revoke_key.sync(client=admin, id=made.id)
assert isinstance(revoked, KeyView) and revoked.state == "revoked", revoked
after = verify_key.sync(client=admin, body=VerifyRequest(key=made.api_key))
assert isinstance(after, VerifyAnswer) and not after.valid and after.code == "REVOKED", after

refused = create_key.sync(client=admin, body=CreateKeyRequest(name="generated", ip_allowlist=["nope"]))
assert isinstance(refused, ErrorBody) and refused.error_code == "ValidationError", refused
print("round trip: created, verified, revoked, refused")
