//! The open connections of the admission port: how many may be open, and which one gives way.
//!
//! Every accepted connection is registered until it closes. Past the cap, a new connection
//! takes the place of the one that has waited longest without a request in flight (shaking
//! hands, or idle between requests); when every connection is busy, the new one is closed at
//! once. So no number of idle or half-open connections can lock out the API server, whose
//! connections carry requests, and the process never runs out of file descriptors. Requests in
//! flight are never cut by this; slow ones are bounded by `--client-timeout`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What one connection is doing, shared by its task and the requests it carries.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since the registry's epoch when the last request ended (or the connection
    /// opened).
    last: AtomicU64,
    epoch: Instant,
    /// Told to close at once (evicted).
    pub evicted: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let activity =
            Self { in_flight: AtomicUsize::new(0), last: AtomicU64::new(0), epoch, evicted: Notify::new() };
        activity.touch();
        activity
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// A request started; the guard ends it.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }

    /// How long the connection has been without a request in flight, if it is.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The registry of open connections.
#[derive(Debug)]
pub struct Connections {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    evictions: AtomicU64,
    refusals: AtomicU64,
}

/// A registered connection: deregistered on drop.
#[derive(Debug)]
pub struct Registered {
    id: u64,
    /// Its activity.
    pub activity: Arc<Activity>,
    connections: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

impl Connections {
    /// A registry allowing `cap` connections at once.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            evictions: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, making room by evicting the longest-idle one when at the cap;
    /// `None` when every open connection has a request in flight (close the new one).
    pub fn register(self: &Arc<Self>) -> Option<Registered> {
        let mut open = self.lock();
        if open.len() >= self.cap {
            let idlest = open
                .iter()
                .filter_map(|(id, a)| a.idle_for().map(|idle| (idle, *id)))
                .max()
                .map(|(_, id)| id);
            match idlest.and_then(|id| open.remove(&id)) {
                Some(evicted) => {
                    evicted.evicted.notify_one();
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.refusals.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        open.insert(id, activity.clone());
        Some(Registered { id, activity, connections: self.clone() })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// Connections closed to make room, and new ones refused because all were busy, so far.
    pub fn evictions_and_refusals(&self) -> (u64, u64) {
        (self.evictions.load(Ordering::Relaxed), self.refusals.load(Ordering::Relaxed))
    }
}

/// Raises the soft limit of open files to the hard limit, and returns the connection cap that
/// fits under it: `wanted`, or fewer when the limit is lower, leaving room for the files and
/// sockets the process needs besides (API server watches, policy files, the metrics port).
pub fn cap_under_file_limit(wanted: usize) -> usize {
    const RESERVE: u64 = 128;
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = usize::try_from(soft.saturating_sub(RESERVE)).unwrap_or(usize::MAX).max(1);
    if fits < wanted {
        tracing::warn!(
            wanted,
            open_files = soft,
            cap = fits,
            "the open-files limit allows fewer connections than asked"
        );
    }
    wanted.min(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_longest_idle_connection_gives_way() {
        let c = Connections::new(2);
        let a = c.register().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let b = c.register().unwrap();
        let _busy = b.activity.begin();
        let third = c.register().unwrap();
        assert_eq!(c.open(), 2);
        assert_eq!(c.evictions_and_refusals(), (1, 0));
        // `a` was told to close and is no longer counted.
        assert!(a.activity.idle_for().is_some());
        drop(a);
        assert_eq!(c.open(), 2);
        // Now `b` is busy and `third` idle: the next takes `third`'s place.
        let fourth = c.register().unwrap();
        assert_eq!(c.open(), 2);
        drop((third, fourth));
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let c = Connections::new(1);
        let a = c.register().unwrap();
        let _busy = a.activity.begin();
        assert!(c.register().is_none());
        assert_eq!(c.evictions_and_refusals(), (0, 1));
        drop(_busy);
        assert!(c.register().is_some(), "idle again: it gives way");
    }

    #[test]
    fn idle_time_counts_from_the_last_request() {
        let c = Connections::new(4);
        let a = c.register().unwrap();
        let req = a.activity.begin();
        assert_eq!(a.activity.idle_for(), None);
        drop(req);
        assert!(a.activity.idle_for().unwrap() < Duration::from_secs(1));
    }
}
