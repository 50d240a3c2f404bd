//! The codec alone (`just_hungry_core::codec`, bincode underneath): encoding and decoding the
//! protocol's `Message` for a `Prepare` of 1, 64 and 512 place-orders and for a client's
//! place-order request. Encoding reuses one buffer, as the runtime's send path does.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use just_hungry::core::codec;
use just_hungry::core::protocol::messages::Message;
use just_hungry::orders::OrderBook;

use common::orders::{prepare_message, request_message};

fn bench_message(c: &mut Criterion, name: &str, message: &Message<OrderBook>) {
    let encoded = codec::encode(message).expect("a bench message encodes");
    let mut benches = c.benchmark_group("codec");
    benches.throughput(Throughput::Bytes(encoded.len() as u64));
    let mut buffer = Vec::with_capacity(encoded.len());
    benches.bench_function(format!("encode/{name}"), |b| {
        b.iter(|| {
            buffer.clear();
            codec::encode_into(black_box(message), &mut buffer).expect("encodes");
            black_box(buffer.len())
        })
    });
    benches.bench_function(format!("decode/{name}"), |b| {
        b.iter(|| codec::decode::<Message<OrderBook>>(black_box(&encoded)).expect("decodes"))
    });
    benches.finish();
}

fn codec_benches(c: &mut Criterion) {
    for entries in [1, 64, 512] {
        bench_message(c, &format!("prepare/{entries}"), &prepare_message(entries));
    }
    bench_message(c, "request", &request_message());
}

criterion_group!(benches, codec_benches);
criterion_main!(benches);
