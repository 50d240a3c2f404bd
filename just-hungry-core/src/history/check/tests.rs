//! The checker against generated correct histories and planted anomalies of every kind.

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

fn caught(name: &str, matches: impl Fn(&Anomaly) -> bool, plant: impl Fn(&mut Vec<Event>) -> bool) {
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
    let event = r#"{"process":0,"type":"invoke","f":"read","key":"M1 1AE","value":null,"time":1}"#;
    assert!(matches!(
        History::parse(&format!("{event}\n{init}\n")),
        Err(HistoryError::Malformed { line: 2, .. })
    ));
    assert!(matches!(
        History::parse(&format!("{init}\n{init}\n")),
        Err(HistoryError::Malformed { line: 2, .. })
    ));
}
