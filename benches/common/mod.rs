//! Set-up shared by the benches: the orders they place and the sizes of their messages
//! ([`orders`]), a replicated cluster to load ([`cluster`]), the bare TCP relay it is compared
//! with ([`floor`]), the concurrent clients that drive either ([`load`]) and their latencies
//! ([`latency`]).
//!
//! Every bench binary compiles this whole module but uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod floor;
pub mod latency;
pub mod load;
pub mod orders;

/// The runtime every network bench runs in: tokio's current-thread scheduler, as the binaries
/// and `loadgen` use by default (it beat the multi-threaded one in every loadgen pair on these
/// 2-core machines, docs/PERFORMANCE.md), or the multi-threaded one with a worker per core when
/// `JUST_HUNGRY_BENCH_RUNTIME=multi-thread`. Every node of a cluster, its clients and the
/// floor's relays share it, so a figure and its floor always run on the same scheduler.
pub fn runtime() -> tokio::runtime::Runtime {
    let mut builder = match std::env::var("JUST_HUNGRY_BENCH_RUNTIME").as_deref() {
        Ok("multi-thread") => tokio::runtime::Builder::new_multi_thread(),
        Ok("current-thread") | Err(_) => tokio::runtime::Builder::new_current_thread(),
        Ok(other) => {
            panic!("JUST_HUNGRY_BENCH_RUNTIME={other}: expected current-thread or multi-thread")
        }
    };
    builder.enable_all().build().expect("a tokio runtime")
}

/// Whether criterion was asked not to measure: to check the benches (`-- --test`, also what
/// `cargo test --benches` does), list them or run them under a profiler (`--profile-time`).
/// Then nothing timed is worth keeping.
pub fn only_testing() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    !flag("--bench") || flag("--test") || flag("--list") || flag("--profile-time")
}

/// Where criterion writes its results, found as criterion finds it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `target/criterion` (benches run in the package's root).
pub fn criterion_home() -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => std::path::PathBuf::from(target).join("criterion"),
        None => std::path::PathBuf::from("target/criterion"),
    }
}
