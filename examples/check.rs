//! Checks a client history (JSON lines, `docs/HISTORY-FORMAT.md`): lost and doubled orders, and
//! linearizability of each postcode's order list.
//!
//! `cargo run --example check -- HISTORY.jsonl` prints a verdict and exits 0 (ok),
//! 1 (a violation) or 2 (bad input).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use just_hungry_core::history::check_json_lines;

/// Checks a client history: lost and doubled orders, and linearizability of each postcode's
/// order list. Exits 0 (ok), 1 (a violation) or 2 (bad input).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The history, in JSON lines (`cargo run --example cluster -- --nemesis 42 --history FILE`
    /// writes one; docs/HISTORY-FORMAT.md).
    history: PathBuf,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not bad input.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let path = args.history;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    match check_json_lines(&text) {
        Ok(report) => {
            print!("{report}");
            if report.is_valid() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("bad history: {e}");
            ExitCode::from(2)
        }
    }
}
