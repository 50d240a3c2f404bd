//! The order book as the simulator drives it ([`SimService`]): a postcode is a key, an order's
//! id (its request's) is what a write appends, and the postcodes are typed loosely, to
//! exercise the normalisation at the primary.

use std::collections::BTreeMap;

use crate::orders::{
    OrderBook, OrderCommand, OrderError, OrderHistory, OrderQuery, validate_offline,
};
use crate::postcode;
use just_hungry_core::ids::RequestId;
use just_hungry_core::rng::SeededRng;
use just_hungry_core::sim::{SimKey, SimPage, SimService};

/// The valid postcodes the simulated clients use, as typed and canonical.
pub const SIM_POSTCODES: [SimKey; 6] = [
    SimKey {
        typed: "SW1A 1AA",
        canonical: "SW1A 1AA",
    },
    SimKey {
        typed: "m1 1ae",
        canonical: "M1 1AE",
    },
    SimKey {
        typed: "EH1 2NG",
        canonical: "EH1 2NG",
    },
    SimKey {
        typed: "cf103rb",
        canonical: "CF10 3RB",
    },
    SimKey {
        typed: "BT1 5GS",
        canonical: "BT1 5GS",
    },
    SimKey {
        typed: "SW1A 2AA",
        canonical: "SW1A 2AA",
    },
];

/// The postcode of the writes that fail the format check (refused by validation).
pub const SIM_INVALID_POSTCODE: &str = "NOT A POSTCODE";

/// The dishes of the simulated orders.
const MENU: [&str; 6] = [
    "Margherita pizza",
    " Chips ",
    "Chicken korma",
    "Prawn crackers",
    "Falafel wrap",
    "Irn-Bru",
];

impl SimService for OrderBook {
    const KEYS: &'static [SimKey] = &SIM_POSTCODES;

    fn initial() -> Self {
        OrderBook::with_predefined_history()
    }

    /// Of every eight targets: six valid orders (one per postcode of [`SIM_POSTCODES`], one to
    /// three dishes), one for [`SIM_INVALID_POSTCODE`] and one with no items, both refused.
    fn write(target: u8, rng: &mut SeededRng) -> OrderCommand {
        let mut items = || {
            let n = rng.between(1, 3);
            (0..n)
                .map(|_| MENU[rng.below(MENU.len() as u64) as usize].to_owned())
                .collect::<Vec<_>>()
        };
        let (postcode, items) = match usize::from(target) % 8 {
            p @ 0..6 => (SIM_POSTCODES[p].typed, items()),
            6 => (SIM_INVALID_POSTCODE, items()),
            _ => (SIM_POSTCODES[0].typed, Vec::new()),
        };
        OrderCommand::PlaceOrder {
            postcode: postcode.to_owned(),
            items,
        }
    }

    fn final_write(key: &SimKey) -> OrderCommand {
        OrderCommand::PlaceOrder {
            postcode: key.typed.to_owned(),
            items: vec!["Final check meal".to_owned()],
        }
    }

    fn write_key(command: &OrderCommand) -> String {
        Self::canonical_key(command.order().0)
    }

    fn canonical_key(typed: &str) -> String {
        postcode::normalise(typed)
            .map(|p| p.into_string())
            .unwrap_or_else(|_| typed.to_owned())
    }

    fn read(key: &str, start: u64, limit: u32) -> OrderQuery {
        OrderQuery::History {
            postcode: key.to_owned(),
            start,
            limit,
        }
    }

    fn written(reply: &Result<RequestId, OrderError>) -> Option<RequestId> {
        reply.as_ref().ok().copied()
    }

    fn page(answer: &Result<OrderHistory, OrderError>) -> Option<SimPage> {
        match answer {
            Ok(OrderHistory::ForPostcode(page)) => Some(SimPage {
                start: page.start,
                ids: page.orders.iter().map(|o| o.id).collect(),
                next: page.next,
            }),
            Ok(OrderHistory::All(_)) | Err(_) => None,
        }
    }

    fn validate(command: OrderCommand) -> Result<OrderCommand, Result<RequestId, OrderError>> {
        validate_offline(command).map_err(Err)
    }

    fn ids(&self) -> Vec<RequestId> {
        self.order_ids().collect()
    }

    fn lists(&self) -> BTreeMap<String, Vec<RequestId>> {
        self.ids_by_postcode()
    }

    fn contains(&self, id: RequestId) -> bool {
        OrderBook::contains(self, id)
    }

    fn forged_write() -> OrderCommand {
        OrderCommand::PlaceOrder {
            postcode: SIM_POSTCODES[0].typed.to_owned(),
            items: vec!["forged".to_owned()],
        }
    }
}
