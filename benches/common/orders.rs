//! The orders the benches place, and the encoded size of each message a place-order sends.

use just_hungry::core::codec;
use just_hungry::core::ids::{ClientId, OpNumber, ReplicaId, RequestId, Time, ViewNumber};
use just_hungry::core::protocol::messages::{
    ClientRequest, ClientResponse, Entry, Message, Operation, Outcome,
};
use just_hungry::nemesis::POSTCODES;
use just_hungry::orders::{OrderBook, OrderCommand};

/// What every bench order holds: a short takeaway.
pub const ITEMS: [&str; 2] = ["margherita pizza", "garlic bread"];

/// The items of one order.
pub fn items() -> Vec<String> {
    ITEMS.iter().map(|item| (*item).to_owned()).collect()
}

/// The postcode of the `i`-th order of client `client`: the nemesis's valid postcodes in turn.
pub fn postcode(client: usize, i: u64) -> &'static str {
    POSTCODES[(client + i as usize) % POSTCODES.len()]
}

/// The command of the `i`-th order of client `client`, as the client sends it.
pub fn place_order(client: usize, i: u64) -> OrderCommand {
    OrderCommand::PlaceOrder {
        postcode: postcode(client, i).to_owned(),
        items: items(),
    }
}

/// A request id as a running client has one: a 40-bit random client id, a few thousand
/// requests in.
pub fn request_id(client: u64, seq: u64) -> RequestId {
    RequestId {
        client: ClientId(0xa5_5a5a_5a5a ^ client),
        seq,
    }
}

/// A log entry of a running cluster, for op `op`.
pub fn entry(op: u64, request: RequestId, command: OrderCommand) -> Entry<OrderCommand> {
    Entry {
        op: OpNumber(op),
        request,
        time: Time(1_000_000 + op),
        owner: "client".into(),
        command,
    }
}

/// The client request of one place-order (what a client sends the front-end).
pub fn request_message() -> Message<OrderBook> {
    Message::Request(ClientRequest {
        id: request_id(0, 5_000),
        operation: Operation::Write(place_order(0, 0)),
    })
}

/// A `Prepare` of `entries` consecutive place-orders, as a primary sends its backups.
pub fn prepare_message(entries: usize) -> Message<OrderBook> {
    Message::Prepare {
        view: ViewNumber(3),
        entries: (0..entries as u64)
            .map(|i| entry(50_000 + i, request_id(i % 64, 5_000 + i), place_order(0, i)))
            .collect(),
    }
}

/// The encoded size, in bytes, of each message one place-order sends, hop by hop, in a view of
/// several replicas: the floor relays frames of exactly these sizes.
#[derive(Clone, Copy, Debug)]
pub struct HopSizes {
    /// Client -> front-end: `Request`.
    pub request: usize,
    /// Front-end -> primary: `Forward`.
    pub forward: usize,
    /// Primary -> each backup: a `Prepare` of one entry.
    pub prepare: usize,
    /// Each backup -> primary: `PrepareOk`.
    pub prepare_ok: usize,
    /// Primary -> front-end -> client: `Response`.
    pub response: usize,
}

impl HopSizes {
    /// Encodes one message of each kind with the codec and takes their lengths.
    pub fn measure() -> HopSizes {
        let id = request_id(0, 5_000);
        let request = ClientRequest {
            id,
            operation: Operation::Write(place_order(0, 0)),
        };
        let len = |message: &Message<OrderBook>| {
            codec::encode(message)
                .expect("a bench message encodes")
                .len()
        };
        HopSizes {
            request: len(&request_message()),
            forward: len(&Message::Forward {
                view: ViewNumber(3),
                request,
                owner: "client".into(),
            }),
            prepare: len(&prepare_message(1)),
            prepare_ok: len(&Message::PrepareOk {
                view: ViewNumber(3),
                replica: ReplicaId::new("replica-2", 0x1234_5678_9abc_def0),
                op: OpNumber(50_000),
            }),
            response: len(&Message::Response(ClientResponse {
                id,
                outcome: Outcome::Written(Ok(id)),
            })),
        }
    }
}
