//! `GET /v0/changes`: the caller's tenant's key and owner changes as server-sent events,
//! as this node hears them (every node's, in commit order), for services that cache
//! verifications (the Rust client's tower layer) and must drop them when a key is
//! revoked or changed.
//!
//! Events: `ready` once the stream follows changes (cache nothing verified before it),
//! `key` `{"key_id"}`, `owner` `{"owner_id"}` (every key of the owner), and `lost`
//! when changes may have been missed (drop everything cached), then `resumed`.

use crate::door::Authed;
use crate::error::ApiResult;
use crate::native::Native;
use crate::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use keyward_core::TenantId;
use keyward_store::{Change, ChangeEvent};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v0/changes", get(changes))
}

/// Changes as server-sent events (see the module's documentation for the events).
#[utoipa::path(
    get,
    path = "/v0/changes",
    tag = "verification",
    security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses(
        (status = 200, description = "A stream of `ready`, `key`, `owner`, `lost` and `resumed` events", content_type = "text/event-stream", body = String),
        crate::openapi::Refusals,
    )
)]
pub(crate) async fn changes(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let receiver = app.watch_changes(&caller)?;
    let watch = Watch {
        app,
        tenant: caller.tenant_id(),
        receiver,
        ready_sent: false,
    };
    let events = stream::unfold(watch, |mut watch| async move {
        let event = watch.next().await;
        Some((Ok(event), watch))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Watch {
    app: AppState,
    tenant: TenantId,
    receiver: broadcast::Receiver<ChangeEvent>,
    ready_sent: bool,
}

impl Watch {
    /// The next event for this watcher: another tenant's changes are skipped.
    async fn next(&mut self) -> Event {
        if !self.ready_sent {
            self.ready_sent = true;
            return Event::default().event("ready").data("{}");
        }
        loop {
            let change = match self.receiver.recv().await {
                Ok(ChangeEvent::Changed(change)) => change,
                Ok(ChangeEvent::Lost) | Err(RecvError::Lagged(_)) => {
                    return Event::default().event("lost").data("{}")
                }
                Ok(ChangeEvent::Resumed) => return Event::default().event("resumed").data("{}"),
                // The node is stopping: say so, as changes will go unheard.
                Err(RecvError::Closed) => return Event::default().event("lost").data("{}"),
            };
            match self.app.change_in_tenant(self.tenant, change).await {
                Ok(false) => continue,
                Ok(true) => return change_event(change),
                // Unsure whose change it is: the watcher must assume it missed one.
                Err(_) => return Event::default().event("lost").data("{}"),
            }
        }
    }
}

fn change_event(change: Change) -> Event {
    match change {
        Change::Key(id) => Event::default()
            .event("key")
            .data(format!("{{\"key_id\":\"{}\"}}", id.0)),
        Change::Owner(id) => Event::default()
            .event("owner")
            .data(format!("{{\"owner_id\":\"{}\"}}", id.0)),
    }
}
