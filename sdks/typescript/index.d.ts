// Types of @keyward/sdk: the wire shapes of docs/openapi.json.

export interface RateLimit { name: string; limit: number; duration_seconds: number; auto_apply?: boolean }
export interface Refill { amount: number; interval: "daily" | "monthly"; day?: number }
export interface Credits { remaining: number; refill?: Refill | null }
export interface RecentUse { verifications_24h: number; valid_24h: number; verifications_30d: number; valid_30d: number }

export interface Key {
  id: string; name: string; start: string; owner_id: string; door: string;
  permissions: string[]; metadata: Record<string, unknown>; enabled: boolean;
  state: "active" | "disabled" | "expired" | "revoked";
  created_at: string; updated_at: string; expires_at: string | null; revoked_at: string | null;
  last_used_at: string | null; use_count: number; disabled_by: string | null;
  ratelimits: RateLimit[]; ip_allowlist: string[]; credits: Credits | null; usage?: RecentUse;
}
/** A key with its secret: shown once, by create and rotate. */
export interface IssuedKey extends Key { api_key: string; previous_expires_at?: string }
export interface User {
  id: string; email: string; username: string; display_name: string; role: "admin" | "member";
  active: boolean; permissions: string[]; ratelimits: RateLimit[]; created_at: string;
}
export interface Page<T> { items: T[]; total: number; offset: number; limit: number }
export interface Session { token: string; expires_at: string; user: User }
export type VerifyCode = "VALID" | "NOT_FOUND" | "MALFORMED" | "EXPIRED" | "REVOKED" | "DISABLED"
  | "INSUFFICIENT_PERMISSIONS" | "FORBIDDEN" | "RATE_LIMITED" | "USAGE_EXCEEDED";
export interface Verification {
  valid: boolean; code: VerifyCode; key_id: string | null; name: string | null; owner_id: string | null;
  permissions: string[] | null; expires_at: string | null; metadata: Record<string, unknown> | null;
  ratelimits: { name: string; limit: number; remaining: number; reset_at: number; exceeded: boolean }[];
  credits: { remaining: number } | null;
}

export interface NewKey {
  name: string; permissions?: string[]; expires_at?: string; metadata?: Record<string, unknown>;
  owner_id?: string; ratelimits?: RateLimit[]; credits?: Credits; ip_allowlist?: string[];
}
export interface KeyChanges {
  name?: string; permissions?: string[]; expires_at?: string | null; metadata?: Record<string, unknown>;
  enabled?: boolean; ratelimits?: RateLimit[]; credits?: Credits | null; ip_allowlist?: string[];
}
export interface KeyQuery {
  offset?: number; limit?: number; owner_id?: string; include_revoked?: boolean; search?: string;
  state?: "active" | "disabled" | "expired" | "revoked";
}
export interface VerifyOptions {
  /** A permission query (`"a AND (b OR c)"`) or a list that must all be held. */
  permissions?: string | string[];
  credits?: number;
  ratelimits?: (string | { name: string; cost?: number })[];
  ip?: string;
}

export class KeywardError extends Error {
  status: number; errorCode: string; details: Record<string, unknown> | null; retryAfter: number | null;
}

export interface KeywardOptions {
  baseUrl?: string; token?: string; maxRetries?: number; maxRetryWait?: number; timeoutMs?: number;
  fetch?: typeof fetch;
}

export class Keyward {
  constructor(options?: KeywardOptions);
  token: string | undefined;
  request<T = unknown>(method: string, path: string, init?: { query?: Record<string, unknown>; body?: unknown }): Promise<T>;
  login(email: string, password: string, tenant?: string): Promise<Session>;
  logout(): Promise<unknown>;
  me(): Promise<{ user: User; tenant: { id: string; name: string } | null; via: "session" | "api_key"; key: Key | null }>;
  createKey(fields: NewKey): Promise<IssuedKey>;
  listKeys(query?: KeyQuery): Promise<Page<Key>>;
  iterKeys(query?: KeyQuery & { pageSize?: number }): AsyncGenerator<Key>;
  getKey(id: string): Promise<Key>;
  updateKey(id: string, changes: KeyChanges): Promise<Key>;
  revokeKey(id: string): Promise<Key>;
  rotateKey(id: string, options?: { graceSeconds?: number }): Promise<IssuedKey>;
  changeCredits(id: string, op: "set" | "increment" | "decrement", value: number): Promise<number>;
  verifyKey(key: string, options?: VerifyOptions): Promise<Verification>;
  createUser(fields: { email: string; password: string; display_name?: string; role?: "admin" | "member"; permissions?: string[] }): Promise<User>;
  listUsers(query?: { offset?: number; limit?: number }): Promise<Page<User>>;
  getUser(id: string): Promise<User>;
  updateUser(id: string, changes: Record<string, unknown>): Promise<User>;
  auditEvents(query?: Record<string, string | number>): Promise<{ events: Record<string, unknown>[]; next_cursor: string | null }>;
  verifications(query?: Record<string, string>): Promise<Record<string, unknown>>;
}

export function presentedKey(headers: Headers | Record<string, string | string[] | undefined>): string | null;
export function refusalStatus(verdict: Verification): 401 | 403 | 429;
