//! Closing connections that hold a node's resources without using them: a client that
//! sends a request's head too slowly (or nothing at all), and a kept-alive connection
//! left idle.
//!
//! The two need different bounds: a head should arrive within seconds, while proxies
//! keep pools of idle upstream connections for a minute or more (nginx 60 s, Traefik
//! 90 s by default), and closing one under them costs their next request a failed
//! attempt. So each connection has a watchdog of its own instead
//! of hyper's header-read timer (which starts when a connection is ready for a request,
//! and so bounds idle connections by the same figure, and re-arms a timer for every
//! request).
//!
//! Nothing on the request path reads the clock: the stream counts reads that brought
//! bytes, the service counts requests begun and answered, and the watchdog samples
//! those counters a few times per deadline. A connection is in one of three phases:
//! serving a request (no deadline: the body has its own timeout, and a handler is never
//! cut off), waiting for a head whose first bytes have come (or, on a new connection,
//! for its first request) — the header-read deadline — or idle after an answer, with no
//! new bytes — the idle deadline. A phase that lasts past its deadline closes the
//! connection; it is noticed within a [`STEPS_PER_DEADLINE`]th of the shorter deadline.

use hyper::body::Incoming;
use hyper::Request;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How often, per deadline, the watchdog looks: a connection is closed at most this
/// fraction of the shorter deadline late.
const STEPS_PER_DEADLINE: u32 = 8;

/// How long a connection may wait in each phase.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// For a request's head, from its first bytes (or from the connection's accept).
    pub header_read: Duration,
    /// For a kept-alive connection with no request in flight and nothing sent.
    pub idle: Duration,
}

/// What the request path records: written by the connection's own task only (so plain
/// loads and stores suffice), read by its watchdog in the same task.
#[derive(Debug, Default)]
struct Activity {
    reads: AtomicU64,
    begun: AtomicU64,
    answered: AtomicU64,
    /// `reads` when the last request was answered; `NEVER` before the first.
    reads_at_answer: AtomicU64,
}

const NEVER: u64 = u64::MAX;

fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Waiting for the head of the request after the `answered`th.
    ReadingHead {
        answered: u64,
    },
    Idle {
        answered: u64,
    },
}

impl Activity {
    fn phase(&self) -> Phase {
        let answered = self.answered.load(Relaxed);
        if self.begun.load(Relaxed) != answered {
            return Phase::Serving;
        }
        let reads_at_answer = self.reads_at_answer.load(Relaxed);
        if reads_at_answer == NEVER || self.reads.load(Relaxed) != reads_at_answer {
            Phase::ReadingHead { answered }
        } else {
            Phase::Idle { answered }
        }
    }
}

/// The three parts of a watched connection: give `stream` and `service` to hyper, and
/// race the connection against `watchdog`.
pub fn watch<S>(
    stream: tokio::net::TcpStream,
    service: S,
    deadlines: Deadlines,
) -> (
    WatchedStream,
    WatchedService<S>,
    impl Future<Output = ()> + Send,
) {
    let activity = Arc::new(Activity {
        reads_at_answer: AtomicU64::new(NEVER),
        ..Activity::default()
    });
    let stream = WatchedStream {
        inner: stream,
        activity: activity.clone(),
    };
    let service = WatchedService {
        inner: service,
        activity: activity.clone(),
    };
    (stream, service, watchdog(activity, deadlines))
}

/// Resolves when the connection has stayed in one phase past that phase's deadline.
async fn watchdog(activity: Arc<Activity>, deadlines: Deadlines) {
    let step = (deadlines.header_read.min(deadlines.idle) / STEPS_PER_DEADLINE)
        .max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(step);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut current: Option<(Phase, Instant)> = None;
    loop {
        let now = ticks.tick().await;
        let phase = activity.phase();
        let since = match current {
            Some((seen, since)) if seen == phase => since,
            _ => {
                current = Some((phase, now));
                now
            }
        };
        let deadline = match phase {
            Phase::Serving => continue,
            Phase::ReadingHead { .. } => deadlines.header_read,
            Phase::Idle { .. } => deadlines.idle,
        };
        if now.duration_since(since) >= deadline {
            tracing::debug!(?phase, "closing a connection past its deadline");
            return;
        }
    }
}

/// A TCP stream that counts the reads that brought bytes.
pub struct WatchedStream {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            bump(&self.activity.reads);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A hyper service that counts the requests it begins and answers.
#[derive(Clone)]
pub struct WatchedService<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> hyper::service::Service<Request<Incoming>> for WatchedService<S>
where
    S: hyper::service::Service<Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        bump(&self.activity.begun);
        Answering {
            inner: self.inner.call(request),
            activity: self.activity.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being served; counted as answered when its response is ready.
    pub struct Answering<F> {
        #[pin]
        inner: F,
        activity: Arc<Activity>,
    }
}

impl<F: Future> Future for Answering<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        let activity = &**this.activity;
        activity
            .reads_at_answer
            .store(activity.reads.load(Relaxed), Relaxed);
        bump(&activity.answered);
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_counters() {
        let activity = Activity {
            reads_at_answer: AtomicU64::new(NEVER),
            ..Activity::default()
        };
        assert_eq!(activity.phase(), Phase::ReadingHead { answered: 0 });
        bump(&activity.reads);
        bump(&activity.begun);
        assert_eq!(activity.phase(), Phase::Serving);
        bump(&activity.reads);
        activity.reads_at_answer.store(2, Relaxed);
        bump(&activity.answered);
        assert_eq!(activity.phase(), Phase::Idle { answered: 1 });
        bump(&activity.reads);
        assert_eq!(activity.phase(), Phase::ReadingHead { answered: 1 });
    }
}
