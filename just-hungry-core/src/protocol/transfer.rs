//! Snapshot streams: the primary's side ([`OutgoingSnapshot`]) and the receiver's
//! ([`IncomingSnapshot`]) of a state transfer (docs/PROTOCOL.md, "State transfer").
//!
//! The primary encodes the snapshot as the stream goes, a chunk at a time, from a
//! [`ReplicatedSnapshotWriter`] that keeps (before each op is applied) what the snapshot still
//! needs: encoding never takes a long step of the event loop, and writes go on meanwhile. At
//! most [`Transfer::window`] chunks are in flight; the receiver acknowledges the chunks it holds
//! below an index, and keeps chunks that arrive ahead of a missing one (up to
//! [`MAX_TRANSFER_WINDOW`]), so a lost chunk is sent again alone. The receiver decodes chunk by
//! chunk as they complete a prefix ([`ReplicatedSnapshotReader`]): it never holds the whole
//! snapshot's bytes.

use std::collections::{BTreeMap, VecDeque};

use crate::codec::CodecError;
use crate::ids::{OpNumber, ReplicaId, Time, ViewNumber};
use crate::protocol::messages::TransferChunk;
use crate::protocol::replicated_state::{
    ReplicatedSnapshotReader, ReplicatedSnapshotWriter, ReplicatedState,
};
use crate::protocol::{MAX_TRANSFER_WINDOW, Transfer};
use crate::state_machine::StateMachine;

/// The most chunks a stream encodes in one call of [`OutgoingSnapshot::fill`].
const CHUNKS_PER_STEP: usize = 2;

/// A snapshot a primary streams to one receiver.
pub(crate) struct OutgoingSnapshot<S: StateMachine> {
    /// The op the snapshot is at.
    pub(crate) op: OpNumber,
    writer: ReplicatedSnapshotWriter<S>,
    written: bool,
    /// Bytes written and not yet cut into a chunk.
    pending: Vec<u8>,
    /// Chunks sent and not acknowledged: chunk `acked + i` is `unacked[i]`.
    unacked: VecDeque<Vec<u8>>,
    /// The receiver holds every chunk below this index.
    acked: u32,
    /// The index of the last chunk, once it is cut.
    last: Option<u32>,
    /// The last chunk, kept after its acknowledgement: sent again to ask for the receiver's
    /// confirmation (`StartViewOk`, `PrepareOk`) when that was lost.
    last_chunk: Vec<u8>,
    /// When the receiver last acknowledged a new chunk, or a chunk was last sent again.
    pub(crate) progress_at: Time,
    /// Acknowledgements in a row below `acked`: one is an older acknowledgement overtaken by
    /// a newer one; several mean the receiver holds less than it acknowledged.
    behind: u32,
}

/// What an acknowledgement meant to the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acknowledged {
    /// New chunks acknowledged (or a duplicate, or an older acknowledgement overtaken by a
    /// newer one): more may be sent.
    Progress,
    /// The receiver holds none of the chunks it acknowledged before: it dropped what it had
    /// (it gave up on a stream that went silent). The stream must begin again.
    Lost,
}

impl<S: StateMachine> OutgoingSnapshot<S> {
    /// Begins a snapshot of `state` at its current op.
    pub(crate) fn begin(state: &ReplicatedState<S>, now: Time) -> Result<Self, CodecError> {
        Ok(OutgoingSnapshot {
            op: state.applied(),
            writer: state.snapshot_writer()?,
            written: false,
            pending: Vec::new(),
            unacked: VecDeque::new(),
            acked: 0,
            last: None,
            last_chunk: Vec::new(),
            progress_at: now,
            behind: 0,
        })
    }

    /// Called before `command` is applied to `state`.
    pub(crate) fn before_apply(&mut self, state: &ReplicatedState<S>, command: &S::Command) {
        if !self.written {
            self.writer.before_apply(state, command);
        }
    }

    /// Encodes and returns the chunks the window lets out now, at most
    /// [`CHUNKS_PER_STEP`]: a stream begins with that many chunks in flight and grows by one
    /// per acknowledgement up to the window, so no single step of the primary's event loop
    /// encodes a whole window.
    pub(crate) fn fill(
        &mut self,
        state: &ReplicatedState<S>,
        transfer: Transfer,
    ) -> Result<Vec<TransferChunk<S::Command>>, CodecError> {
        let chunk_bytes = transfer.chunk_bytes();
        let mut chunks = Vec::new();
        while self.last.is_none()
            && self.unacked.len() < transfer.window() as usize
            && chunks.len() < CHUNKS_PER_STEP
        {
            while !self.written && self.pending.len() < chunk_bytes {
                let budget = chunk_bytes - self.pending.len();
                self.written = self.writer.write(state, &mut self.pending, budget)?;
            }
            let take = chunk_bytes.min(self.pending.len());
            let bytes: Vec<u8> = self.pending.drain(..take).collect();
            let index = self.acked + self.unacked.len() as u32;
            let last = self.written && self.pending.is_empty();
            if last {
                self.last = Some(index);
                self.pending = Vec::new();
                self.last_chunk = bytes.clone();
            }
            chunks.push(TransferChunk::Snapshot {
                index,
                last,
                bytes: bytes.clone(),
            });
            self.unacked.push_back(bytes);
        }
        Ok(chunks)
    }

    /// The receiver holds every chunk below `next`.
    ///
    /// A receiver that dropped its chunks holds fewer than it acknowledged: it acknowledges
    /// 0 (or 1, when a duplicate of chunk 0 reached it again). One acknowledgement below what
    /// was acknowledged may be an older one, reordered, and is ignored; three in a row mean
    /// the receiver lost what it had (found by the simulator: a receiver that kept
    /// acknowledging 1 while the sender resent chunk 3 for ever).
    pub(crate) fn acknowledge(&mut self, next: u32, now: Time) -> Acknowledged {
        if next < self.acked {
            self.behind += 1;
            if next == 0 || self.behind >= 3 {
                return Acknowledged::Lost;
            }
            return Acknowledged::Progress;
        }
        self.behind = 0;
        let sent = self.acked + self.unacked.len() as u32;
        let next = next.min(sent);
        if next > self.acked {
            self.progress_at = now;
        }
        while self.acked < next {
            self.unacked.pop_front();
            self.acked += 1;
        }
        Acknowledged::Progress
    }

    /// The chunk to send again when no acknowledgement came for a while: the first one not
    /// acknowledged, or the last one when every chunk was (to ask for the confirmation).
    pub(crate) fn resend(&mut self, now: Time) -> Option<TransferChunk<S::Command>> {
        self.progress_at = now;
        if let Some(bytes) = self.unacked.front() {
            return Some(TransferChunk::Snapshot {
                index: self.acked,
                last: self.last == Some(self.acked),
                bytes: bytes.clone(),
            });
        }
        let last = self.last?;
        Some(TransferChunk::Snapshot {
            index: last,
            last: true,
            bytes: self.last_chunk.clone(),
        })
    }
}

/// Whose snapshot is being received, which decides the chunks that belong together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SnapshotOf {
    /// The state of a view being started (`StartView`): chunks naming that view.
    View(ViewNumber),
    /// A learner's snapshot (`Learn`), streamed by this primary: its chunks belong together
    /// whatever view they name, as a primary keeps one stream per learner through its view
    /// changes.
    Primary(ReplicaId),
}

/// A snapshot being received chunk by chunk, decoded as its chunks complete a prefix.
pub(crate) struct IncomingSnapshot<S: StateMachine> {
    pub(crate) of: SnapshotOf,
    pub(crate) op: OpNumber,
    reader: ReplicatedSnapshotReader<S>,
    /// Every chunk below this index was decoded.
    pub(crate) next: u32,
    /// Chunks after a missing one: index -> (last, bytes).
    early: BTreeMap<u32, (bool, Vec<u8>)>,
    /// Bytes received: decoded and early.
    pub(crate) bytes: usize,
    /// When the last chunk arrived: an incomplete snapshot is dropped after
    /// [`crate::protocol::Timing::learner_expiry`] without one.
    pub(crate) last_chunk_at: Time,
}

/// Why a received chunk ended the snapshot without a state.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// More bytes than the receiver holds for one snapshot.
    #[error("a snapshot larger than max_snapshot_bytes ({max})")]
    TooLarge { max: usize },
    /// The bytes do not decode.
    #[error("a snapshot that does not decode: {0}")]
    Decode(#[from] CodecError),
    /// It decoded to a state at another op than announced.
    #[error("a snapshot at op {got}, announced at {expected}")]
    WrongOp { expected: OpNumber, got: OpNumber },
}

impl<S: StateMachine> IncomingSnapshot<S> {
    pub(crate) fn new(of: SnapshotOf, op: OpNumber, now: Time) -> Self {
        IncomingSnapshot {
            of,
            op,
            reader: ReplicatedState::<S>::snapshot_reader(),
            next: 0,
            early: BTreeMap::new(),
            bytes: 0,
            last_chunk_at: now,
        }
    }

    /// Takes chunk `index`; returns the state once its last chunk is decoded. A chunk already
    /// decoded, or too far ahead of the first missing one, is ignored.
    pub(crate) fn receive(
        &mut self,
        now: Time,
        index: u32,
        last: bool,
        bytes: Vec<u8>,
        max_bytes: usize,
    ) -> Result<Option<ReplicatedState<S>>, Refused> {
        self.last_chunk_at = now;
        if index < self.next
            || index >= self.next.saturating_add(MAX_TRANSFER_WINDOW)
            || self.early.contains_key(&index)
        {
            return Ok(None);
        }
        if self.bytes.saturating_add(bytes.len()) > max_bytes {
            return Err(Refused::TooLarge { max: max_bytes });
        }
        self.bytes += bytes.len();
        self.early.insert(index, (last, bytes));
        while let Some((last, bytes)) = self.early.remove(&self.next) {
            self.reader.read(&bytes)?;
            self.next += 1;
            if last {
                let reader =
                    std::mem::replace(&mut self.reader, ReplicatedState::<S>::snapshot_reader());
                let state = reader.finish()?;
                if state.applied() != self.op {
                    return Err(Refused::WrongOp {
                        expected: self.op,
                        got: state.applied(),
                    });
                }
                return Ok(Some(state));
            }
        }
        Ok(None)
    }
}
