//! Every door's credential reading: `Authorization`, the key headers, the W3IPFS pair
//! and Octopus's query string, from arbitrary header values and URIs.
#![no_main]

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use keyward_server::auth::{
    credential_from_headers, credential_from_query, pair_from_headers, parse_authorization,
};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 7] = [
    "authorization",
    "x-api-key",
    "x-octopus-apikey",
    "pinning_api_key",
    "pinning_secret_key",
    "pinning-api-key",
    "pinning-secret-key",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_authorization(text);
        if let Ok(uri) = format!("/api/users/me?{text}").parse::<Uri>() {
            let _ = credential_from_query(&uri);
        }
    }
    // Header values from the input, a byte choosing each one's name.
    let mut headers = HeaderMap::new();
    for chunk in data.split(|b| *b == b'\n') {
        let Some((choice, value)) = chunk.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[*choice as usize % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let _ = credential_from_headers(&headers);
    let _ = pair_from_headers(&headers);
});
