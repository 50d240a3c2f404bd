//! The order book's snapshot (`just_hungry::orders`, written in pieces): malformed or
//! misordered pieces are refused, a long history takes several pieces, and orders placed while
//! a snapshot is written never reach it.

use proptest::prelude::*;
use serde::Serialize;

use just_hungry::core::codec::{self, CodecError};
use just_hungry::core::ids::{ClientId, OpNumber, RequestId, Time};
use just_hungry::core::state_machine::{ApplyContext, SnapshotReader, StateMachine};
use just_hungry::orders::{MAX_PIECE_BYTES, Order, OrderBook, OrderCommand};

/// How many bytes of orders a writer puts in one piece: a quarter of [`MAX_PIECE_BYTES`].
const PIECE_BUDGET: usize = MAX_PIECE_BYTES / 4;

fn restore(bytes: &[u8]) -> Result<OrderBook, CodecError> {
    OrderBook::restore(bytes)
}

/// One raw piece, encoded as the variant `tag` of the snapshot's pieces (0 `Limit`, 1
/// `Orders`, 2 `End`) followed by `body`.
fn raw_piece<T: Serialize>(tag: u32, body: &T) -> Vec<u8> {
    let encoded = codec::encode(&(tag, body)).unwrap();
    let mut out = (encoded.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&encoded);
    out
}

fn raw_snapshot(postcodes: &[&str]) -> Vec<u8> {
    let mut bytes = raw_piece(0, &100_000u64);
    for postcode in postcodes {
        let order = Order {
            id: RequestId::default(),
            items: vec!["Chips".to_owned()],
            unverified: false,
        };
        bytes.extend(raw_piece(1, &(postcode.to_string(), vec![order])));
    }
    bytes.extend(raw_piece(2, &()));
    bytes
}

#[test]
fn malformed_or_misordered_snapshots_are_refused() {
    // The raw layout restores when it is right (so each refusal below is its own).
    let book = restore(&raw_snapshot(&["M1 1AE", "SW1A 1AA"])).unwrap();
    assert_eq!(book.order_count(), 2);
    assert_eq!(book.max_bytes(), 100_000);
    assert!(restore(&raw_snapshot(&["SW1A-1AA"])).is_err(), "postcode");
    assert!(
        restore(&raw_snapshot(&["SW1A 1AA", "M1 1AE"])).is_err(),
        "order"
    );
    let whole = raw_snapshot(&["M1 1AE"]);
    for cut in [0, 3, 4, whole.len() / 2, whole.len() - 1] {
        assert!(restore(&whole[..cut]).is_err(), "cut at {cut}");
    }
    let mut after_end = whole.clone();
    after_end.extend(raw_piece(2, &()));
    assert!(restore(&after_end).is_err(), "a piece after the end");
    let mut trailing = whole.clone();
    trailing.push(7);
    assert!(restore(&trailing).is_err(), "trailing bytes");
    let mut giant = ((MAX_PIECE_BYTES + 1) as u32).to_le_bytes().to_vec();
    giant.extend_from_slice(&[0; 16]);
    assert!(restore(&giant).is_err(), "a piece longer than the limit");
    assert!(restore(&[1, 2, 3]).is_err());
}

#[test]
fn a_long_history_takes_several_pieces_and_comes_back_whole() {
    let mut book = OrderBook::empty();
    let items: Vec<String> = (0..50).map(|i| format!("{i:0>100}")).collect();
    for seq in 1..=500 {
        let context = ApplyContext {
            op: OpNumber(seq),
            request: RequestId {
                client: ClientId(1),
                seq,
            },
            time: Time(seq),
        };
        let command = OrderCommand::PlaceOrder {
            postcode: "SW1A 1AA".into(),
            items: items.clone(),
        };
        book.apply(&context, &command).unwrap();
    }
    let bytes = book.snapshot().unwrap();
    assert!(bytes.len() > 2 * PIECE_BUDGET, "{} bytes", bytes.len());
    assert_eq!(restore(&bytes).unwrap(), book);
}

/// A step of the property below: write some bytes, or place an order.
#[derive(Clone, Debug)]
enum Step {
    Write(usize),
    Place { postcode: usize, items: usize },
}

const POSTCODES: &[&str] = &[
    "B1 1AA", "E1 6AN", "EH1 2NG", "M1 1AE", "SW1A 1AA", "W1A 0AX", "ZE1 0AA", "bogus",
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1usize..200).prop_map(Step::Write),
        (0..POSTCODES.len(), 1usize..4)
            .prop_map(|(postcode, items)| Step::Place { postcode, items }),
    ]
}

proptest! {
    /// Orders placed while a snapshot is written (on postcodes before, at and after the
    /// writer's position, new ones, and malformed ones) never reach it: it restores to the
    /// book as it was when it began, however the bytes are cut for reading.
    #[test]
    fn a_snapshot_is_the_book_where_it_began(
        orders in 0usize..60,
        postcodes in 1usize..6,
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 0..80),
        cut in 1usize..300,
    ) {
        let mut book = just_hungry::fixtures::synthetic_book(orders, postcodes, seed);
        let at_start = book.clone();
        let mut writer = book.snapshot_writer().unwrap();
        let mut bytes = Vec::new();
        let mut done = false;
        let mut seq = 0;
        for step in steps.iter().cycle().take(steps.len() * 4) {
            if done {
                break;
            }
            match step {
                Step::Write(budget) => done = writer.write(&book, &mut bytes, *budget).unwrap(),
                Step::Place { postcode, items } => {
                    seq += 1;
                    let context = ApplyContext {
                        op: OpNumber(seq),
                        request: RequestId { client: ClientId(77), seq },
                        time: Time(seq),
                    };
                    let command = OrderCommand::PlaceOrder {
                        postcode: POSTCODES[*postcode].into(),
                        items: (0..*items).map(|i| format!("late {seq}.{i}")).collect(),
                    };
                    writer.before_apply(&book, &command);
                    let _ = book.apply(&context, &command);
                }
            }
        }
        while !done {
            done = writer.write(&book, &mut bytes, 64).unwrap();
        }
        let mut reader: Box<dyn SnapshotReader<OrderBook>> = OrderBook::snapshot_reader();
        for piece in bytes.chunks(cut) {
            reader.read(piece).unwrap();
        }
        let restored = reader.finish().unwrap();
        prop_assert_eq!(&restored, &at_start);
        prop_assert_eq!(restored.digest(), at_start.digest());
    }
}
