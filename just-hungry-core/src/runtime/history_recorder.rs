//! Recording a [`History`] from concurrent async clients on one clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::history::{Event, History};

/// Records the events of concurrent clients on one monotonic clock (tokio's, so a paused clock
/// gives virtual nanoseconds). Clones share the record. The initial state is declared when the
/// recorder is made, so the history it yields starts with its `init` lines.
#[derive(Clone, Debug)]
pub struct HistoryRecorder {
    initial: Arc<BTreeMap<String, Vec<String>>>,
    events: Arc<Mutex<Vec<Event>>>,
    origin: tokio::time::Instant,
    last: Arc<AtomicU64>,
}

impl HistoryRecorder {
    /// An empty record of a system whose keys start with the lists of `initial`; its clock
    /// starts now.
    pub fn new(initial: BTreeMap<String, Vec<String>>) -> Self {
        HistoryRecorder {
            initial: Arc::new(initial),
            events: Default::default(),
            origin: tokio::time::Instant::now(),
            last: Default::default(),
        }
    }

    /// Nanoseconds since the record began; strictly increasing from call to call, so events
    /// that follow one another never share a time (a paused clock may not move between them).
    pub fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(elapsed.max(last.saturating_add(1)))
            })
            .unwrap_or(0);
        elapsed.max(previous.saturating_add(1))
    }

    /// Adds an event (events of one process must be added in their order).
    pub fn record(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// The history so far: the declared initial state, then every event in time order (stable:
    /// equal times keep the order they were recorded in).
    pub fn history(&self) -> History {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        events.sort_by_key(|e| e.time);
        let mut history = History::new((*self.initial).clone());
        for event in events {
            history.push(event);
        }
        history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventType, Function, Value};

    fn event(process: u64, kind: EventType, time: u64) -> Event {
        Event {
            process,
            kind,
            f: Function::Append,
            key: "K".into(),
            value: Value::Id(format!("c{process}-1")),
            time,
        }
    }

    #[test]
    fn the_clock_strictly_increases_and_the_history_is_sorted_after_its_init_lines() {
        let initial = BTreeMap::from([("K".to_string(), vec!["c0-1".to_string()])]);
        let recorder = HistoryRecorder::new(initial.clone());
        let (a, b) = (recorder.now(), recorder.now());
        assert!(b > a, "{b} after {a}");
        recorder.record(event(2, EventType::Invoke, 20));
        recorder.record(event(1, EventType::Invoke, 10));
        recorder.record(event(1, EventType::Ok, 30));
        let history = recorder.history();
        assert_eq!(history.initial(), &initial);
        let times: Vec<u64> = history.events().iter().map(|e| e.time).collect();
        assert_eq!(times, vec![10, 20, 30]);
        let text = history.to_json_lines();
        assert!(text.starts_with("{\"type\":\"init\""), "{text}");
        assert_eq!(History::parse(&text).unwrap().events(), history.events());
    }
}
