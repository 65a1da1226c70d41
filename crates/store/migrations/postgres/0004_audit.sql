-- The audit log: one row per change of state (and per login attempt), written in the
-- transaction of the change. Append-only: nothing updates a row; only retention deletes.
-- The user columns say whom an event concerns, so members can be shown their own.
CREATE TABLE audit_events (
    seq              BIGSERIAL PRIMARY KEY,
    id               UUID NOT NULL UNIQUE,
    at               BIGINT NOT NULL,
    tenant_id        UUID,
    actor_type       TEXT NOT NULL,
    actor_id         UUID,
    actor_user_id    UUID,
    door             TEXT,
    remote_ip        TEXT,
    action           TEXT NOT NULL,
    target_type      TEXT NOT NULL,
    target_id        UUID,
    target_owner_id  UUID,
    changes          TEXT NOT NULL,
    details          TEXT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_by_time ON audit_events (at);

CREATE FUNCTION audit_events_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_update();
