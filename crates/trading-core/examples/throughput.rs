//! Runs a stream of mixed limit orders (plus some cancels) through the engine
//! and prints the achieved rate.
//!
//! ```text
//! cargo run --release -p trading-core --example throughput [ORDERS]
//! ```

use std::time::Instant;

use trading_core::{MatchingEngine, NewOrder, OrderId, Side};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let symbols = ["AAA", "BBB", "CCC", "DDD"];

    // Pre-generate the order stream so that only the engine is timed.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut orders = Vec::with_capacity(n as usize);
    for id in 1..=n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let side = if state & 1 == 0 { Side::Buy } else { Side::Sell };
        // prices within ±25 ticks of 10_000: roughly half the orders cross
        let price = 10_000 + ((state >> 8) % 51) as i64 - 25;
        let qty = 1 + (state >> 32) % 20;
        let sym = symbols[((state >> 20) % 4) as usize];
        let cancel = (state >> 50).is_multiple_of(10); // 10 % of steps also cancel an older order
        orders.push((sym, NewOrder::limit(id, side, price, qty), cancel));
    }

    let mut engine = MatchingEngine::new();
    let mut fills = Vec::with_capacity(1024);
    let mut total_fills = 0u64;
    let mut cancels = 0u64;
    let start = Instant::now();
    for (sym, order, cancel) in &orders {
        fills.clear();
        engine.submit(sym, *order, &mut fills).expect("valid order");
        total_fills += fills.len() as u64;
        if *cancel && order.id.0 > 100 && engine.cancel(OrderId(order.id.0 - 100)).is_ok() {
            cancels += 1;
        }
    }
    let elapsed = start.elapsed();
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "orders={n} fills={total_fills} cancels={cancels} resting={} elapsed={:.3}s",
        engine.resting_orders(),
        elapsed.as_secs_f64()
    );
    println!("orders/sec={rate:.0}");
}
