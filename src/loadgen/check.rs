//! The final check of a run: every order the clients placed, and a read of every postcode after
//! the cluster converged, as one client history judged by the one checker
//! ([`just_hungry_core::history::check`]). Lost, doubled and phantom orders are its anomalies,
//! counted nowhere else.

use std::collections::{BTreeMap, HashSet};

use just_hungry_core::history::{self, Anomaly, Event, EventType, Function, History, Value};
use tokio::time::Instant;

use super::report::Check;
use super::target::Target;
use super::{ClientOutcome, FORM_WAIT, LoadOptions};
use crate::nemesis::POSTCODES;
use crate::postcode::normalise;

/// How many anomalies the report shows by name.
const EXAMPLES: usize = 10;

/// One read of the final check, in nanoseconds from the start of the load.
struct FinalRead {
    postcode: &'static str,
    invoked: u64,
    completed: u64,
    /// The ids read; `None`: the read failed.
    ids: Option<Vec<String>>,
}

/// Waits for convergence, reads every postcode's history through a client of its own, and
/// checks the history of the whole run.
pub(super) async fn check_run(
    target: &mut dyn Target,
    options: &LoadOptions,
    start: Instant,
    outcomes: &[ClientOutcome],
    problems: &mut Vec<String>,
) -> Check {
    let mut check = Check::default();
    match target.wait_for_convergence(FORM_WAIT).await {
        Ok(()) => check.converged = true,
        Err(e) => problems.push(format!("no convergence after the load: {e}")),
    }
    let reads = read_every_postcode(target, options, start, problems).await;
    check.complete = reads.len() == POSTCODES.len() && reads.iter().all(|r| r.ids.is_some());

    let held: HashSet<&str> = reads
        .iter()
        .flat_map(|r| r.ids.iter().flatten())
        .map(String::as_str)
        .collect();
    for placed in outcomes.iter().flat_map(|o| &o.orders) {
        match placed.outcome {
            EventType::Ok => check.acknowledged += 1,
            EventType::Info => {
                check.unknown_outcome += 1;
                if held.contains(history::id_of(placed.id).as_str()) {
                    check.unknown_landed += 1;
                }
            }
            _ => {}
        }
    }

    let history = run_history(target.initial(), outcomes, &reads);
    match history::check(&history) {
        Ok(report) => {
            for anomaly in &report.anomalies {
                let count = match anomaly {
                    Anomaly::Lost { .. } => &mut check.lost,
                    Anomaly::Doubled { .. } => &mut check.doubled,
                    Anomaly::Phantom { .. } => &mut check.phantom,
                    _ => &mut check.not_linearizable,
                };
                *count += 1;
                if check.examples.len() < EXAMPLES {
                    check.examples.push(anomaly.to_string());
                }
            }
        }
        Err(e) => {
            problems.push(format!("the run's history could not be checked: {e}"));
            check.complete = false;
        }
    }
    check
}

/// One read per postcode (the largest answer is one postcode's history, well below the
/// transports' frame limits), by a client whose id follows the load clients'.
async fn read_every_postcode(
    target: &mut dyn Target,
    options: &LoadOptions,
    start: Instant,
    problems: &mut Vec<String>,
) -> Vec<FinalRead> {
    let reader = match target
        .order_client(options.client, options.clients as u64)
        .await
    {
        Ok(reader) => reader,
        Err(e) => {
            problems.push(format!("no client to read the histories with: {e}"));
            return Vec::new();
        }
    };
    let mut reads = Vec::new();
    for postcode in POSTCODES {
        let invoked = nanos_since(start);
        let result = reader.order_history(postcode).await;
        let completed = nanos_since(start);
        let ids = match result {
            Ok((_, orders)) => Some(orders.iter().map(|o| history::id_of(o.id)).collect()),
            Err(e) => {
                problems.push(format!("the history of {postcode} could not be read: {e}"));
                None
            }
        };
        reads.push(FinalRead {
            postcode,
            invoked,
            completed,
            ids,
        });
    }
    reads
}

/// The run as a client history: the book every replica started with, each client's orders
/// (process = client index), then the final reads (the next process).
fn run_history(
    initial: BTreeMap<String, Vec<String>>,
    outcomes: &[ClientOutcome],
    reads: &[FinalRead],
) -> History {
    let key = |postcode: &str| {
        normalise(postcode)
            .map(|p| p.to_string())
            .unwrap_or_else(|_| postcode.to_owned())
    };
    let mut events = Vec::new();
    let mut pair = |process: u64, f: Function, key: String, times: (u64, u64), end, values| {
        let (invoke_value, end_value) = values;
        events.push(Event {
            process,
            kind: EventType::Invoke,
            f,
            key: key.clone(),
            value: invoke_value,
            time: times.0,
        });
        events.push(Event {
            process,
            kind: end,
            f,
            key,
            value: end_value,
            time: times.1,
        });
    };
    for (process, outcome) in outcomes.iter().enumerate() {
        for placed in &outcome.orders {
            let id = Value::Id(history::id_of(placed.id));
            pair(
                process as u64,
                Function::Append,
                key(placed.postcode),
                (placed.invoked, placed.completed),
                placed.outcome,
                (id.clone(), id),
            );
        }
    }
    let reader = outcomes.len() as u64;
    for read in reads {
        let (end, value) = match &read.ids {
            Some(ids) => (EventType::Ok, Value::List(ids.clone())),
            None => (EventType::Fail, Value::Null),
        };
        pair(
            reader,
            Function::Read,
            key(read.postcode),
            (read.invoked, read.completed),
            end,
            (Value::Null, value),
        );
    }
    // In time order; a process's two events are pushed in order, and the sort is stable.
    events.sort_by_key(|e| e.time);
    let mut history = History::new(initial);
    for event in events {
        history.push(event);
    }
    history
}

/// Nanoseconds from `start` to `at`, on the clock every client of a run shares.
pub(super) fn nanos_between(start: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}

fn nanos_since(start: Instant) -> u64 {
    nanos_between(start, Instant::now())
}
