//! The primary's and a follower's logs of entries: what stays in the recent log, which suffix
//! brings a peer up to date and whether one fits a state, and applying a committed entry while
//! snapshots stream.

use std::collections::VecDeque;

use super::Peer;
use crate::ids::OpNumber;
use crate::protocol::messages::Entry;
use crate::protocol::replicated_state::ReplicatedState;
use crate::protocol::{MAX_CHUNK_BYTES, MAX_RECENT_ENTRIES};
use crate::state_machine::StateMachine;

/// Applies a committed `entry` to the primary's state, after telling the snapshot streams of
/// `peers` (which must keep what it changes and they still have to send).
pub(super) fn apply_noting_streams<'a, S: StateMachine>(
    state: &mut ReplicatedState<S>,
    peers: impl Iterator<Item = &'a mut Peer<S>>,
    entry: &Entry<S::Command>,
) -> S::Reply {
    for peer in peers {
        if let Some(stream) = peer.snapshot.as_mut() {
            stream.before_apply(state, &entry.command);
        }
    }
    state.apply(entry)
}

pub(super) fn push_recent<C>(recent: &mut VecDeque<Entry<C>>, entry: Entry<C>) {
    recent.push_back(entry);
    while recent.len() > MAX_RECENT_ENTRIES {
        recent.pop_front();
    }
}

/// The committed entries after `acked` up to `applied`, if `recent` still holds them all.
pub(super) fn suffix_after<C: Clone + serde::Serialize>(
    recent: &VecDeque<Entry<C>>,
    acked: OpNumber,
    applied: OpNumber,
) -> Option<Vec<Entry<C>>> {
    if acked >= applied {
        return (acked == applied).then(Vec::new);
    }
    let first = recent.front()?.op;
    if first > acked.next() {
        return None;
    }
    // A suffix travels in one message: past MAX_CHUNK_BYTES, a snapshot in chunks instead
    // (a transport drops a message longer than its frame).
    let mut bytes = 0usize;
    let mut entries = Vec::new();
    for entry in recent.iter().filter(|e| e.op > acked) {
        bytes = bytes.saturating_add(crate::codec::encoded_len(entry).ok()?);
        if bytes > MAX_CHUNK_BYTES {
            return None;
        }
        entries.push(entry.clone());
    }
    Some(entries)
}

/// Whether `entries` bring a state at `applied` exactly to `op`.
pub(super) fn suffix_fits<C>(applied: OpNumber, op: OpNumber, entries: &[Entry<C>]) -> bool {
    if applied > op {
        return false;
    }
    let mut next = applied.next();
    for entry in entries {
        if entry.op > next {
            return false;
        }
        if entry.op == next {
            next = next.next();
        }
    }
    next == op.next()
}

/// Entries `from ..= to` from the committed `recent` entries and the uncommitted `log`.
pub(super) fn entries_between<C: Clone>(
    recent: &VecDeque<Entry<C>>,
    log: &VecDeque<Entry<C>>,
    from: OpNumber,
    to: OpNumber,
) -> Option<Vec<Entry<C>>> {
    let mut out = Vec::with_capacity((to.0.saturating_sub(from.0) + 1) as usize);
    let mut next = from;
    for source in [recent, log] {
        let Some(first) = source.front() else {
            continue;
        };
        if next < first.op {
            continue;
        }
        let start = (next.0 - first.op.0) as usize;
        for entry in source.iter().skip(start) {
            if entry.op > to {
                break;
            }
            out.push(entry.clone());
            next = entry.op.next();
        }
    }
    (next == to.next()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(count: u64, bytes: usize) -> VecDeque<Entry<String>> {
        (1..=count)
            .map(|op| Entry {
                op: OpNumber(op),
                request: crate::ids::RequestId {
                    client: crate::ids::ClientId(1),
                    seq: op,
                },
                owner: "client".into(),
                time: crate::ids::Time(0),
                command: "x".repeat(bytes),
            })
            .collect()
    }

    #[test]
    fn a_suffix_longer_than_a_chunk_is_not_offered() {
        let small = entries(20, 1000);
        assert_eq!(
            suffix_after(&small, OpNumber(5), OpNumber(20)).map(|s| s.len()),
            Some(15)
        );
        // 20 entries of 100 KiB: two megabytes, more than one message may carry.
        let large = entries(20, 100 * 1024);
        assert_eq!(suffix_after(&large, OpNumber(5), OpNumber(20)), None);
        assert_eq!(
            suffix_after(&large, OpNumber(15), OpNumber(20)).map(|s| s.len()),
            Some(5)
        );
    }
}
