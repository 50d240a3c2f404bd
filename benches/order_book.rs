//! The order book alone: applying place-orders as a replica does (`ReplicatedState::apply`:
//! the client table, then `OrderBook::apply` through the `StateMachine` trait) and through the
//! trait directly; and the snapshot of a replica's state (what a state transfer sends) holding
//! 10k and 100k orders, and its restore.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use just_hungry::core::protocol::client_table::ClientTableLimits;
use just_hungry::core::protocol::replicated_state::ReplicatedState;
use just_hungry::core::state_machine::{ApplyContext, StateMachine};
use just_hungry::orders::{OrderBook, OrderCommand};

use common::orders::{entry, place_order, request_id};

/// Orders applied to one fresh book before the next is made: keeps every book far below the
/// book's size limit however many iterations criterion asks for.
const BOOK_ORDERS: u64 = 10_000;
/// Clients the orders come from (the client table's size).
const CLIENTS: u64 = 64;

/// The validated command of order `i` (canonical postcode), as a primary replicates it.
fn validated(i: u64) -> OrderCommand {
    just_hungry::orders::validate_offline(place_order(i as usize, i))
        .expect("a bench order is valid")
}

/// A replica's state at op 0 holding the pre-defined history.
fn fresh_state() -> ReplicatedState<OrderBook> {
    ReplicatedState::new(
        OrderBook::with_predefined_history(),
        ClientTableLimits::default(),
    )
}

/// A replica's state after `orders` place-orders.
fn state_with(orders: u64) -> ReplicatedState<OrderBook> {
    let mut state = fresh_state();
    for i in 0..orders {
        let reply = state.apply(&entry(
            i + 1,
            request_id(i % CLIENTS, i / CLIENTS + 1),
            validated(i),
        ));
        reply.expect("a bench order is placed");
    }
    state
}

/// Times `iters` applies of `apply_one(book, i)` on fresh books of at most [`BOOK_ORDERS`]
/// orders, made outside the timing.
fn timed_applies<B>(
    iters: u64,
    mut fresh: impl FnMut() -> B,
    mut apply_one: impl FnMut(&mut B, u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let mut book = fresh();
        let chunk = (iters - done).min(BOOK_ORDERS);
        let started = Instant::now();
        for i in 0..chunk {
            apply_one(&mut book, i);
        }
        total += started.elapsed();
        done += chunk;
        drop(book);
    }
    total
}

fn apply(c: &mut Criterion) {
    // Built once: a backup applies entries it has decoded, so building them is not its cost.
    let entries: Vec<_> = (0..BOOK_ORDERS)
        .map(|i| {
            entry(
                i + 1,
                request_id(i % CLIENTS, i / CLIENTS + 1),
                validated(i),
            )
        })
        .collect();
    let mut benches = c.benchmark_group("order_book");
    benches.throughput(Throughput::Elements(1));
    benches.bench_function("apply/replicated_state", |b| {
        b.iter_custom(|iters| {
            timed_applies(iters, fresh_state, |state, i| {
                let reply = state.apply(black_box(&entries[i as usize]));
                assert!(reply.is_ok(), "a bench order is placed");
            })
        })
    });
    benches.bench_function("apply/state_machine", |b| {
        b.iter_custom(|iters| {
            timed_applies(iters, OrderBook::with_predefined_history, |book, i| {
                let e = &entries[i as usize];
                let context = ApplyContext {
                    op: e.op,
                    request: e.request,
                    time: e.time,
                };
                let reply = book.apply(&context, black_box(&e.command));
                assert!(reply.is_ok(), "a bench order is placed");
            })
        })
    });
    benches.finish();
}

fn snapshot(c: &mut Criterion) {
    let mut benches = c.benchmark_group("order_book");
    benches.sample_size(20);
    for (name, orders) in [("10k", 10_000), ("100k", 100_000)] {
        let state = state_with(orders);
        let bytes = state.snapshot().expect("a snapshot");
        benches.throughput(Throughput::Bytes(bytes.len() as u64));
        benches.bench_function(format!("snapshot/{name}"), |b| {
            b.iter(|| black_box(&state).snapshot().expect("a snapshot"))
        });
        benches.bench_function(format!("restore/{name}"), |b| {
            // One at a time, dropped outside the timing: freeing a book is not restoring it.
            b.iter_batched(
                || (),
                |()| ReplicatedState::<OrderBook>::restore(black_box(&bytes)).expect("restores"),
                BatchSize::PerIteration,
            )
        });
    }
    benches.finish();
}

criterion_group!(benches, apply, snapshot);
criterion_main!(benches);
