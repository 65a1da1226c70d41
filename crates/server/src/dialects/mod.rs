//! One module per vendor dialect. A dialect only translates its vendor's paths, JSON and
//! error shapes onto [`crate::service::Keyward`]; it decides nothing on its own, so a key
//! created through any door works through every door.

pub mod macrometa;
pub mod octopus;
pub mod w3ipfs;

use crate::AppState;
use axum::Router;

/// The routes of every dialect, merged beside the native API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(octopus::routes())
        .merge(w3ipfs::routes())
        .merge(macrometa::routes())
}
