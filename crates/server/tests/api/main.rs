//! Keyward's HTTP suite, one binary (one link, one process start for all of it): every
//! test starts the real server on a random loopback port over a store of its own.
//! `KEYWARD_TEST_BACKEND=postgres` runs the same tests with PostgreSQL behind the server.

mod support;

mod analytics;
mod audit;
mod auth;
mod bad_input;
mod client_layer;
mod concurrency;
mod console;
mod gateway;
mod hardening;
mod jsc8;
mod keys;
mod limits;
mod macrometa;
mod nodes;
mod octopus;
mod openapi;
mod permissions;
mod readme_rust;
mod redis_limits;
mod refusals;
mod sdks;
mod secrets;
mod seed_v0;
mod smoke;
mod tenants;
mod w3ipfs;
