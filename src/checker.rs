//! A checker of client histories for the order book: lost and doubled orders, and
//! linearizability of the per-postcode append-only list.
//!
//! A history is what concurrent clients did, one JSON object per line, in the format of
//! `history-format.md`: `invoke` then `ok`, `fail` or `info` per operation; `append` places
//! an order with a unique id chosen by the client, `read` returns a postcode's whole list.
//!
//! Because every appended id is unique and every read returns the whole list, the check runs
//! in polynomial time (the list-append idea of Elle, Kingsbury and Alvaro, VLDB 2020): the
//! longest read of a postcode gives the order of its appends, every other read must be a prefix
//! of it, and a read of length `k` must fit between the `k`-th and `k+1`-th append. A
//! linearization then exists if and only if no pair of operations is required in one order and
//! happened, in real time, in the other: the required order is a chain of layers (append 1,
//! the reads of length 1, append 2, ...), and within a layer reads can take their invocation
//! order, so pairs are all there is to check. Linearizability is local (Herlihy and Wing), so
//! postcodes are checked one at a time. No exponential search is needed; a history whose reads
//! do not agree on one order is reported as such rather than searched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// Place an order.
    Append,
    /// Read a postcode's orders.
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
    /// The postcode.
    pub key: String,
    /// The order id (append), the list of order ids (ok read), or null.
    pub value: Value,
    /// Nanoseconds on a clock shared by every process.
    pub time: u64,
}

/// The `value` of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// An order id.
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

/// Records the events of concurrent clients on one monotonic clock (tokio's, so a paused
/// clock gives virtual nanoseconds). Clones share the record.
#[derive(Clone, Debug)]
pub struct Recorder {
    events: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
    origin: tokio::time::Instant,
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty record whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            events: Default::default(),
            origin: tokio::time::Instant::now(),
            last: Default::default(),
        }
    }

    /// Nanoseconds since the record began; strictly increasing from call to call, so events
    /// that follow one another never share a time (a paused clock may not move between them).
    pub fn now(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let elapsed = self.origin.elapsed().as_nanos() as u64;
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(elapsed.max(last + 1))
            })
            .unwrap_or(0);
        elapsed.max(previous + 1)
    }

    /// Adds an event (events of one process must be added in their order).
    pub fn record(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Every event, in time order (stable: equal times keep the order they were added in).
    pub fn events(&self) -> Vec<Event> {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        events.sort_by_key(|e| e.time);
        events
    }

    /// The record as JSON lines, in time order.
    pub fn to_json_lines(&self) -> String {
        self.events()
            .iter()
            .map(|e| e.to_json_line() + "\n")
            .collect()
    }

    /// The record, numbered as if read from a file, ready for [`check`].
    pub fn numbered(&self) -> Vec<(usize, Event)> {
        self.events()
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i + 1, e))
            .collect()
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

/// Parses JSON lines; blank lines are skipped.
pub fn parse_history(text: &str) -> Result<Vec<(usize, Event)>, HistoryError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| HistoryError::Malformed {
            line: i + 1,
            reason: e.to_string(),
        })?;
        events.push((i + 1, event));
    }
    Ok(events)
}

/// One kind of anomaly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anomaly {
    /// An acknowledged order is missing from reads that began after it was acknowledged, the
    /// last read of its postcode included.
    LostOrder {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read returned the same order twice.
    DoubledOrder {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read missed an order acknowledged before the read began (later reads have it), or
    /// returned less than a read that finished before it began.
    StaleRead {
        /// The postcode.
        key: String,
        /// What is missing, and from which read.
        detail: String,
    },
    /// Reads disagree on the order of a postcode's orders, or orders are stored in an order
    /// that contradicts the real-time order in which they were placed.
    OutOfOrder {
        /// The postcode.
        key: String,
        /// Which orders.
        detail: String,
    },
    /// A read returned an order that was placed only after the read had finished.
    ReadBeforePlaced {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read returned an order that was never placed, or whose placement failed.
    PhantomOrder {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostOrder { key, id } => {
                write!(
                    f,
                    "lost order: {id} at {key} was acknowledged, then missing from every later read"
                )
            }
            Anomaly::DoubledOrder { key, id } => {
                write!(f, "doubled order: {id} appears twice in a read of {key}")
            }
            Anomaly::StaleRead { key, detail } => write!(f, "stale read of {key}: {detail}"),
            Anomaly::OutOfOrder { key, detail } => write!(f, "out of order at {key}: {detail}"),
            Anomaly::ReadBeforePlaced { key, id } => {
                write!(
                    f,
                    "read before placed: a read of {key} returned {id} before it was placed"
                )
            }
            Anomaly::PhantomOrder { key, id } => write!(
                f,
                "phantom order: a read of {key} returned {id}, which was never placed or whose placement failed"
            ),
        }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations checked (completed or not).
    pub operations: usize,
    /// Postcodes seen.
    pub keys: usize,
    /// Acknowledged appends.
    pub acknowledged: usize,
    /// Everything wrong; empty when the history is linearizable with nothing lost or doubled.
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    /// Whether the history passed.
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_valid() {
            writeln!(
                f,
                "OK: {} operations on {} postcodes are linearizable; {} acknowledged orders, none lost, none doubled",
                self.operations, self.keys, self.acknowledged
            )
        } else {
            writeln!(
                f,
                "VIOLATION: {} anomalies in {} operations on {} postcodes",
                self.anomalies.len(),
                self.operations,
                self.keys
            )?;
            for a in &self.anomalies {
                writeln!(f, "  - {a}")?;
            }
            Ok(())
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Fail,
    Info,
}

#[derive(Clone, Debug)]
struct Operation {
    f: Function,
    key: String,
    id: Option<String>,
    invoke: u64,
    /// `None`: never completed, or unknown (`info`).
    complete: Option<u64>,
    status: Status,
    read: Vec<String>,
}

/// Pairs invocations with completions, per process.
fn operations(events: &[(usize, Event)]) -> Result<Vec<Operation>, HistoryError> {
    let mut open: HashMap<u64, (usize, Operation)> = HashMap::new();
    let mut done = Vec::new();
    for (line, e) in events {
        let malformed = |reason: String| HistoryError::Malformed {
            line: *line,
            reason,
        };
        match e.kind {
            EventType::Invoke => {
                if open.contains_key(&e.process) {
                    return Err(malformed(format!(
                        "process {} invokes while its previous operation is still open",
                        e.process
                    )));
                }
                let id = match (&e.f, &e.value) {
                    (Function::Append, Value::Id(id)) => Some(id.clone()),
                    (Function::Append, _) => {
                        return Err(malformed("an append's value must be its order id".into()));
                    }
                    (Function::Read, Value::Null) => None,
                    (Function::Read, _) => {
                        return Err(malformed("a read's invoke value must be null".into()));
                    }
                };
                let op = Operation {
                    f: e.f,
                    key: e.key.clone(),
                    id,
                    invoke: e.time,
                    complete: None,
                    status: Status::Info,
                    read: Vec::new(),
                };
                open.insert(e.process, (*line, op));
            }
            kind => {
                let Some((_, mut op)) = open.remove(&e.process) else {
                    return Err(malformed(format!(
                        "process {} completes an operation it never invoked",
                        e.process
                    )));
                };
                if op.f != e.f || op.key != e.key {
                    return Err(malformed(
                        "the completion does not match the invoked operation".into(),
                    ));
                }
                if e.time < op.invoke {
                    return Err(malformed("completion before its invocation".into()));
                }
                op.status = match kind {
                    EventType::Ok => Status::Ok,
                    EventType::Fail => Status::Fail,
                    _ => Status::Info,
                };
                if op.status != Status::Info {
                    op.complete = Some(e.time);
                }
                if op.f == Function::Read && op.status == Status::Ok {
                    match &e.value {
                        Value::List(list) => op.read = list.clone(),
                        _ => return Err(malformed("an ok read's value must be a list".into())),
                    }
                }
                done.push(op);
            }
        }
    }
    done.extend(open.into_values().map(|(_, op)| op));
    Ok(done)
}

/// Checks a parsed history.
pub fn check(events: &[(usize, Event)]) -> Result<Report, HistoryError> {
    let ops = operations(events)?;
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for (line, e) in events {
        if let (EventType::Invoke, Value::Id(id)) = (e.kind, &e.value)
            && !ids.insert(id.clone())
        {
            return Err(HistoryError::Malformed {
                line: *line,
                reason: format!("order id {id} is appended twice: ids must be unique"),
            });
        }
    }
    for op in &ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut report = Report {
        operations: ops.len(),
        keys: by_key.len(),
        acknowledged: ops
            .iter()
            .filter(|o| o.f == Function::Append && o.status == Status::Ok)
            .count(),
        anomalies: Vec::new(),
    };
    for (key, ops) in by_key {
        check_key(key, &ops, &mut report.anomalies);
    }
    report.anomalies.sort();
    report.anomalies.dedup();
    Ok(report)
}

/// Parses and checks a history in JSON lines.
pub fn check_json_lines(text: &str) -> Result<Report, HistoryError> {
    check(&parse_history(text)?)
}

fn check_key(key: &str, ops: &[&Operation], anomalies: &mut Vec<Anomaly>) {
    let appends: HashMap<&str, &Operation> = ops
        .iter()
        .filter(|o| o.f == Function::Append)
        .filter_map(|o| o.id.as_deref().map(|id| (id, *o)))
        .collect();
    let reads: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.f == Function::Read && o.status == Status::Ok)
        .copied()
        .collect();
    let key = key.to_owned();

    // Doubled and phantom orders, read by read.
    for r in &reads {
        let mut seen = BTreeSet::new();
        for id in &r.read {
            if !seen.insert(id.as_str()) {
                anomalies.push(Anomaly::DoubledOrder {
                    key: key.clone(),
                    id: id.clone(),
                });
            }
            match appends.get(id.as_str()) {
                None if is_seed(id) => {}
                None => anomalies.push(Anomaly::PhantomOrder {
                    key: key.clone(),
                    id: id.clone(),
                }),
                Some(a) if a.status == Status::Fail => anomalies.push(Anomaly::PhantomOrder {
                    key: key.clone(),
                    id: id.clone(),
                }),
                Some(_) => {}
            }
        }
    }

    // The order of appends: the longest read; every read must be a prefix of it.
    let Some(longest) = reads.iter().max_by_key(|r| r.read.len()) else {
        return;
    };
    let order = &longest.read;
    for r in &reads {
        if order.get(..r.read.len()) != Some(&r.read[..]) {
            let at = r
                .read
                .iter()
                .zip(order.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            anomalies.push(Anomaly::OutOfOrder {
                key: key.clone(),
                detail: format!(
                    "reads disagree at position {at}: one returned {:?}, another {:?}",
                    r.read.get(at),
                    order.get(at)
                ),
            });
        }
    }
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let last_read_start = reads.iter().map(|r| r.invoke).max().unwrap_or(0);

    // Appends in the order: real time must agree (a placed before b began => a before b).
    let mut placed: Vec<(&str, usize, &Operation)> = order
        .iter()
        .enumerate()
        .filter_map(|(i, id)| appends.get(id.as_str()).map(|a| (id.as_str(), i, *a)))
        .collect();
    placed.sort_by_key(|(_, _, a)| a.invoke);
    let mut by_completion: Vec<(u64, usize, &str)> = placed
        .iter()
        .filter_map(|(id, pos, a)| {
            a.complete
                .filter(|_| a.status == Status::Ok)
                .map(|c| (c, *pos, *id))
        })
        .collect();
    by_completion.sort();
    let mut best: Option<(usize, &str)> = None;
    let mut j = 0;
    for (id, pos, a) in &placed {
        while j < by_completion.len() && by_completion[j].0 < a.invoke {
            let (_, p, i) = by_completion[j];
            if best.is_none_or(|(bp, _)| p > bp) {
                best = Some((p, i));
            }
            j += 1;
        }
        if let Some((bp, earlier)) = best
            && bp > *pos
        {
            anomalies.push(Anomaly::OutOfOrder {
                key: key.clone(),
                detail: format!(
                    "{earlier} was acknowledged before {id} was placed, yet is stored after it"
                ),
            });
        }
    }

    // Each read against the appends: what it holds began before it ended; what was
    // acknowledged before it began, it holds.
    for r in &reads {
        let Some(end) = r.complete else { continue };
        for id in &r.read {
            if let Some(a) = appends.get(id.as_str())
                && a.invoke > end
            {
                anomalies.push(Anomaly::ReadBeforePlaced {
                    key: key.clone(),
                    id: id.clone(),
                });
            }
        }
        for (c, pos, id) in &by_completion {
            if *c >= r.invoke {
                break;
            }
            if *pos >= r.read.len() {
                anomalies.push(Anomaly::StaleRead {
                    key: key.clone(),
                    detail: format!(
                        "{id} was acknowledged before a read began, which returned {} orders without it",
                        r.read.len()
                    ),
                });
            }
        }
    }

    // Reads against reads: a read that began after another ended holds at least as much.
    let mut by_end: Vec<(u64, usize)> = reads
        .iter()
        .filter_map(|r| r.complete.map(|c| (c, r.read.len())))
        .collect();
    by_end.sort();
    for r in &reads {
        let longest_before = by_end
            .iter()
            .take_while(|(c, _)| *c < r.invoke)
            .map(|(_, len)| *len)
            .max()
            .unwrap_or(0);
        if longest_before > r.read.len() {
            anomalies.push(Anomaly::StaleRead {
                key: key.clone(),
                detail: format!(
                    "a read returned {} orders after an earlier read had returned {longest_before}",
                    r.read.len()
                ),
            });
        }
    }

    // Lost: acknowledged, absent from the order, and some read began after it was acknowledged.
    for (id, a) in &appends {
        if a.status != Status::Ok || position.contains_key(id) {
            continue;
        }
        if a.complete.is_some_and(|c| c < last_read_start) {
            anomalies.push(Anomaly::LostOrder {
                key: key.clone(),
                id: id.to_string(),
            });
        }
    }
}

/// Orders of the pre-defined history (client 0) exist before any client acts.
fn is_seed(id: &str) -> bool {
    id.starts_with("c0-")
}

#[cfg(test)]
mod tests {
    use super::*;

    use just_hungry_core::rng::SeededRng as Rng;

    /// A correct history: each operation takes effect at a random instant inside its interval,
    /// on a model of per-key lists; some appends end in `info`, some reads fail.
    fn correct_history(seed: u64, processes: u64, ops_per_process: u64) -> Vec<Event> {
        let mut rng = Rng::new(seed);
        let keys = ["SW1A 1AA", "M1 1AE", "EH1 2NG"];
        // (effect time, process, op index, is append, key, id, invoke, complete, info?)
        let mut planned = Vec::new();
        for p in 0..processes {
            let mut t = rng.below(50);
            for i in 0..ops_per_process {
                let invoke = t + 1 + rng.below(20);
                let complete = invoke + 1 + rng.below(60);
                let effect = invoke + rng.below(complete - invoke + 1);
                let append = rng.below(3) != 0;
                let key = keys[rng.below(keys.len() as u64) as usize];
                let info = append && rng.below(10) == 0;
                planned.push((
                    effect,
                    p,
                    i,
                    append,
                    key,
                    format!("c{}-{}", p + 1, i + 1),
                    invoke,
                    complete,
                    info,
                ));
                t = complete;
            }
        }
        planned.sort_by_key(|x| (x.0, x.1));
        let mut model: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut events = Vec::new();
        for (_, p, _, append, key, id, invoke, complete, info) in planned {
            if append {
                model.entry(key).or_default().push(id.clone());
                events.push(ev(
                    p,
                    EventType::Invoke,
                    Function::Append,
                    key,
                    Value::Id(id.clone()),
                    invoke,
                ));
                let kind = if info { EventType::Info } else { EventType::Ok };
                events.push(ev(p, kind, Function::Append, key, Value::Id(id), complete));
            } else {
                let list = model.get(key).cloned().unwrap_or_default();
                events.push(ev(
                    p,
                    EventType::Invoke,
                    Function::Read,
                    key,
                    Value::Null,
                    invoke,
                ));
                events.push(ev(
                    p,
                    EventType::Ok,
                    Function::Read,
                    key,
                    Value::List(list),
                    complete,
                ));
            }
        }
        // The closing reads, after everything.
        let end = events.iter().map(|e| e.time).max().unwrap_or(0) + 10;
        for (i, key) in keys.iter().enumerate() {
            let list = model.get(key).cloned().unwrap_or_default();
            let t = end + 10 * i as u64;
            events.push(ev(
                processes,
                EventType::Invoke,
                Function::Read,
                key,
                Value::Null,
                t,
            ));
            events.push(ev(
                processes,
                EventType::Ok,
                Function::Read,
                key,
                Value::List(list),
                t + 1,
            ));
        }
        events.sort_by_key(|e| e.time);
        events
    }

    fn ev(process: u64, kind: EventType, f: Function, key: &str, value: Value, time: u64) -> Event {
        Event {
            process,
            kind,
            f,
            key: key.to_owned(),
            value,
            time,
        }
    }

    fn lines(events: &[Event]) -> String {
        events.iter().map(|e| e.to_json_line() + "\n").collect()
    }

    fn verdict(events: &[Event]) -> Report {
        check_json_lines(&lines(events)).expect("well-formed")
    }

    /// The last ok read of `key`.
    fn last_read(events: &mut [Event], key: &str) -> usize {
        events
            .iter()
            .rposition(|e| e.key == key && e.f == Function::Read && e.kind == EventType::Ok)
            .expect("a read")
    }

    #[test]
    fn generated_correct_histories_pass() {
        for seed in 0..200 {
            let h = correct_history(seed, 4, 30);
            let report = verdict(&h);
            assert!(report.is_valid(), "seed {seed}: {report}");
        }
    }

    #[test]
    fn the_example_of_the_format_passes() {
        let text = r#"{"process":0,"type":"invoke","f":"append","key":"SW1A 2AA","value":"c0-1","time":1000}
{"process":1,"type":"invoke","f":"read","key":"SW1A 2AA","value":null,"time":1100}
{"process":0,"type":"ok","f":"append","key":"SW1A 2AA","value":"c0-1","time":2500}
{"process":1,"type":"ok","f":"read","key":"SW1A 2AA","value":["c0-1"],"time":2600}
"#;
        assert!(check_json_lines(text).unwrap().is_valid());
    }

    fn planted(seed: u64, plant: impl Fn(&mut Vec<Event>) -> bool) -> Option<Report> {
        let mut h = correct_history(seed, 4, 30);
        plant(&mut h).then(|| verdict(&h))
    }

    fn caught(
        name: &str,
        matches: impl Fn(&Anomaly) -> bool,
        plant: impl Fn(&mut Vec<Event>) -> bool,
    ) {
        let mut tried = 0;
        for seed in 0..50 {
            if let Some(report) = planted(seed, &plant) {
                tried += 1;
                assert!(
                    report.anomalies.iter().any(&matches),
                    "{name} not caught (seed {seed}): {report}"
                );
            }
        }
        assert!(
            tried > 10,
            "{name}: too few histories could be planted ({tried})"
        );
    }

    #[test]
    fn a_lost_order_is_caught_and_named() {
        caught(
            "lost",
            |a| matches!(a, Anomaly::LostOrder { .. }),
            |h| {
                // Remove an acknowledged order from every read.
                let Some(id) = h
                    .iter()
                    .find(|e| e.kind == EventType::Ok && e.f == Function::Append)
                    .map(|e| e.value.clone())
                else {
                    return false;
                };
                let Value::Id(id) = id else { return false };
                for e in h.iter_mut() {
                    if let Value::List(list) = &mut e.value {
                        list.retain(|x| *x != id);
                    }
                }
                true
            },
        );
    }

    #[test]
    fn a_doubled_order_is_caught_and_named() {
        caught(
            "doubled",
            |a| matches!(a, Anomaly::DoubledOrder { .. }),
            |h| {
                let i = last_read(h, "SW1A 1AA");
                let Value::List(list) = &mut h[i].value else {
                    return false;
                };
                let Some(first) = list.first().cloned() else {
                    return false;
                };
                list.push(first);
                true
            },
        );
    }

    #[test]
    fn a_stale_read_is_caught_and_named() {
        caught(
            "stale",
            |a| matches!(a, Anomaly::StaleRead { .. }),
            |h| {
                // A read (not the closing one) misses its last order, acknowledged before it began.
                let acked_at = |h: &Vec<Event>, id: &str| {
                    h.iter()
                        .find(|e| e.kind == EventType::Ok && e.value == Value::Id(id.to_owned()))
                        .map(|e| e.time)
                };
                let closing = last_read(h, "M1 1AE");
                for i in 0..closing {
                    let e = &h[i];
                    if e.key != "M1 1AE" || e.f != Function::Read || e.kind != EventType::Ok {
                        continue;
                    }
                    let Value::List(list) = &e.value else {
                        continue;
                    };
                    let Some(last) = list.last().cloned() else {
                        continue;
                    };
                    let Some(began) = h[..i]
                        .iter()
                        .rev()
                        .find(|x| x.process == e.process && x.kind == EventType::Invoke)
                        .map(|x| x.time)
                    else {
                        continue;
                    };
                    if acked_at(h, &last).is_some_and(|t| t < began) {
                        if let Value::List(list) = &mut h[i].value {
                            list.pop();
                        }
                        return true;
                    }
                }
                false
            },
        );
    }

    #[test]
    fn an_out_of_order_read_is_caught_and_named() {
        caught(
            "out of order",
            |a| matches!(a, Anomaly::OutOfOrder { .. }),
            |h| {
                // The closing read swaps two orders the second of which was placed after the first
                // was acknowledged.
                let time_of = |h: &Vec<Event>, kind: EventType, id: &str| {
                    h.iter()
                        .find(|e| e.kind == kind && e.value == Value::Id(id.to_owned()))
                        .map(|e| e.time)
                };
                let i = last_read(h, "EH1 2NG");
                let Value::List(list) = h[i].value.clone() else {
                    return false;
                };
                for a in 0..list.len() {
                    for b in a + 1..list.len() {
                        let acked = time_of(h, EventType::Ok, &list[a]);
                        let placed = time_of(h, EventType::Invoke, &list[b]);
                        if let (Some(acked), Some(placed)) = (acked, placed)
                            && acked < placed
                        {
                            if let Value::List(l) = &mut h[i].value {
                                l.swap(a, b);
                            }
                            return true;
                        }
                    }
                }
                false
            },
        );
    }

    #[test]
    fn a_read_of_an_order_before_it_was_placed_is_caught_and_named() {
        caught(
            "read before placed",
            |a| matches!(a, Anomaly::ReadBeforePlaced { .. }),
            |h| {
                // The first read of SW1A 1AA returns the postcode's last order, placed later.
                let last = last_read(h, "SW1A 1AA");
                let Value::List(full) = h[last].value.clone() else {
                    return false;
                };
                let Some(late) = full.last().cloned() else {
                    return false;
                };
                let Some(late_invoke) = h
                    .iter()
                    .find(|e| e.value == Value::Id(late.clone()))
                    .map(|e| e.time)
                else {
                    return false;
                };
                let Some(first) = h.iter().position(|e| {
                    e.key == "SW1A 1AA"
                        && e.f == Function::Read
                        && e.kind == EventType::Ok
                        && e.time < late_invoke
                }) else {
                    return false;
                };
                h[first].value = Value::List(vec![late]);
                true
            },
        );
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"M1 1AE\",\"value\":null,\"time\":1}\nnot json\n";
        assert!(matches!(
            check_json_lines(text),
            Err(HistoryError::Malformed { line: 2, .. })
        ));
        let orphan = "{\"process\":3,\"type\":\"ok\",\"f\":\"read\",\"key\":\"M1 1AE\",\"value\":[],\"time\":1}\n";
        assert!(matches!(
            check_json_lines(orphan),
            Err(HistoryError::Malformed { line: 1, .. })
        ));
    }
}
