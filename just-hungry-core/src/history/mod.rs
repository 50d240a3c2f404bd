//! Client histories: one model, one reader and writer, one checker.
//!
//! A history is what concurrent clients did, as they saw it, in the format of
//! `docs/HISTORY-FORMAT.md`: JSON lines, first the initial state (`init` lines, one per key that
//! holds ids before any operation), then every operation's `invoke` and its completion (`ok`,
//! `fail` or `info`). An `append` adds an id chosen by the client before invoking (a request id,
//! `c3-17`) to its key's list; a `read` returns the key's whole list. The simulator, the nemesis
//! and the process tests write histories in it; [`check`] judges them; `examples/check.rs`
//! checks a file.
//!
//! Because every appended id is unique and every read returns the whole list, the check runs
//! in polynomial time (the list-append idea of Elle, Kingsbury and Alvaro, VLDB 2020): the
//! longest read of a key gives the order of its appends, every other read must be a prefix of
//! it, and a read of length `k` must fit between the `k`-th and `k+1`-th append. A
//! linearization then exists if and only if no pair of operations is required in one order and
//! happened, in real time, in the other: the required order is a chain of layers (append 1,
//! the reads of length 1, append 2, ...), and within a layer reads can take their invocation
//! order, so pairs are all there is to check. Linearizability is local (Herlihy and Wing), so
//! keys are checked one at a time. No exponential search is needed; a history whose reads do
//! not agree on one order is reported as such rather than searched.
//!
//! The initial state is declared, never guessed: an id that was neither declared by an `init`
//! line nor appended by an operation is a phantom, whatever it looks like. Declared ids count as
//! appends acknowledged before anything else, so every read must begin with them.

mod check;
mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::RequestId;

pub use check::{check, check_json_lines};
pub use report::{Anomaly, Report};

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client started the operation.
    Invoke,
    /// It happened; for a read, `value` is the result.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may or may not have happened.
    Info,
}

/// Which operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Append the event's id to its key's list (place an order).
    Append,
    /// Read its key's whole list (a postcode's orders).
    Read,
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client.
    pub process: u64,
    /// The event.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation.
    pub f: Function,
    /// The key (a postcode, in canonical form).
    pub key: String,
    /// The id (append), the list of ids (ok read), or null.
    pub value: Value,
    /// Nanoseconds on a clock shared by every process.
    pub time: u64,
}

/// The `value` of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// An id.
    Id(String),
    /// A read's result.
    List(Vec<String>),
    /// Nothing.
    Null,
}

impl Event {
    /// The event as one JSON line (no newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a history could not be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line is not an event of the format.
    #[error("line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// An `init` line: the ids a key holds before any operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct InitLine {
    #[serde(rename = "type")]
    kind: InitType,
    key: String,
    value: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum InitType {
    Init,
}

/// A whole history: the initial state, then the events in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    initial: BTreeMap<String, Vec<String>>,
    events: Vec<Event>,
    /// The line of each event in the text it was parsed from; empty when built in memory.
    lines: Vec<usize>,
}

impl History {
    /// An empty history whose keys start with the lists of `initial` (keys with no id are left
    /// out).
    pub fn new(initial: BTreeMap<String, Vec<String>>) -> History {
        History {
            initial: initial
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .collect(),
            events: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Adds an event after the others.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The initial state: key -> ids, in list order.
    pub fn initial(&self) -> &BTreeMap<String, Vec<String>> {
        &self.initial
    }

    /// The events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Each event with its line: in the parsed text, or in [`History::to_json_lines`].
    pub fn numbered(&self) -> impl Iterator<Item = (usize, &Event)> + '_ {
        let first = self.initial.len() + 1;
        self.events
            .iter()
            .enumerate()
            .map(move |(i, e)| (self.lines.get(i).copied().unwrap_or(first + i), e))
    }

    /// The history as JSON lines: the `init` lines, then one line per event.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for (key, ids) in &self.initial {
            let line = InitLine {
                kind: InitType::Init,
                key: key.clone(),
                value: ids.clone(),
            };
            out.push_str(&serde_json::to_string(&line).unwrap_or_default());
            out.push('\n');
        }
        for e in &self.events {
            out.push_str(&e.to_json_line());
            out.push('\n');
        }
        out
    }

    /// Parses JSON lines; blank lines are skipped. `init` lines must come before the first
    /// event, one per key.
    pub fn parse(text: &str) -> Result<History, HistoryError> {
        let mut history = History::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let malformed = |reason: String| HistoryError::Malformed {
                line: i + 1,
                reason,
            };
            if let Ok(init) = serde_json::from_str::<InitLine>(line) {
                if !history.events.is_empty() {
                    return Err(malformed("an init line after the first event".into()));
                }
                if history
                    .initial
                    .insert(init.key.clone(), init.value)
                    .is_some()
                {
                    return Err(malformed(format!("a second init line for {}", init.key)));
                }
                continue;
            }
            let event: Event = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
            history.events.push(event);
            history.lines.push(i + 1);
        }
        Ok(history)
    }
}

/// The id of a request as a history writes it (`c3-17`: client 3, request 17).
pub fn id_of(request: RequestId) -> String {
    request.to_string()
}

/// An initial state for [`History::new`] from each key's list of request ids.
pub fn initial_ids(lists: BTreeMap<String, Vec<RequestId>>) -> BTreeMap<String, Vec<String>> {
    lists
        .into_iter()
        .map(|(key, ids)| (key, ids.into_iter().map(id_of).collect()))
        .collect()
}
