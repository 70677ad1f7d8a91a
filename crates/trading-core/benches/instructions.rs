//! Instruction counts (gungraun, under valgrind's callgrind) of the hot paths the
//! criterion benches time: the order book insert, the matching sweep and the risk
//! check. Counts are deterministic, so a busy machine cannot fake a regression.
//! Needs valgrind and the `gungraun-runner` binary at the crate's version
//! (`invoke tools.install`); the pipeline runs them with `nox -s bench -- --mode instructions`.

// gungraun's macros expand to fully qualified paths.
#![allow(unused_qualifications)]

use std::hint::black_box;

mod common;

use common::deep_book;
use gungraun::{library_benchmark, library_benchmark_group, main};
use trading_core::{
    Execution, Fill, NewOrder, OrderBook, OrderIntent, Price, Qty, RiskChecker, RiskError, RiskLimits, Side,
};

/// The book and fill buffer a benchmark works on; returned again so that dropping
/// them happens outside the measured function.
type Input = (OrderBook, Vec<Fill>, i64);

// Built outside the measured region (gungraun's setup).
fn book_with_levels(levels: i64, per_level: u64) -> Input {
    let fills = Vec::with_capacity((levels as usize) * (per_level as usize) + 16);
    (deep_book(levels, per_level), fills, levels)
}

// A passive buy resting inside a 1000-level bid side.
#[library_benchmark]
#[bench::deep_book(args = (1_000, 10), setup = book_with_levels)]
fn insert_into_deep_book(input: Input) -> (Input, Execution) {
    let (mut book, mut fills, levels) = input;
    let exec = book
        .submit(
            black_box(NewOrder::limit(50_000_000, Side::Buy, 9_500, 5)),
            &mut fills,
        )
        .unwrap();
    black_box(((book, fills, levels), exec))
}

// An aggressive buy sweeping `levels` ask levels of four orders each.
#[library_benchmark]
#[bench::levels_10(args = (10, 4), setup = book_with_levels)]
#[bench::levels_100(args = (100, 4), setup = book_with_levels)]
fn sweep(input: Input) -> (Input, Execution) {
    let (mut book, mut fills, levels) = input;
    let qty = (levels as u64) * 4 * 10;
    let exec = book
        .submit(
            black_box(NewOrder::limit(u64::MAX, Side::Buy, 10_000 + levels, qty)),
            &mut fills,
        )
        .unwrap();
    black_box(((book, fills, levels), exec))
}

// The pre-trade risk check of an order that passes every rule.
#[library_benchmark]
fn risk_check_pass() -> Result<(), RiskError> {
    let risk = RiskChecker::new(RiskLimits::default());
    let order = OrderIntent {
        side: Side::Buy,
        price: Some(Price(10_050)),
        qty: Qty(100),
    };
    black_box(risk.check(
        black_box(&order),
        black_box(1_000),
        black_box(Some(Price(10_000))),
    ))
}

library_benchmark_group!(name = book, benchmarks = [insert_into_deep_book, sweep]);
library_benchmark_group!(name = risk, benchmarks = [risk_check_pass]);

main!(library_benchmark_groups = book, risk);
