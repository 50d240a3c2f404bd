//! The replicated state: the service's state plus the client table ([`ClientTable`]) and the
//! op they are at, which travel together in every snapshot and state transfer.

use crate::codec::{self, CodecError};
use crate::ids::OpNumber;
use crate::protocol::client_table::{ClientTable, ClientTableLimits, Seen};
use crate::protocol::messages::Entry;
use crate::state_machine::{ApplyContext, SnapshotReader, SnapshotWriter, StateMachine};

/// The service state, the client table and the op they are at: what every replica holds.
pub struct ReplicatedState<S: StateMachine> {
    service: S,
    clients: ClientTable<S::Reply>,
    applied: OpNumber,
    /// The snapshot being written to the replica's data directory, a piece per turn of its
    /// event loop ([`ReplicatedState::begin_disk_snapshot`]). It lives here so that every op
    /// applied goes through it first, and a state replaced whole takes it along.
    disk_snapshot: Option<Box<ReplicatedSnapshotWriter<S>>>,
}

/// Writes a snapshot of a [`ReplicatedState`] as it was when it began, a piece per call,
/// while later ops are applied (see [`ReplicatedState::snapshot_writer`]).
///
/// The layout: the length of the header (8 bytes, little-endian), the header (the op and the
/// client table, encoded when the snapshot began), then the service's own snapshot
/// ([`StateMachine::snapshot_writer`]) to the end.
pub struct ReplicatedSnapshotWriter<S: StateMachine> {
    header: Vec<u8>,
    header_written: usize,
    service: Box<dyn SnapshotWriter<S>>,
    done: bool,
}

impl<S: StateMachine> ReplicatedSnapshotWriter<S> {
    /// Called before `command` is applied to `state`, while the snapshot is being written.
    pub fn before_apply(&mut self, state: &ReplicatedState<S>, command: &S::Command) {
        if !self.done {
            self.service.before_apply(&state.service, command);
        }
    }

    /// Appends about `budget` more bytes of the snapshot to `out`; `true` once it is whole.
    pub fn write(
        &mut self,
        state: &ReplicatedState<S>,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Result<bool, CodecError> {
        if self.done {
            return Ok(true);
        }
        let start = out.len();
        if self.header_written < self.header.len() {
            let end = self
                .header_written
                .saturating_add(budget.max(1))
                .min(self.header.len());
            out.extend_from_slice(&self.header[self.header_written..end]);
            self.header_written = end;
            if end < self.header.len() {
                return Ok(false);
            }
            self.header = Vec::new();
        }
        let left = budget.saturating_sub(out.len() - start);
        if left > 0 || budget == 0 {
            self.done = self.service.write(&state.service, out, left.max(1))?;
        }
        Ok(self.done)
    }
}

/// Decodes a snapshot of a [`ReplicatedState`] from its bytes, fed in order as they arrive.
pub struct ReplicatedSnapshotReader<S: StateMachine> {
    /// Bytes of the header received so far (its length prefix included).
    header: Vec<u8>,
    decoded: Option<(OpNumber, ClientTable<S::Reply>)>,
    service: Box<dyn SnapshotReader<S>>,
}

/// The longest header (op and client table) a snapshot may announce.
const MAX_HEADER_BYTES: u64 = crate::codec::MAX_DECODE_BYTES as u64;

impl<S: StateMachine> ReplicatedSnapshotReader<S> {
    /// Takes the next bytes of the snapshot.
    pub fn read(&mut self, mut bytes: &[u8]) -> Result<(), CodecError> {
        if self.decoded.is_none() {
            while self.header.len() < 8 && !bytes.is_empty() {
                self.header.push(bytes[0]);
                bytes = &bytes[1..];
            }
            if self.header.len() < 8 {
                return Ok(());
            }
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&self.header[..8]);
            let len = u64::from_le_bytes(prefix);
            if len > MAX_HEADER_BYTES {
                return Err(CodecError::Decode(format!(
                    "a snapshot header of {len} bytes (at most {MAX_HEADER_BYTES})"
                )));
            }
            let wanted = 8 + len as usize - self.header.len();
            let take = wanted.min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if take < wanted {
                return Ok(());
            }
            let (applied, mut clients): (OpNumber, ClientTable<S::Reply>) =
                codec::decode(&self.header[8..])?;
            clients.rebuild_index();
            self.decoded = Some((applied, clients));
            self.header = Vec::new();
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.service.read(bytes)
    }

    /// The restored state; an error if the bytes stopped short of a whole snapshot.
    pub fn finish(self) -> Result<ReplicatedState<S>, CodecError> {
        let Some((applied, clients)) = self.decoded else {
            return Err(CodecError::Decode(
                "the snapshot ends inside its header".into(),
            ));
        };
        Ok(ReplicatedState {
            service: self.service.finish()?,
            clients,
            applied,
            disk_snapshot: None,
        })
    }
}

impl<S: StateMachine> ReplicatedState<S> {
    /// A state at op 0: the service's initial state and an empty client table.
    pub fn new(service: S, limits: ClientTableLimits) -> Self {
        ReplicatedState {
            service,
            clients: ClientTable::new(limits),
            applied: OpNumber(0),
            disk_snapshot: None,
        }
    }

    /// The service state.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The client table.
    pub fn clients(&self) -> &ClientTable<S::Reply> {
        &self.clients
    }

    /// The last op applied.
    pub fn applied(&self) -> OpNumber {
        self.applied
    }

    /// Applies `entry`, which must be the next op. A request already in the client table is
    /// not applied again: its recorded reply is returned.
    pub fn apply(&mut self, entry: &Entry<S::Command>) -> S::Reply {
        debug_assert_eq!(entry.op, self.applied.next(), "ops apply in order");
        if let Some(mut writer) = self.disk_snapshot.take() {
            writer.before_apply(self, &entry.command);
            self.disk_snapshot = Some(writer);
        }
        self.applied = entry.op;
        let seen = self.clients.check(entry.request);
        if let Seen::Done(reply) = seen {
            return reply;
        }
        let context = ApplyContext {
            op: entry.op,
            request: entry.request,
            time: entry.time,
        };
        let reply = self.service.apply(&context, &entry.command);
        // A delayed duplicate of a request its client gave up on can reach the log while the
        // client's next request is in flight, and so be applied after it. It must not replace
        // the newer request's record: the table would forget that one and apply its retry a
        // second time. (It stays `Stale`, so it is never applied again either.)
        if matches!(seen, Seen::New) {
            self.clients
                .record(entry.request, reply.clone(), entry.time, &entry.owner);
        }
        reply
    }

    /// Begins a snapshot of the state at its current op, written piece by piece while later
    /// ops are applied: call [`ReplicatedSnapshotWriter::before_apply`] before each of them.
    /// The client table is encoded now (it is bounded, [`ClientTableLimits`]); the service
    /// writes as its [`StateMachine::snapshot_writer`] does.
    pub fn snapshot_writer(&self) -> Result<ReplicatedSnapshotWriter<S>, CodecError> {
        let mut header = vec![0u8; 8];
        codec::encode_into(&(self.applied, &self.clients), &mut header)?;
        let len = (header.len() - 8) as u64;
        header[..8].copy_from_slice(&len.to_le_bytes());
        Ok(ReplicatedSnapshotWriter {
            header,
            header_written: 0,
            service: self.service.snapshot_writer()?,
            done: false,
        })
    }

    /// Begins the snapshot of the state at its current op that the replica's data directory
    /// is given a piece at a time ([`ReplicatedState::write_disk_snapshot`]), so that a large
    /// state is never encoded in one step of the replica's event loop. Replaces one under way.
    /// Returns the op it is at.
    pub fn begin_disk_snapshot(&mut self) -> Result<OpNumber, CodecError> {
        self.disk_snapshot = Some(Box::new(self.snapshot_writer()?));
        Ok(self.applied)
    }

    /// Appends about `budget` more bytes of the snapshot [`ReplicatedState::begin_disk_snapshot`]
    /// began to `out`: `Some(Ok(true))` once it is whole (it is then over), `None` if none is
    /// under way (never begun, over, or gone with a state replaced whole). The bytes restore
    /// ([`ReplicatedState::restore`]) the state as it was when it began, whatever was applied
    /// since.
    pub fn write_disk_snapshot(
        &mut self,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Option<Result<bool, CodecError>> {
        let mut writer = self.disk_snapshot.take()?;
        let written = writer.write(self, out, budget);
        if matches!(written, Ok(false)) {
            self.disk_snapshot = Some(writer);
        }
        Some(written)
    }

    /// A decoder of [`ReplicatedState::snapshot_writer`] bytes.
    pub fn snapshot_reader() -> ReplicatedSnapshotReader<S> {
        ReplicatedSnapshotReader {
            header: Vec::new(),
            decoded: None,
            service: S::snapshot_reader(),
        }
    }

    /// The whole state as bytes, in one step: what [`ReplicatedState::snapshot_writer`]
    /// writes when nothing is applied meanwhile.
    pub fn snapshot(&self) -> Result<Vec<u8>, CodecError> {
        let mut writer = self.snapshot_writer()?;
        let mut out = Vec::new();
        while !writer.write(self, &mut out, 1024 * 1024)? {}
        Ok(out)
    }

    /// Rebuilds a state from [`ReplicatedState::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Self::snapshot_reader();
        reader.read(bytes)?;
        reader.finish()
    }

    /// A digest of service, client table and op: equal on replicas holding the same state.
    pub fn digest(&self) -> u64 {
        let clients = codec::digest(&self.clients).unwrap_or(0);
        codec::fnv1a(
            &[
                self.service.digest().to_le_bytes(),
                clients.to_le_bytes(),
                self.applied.0.to_le_bytes(),
            ]
            .concat(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientId, RequestId, Time};
    use crate::sim::{KeyedLists, ListKey};

    fn state_with_writes(n: u64) -> ReplicatedState<KeyedLists> {
        let mut state = ReplicatedState::new(KeyedLists::default(), ClientTableLimits::default());
        for seq in 1..=n {
            let _reply = state.apply(&Entry {
                op: OpNumber(seq),
                request: RequestId {
                    client: ClientId(5 + seq % 3),
                    seq,
                },
                time: Time(seq),
                owner: "client".into(),
                command: ListKey(["a", "b", "c"][seq as usize % 3].into()),
            });
        }
        state
    }

    #[test]
    fn a_snapshot_restores_from_any_cutting_of_its_bytes() {
        let state = state_with_writes(20);
        let bytes = state.snapshot().unwrap();
        for size in [1, 7, 64, bytes.len()] {
            let mut reader = ReplicatedState::<KeyedLists>::snapshot_reader();
            for piece in bytes.chunks(size) {
                reader.read(piece).unwrap();
            }
            let back = reader.finish().unwrap();
            assert_eq!(back.digest(), state.digest());
            assert_eq!(back.applied(), OpNumber(20));
        }
    }

    #[test]
    fn truncated_or_extended_snapshots_are_refused() {
        let bytes = state_with_writes(3).snapshot().unwrap();
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(ReplicatedState::<KeyedLists>::restore(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ReplicatedState::<KeyedLists>::restore(&longer).is_err());
    }
}
