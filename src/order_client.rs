//! [`OrderClient`]: the order book's calls over the generic [`Client`].

use std::sync::Arc;

use just_hungry_core::protocol::client::{ClientConfig, ClientError};
use just_hungry_core::protocol::messages::ClusterStatus;
use just_hungry_core::runtime::Client;
use just_hungry_core::transport::Transport;
use just_hungry_core::{Address, ClientId};

use crate::orders::{
    HistoriesPage, HistoryCursor, HistoryPage, MAX_PAGE_ORDERS, Order, OrderBook, OrderCommand,
    OrderError, OrderHistory, OrderId, OrderQuery,
};
use crate::postcode::Postcode;

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

    /// Reads every history ([`OrderClient::all_histories`]) and checks it against the orders
    /// whose placing was acknowledged: each must be there, and no order twice.
    pub async fn audit(&self, acknowledged: &[OrderId]) -> Result<OrderAudit, OrderClientError> {
        let histories = self.all_histories().await?;
        let mut seen = std::collections::BTreeSet::new();
        let doubled = histories
            .values()
            .flatten()
            .filter(|order| !seen.insert(order.id))
            .map(|order| order.id)
            .collect();
        let missing = acknowledged
            .iter()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        Ok(OrderAudit {
            histories,
            missing,
            doubled,
        })
    }
}

/// What a reading of every history shows of the acknowledged orders ([`OrderClient::audit`]).
#[derive(Clone, Debug)]
pub struct OrderAudit {
    /// Every postcode's orders, as read.
    pub histories: std::collections::BTreeMap<Postcode, Vec<Order>>,
    /// Acknowledged orders that are in no history: lost.
    pub missing: Vec<OrderId>,
    /// Orders found more than once (once per extra copy).
    pub doubled: Vec<OrderId>,
}

/// Every order read, one line each (postcode, id, items), indented by four spaces.
impl std::fmt::Display for OrderAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (postcode, orders) in &self.histories {
            let postcode = postcode.to_string();
            for order in orders {
                let id = order.id.to_string();
                writeln!(f, "    {postcode:<9} {id:<8} {}", order.items.join(", "))?;
            }
        }
        Ok(())
    }
}

impl OrderAudit {
    /// What is wrong, one line each; empty when every acknowledged order is there once.
    pub fn problems(&self) -> Vec<String> {
        let missing = self
            .missing
            .iter()
            .map(|id| format!("acknowledged order {id} is missing"));
        let doubled = self
            .doubled
            .iter()
            .map(|id| format!("order {id} appears twice"));
        missing.chain(doubled).collect()
    }
}
