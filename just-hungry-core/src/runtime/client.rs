//! The client library: async calls over a [`ClientSession`] driven by a task of its own.

use tokio::sync::{mpsc, oneshot};

use crate::codec;
use crate::ids::{Address, ClientId, RequestId};
use crate::protocol::client::{ClientConfig, ClientError, ClientSession};
use crate::protocol::messages::{ClusterStatus, Message, Operation, Outcome};
use crate::runtime::Clock;
use crate::runtime::clock::random_u64;
use crate::state_machine::StateMachine;
use crate::transport::{Transport, TransportEvent};

/// What a finished call reports: the id its request had (none if it never started) and how it
/// ended.
type CallResult<S> = (Option<RequestId>, Result<Outcome<S>, ClientError>);

struct Call<S: StateMachine> {
    operation: Operation<S>,
    done: oneshot::Sender<CallResult<S>>,
}

/// A client of any replicated service: finds the front-end through the registry and retries
/// each request with the same id through failovers until its deadline.
///
/// Requests of one `Client` (and its clones) run one at a time, in call order: that is what
/// the exactly-once client table supports. Create several clients for concurrency. The task
/// stops when the last clone is dropped.
pub struct Client<S: StateMachine> {
    calls: mpsc::Sender<Call<S>>,
    id: ClientId,
}

impl<S: StateMachine> Clone for Client<S> {
    fn clone(&self) -> Self {
        Client {
            calls: self.calls.clone(),
            id: self.id,
        }
    }
}

impl<S: StateMachine> Client<S> {
    /// Starts a client with a random id on `transport`, finding the front-end through the
    /// registry at `registry`.
    pub fn spawn<T: Transport>(transport: T, registry: Address, config: ClientConfig) -> Self {
        // 40 random bits: short enough to read in an order id, unique enough for the client table.
        Self::spawn_with_id(
            transport,
            registry,
            config,
            ClientId(random_u64() & 0xff_ffff_ffff),
        )
    }

    /// As [`Client::spawn`], with a chosen id (it must be unique in the cluster; simulations
    /// and replays choose it from their seed).
    pub fn spawn_with_id<T: Transport>(
        transport: T,
        registry: Address,
        config: ClientConfig,
        id: ClientId,
    ) -> Self {
        let session = ClientSession::new(id, registry, config);
        let (calls, rx) = mpsc::channel(64);
        tokio::spawn(drive(session, transport, rx));
        Client { calls, id }
    }

    /// This client's id (part of every order id it places).
    pub fn id(&self) -> ClientId {
        self.id
    }

    async fn call(&self, operation: Operation<S>) -> CallResult<S> {
        let (done, result) = oneshot::channel();
        if self.calls.send(Call { operation, done }).await.is_err() {
            return (None, Err(ClientError::Closed));
        }
        result.await.unwrap_or((None, Err(ClientError::Closed)))
    }

    /// Runs a write exactly once and returns the service's reply.
    pub async fn write(&self, command: S::Command) -> Result<S::Reply, ClientError> {
        self.write_with_id(command).await.1
    }

    /// As [`Client::write`], also returning the id the request had (`None` if the client had
    /// shut down before sending it): what a history records.
    pub async fn write_with_id(
        &self,
        command: S::Command,
    ) -> (Option<RequestId>, Result<S::Reply, ClientError>) {
        let (id, result) = self.call(Operation::Write(command)).await;
        let result = result.and_then(|outcome| match outcome {
            Outcome::Written(reply) => Ok(reply),
            other => Err(unexpected(other)),
        });
        (id, result)
    }

    /// Runs a read on the primary's committed state.
    pub async fn read(&self, query: S::Query) -> Result<S::QueryReply, ClientError> {
        match self.call(Operation::Read(query)).await.1? {
            Outcome::Read(reply) => Ok(reply),
            other => Err(unexpected(other)),
        }
    }

    /// The cluster as the front-end sees it: view, primary, backups, each replica's applied op.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        match self.call(Operation::Status).await.1? {
            Outcome::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected<S: StateMachine>(outcome: Outcome<S>) -> ClientError {
    let kind = match outcome {
        Outcome::Written(_) => "a write reply",
        Outcome::Read(_) => "a read reply",
        Outcome::Status(_) => "a status",
        Outcome::Failed(_) => "a failure",
    };
    ClientError::Unavailable {
        reason: format!("unexpected answer from the service: {kind}"),
    }
}

async fn drive<S: StateMachine, T: Transport>(
    mut session: ClientSession<S>,
    mut transport: T,
    mut calls: mpsc::Receiver<Call<S>>,
) {
    let clock = Clock::new();
    let mut waiting: Option<oneshot::Sender<CallResult<S>>> = None;
    loop {
        while let Some((to, message)) = session.poll_transmit() {
            send(&transport, &to, &message);
        }
        while let Some(done) = session.poll_completion() {
            if let Some(tx) = waiting.take() {
                let _ = tx.send((Some(done.id), done.result));
            }
        }
        let deadline = session
            .next_timeout()
            .map(|t| clock.instant_at(t))
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
        // `biased`: a fixed polling order keeps runs under a paused clock replayable.
        tokio::select! {
            biased;
            call = calls.recv(), if waiting.is_none() => {
                let Some(call) = call else { break };
                match session.start(clock.now(), call.operation) {
                    Ok(_) => waiting = Some(call.done),
                    Err(e) => { let _ = call.done.send((None, Err(e))); }
                }
            }
            event = transport.recv() => match event {
                Some(TransportEvent::Message { payload, from, sender }) => match codec::decode::<Message<S>>(&payload) {
                    Ok(message) => session.handle_message(clock.now(), &sender, message),
                    Err(e) => tracing::info!(from = %from, error = %e, "client dropped a message that does not decode"),
                },
                Some(TransportEvent::Unreachable { to }) => session.handle_unreachable(clock.now(), &to),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => session.handle_timeout(clock.now()),
        }
    }
}

fn send<S: StateMachine, T: Transport>(transport: &T, to: &Address, message: &Message<S>) {
    match codec::encode(message) {
        Ok(bytes) => transport.send(to, bytes),
        Err(e) => tracing::error!(to = %to, error = %e, "client cannot encode a message"),
    }
}
