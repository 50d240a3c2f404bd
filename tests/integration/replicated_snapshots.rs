//! The replicated state of the order book (order book and client table) snapshots and
//! restores through the order book's streaming snapshot: cut anywhere, written while ops are
//! applied, truncated or extended.

use just_hungry::orders::{OrderBook, OrderCommand};
use just_hungry_core::protocol::client_table::ClientTableLimits;
use just_hungry_core::protocol::messages::Entry;
use just_hungry_core::protocol::replicated_state::ReplicatedState;
use just_hungry_core::{ClientId, OpNumber, RequestId, Time};

fn state_with_orders(n: u64) -> ReplicatedState<OrderBook> {
    let mut state = ReplicatedState::new(
        just_hungry::fixtures::synthetic_book(300, 17, 1),
        ClientTableLimits::default(),
    );
    for seq in 1..=n {
        let _reply = state.apply(&Entry {
            op: OpNumber(seq),
            request: RequestId {
                client: ClientId(5 + seq % 3),
                seq,
            },
            time: Time(seq),
            owner: "client".into(),
            command: OrderCommand::PlaceOrder {
                postcode: "SW1A 1AA".into(),
                items: vec![format!("dish {seq}")],
            },
        });
    }
    state
}

#[test]
fn a_snapshot_restores_from_any_cutting_of_its_bytes() {
    let state = state_with_orders(20);
    let bytes = state.snapshot().unwrap();
    for size in [1, 7, 64, 1000, bytes.len()] {
        let mut reader = ReplicatedState::<OrderBook>::snapshot_reader();
        for piece in bytes.chunks(size) {
            reader.read(piece).unwrap();
        }
        let back = reader.finish().unwrap();
        assert_eq!(back.digest(), state.digest());
        assert_eq!(back.applied(), OpNumber(20));
    }
}

#[test]
fn a_snapshot_written_while_ops_are_applied_is_the_state_where_it_began() {
    let mut state = state_with_orders(20);
    let at_start = state.digest();
    let mut writer = state.snapshot_writer().unwrap();
    let mut bytes = Vec::new();
    let mut seq = 20;
    // A few bytes, then an op, until the snapshot is whole.
    while !writer.write(&state, &mut bytes, 5).unwrap() {
        seq += 1;
        let entry = Entry {
            op: OpNumber(seq),
            request: RequestId {
                client: ClientId(9),
                seq,
            },
            time: Time(seq),
            owner: "client".into(),
            command: OrderCommand::PlaceOrder {
                postcode: ["SW1A 1AA", "B1 1AA", "ZE1 0AA"][seq as usize % 3].into(),
                items: vec![format!("late dish {seq}")],
            },
        };
        writer.before_apply(&state, &entry.command);
        let _ = state.apply(&entry);
    }
    // At least one op between the pieces of each of the 17 postcodes.
    assert!(seq >= 20 + 17, "ops were applied while it was written");
    let back = ReplicatedState::<OrderBook>::restore(&bytes).unwrap();
    assert_eq!(back.digest(), at_start);
    assert_eq!(back.applied(), OpNumber(20));
}

#[test]
fn truncated_or_extended_snapshots_are_refused() {
    let bytes = state_with_orders(3).snapshot().unwrap();
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(ReplicatedState::<OrderBook>::restore(&bytes[..cut]).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(ReplicatedState::<OrderBook>::restore(&longer).is_err());
}
