//! The client library: async calls over a [`ClientSession`] driven by a task of its own.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::codec;
use crate::ids::{Address, ClientId, RequestId};
use crate::orders::{
    HistoriesPage, HistoryCursor, HistoryPage, MAX_PAGE_ORDERS, Order, OrderBook, OrderCommand,
    OrderError, OrderHistory, OrderId, OrderQuery,
};
use crate::postcode::Postcode;
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

/// Why an order-book call failed: the service refused it, or the request did not complete.
#[derive(Debug, thiserror::Error)]
pub enum OrderClientError {
    /// The order book refused the request (bad postcode, empty order, ...); nothing changed.
    #[error(transparent)]
    Refused(#[from] OrderError),
    /// The request did not complete; see [`ClientError`] for what is known of its effect.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn unexpected_answer(what: &str) -> OrderClientError {
    ClientError::Unavailable {
        reason: format!("unexpected answer to {what}"),
    }
    .into()
}

/// A client of the Just Hungry order book: [`Client`] with the order book's calls.
#[derive(Clone)]
pub struct OrderClient {
    inner: Arc<Client<OrderBook>>,
}

impl OrderClient {
    /// Starts a client on `transport`, finding the front-end through `registry`.
    pub fn spawn<T: Transport>(transport: T, registry: Address, config: ClientConfig) -> Self {
        OrderClient {
            inner: Arc::new(Client::spawn(transport, registry, config)),
        }
    }

    /// As [`OrderClient::spawn`], with a chosen client id (unique in the cluster).
    pub fn spawn_with_id<T: Transport>(
        transport: T,
        registry: Address,
        config: ClientConfig,
        id: ClientId,
    ) -> Self {
        OrderClient {
            inner: Arc::new(Client::spawn_with_id(transport, registry, config, id)),
        }
    }

    /// The generic client underneath.
    pub fn client(&self) -> &Client<OrderBook> {
        &self.inner
    }

    /// Places an order of `items` for delivery to `postcode` (any spelling a customer would
    /// type); returns its id once it is held by every replica of the view.
    pub async fn place_order(
        &self,
        postcode: &str,
        items: Vec<String>,
    ) -> Result<OrderId, OrderClientError> {
        let command = OrderCommand::PlaceOrder {
            postcode: postcode.to_owned(),
            items,
        };
        Ok(self.inner.write(command).await??)
    }

    /// As [`OrderClient::place_order`], also returning the id the order's request had, known
    /// even when the outcome is not (a timeout): what a history records.
    pub async fn place_order_with_id(
        &self,
        postcode: &str,
        items: Vec<String>,
    ) -> (Option<OrderId>, Result<OrderId, OrderClientError>) {
        let command = OrderCommand::PlaceOrder {
            postcode: postcode.to_owned(),
            items,
        };
        let (id, result) = self.inner.write_with_id(command).await;
        let result = match result {
            Ok(Ok(order)) => Ok(order),
            Ok(Err(refused)) => Err(OrderClientError::Refused(refused)),
            Err(e) => Err(OrderClientError::Client(e)),
        };
        (id, result)
    }

    /// The orders of `postcode`, oldest first, and the postcode's canonical form: read page
    /// after page ([`OrderClient::order_history_page`]) until the last, so it is the whole
    /// history as of the last page's read, every order once and in order, however long it
    /// is. Other clients are served between the pages.
    pub async fn order_history(
        &self,
        postcode: &str,
    ) -> Result<(Postcode, Vec<Order>), OrderClientError> {
        let mut page = self
            .order_history_page(postcode, 0, MAX_PAGE_ORDERS)
            .await?;
        let mut orders = std::mem::take(&mut page.orders);
        while let Some(start) = page.next {
            page = self
                .order_history_page(postcode, start, MAX_PAGE_ORDERS)
                .await?;
            orders.append(&mut page.orders);
        }
        Ok((page.postcode, orders))
    }

    /// One page of `postcode`'s history: at most `limit` orders from the `start`-th (from 0),
    /// and where the next page starts (see [`OrderQuery::History`]).
    pub async fn order_history_page(
        &self,
        postcode: &str,
        start: u64,
        limit: u32,
    ) -> Result<HistoryPage, OrderClientError> {
        let query = OrderQuery::History {
            postcode: postcode.to_owned(),
            start,
            limit,
        };
        match self.inner.read(query).await?? {
            OrderHistory::ForPostcode(page) => Ok(page),
            OrderHistory::All(_) => Err(unexpected_answer("a history query")),
        }
    }

    /// Every postcode's orders, read page after page
    /// ([`OrderClient::all_histories_page`]). Every order acknowledged before the call is in
    /// it once, in order; one placed during the call may be or not.
    pub async fn all_histories(
        &self,
    ) -> Result<std::collections::BTreeMap<Postcode, Vec<Order>>, OrderClientError> {
        let mut all: std::collections::BTreeMap<Postcode, Vec<Order>> = Default::default();
        let mut from = None;
        loop {
            let page = self.all_histories_page(from, MAX_PAGE_ORDERS).await?;
            for slice in page.histories {
                all.entry(slice.postcode).or_default().extend(slice.orders);
            }
            match page.next {
                Some(next) => from = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of every postcode's orders from `from` on (`None`: the beginning), at most
    /// `limit` orders (see [`OrderQuery::AllHistories`]).
    pub async fn all_histories_page(
        &self,
        from: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<HistoriesPage, OrderClientError> {
        match self
            .inner
            .read(OrderQuery::AllHistories { from, limit })
            .await??
        {
            OrderHistory::All(page) => Ok(page),
            OrderHistory::ForPostcode(_) => Err(unexpected_answer("a histories query")),
        }
    }

    /// The cluster's status.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        self.inner.cluster_status().await
    }
}
