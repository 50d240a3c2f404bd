//! The trait a replicated service implements, and the hook that validates its commands.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};
use crate::ids::{OpNumber, RequestId, Time};

/// What every command, reply, query and answer must be: serializable, clonable, printable and
/// sendable between threads. Implemented for every type that qualifies.
pub trait Payload: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static> Payload for T {}

/// Where an applied command comes from: the same on every replica, so `apply` can use it and
/// stay deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyContext {
    /// The command's position in the op log.
    pub op: OpNumber,
    /// The client request it answers; unique, so a service may use it as an id.
    pub request: RequestId,
    /// When the primary accepted it (the primary's clock). Use it instead of a clock.
    pub time: Time,
}

/// A service replicated by just-hungry: a deterministic state machine.
///
/// The core is generic over this trait and knows nothing else of the service; the order book
/// (`just_hungry::orders::OrderBook`) is one implementation, a counter in `examples/` another.
///
/// # To ensure correctness
///
/// - `apply` must be deterministic: the same state and the same command give the same new state
///   and the same reply on every replica, whatever the machine. Read time from
///   [`ApplyContext::time`], never from a clock; no randomness; no I/O.
/// - `apply` must not panic on any command: a command that is wrong for the current state
///   returns an error *reply* and leaves the state unchanged.
/// - `snapshot` followed by `restore` gives a state equal to the original (same `digest`).
/// - The default `snapshot` and `digest` encode `Self` with serde: the encoding must be
///   deterministic, so use ordered maps (`BTreeMap`), not `HashMap`.
pub trait StateMachine: Serialize + DeserializeOwned + Send + 'static {
    /// A write, as replicated to every replica (already validated by the primary).
    type Command: Payload;
    /// What a write answers. Errors that depend on the state are replies too.
    type Reply: Payload;
    /// A read.
    type Query: Payload;
    /// What a read answers.
    type QueryReply: Payload;

    /// The service's name (`just-hungry/orders`): the TCP hello carries it, and a node of
    /// another service refuses the connection with an error naming both, rather than failing
    /// to decode its messages. Keep it stable across versions of your service.
    const SERVICE: &'static str;

    /// Applies one command. Deterministic; never panics.
    fn apply(&mut self, context: &ApplyContext, command: &Self::Command) -> Self::Reply;

    /// Answers one read from the current state.
    fn query(&self, query: &Self::Query) -> Self::QueryReply;

    /// Why `reply` refuses its write, as a short metric label (`invalid_postcode`: lower case,
    /// words joined by `_`, from a small fixed set), or `None` when the write was applied. The
    /// front-end counts answers by outcome with it
    /// ([`crate::protocol::stats::RequestOutcome`]). By default every reply is a success.
    fn refusal(reply: &Self::Reply) -> Option<&'static str> {
        let _ = reply;
        None
    }

    /// The whole state as bytes (for state transfer).
    fn snapshot(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Rebuilds a state from [`StateMachine::snapshot`] bytes.
    fn restore(bytes: &[u8]) -> Result<Self, CodecError>
    where
        Self: Sized,
    {
        codec::decode(bytes)
    }

    /// Begins a snapshot of the state as it is now, to be written piece by piece
    /// ([`SnapshotWriter::write`]) while commands go on being applied: the replica transfers
    /// its state to a joining replica or a backup with it, a chunk per turn of its event loop,
    /// so writes are not stopped while a large state is encoded.
    ///
    /// The default encodes the whole [`StateMachine::snapshot`] now (one step, as long as the
    /// state is large) and then hands its bytes out. A service whose state is large overrides
    /// it with a writer that encodes lazily and keeps, through
    /// [`SnapshotWriter::before_apply`], what a later command changes before it is written
    /// (the order book does: `just_hungry::orders::OrderBook`). The bytes written must restore
    /// through [`StateMachine::snapshot_reader`].
    fn snapshot_writer(&self) -> Result<Box<dyn SnapshotWriter<Self>>, CodecError>
    where
        Self: Sized,
    {
        Ok(Box::new(WholeSnapshot {
            bytes: self.snapshot()?,
            written: 0,
        }))
    }

    /// A decoder of the bytes of a [`StateMachine::snapshot_writer`], fed as they arrive
    /// ([`SnapshotReader::read`]), so a receiver can decode while the transfer goes on instead
    /// of holding every chunk. The default gathers the bytes and calls
    /// [`StateMachine::restore`] at the end.
    fn snapshot_reader() -> Box<dyn SnapshotReader<Self>>
    where
        Self: Sized,
    {
        Box::new(GatheredSnapshot { bytes: Vec::new() })
    }

    /// A digest of the state: equal states have equal digests on every replica.
    fn digest(&self) -> u64 {
        codec::digest(self).unwrap_or(0)
    }
}

/// A snapshot being written, piece by piece, of the state as it was when
/// [`StateMachine::snapshot_writer`] began it, while later commands change that state.
///
/// # To ensure correctness
///
/// The bytes of successive [`SnapshotWriter::write`] calls, fed in order to a
/// [`StateMachine::snapshot_reader`], restore the state as it was at the beginning, whatever
/// commands were applied in between, provided [`SnapshotWriter::before_apply`] saw each of
/// them first.
pub trait SnapshotWriter<S: StateMachine>: Send {
    /// Called with the state before each command is applied to it, once the snapshot has
    /// begun: keep what the command will change and the snapshot still has to write.
    fn before_apply(&mut self, state: &S, command: &S::Command);

    /// Appends the next bytes of the snapshot to `out`: about `budget` bytes (a writer may stop
    /// short or go past it by one of its records). Returns `true` once the whole snapshot has
    /// been written (the last call may write nothing).
    fn write(&mut self, state: &S, out: &mut Vec<u8>, budget: usize) -> Result<bool, CodecError>;
}

/// A decoder of a snapshot's bytes, fed in order as they arrive.
pub trait SnapshotReader<S>: Send {
    /// Takes the next bytes; decodes what they complete. An error means the snapshot cannot
    /// be restored (the receiver drops it).
    fn read(&mut self, bytes: &[u8]) -> Result<(), CodecError>;

    /// The restored state, once every byte was read; an error if the bytes stop short of a
    /// whole snapshot.
    fn finish(self: Box<Self>) -> Result<S, CodecError>;
}

/// The default writer: the whole snapshot, encoded when it began.
struct WholeSnapshot {
    bytes: Vec<u8>,
    written: usize,
}

impl<S: StateMachine> SnapshotWriter<S> for WholeSnapshot {
    fn before_apply(&mut self, _state: &S, _command: &S::Command) {}

    fn write(&mut self, _state: &S, out: &mut Vec<u8>, budget: usize) -> Result<bool, CodecError> {
        let end = self
            .written
            .saturating_add(budget.max(1))
            .min(self.bytes.len());
        out.extend_from_slice(&self.bytes[self.written..end]);
        self.written = end;
        Ok(self.written == self.bytes.len())
    }
}

/// The default reader: gathers the bytes, then [`StateMachine::restore`].
struct GatheredSnapshot {
    bytes: Vec<u8>,
}

impl<S: StateMachine> SnapshotReader<S> for GatheredSnapshot {
    fn read(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<S, CodecError> {
        S::restore(&self.bytes)
    }
}

/// Checks a write at the primary before it is replicated, and may rewrite it into its
/// deterministic form (the order book normalises the postcode here).
///
/// Validation may be slow and non-deterministic (an HTTP call): it runs once, at the primary,
/// and what is replicated is its result (docs/PROTOCOL.md, "Normal operation"). The runtime runs it
/// off the protocol's event loop, so a slow validation never stalls other requests.
///
/// # To ensure correctness
///
/// `Ok(command)` is replicated and applied everywhere; `Err(reply)` is sent to the client and
/// nothing is replicated, so an `Err` must describe a request that changed nothing.
#[async_trait::async_trait]
pub trait CommandValidator<S: StateMachine>: Send + Sync + 'static {
    /// Accepts (possibly rewritten) or refuses one command.
    async fn validate(&self, command: S::Command) -> Result<S::Command, S::Reply>;
}

/// A validator that accepts every command as it is: for services whose commands need no
/// checking beyond what `apply` does.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

#[async_trait::async_trait]
impl<S: StateMachine> CommandValidator<S> for AcceptAll {
    async fn validate(&self, command: S::Command) -> Result<S::Command, S::Reply> {
        Ok(command)
    }
}
