//! Password hashing and checking, on a few threads of their own with a bounded queue.
//!
//! Argon2id takes 19 MiB and tens of milliseconds of CPU per password. On tokio's
//! blocking pool, 100 concurrent wrong-password logins ran 100 of them at once (5.7 GB
//! of RSS), and every blocking thread's malloc arena kept its 19 MiB afterwards. Here
//! at most one runs per worker thread, the threads are few and long-lived (so are their
//! arenas), and a request that finds the queue full is told to come back later
//! ([`AppError::Busy`]) instead of being queued without bound.

use crate::{AppError, AppResult};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub struct PasswordPool {
    jobs: SyncSender<Job>,
}

/// Seconds a refused request is told to wait: a queue's worth of work at the least.
const RETRY_AFTER_SECONDS: u32 = 1;

impl PasswordPool {
    /// `workers` threads (the cores the machine has, by default) and room for `queued`
    /// passwords waiting for one.
    pub fn new(workers: usize, queued: usize) -> Self {
        let (jobs, waiting) = sync_channel::<Job>(queued);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..workers.max(1) {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("keyward-password-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for a job, not while running it.
                    let job = waiting.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        // Every sender is gone: the application was dropped.
                        Err(_) => return,
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(%err, "cannot start a password worker thread");
            }
        }
        PasswordPool { jobs }
    }

    /// Sized to the machine: a worker per core, and eight passwords queued per worker.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores, cores * 8)
    }

    /// Runs `work` on a worker, or refuses at once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (its client hung up): nobody to tell.
            let _ = done.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => result
                .await
                .map_err(|_| AppError::Internal("a password worker stopped".into())),
            Err(TrySendError::Full(_)) => Err(AppError::Busy {
                retry_after_seconds: RETRY_AFTER_SECONDS,
            }),
            Err(TrySendError::Disconnected(_)) => {
                Err(AppError::Internal("no password worker is running".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn work_beyond_the_workers_and_the_queue_is_refused_not_queued() {
        let pool = Arc::new(PasswordPool::new(1, 2));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let mut running = Vec::new();
        // One on the worker and two queued: each waits until released.
        for _ in 0..3 {
            let pool = pool.clone();
            let released = released.clone();
            running.push(tokio::spawn(async move {
                pool.run(move || released.lock().unwrap().recv().is_ok())
                    .await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused = pool.run(|| true).await;
        assert!(matches!(refused, Err(AppError::Busy { .. })), "{refused:?}");
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        for task in running {
            assert_eq!(task.await.unwrap(), Ok(true));
        }
        assert_eq!(
            pool.run(|| 7).await,
            Ok(7),
            "room again once the queue drained"
        );
    }
}
