//! Prints the replication benches' figures as ratios to their floor, from criterion's latest
//! results (`target/criterion/**/new/{benchmark,estimates}.json`) and the benches' latency
//! files (`target/criterion/latency/`), as Markdown tables: every `place_order/T/rN/cC` next to
//! `floor/tcp/rN/cC` (clients multiplexed over one connection to the relay), then the issue's
//! targets; then the same against `floor_per_client/tcp/rN/cC` (a connection per client, as
//! the replicated path's clients have). Run after `cargo bench --bench replication`:
//!
//! ```sh
//! cargo run -p just-hungry-bench-tools --bin bench_ratios            # or: -- path/to/criterion
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One bench: operations per second (criterion's typical time per iteration, as it prints it)
/// and latency percentiles in microseconds, if recorded.
#[derive(Default)]
struct Figures {
    per_second: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Every `new/benchmark.json` under `dir`.
fn find_benchmarks(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_benchmarks(&path, found);
        } else if path.ends_with("new/benchmark.json") {
            found.push(path);
        }
    }
}

fn load(home: &Path) -> BTreeMap<String, Figures> {
    let mut benchmarks = Vec::new();
    find_benchmarks(home, &mut benchmarks);
    let mut all: BTreeMap<String, Figures> = BTreeMap::new();
    for path in benchmarks {
        let (Some(bench), Some(estimates)) = (
            read_json(&path),
            read_json(&path.with_file_name("estimates.json")),
        ) else {
            continue;
        };
        let Some(id) = bench["full_id"].as_str() else {
            continue;
        };
        // Criterion prints the slope where it has one (linear sampling), else the mean.
        let nanos = estimates["slope"]["point_estimate"]
            .as_f64()
            .or_else(|| estimates["mean"]["point_estimate"].as_f64());
        let elements = bench["throughput"]["Elements"].as_f64();
        let figures = all.entry(id.to_owned()).or_default();
        figures.per_second = nanos.zip(elements).map(|(ns, n)| n * 1e9 / ns);
    }
    for (id, figures) in all.iter_mut() {
        if let Some(latency) = read_json(&home.join("latency").join(format!("{id}.json"))) {
            figures.p50_us = latency["p50_us"].as_f64();
            figures.p99_us = latency["p99_us"].as_f64();
        }
    }
    all
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| a / b)
}

/// A ratio and whether it meets its target.
fn check(value: Option<f64>, ok: impl Fn(f64) -> bool, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$} {}", if ok(v) { "ok" } else { "MISS" }),
        None => "-".to_owned(),
    }
}

/// Prints the replication benches' figures as ratios to their floor, from criterion's latest
/// results. Run after `cargo bench --bench replication`.
#[derive(clap::Parser)]
#[command(version)]
struct Args {
    /// Criterion's directory (default: $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion,
    /// else target/criterion).
    criterion: Option<PathBuf>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let home = args.criterion.unwrap_or_else(|| {
        match (
            std::env::var_os("CRITERION_HOME"),
            std::env::var_os("CARGO_TARGET_DIR"),
        ) {
            (Some(home), _) => home.into(),
            (None, Some(target)) => PathBuf::from(target).join("criterion"),
            (None, None) => PathBuf::from("target/criterion"),
        }
    });
    let all = load(&home);
    if !all.keys().any(|id| id.starts_with("place_order/")) {
        eprintln!(
            "no place_order results under {}: run `cargo bench --bench replication` first",
            home.display()
        );
        std::process::exit(2);
    }
    for floor_group in ["floor", "floor_per_client"] {
        if all
            .keys()
            .any(|id| id.starts_with(&format!("{floor_group}/")))
        {
            println!("## Against `{floor_group}`");
            println!();
            print_against(&all, floor_group);
            println!();
        }
    }
    print_tls_cost(&all);
}

/// Every `place_order/tcp/...` (mutual TLS) against `place_order/tcp-plaintext/...` of the
/// same shape, if both ran.
fn print_tls_cost(all: &BTreeMap<String, Figures>) {
    let pairs: Vec<(&str, &Figures, &Figures)> = all
        .iter()
        .filter_map(|(id, tls)| {
            let shape = id.strip_prefix("place_order/tcp/")?;
            let plain = all.get(&format!("place_order/tcp-plaintext/{shape}"))?;
            Some((shape, tls, plain))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    println!("## TLS against plaintext (`place_order/tcp` against `place_order/tcp-plaintext`)");
    println!();
    println!(
        "| shape | TLS orders/s | plaintext orders/s | × plaintext | TLS p50 µs | plaintext p50 µs | p50 × plaintext |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (shape, tls, plain) in pairs {
        println!(
            "| {shape} | {} | {} | {} | {} | {} | {} |",
            show(tls.per_second, 0),
            show(plain.per_second, 0),
            show(ratio(tls.per_second, plain.per_second), 2),
            show(tls.p50_us, 0),
            show(plain.p50_us, 0),
            show(ratio(tls.p50_us, plain.p50_us), 2),
        );
    }
    println!();
}

/// The table of every `place_order` bench against `floor_group/tcp/...`, then the targets.
fn print_against(all: &BTreeMap<String, Figures>, floor_group: &str) {
    let none = Figures::default();
    let floor = |shape: &str| {
        all.get(&format!("{floor_group}/tcp/{shape}"))
            .unwrap_or(&none)
    };
    let pairs: Vec<(&str, &Figures)> = all
        .iter()
        .filter_map(|(id, f)| id.strip_prefix("place_order/").map(|rest| (rest, f)))
        .collect();
    println!(
        "| bench | orders/s | floor/s | × floor | p50 µs | p99 µs | floor p50 µs | p50 × floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (rest, f) in &pairs {
        let shape = rest.split_once('/').map_or("", |(_, shape)| shape);
        let fl = floor(shape);
        println!(
            "| {rest} | {} | {} | {} | {} | {} | {} | {} |",
            show(f.per_second, 0),
            show(fl.per_second, 0),
            show(ratio(f.per_second, fl.per_second), 2),
            show(f.p50_us, 0),
            show(f.p99_us, 0),
            show(fl.p50_us, 0),
            show(ratio(f.p50_us, fl.p50_us), 2),
        );
    }
    println!();
    println!(
        "| transport/replicas | c16 × floor c16 (≥ 0.80) | c16 p99 ms (< 1.5) | c64 × floor c16 (≥ 1.5) | c1 p50 × floor c1 (≤ 1.5) |"
    );
    println!("|---|---|---|---|---|");
    let mut groups: Vec<&str> = pairs
        .iter()
        .filter_map(|(rest, _)| rest.rsplit_once('/').map(|(group, _)| group))
        .collect();
    groups.dedup();
    for group in groups {
        let get = |c: &str| {
            all.get(&format!("place_order/{group}/{c}"))
                .unwrap_or(&none)
        };
        let replicas = group.split_once('/').map_or("", |(_, r)| r);
        let floor_at = |c: &str| floor(&format!("{replicas}/{c}"));
        println!(
            "| {group} | {} | {} | {} | {} |",
            check(
                ratio(get("c16").per_second, floor_at("c16").per_second),
                |v| v >= 0.8,
                2
            ),
            check(get("c16").p99_us.map(|us| us / 1000.0), |v| v < 1.5, 2),
            check(
                ratio(get("c64").per_second, floor_at("c16").per_second),
                |v| v >= 1.5,
                2
            ),
            check(
                ratio(get("c1").p50_us, floor_at("c1").p50_us),
                |v| v <= 1.5,
                2
            ),
        );
    }
}
