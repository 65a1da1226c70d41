-- The audit log: one row per change of state (and per login attempt), written in the
-- transaction of the change. Append-only: nothing updates a row; only retention deletes.
-- The user columns say whom an event concerns, so members can be shown their own.
CREATE TABLE audit_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               BLOB NOT NULL UNIQUE,
    at               INTEGER NOT NULL,
    tenant_id        BLOB,
    actor_type       TEXT NOT NULL,
    actor_id         BLOB,
    actor_user_id    BLOB,
    door             TEXT,
    remote_ip        TEXT,
    action           TEXT NOT NULL,
    target_type      TEXT NOT NULL,
    target_id        BLOB,
    target_owner_id  BLOB,
    changes          TEXT NOT NULL,
    details          TEXT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_by_time ON audit_events (at);

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
