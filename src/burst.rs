//! A gateway's burst: the requests of many users at once over one connection, each from a
//! client id of its own, so that every one is outstanding at the front-end together (issue 13).
//! The load a burst of tens of thousands of requests puts on a cluster: its queues fill, it
//! refuses what it cannot hold with `Overloaded`, and its failure detection must not take the
//! busy nodes for dead. The gateway retries what was refused or went unanswered with the same
//! request ids (exactly once), as a client would, until every order is placed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::StateMachine;
use crate::core::codec;
use crate::core::ids::{Address, ClientId, Identity, NodeRole, RequestId};
use crate::core::protocol::messages::{ClientRequest, Message, Operation, Outcome, ServiceError};
use crate::core::runtime::random_u64;
use crate::core::transport::{Transport, TransportEvent};
use crate::local::{LocalCluster, Network, TcpNetwork};
use crate::orders::{OrderBook, OrderCommand};
use crate::tcp::TcpTransport;

/// How long a round waits without any answer before it sends what is outstanding again.
pub const QUIET_BEFORE_RETRY: Duration = Duration::from_secs(1);

/// What a burst saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BurstReport {
    /// The orders of the burst.
    pub requests: usize,
    /// Rounds of sends (the first, then each retry of what was outstanding).
    pub rounds: usize,
    /// Orders placed (acknowledged).
    pub placed: usize,
    /// Answers `Overloaded` (the request was not applied; sent again).
    pub overloaded: usize,
    /// Answers `Unavailable` (sent again).
    pub unavailable: usize,
    /// Sends that got no answer within their round (dropped at a full queue; sent again).
    pub unanswered: usize,
    /// Any other answer (a refused order, a failure): not sent again.
    pub other: usize,
}

impl std::fmt::Display for BurstReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} placed in {} rounds; answers on the way: {} overloaded, {} unavailable, {} other; {} sends unanswered",
            self.placed,
            self.requests,
            self.rounds,
            self.overloaded,
            self.unavailable,
            self.other,
            self.unanswered
        )
    }
}

/// Places `requests` orders for `postcode` on `cluster` at once, each from a client id of its
/// own, over one connection (a TCP endpoint of identity `client/burst`), then sends again what
/// was refused as overloaded or unavailable or went unanswered, for at most `max_rounds`
/// rounds. Returns what it saw; `placed < requests` if rounds ran out.
pub async fn gateway_burst(
    cluster: &LocalCluster<OrderBook, TcpNetwork>,
    requests: usize,
    postcode: &str,
    max_rounds: usize,
) -> std::io::Result<BurstReport> {
    let (mut endpoint, _) = cluster
        .network()
        .endpoint(
            &Identity::new(NodeRole::Client, "burst"),
            OrderBook::SERVICE,
        )
        .await?;
    let to = cluster
        .frontend_address()
        .ok_or_else(|| std::io::Error::other("no front-end runs"))?;
    let first_client = random_u64() & 0xff_ff00_0000;
    let mut outstanding: BTreeMap<ClientId, usize> = (0..requests)
        .map(|n| (ClientId(first_client + n as u64), n))
        .collect();
    let mut report = BurstReport {
        requests,
        ..BurstReport::default()
    };
    while !outstanding.is_empty() && report.rounds < max_rounds {
        report.rounds += 1;
        send_all(&endpoint, &to, postcode, &outstanding).await?;
        let mut waiting = outstanding.len();
        while waiting > 0 {
            let Ok(Some(event)) = tokio::time::timeout(QUIET_BEFORE_RETRY, endpoint.recv()).await
            else {
                break;
            };
            let TransportEvent::Message { payload, .. } = event else {
                continue;
            };
            let Ok(Message::Response(response)) = codec::decode::<Message<OrderBook>>(&payload)
            else {
                continue;
            };
            if !outstanding.contains_key(&response.id.client) {
                continue; // an answer to an earlier round's send of a placed order
            }
            waiting -= 1;
            match response.outcome {
                Outcome::Written(Ok(_)) => {
                    report.placed += 1;
                    outstanding.remove(&response.id.client);
                }
                Outcome::Failed(ServiceError::Overloaded) => report.overloaded += 1,
                Outcome::Failed(ServiceError::Unavailable { .. }) => report.unavailable += 1,
                _ => {
                    report.other += 1;
                    outstanding.remove(&response.id.client);
                }
            }
        }
        report.unanswered += waiting;
    }
    Ok(report)
}

/// Sends one order per outstanding client, pacing itself by the endpoint's own queue.
async fn send_all(
    endpoint: &TcpTransport,
    to: &Address,
    postcode: &str,
    outstanding: &BTreeMap<ClientId, usize>,
) -> std::io::Result<()> {
    for (i, (client, n)) in outstanding.iter().enumerate() {
        let request: Message<OrderBook> = Message::Request(ClientRequest {
            id: RequestId {
                client: *client,
                seq: 1,
            },
            operation: Operation::Write(OrderCommand::PlaceOrder {
                postcode: postcode.to_owned(),
                items: vec![format!("burst {n}")],
            }),
        });
        endpoint.send(to, codec::encode(&request).map_err(std::io::Error::other)?);
        // The endpoint's own queue holds 4,096 frames: let the connection take them.
        if i % 1024 == 1023 {
            while endpoint.queued_bytes() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    Ok(())
}
