//! Fixtures for measurements and fault runs: large, deterministic order books built directly,
//! not through `apply`. The benches, the measuring tools (`benches/tools/`), the tests, the
//! nemesis and the replica's hidden `--preload-orders` share them; the order book itself
//! ([`crate::orders`]) holds only the service.

use std::collections::BTreeMap;

use just_hungry_core::ids::{ClientId, RequestId};

use crate::orders::{Order, OrderBook};
use crate::postcode::Postcode;

/// A synthetic book for measurements (the benches, `state_transfer`, the replica's hidden
/// `--preload-orders`): `orders` orders spread round-robin over `postcodes` distinct valid
/// postcodes (at least 1), each of 1 to 3 items of 9 to 14 bytes drawn from a fixed menu,
/// placed by 10,000 clients with random-looking ids. Deterministic in `seed`.
///
/// It is built directly, not through `apply`, so it may exceed [`OrderBook::max_bytes`]
/// (a million such orders count about 55 MB): such a book refuses new orders with
/// [`crate::orders::OrderError::OrderBookFull`], which `apply` still decides on every replica alike.
pub fn synthetic_book(orders: usize, postcodes: usize, seed: u64) -> OrderBook {
    const MENU: &[&str] = &[
        "Pilau rice",
        "Garlic naan",
        "Onion bhaji",
        "Chips large",
        "Fish supper",
        "Kebab wrap",
        "Chow mein",
        "Spring roll",
        "Veg samosa",
        "Lamb karahi",
        "Egg fried rice",
        "Can of cola",
        "Mushy peas",
        "Donner meat",
        "Prawn toast",
        "Sweet lassi",
    ];
    const CLIENTS: u64 = 10_000;
    const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    const AREAS: &[&str] = &["B", "E", "G", "L", "M", "N", "S", "W"];
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut codes: Vec<Postcode> = Vec::with_capacity(postcodes.max(1));
    let mut n: usize = 0;
    while codes.len() < postcodes.max(1) {
        let area = AREAS[n % AREAS.len()];
        let district = 1 + (n / AREAS.len()) % 99;
        let sector = (n / (AREAS.len() * 99)) % 10;
        let unit = n / (AREAS.len() * 99 * 10);
        let (a, b) = (
            UNIT[unit % UNIT.len()],
            UNIT[(unit / UNIT.len()) % UNIT.len()],
        );
        let text = format!("{area}{district} {sector}{}{}", a as char, b as char);
        if let Ok(code) = Postcode::parse(&text)
            && codes.last() != Some(&code)
        {
            codes.push(code);
        }
        n += 1;
    }
    let clients: Vec<ClientId> = (0..CLIENTS).map(|_| ClientId(next() | 1)).collect();
    let mut histories: BTreeMap<Postcode, Vec<Order>> = BTreeMap::new();
    for i in 0..orders {
        let r = next();
        let count = 1 + (r % 3) as usize;
        let items = (0..count)
            .map(|k| MENU[((r >> (8 + 8 * k)) as usize) % MENU.len()].to_owned())
            .collect();
        let id = RequestId {
            client: clients[i % clients.len()],
            seq: (i / clients.len()) as u64 + 1,
        };
        histories
            .entry(codes[i % codes.len()].clone())
            .or_default()
            .push(Order {
                id,
                items,
                unverified: false,
            });
    }
    OrderBook::from_histories(histories)
}

/// `book` with the orders of `other` appended to its own, postcode by postcode (the
/// pre-defined history and a synthetic bulk, say). Built directly, like [`synthetic_book`], so
/// it may exceed `book`'s limit ([`OrderBook::max_bytes`]), which it keeps.
pub fn merged(book: OrderBook, other: OrderBook) -> OrderBook {
    let max_bytes = book.max_bytes();
    let mut histories: BTreeMap<Postcode, Vec<Order>> = book.into_histories();
    for (postcode, orders) in other.into_histories() {
        histories.entry(postcode).or_default().extend(orders);
    }
    OrderBook::from_histories(histories).with_max_bytes(max_bytes)
}
