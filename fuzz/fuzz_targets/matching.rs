//! The matching engine under arbitrary operation sequences: limit and market orders,
//! cancels and replaces over a few price levels. After every step the book is not
//! crossed, and quantity is conserved: submitted = filled + resting + cancelled.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use trading_core::{Fill, MatchingEngine, NewOrder, OrderId, Price, Qty, Side};

#[derive(Debug, Arbitrary)]
enum Op {
    Limit { buy: bool, level: u8, qty: u8 },
    Market { buy: bool, qty: u8 },
    Cancel { pick: u8 },
    Replace { pick: u8, level: u8, qty: u8 },
}

fn side(buy: bool) -> Side {
    if buy {
        Side::Buy
    } else {
        Side::Sell
    }
}

fn price(level: u8) -> i64 {
    100 + i64::from(level % 16)
}

fuzz_target!(|ops: Vec<Op>| {
    let mut engine = MatchingEngine::new();
    let mut fills: Vec<Fill> = Vec::new();
    let mut submitted: HashMap<u64, u64> = HashMap::new();
    let mut filled: HashMap<u64, u64> = HashMap::new();
    let mut cancelled: HashMap<u64, u64> = HashMap::new();
    let mut ids: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for op in ops.iter().take(256) {
        fills.clear();
        match *op {
            Op::Limit { buy, level, qty } => {
                next += 1;
                let q = u64::from(qty % 20) + 1;
                let order = NewOrder::limit(next, side(buy), price(level), q);
                if let Ok(exec) = engine.submit("FZ", order, &mut fills) {
                    submitted.insert(next, q);
                    ids.push(next);
                    assert_eq!(exec.filled.0 + exec.remaining.0, q);
                }
            }
            Op::Market { buy, qty } => {
                next += 1;
                let q = u64::from(qty % 20) + 1;
                let exec = engine
                    .submit("FZ", NewOrder::market(next, side(buy), q), &mut fills)
                    .expect("a valid market order is accepted");
                submitted.insert(next, q);
                *cancelled.entry(next).or_default() += q - exec.filled.0;
            }
            Op::Cancel { pick } => {
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()];
                    if let Ok((_, resting)) = engine.cancel(OrderId(id)) {
                        *cancelled.entry(id).or_default() += resting.remaining.0;
                    }
                }
            }
            Op::Replace { pick, level, qty } => {
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()];
                    let before = engine.order(OrderId(id)).map(|(_, o)| o.remaining.0);
                    let q = u64::from(qty % 20) + 1;
                    if let (Some(old), Ok(_)) =
                        (before, engine.replace(OrderId(id), Price(price(level)), Qty(q), &mut fills))
                    {
                        // the replaced order's size changes: account for it as submitted
                        *submitted.get_mut(&id).expect("known") += q;
                        *cancelled.entry(id).or_default() += old;
                    }
                }
            }
        }
        for f in &fills {
            *filled.entry(f.maker.0).or_default() += f.qty.0;
            *filled.entry(f.taker.0).or_default() += f.qty.0;
        }
        if let Some(book) = engine.book("FZ") {
            if let (Some((bid, _)), Some((ask, _))) = (book.best_bid(), book.best_ask()) {
                assert!(bid < ask, "crossed book: bid {bid:?} >= ask {ask:?}");
            }
        }
    }
    for (&id, &q) in &submitted {
        let resting = engine.order(OrderId(id)).map_or(0, |(_, o)| o.remaining.0);
        let done = filled.get(&id).copied().unwrap_or(0) + cancelled.get(&id).copied().unwrap_or(0);
        assert_eq!(q, done + resting, "order {id}: quantity not conserved");
    }
});
