//! The command-line programs, as library code: the registry, the front-end, a replica, the
//! client and the certificate tool. The example binaries (`cargo run --example registry`)
//! and the installed one (`cargo install --path .`, then `just-hungry registry`) run the same
//! functions. Each module has its `Args` (its command line, `-h` describes it), a `run`, and
//! a `main` that parses, runs and turns an error into exit code 1.

pub mod certs;
#[cfg(feature = "etcd")]
pub mod client;
#[cfg(feature = "etcd")]
pub mod frontend;
pub mod registry;
#[cfg(feature = "etcd")]
pub mod replica;

use std::future::Future;
use std::process::ExitCode;

/// Runs `future` on a current-thread tokio runtime, the binaries' flavour: on these 2-core
/// machines it beat the multi-thread one for a node's loop (docs/PERFORMANCE.md).
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Exit code 0 for `Ok`, and 1 for an error, printed to stderr with its causes, as a `main`
/// returning `anyhow::Result` prints it.
pub fn exit_code<T>(result: anyhow::Result<T>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}
