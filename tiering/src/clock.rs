//! Time for every path that needs it (segment age, retention, sync intervals, leases, every
//! background loop's schedule) goes through [`Clock`]: now, sleep and intervals. Tests drive time
//! with [`ManualClock`], whose sleeps and intervals fire when the test advances it, instead of
//! sleeping.
//!
//! This is the one module allowed to read the system time or sleep on the runtime's timer
//! (`clippy.toml` disallows both elsewhere). The one real-time wait outside a clock is
//! [`real_sleep`], between retries of a request to another system: it waits for that system,
//! not for a schedule (and a fault wrapper's simulated slow request).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, oneshot};

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time in milliseconds since the Unix epoch, and of sleeps on it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
    /// Resolves once `ms` milliseconds of this clock's time have passed.
    fn sleep(&self, ms: u64) -> Sleep;
}

/// A ticker on a clock: [`Interval::tick`] resolves once per `period_ms`, the first time one
/// period after it was made. A tick that comes late is not made up for: the next is one period
/// after it (a loop that overran its period does not run twice in a row).
#[derive(Debug)]
pub struct Interval {
    clock: Arc<dyn Clock>,
    period_ms: u64,
    next_ms: i64,
}

impl Interval {
    pub fn new(clock: Arc<dyn Clock>, period_ms: u64) -> Self {
        let next_ms = clock.now_ms().saturating_add(period_ms as i64);
        Self { clock, period_ms, next_ms }
    }

    pub async fn tick(&mut self) {
        loop {
            let now = self.clock.now_ms();
            if now >= self.next_ms {
                self.next_ms = now.saturating_add(self.period_ms as i64);
                return;
            }
            self.clock.sleep((self.next_ms - now) as u64).await;
        }
    }

    pub fn period_ms(&self) -> u64 {
        self.period_ms
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[allow(clippy::disallowed_methods)] // the one place that reads the system time and the timer
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
    fn sleep(&self, ms: u64) -> Sleep {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

/// A real-time wait between retries of a request to another system (the object store), or a
/// fault wrapper's simulated slow request. Retries wait for that system to recover, so they use
/// real time even under a [`ManualClock`].
#[allow(clippy::disallowed_methods)]
pub async fn real_sleep(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await
}

/// A blocking real-time pause, for a thread of its own that paces IO (freeing a deleted
/// segment's blocks a step at a time: `local::reclaim`). Real time under a [`ManualClock`] too:
/// it paces the disk, not the log's schedule.
#[allow(clippy::disallowed_methods)]
pub fn real_pause(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms))
}

/// The system's wall-clock time in ns, for what is not on a schedule and must not follow a test's
/// manual clock: a random seed, a unique name, or a comparison with timestamps another system
/// wrote (an object's last-modified time in the bucket).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// A clock that moves only when told to: for tests of time-driven behaviour. Its sleeps fire when
/// [`ManualClock::advance`] or [`ManualClock::set`] moves it past their deadline.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
    /// Pending sleeps: deadline and the sender that wakes the sleeper.
    timers: Mutex<Vec<(i64, oneshot::Sender<()>)>>,
    /// Notified whenever a sleep starts, for [`ManualClock::until_sleeping`].
    sleeping: Notify,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<Self> {
        Arc::new(Self { now: AtomicI64::new(start_ms), ..Default::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(i64, oneshot::Sender<()>)>> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock forward by `ms` and wakes every sleep whose deadline has come.
    pub fn advance(&self, ms: i64) {
        let mut timers = self.lock();
        let now = self.now.fetch_add(ms, Ordering::SeqCst) + ms;
        fire(&mut timers, now);
    }

    /// Sets the clock and wakes every sleep whose deadline has come.
    pub fn set(&self, ms: i64) {
        let mut timers = self.lock();
        self.now.store(ms, Ordering::SeqCst);
        fire(&mut timers, ms);
    }

    /// Sleeps started and not yet woken (or dropped).
    pub fn sleepers(&self) -> usize {
        let mut timers = self.lock();
        timers.retain(|(_, tx)| !tx.is_closed());
        timers.len()
    }

    /// Resolves once at least `n` sleeps are pending: after advancing the clock, a test waits with
    /// this until the background loops it woke have done their work and sleep again.
    pub async fn until_sleeping(&self, n: usize) {
        loop {
            let notified = self.sleeping.notified();
            if self.sleepers() >= n {
                return;
            }
            notified.await;
        }
    }
}

impl ManualClock {
    /// Resolves once a sleep due at `deadline_ms` is pending: a test knows that the request or
    /// task it started is now waiting on this clock (its deadline names it).
    pub async fn until_deadline(&self, deadline_ms: i64) {
        loop {
            let notified = self.sleeping.notified();
            if self.lock().iter().any(|(d, tx)| *d == deadline_ms && !tx.is_closed()) {
                return;
            }
            notified.await;
        }
    }
}

fn fire(timers: &mut Vec<(i64, oneshot::Sender<()>)>, now: i64) {
    let mut i = 0;
    while i < timers.len() {
        if timers[i].0 <= now {
            let (_, tx) = timers.swap_remove(i);
            let _ = tx.send(());
        } else {
            i += 1;
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep(&self, ms: u64) -> Sleep {
        let rx = {
            let mut timers = self.lock();
            let deadline = self.now.load(Ordering::SeqCst).saturating_add(ms as i64);
            if ms == 0 {
                return Box::pin(std::future::ready(()));
            }
            let (tx, rx) = oneshot::channel();
            timers.push((deadline, tx));
            rx
        };
        self.sleeping.notify_waiters();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// The clock used when none is injected.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleeps_and_intervals_fire_when_advanced() {
        let clock = ManualClock::new(1000);
        let dynclock: Arc<dyn Clock> = clock.clone();
        let mut iv = Interval::new(dynclock.clone(), 100);
        let ticks = Arc::new(AtomicI64::new(0));
        let t = ticks.clone();
        let task = tokio::spawn(async move {
            for _ in 0..3 {
                iv.tick().await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        clock.until_sleeping(1).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 0);
        clock.advance(99);
        assert_eq!(clock.sleepers(), 1, "not due yet");
        clock.advance(1);
        clock.until_sleeping(1).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1);
        // A late tick is not made up for: one tick, then the next a period later.
        clock.advance(1000);
        clock.until_sleeping(1).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 2);
        clock.advance(100);
        task.await.unwrap();
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        // A sleep of zero is ready at once.
        dynclock.sleep(0).await;
    }
}
