"""The Python SDK against the real server: every operation, paging, errors, retries."""
import asyncio
import uuid

import pytest

import keyward
from keyward import AsyncKeyward, Keyward


def test_a_key_lives_its_whole_life(admin: Keyward, unique: str) -> None:
    made = admin.create_key(
        f"py-{unique}",
        permissions=["invoices.read", "keyward.keys.read"],
        metadata={"plan": "pro"},
        ratelimits=[{"name": "default", "limit": 100, "duration_seconds": 60}],
        credits={"remaining": 10},
    )
    assert made["api_key"].startswith("kw_") and made["credits"] == {"remaining": 10, "refill": None}
    assert admin.get_key(made["id"])["name"] == f"py-{unique}"

    ok = admin.verify_key(made["api_key"], permissions="invoices.read")
    assert ok["valid"] and ok["code"] == "VALID" and ok["metadata"] == {"plan": "pro"}
    assert ok["credits"] == {"remaining": 9}
    assert ok["ratelimits"][0]["remaining"] == 99
    lacking = admin.verify_key(made["api_key"], permissions=["invoices.write"])
    assert not lacking["valid"] and lacking["code"] == "INSUFFICIENT_PERMISSIONS"

    assert admin.change_credits(made["id"], "increment", 5) == 14
    renamed = admin.update_key(made["id"], name=f"py-{unique}-renamed", enabled=True)
    assert renamed["name"].endswith("-renamed")

    rotated = admin.rotate_key(made["id"], grace_seconds=60)
    assert rotated["api_key"] != made["api_key"] and "previous_expires_at" in rotated
    assert admin.verify_key(rotated["api_key"])["valid"]
    assert admin.verify_key(made["api_key"])["valid"], "the old secret works during the grace"

    revoked = admin.revoke_key(made["id"])
    assert revoked["state"] == "revoked"
    assert admin.verify_key(rotated["api_key"])["code"] == "REVOKED"


def test_listing_pages_through_every_key(admin: Keyward, unique: str) -> None:
    names = {f"page-{unique}-{i}" for i in range(5)}
    for name in names:
        admin.create_key(name)
    page = admin.list_keys(limit=2, search=f"page-{unique}")
    assert page["total"] == 5 and len(page["items"]) == 2
    assert {k["name"] for k in admin.iter_keys(page_size=2, search=f"page-{unique}")} == names
    assert admin.list_keys(search=f"page-{unique}", state="revoked")["total"] == 0


def test_refusals_are_exceptions_with_their_code(admin: Keyward, url: str, unique: str) -> None:
    with pytest.raises(keyward.AuthenticationError) as bad:
        Keyward(url, token="kw_not-a-real-key").me()
    assert bad.value.status == 401 and bad.value.error_code == "Unauthorized"

    member_email = f"member-{unique}@example.com"
    admin.create_user(member_email, "member-password-1", permissions=["keyward.keys.*"])
    member = Keyward(url)
    member.login(member_email, "member-password-1")
    with pytest.raises(keyward.PermissionDeniedError) as forbidden:
        member.list_users()
    assert forbidden.value.error_code == "Forbidden"

    with pytest.raises(keyward.NotFoundError):
        admin.get_key(str(uuid.uuid4()))
    admin.create_key(f"dup-{unique}")
    with pytest.raises(keyward.ConflictError) as taken:
        admin.create_key(f"dup-{unique}")
    assert taken.value.error_code == "DuplicateName"
    with pytest.raises(keyward.ValidationError) as invalid:
        admin.create_key(f"bad-{unique}", ip_allowlist=["not an address"])
    assert invalid.value.details == {"field": "ip_allowlist"}


def test_429_is_retried_after_what_retry_after_says(admin: Keyward, url: str, unique: str) -> None:
    made = admin.create_key(
        f"limited-{unique}",
        permissions=["keyward.keys.read"],
        ratelimits=[{"name": "default", "limit": 1, "duration_seconds": 1}],
    )
    impatient = Keyward(url, token=made["api_key"], max_retries=0)
    impatient.me()
    with pytest.raises(keyward.RateLimitedError) as limited:
        impatient.me()
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
    patient = Keyward(url, token=made["api_key"], max_retries=3)
    patient.me()
    assert patient.me()["via"] == "api_key", "answered once the limit allowed it"


def test_the_async_client_does_the_same(url: str, unique: str) -> None:
    import os

    async def lifecycle() -> None:
        async with AsyncKeyward(url) as client:
            await client.login(os.environ["KEYWARD_ADMIN_EMAIL"], os.environ["KEYWARD_ADMIN_PASSWORD"])
            made = await client.create_key(f"async-{unique}", permissions=["invoices.read"])
            assert (await client.verify_key(made["api_key"], permissions="invoices.read"))["valid"]
            names = [k["name"] async for k in client.iter_keys(search=f"async-{unique}")]
            assert names == [f"async-{unique}"]
            rotated = await client.rotate_key(made["id"])
            assert (await client.verify_key(made["api_key"]))["code"] == "NOT_FOUND"
            await client.revoke_key(made["id"])
            assert (await client.verify_key(rotated["api_key"]))["code"] == "REVOKED"
            with pytest.raises(keyward.NotFoundError):
                await client.get_key(str(uuid.uuid4()))

    asyncio.run(lifecycle())
