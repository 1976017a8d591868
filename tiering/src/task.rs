//! One shape for background work: a task that takes messages and timer ticks (on the engine's
//! [`Clock`]), keeps its error state, and drains on close (SlateDB's dispatcher, mini-redis's
//! shutdown). The uploader, the compactor, the replica poller and the writer's ticker are each a
//! [`Worker`] run by [`spawn`]; whoever starts one keeps the [`Task`] and closes it, and `close`
//! returns only once the task has ended, so none outlives what started it.
//!
//! The writer task of a disk (group commit) has the same shape on a dedicated OS thread, since
//! its work is blocking file IO: see [`crate::local::group_commit`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::{Clock, Interval};
use crate::error::Result;

/// The work of a background task.
pub trait Worker: Send + 'static {
    type Msg: Send + 'static;
    /// Called once per period of the task's clock.
    fn tick(&mut self) -> impl Future<Output = Result<()>> + Send;
    /// Called for each message sent to the task.
    fn message(&mut self, msg: Self::Msg) -> impl Future<Output = Result<()>> + Send;
    /// Called once after the task was told to stop and its queued messages were handled: finish
    /// or cancel work still in flight.
    fn drain(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What a task reports about itself.
#[derive(Debug, Default)]
pub struct TaskStatus {
    last_error: Mutex<Option<String>>,
    failures: AtomicU64,
    runs: AtomicU64,
}

impl TaskStatus {
    fn record(&self, name: &'static str, r: Result<()>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(()) => *last = None,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::stats::TASK_FAILURES, "task" => name).increment(1);
                tracing::warn!(task = name, error = %e, "background work failed; the next run retries");
                *last = Some(e.to_string());
            }
        }
    }

    /// The error of the last run, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Runs (ticks and messages) so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
    /// Runs that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A running background task.
#[derive(Debug)]
pub struct Task<M> {
    name: &'static str,
    tx: mpsc::UnboundedSender<M>,
    stop: watch::Sender<bool>,
    handle: Mutex<Option<JoinHandle<()>>>,
    status: Arc<TaskStatus>,
}

/// Starts `worker` on the current tokio runtime: a tick every `period_ms` of `clock`, and a
/// message whenever one is sent.
pub fn spawn<W: Worker>(name: &'static str, clock: Arc<dyn Clock>, period_ms: u64, mut worker: W) -> Task<W::Msg> {
    let (tx, mut rx) = mpsc::unbounded_channel::<W::Msg>();
    let (stop, mut stopped) = watch::channel(false);
    let status = Arc::new(TaskStatus::default());
    let st = status.clone();
    let handle = tokio::spawn(async move {
        let mut interval = Interval::new(clock, period_ms.max(1));
        loop {
            let r = tokio::select! {
                biased;
                _ = stopped.changed() => break,
                msg = rx.recv() => match msg {
                    Some(m) => worker.message(m).await,
                    None => break,
                },
                _ = interval.tick() => worker.tick().await,
            };
            st.record(name, r);
        }
        rx.close();
        while let Ok(m) = rx.try_recv() {
            let r = worker.message(m).await;
            st.record(name, r);
        }
        worker.drain().await;
        tracing::debug!(task = name, "background task stopped");
    });
    Task { name, tx, stop, handle: Mutex::new(Some(handle)), status }
}

impl<M> Task<M> {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Queues a message; false once the task has stopped.
    pub fn send(&self, msg: M) -> bool {
        self.tx.send(msg).is_ok()
    }

    pub fn status(&self) -> &TaskStatus {
        &self.status
    }

    /// Tells the task to stop, and returns once it has: the run in progress finishes, queued
    /// messages are handled, then the worker drains. Closing twice is fine.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle
            && let Err(e) = h.await
        {
            tracing::error!(task = self.name, error = %e, "background task panicked");
        }
    }
}

impl<M> Drop for Task<M> {
    /// A task dropped without `close` is told to stop; it ends after its current run.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::error::Error;

    struct Counter {
        ticks: Arc<AtomicU64>,
        msgs: Arc<Mutex<Vec<u32>>>,
        drained: Arc<AtomicU64>,
    }

    impl Worker for Counter {
        type Msg = u32;
        async fn tick(&mut self) -> Result<()> {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            Err(Error::Conflict { reason: "tick fails".into() })
        }
        async fn message(&mut self, msg: u32) -> Result<()> {
            self.msgs.lock().unwrap().push(msg);
            Ok(())
        }
        async fn drain(&mut self) {
            self.drained.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn ticks_on_the_clock_keeps_its_error_and_drains_on_close() {
        let clock = ManualClock::new(0);
        let (ticks, msgs, drained) = (Arc::default(), Arc::default(), Arc::default());
        let w = Counter { ticks: Arc::clone(&ticks), msgs: Arc::clone(&msgs), drained: Arc::clone(&drained) };
        let task = spawn("test", clock.clone(), 1000, w);
        clock.until_sleeping(1).await;
        clock.advance(1000);
        while task.status().runs() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(ticks.load(Ordering::SeqCst), 1);
        assert!(task.status().last_error().unwrap().contains("tick fails"));
        assert!(task.send(1));
        while task.status().runs() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(task.status().last_error(), None, "a run that works clears the error");
        task.close().await;
        assert_eq!(drained.load(Ordering::SeqCst), 1);
        assert_eq!(*msgs.lock().unwrap(), [1]);
        assert!(!task.send(2), "a closed task takes no messages");
        task.close().await;
    }
}
