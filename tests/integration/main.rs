//! Every integration test of the `just-hungry` crate, one module per subject, in one test
//! binary: the generic code the tests share (the runtime, the nodes, the transports) is built
//! and linked once instead of once per file (issue 18: the cold `cargo test` spent most of its
//! build on some twenty test binaries). `cargo test --test integration nemesis::` runs one
//! module's tests; the shared helpers are `deployment` (processes), `nodes` (state machines
//! built by hand) and `support` (fake HTTP servers).

/// A count a run may change through the environment (seeds, cases): `default` when `name` is
/// unset, else its value. A value that does not parse stops the test with the variable named,
/// rather than quietly running the default: `.ci/run` sets the full counts this way.
fn count_from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Err(_) => default,
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a count")),
    }
}

mod attacks;
mod backpressure;
mod burst;
mod cli_commands;
mod deployment;
mod detector;
mod durable;
mod edges;
mod etcd;
mod etcd_client;
mod etcd_frontends;
mod etcd_nemesis;
mod first_run;
#[cfg(feature = "online-postcodes")]
mod getthedata_answers;
mod join_at_size;
mod large_reads;
mod load_options;
mod load_report;
mod loadgen;
mod local_cluster;
mod nemesis;
mod nodes;
mod operations;
mod order_book;
mod order_book_snapshot;
mod postcode_config;
mod postcode_e2e;
#[cfg(feature = "online-postcodes")]
mod postcode_http;
#[cfg(feature = "online-postcodes")]
mod postcode_interpreters;
#[cfg(feature = "online-postcodes")]
mod postcode_online;
#[cfg(feature = "online-postcodes")]
mod postcodes_io_answers;
mod processes;
mod replicated_snapshots;
mod several_machines;
mod sim_props;
mod sim_scenarios;
mod support;
mod trust;
