//! How quickly liveness signals travel: the round trips of a replica's pings to the front-end
//! and the gaps between the pings the front-end receives (issue 13). A failure detector is
//! only as good as the delay of its signals under load; these measures say what that delay
//! is, so that `dead_after` can be judged against it ([`crate::runtime::NodeReport`]).

use std::collections::VecDeque;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::ids::Time;

/// The most pings a replica remembers sending while it waits for their answers.
pub const MAX_PINGS_AWAITING_ANSWER: usize = 64;

/// The longest time recorded, in milliseconds; longer ones count as this.
const MAX_RECORDED_MILLIS: u64 = 3_600_000;

/// A distribution of durations at millisecond resolution (the protocol's [`Time`]), with two
/// significant digits.
#[derive(Clone, Debug)]
pub struct Durations {
    histogram: Histogram<u64>,
}

impl PartialEq for Durations {
    fn eq(&self, other: &Self) -> bool {
        self.histogram == other.histogram
    }
}

impl Eq for Durations {}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            histogram: Histogram::new_with_bounds(1, MAX_RECORDED_MILLIS, 2)
                .expect("constant bounds are valid"),
        }
    }
}

impl Durations {
    /// Records one duration (saturating at an hour).
    pub fn record(&mut self, duration: Duration) {
        let millis = (duration.as_millis() as u64).clamp(0, MAX_RECORDED_MILLIS);
        // A zero is recorded as the lowest value; the bounds above make saturation exact.
        self.histogram.saturating_record(millis.max(1));
    }

    /// Adds what `other` recorded to this record (the round trips of several replicas).
    pub fn add(&mut self, other: &Durations) {
        // Both have the same bounds, so nothing is out of range.
        let _ = self.histogram.add(&other.histogram);
    }

    /// What was recorded here and not in `earlier`, an earlier copy of the same record: the
    /// durations of one phase of a run. Empty if `earlier` is not an earlier copy.
    pub fn since(&self, earlier: &Durations) -> Durations {
        let mut phase = self.clone();
        if phase.histogram.subtract(&earlier.histogram).is_err() {
            phase.histogram.reset();
        }
        phase
    }

    /// The median, 99th percentile and maximum of what was recorded.
    pub fn summary(&self) -> DurationSummary {
        let at = |q: f64| Duration::from_millis(self.histogram.value_at_quantile(q));
        DurationSummary {
            samples: self.histogram.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: Duration::from_millis(self.histogram.max()),
        }
    }
}

/// The shape of a [`Durations`]. Values below a millisecond count as one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurationSummary {
    /// How many durations were recorded.
    pub samples: u64,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The longest.
    pub max: Duration,
}

impl std::fmt::Display for DurationSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} ms, p99 {} ms, max {} ms ({} samples)",
            self.p50.as_millis(),
            self.p99.as_millis(),
            self.max.as_millis(),
            self.samples
        )
    }
}

/// A replica's pings awaiting the front-end's answer, and the round trips of those answered.
#[derive(Clone, Debug, Default)]
pub(crate) struct PingRoundTrips {
    next: u64,
    awaiting: VecDeque<(u64, Time)>,
    round_trips: Durations,
}

impl PingRoundTrips {
    /// The number of a ping sent at `now`.
    pub(crate) fn sent(&mut self, now: Time) -> u64 {
        let number = self.next;
        self.next = self.next.wrapping_add(1);
        if self.awaiting.len() >= MAX_PINGS_AWAITING_ANSWER {
            self.awaiting.pop_front();
        }
        self.awaiting.push_back((number, now));
        number
    }

    /// The front-end answered ping `number` at `now`: its round trip is recorded, and the
    /// pings sent before it are taken as unanswered. An answer to a ping not awaited (a
    /// duplicate, a forgotten one) is ignored.
    pub(crate) fn answered(&mut self, now: Time, number: u64) {
        let Some(at) = self.awaiting.iter().position(|(n, _)| *n == number) else {
            return;
        };
        let (_, sent) = self.awaiting[at];
        self.awaiting.drain(..=at);
        self.round_trips.record(now.saturating_since(sent));
    }

    /// The round trips measured so far.
    pub(crate) fn round_trips(&self) -> &Durations {
        &self.round_trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_are_measured_for_answered_pings_only() {
        let mut pings = PingRoundTrips::default();
        let first = pings.sent(Time(10));
        let second = pings.sent(Time(20));
        pings.answered(Time(27), second);
        pings.answered(Time(30), first); // taken as unanswered when the later one was
        pings.answered(Time(31), 999);
        let summary = pings.round_trips().summary();
        assert_eq!(summary.samples, 1);
        assert_eq!(summary.max, Duration::from_millis(7));
    }

    #[test]
    fn durations_saturate_and_summarise() {
        let mut durations = Durations::default();
        for ms in 1..=100 {
            durations.record(Duration::from_millis(ms));
        }
        durations.record(Duration::from_secs(100_000));
        let summary = durations.summary();
        assert_eq!(summary.samples, 101);
        assert_eq!(summary.p50, Duration::from_millis(51));
        assert!(summary.max >= Duration::from_millis(MAX_RECORDED_MILLIS * 99 / 100));
        let earlier = durations.clone();
        durations.record(Duration::from_millis(7));
        let phase = durations.since(&earlier);
        assert_eq!(phase.summary().samples, 1);
        assert_eq!(phase.summary().max, Duration::from_millis(7));
        assert_eq!(
            earlier.since(&durations).summary().samples,
            0,
            "not an earlier copy"
        );
    }
}
