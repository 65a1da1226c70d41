-- Bumped whenever a user's sessions must end (logout, a new password, a role change,
-- deactivation): a session token carries the epoch it was issued in, and a token of an
-- earlier epoch is refused, on every node, at its next request.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
