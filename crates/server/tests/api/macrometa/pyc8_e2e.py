"""Drives Keyward's Macrometa door with the real pyC8 client.

Run by crates/server/tests/macrometa.rs with KW_PORT, KW_EMAIL and KW_PASSWORD set, and
HTTP_PROXY pointing at the server (pyC8 always talks to http://api-<host>:80; the proxy
route delivers those requests to Keyward unchanged). Prints one `ok <step>` per passed
step and `KEY <secret>` for the key the Rust side checks natively; exits non-zero at the
first failed check.
"""
import json
import os
import sys

from c8 import C8Client
from c8 import exceptions as c8e

PORT = int(os.environ["KW_PORT"])
EMAIL = os.environ["KW_EMAIL"]
PASSWORD = os.environ["KW_PASSWORD"]


def check(step, condition, detail=""):
    if not condition:
        print(f"FAIL {step}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok {step}", flush=True)


def refused(step, call, status):
    try:
        answer = call()
    except c8e.C8ServerError as err:
        check(step, err.http_code == status, f"HTTP {err.http_code} [{err.error_code}] {err.error_message}")
        return err
    check(step, False, f"expected HTTP {status}, got success {answer!r}")


client = C8Client(protocol="http", host="127.0.0.1", port=PORT, email=EMAIL, password=PASSWORD)

if sys.argv[1:] == ["remove"]:
    secret = os.environ["KW_KEY"]
    as_key = C8Client(protocol="http", host="127.0.0.1", port=PORT, apikey=secret)
    check("key works before removal", isinstance(as_key.get_collections(), list))
    check("remove", client.remove_api_key("e2eKey") is True)
    check("removed from list", "e2eKey" not in [k["keyid"] for k in client.list_all_api_keys()])
    refused("removed key unknown", lambda: client.get_api_key("e2eKey"), 404)
    refused("removed key refused", lambda: as_key.get_collections(), 401)
    refused("remove twice", lambda: client.remove_api_key("e2eKey"), 404)
    print("STAGE removed", flush=True)
    sys.exit(0)

check("login", client._tenant is not None)
check("fabrics", "_system" in client._fabric.fabrics())
check("fabric details", any(f["name"] == "_system" for f in client.get_fabric_details()))
check("current fabric", client._fabric.properties()["system"] is True)
try:
    C8Client(protocol="http", host="127.0.0.1", port=PORT, email=EMAIL, password="wrong-password")
    check("bad password refused", False, "login succeeded")
except c8e.C8AuthenticationError:
    check("bad password refused", True)

created = client.create_api_key("e2eKey")
check("create", created["error"] is False and created["keyid"] == "e2eKey" and created["key"], created)
secret = created["key"]
print(f"KEY {secret}", flush=True)
check("list", "e2eKey" in [k["keyid"] for k in client.list_all_api_keys()])
refused("duplicate keyid", lambda: client.create_api_key("e2eKey"), 409)
refused("bad keyid", lambda: client.create_api_key("apikey-test%"), 400)
got = client.get_api_key("e2eKey")
check("get", got["error"] is False and got["user"] == "e2eKey" and secret not in json.dumps(got), got)
refused("unknown keyid", lambda: client.get_api_key("noSuchKey"), 404)

# Fabric level: a fresh key copies its creator's levels on existing fabrics.
check("fresh fabric level", client.get_database_access_level("e2eKey", "_system") == "rw")
check("set fabric ro", client.set_database_access_level("e2eKey", "_system", "ro")["error"] is False)
check("get fabric ro", client.get_database_access_level("e2eKey", "_system") == "ro")
check("list fabrics", client.list_accessible_databases("e2eKey").get("_system") == "ro")
refused("invalid grant", lambda: client.set_database_access_level("e2eKey", "_system", "admin"), 400)
refused("unknown fabric", lambda: client.get_database_access_level("e2eKey", "noSuchFabric"), 404)
check("clear fabric", client.clear_database_access_level("e2eKey", "_system") is True)
check("cleared fabric is none", client.get_database_access_level("e2eKey", "_system") == "none")
client.set_database_access_level("e2eKey", "_system", "rw")

# Collection level, with the `*` default between the collection and the fabric.
client.set_collection_access_level("e2eKey", "*", "_system", "ro")
check("collection default", client.get_collection_access_level("e2eKey", "users", "_system") == "ro")
client.set_collection_access_level("e2eKey", "users", "_system", "rw")
client.set_collection_access_level("e2eKey", "secret", "_system", "none")
check("collection set", client.get_collection_access_level("e2eKey", "users", "_system") == "rw")
listed = client.list_accessible_collections("e2eKey", "_system")
check("collection list", listed.get("users") == "rw" and listed.get("secret") == "none", listed)
check("collection clear", client.clear_collection_access_level("e2eKey", "users", "_system") is True)
check("collection falls back to default", client.get_collection_access_level("e2eKey", "users", "_system") == "ro")
client.clear_collection_access_level("e2eKey", "*", "_system")
check("collection falls back to fabric", client.get_collection_access_level("e2eKey", "users", "_system") == "rw")
client.set_collection_access_level("e2eKey", "users", "_system", "ro")

# Stream level, global and local names.
client.set_stream_access_level("e2eKey", "c8globals.orders", "_system", "rw")
client.set_stream_access_level("e2eKey", "c8locals.events", "_system", "ro", local=True)
check("stream global", client.get_stream_access_level("e2eKey", "c8globals.orders", "_system") == "rw")
check("stream local", client.get_stream_access_level("e2eKey", "c8locals.events", "_system", local=True) == "ro")
streams = client.list_accessible_streams("e2eKey", "_system")
check("stream list", streams.get("c8globals.orders") == "rw" and streams.get("c8locals.events") == "ro", streams)
check("stream clear", client.clear_stream_access_level("e2eKey", "c8locals.events", "_system", local=True) is True)
client.set_stream_access_level("e2eKey", "c8locals.events", "_system", "none", local=True)

# Billing.
check("billing default", client.get_billing_access_level("e2eKey") == {"billing": "none"})
client.set_billing_access_level("e2eKey", "ro")
check("billing set", client.get_billing_access_level("e2eKey") == {"billing": "ro"})
check("billing clear", client.clear_billing_access_level("e2eKey")["error"] is False)
check("billing cleared", client.get_billing_access_level("e2eKey") == {"billing": "none"})
client.set_billing_access_level("e2eKey", "rw")

# Attributes: merge, remove one, truncate.
client.update_attributes("e2eKey", {"foo": "bar", "boo": "baz", "soo": "kon"})
client.update_attributes("e2eKey", '{"foo": "bar2"}')
check("attributes merge", client.get_attributes("e2eKey")["result"] == {"foo": "bar2", "boo": "baz", "soo": "kon"})
client.remove_attribute("e2eKey", "boo")
check("attribute removed", client.get_attributes("e2eKey")["result"] == {"foo": "bar2", "soo": "kon"})
refused("attribute not a string", lambda: client.update_attributes("e2eKey", {"n": 1}), 400)
client.remove_all_attributes("e2eKey")
check("attributes truncated", client.get_attributes("e2eKey")["result"] == {})
client.update_attributes("e2eKey", {"team": "ops"})

# A client built from the key: it may read _system and its `users` collection ...
as_key = C8Client(protocol="http", host="127.0.0.1", port=PORT, apikey=secret)
names = [c["name"] for c in as_key.get_collections()]
check("key lists collections", "users" in names and "secret" not in names, names)
print("STAGE key-allowed", flush=True)

# Once its fabric level is none, the same key is refused.
client.set_database_access_level("e2eKey", "_system", "none")
refused("key refused at none", lambda: as_key.get_collections(), 403)
client.set_database_access_level("e2eKey", "_system", "rw")
print("STAGE key-refused", flush=True)
