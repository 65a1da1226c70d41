//! The pinning and NFT routes, as resources the scopes protect. Keyward manages keys and
//! stores no content: each route first asks the core whether the caller holds its
//! scope, then answers from what Keyward holds, which is no pins and no NFTs. Routes
//! that would store content answer 501 once the scope check has passed.

use super::scopes::permission;
use super::{W3Result, W3};
use crate::door::{Authed, Params, QueryOf};
use crate::error::Failure;
use axum::Json;
use keyward_core::Principal;
use serde::Deserialize;
use serde_json::{json, Value};

/// The listing parameters W3IPFS documents for pins and NFTs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    // Parsed so that a non-number is refused; with nothing stored there is nothing to page.
    #[allow(dead_code)]
    offset: Option<u64>,
    #[allow(dead_code)]
    limit: Option<u64>,
    pinned: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

impl ListQuery {
    /// Refuses values outside the documented options.
    fn check(&self) -> Result<(), Failure> {
        one_of("pinned", self.pinned.as_deref(), &["all", "true", "false"])?;
        one_of(
            "sortBy",
            self.sort_by.as_deref(),
            &["created_at", "size", "name"],
        )?;
        one_of("sortOrder", self.sort_order.as_deref(), &["ASC", "DESC"])
    }
}

fn one_of(name: &str, value: Option<&str>, options: &[&str]) -> Result<(), Failure> {
    match value {
        Some(v) if !options.contains(&v) => Err(Failure::BadRequest(format!(
            "'{v}' is not a valid {name}: use one of {}",
            options.join(", ")
        ))),
        _ => Ok(()),
    }
}

fn guard(principal: &Principal, group: &str, name: &str) -> Result<(), Failure> {
    let permission = keyward_core::Permission::parse(&permission(group, name))?;
    Ok(principal.require(&permission)?)
}

/// `GET /api/pinning/pins/` (scope `data.pin_list`).
pub async fn list_pins(
    Authed(principal, _): Authed<W3>,
    QueryOf(query, _): QueryOf<W3, ListQuery>,
) -> W3Result<Json<Value>> {
    guard(&principal, "data", "pin_list")?;
    query.check()?;
    Ok(Json(json!({
        "data": { "totals": { "files": 0, "size": 0 }, "pins": [] },
        "status": "success",
    })))
}

/// `GET /api/pinning/{pinId}` (scope `data.pin_list`).
pub async fn get_pin(
    Authed(principal, _): Authed<W3>,
    Params(_, _): Params<W3, String>,
) -> W3Result<Json<Value>> {
    guard(&principal, "data", "pin_list")?;
    Err(Failure::NoSuch("pin".into()).into())
}

/// `DELETE /api/pinning/unpin/{pinId}` (scope `pinning.unpin`).
pub async fn unpin(
    Authed(principal, _): Authed<W3>,
    Params(_, _): Params<W3, String>,
) -> W3Result<Json<Value>> {
    guard(&principal, "pinning", "unpin")?;
    Err(Failure::NoSuch("pin".into()).into())
}

/// `POST /api/pinning/` (scope `pinning.pin_file_to_ipfs`).
pub async fn pin_file(Authed(principal, _): Authed<W3>) -> W3Result<Json<Value>> {
    guard(&principal, "pinning", "pin_file_to_ipfs")?;
    Err(stores_no_content())
}

/// `POST /api/pinning/pinByHash` (scope `pinning.pin_by_hash`).
pub async fn pin_by_hash(Authed(principal, _): Authed<W3>) -> W3Result<Json<Value>> {
    guard(&principal, "pinning", "pin_by_hash")?;
    Err(stores_no_content())
}

/// `GET /api/nft/nfts/` (scope `data.nft_list`).
pub async fn list_nfts(
    Authed(principal, _): Authed<W3>,
    QueryOf(query, _): QueryOf<W3, ListQuery>,
) -> W3Result<Json<Value>> {
    guard(&principal, "data", "nft_list")?;
    query.check()?;
    Ok(Json(json!({
        "data": { "totals": { "files": 0, "size": 0 }, "nfts": [] },
        "status": "success",
    })))
}

/// `GET /api/nft/{nftId}` (scope `data.nft_list`).
pub async fn get_nft(
    Authed(principal, _): Authed<W3>,
    Params(_, _): Params<W3, String>,
) -> W3Result<Json<Value>> {
    guard(&principal, "data", "nft_list")?;
    Err(Failure::NoSuch("NFT".into()).into())
}

/// `DELETE /api/nft/{nftId}` (scope `pin_nft.unpin_nft`).
pub async fn unpin_nft(
    Authed(principal, _): Authed<W3>,
    Params(_, _): Params<W3, String>,
) -> W3Result<Json<Value>> {
    guard(&principal, "pin_nft", "unpin_nft")?;
    Err(Failure::NoSuch("NFT".into()).into())
}

/// `POST /api/nft/` (scope `pin_nft.pin_nft_to_ipfs`).
pub async fn create_nft(Authed(principal, _): Authed<W3>) -> W3Result<Json<Value>> {
    guard(&principal, "pin_nft", "pin_nft_to_ipfs")?;
    Err(stores_no_content())
}

fn stores_no_content() -> super::W3Error {
    super::W3Error(Failure::NotImplemented(
        "Keyward manages API keys and stores no content: this credential may pin, \
         but pinning is served by the pinning service itself"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pinned: Option<&str>, sort_by: Option<&str>, sort_order: Option<&str>) -> ListQuery {
        ListQuery {
            offset: None,
            limit: None,
            pinned: pinned.map(String::from),
            sort_by: sort_by.map(String::from),
            sort_order: sort_order.map(String::from),
        }
    }

    #[test]
    fn listing_options_are_checked() {
        assert!(query(None, None, None).check().is_ok());
        assert!(query(Some("true"), Some("name"), Some("ASC"))
            .check()
            .is_ok());
        let err = query(Some("maybe"), None, None).check().unwrap_err();
        assert!(err.message().contains("pinned"), "{err:?}");
        assert!(query(None, Some("cid"), None).check().is_err());
        assert!(query(None, None, Some("asc")).check().is_err());
    }
}
