"""The tests run against a real Keyward server, started by the Rust test that runs them
(crates/server/tests/api/sdks.rs), which passes its address and administrator."""
import os
import uuid

import pytest

from keyward import Keyward


@pytest.fixture(scope="session")
def url() -> str:
    return os.environ["KEYWARD_URL"]


@pytest.fixture()
def admin(url: str) -> Keyward:
    client = Keyward(url)
    client.login(os.environ["KEYWARD_ADMIN_EMAIL"], os.environ["KEYWARD_ADMIN_PASSWORD"])
    yield client
    client.close()


@pytest.fixture()
def unique() -> str:
    return uuid.uuid4().hex[:8]
