//! The runtime's clock: what the protocol's `now: Time` means under tokio.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ids::Time;

/// A monotonic clock (tokio's, so tests with a paused clock control it) anchored to the wall
/// clock when created, so times of different processes are roughly comparable.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
    origin_time: Time,
}

impl Clock {
    /// A clock reading the wall-clock time now and counting monotonically from there.
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            origin: tokio::time::Instant::now(),
            origin_time: Time(since_epoch.as_millis() as u64),
        }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.origin_time + self.origin.elapsed()
    }

    /// The tokio instant at which this clock reads `time` (now, if `time` is in the past of
    /// the clock's origin).
    pub fn instant_at(&self, time: Time) -> tokio::time::Instant {
        self.origin + Duration::from_millis(time.0.saturating_sub(self.origin_time.0))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A random 64-bit number from the standard library's per-process random hash keys, the time
/// and a counter: good enough for incarnations and client ids, which need to be unique, not
/// unpredictable.
pub fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
