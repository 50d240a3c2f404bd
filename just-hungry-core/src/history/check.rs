//! The checker of list-append histories (module docs of [`crate::history`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::{Event, EventType, Function, History, HistoryError, Value};

/// One kind of anomaly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anomaly {
    /// An acknowledged order is missing from reads that began after it was acknowledged, the
    /// last read of its postcode included.
    Lost {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read returned the same order twice.
    Doubled {
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
    ReadBeforeAppended {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read returned an order that was never placed, or whose placement failed.
    Phantom {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Lost { key, id } => {
                write!(
                    f,
                    "lost order: {id} at {key} was acknowledged, then missing from every later read"
                )
            }
            Anomaly::Doubled { key, id } => {
                write!(f, "doubled order: {id} appears twice in a read of {key}")
            }
            Anomaly::StaleRead { key, detail } => write!(f, "stale read of {key}: {detail}"),
            Anomaly::OutOfOrder { key, detail } => write!(f, "out of order at {key}: {detail}"),
            Anomaly::ReadBeforeAppended { key, id } => {
                write!(
                    f,
                    "read before placed: a read of {key} returned {id} before it was placed"
                )
            }
            Anomaly::Phantom { key, id } => write!(
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
mod tests {
    use super::*;

    use crate::rng::SeededRng as Rng;

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
        let mut history = History::default();
        for e in events {
            history.push(e.clone());
        }
        history.to_json_lines()
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
            |a| matches!(a, Anomaly::Lost { .. }),
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
            |a| matches!(a, Anomaly::Doubled { .. }),
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
            |a| matches!(a, Anomaly::ReadBeforeAppended { .. }),
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

    /// A history of one append and a final read of `read`, over the initial state `initial`.
    fn over_initial(initial: &[&str], read: &[&str]) -> History {
        let key = "SW1A 1AA";
        let mut state = BTreeMap::new();
        state.insert(
            key.to_owned(),
            initial.iter().map(|s| s.to_string()).collect(),
        );
        let mut history = History::new(state);
        history.push(ev(
            1,
            EventType::Invoke,
            Function::Append,
            key,
            Value::Id("c1-1".into()),
            10,
        ));
        history.push(ev(
            1,
            EventType::Ok,
            Function::Append,
            key,
            Value::Id("c1-1".into()),
            20,
        ));
        history.push(ev(
            2,
            EventType::Invoke,
            Function::Read,
            key,
            Value::Null,
            30,
        ));
        let list = read.iter().map(|s| s.to_string()).collect();
        history.push(ev(
            2,
            EventType::Ok,
            Function::Read,
            key,
            Value::List(list),
            40,
        ));
        history
    }

    #[test]
    fn the_declared_initial_state_is_read_first_and_is_no_phantom() {
        let history = over_initial(&["c0-1", "c0-2"], &["c0-1", "c0-2", "c1-1"]);
        let report = check(&history).unwrap();
        assert!(report.is_valid(), "{report}");
        // Written out and read back, the init line comes first and means the same.
        let text = history.to_json_lines();
        assert!(text.starts_with(r#"{"type":"init","key":"SW1A 1AA","value":["c0-1","c0-2"]}"#));
        assert_eq!(
            History::parse(&text).unwrap(),
            History {
                lines: (2..=5).collect(),
                ..history
            }
        );
    }

    #[test]
    fn an_undeclared_id_is_a_phantom_whatever_it_looks_like() {
        let report = check(&over_initial(&["c0-1"], &["c0-1", "c0-2", "c1-1"])).unwrap();
        assert!(
            report.anomalies.contains(&Anomaly::Phantom {
                key: "SW1A 1AA".into(),
                id: "c0-2".into()
            }),
            "{report}"
        );
    }

    #[test]
    fn a_read_that_loses_or_reorders_the_initial_state_is_caught() {
        let lost = check(&over_initial(&["c0-1", "c0-2"], &["c0-1", "c1-1"])).unwrap();
        assert!(
            lost.anomalies
                .iter()
                .any(|a| matches!(a, Anomaly::Lost { id, .. } if id == "c0-2")),
            "{lost}"
        );
        let reordered = check(&over_initial(&["c0-1", "c0-2"], &["c0-2", "c0-1", "c1-1"])).unwrap();
        assert!(
            reordered
                .anomalies
                .iter()
                .any(|a| matches!(a, Anomaly::OutOfOrder { .. })),
            "{reordered}"
        );
    }

    #[test]
    fn init_lines_after_an_event_or_twice_for_a_key_are_refused() {
        let init = r#"{"type":"init","key":"M1 1AE","value":["c0-1"]}"#;
        let event =
            r#"{"process":0,"type":"invoke","f":"read","key":"M1 1AE","value":null,"time":1}"#;
        assert!(matches!(
            History::parse(&format!("{event}\n{init}\n")),
            Err(HistoryError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            History::parse(&format!("{init}\n{init}\n")),
            Err(HistoryError::Malformed { line: 2, .. })
        ));
    }
}
