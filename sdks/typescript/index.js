// @keyward/sdk: every operation of Keyward's native API over the platform's fetch, with
// no dependencies. Types are in index.d.ts.

const RETRIED = new Set([429, 503]);

/** A refusal or failure answered by Keyward: `{message, error_code, details}`. */
export class KeywardError extends Error {
  constructor(status, body, retryAfter) {
    const message = typeof body === "object" && body ? String(body.message ?? "") : String(body ?? "");
    const code = typeof body === "object" && body ? String(body.error_code ?? "Error") : "Error";
    super(`${status} ${code}: ${message}`);
    this.name = "KeywardError";
    this.status = status;
    this.errorCode = code;
    this.details = typeof body === "object" && body && body.details && typeof body.details === "object" ? body.details : null;
    this.retryAfter = retryAfter;
  }
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

function retryAfterOf(response) {
  const value = response.headers.get("retry-after");
  const seconds = value === null ? NaN : Number(value);
  return Number.isFinite(seconds) ? seconds : null;
}

function withoutUndefined(object) {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}

export class Keyward {
  /**
   * @param {{baseUrl?: string, token?: string, maxRetries?: number, maxRetryWait?: number, timeoutMs?: number, fetch?: typeof fetch}} options
   */
  constructor({ baseUrl = "http://127.0.0.1:8080", token, maxRetries = 2, maxRetryWait = 30, timeoutMs = 10000, fetch: fetcher } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token;
    this.maxRetries = maxRetries;
    this.maxRetryWait = maxRetryWait;
    this.timeoutMs = timeoutMs;
    this.fetch = fetcher ?? globalThis.fetch;
  }

  async request(method, path, { query, body } = {}) {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const headers = { accept: "application/json", "user-agent": "keyward-typescript/0.1.0" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    for (let attempt = 0; ; attempt++) {
      const response = await this.fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await response.text();
      let parsed = text;
      try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON: kept as text */ }
      if (response.ok) return parsed;
      const retryAfter = retryAfterOf(response);
      if (RETRIED.has(response.status) && attempt < this.maxRetries) {
        const wait = retryAfter ?? Math.min(0.25 * 2 ** attempt, 4) * (0.5 + Math.random() / 2);
        if (wait <= this.maxRetryWait) { await sleep(wait); continue; }
      }
      throw new KeywardError(response.status, parsed, retryAfter);
    }
  }

  // ---- Sessions ----
  async login(email, password, tenant) {
    const session = await this.request("POST", "/v0/auth/login", { body: withoutUndefined({ email, password, tenant }) });
    this.token = session.token;
    return session;
  }
  logout() { return this.request("POST", "/v0/auth/logout"); }
  me() { return this.request("GET", "/v0/me"); }

  // ---- Keys ----
  createKey(fields) { return this.request("POST", "/v0/api_keys", { body: withoutUndefined(fields) }); }
  listKeys(query = {}) { return this.request("GET", "/v0/api_keys", { query }); }
  async *iterKeys({ pageSize = 100, ...filters } = {}) {
    for (let offset = 0; ;) {
      const page = await this.listKeys({ ...filters, offset, limit: pageSize });
      yield* page.items;
      offset += page.items.length;
      if (page.items.length === 0 || offset >= page.total) return;
    }
  }
  getKey(id) { return this.request("GET", `/v0/api_keys/${encodeURIComponent(id)}`); }
  updateKey(id, changes) { return this.request("PATCH", `/v0/api_keys/${encodeURIComponent(id)}`, { body: changes }); }
  revokeKey(id) { return this.request("DELETE", `/v0/api_keys/${encodeURIComponent(id)}`); }
  rotateKey(id, { graceSeconds = 0 } = {}) {
    return this.request("POST", `/v0/api_keys/${encodeURIComponent(id)}/rotate`, { body: { grace_seconds: graceSeconds } });
  }
  async changeCredits(id, op, value) {
    return (await this.request("POST", `/v0/api_keys/${encodeURIComponent(id)}/credits`, { body: { op, value } })).remaining;
  }
  /** A refused key is an answer with `valid: false` and its `code`, not an exception. */
  verifyKey(key, { permissions, credits, ratelimits, ip } = {}) {
    const body = { key };
    if (permissions !== undefined) body.permissions = permissions;
    if (credits !== undefined) body.credits = { cost: credits };
    if (ratelimits !== undefined) body.ratelimits = ratelimits.map((r) => (typeof r === "string" ? { name: r } : r));
    if (ip !== undefined) body.ip = ip;
    return this.request("POST", "/v0/keys/verify", { body });
  }

  // ---- Users, audit, analytics ----
  createUser(fields) { return this.request("POST", "/v0/users", { body: withoutUndefined(fields) }); }
  listUsers(query = {}) { return this.request("GET", "/v0/users", { query }); }
  getUser(id) { return this.request("GET", `/v0/users/${encodeURIComponent(id)}`); }
  updateUser(id, changes) { return this.request("PATCH", `/v0/users/${encodeURIComponent(id)}`, { body: changes }); }
  auditEvents(query = {}) { return this.request("GET", "/v0/audit", { query }); }
  verifications(query = {}) { return this.request("GET", "/v0/analytics/verifications", { query }); }
}

/** The key a request to your service carries: `Authorization: Bearer|apikey <key>` or `X-API-Key`. */
export function presentedKey(headers) {
  const get = (name) => (typeof headers.get === "function" ? headers.get(name) : headers[name]) ?? undefined;
  const authorization = get("authorization");
  if (authorization) {
    const match = /^\s*(bearer|apikey)\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[2] : null;
  }
  const key = get("x-api-key");
  return key && key.trim() ? key.trim() : null;
}

/** 429 for spent limits or credits, 403 for missing permissions or address, else 401. */
export function refusalStatus(verdict) {
  if (verdict.code === "RATE_LIMITED" || verdict.code === "USAGE_EXCEEDED") return 429;
  if (verdict.code === "INSUFFICIENT_PERMISSIONS" || verdict.code === "FORBIDDEN") return 403;
  return 401;
}
