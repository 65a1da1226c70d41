//! One module per vendor dialect, each merged beside the native API in `lib.rs`. A
//! dialect only translates its vendor's paths, JSON and error shapes onto the
//! application layer ([`keyward_app::Keyward`]); it decides nothing on its own, so a key
//! created through any door works through every door.

pub mod macrometa;
pub mod octopus;
pub mod w3ipfs;
