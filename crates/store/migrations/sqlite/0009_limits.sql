-- Limits (issue 21). A key's rate limits and IP allow-list are JSON text in `limits`;
-- a user's shared rate limits in `ratelimits`. Credits are columns, because each node's
-- batched flush adds what it spent without reading first: what is left is
-- credits_base - credits_spent (never below 0; NULL base is unlimited), so that a
-- change made through the API (set, add, take) and the flushes of several nodes can
-- be applied in any order, each as one UPDATE. `credits_refill` is JSON, and
-- `credits_refilled_at` the start of the interval the balance was last refilled for.
ALTER TABLE api_keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN credits_base BIGINT;
ALTER TABLE api_keys ADD COLUMN credits_spent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN credits_refill TEXT;
ALTER TABLE api_keys ADD COLUMN credits_refilled_at BIGINT;
ALTER TABLE users ADD COLUMN ratelimits TEXT NOT NULL DEFAULT '[]';
