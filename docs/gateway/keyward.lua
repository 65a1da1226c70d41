-- HAProxy (2.6 and later: Lua with its built-in core.httpclient) asking Keyward about
-- each request, as nginx's auth_request does. Loaded by docs/gateway/haproxy.cfg;
-- Keyward's address comes from the KEYWARD_URL environment variable (`setenv` in the
-- configuration's global section). Sets txn.keyward_status (Keyward's status, 503 when
-- it cannot be asked) and txn.keyward_* variables for the configuration's rules.
local forwarded = {
  "authorization", "x-api-key", "x-keyward-permissions",
}
local answered = {
  key_id = "x-keyward-key-id",
  owner_id = "x-keyward-owner-id",
  tenant = "x-keyward-tenant",
  permissions = "x-keyward-permissions",
  retry_after = "retry-after",
  ratelimit_limit = "ratelimit-limit",
  ratelimit_remaining = "ratelimit-remaining",
  ratelimit_reset = "ratelimit-reset",
}

-- The first value of a header in HAProxy's header tables (indexed from 0).
local function first(values)
  if values == nil then return nil end
  return values[0] or values[1]
end

core.register_action("keyward_auth", { "http-req" }, function(txn)
  local keyward = os.getenv("KEYWARD_URL") or "http://127.0.0.1:8080"
  local incoming = txn.http:req_get_headers()
  local ask = {
    ["x-original-uri"] = { txn.sf:pathq() },
    ["x-original-method"] = { txn.sf:method() },
    ["x-forwarded-for"] = { txn.sf:src() },
  }
  local host = first(incoming["host"])
  if host then ask["x-original-host"] = { host } end
  for _, name in ipairs(forwarded) do
    local value = first(incoming[name])
    if value then ask[name] = { value } end
  end
  local ok, response = pcall(function()
    return core.httpclient():get{
      url = keyward .. "/v0/forward-auth", headers = ask, timeout = 2000,
    }
  end)
  if not ok or response == nil or response.status == nil or response.status == 0 then
    txn:set_var("txn.keyward_status", 503)
    return
  end
  txn:set_var("txn.keyward_status", response.status)
  for var, name in pairs(answered) do
    local value = first(response.headers[name])
    if value then txn:set_var("txn.keyward_" .. var, value) end
  end
end, 0)
