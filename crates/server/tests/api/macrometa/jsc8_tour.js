// Every jsc8 method about API keys, their access levels and attributes, validation,
// and the collection and fabric listings, through the real jsc8 against Keyward.
// Prints one JSON object: for each step, {ok: <resolved value>} or {err: {...}}.
const jsc8 = require("jsc8");
const URL = process.env.KW_URL;
const EMAIL = process.env.KW_EMAIL;
const PASSWORD = process.env.KW_PASSWORD;
const out = {};

async function step (name, call) {
  try {
    const value = await call();
    out[name] = { ok: value === undefined ? null : value };
  } catch (e) {
    out[name] = { err: { status: e.statusCode, num: e.errorNum, message: e.message, kind: e.name } };
  }
}

async function main () {
  const c = new jsc8({ url: URL, fabricName: "_system" });
  await step("login", () => c.login(EMAIL, PASSWORD));
  await step("create", () => c.createApiKey("tour"));
  await step("duplicate", () => c.createApiKey("tour"));
  await step("bad_keyid", () => c.createApiKey("9-not-a-keyid"));
  await step("list", () => c.getAvailableApiKeys());
  await step("get", () => c.getAvailableApiKey("tour"));
  await step("get_unknown", () => c.getAvailableApiKey("nobody"));

  // A client of the new key, built as the seed builds one.
  await step("users", () => c.getUsers());
  await step("create_user", () => c.createUser("ana", "ana@example.com", "ana-password-1"));
  await step("create_user_again", () => c.createUser("ana", "ana2@example.com", "ana-password-1"));
  await step("create_user_short_password", () => c.createUser("bo", "bo@example.com", "x"));
  await step("has_user", () => c.hasUser("ana"));
  await step("has_nobody", () => c.hasUser("nobody"));
  await step("get_user", () => c.getUser("ana"));
  await step("update_user", () => c.updateUser("ana", { active: false }));
  await step("replace_user", () => c.replaceUser("ana", { active: true }));
  await step("user_permissions", () => c.getPermissions("ana"));
  await step("user_set_permission", () => c.updatePermission("ana", "_system", "ro"));
  await step("user_permission", () => c.getPermission("ana", "_system"));
  await step("user_set_collection", () => c.updatePermission("ana", "_system", "rw", "orders"));
  await step("user_collection", () => c.getPermission("ana", "_system", "orders"));
  await step("user_reset_collection", () => c.resetPermission("ana", "_system", "orders"));
  await step("user_collection_after", () => c.getPermission("ana", "_system", "orders"));
  await step("user_reset", () => c.resetPermission("ana", "_system"));
  await step("user_attributes", () => c.getUserAttributes("ana"));
  await step("delete_user", () => c.deleteUser("ana"));
  await step("deleted_user", () => c.getUser("ana"));

  const secret = out.create.ok && out.create.ok.key;
  const k = new jsc8({ url: URL, apiKey: secret, fabricName: "_system" });
  await step("key_lists_collections", () => k.listCollections());

  await step("databases", () => c.listAccessibleDatabases("tour"));
  await step("databases_full", () => c.listAccessibleDatabases("tour", true));
  await step("set_database", () => c.setDatabaseAccessLevel("tour", "_system", "ro"));
  await step("get_database", () => c.getDatabaseAccessLevel("tour", "_system"));
  await step("get_other_database", () => c.getDatabaseAccessLevel("tour", "Default"));
  await step("bad_grant", () => c.setDatabaseAccessLevel("tour", "_system", "everything"));
  await step("unknown_database", () => c.getDatabaseAccessLevel("tour", "nowhere"));
  await step("clear_database", () => c.clearDatabaseAccessLevel("tour", "_system"));

  await step("set_collection", () => c.setCollectionAccessLevel("tour", "_system", "orders", "rw"));
  await step("get_collection", () => c.getCollectionAccessLevel("tour", "_system", "orders"));
  await step("collections", () => c.listAccessibleCollections("tour", "_system"));
  await step("clear_collection", () => c.clearCollectionAccessLevel("tour", "_system", "orders"));
  await step("set_stream", () => c.setStreamAccessLevel("tour", "_system", "c8globals.s1", "ro"));
  await step("get_stream", () => c.getStreamAccessLevel("tour", "_system", "c8globals.s1"));
  await step("streams", () => c.listAccessibleStreams("tour", "_system"));
  await step("clear_stream", () => c.clearStreamAccessLevel("tour", "_system", "c8globals.s1"));

  await step("set_billing", () => c.setBillingAccessLevel("tour", "ro"));
  await step("get_billing", () => c.getBillingAccessLevel("tour"));
  await step("clear_billing", () => c.clearBillingAccessLevel("tour"));

  await step("attributes_first", () => c.createUpdateApikeyAttributes("tour", { team: "blue" }));
  await step("attributes_second", () => c.createUpdateApikeyAttributes("tour", { env: "prod" }));
  await step("attributes", () => c.getApikeyAttributes("tour"));
  await step("attribute_removed", () => c.deleteApikeyAttribute("tour", "team"));
  await step("attributes_after", () => c.getApikeyAttributes("tour"));

  await step("list_collections", () => c.listCollections());
  await step("fabrics", () => c.listFabrics());
  await step("user_fabrics", () => c.listUserFabrics());
  await step("current_fabric", () => c.get());

  await step("key_validates_itself", () => k.validateApiKey({ apikey: secret }));
  await step("login_with_api_key", () => k.loginWithApiKey(secret));
  await step("validate_garbage", () => c.validateApiKey({ apikey: "not-a-key" }));
  await step("remove", () => c.removeApiKey("tour"));
  await step("key_after_remove", () => k.listCollections());
  await step("remove_again", () => c.removeApiKey("tour"));
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
