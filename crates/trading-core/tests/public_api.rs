//! The public API's less travelled paths: error texts, restoring a duplicate, shrinking
//! a partially filled order, pre-sized books, symbol listing, the id hasher on byte
//! keys. The matching engine and the risk checks are critical paths: the coverage gate
//! requires every one of their lines to run under the tests.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use trading_core::{
    BookError, IdBuildHasher, IdHasher, MatchingEngine, NewOrder, OrderBook, OrderId, OrderStatus, Price,
    Qty, RiskChecker, RiskLimits, Side,
};

#[test]
fn every_book_error_is_one_readable_line() {
    let cases = [
        (BookError::DuplicateOrderId(OrderId(7)), "duplicate order id 7"),
        (BookError::UnknownOrder(OrderId(8)), "unknown order id 8"),
        (BookError::ZeroQuantity, "quantity must be greater than zero"),
        (
            BookError::InvalidPrice(Price(-1)),
            "invalid price -1: must be > 0",
        ),
        (
            BookError::WouldCross(OrderId(9)),
            "restored order 9 would cross the book",
        ),
        (
            BookError::NotALimitOrder(OrderId(10)),
            "order 10 is not a limit order",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
        let source: &dyn std::error::Error = &error;
        assert!(source.source().is_none());
    }
}

#[test]
fn a_pre_sized_book_matches_like_a_new_one() {
    let orders = [
        NewOrder::limit(1, Side::Sell, 101, 5),
        NewOrder::limit(2, Side::Sell, 100, 5),
        NewOrder::limit(3, Side::Buy, 101, 7),
    ];
    let mut sized = OrderBook::with_capacity(64);
    let mut fresh = OrderBook::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for order in orders {
        assert_eq!(sized.submit(order, &mut a), fresh.submit(order, &mut b));
    }
    assert_eq!(a, b);
    assert_eq!(sized.best_ask(), Some((Price(101), Qty(3))));
    assert_eq!(sized.depth(5), fresh.depth(5));
}

#[test]
fn restoring_an_id_that_rests_already_is_refused() {
    let mut book = OrderBook::new();
    book.restore(NewOrder::limit(1, Side::Buy, 100, 5), Qty(0))
        .unwrap();
    assert_eq!(
        book.restore(NewOrder::limit(1, Side::Buy, 99, 5), Qty(0)),
        Err(BookError::DuplicateOrderId(OrderId(1)))
    );
    assert_eq!(book.len(), 1);

    let mut engine = MatchingEngine::new();
    engine
        .restore("ACME", NewOrder::limit(2, Side::Sell, 105, 3), Qty(1))
        .unwrap();
    assert_eq!(
        engine.restore("OTHER", NewOrder::limit(2, Side::Sell, 105, 3), Qty(0)),
        Err(BookError::DuplicateOrderId(OrderId(2)))
    );
    assert_eq!(engine.resting_orders(), 1);
    assert!(
        engine.book("OTHER").is_none(),
        "a refused restore creates no book"
    );
}

#[test]
fn shrinking_a_partially_filled_order_keeps_its_place_and_status() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(NewOrder::limit(1, Side::Sell, 100, 10), &mut fills)
        .unwrap();
    book.submit(NewOrder::limit(2, Side::Sell, 100, 10), &mut fills)
        .unwrap();
    book.submit(NewOrder::limit(3, Side::Buy, 100, 4), &mut fills)
        .unwrap();
    let exec = book.replace(OrderId(1), Price(100), Qty(3), &mut fills).unwrap();
    assert_eq!(exec.status, OrderStatus::PartiallyFilled);
    assert_eq!((exec.filled, exec.remaining), (Qty(0), Qty(3)));
    assert_eq!(
        book.level_orders(Side::Sell, Price(100)),
        vec![OrderId(1), OrderId(2)]
    );
    assert_eq!(book.best_ask(), Some((Price(100), Qty(13))));
}

#[test]
fn the_engine_lists_symbols_in_the_order_they_appeared() {
    let mut engine = MatchingEngine::new();
    let mut fills = Vec::new();
    for (id, symbol) in [(1, "ZED"), (2, "ACME"), (3, "ZED")] {
        engine
            .submit(symbol, NewOrder::limit(id, Side::Buy, 10, 1), &mut fills)
            .unwrap();
    }
    assert_eq!(engine.symbols().collect::<Vec<_>>(), ["ZED", "ACME"]);
}

#[test]
fn a_risk_checker_reports_the_limits_it_enforces() {
    let limits = RiskLimits {
        max_order_qty: Qty(5),
        ..RiskLimits::default()
    };
    assert_eq!(RiskChecker::new(limits).limits(), &limits);
    assert_eq!(RiskChecker::default().limits(), &RiskLimits::default());
}

#[test]
fn every_status_has_its_persisted_name() {
    let names = [
        (OrderStatus::Open, "open", true),
        (OrderStatus::PartiallyFilled, "partially_filled", true),
        (OrderStatus::Filled, "filled", false),
        (OrderStatus::Cancelled, "cancelled", false),
    ];
    for (status, name, live) in names {
        assert_eq!(status.as_str(), name);
        assert_eq!(status.to_string(), name);
        assert_eq!(status.is_live(), live);
    }
}

#[test]
fn the_id_hasher_also_hashes_byte_keys() {
    let hash = |key: &str| IdBuildHasher::default().hash_one(key);
    assert_eq!(hash("ACME"), hash("ACME"));
    assert_ne!(hash("ACME"), hash("ACMF"));
    let mut h = IdHasher::default();
    h.write(b"");
    assert_eq!(h.finish(), IdHasher::default().finish());
    let mut by_name: HashMap<String, u32, IdBuildHasher> = HashMap::default();
    by_name.insert("ACME".to_owned(), 1);
    by_name.insert("ZED".to_owned(), 2);
    assert_eq!(by_name.get("ZED"), Some(&2));
}
