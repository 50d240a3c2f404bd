//! The order book (`just_hungry::orders`): what `apply` stores and refuses, the limits and
//! their messages, queries and their pages, the seed history, snapshots, the size budget, and
//! the primary's validator rewriting commands into their final form.

use std::collections::BTreeMap;

use just_hungry::core::codec;
use just_hungry::core::ids::{ClientId, OpNumber, RequestId, Time};
use just_hungry::core::state_machine::{ApplyContext, CommandValidator, StateMachine};
use just_hungry::orders::{
    DEFAULT_MAX_ORDER_BOOK_BYTES, HistoryPage, MAX_ITEM_NAME_BYTES, MAX_ITEMS_PER_ORDER,
    MAX_PAGE_BYTES, MAX_PAGE_ORDERS, Order, OrderBook, OrderCommand, OrderError, OrderHistory,
    OrderQuery, OrderValidator, SEED_CLIENT, check_order, validate_offline,
};
use just_hungry::postcode::{self, Postcode, PostcodeCheck, PostcodeError, PostcodeValidator};

fn context(client: u64, seq: u64) -> ApplyContext {
    ApplyContext {
        op: OpNumber(seq),
        request: RequestId {
            client: ClientId(client),
            seq,
        },
        time: Time(1_700_000_000_000),
    }
}

fn place(postcode: &str, items: &[&str]) -> OrderCommand {
    OrderCommand::PlaceOrder {
        postcode: postcode.to_owned(),
        items: items.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn pc(s: &str) -> Postcode {
    Postcode::parse(s).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn apply_appends_under_the_canonical_postcode_with_the_request_id() {
    let mut book = OrderBook::empty();
    let reply = book.apply(
        &context(3, 17),
        &place("sw1a1aa", &["  Chips ", "Curry sauce"]),
    );
    let id = RequestId {
        client: ClientId(3),
        seq: 17,
    };
    assert_eq!(reply, Ok(id));
    assert_eq!(id.to_string(), "c3-17");
    assert_eq!(
        book.history(&pc("SW1A 1AA")),
        &[Order {
            id,
            items: strings(&["Chips", "Curry sauce"]),
            unverified: false,
        }]
    );
    book.apply(&context(4, 1), &place("SW1A 1AA", &["Kebab"]))
        .unwrap();
    let ids: Vec<_> = book.history(&pc("SW1A 1AA")).iter().map(|o| o.id).collect();
    assert_eq!(
        ids,
        [
            id,
            RequestId {
                client: ClientId(4),
                seq: 1
            }
        ]
    );
    assert_eq!(book.order_count(), 2);
    assert!(book.contains(id));
    assert_eq!(book.find(id).map(|(p, _)| p.as_str()), Some("SW1A 1AA"));
}

#[test]
fn a_refused_order_changes_nothing() {
    let mut book = OrderBook::with_predefined_history();
    let before = book.clone();
    let digest = book.digest();
    for command in [
        place("SW1A 1AA", &[]),
        place("SW1A 1AA", &["  "]),
        place("SW1A-1AA", &["Chips"]),
        place("", &["Chips"]),
    ] {
        assert!(book.apply(&context(9, 1), &command).is_err());
    }
    assert_eq!(book, before);
    assert_eq!(book.digest(), digest);
    assert!(!book.contains(RequestId {
        client: ClientId(9),
        seq: 1
    }));
}

#[test]
fn every_limit_has_its_error() {
    let items = |n: usize| vec!["Chips".to_owned(); n];
    assert_eq!(check_order("M1 1AE", &[]), Err(OrderError::EmptyOrder));
    assert!(check_order("M1 1AE", &items(MAX_ITEMS_PER_ORDER)).is_ok());
    assert_eq!(
        check_order("M1 1AE", &items(MAX_ITEMS_PER_ORDER + 1)),
        Err(OrderError::TooManyItems { count: 51, max: 50 })
    );
    assert_eq!(
        check_order("M1 1AE", &strings(&["Chips", ""])),
        Err(OrderError::EmptyItemName { index: 1 })
    );
    assert_eq!(
        check_order("M1 1AE", &strings(&[" \t\u{3000} "])),
        Err(OrderError::EmptyItemName { index: 0 })
    );
    let longest = "x".repeat(MAX_ITEM_NAME_BYTES);
    assert!(check_order("M1 1AE", &[format!("  {longest}  ")]).is_ok());
    assert_eq!(
        check_order("M1 1AE", &["é".repeat(51)]),
        Err(OrderError::ItemNameTooLong {
            index: 0,
            bytes: 102,
            max: 100
        })
    );
    for bad in [
        '\t', '\n', '\u{0}', '\u{7f}', '\u{85}', '\u{202e}', '\u{2028}', '\u{feff}',
    ] {
        assert_eq!(
            check_order("M1 1AE", &["Chips".to_owned(), format!("Fish{bad}cake")]),
            Err(OrderError::ItemNameNotPrintable {
                index: 1,
                character: bad
            }),
            "{bad:?}"
        );
    }
    assert!(check_order("M1 1AE", &strings(&["Crème brûlée", "🍕 slice", "Bánh mì"])).is_ok());
    assert!(matches!(
        check_order("Q1 1AA", &strings(&["Chips"])),
        Err(OrderError::InvalidPostcode(
            PostcodeError::LetterNotAllowed { .. }
        ))
    ));
    // Item limits are checked before the postcode.
    assert_eq!(check_order("nonsense", &[]), Err(OrderError::EmptyOrder));
}

#[test]
fn messages_are_friendly() {
    assert_eq!(
        OrderError::EmptyOrder.to_string(),
        "an order needs at least one item"
    );
    assert_eq!(
        OrderError::EmptyItemName { index: 0 }.to_string(),
        "item 1 has no name"
    );
    assert_eq!(
        OrderError::ItemNameNotPrintable {
            index: 2,
            character: '\t'
        }
        .to_string(),
        "the name of item 3 contains an invisible control character (U+0009): please type it again"
    );
    // A hostile index from the wire does not overflow.
    let _ = OrderError::EmptyItemName { index: usize::MAX }.to_string();
    let postcode = OrderError::from(PostcodeError::Empty);
    assert_eq!(postcode.to_string(), PostcodeError::Empty.to_string());
    assert!(!postcode.is_retryable());
    assert!(
        OrderError::from(PostcodeError::Unreachable {
            reason: "timeout".into()
        })
        .is_retryable()
    );
}

#[test]
fn queries_find_orders_by_any_spelling_of_the_postcode() {
    let mut book = OrderBook::empty();
    book.apply(&context(1, 1), &place("EC1A 1BB", &["Pho"]))
        .unwrap();
    for spelling in ["EC1A 1BB", "ec1a1bb", "  Ec1A\t1bB "] {
        let reply = book.query(&OrderQuery::history(spelling));
        let Ok(OrderHistory::ForPostcode(page)) = reply else {
            panic!("{spelling:?}: {reply:?}");
        };
        assert_eq!(page.postcode.as_str(), "EC1A 1BB");
        assert_eq!(page.orders.len(), 1);
    }
}

#[test]
fn a_query_for_an_unused_postcode_is_empty_and_for_a_malformed_one_an_error() {
    let book = OrderBook::with_predefined_history();
    assert_eq!(
        book.query(&OrderQuery::history("B33 8TH")),
        Ok(OrderHistory::ForPostcode(HistoryPage {
            postcode: pc("B33 8TH"),
            start: 0,
            orders: vec![],
            next: None,
        }))
    );
    assert!(matches!(
        book.query(&OrderQuery::history("SW1A 1A")),
        Err(OrderError::InvalidPostcode(
            PostcodeError::WrongShape { .. }
        ))
    ));
    let Ok(OrderHistory::All(page)) = book.query(&OrderQuery::all_histories()) else {
        panic!("an all-histories page");
    };
    assert_eq!(page.next, None);
    let all: BTreeMap<Postcode, Vec<Order>> = page
        .histories
        .into_iter()
        .map(|slice| (slice.postcode, slice.orders))
        .collect();
    assert_eq!(&all, book.histories());
}

/// Reads a postcode's history page by page of `limit`.
fn paged_history(book: &OrderBook, postcode: &str, limit: u32) -> Vec<Order> {
    let mut orders = Vec::new();
    let mut start = 0;
    loop {
        let query = OrderQuery::History {
            postcode: postcode.into(),
            start,
            limit,
        };
        let Ok(OrderHistory::ForPostcode(page)) = book.query(&query) else {
            panic!("a history page");
        };
        assert_eq!(page.start, start);
        assert!(page.orders.len() <= limit.max(1) as usize);
        orders.extend(page.orders);
        match page.next {
            Some(next) => start = next,
            None => return orders,
        }
    }
}

/// Reads every history page by page of `limit`.
fn paged_histories(book: &OrderBook, limit: u32) -> BTreeMap<Postcode, Vec<Order>> {
    let mut all: BTreeMap<Postcode, Vec<Order>> = BTreeMap::new();
    let mut from = None;
    loop {
        let query = OrderQuery::AllHistories { from, limit };
        let Ok(OrderHistory::All(page)) = book.query(&query) else {
            panic!("a histories page");
        };
        let count: usize = page.histories.iter().map(|s| s.orders.len()).sum();
        assert!(count >= 1 && count <= limit.max(1) as usize, "{count}");
        for slice in page.histories {
            let held = all.entry(slice.postcode).or_default();
            assert_eq!(held.len() as u64, slice.start, "slices follow each other");
            held.extend(slice.orders);
        }
        match page.next {
            Some(next) => from = Some(next),
            None => return all,
        }
    }
}

#[test]
fn pages_of_any_size_read_every_order_once_in_order() {
    let mut book = OrderBook::with_predefined_history();
    for seq in 1..=25 {
        let postcode = ["EC1A 1BB", "M1 1AE", "EH1 2NG"][seq as usize % 3];
        book.apply(&context(7, seq), &place(postcode, &["Pho"]))
            .unwrap();
    }
    for limit in [0, 1, 2, 3, 7, 100] {
        for postcode in ["EC1A 1BB", "M1 1AE", "SW1A 1AA", "B33 8TH"] {
            let whole = book.history(&pc(postcode)).to_vec();
            assert_eq!(
                paged_history(&book, postcode, limit),
                whole,
                "{postcode} by {limit}"
            );
        }
        assert_eq!(
            &paged_histories(&book, limit),
            book.histories(),
            "by {limit}"
        );
    }
    // A start past the end: an empty last page.
    let query = OrderQuery::History {
        postcode: "EC1A 1BB".into(),
        start: 1_000,
        limit: 5,
    };
    let Ok(OrderHistory::ForPostcode(page)) = book.query(&query) else {
        panic!("a page");
    };
    assert!(page.orders.is_empty() && page.next.is_none());
}

#[test]
fn a_page_of_large_orders_stays_within_its_byte_budget() {
    let mut book = OrderBook::empty();
    let items: Vec<String> = (0..MAX_ITEMS_PER_ORDER)
        .map(|i| format!("{i:0>width$}", width = MAX_ITEM_NAME_BYTES))
        .collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    let orders = 2 * MAX_PAGE_BYTES / (MAX_ITEMS_PER_ORDER * MAX_ITEM_NAME_BYTES) + 10;
    for seq in 1..=orders as u64 {
        book.apply(&context(9, seq), &place("EC1A 1BB", &items))
            .unwrap();
    }
    let Ok(OrderHistory::ForPostcode(page)) = book.query(&OrderQuery::history("EC1A 1BB")) else {
        panic!("a page");
    };
    let encoded = codec::encode(&page).unwrap().len();
    assert!(encoded <= MAX_PAGE_BYTES, "{encoded} bytes");
    assert!(page.next.is_some() && page.orders.len() < orders);
    assert_eq!(
        paged_history(&book, "EC1A 1BB", MAX_PAGE_ORDERS).len(),
        orders
    );
    assert_eq!(
        paged_histories(&book, MAX_PAGE_ORDERS)
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        orders
    );
}

#[test]
fn predefined_history_loads_and_obeys_every_rule() {
    let book = OrderBook::with_predefined_history();
    // Five postcodes of public landmarks: London, Manchester, Edinburgh, Cardiff, Belfast.
    assert_eq!(book.postcode_count(), 5);
    assert_eq!(book.order_count(), 9);
    let mut ids: Vec<_> = book.order_ids().collect();
    ids.sort();
    let expected: Vec<_> = (1..=9)
        .map(|seq| RequestId {
            client: SEED_CLIENT,
            seq,
        })
        .collect();
    assert_eq!(ids, expected);
    for (postcode, orders) in book.histories() {
        assert!((1..=3).contains(&orders.len()));
        for order in orders {
            assert_eq!(
                check_order(postcode.as_str(), &order.items),
                Ok(postcode.clone())
            );
            assert!(
                order.items.iter().all(|item| item.trim() == item),
                "stored trimmed: {:?}",
                order.items
            );
        }
    }
    assert_eq!(book.history(&pc("SW1A 1AA")).len(), 2);
    assert_eq!(book, OrderBook::with_predefined_history());
}

#[test]
fn snapshot_restore_round_trip_keeps_the_state_and_digest() {
    let mut book = OrderBook::with_predefined_history();
    book.apply(&context(7, 1), &place("dn551pt", &["Pad thai"]))
        .unwrap();
    book.apply(
        &context(7, 2),
        &place("JE2 3AB", &["Crab sandwich", "Chips"]),
    )
    .unwrap();
    let bytes = book.snapshot().unwrap();
    let restored = OrderBook::restore(&bytes).unwrap();
    assert_eq!(restored, book);
    assert_eq!(restored.digest(), book.digest());
    assert_eq!(restored.stored_bytes(), book.stored_bytes());
    assert_ne!(book.digest(), OrderBook::with_predefined_history().digest());
    // The budget bounds the encoding, but for the framing of the pieces (one per postcode
    // here, and the limit and the end).
    let framing = 16 * (book.postcode_count() + 2);
    assert!(
        bytes.len() <= book.stored_bytes() + framing,
        "{} > {} + {framing}",
        bytes.len(),
        book.stored_bytes()
    );
}

#[test]
fn a_full_book_refuses_orders_and_changes_nothing() {
    // Orders are placed until the next one would go past the limit.
    let mut book = OrderBook::empty().with_max_bytes(1000);
    let mut seq = 0;
    let refusal = loop {
        seq += 1;
        assert!(seq <= 1000, "a book of 1000 bytes never filled");
        let before = book.clone();
        match book.apply(&context(1, seq), &place("M1 1AE", &["Chips"])) {
            Ok(_) => assert!(book.stored_bytes() <= 1000, "{}", book.stored_bytes()),
            Err(error) => {
                assert_eq!(book, before, "a refused order changes nothing");
                break error;
            }
        }
    };
    assert_eq!(refusal, OrderError::OrderBookFull { max_bytes: 1000 });
    assert!(book.order_count() > 0);
    // Full stays full, and still changes nothing.
    let before = book.clone();
    assert_eq!(
        book.apply(&context(1, seq + 1), &place("M1 1AE", &["Chips"])),
        Err(OrderError::OrderBookFull { max_bytes: 1000 })
    );
    assert_eq!(book, before);
    // The limit travels with the state.
    let restored = OrderBook::restore(&book.snapshot().unwrap()).unwrap();
    assert_eq!(restored.max_bytes(), 1000);
    assert_eq!(OrderBook::empty().max_bytes(), DEFAULT_MAX_ORDER_BOOK_BYTES);
}

#[test]
fn validate_offline_rewrites_into_the_final_command() {
    assert_eq!(
        validate_offline(place(" sw1a 1aa ", &[" Chips ", "Peas"])),
        Ok(place("SW1A 1AA", &["Chips", "Peas"]))
    );
    assert_eq!(
        validate_offline(place("SW1A 1AA", &["Chips", "\n"])),
        Err(OrderError::EmptyItemName { index: 1 })
    );
    // Validating the final command again changes nothing.
    let final_command = place("SW1A 1AA", &["Chips", "Peas"]);
    assert_eq!(validate_offline(final_command.clone()), Ok(final_command));
}

/// A postcode validator that refuses everything the offline check accepts, as an online
/// validator would for an unknown postcode, and counts its calls.
#[derive(Default)]
struct NotFoundAnywhere {
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl PostcodeValidator for NotFoundAnywhere {
    async fn validate(&self, input: &str) -> Result<postcode::Validated, PostcodeError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let postcode = postcode::normalise(input)?;
        Err(PostcodeError::NotFound { postcode })
    }
}

#[test]
fn order_validator_checks_limits_then_the_postcode_and_rewrites() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let offline = OrderValidator::offline();
    let validate = |command| runtime.block_on(offline.validate(command));
    assert_eq!(
        validate(place("sw1a1aa", &[" Chips "])),
        Ok(place("SW1A 1AA", &["Chips"]))
    );
    assert_eq!(
        validate(place("sw1a1aa", &[])),
        Err(Err(OrderError::EmptyOrder))
    );
    assert!(matches!(
        validate(place("SW1A-1AA", &["Chips"])),
        Err(Err(OrderError::InvalidPostcode(
            PostcodeError::CharacterNotAllowed { .. }
        )))
    ));
    // The same answers as the synchronous check.
    for command in [
        place("m11ae", &["Pie"]),
        place("XX", &["Pie"]),
        place("M1 1AE", &[""]),
    ] {
        assert_eq!(
            validate(command.clone()),
            validate_offline(command).map_err(Err)
        );
    }

    let online = OrderValidator::new(NotFoundAnywhere::default());
    assert_eq!(
        runtime.block_on(online.validate(place("sw1a 9zz", &["Chips"]))),
        Err(Err(OrderError::InvalidPostcode(PostcodeError::NotFound {
            postcode: pc("SW1A 9ZZ")
        })))
    );
    // Limits and malformed postcodes are refused before the postcode validator is called.
    let _ = runtime.block_on(online.validate(place("sw1a 9zz", &[])));
    let _ = runtime.block_on(online.validate(place("SW1A-9ZZ", &["Chips"])));
    let calls = online
        .postcode_validator()
        .calls
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(calls, 1);
}

/// A postcode validator that accepts whatever passes the format check as
/// [`PostcodeCheck::Unverified`], as an online one does when no directory answers and the
/// policy is to accept.
struct NothingAnswers;

#[async_trait::async_trait]
impl PostcodeValidator for NothingAnswers {
    async fn validate(&self, input: &str) -> Result<postcode::Validated, PostcodeError> {
        Ok(postcode::Validated {
            postcode: postcode::normalise(input)?,
            check: PostcodeCheck::Unverified {
                reason: "postcodes.io: timed out".into(),
            },
        })
    }
}

fn unverified(postcode: &str, items: &[&str]) -> OrderCommand {
    OrderCommand::PlaceUnverifiedOrder {
        postcode: postcode.to_owned(),
        items: items.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn an_order_accepted_unverified_is_replicated_and_stored_as_unverified() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let validator = OrderValidator::new(NothingAnswers);
    let command = runtime
        .block_on(validator.validate(place(" m1 1ae", &[" Pie "])))
        .unwrap();
    assert_eq!(command, unverified("M1 1AE", &["Pie"]));
    // Refusals are unchanged by the policy.
    assert!(matches!(
        runtime.block_on(validator.validate(place("M1-1AE", &["Pie"]))),
        Err(Err(OrderError::InvalidPostcode(
            PostcodeError::CharacterNotAllowed { .. }
        )))
    ));
    // A client cannot make an order verified by sending the unverified variant to a
    // validator that checks, nor the other way round: the validator decides.
    let checked = OrderValidator::offline();
    assert_eq!(
        runtime.block_on(checked.validate(unverified("m11ae", &["Pie"]))),
        Ok(place("M1 1AE", &["Pie"]))
    );

    let mut book = OrderBook::empty();
    book.apply(&context(2, 1), &command).unwrap();
    book.apply(&context(2, 2), &place("M1 1AE", &["Chips"]))
        .unwrap();
    let flags: Vec<bool> = book
        .history(&pc("M1 1AE"))
        .iter()
        .map(|o| o.unverified)
        .collect();
    assert_eq!(flags, [true, false]);
    let restored = OrderBook::restore(&book.snapshot().unwrap()).unwrap();
    assert_eq!(restored, book);
    assert_eq!(restored.digest(), book.digest());
    // The flag is part of the replicated state.
    let mut other = OrderBook::empty();
    other
        .apply(&context(2, 1), &place("M1 1AE", &["Pie"]))
        .unwrap();
    other
        .apply(&context(2, 2), &place("M1 1AE", &["Chips"]))
        .unwrap();
    assert_ne!(other.digest(), book.digest());
    // The offline rewrite answers as the offline validator does, and apply re-checks an
    // unverified order like any other.
    assert_eq!(
        validate_offline(unverified(" m11ae ", &[" Pie "])),
        Ok(place("M1 1AE", &["Pie"]))
    );
    assert!(
        book.apply(&context(2, 3), &unverified("M1-1AE", &["Pie"]))
            .is_err()
    );
}

#[test]
fn the_same_commands_give_the_same_state_on_every_replica() {
    let commands = [
        place("SW1A 1AA", &["Chips"]),
        place("bad", &["Chips"]),
        place("M1 1AE", &["Pie", "Mash"]),
    ];
    let run = || {
        let mut book = OrderBook::with_predefined_history();
        let replies: Vec<_> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| book.apply(&context(5, i as u64 + 1), c))
            .collect();
        (book.digest(), replies)
    };
    assert_eq!(run(), run());
}
