//! Checks a client history (JSON lines, `docs/HISTORY-FORMAT.md`): lost and doubled orders, and
//! linearizability of each postcode's order list.
//!
//! `cargo run --example check -- HISTORY.jsonl` prints a verdict and exits 0 (ok),
//! 1 (a violation) or 2 (bad input).

use std::process::ExitCode;

use just_hungry_core::history::check_json_lines;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: check HISTORY.jsonl");
        return ExitCode::from(2);
    };
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
