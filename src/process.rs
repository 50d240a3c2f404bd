//! What a process that hosts nodes needs, whether it is one of this crate's programs or a
//! user's own: logging to stderr, a future that resolves on Ctrl+C or SIGTERM, and a reload
//! of the TLS certificate on SIGHUP.

use just_hungry_transport_tcp::tls::TlsConfig;

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    init_logging_with_default("info");
}

/// Logs to stderr at `level` (`warn`, `info`, ...) unless `RUST_LOG` says otherwise; in
/// colour only when stderr is a terminal and `NO_COLOR` is unset, so that a log written to a
/// file or a pipe holds no escape codes.
pub fn init_logging_with_default(level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves when the process is asked to stop: Ctrl+C, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reloads `tls` from its files on every SIGHUP (Unix), so a renewed certificate is used
/// without a restart: new connections present it, open ones keep theirs.
pub fn spawn_reload_on_sighup(tls: TlsConfig) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(identity = %tls.identity(), "SIGHUP: certificate reloaded")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SIGHUP: cannot reload the certificate: keeping the current one")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = tls;
}
