//! The client history: what every simulated client invoked and saw, in the format of
//! `history-format.md` (JSON lines: `process`, `type`, `f`, `key`, `value`, `time`).
//!
//! The events are kept structured ([`HistoryEvent`]) for the checks of the simulator, and can
//! be written as JSON lines ([`to_json_lines`]) for an external linearizability checker.

use std::fmt::Write as _;

use crate::ids::{RequestId, Time};

/// What happened to an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The client started it.
    Invoke,
    /// It took effect, and this is its result.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may or may not have taken effect (a timeout).
    Info,
}

impl EventType {
    /// The name in the history format.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// Which operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A write: `append` its id to the key's list (an order to its postcode's).
    Append,
    /// Read a key's list (a postcode's order history).
    Read,
}

impl OpKind {
    /// The name in the history format (`f`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Append => "append",
            OpKind::Read => "read",
        }
    }
}

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// The client (its index in the simulation).
    pub process: usize,
    /// Invoke or completion.
    pub kind: EventType,
    /// Append or read.
    pub op: OpKind,
    /// The key in canonical form (as typed when it has none).
    pub key: String,
    /// The request id: for an append, the id it appends (known before invoking).
    pub request: RequestId,
    /// For an `ok` read: the ids of the key's list, in stored order.
    pub read: Option<Vec<RequestId>>,
    /// Virtual time of the event.
    pub time: Time,
}

impl HistoryEvent {
    /// The event as one JSON object (no trailing newline). `time` is in nanoseconds, as the
    /// format asks (virtual milliseconds times 10^6).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        let _ = write!(
            out,
            "{{\"process\":{},\"type\":\"{}\",\"f\":\"{}\",\"key\":",
            self.process,
            self.kind.as_str(),
            self.op.as_str()
        );
        json_string(&mut out, &self.key);
        out.push_str(",\"value\":");
        match (self.op, &self.read) {
            (OpKind::Append, _) => json_string(&mut out, &self.request.to_string()),
            (OpKind::Read, Some(ids)) => {
                out.push('[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(&mut out, &id.to_string());
                }
                out.push(']');
            }
            (OpKind::Read, None) => out.push_str("null"),
        }
        let _ = write!(
            out,
            ",\"time\":{}}}",
            self.time.as_millis().saturating_mul(1_000_000)
        );
        out
    }
}

/// The whole history as JSON lines, one event a line, in order.
pub fn to_json_lines(events: &[HistoryEvent]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&e.to_json());
        out.push('\n');
    }
    out
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClientId;

    #[test]
    fn json_lines_follow_the_history_format() {
        let request = RequestId {
            client: ClientId(3),
            seq: 17,
        };
        let append = HistoryEvent {
            process: 0,
            kind: EventType::Invoke,
            op: OpKind::Append,
            key: "SW1A 2AA".into(),
            request,
            read: None,
            time: Time(1),
        };
        assert_eq!(
            append.to_json(),
            r#"{"process":0,"type":"invoke","f":"append","key":"SW1A 2AA","value":"c3-17","time":1000000}"#
        );
        let read = HistoryEvent {
            process: 1,
            kind: EventType::Ok,
            op: OpKind::Read,
            key: "a\"b".into(),
            request,
            read: Some(vec![request, request]),
            time: Time(2),
        };
        assert_eq!(
            read.to_json(),
            r#"{"process":1,"type":"ok","f":"read","key":"a\"b","value":["c3-17","c3-17"],"time":2000000}"#
        );
        let pending = HistoryEvent {
            kind: EventType::Invoke,
            read: None,
            ..read
        };
        assert!(pending.to_json().contains(r#""value":null"#));
        assert_eq!(to_json_lines(&[append.clone(), append]).lines().count(), 2);
    }
}
