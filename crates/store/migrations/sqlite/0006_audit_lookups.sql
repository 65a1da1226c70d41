-- Login throttling counts a target's and an address's recent failed logins.
CREATE INDEX audit_events_by_target ON audit_events (target_id, at);
CREATE INDEX audit_events_by_address ON audit_events (remote_ip, at);
