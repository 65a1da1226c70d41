//! Request bodies: JSON whatever the `Content-Type` (several vendors' clients send none),
//! bounded in size, with the parser's own reason on failure.

use crate::error::Failure;
use axum::body::{Body, Bytes, HttpBody};
use serde::Deserialize;

/// The largest body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Failure> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::InvalidJson(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| Failure::InvalidJson(format!("invalid JSON: {e}")))
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`], and one that does not
/// arrive within the connection's body-read timeout.
///
/// A small body arrives in one frame, in the same read as the head: that frame is the
/// answer, taken without a timer or a buffer to collect into (this is on the
/// verification hot path). Anything longer, or later, is gathered frame by frame under
/// the deadline, and refused as soon as it is too long.
pub async fn read_body(mut body: Body) -> Result<Bytes, Failure> {
    if body
        .size_hint()
        .lower()
        .try_into()
        .map_or(true, |lower: usize| lower > MAX_BODY_BYTES)
    {
        return Err(Failure::PayloadTooLarge);
    }
    let first = match ready_now(next_data(&mut body)) {
        Some(first) => first?,
        None => return within_deadline(gather(body, None)).await,
    };
    if body.is_end_stream() {
        return Ok(first.unwrap_or_default());
    }
    within_deadline(gather(body, first)).await
}

/// The rest of a body after `first`.
async fn gather(mut body: Body, first: Option<Bytes>) -> Result<Bytes, Failure> {
    let mut whole = Vec::from(first.unwrap_or_default());
    while let Some(data) = next_data(&mut body).await? {
        if whole.len() + data.len() > MAX_BODY_BYTES {
            return Err(Failure::PayloadTooLarge);
        }
        whole.extend_from_slice(&data);
    }
    Ok(Bytes::from(whole))
}

async fn within_deadline(
    reading: impl std::future::Future<Output = Result<Bytes, Failure>>,
) -> Result<Bytes, Failure> {
    match crate::connection::body_read_timeout() {
        Some(limit) => tokio::time::timeout(limit, reading)
            .await
            .unwrap_or(Err(Failure::RequestTimeout)),
        None => reading.await,
    }
}

/// The output of a future that is ready without waiting, else `None` (and the future,
/// which only polled the body, is dropped).
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// The next data frame (trailers are skipped), or `None` at the end of the body.
async fn next_data(body: &mut Body) -> Result<Option<Bytes>, Failure> {
    loop {
        let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await
        else {
            return Ok(None);
        };
        let frame = frame
            .map_err(|e| Failure::BadRequest(format!("the request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > MAX_BODY_BYTES {
                return Err(Failure::PayloadTooLarge);
            }
            return Ok(Some(data));
        }
    }
}
