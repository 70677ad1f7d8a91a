//! Criterion benchmarks for the matching engine, risk checks and strategy.

use std::hint::black_box;

mod common;

use common::deep_book;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trading_core::{
    MatchingEngine, MovingAverageCrossover, NewOrder, OrderIntent, Price, Qty, RiskChecker, RiskLimits, Side,
};

fn bench_insert_deep_book(c: &mut Criterion) {
    let mut group = c.benchmark_group("book");
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert_into_deep_book", |b| {
        let mut book = deep_book(1_000, 10);
        let mut fills = Vec::with_capacity(16);
        let mut id = 10_000_000u64;
        b.iter(|| {
            id += 1;
            // Passive insert somewhere inside the 1000-level bid side, then cancel to
            // keep the book at a steady size.
            let price = 9_999 - (id % 1_000) as i64;
            let exec = book
                .submit(NewOrder::limit(id, Side::Buy, price, 5), &mut fills)
                .unwrap();
            black_box(exec);
            book.cancel(trading_core::OrderId(id)).unwrap();
        });
    });
    group.finish();
}

fn bench_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("book");
    for levels in [1_i64, 10, 100] {
        group.throughput(Throughput::Elements(levels as u64));
        group.bench_function(format!("sweep_{levels}_levels"), |b| {
            b.iter_batched_ref(
                || (deep_book(levels, 4), Vec::with_capacity(levels as usize * 4)),
                |(book, fills)| {
                    let qty = (levels as u64) * 4 * 10;
                    let exec = book
                        .submit(NewOrder::limit(u64::MAX, Side::Buy, 10_000 + levels, qty), fills)
                        .unwrap();
                    black_box(exec);
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn bench_engine_mixed(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("submit_mixed_limit", |b| {
        let mut engine = MatchingEngine::new();
        let mut fills = Vec::with_capacity(64);
        let mut id = 0u64;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        b.iter(|| {
            id += 1;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let side = if state & 1 == 0 { Side::Buy } else { Side::Sell };
            let price = 10_000 + (state >> 8) as i64 % 20 - 10;
            fills.clear();
            let exec = engine
                .submit(
                    "BENCH",
                    NewOrder::limit(id, side, price, 1 + (state >> 40) % 10),
                    &mut fills,
                )
                .unwrap();
            black_box(exec);
        });
    });
    group.finish();
}

fn bench_risk(c: &mut Criterion) {
    let risk = RiskChecker::new(RiskLimits::default());
    let order = OrderIntent {
        side: Side::Buy,
        price: Some(Price(10_050)),
        qty: Qty(100),
    };
    c.bench_function("risk/check_pass", |b| {
        b.iter(|| {
            black_box(risk.check(
                black_box(&order),
                black_box(1_000),
                black_box(Some(Price(10_000))),
            ))
        });
    });
}

fn bench_strategy(c: &mut Criterion) {
    c.bench_function("strategy/ma_crossover_tick", |b| {
        let mut s = MovingAverageCrossover::new(10, 50, Qty(1));
        let mut t = 0i64;
        b.iter(|| {
            t += 1;
            // a slow oscillation so that crossings actually happen
            let price = 10_000 + ((t / 40) % 2) * 20 + t % 7;
            black_box(s.on_tick(Price(price)))
        });
    });
}

criterion_group!(
    benches,
    bench_insert_deep_book,
    bench_sweep,
    bench_engine_mixed,
    bench_risk,
    bench_strategy
);
criterion_main!(benches);
