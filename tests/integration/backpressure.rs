//! Backpressure: the front-end holds at most `MAX_PENDING_REQUESTS` client requests waiting for
//! a primary; past that a request is answered `Overloaded` at once, changes nothing, and memory
//! stays bounded. Retries of a request already held are not new requests and are never refused.

use just_hungry::orders::{OrderBook, OrderCommand};
use just_hungry_core::ids::{Address, ClientId, Identity, NodeRole, RequestId, Time};
use just_hungry_core::protocol::frontend::{Frontend, FrontendConfig};
use just_hungry_core::protocol::messages::{
    ClientRequest, ClientResponse, Message, Operation, Outcome, ServiceError,
};
use just_hungry_core::protocol::{MAX_PENDING_REQUESTS, Node, Output};

/// Client `i`'s identity: every client has its own certificate.
fn client(i: u64) -> Identity {
    Identity::new(NodeRole::Client, format!("c{i}"))
}

fn request(client: u64, seq: u64) -> Message<OrderBook> {
    Message::Request(ClientRequest {
        id: RequestId {
            client: ClientId(client),
            seq,
        },
        operation: Operation::Write(OrderCommand::PlaceOrder {
            postcode: "SW1A 1AA".into(),
            items: vec!["Tea".into()],
        }),
    })
}

/// Every response the front-end sends, with its destination.
fn responses(node: &mut Frontend<OrderBook>) -> Vec<(Address, ClientResponse<OrderBook>)> {
    let mut out = Vec::new();
    while let Some(output) = node.poll_output() {
        if let Output::Send {
            to,
            message: Message::Response(response),
        } = output
        {
            out.push((to, response));
        }
    }
    out
}

#[test]
fn past_its_bound_the_front_end_answers_overloaded_and_holds_nothing_more() {
    let config = FrontendConfig::new(
        "frontend",
        Address::new("frontend"),
        Address::new("registry"),
    );
    // No replica has ever pinged: no view, so every write waits for a primary.
    let mut node = Frontend::<OrderBook>::new(config, None, Time(1_000));
    let now = Time(1_001);
    for i in 0..MAX_PENDING_REQUESTS as u64 {
        node.handle_message(
            now,
            Address::new(format!("c{i}")),
            &client(i),
            request(i, 1),
        );
    }
    assert!(
        responses(&mut node).is_empty(),
        "requests within the bound wait for a primary"
    );

    let late = Address::new("late");
    node.handle_message(now, late.clone(), &client(u64::MAX), request(u64::MAX, 1));
    let answered = responses(&mut node);
    assert_eq!(answered.len(), 1, "{answered:?}");
    let (to, response) = &answered[0];
    assert_eq!(to, &late);
    assert!(
        matches!(response.outcome, Outcome::Failed(ServiceError::Overloaded)),
        "{:?}",
        response.outcome
    );
    assert_eq!(
        ServiceError::Overloaded.to_string(),
        "service overloaded: too many requests in flight, retry later"
    );

    // A retry of a held request is the same request: not refused, not counted twice.
    node.handle_message(now, Address::new("c7-again"), &client(7), request(7, 1));
    assert!(responses(&mut node).is_empty());
    // Still full for anyone new.
    node.handle_message(
        now,
        late.clone(),
        &client(u64::MAX - 1),
        request(u64::MAX - 1, 1),
    );
    let answered = responses(&mut node);
    assert!(matches!(
        answered.as_slice(),
        [(
            _,
            ClientResponse {
                outcome: Outcome::Failed(ServiceError::Overloaded),
                ..
            }
        )]
    ));
}
