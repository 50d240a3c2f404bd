//! Per-request latencies: criterion times whole iterations (C clients × K orders), so the
//! benches time each request themselves and report percentiles once a bench is done, on
//! stderr and in `target/criterion/latency/<bench id>.json` (read by
//! `benches/tools/bench_ratios.rs`).

use std::time::Duration;

/// Percentiles of one bench's request latencies.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    /// How many requests were timed.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest request.
    pub max: Duration,
}

/// The percentiles of `samples` (nearest rank), or `None` if there are none.
pub fn percentiles(samples: &mut [Duration]) -> Option<Percentiles> {
    samples.sort_unstable();
    let max = *samples.last()?;
    let rank = |p: f64| {
        let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index]
    };
    Some(Percentiles {
        count: samples.len(),
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        p999: rank(0.999),
        max,
    })
}

/// Prints the percentiles of bench `id`'s requests and, unless criterion only tests the
/// benches, writes them next to criterion's results.
pub fn report(id: &str, mut samples: Vec<Duration>) {
    let Some(p) = percentiles(&mut samples) else {
        return; // the bench was filtered out
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    eprintln!(
        "{id}: latency of {} requests: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
        p.count,
        us(p.p50),
        us(p.p90),
        us(p.p99),
        us(p.p999),
        us(p.max)
    );
    if super::only_testing() {
        return;
    }
    let path = super::criterion_home()
        .join("latency")
        .join(format!("{id}.json"));
    let json = serde_json::json!({
        "id": id,
        "count": p.count,
        "p50_us": us(p.p50),
        "p90_us": us(p.p90),
        "p99_us": us(p.p99),
        "p999_us": us(p.p999),
        "max_us": us(p.max),
    });
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, json.to_string()));
    if let Err(e) = written {
        eprintln!("{id}: cannot write {}: {e}", path.display());
    }
}
