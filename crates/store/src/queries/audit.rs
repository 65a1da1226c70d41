//! The audit log: events are inserted by the write path (`write.rs`) in the transaction
//! of their change, read newest first, and deleted by retention only (the schema refuses
//! any UPDATE).

use super::*;
use async_trait::async_trait;
use keyward_core::audit::{Action, Actor, AuditEvent, AuditFilter, AuditPage, Target};
use time::OffsetDateTime;
use uuid::Uuid;

const EVENT_COLUMNS: &str = "seq, id, at, tenant_id, actor_type, actor_id, actor_user_id, \
     door, remote_ip, action, target_type, target_id, target_owner_id, changes, details";

pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'static, Db>,
    event: &AuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, tenant_id, actor_type, actor_id, actor_user_id, \
         door, remote_ip, action, target_type, target_id, target_owner_id, changes, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(event.id)
    .bind(micros(event.time))
    .bind(event.tenant_id.map(|t| t.0))
    .bind(event.actor.kind())
    .bind(event.actor.id())
    .bind(event.actor_user.map(|u| u.0))
    .bind(event.door.map(Door::as_str))
    .bind(event.remote_ip.map(|ip| ip.to_string()))
    .bind(event.action.as_str())
    .bind(event.target.kind())
    .bind(event.target.id())
    .bind(event.target_owner.map(|u| u.0))
    .bind(json_to_text(&event.changes))
    .bind(json_to_text(&event.details))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl crate::traits::AuditStore for Backend {
    async fn audit_events(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter,
    ) -> StoreResult<AuditPage> {
        // Absent filters bind NULL and match everything, so one statement serves every
        // combination of them.
        let tenant_rule = match tenant {
            Some(_) => "tenant_id = $1",
            None => "($1 IS NULL AND tenant_id IS NULL)",
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE {tenant_rule} \
             AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor_id = $3) \
             AND ($4 IS NULL OR target_id = $4) AND ($5 IS NULL OR at >= $5) \
             AND ($6 IS NULL OR at < $6) \
             AND ($7 IS NULL OR actor_user_id = $7 OR target_owner_id = $7) \
             AND ($8 IS NULL OR seq < $8) ORDER BY seq DESC LIMIT $9"
        );
        // One more than asked for says whether there is a next page.
        let rows = sqlx::query(&sql)
            .bind(tenant.map(|t| t.0))
            .bind(filter.action.map(Action::as_str))
            .bind(filter.actor_id)
            .bind(filter.target_id)
            .bind(filter.since.map(micros))
            .bind(filter.until.map(micros))
            .bind(filter.involving.map(|u| u.0))
            .bind(filter.before)
            .bind(i64::from(filter.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        let mut events = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for row in rows.iter().take(filter.limit as usize) {
            events.push(event_from_row(row)?);
            last_seq = Some(row.try_get::<i64, _>("seq").map_err(read_error)?);
        }
        let next = if rows.len() > filter.limit as usize {
            last_seq
        } else {
            None
        };
        Ok(AuditPage { events, next })
    }

    async fn recent_events(
        &self,
        action: Action,
        about: crate::Recent<'_>,
        since: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OffsetDateTime>> {
        let (column, query) = match about {
            crate::Recent::Target(_) => ("target_id", "target"),
            crate::Recent::Address(_) => ("remote_ip", "address"),
        };
        let sql = format!(
            "SELECT at FROM audit_events WHERE action = $1 AND {column} = $2 AND at >= $3 \
             ORDER BY at DESC LIMIT $4"
        );
        let bound = sqlx::query_scalar::<_, i64>(&sql).bind(action.as_str());
        let bound = match about {
            crate::Recent::Target(id) => bound.bind(id),
            crate::Recent::Address(ip) => bound.bind(ip.to_string()),
        };
        let times = bound
            .bind(micros(since))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("recent events by {query}: {e}")))?;
        times.into_iter().map(from_micros).collect()
    }

    async fn prune_audit(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(micros(before))
            .execute(&self.writer)
            .await
            .map_err(read_error)?;
        Ok(done.rows_affected())
    }
}

fn event_from_row(row: &DbRow) -> StoreResult<AuditEvent> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("audit event: {what}"));
    let text = |column: &str| -> StoreResult<String> { row.try_get(column).map_err(read_error) };
    let uuid =
        |column: &str| -> StoreResult<Option<Uuid>> { row.try_get(column).map_err(read_error) };
    let actor_type = text("actor_type")?;
    let target_type = text("target_type")?;
    let door: Option<String> = row.try_get("door").map_err(read_error)?;
    let remote_ip: Option<String> = row.try_get("remote_ip").map_err(read_error)?;
    let action = text("action")?;
    Ok(AuditEvent {
        id: row.try_get("id").map_err(read_error)?,
        time: from_micros(row.try_get("at").map_err(read_error)?)?,
        tenant_id: uuid("tenant_id")?.map(TenantId),
        actor: Actor::from_parts(&actor_type, uuid("actor_id")?).ok_or_else(|| corrupt("actor"))?,
        door: door
            .map(|d| Door::parse(&d).ok_or_else(|| corrupt("door")))
            .transpose()?,
        remote_ip: remote_ip
            .map(|ip| ip.parse().map_err(|_| corrupt("remote_ip")))
            .transpose()?,
        action: Action::parse(&action).ok_or_else(|| corrupt("action"))?,
        target: Target::from_parts(&target_type, uuid("target_id")?)
            .ok_or_else(|| corrupt("target"))?,
        changes: serde_json::from_str(&text("changes")?).map_err(|_| corrupt("changes"))?,
        details: serde_json::from_str(&text("details")?).map_err(|_| corrupt("details"))?,
        actor_user: uuid("actor_user_id")?.map(UserId),
        target_owner: uuid("target_owner_id")?.map(UserId),
    })
}
