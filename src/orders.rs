//! The Just Hungry order book: per postcode, an append-only list of orders.
//!
//! [`OrderBook`] is the replicated [`StateMachine`]; [`OrderValidator`] is its
//! [`CommandValidator`], run once at the primary.
//!
//! # Life of an order
//!
//! 1. A client sends [`OrderCommand::PlaceOrder`] with the postcode as the customer typed it.
//! 2. The primary's [`OrderValidator`] checks the limits ([`check_items`]), validates the
//!    postcode with its [`PostcodeValidator`] (offline, or online), and rewrites the command into
//!    its final form: canonical postcode (`SW1A 1AA`), item names trimmed of surrounding
//!    whitespace, and [`OrderCommand::PlaceUnverifiedOrder`] instead of
//!    [`OrderCommand::PlaceOrder`] when the postcode was accepted without the online check that
//!    was configured ([`PostcodeCheck::Unverified`]: no directory could answer and the
//!    operator's policy is to accept). A refusal is answered at once and nothing is replicated.
//! 3. The rewritten command is replicated and applied on every replica. [`OrderBook::apply`]
//!    re-runs the offline checks ([`check_order`], no I/O), so a command that skipped validation
//!    cannot corrupt the book, and stores the order with the request's id as its [`OrderId`],
//!    marked [`Order::unverified`] when the command says so. Whether an order is unverified is
//!    decided once, at the primary, and replicated: `apply` stays deterministic.
//!
//! # Limits
//!
//! [`MAX_ITEMS_PER_ORDER`] items per order, [`MAX_ITEM_NAME_BYTES`] bytes per item name, and
//! [`OrderBook::max_bytes`] for the whole book (a value of the replicated state, set when the
//! cluster starts; [`DEFAULT_MAX_ORDER_BOOK_BYTES`] by default). A snapshot is written and read
//! piece by piece (a piece is at most [`snapshot::MAX_PIECE_BYTES`]), so no limit of the
//! codec bounds the book.
//!
//! ```
//! use just_hungry::orders::{OrderBook, OrderCommand, OrderHistory, OrderQuery};
//! use just_hungry_core::{ApplyContext, ClientId, OpNumber, RequestId, StateMachine, Time};
//!
//! let mut book = OrderBook::empty();
//! let request = RequestId { client: ClientId(3), seq: 17 };
//! let context = ApplyContext { op: OpNumber(1), request, time: Time::ZERO };
//! let command = OrderCommand::PlaceOrder {
//!     postcode: "SW1A 1AA".into(),
//!     items: vec!["Margherita pizza".into()],
//! };
//! assert_eq!(book.apply(&context, &command), Ok(request));
//!
//! // A query may spell the postcode loosely.
//! let answer = book.query(&OrderQuery::history("sw1a1aa")).unwrap();
//! let OrderHistory::ForPostcode(page) = answer else { unreachable!() };
//! assert_eq!(page.orders[0].id.to_string(), "c3-17");
//! assert_eq!(page.next, None, "the whole history fits one page");
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::postcode::{
    self, OfflineValidator, Postcode, PostcodeCheck, PostcodeError, PostcodeValidator,
};
use just_hungry_core::ids::{ClientId, RequestId};
use just_hungry_core::state_machine::{ApplyContext, CommandValidator, StateMachine};

/// An order's id: the id of the client request that placed it, unique by construction
/// (displayed `c3-17`: client 3, request 17).
pub type OrderId = RequestId;

/// The most items one order may hold.
pub const MAX_ITEMS_PER_ORDER: usize = 50;

/// The most bytes (UTF-8) one item name may take, after trimming surrounding whitespace.
pub const MAX_ITEM_NAME_BYTES: usize = 100;

/// The default of [`OrderBook::max_bytes`]: 4 GiB counted by [`OrderBook::stored_bytes`]
/// (about 75 million orders of two items), sized for the 24 GiB machines we run on, one
/// replica per machine: the book in memory takes about 3.3 times its count, some 14 GiB
/// (measured in `docs/PERFORMANCE.md`), a joining replica holds it once, and the primary adds
/// about 10 MiB per transfer under way. Lower it (`replica --max-book-bytes`) to run several
/// replicas on one machine.
pub const DEFAULT_MAX_ORDER_BOOK_BYTES: u64 = 4 * 1024 * 1024 * 1024;

mod sim_service;
mod snapshot;
pub use sim_service::{SIM_INVALID_POSTCODE, SIM_POSTCODES};
pub use snapshot::MAX_PIECE_BYTES;

/// The client id of the seed orders of [`OrderBook::with_predefined_history`]. Reserved: real
/// clients must never use it (they pick a random non-zero id), or their order ids could collide
/// with the seed's `c0-1`, `c0-2`...
pub const SEED_CLIENT: ClientId = ClientId(0);

/// One order: its id, what was ordered, and whether its postcode went unverified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The id of the request that placed it.
    pub id: OrderId,
    /// The item names, in the order given, trimmed of surrounding whitespace; never empty.
    pub items: Vec<String>,
    /// Whether the postcode was accepted on the offline format check alone although an online
    /// check was configured, because no directory could answer (the `accept-unverified`
    /// policy): someone may want to check the address before delivering. `false` for every
    /// other order, including those of an `offline` validator, whose format check is all that
    /// was asked for.
    pub unverified: bool,
}

/// A write to the order book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Place one order for delivery to `postcode`.
    PlaceOrder {
        /// As typed by the client; after validation at the primary, the canonical form.
        postcode: String,
        /// The item names; after validation, trimmed of surrounding whitespace.
        items: Vec<String>,
    },
    /// Place one order whose postcode could not be checked online and was accepted on the
    /// format check alone: stored with [`Order::unverified`] set. Written by the primary's
    /// [`OrderValidator`]; a client sending it gets the same validation as
    /// [`OrderCommand::PlaceOrder`], and the validator decides which of the two is replicated.
    PlaceUnverifiedOrder {
        /// The postcode, in canonical form.
        postcode: String,
        /// The item names, trimmed of surrounding whitespace.
        items: Vec<String>,
    },
}

impl OrderCommand {
    /// The postcode and items of the order to place, whichever the variant.
    pub fn order(&self) -> (&str, &[String]) {
        match self {
            OrderCommand::PlaceOrder { postcode, items }
            | OrderCommand::PlaceUnverifiedOrder { postcode, items } => (postcode, items),
        }
    }
}

/// The most orders one page of a read holds, whatever the query's `limit`.
pub const MAX_PAGE_ORDERS: u32 = 10_000;

/// The most bytes the orders of one page take, counted as the book's size budget counts them
/// (an upper bound of their encoding). A page holds at least one order whatever its size; as
/// an order takes at most about 5 KiB, a page's reply stays far below a TCP frame (8 MiB).
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// A read of the order book. Reads are paged, so that no answer outgrows a message: a page
/// holds at most `limit` orders, [`MAX_PAGE_ORDERS`] and [`MAX_PAGE_BYTES`], and says where
/// the next one starts. Since orders are only ever appended, reading page after page until
/// there is no next one sees every order of a postcode exactly once, in order: the whole
/// history as of the last page's read ([`crate::OrderClient::order_history`] does
/// that).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderQuery {
    /// One page of the orders of one postcode, oldest first: the `start`-th order (from 0) and
    /// the ones after it. The postcode may be spelled as a customer would type it
    /// (`sw1a1aa`): it goes through the offline format check.
    History {
        /// The postcode, as typed.
        postcode: String,
        /// The index of the first order to return (0: the oldest).
        start: u64,
        /// The most orders to return (capped at [`MAX_PAGE_ORDERS`]; 0 counts as 1).
        limit: u32,
    },
    /// One page of every postcode's orders, in postcode order and oldest first within one,
    /// from `from` on.
    AllHistories {
        /// Where to start (`None`: the first order of the first postcode); a page's
        /// [`HistoriesPage::next`].
        from: Option<HistoryCursor>,
        /// The most orders to return (capped at [`MAX_PAGE_ORDERS`]; 0 counts as 1).
        limit: u32,
    },
}

impl OrderQuery {
    /// The first page of `postcode`'s history, as large as a page may be.
    pub fn history(postcode: impl Into<String>) -> OrderQuery {
        OrderQuery::History {
            postcode: postcode.into(),
            start: 0,
            limit: MAX_PAGE_ORDERS,
        }
    }

    /// The first page of every postcode's history, as large as a page may be.
    pub fn all_histories() -> OrderQuery {
        OrderQuery::AllHistories {
            from: None,
            limit: MAX_PAGE_ORDERS,
        }
    }
}

/// A position in the whole book: the `index`-th order (from 0) of `postcode`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HistoryCursor {
    /// The postcode.
    pub postcode: Postcode,
    /// The index of an order in its history.
    pub index: u64,
}

/// One page of a postcode's history: the answer to [`OrderQuery::History`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The postcode asked for, in canonical form.
    pub postcode: Postcode,
    /// The index of the first order of `orders` in the history (the query's `start`).
    pub start: u64,
    /// Consecutive orders, oldest first; empty when there are none from `start` on.
    pub orders: Vec<Order>,
    /// Where the next page starts, if the history holds more orders after these.
    pub next: Option<u64>,
}

/// Consecutive orders of one postcode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySlice {
    /// The postcode.
    pub postcode: Postcode,
    /// The index of the first of `orders` in the postcode's history.
    pub start: u64,
    /// The orders, oldest first; never empty.
    pub orders: Vec<Order>,
}

/// One page of every postcode's history: the answer to [`OrderQuery::AllHistories`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoriesPage {
    /// Postcode by postcode, in postcode order.
    pub histories: Vec<HistorySlice>,
    /// Where the next page starts, if the book holds more orders after these.
    pub next: Option<HistoryCursor>,
}

/// The answer to an [`OrderQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderHistory {
    /// The answer to [`OrderQuery::History`].
    ForPostcode(HistoryPage),
    /// The answer to [`OrderQuery::AllHistories`].
    All(HistoriesPage),
}

/// Why an order (or a query) was refused. Each variant is one cause; none is worth retrying
/// as is, except [`OrderError::InvalidPostcode`] holding a retryable [`PostcodeError`]
/// (see [`OrderError::is_retryable`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    /// The order has no items.
    #[error("an order needs at least one item")]
    EmptyOrder,

    /// The order has more than [`MAX_ITEMS_PER_ORDER`] items.
    #[error("an order can hold at most {max} items, this one has {count}")]
    TooManyItems {
        /// How many items the order has.
        count: usize,
        /// [`MAX_ITEMS_PER_ORDER`].
        max: usize,
    },

    /// An item name is empty or only whitespace.
    #[error("item {} has no name", .index.saturating_add(1))]
    EmptyItemName {
        /// The item's index in the order, from 0 (the message counts from 1).
        index: usize,
    },

    /// An item name is longer than [`MAX_ITEM_NAME_BYTES`] bytes once trimmed.
    #[error("the name of item {} is too long ({bytes} bytes, at most {max})", .index.saturating_add(1))]
    ItemNameTooLong {
        /// The item's index in the order, from 0 (the message counts from 1).
        index: usize,
        /// Its length in bytes (UTF-8), once trimmed.
        bytes: usize,
        /// [`MAX_ITEM_NAME_BYTES`].
        max: usize,
    },

    /// An item name contains an invisible control character (see [`check_items`]).
    #[error(
        "the name of item {} contains an invisible control character (U+{:04X}): please type it again",
        .index.saturating_add(1),
        u32::from(*.character)
    )]
    ItemNameNotPrintable {
        /// The item's index in the order, from 0 (the message counts from 1).
        index: usize,
        /// The first refused character.
        character: char,
    },

    /// The postcode was refused, or could not be checked now.
    #[error(transparent)]
    InvalidPostcode(#[from] PostcodeError),

    /// The order book holds [`OrderBook::max_bytes`] worth of orders: no order is accepted
    /// any more (decided by `apply`, from the replicated state, so every replica agrees).
    #[error("the order book is full ({max_bytes} bytes): no new orders can be taken")]
    OrderBookFull {
        /// [`OrderBook::max_bytes`].
        max_bytes: u64,
    },
}

impl OrderError {
    /// Whether the same request might succeed later: only when the postcode could not be
    /// checked now ([`PostcodeError::Unreachable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, OrderError::InvalidPostcode(e) if e.is_retryable())
    }

    /// The error as a metric label (`postcode_not_found`): one of a fixed set.
    pub fn label(&self) -> &'static str {
        match self {
            OrderError::EmptyOrder => "empty_order",
            OrderError::TooManyItems { .. } => "too_many_items",
            OrderError::EmptyItemName { .. } => "empty_item_name",
            OrderError::ItemNameTooLong { .. } => "item_name_too_long",
            OrderError::ItemNameNotPrintable { .. } => "item_name_not_printable",
            OrderError::OrderBookFull { .. } => "order_book_full",
            OrderError::InvalidPostcode(e) => match e {
                PostcodeError::NotFound { .. } => "postcode_not_found",
                PostcodeError::Terminated { .. } => "postcode_terminated",
                PostcodeError::Refused { .. } => "postcode_refused_by_directory",
                PostcodeError::Unreachable { .. } => "postcode_unverifiable_now",
                PostcodeError::NotUkPostcode { .. } => "postcode_not_uk",
                _ => "postcode_malformed",
            },
        }
    }
}

/// Whether `c` may not appear in an item name: control characters (`char::is_control`: C0,
/// DEL, C1, so tab and line breaks too), the Unicode line and paragraph separators, the
/// byte-order mark, and the bidirectional formatting characters, which can make a name display
/// as something other than what it is.
fn is_not_printable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Checks the items of an order against the limits, in this order: the order is not empty,
/// has at most [`MAX_ITEMS_PER_ORDER`] items; then item by item, each name once trimmed of
/// surrounding whitespace (`str::trim`) is not empty, is at most [`MAX_ITEM_NAME_BYTES`] bytes,
/// and holds no character refused by the printable rule (control characters, line and
/// paragraph separators, the byte-order mark, bidirectional formatting characters). The first
/// failure is returned. Pure and cheap; never panics.
pub fn check_items(items: &[String]) -> Result<(), OrderError> {
    if items.is_empty() {
        return Err(OrderError::EmptyOrder);
    }
    if items.len() > MAX_ITEMS_PER_ORDER {
        return Err(OrderError::TooManyItems {
            count: items.len(),
            max: MAX_ITEMS_PER_ORDER,
        });
    }
    for (index, item) in items.iter().enumerate() {
        let name = item.trim();
        if name.is_empty() {
            return Err(OrderError::EmptyItemName { index });
        }
        if name.len() > MAX_ITEM_NAME_BYTES {
            return Err(OrderError::ItemNameTooLong {
                index,
                bytes: name.len(),
                max: MAX_ITEM_NAME_BYTES,
            });
        }
        if let Some(character) = name.chars().find(|c| is_not_printable(*c)) {
            return Err(OrderError::ItemNameNotPrintable { index, character });
        }
    }
    Ok(())
}

/// The offline check of a whole order: [`check_items`], then the postcode format check
/// ([`postcode::normalise`]). Returns the canonical postcode. Deterministic, no I/O, never
/// panics: this is what [`OrderBook::apply`] runs on every replica.
pub fn check_order(postcode: &str, items: &[String]) -> Result<Postcode, OrderError> {
    check_items(items)?;
    Ok(postcode::normalise(postcode)?)
}

/// The item names in their stored form: each trimmed of surrounding whitespace.
fn trimmed_items(items: &[String]) -> Vec<String> {
    items.iter().map(|item| item.trim().to_owned()).collect()
}

/// Validates a command without a runtime and without I/O ([`check_order`]), and rewrites it into
/// its final form: canonical postcode, trimmed item names, [`OrderCommand::PlaceOrder`] (the
/// format check is all an offline validator asks for, so nothing is unverified). For
/// simulators and tests; the same answer as `OrderValidator::offline()` gives.
pub fn validate_offline(command: OrderCommand) -> Result<OrderCommand, OrderError> {
    let (postcode, items) = command.order();
    Ok(OrderCommand::PlaceOrder {
        postcode: check_order(postcode, items)?.into_string(),
        items: trimmed_items(items),
    })
}

/// A bound of the bytes one order adds to the encoded book: its id (two varints, at most 9
/// bytes each), its item count, each item with its length prefix, its unverified flag (1 byte),
/// and its share of a postcode key (at most 9 bytes plus the length of its list). 33 covers
/// everything but the items.
fn order_cost(items: &[String]) -> usize {
    const ORDER_OVERHEAD_BYTES: usize = 33;
    items.iter().fold(ORDER_OVERHEAD_BYTES, |total, item| {
        let prefix = if item.len() < 251 { 1 } else { 9 };
        total.saturating_add(item.len()).saturating_add(prefix)
    })
}

/// What is left of one page: orders and bytes.
struct PageBudget {
    orders: usize,
    bytes: usize,
}

impl PageBudget {
    fn new(limit: u32) -> PageBudget {
        PageBudget {
            orders: limit.clamp(1, MAX_PAGE_ORDERS) as usize,
            bytes: MAX_PAGE_BYTES,
        }
    }

    /// Whether nothing is on the page yet (every order costs some bytes).
    fn is_empty(&self) -> bool {
        self.bytes == MAX_PAGE_BYTES
    }

    fn is_full(&self) -> bool {
        self.orders == 0 || self.bytes == 0
    }

    /// The longest prefix of `orders` that fits (at least one order on an empty page).
    fn take(&mut self, orders: &[Order]) -> Vec<Order> {
        let mut count = 0;
        for order in orders {
            let cost = order_cost(&order.items);
            if self.orders == 0 || (!self.is_empty() && cost > self.bytes) {
                break;
            }
            self.orders -= 1;
            self.bytes = self.bytes.saturating_sub(cost);
            count += 1;
        }
        orders[..count].to_vec()
    }
}

/// The Just Hungry order book: per postcode, the orders placed there, oldest first.
///
/// Postcodes are canonical ([`Postcode`]); every stored order passed [`check_order`]; orders are
/// only ever appended. Maps are `BTreeMap`s, so the serde encoding, the snapshot and the digest
/// are deterministic. `Default` is the empty book.
///
/// `apply` does not look for duplicate order ids: exactly-once is the job of the replica's
/// client table, and a duplicate here is a protocol bug that the invariant checks must see
/// (use [`OrderBook::order_ids`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OrderBookRepr")]
pub struct OrderBook {
    histories: BTreeMap<Postcode, Vec<Order>>,
    /// The most bytes [`OrderBook::stored_bytes`] may reach: part of the replicated state.
    max_bytes: u64,
    /// Derived from `histories` (recomputed on deserialize), so not part of the encoding.
    #[serde(skip_serializing)]
    stored_bytes: usize,
}

impl Default for OrderBook {
    fn default() -> Self {
        OrderBook {
            histories: BTreeMap::new(),
            max_bytes: DEFAULT_MAX_ORDER_BOOK_BYTES,
            stored_bytes: 0,
        }
    }
}

/// The encoded form of [`OrderBook`]: its histories and its limit.
#[derive(Deserialize)]
struct OrderBookRepr {
    histories: BTreeMap<Postcode, Vec<Order>>,
    max_bytes: u64,
}

impl From<OrderBookRepr> for OrderBook {
    fn from(repr: OrderBookRepr) -> OrderBook {
        OrderBook::from_histories(repr.histories).with_max_bytes(repr.max_bytes)
    }
}

/// The original system's hard-coded data set: public landmarks' postcodes, each with one to
/// three takeaway orders. Ids are `c0-1`, `c0-2`... in this order.
const SEED: &[(&str, &[&[&str]])] = &[
    (
        "SW1A 1AA",
        &[
            &["Chicken tikka masala", "Pilau rice", "Garlic naan"],
            &["Margherita pizza", "Garlic bread", "Tiramisu"],
        ],
    ),
    (
        "M1 1AE",
        &[&[
            "Salt and pepper chips",
            "Chicken chow mein",
            "Prawn crackers",
        ]],
    ),
    (
        "EH1 2NG",
        &[
            &["Haggis supper", "Irn-Bru"],
            &["Fish supper", "Mushy peas"],
            &["Deep-fried Mars bar"],
        ],
    ),
    ("CF10 3RB", &[&["Lamb doner kebab", "Chips", "Can of cola"]]),
    (
        "BT1 5GS",
        &[
            &["Pastie supper", "Gravy chips"],
            &["Chicken curry", "Boiled rice"],
        ],
    ),
];

impl OrderBook {
    /// An order book with no orders.
    pub fn empty() -> OrderBook {
        OrderBook::default()
    }

    /// The original system's pre-defined order history, which the first replica of a cluster
    /// starts from (docs/PROTOCOL.md, "Bootstrap"): five postcodes of public landmarks (London,
    /// Manchester, Edinburgh, Cardiff, Belfast) with nine takeaway orders in all. Their ids
    /// use the reserved [`SEED_CLIENT`] with sequence numbers 1 to 9. Every seed order passes
    /// [`check_order`]. The same on every call and every machine.
    pub fn with_predefined_history() -> OrderBook {
        let mut histories: BTreeMap<Postcode, Vec<Order>> = BTreeMap::new();
        let mut seq = 0;
        for (postcode, orders) in SEED {
            let Ok(postcode) = Postcode::parse(postcode) else {
                continue; // never happens: the tests check every seed postcode
            };
            let history = histories.entry(postcode).or_default();
            for items in *orders {
                seq += 1;
                history.push(Order {
                    id: RequestId {
                        client: SEED_CLIENT,
                        seq,
                    },
                    items: items.iter().map(|item| (*item).to_owned()).collect(),
                    unverified: false,
                });
            }
        }
        OrderBook::from_histories(histories)
    }

    /// A book of these histories, as they are (no validation, no limit checked).
    pub(crate) fn from_histories(histories: BTreeMap<Postcode, Vec<Order>>) -> OrderBook {
        let stored_bytes = histories.values().flatten().fold(0usize, |total, order| {
            total.saturating_add(order_cost(&order.items))
        });
        OrderBook {
            histories,
            max_bytes: DEFAULT_MAX_ORDER_BOOK_BYTES,
            stored_bytes,
        }
    }

    /// Its histories, by postcode (for [`crate::fixtures`]).
    pub(crate) fn into_histories(self) -> BTreeMap<Postcode, Vec<Order>> {
        self.histories
    }

    /// The same book with another limit ([`OrderBook::max_bytes`]). Set it on the state a
    /// cluster starts from: the limit is replicated with the orders, so a replica that joins
    /// takes the cluster's, whatever it started with.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> OrderBook {
        self.max_bytes = max_bytes;
        self
    }

    /// The most bytes the book may take, counted by [`OrderBook::stored_bytes`]: an order
    /// that would go past it is refused with [`OrderError::OrderBookFull`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The orders placed for `postcode`, oldest first; empty if none.
    pub fn history(&self, postcode: &Postcode) -> &[Order] {
        self.histories.get(postcode).map_or(&[], Vec::as_slice)
    }

    /// Every postcode with at least one order, and its orders, oldest first.
    pub fn histories(&self) -> &BTreeMap<Postcode, Vec<Order>> {
        &self.histories
    }

    /// How many orders the book holds.
    pub fn order_count(&self) -> usize {
        self.histories.values().map(Vec::len).sum()
    }

    /// How many postcodes have at least one order.
    pub fn postcode_count(&self) -> usize {
        self.histories.len()
    }

    /// Every order id, postcode by postcode (in postcode order), oldest first within one.
    pub fn order_ids(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.histories.values().flatten().map(|order| order.id)
    }

    /// Every postcode's order ids, oldest first: the book's initial state as a history declares
    /// it ([`just_hungry_core::history::initial_ids`]).
    pub fn ids_by_postcode(&self) -> BTreeMap<String, Vec<OrderId>> {
        self.histories
            .iter()
            .map(|(postcode, orders)| {
                let ids = orders.iter().map(|order| order.id).collect();
                (postcode.as_str().to_owned(), ids)
            })
            .collect()
    }

    /// Whether an order with this id is in the book.
    pub fn contains(&self, id: OrderId) -> bool {
        self.find(id).is_some()
    }

    /// The order with this id and its postcode, if present (the first one found, were ids
    /// duplicated). Linear in the number of orders.
    pub fn find(&self, id: OrderId) -> Option<(&Postcode, &Order)> {
        self.histories.iter().find_map(|(postcode, orders)| {
            orders
                .iter()
                .find(|order| order.id == id)
                .map(|order| (postcode, order))
        })
    }

    /// One page of every history from `from` on (see [`OrderQuery::AllHistories`]).
    fn histories_page(&self, from: Option<&HistoryCursor>, limit: u32) -> HistoriesPage {
        let mut page = PageBudget::new(limit);
        let mut histories = Vec::new();
        let mut next = None;
        let range = match from {
            Some(cursor) => self.histories.range(cursor.postcode.clone()..),
            None => self.histories.range(..),
        };
        for (postcode, orders) in range {
            let first = match from {
                Some(cursor) if cursor.postcode == *postcode => {
                    usize::try_from(cursor.index).unwrap_or(usize::MAX)
                }
                _ => 0,
            };
            let rest = orders.get(first..).unwrap_or(&[]);
            if rest.is_empty() {
                continue;
            }
            // Where this postcode's orders stop on this page, if they do.
            let end = if page.is_full() {
                first
            } else {
                let taken = page.take(rest);
                let end = first + taken.len();
                histories.push(HistorySlice {
                    postcode: postcode.clone(),
                    start: first as u64,
                    orders: taken,
                });
                end
            };
            if end < orders.len() {
                next = Some(HistoryCursor {
                    postcode: postcode.clone(),
                    index: end as u64,
                });
                break;
            }
        }
        HistoriesPage { histories, next }
    }

    /// The bytes counted against [`OrderBook::max_bytes`]: an upper bound of the book's
    /// encoded size, less a few bytes of framing.
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// Places one order: the offline checks, the size budget, then an append.
    fn place(
        &mut self,
        id: OrderId,
        postcode: &str,
        items: &[String],
        unverified: bool,
    ) -> Result<OrderId, OrderError> {
        let postcode = check_order(postcode, items)?;
        let items = trimmed_items(items);
        let stored_bytes = self
            .stored_bytes
            .checked_add(order_cost(&items))
            .filter(|total| *total as u64 <= self.max_bytes)
            .ok_or(OrderError::OrderBookFull {
                max_bytes: self.max_bytes,
            })?;
        self.histories.entry(postcode).or_default().push(Order {
            id,
            items,
            unverified,
        });
        self.stored_bytes = stored_bytes;
        Ok(id)
    }
}

impl StateMachine for OrderBook {
    const SERVICE: &'static str = "just-hungry/orders";
    type Command = OrderCommand;
    type Reply = Result<OrderId, OrderError>;
    type Query = OrderQuery;
    type QueryReply = Result<OrderHistory, OrderError>;

    /// Re-runs [`check_order`] (offline, no I/O), checks [`OrderBook::max_bytes`], and appends
    /// `Order { id: context.request, items, unverified }` (items trimmed; `unverified` for
    /// [`OrderCommand::PlaceUnverifiedOrder`]) under the canonical postcode, answering the id.
    /// On any error the book is unchanged. Deterministic; never panics.
    fn apply(&mut self, context: &ApplyContext, command: &OrderCommand) -> Self::Reply {
        let (postcode, items) = command.order();
        let unverified = matches!(command, OrderCommand::PlaceUnverifiedOrder { .. });
        self.place(context.request, postcode, items, unverified)
    }

    /// Answers from the current state. A history query for a malformed postcode answers the
    /// format error; for a well-formed postcode with no orders, an empty list.
    /// What [`OrderBook::snapshot_writer`] writes, in one step.
    fn snapshot(&self) -> Result<Vec<u8>, just_hungry_core::codec::CodecError> {
        snapshot::whole(self)
    }

    /// Reads what [`OrderBook::snapshot_writer`] writes.
    fn restore(bytes: &[u8]) -> Result<OrderBook, just_hungry_core::codec::CodecError> {
        let mut reader = snapshot::BookReader::default();
        just_hungry_core::state_machine::SnapshotReader::<OrderBook>::read(&mut reader, bytes)?;
        just_hungry_core::state_machine::SnapshotReader::<OrderBook>::finish(Box::new(reader))
    }

    /// Op-tracked: writes the histories postcode by postcode in pieces while orders go on
    /// being placed, remembering (before each order is applied) the length at the start of
    /// any history it has not written yet. Nothing is copied up front; the writer holds one
    /// number per postcode changed since it began. See `orders/snapshot.rs` for the layout.
    fn snapshot_writer(
        &self,
    ) -> Result<
        Box<dyn just_hungry_core::state_machine::SnapshotWriter<OrderBook>>,
        just_hungry_core::codec::CodecError,
    > {
        Ok(Box::new(snapshot::BookWriter::new(self)))
    }

    /// Decodes the pieces as they arrive, holding at most one piece of bytes besides the
    /// orders decoded.
    fn snapshot_reader() -> Box<dyn just_hungry_core::state_machine::SnapshotReader<OrderBook>> {
        Box::new(snapshot::BookReader::default())
    }

    /// An order refused for any [`OrderError`]: its [`OrderError::label`].
    fn refusal(reply: &Self::Reply) -> Option<&'static str> {
        reply.as_ref().err().map(OrderError::label)
    }

    fn query(&self, query: &OrderQuery) -> Self::QueryReply {
        match query {
            OrderQuery::History {
                postcode,
                start,
                limit,
            } => {
                let postcode = postcode::normalise(postcode)?;
                let history = self.history(&postcode);
                let mut page = PageBudget::new(*limit);
                let first = usize::try_from(*start).unwrap_or(usize::MAX);
                let orders = page.take(history.get(first..).unwrap_or(&[]));
                let end = first.saturating_add(orders.len());
                let next = (end < history.len()).then_some(end as u64);
                Ok(OrderHistory::ForPostcode(HistoryPage {
                    postcode,
                    start: *start,
                    orders,
                    next,
                }))
            }
            OrderQuery::AllHistories { from, limit } => Ok(OrderHistory::All(
                self.histories_page(from.as_ref(), *limit),
            )),
        }
    }
}

/// The order book's [`CommandValidator`], run once at the primary: the limits
/// ([`check_items`]), then the postcode through `P`, then the rewrite into the final command
/// (canonical postcode, trimmed item names; [`OrderCommand::PlaceUnverifiedOrder`] when `P`
/// accepted the postcode as [`PostcodeCheck::Unverified`], [`OrderCommand::PlaceOrder`]
/// otherwise). A refusal is the reply `Err(error)`.
///
/// The offline format check runs before `P` (as the [`PostcodeValidator`] contract requires of
/// `P` anyway), so a malformed postcode never costs a network call whatever `P` is; `P` is given
/// the canonical form.
#[derive(Clone, Debug, Default)]
pub struct OrderValidator<P> {
    postcodes: P,
}

impl<P: PostcodeValidator> OrderValidator<P> {
    /// A validator checking postcodes with `postcodes`.
    pub fn new(postcodes: P) -> Self {
        OrderValidator { postcodes }
    }

    /// The postcode validator in use.
    pub fn postcode_validator(&self) -> &P {
        &self.postcodes
    }
}

impl OrderValidator<OfflineValidator> {
    /// A validator with the offline format check only: no I/O, answers at once, the same
    /// answers as [`validate_offline`].
    pub fn offline() -> Self {
        OrderValidator::new(OfflineValidator)
    }
}

#[async_trait::async_trait]
impl<P: PostcodeValidator> CommandValidator<OrderBook> for OrderValidator<P> {
    async fn validate(
        &self,
        command: OrderCommand,
    ) -> Result<OrderCommand, Result<OrderId, OrderError>> {
        let (postcode, items) = command.order();
        let canonical = check_order(postcode, items).map_err(Err)?;
        let validated = self
            .postcodes
            .validate(canonical.as_str())
            .await
            .map_err(|e| Err(OrderError::from(e)))?;
        let items = trimmed_items(items);
        let postcode = validated.postcode.into_string();
        Ok(match validated.check {
            PostcodeCheck::Unverified { .. } => {
                OrderCommand::PlaceUnverifiedOrder { postcode, items }
            }
            PostcodeCheck::Format | PostcodeCheck::Confirmed(_) => {
                OrderCommand::PlaceOrder { postcode, items }
            }
        })
    }
}
