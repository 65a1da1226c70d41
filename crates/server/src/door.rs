//! What every door shares: the extractors that read a request's caller, JSON body, path
//! and query string, each refusing in the door's own error shape. A door names itself
//! and its error type once ([`DoorShape`]) and then only parses and renders.

use crate::auth::{caller, credential_from_query, pair_from_headers};
use crate::body::{parse_json, read_body};
use crate::error::Failure;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use keyward_app::Caller;
use keyward_core::Door;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A door's identity and error shape, for the shared extractors.
pub trait DoorShape: Send + Sync + 'static {
    const DOOR: Door;
    /// Renders every refusal in the door's vendor's shape.
    type Error: From<Failure> + IntoResponse + Send;
    /// What a request that carries no credential at all is told.
    const NO_CREDENTIAL: &'static str;
    /// Where this door's clients put credentials besides the headers every door reads.
    const ALSO: Also = Also::Nothing;
}

/// Credentials a door reads beyond `Authorization`, `X-API-Key` and `X-Octopus-ApiKey`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Also {
    Nothing,
    /// A key + secret pair in headers, read before anything else (W3IPFS).
    PairFirst,
    /// A key in the query string, read when no header carries one (Octopus's `?apikey=`).
    QueryKey,
}

/// The authenticated caller of a door.
pub struct Authed<D>(pub Caller, pub PhantomData<D>);

impl<D: DoorShape> FromRequestParts<AppState> for Authed<D> {
    type Rejection = D::Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, D::Error> {
        let principal = match authenticate::<D>(parts, app).await {
            Ok(principal) => principal,
            Err(failure) => return Err(failure.into()),
        };
        Ok(Authed(
            crate::auth::through(app, &parts.headers, D::DOOR, principal),
            PhantomData,
        ))
    }
}

async fn authenticate<D: DoorShape>(
    parts: &Parts,
    app: &AppState,
) -> Result<keyward_core::Principal, Failure> {
    let client = || crate::auth::client_address(app, &parts.headers);
    if D::ALSO == Also::PairFirst {
        if let Some(pair) = pair_from_headers(&parts.headers)? {
            return Ok(app.authenticate(pair, &client).await?);
        }
    }
    if let Some(principal) = caller(app, &parts.headers).await? {
        return Ok(principal);
    }
    if D::ALSO == Also::QueryKey {
        if let Some(credential) = credential_from_query(&parts.uri) {
            return Ok(app.authenticate(credential, &client).await?);
        }
    }
    Err(Failure::Unauthorized(D::NO_CREDENTIAL.into()))
}

/// A JSON body, whatever the `Content-Type` (several vendors' clients send none).
pub struct Body<D, T>(pub T, pub PhantomData<D>);

impl<D: DoorShape, S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<D, T> {
    type Rejection = D::Error;

    async fn from_request(request: Request, _: &S) -> Result<Self, D::Error> {
        let bytes = read_body(request.into_body()).await?;
        Ok(Body(parse_json(&bytes)?, PhantomData))
    }
}

/// Percent-decoded path parameters.
pub struct Params<D, T>(pub T, pub PhantomData<D>);

impl<D: DoorShape, S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S>
    for Params<D, T>
{
    type Rejection = D::Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, D::Error> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(Params(params, PhantomData)),
            Err(e) => Err(Failure::BadRequest(format!("invalid path: {}", e.body_text())).into()),
        }
    }
}

/// A query string.
pub struct QueryOf<D, T>(pub T, pub PhantomData<D>);

impl<D: DoorShape, S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryOf<D, T> {
    type Rejection = D::Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, D::Error> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(QueryOf(query, PhantomData)),
            Err(e) => {
                Err(Failure::BadRequest(format!("invalid query string: {}", e.body_text())).into())
            }
        }
    }
}
