//! Property-based tests (proptest): random but realistic operation sequences —
//! limit and market orders on both sides over a handful of price levels, cancels
//! and replaces of resting orders — checked against the book and matching
//! invariants after every step.
//!
//! * [`book`]: no crossed book, conservation of quantity, price-time priority;
//! * [`risk`]: the risk checks reject exactly the orders that breach a limit, and
//!   positions stay within limits whatever fills.
//!
//! Seeds: random per run unless `PROPTEST_RNG_SEED=<u64>` is set (CI sets it, so
//! its runs are reproducible); `PROPTEST_CASES` changes the number of cases (256).
//! A failing case is shrunk to a minimal one, printed as "minimal failing input",
//! and its seed appended to `proptest-regressions/props/<file>.txt`; commit that
//! file: every later run replays the saved seeds first.

mod book;
mod risk;

use proptest::prelude::*;
use proptest::sample::Index;

use crate::Side;

/// Lowest and highest limit price generated: eleven levels, so orders rest on
/// several levels and cross often.
pub(crate) const PRICES: std::ops::RangeInclusive<i64> = 95..=105;

/// One step of a generated sequence. Cancels and replaces pick a resting order by
/// index into the live orders (so they nearly always hit one), or an id that was
/// never used when nothing rests.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Limit { side: Side, price: i64, qty: u64 },
    Market { side: Side, qty: u64 },
    Cancel { target: Index },
    Replace { target: Index, price: i64, qty: u64 },
}

pub(crate) fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (side(), PRICES, 1..=20u64).prop_map(|(side, price, qty)| Op::Limit { side, price, qty }),
        1 => (side(), 1..=30u64).prop_map(|(side, qty)| Op::Market { side, qty }),
        2 => any::<Index>().prop_map(|target| Op::Cancel { target }),
        2 => (any::<Index>(), PRICES, 1..=20u64)
            .prop_map(|(target, price, qty)| Op::Replace { target, price, qty }),
    ]
}

/// A sequence of up to 80 operations.
pub(crate) fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..80)
}

/// The id a cancel or replace acts on: one of the `live` ids, or `fallback` (an
/// id never submitted) when none rests.
pub(crate) fn pick(target: &Index, live: &[u64], fallback: u64) -> u64 {
    if live.is_empty() {
        fallback
    } else {
        live[target.index(live.len())]
    }
}
