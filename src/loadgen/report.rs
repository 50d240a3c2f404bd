//! What a run measured and found: the report, its figures, and how the failover figures are
//! measured.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{RuntimeFlavor, TransportKind};

/// The window around a kill in which the longest gap between acknowledgements is sought.
const GAP_BEFORE: Duration = Duration::from_secs(1);

const GAP_AFTER: Duration = Duration::from_secs(5);

/// The largest latency the histogram holds exactly (larger ones are recorded as this).
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// The options a report was made with, as figures.
#[derive(Clone, Debug, Serialize)]
pub struct RunSettings {
    /// The network.
    pub transport: TransportKind,
    /// The runtime it ran on (`None`: another flavour).
    pub runtime: Option<RuntimeFlavor>,
    /// Replicas.
    pub replicas: usize,
    /// Clients.
    pub clients: usize,
    /// Load duration, seconds.
    pub duration_s: f64,
    /// Kill interval, seconds.
    pub kill_primary_every_s: Option<f64>,
    /// The replicas' storage: `memory-only`, or the fsync policy of their data directories
    /// (`always`, `batch:10ms`, `never`).
    pub storage: String,
    /// The host's 1, 5 and 15 minute load averages when the run started (Linux only).
    pub load_average_at_start: Option<[f64; 3]>,
    /// The same when it ended.
    pub load_average_at_end: Option<[f64; 3]>,
    /// What the clients drove: a cluster in this process, processes loadgen started, or a
    /// deployment's registry.
    pub deployment: String,
}

/// Latency of acknowledged orders, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Acknowledged orders measured.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// One kill of the primary and what followed.
#[derive(Clone, Debug, Serialize)]
pub struct Kill {
    /// When, from the start of the load, seconds.
    pub at_s: f64,
    /// How long it waited past its schedule for an active view with a backup, ms.
    pub waited_ms: f64,
    /// The primary killed.
    pub victim: String,
    /// The number of the view it was primary of.
    pub view: u64,
    /// How many members that view had.
    pub view_members: usize,
    /// The replica started in its place.
    pub replacement: String,
    /// From the kill to the first acknowledgement completing after it, ms (`None`: none did).
    /// Once the book is full ([`LoadReport::book_full_from_s`]), refusals as full count too.
    pub time_to_first_ack_ms: Option<f64>,
    /// The longest interval between consecutive acknowledgements spanning the kill, or starting
    /// in `[kill - 1 s, kill + 5 s)` after the previous kill and ending by the next, ms.
    pub longest_gap_ms: Option<f64>,
    /// Where that interval began, relative to the kill, ms (negative: before it).
    pub longest_gap_from_ms: Option<f64>,
}

/// The count of every order the clients placed, against the cluster's histories.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Check {
    /// Whether every postcode's history was read (otherwise `lost` means nothing).
    pub complete: bool,
    /// Whether the active view's members converged (equal digests) after the load.
    pub converged: bool,
    /// Orders acknowledged to clients.
    pub acknowledged: u64,
    /// Acknowledged orders missing from the histories (must be 0).
    pub lost: u64,
    /// Ids held more than once (must be 0).
    pub doubled: u64,
    /// Orders whose outcome the client could not know.
    pub unknown_outcome: u64,
    /// Of those, how many are held.
    pub unknown_landed: u64,
    /// Held orders that were refused, or never placed (must be 0).
    pub phantom: u64,
    /// Other anomalies of the run's history: stale or out-of-order reads, an order read
    /// before it was placed (must be 0).
    pub not_linearizable: u64,
    /// Up to 10 ids of each kind of violation, for a start.
    pub examples: Vec<String>,
}

/// Everything a run measured and found; serialisable as one JSON object.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// What was run where.
    pub settings: RunSettings,
    /// The load phase: from the first order until every client stopped, seconds.
    pub elapsed_s: f64,
    /// Orders the clients started.
    pub attempted: u64,
    /// Orders acknowledged.
    pub acknowledged: u64,
    /// Acknowledged orders per second of the load phase.
    pub throughput: f64,
    /// Latency of acknowledged orders.
    pub latency: Latency,
    /// Orders that ended otherwise, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Views the front-end created during the load phase: each kill makes two (the failover,
    /// then the replacement's join); any other is a backup removed for not acknowledging in
    /// time (`Timing::backup_timeout`) and its return, each with a state transfer.
    pub view_changes: u64,
    /// When the first order was refused because the order book is full, seconds from the
    /// start (`None`: never). From then on the kills' figures count those refusals as
    /// answers, with the acknowledgements: both are the primary's decisions.
    pub book_full_from_s: Option<f64>,
    /// The kills, in order.
    pub kills: Vec<Kill>,
    /// The final check.
    pub check: Check,
    /// Everything else that went wrong (empty when fine).
    pub problems: Vec<String>,
}

impl LoadReport {
    /// Whether the run found nothing wrong: no lost, doubled or phantom order, a complete
    /// check of converged replicas, an answer after every kill (an acknowledgement, or a
    /// refusal because the book is full), no other problem.
    pub fn passed(&self) -> bool {
        self.check.complete
            && self.check.converged
            && self.check.lost == 0
            && self.check.doubled == 0
            && self.check.phantom == 0
            && self.check.not_linearizable == 0
            && self.problems.is_empty()
    }
}

/// Fills in a kill's failover figures ([`Kill::time_to_first_ack_ms`],
/// [`Kill::longest_gap_ms`], [`Kill::longest_gap_from_ms`]) from the sorted completion times
/// of every acknowledgement (µs from the start of the load); `previous` and `next` are the
/// times of the kills around it (µs), which bound its window so that no gap is counted for two
/// kills. With no acknowledgement after the kill, the figures are left as they are (`None`).
/// Pure; a run computes the figures of each of [`LoadReport::kills`] with it.
pub fn measure_failover(
    kill: &mut Kill,
    ack_times: &[u64],
    previous: Option<u64>,
    next: Option<u64>,
) {
    let t = micros_of(kill.at_s);
    let after = ack_times.partition_point(|&a| a <= t);
    let Some(&first_after) = ack_times.get(after) else {
        // No acknowledgement after the kill: no time to first ack, and the gap has no end.
        return;
    };
    kill.time_to_first_ack_ms = Some((first_after - t) as f64 / 1000.0);
    // The interval spanning the kill (from the last ack before it, or from the start), and
    // every interval starting in the window and ending by the next kill (an interval spanning
    // the next kill is that kill's).
    let spanning = (
        after.checked_sub(1).map_or(0, |i| ack_times[i]),
        first_after,
    );
    let low = t
        .saturating_sub(GAP_BEFORE.as_micros() as u64)
        .max(previous.unwrap_or(0));
    let high = t + GAP_AFTER.as_micros() as u64;
    let next = next.unwrap_or(u64::MAX);
    let first = ack_times.partition_point(|&a| a < low);
    let mut longest = spanning;
    for pair in ack_times[first..].windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a >= high || b > next {
            break;
        }
        if b - a > longest.1 - longest.0 {
            longest = (a, b);
        }
    }
    kill.longest_gap_ms = Some((longest.1 - longest.0) as f64 / 1000.0);
    kill.longest_gap_from_ms = Some((longest.0 as f64 - t as f64) / 1000.0);
}

pub(super) fn micros_of(seconds: f64) -> u64 {
    (seconds * 1e6).round() as u64
}

pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid histogram bounds")
}

pub(super) fn summarise(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        count: histogram.len(),
        mean_ms: histogram.mean() / 1000.0,
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    }
}

pub(super) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl fmt::Display for LoadReport {
    /// The text table of the example.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let runtime = match s.runtime {
            Some(RuntimeFlavor::CurrentThread) => "current-thread",
            Some(RuntimeFlavor::MultiThread) => "multi-thread",
            None => "other",
        };
        let transport = match s.transport {
            TransportKind::Mem => "mem",
            TransportKind::Tcp => "tcp",
        };
        write!(
            f,
            "loadgen: {transport}, {} replicas ({}), {} clients, {} s, {runtime} runtime",
            s.replicas, s.storage, s.clients, s.duration_s
        )?;
        match s.kill_primary_every_s {
            Some(every) => writeln!(f, ", primary killed every {every} s")?,
            None => writeln!(f)?,
        }
        writeln!(f, "driving      {}", s.deployment)?;
        let load = |l: Option<[f64; 3]>| {
            l.map(|[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
                .unwrap_or_else(|| "unknown".into())
        };
        writeln!(
            f,
            "host load    {} at start, {} at end (1, 5, 15 min)",
            load(s.load_average_at_start),
            load(s.load_average_at_end)
        )?;
        writeln!(
            f,
            "throughput   {:.0} acknowledged orders/s ({} of {} orders in {:.2} s)",
            self.throughput, self.acknowledged, self.attempted, self.elapsed_s
        )?;
        let l = &self.latency;
        writeln!(
            f,
            "latency      p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
        )?;
        writeln!(f, "view changes {}", self.view_changes)?;
        if self.errors.is_empty() {
            writeln!(f, "errors       none")?;
        } else {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "errors       {}", errors.join(", "))?;
        }
        if let Some(t) = self.book_full_from_s {
            writeln!(
                f,
                "book full    from {t:.3} s: orders refused as the order book is full (--max-book-bytes); the kills after it are measured by those answers"
            )?;
        }
        let opt = |v: Option<f64>| {
            v.map(|v| format!("{v:.1} ms"))
                .unwrap_or_else(|| "none".into())
        };
        for (i, k) in self.kills.iter().enumerate() {
            writeln!(
                f,
                "kill {:<2}      at {:.3} s: {} (primary of view {}, {} members; replaced by {}): first ack after {}, longest gap {} (from {} ms)",
                i + 1,
                k.at_s,
                k.victim,
                k.view,
                k.view_members,
                k.replacement,
                opt(k.time_to_first_ack_ms),
                opt(k.longest_gap_ms),
                k.longest_gap_from_ms
                    .map(|v| format!("{v:+.1}"))
                    .unwrap_or_else(|| "-".into()),
            )?;
        }
        let c = &self.check;
        writeln!(
            f,
            "check        {} acknowledged: {} lost, {} doubled, {} phantom, {} other anomalies; {} unknown outcome, {} of them landed; {}{}",
            c.acknowledged,
            c.lost,
            c.doubled,
            c.phantom,
            c.not_linearizable,
            c.unknown_outcome,
            c.unknown_landed,
            if c.converged {
                "replicas converged"
            } else {
                "replicas NOT converged"
            },
            if c.complete { "" } else { "; check INCOMPLETE" },
        )?;
        for example in &c.examples {
            writeln!(f, "             {example}")?;
        }
        for problem in &self.problems {
            writeln!(f, "problem      {problem}")?;
        }
        write!(
            f,
            "verdict      {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}
