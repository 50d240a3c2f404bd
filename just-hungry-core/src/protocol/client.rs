//! One client's side of the protocol: find the front-end through the registry, send a request,
//! retry it with the same id through failovers and front-end restarts until a deadline.
//!
//! A session runs one request at a time: the client table remembers one request per client,
//! which is what makes retries exactly-once. Run several sessions for concurrency.

use std::collections::VecDeque;
use std::time::Duration;

use crate::ids::{Address, ClientId, Identity, NodeRole, RequestId, Time};
use crate::protocol::FRONTEND_NAME;
use crate::protocol::messages::{ClientRequest, Message, Operation, Outcome, ServiceError};
use crate::state_machine::StateMachine;

/// How a client retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long a request is retried before it ends in [`ClientError::Timeout`].
    pub deadline: Duration,
    /// How long to wait for an answer before sending the request again.
    pub retry_interval: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            deadline: Duration::from_secs(10),
            retry_interval: Duration::from_millis(300),
        }
    }
}

/// What a timed-out request's message says of its effect.
fn timeout_effect(write: bool) -> &'static str {
    if write {
        "; the write may or may not have been applied"
    } else {
        "; it was a read, so nothing was changed: ask again"
    }
}

/// Why a client request did not complete. Each variant says what is known of its effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer before the deadline. A write may or may not have happened: retrying the
    /// same request id later is safe (exactly once) within the client-table eviction time. A
    /// read or a status request changed nothing, and the message says so.
    #[error("no answer within {deadline:?} (request {id}){}", timeout_effect(*.write))]
    Timeout {
        /// The request.
        id: RequestId,
        /// The deadline that passed.
        deadline: Duration,
        /// Whether it was a write (whose effect is then unknown).
        write: bool,
    },
    /// The service said it cannot serve (no primary available) until the deadline passed.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// The service's reason.
        reason: String,
    },
    /// The service is overloaded; the request was not applied. Retry after a pause.
    #[error("service overloaded: the request was not applied, retry later")]
    Overloaded,
    /// The registry could not be reached, and never was by this client: it knows no
    /// front-end, so the request was sent to none and was not applied (issue 18: a wrong
    /// registry address is said at once, not after the deadline). A client that has heard
    /// from its registry before keeps retrying through its outages until the deadline.
    #[error("cannot reach the registry at {registry}: the request was not sent to the service")]
    RegistryUnreachable {
        /// The registry's address, as configured.
        registry: Address,
    },
    /// The request was older than this client's latest one (never expected from this library).
    #[error("request {id} was superseded by a newer request of this client")]
    Stale {
        /// The request.
        id: RequestId,
    },
    /// The service refused the request for its sender (a client id that another identity
    /// owns); nothing was applied. Not retried.
    #[error("request refused: {reason}")]
    Forbidden {
        /// The service's reason.
        reason: String,
    },
    /// The answer was longer than one message may be (`max` bytes; it was `bytes`): a read
    /// changed nothing, ask for less (a smaller page); a write was applied, only its reply
    /// is lost. Not retried.
    #[error(
        "the answer ({bytes} bytes) is longer than a message may be ({max} bytes): ask for less"
    )]
    ReplyTooLarge {
        /// The encoded answer's length.
        bytes: u64,
        /// The most a message may be.
        max: u64,
    },
    /// The session already has a request in flight.
    #[error("a request is already in flight on this session")]
    Busy,
    /// The client's task has stopped.
    #[error("the client has shut down")]
    Closed,
}

/// A finished request.
#[derive(Debug)]
pub struct Completion<S: StateMachine> {
    /// The request.
    pub id: RequestId,
    /// Its outcome (never [`Outcome::Failed`]: failures are [`ClientError`]s).
    pub result: Result<Outcome<S>, ClientError>,
}

struct InFlight<S: StateMachine> {
    request: ClientRequest<S>,
    deadline: Time,
    next_retry: Time,
    attempts: u32,
    unavailable: Option<String>,
}

/// One client's protocol state.
pub struct ClientSession<S: StateMachine> {
    id: ClientId,
    registry: Address,
    config: ClientConfig,
    frontend: Option<Address>,
    /// Whether the registry has ever answered a lookup.
    heard_from_registry: bool,
    next_seq: u64,
    in_flight: Option<InFlight<S>>,
    transmits: VecDeque<(Address, Message<S>)>,
    completions: VecDeque<Completion<S>>,
}

impl<S: StateMachine> ClientSession<S> {
    /// A session for client `id` (choose it at random: it must be unique in the cluster).
    pub fn new(id: ClientId, registry: Address, config: ClientConfig) -> Self {
        ClientSession {
            id,
            registry,
            config,
            frontend: None,
            heard_from_registry: false,
            next_seq: 1,
            in_flight: None,
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
        }
    }

    /// The id the next request will get (an order's id, known before it is placed).
    pub fn next_request_id(&self) -> RequestId {
        RequestId {
            client: self.id,
            seq: self.next_seq,
        }
    }

    /// Whether a request is in flight.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts a request; its completion comes out of [`ClientSession::poll_completion`].
    pub fn start(&mut self, now: Time, operation: Operation<S>) -> Result<RequestId, ClientError> {
        if self.in_flight.is_some() {
            return Err(ClientError::Busy);
        }
        let id = self.next_request_id();
        self.next_seq += 1;
        self.in_flight = Some(InFlight {
            request: ClientRequest { id, operation },
            deadline: now + self.config.deadline,
            next_retry: now,
            attempts: 0,
            unavailable: None,
        });
        self.transmit(now);
        Ok(id)
    }

    fn lookup(&mut self) {
        self.transmits.push_back((
            self.registry.clone(),
            Message::Lookup {
                name: FRONTEND_NAME.to_owned(),
            },
        ));
    }

    /// Sends (or re-sends) the request in flight, looking the front-end up first if needed.
    fn transmit(&mut self, now: Time) {
        let retry = self.config.retry_interval;
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        f.next_retry = now + retry;
        f.attempts += 1;
        let attempts = f.attempts;
        let request = f.request.clone();
        match self.frontend.clone() {
            Some(fe) => {
                self.transmits.push_back((fe, Message::Request(request)));
                // Now and then look the front-end up again, in case it moved.
                if attempts % 4 == 0 {
                    self.lookup();
                }
            }
            None => self.lookup(),
        }
    }

    fn complete(&mut self, result: Result<Outcome<S>, ClientError>) {
        if let Some(f) = self.in_flight.take() {
            self.completions.push_back(Completion {
                id: f.request.id,
                result,
            });
        }
    }

    /// This session's client id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// A message arrived from `sender`. Only the registry's lookup replies and the
    /// front-end's responses are taken; anything else, or from anyone else, is ignored.
    pub fn handle_message(&mut self, now: Time, sender: &Identity, message: Message<S>) {
        let expected = match &message {
            Message::LookupReply { .. } => NodeRole::Registry,
            Message::Response(_) => NodeRole::Frontend,
            _ => return,
        };
        if sender.role != expected {
            tracing::debug!(sender = %sender, kind = message.kind(), "client ignored a message from a node of the wrong role");
            return;
        }
        match message {
            Message::LookupReply { name, address } if name == FRONTEND_NAME => {
                self.heard_from_registry = true;
                let moved = address.is_some() && address != self.frontend;
                if address.is_some() {
                    self.frontend = address;
                }
                if moved && self.in_flight.is_some() {
                    self.transmit(now);
                }
            }
            Message::Response(response) => {
                let Some(f) = self.in_flight.as_mut() else {
                    return;
                };
                if f.request.id != response.id {
                    return;
                }
                match response.outcome {
                    Outcome::Failed(ServiceError::Unavailable { reason }) => {
                        f.unavailable = Some(reason);
                    }
                    Outcome::Failed(ServiceError::NotPrimary { .. }) => {}
                    Outcome::Failed(ServiceError::Overloaded) => {
                        self.complete(Err(ClientError::Overloaded))
                    }
                    Outcome::Failed(ServiceError::Stale { id }) => {
                        self.complete(Err(ClientError::Stale { id }))
                    }
                    Outcome::Failed(ServiceError::Forbidden { reason }) => {
                        self.complete(Err(ClientError::Forbidden { reason }))
                    }
                    Outcome::Failed(ServiceError::ReplyTooLarge { bytes, max }) => {
                        self.complete(Err(ClientError::ReplyTooLarge { bytes, max }))
                    }
                    outcome => self.complete(Ok(outcome)),
                }
            }
            _ => {}
        }
    }

    /// A message to `to` could not be delivered. The front-end is forgotten and looked up
    /// again at the next retry, not at once: the registry may still name the dead address for
    /// a while, and an immediate lookup-send-fail cycle would spin without time passing. A
    /// registry that never answered ends the request in flight at once
    /// ([`ClientError::RegistryUnreachable`]): it cannot have reached the service.
    pub fn handle_unreachable(&mut self, _now: Time, to: &Address) {
        if self.frontend.as_ref() == Some(to) {
            self.frontend = None;
        }
        if *to == self.registry && !self.heard_from_registry && self.frontend.is_none() {
            let registry = self.registry.clone();
            self.complete(Err(ClientError::RegistryUnreachable { registry }));
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Time) {
        let Some(f) = self.in_flight.as_ref() else {
            return;
        };
        if now >= f.deadline {
            let error = match f.unavailable.clone() {
                Some(reason) => ClientError::Unavailable { reason },
                None => ClientError::Timeout {
                    id: f.request.id,
                    deadline: self.config.deadline,
                    write: matches!(f.request.operation, Operation::Write(_)),
                },
            };
            self.complete(Err(error));
        } else if now >= f.next_retry {
            self.transmit(now);
        }
    }

    /// When [`ClientSession::handle_timeout`] is due.
    pub fn next_timeout(&self) -> Option<Time> {
        self.in_flight
            .as_ref()
            .map(|f| f.next_retry.min(f.deadline))
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(Address, Message<S>)> {
        self.transmits.pop_front()
    }

    /// The next finished request.
    pub fn poll_completion(&mut self) -> Option<Completion<S>> {
        self.completions.pop_front()
    }
}
