//! The checker of list-append histories (module docs of [`crate::history`]).

use super::{Anomaly, Event, EventType, Function, History, HistoryError, Report, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
fn operations(events: &[(usize, &Event)]) -> Result<Vec<Operation>, HistoryError> {
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

/// Checks a history: lost, doubled and phantom ids, stale and out-of-order reads, against the
/// list-append model (module docs). An error only for a history that breaks the format's rules
/// (an invoke while another is open, an id appended twice, ...), with its line.
pub fn check(history: &History) -> Result<Report, HistoryError> {
    let events: Vec<(usize, &Event)> = history.numbered().collect();
    let ops = operations(&events)?;
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for ids_of_key in history.initial().values() {
        ids.extend(ids_of_key.iter().cloned());
    }
    for (line, e) in &events {
        if let (EventType::Invoke, Value::Id(id)) = (e.kind, &e.value)
            && !ids.insert(id.clone())
        {
            return Err(HistoryError::Malformed {
                line: *line,
                reason: format!(
                    "id {id} is appended twice (or declared and appended): ids must be unique"
                ),
            });
        }
    }
    let initial = initial_operations(history);
    for op in ops.iter().chain(&initial) {
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
        let initial = history.initial().get(key).map_or(&[][..], Vec::as_slice);
        check_key(key, &ops, initial, &mut report.anomalies);
    }
    report.anomalies.sort();
    report.anomalies.dedup();
    Ok(report)
}

/// Parses and checks a history in JSON lines.
pub fn check_json_lines(text: &str) -> Result<Report, HistoryError> {
    check(&History::parse(text)?)
}

/// The ids of the initial state as appends acknowledged at time 0, before any operation: every
/// read must hold them, first and in their order, and none is a phantom.
fn initial_operations(history: &History) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (key, ids) in history.initial() {
        for id in ids {
            ops.push(Operation {
                f: Function::Append,
                key: key.clone(),
                id: Some(id.clone()),
                invoke: 0,
                complete: Some(0),
                status: Status::Ok,
                read: Vec::new(),
            });
        }
    }
    ops
}

fn check_key(key: &str, ops: &[&Operation], initial: &[String], anomalies: &mut Vec<Anomaly>) {
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
                anomalies.push(Anomaly::Doubled {
                    key: key.clone(),
                    id: id.clone(),
                });
            }
            match appends.get(id.as_str()) {
                None => anomalies.push(Anomaly::Phantom {
                    key: key.clone(),
                    id: id.clone(),
                }),
                Some(a) if a.status == Status::Fail => anomalies.push(Anomaly::Phantom {
                    key: key.clone(),
                    id: id.clone(),
                }),
                Some(_) => {}
            }
        }
    }

    // Every read begins with the initial state, in its order.
    for r in &reads {
        let n = initial.len().min(r.read.len());
        if r.read[..n] != initial[..n] {
            anomalies.push(Anomaly::OutOfOrder {
                key: key.clone(),
                detail: format!(
                    "a read does not begin with the initial state {initial:?}: {:?}",
                    &r.read[..n]
                ),
            });
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
                anomalies.push(Anomaly::ReadBeforeAppended {
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
            anomalies.push(Anomaly::Lost {
                key: key.clone(),
                id: id.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
