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
/// ([`crate::orders::OrderBook`]) is one implementation, a counter in `examples/` another.
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

    /// Appends [`StateMachine::snapshot`] bytes to `out`. The replica encodes the state
    /// transferred to a joining replica with it, into the buffer that already holds the client
    /// table, so no second copy of the state is made. The default calls `snapshot`; override
    /// it (with `restore_from_reader`) only to encode straight into `out`.
    fn snapshot_into(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.snapshot()?);
        Ok(())
    }

    /// Rebuilds a state from the [`StateMachine::snapshot`] bytes that `reader` yields (to its
    /// end). A receiver restores a transferred state with it while the chunks are still being
    /// released, rather than first gathering them into one buffer. The default reads every
    /// byte, then calls `restore`.
    fn restore_from_reader(reader: &mut dyn std::io::Read) -> Result<Self, CodecError>
    where
        Self: Sized,
    {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| CodecError::Decode(e.to_string()))?;
        Self::restore(&bytes)
    }

    /// A digest of the state: equal states have equal digests on every replica.
    fn digest(&self) -> u64 {
        codec::digest(self).unwrap_or(0)
    }
}

/// Checks a write at the primary before it is replicated, and may rewrite it into its
/// deterministic form (the order book normalises the postcode here).
///
/// Validation may be slow and non-deterministic (an HTTP call): it runs once, at the primary,
/// and what is replicated is its result (PROTOCOL.md, "Normal operation"). The runtime runs it
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
