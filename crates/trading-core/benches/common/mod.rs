//! What the criterion and the instruction-count benches share.

use trading_core::{NewOrder, OrderBook, Side};

/// A book with `levels` ask levels above 10_000 and as many bid levels below,
/// `per_level` orders each.
pub fn deep_book(levels: i64, per_level: u64) -> OrderBook {
    let mut book = OrderBook::with_capacity((levels as usize) * (per_level as usize) * 2 + 16);
    let mut fills = Vec::new();
    let mut id = 1;
    for l in 0..levels {
        for _ in 0..per_level {
            book.submit(NewOrder::limit(id, Side::Sell, 10_001 + l, 10), &mut fills)
                .unwrap();
            id += 1;
            book.submit(NewOrder::limit(id, Side::Buy, 9_999 - l, 10), &mut fills)
                .unwrap();
            id += 1;
        }
    }
    book
}
