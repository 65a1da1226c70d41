//! One module per vendor dialect. A dialect only translates its vendor's paths, JSON and
//! error shapes onto [`crate::service::Keyward`]; it decides nothing on its own, so a key
//! created through any door works through every door.

use crate::AppState;
use axum::Router;

pub mod macrometa;

/// The routes of every dialect, merged beside the native API.
pub fn routes() -> Router<AppState> {
    Router::new().merge(macrometa::routes())
}
