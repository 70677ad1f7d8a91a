//! Unit tests for every rule and edge case.

use crate::*;

fn lim(id: u64, side: Side, price: i64, qty: u64) -> NewOrder {
    NewOrder::limit(id, side, price, qty)
}

// ---------------------------------------------------------------- order book

#[test]
fn market_order_on_empty_book_is_cancelled_without_fills() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    let exec = book
        .submit(NewOrder::market(1, Side::Buy, 5), &mut fills)
        .unwrap();
    assert_eq!(exec.status, OrderStatus::Cancelled);
    assert_eq!(exec.filled, Qty(0));
    assert_eq!(exec.remaining, Qty(0));
    assert!(fills.is_empty());
    assert!(book.is_empty());
    assert_eq!(book.last_trade_price(), None);
}

#[test]
fn market_order_partial_fill_cancels_remainder() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Buy, 100, 3), &mut fills).unwrap();
    let exec = book
        .submit(NewOrder::market(2, Side::Sell, 5), &mut fills)
        .unwrap();
    assert_eq!(exec.status, OrderStatus::Cancelled);
    assert_eq!(exec.filled, Qty(3));
    assert_eq!(fills.len(), 1);
    assert!(book.is_empty());
    assert!(book.order(OrderId(2)).is_none());
}

#[test]
fn limit_at_equal_price_crosses_at_resting_price() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 100, 5), &mut fills).unwrap();
    let exec = book.submit(lim(2, Side::Buy, 100, 5), &mut fills).unwrap();
    assert_eq!(exec.status, OrderStatus::Filled);
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, Price(100));
    assert_eq!(fills[0].maker, OrderId(1));
    assert_eq!(fills[0].taker, OrderId(2));
    assert_eq!(fills[0].taker_side, Side::Buy);
    assert!(book.is_empty());
}

#[test]
fn better_priced_taker_trades_at_maker_price() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Buy, 100, 5), &mut fills).unwrap();
    book.submit(lim(2, Side::Sell, 90, 2), &mut fills).unwrap();
    assert_eq!(fills[0].price, Price(100));
    assert_eq!(book.best_bid(), Some((Price(100), Qty(3))));
}

#[test]
fn non_crossing_limit_rests() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 101, 5), &mut fills).unwrap();
    let exec = book.submit(lim(2, Side::Buy, 100, 5), &mut fills).unwrap();
    assert_eq!(exec.status, OrderStatus::Open);
    assert!(fills.is_empty());
    assert_eq!(book.best_bid(), Some((Price(100), Qty(5))));
    assert_eq!(book.best_ask(), Some((Price(101), Qty(5))));
    assert_eq!(book.len(), 2);
}

#[test]
fn partial_fills_across_levels_and_remainder_rests() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 101, 2), &mut fills).unwrap();
    book.submit(lim(2, Side::Sell, 102, 3), &mut fills).unwrap();
    book.submit(lim(3, Side::Sell, 103, 4), &mut fills).unwrap();
    let exec = book.submit(lim(4, Side::Buy, 102, 10), &mut fills).unwrap();
    assert_eq!(exec.status, OrderStatus::PartiallyFilled);
    assert_eq!(exec.filled, Qty(5));
    assert_eq!(exec.remaining, Qty(5));
    let got: Vec<_> = fills.iter().map(|f| (f.maker.0, f.price.0, f.qty.0)).collect();
    assert_eq!(got, vec![(1, 101, 2), (2, 102, 3)]);
    assert_eq!(book.best_bid(), Some((Price(102), Qty(5))));
    assert_eq!(book.best_ask(), Some((Price(103), Qty(4))));
    assert_eq!(book.last_trade_price(), Some(Price(102)));
    let resting = book.order(OrderId(4)).unwrap();
    assert_eq!(resting.filled, Qty(5));
    assert_eq!(resting.remaining, Qty(5));
}

#[test]
fn partial_fill_of_maker_keeps_it_at_front() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 100, 10), &mut fills).unwrap();
    book.submit(lim(2, Side::Sell, 100, 10), &mut fills).unwrap();
    book.submit(lim(3, Side::Buy, 100, 4), &mut fills).unwrap();
    assert_eq!(fills[0].maker_remaining, Qty(6));
    assert_eq!(
        book.level_orders(Side::Sell, Price(100)),
        vec![OrderId(1), OrderId(2)]
    );
    assert_eq!(book.order(OrderId(1)).unwrap().remaining, Qty(6));
    assert_eq!(book.best_ask(), Some((Price(100), Qty(16))));
}

#[test]
fn fifo_within_level() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    for id in 1..=3 {
        book.submit(lim(id, Side::Buy, 100, 2), &mut fills).unwrap();
    }
    book.submit(lim(4, Side::Sell, 100, 5), &mut fills).unwrap();
    let makers: Vec<_> = fills.iter().map(|f| (f.maker.0, f.qty.0)).collect();
    assert_eq!(makers, vec![(1, 2), (2, 2), (3, 1)]);
    assert_eq!(book.level_orders(Side::Buy, Price(100)), vec![OrderId(3)]);
}

#[test]
fn a_price_without_a_level_has_no_orders() {
    // Found by source-based coverage: the branch for a price with no level was never run.
    let mut book = OrderBook::new();
    assert!(book.level_orders(Side::Buy, Price(100)).is_empty());
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 100, 2), &mut fills).unwrap();
    book.submit(lim(2, Side::Buy, 100, 2), &mut fills).unwrap();
    assert!(book.level_orders(Side::Sell, Price(100)).is_empty());
    assert!(book.level_orders(Side::Buy, Price(100)).is_empty());
}

#[test]
fn price_priority_beats_time_priority() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Buy, 99, 1), &mut fills).unwrap();
    book.submit(lim(2, Side::Buy, 100, 1), &mut fills).unwrap();
    book.submit(lim(3, Side::Sell, 99, 1), &mut fills).unwrap();
    assert_eq!(fills[0].maker, OrderId(2));
}

#[test]
fn cancel_unknown_id_is_an_error() {
    let mut book = OrderBook::new();
    assert_eq!(
        book.cancel(OrderId(42)),
        Err(BookError::UnknownOrder(OrderId(42)))
    );
}

#[test]
fn cancel_removes_from_middle_of_level() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    for id in 1..=3 {
        book.submit(lim(id, Side::Sell, 100, 1), &mut fills).unwrap();
    }
    let c = book.cancel(OrderId(2)).unwrap();
    assert_eq!(c.remaining, Qty(1));
    assert_eq!(
        book.level_orders(Side::Sell, Price(100)),
        vec![OrderId(1), OrderId(3)]
    );
    book.cancel(OrderId(1)).unwrap();
    book.cancel(OrderId(3)).unwrap();
    assert!(book.is_empty());
    assert_eq!(book.best_ask(), None);
    // Slots are reused.
    book.submit(lim(9, Side::Sell, 100, 1), &mut fills).unwrap();
    assert_eq!(book.level_orders(Side::Sell, Price(100)), vec![OrderId(9)]);
}

#[test]
fn cancel_filled_order_is_unknown() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 100, 1), &mut fills).unwrap();
    book.submit(lim(2, Side::Buy, 100, 1), &mut fills).unwrap();
    assert_eq!(book.cancel(OrderId(1)), Err(BookError::UnknownOrder(OrderId(1))));
}

#[test]
fn validation_errors() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    assert_eq!(
        book.submit(lim(1, Side::Buy, 100, 0), &mut fills),
        Err(BookError::ZeroQuantity)
    );
    assert_eq!(
        book.submit(lim(1, Side::Buy, 0, 1), &mut fills),
        Err(BookError::InvalidPrice(Price(0)))
    );
    book.submit(lim(1, Side::Buy, 100, 1), &mut fills).unwrap();
    assert_eq!(
        book.submit(lim(1, Side::Buy, 100, 1), &mut fills),
        Err(BookError::DuplicateOrderId(OrderId(1)))
    );
    assert_eq!(book.len(), 1);
}

#[test]
fn replace_decrease_keeps_priority() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 100, 5), &mut fills).unwrap();
    book.submit(lim(2, Side::Sell, 100, 5), &mut fills).unwrap();
    let e = book.replace(OrderId(1), Price(100), Qty(2), &mut fills).unwrap();
    assert_eq!(e.remaining, Qty(2));
    assert_eq!(
        book.level_orders(Side::Sell, Price(100)),
        vec![OrderId(1), OrderId(2)]
    );
    assert_eq!(book.best_ask(), Some((Price(100), Qty(7))));
    // same qty, same price: no-op that keeps priority
    book.replace(OrderId(1), Price(100), Qty(2), &mut fills).unwrap();
    assert_eq!(
        book.level_orders(Side::Sell, Price(100)),
        vec![OrderId(1), OrderId(2)]
    );
}

#[test]
fn replace_increase_or_price_change_loses_priority() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Sell, 100, 5), &mut fills).unwrap();
    book.submit(lim(2, Side::Sell, 100, 5), &mut fills).unwrap();
    book.replace(OrderId(1), Price(100), Qty(6), &mut fills).unwrap();
    assert_eq!(
        book.level_orders(Side::Sell, Price(100)),
        vec![OrderId(2), OrderId(1)]
    );
    book.replace(OrderId(2), Price(101), Qty(1), &mut fills).unwrap();
    assert_eq!(book.level_orders(Side::Sell, Price(100)), vec![OrderId(1)]);
    assert_eq!(book.level_orders(Side::Sell, Price(101)), vec![OrderId(2)]);
    assert!(fills.is_empty());
}

#[test]
fn replace_to_crossing_price_trades() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Buy, 99, 5), &mut fills).unwrap();
    book.submit(lim(2, Side::Sell, 101, 3), &mut fills).unwrap();
    let e = book.replace(OrderId(1), Price(101), Qty(5), &mut fills).unwrap();
    assert_eq!(e.status, OrderStatus::PartiallyFilled);
    assert_eq!(e.filled, Qty(3));
    assert_eq!(fills.len(), 1);
    assert_eq!(book.best_bid(), Some((Price(101), Qty(2))));
}

#[test]
fn replace_errors_leave_book_unchanged() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    assert_eq!(
        book.replace(OrderId(1), Price(1), Qty(1), &mut fills),
        Err(BookError::UnknownOrder(OrderId(1)))
    );
    book.submit(lim(1, Side::Buy, 100, 5), &mut fills).unwrap();
    assert_eq!(
        book.replace(OrderId(1), Price(100), Qty(0), &mut fills),
        Err(BookError::ZeroQuantity)
    );
    assert_eq!(
        book.replace(OrderId(1), Price(-1), Qty(1), &mut fills),
        Err(BookError::InvalidPrice(Price(-1)))
    );
    assert_eq!(book.order(OrderId(1)).unwrap().remaining, Qty(5));
}

#[test]
fn restore_rejects_crossing_and_market() {
    let mut book = OrderBook::new();
    book.restore(lim(1, Side::Buy, 100, 5), Qty(2)).unwrap();
    assert_eq!(book.order(OrderId(1)).unwrap().filled, Qty(2));
    assert_eq!(
        book.restore(lim(2, Side::Sell, 100, 1), Qty(0)),
        Err(BookError::WouldCross(OrderId(2)))
    );
    assert_eq!(
        book.restore(NewOrder::market(3, Side::Sell, 1), Qty(0)),
        Err(BookError::NotALimitOrder(OrderId(3)))
    );
}

#[test]
fn depth_is_sorted_best_first() {
    let mut book = OrderBook::new();
    let mut fills = Vec::new();
    book.submit(lim(1, Side::Buy, 98, 1), &mut fills).unwrap();
    book.submit(lim(2, Side::Buy, 99, 1), &mut fills).unwrap();
    book.submit(lim(3, Side::Sell, 102, 1), &mut fills).unwrap();
    book.submit(lim(4, Side::Sell, 101, 1), &mut fills).unwrap();
    let d = book.depth(1);
    assert_eq!(d.bids.len(), 1);
    assert_eq!(d.bids[0].price, Price(99));
    assert_eq!(d.asks[0].price, Price(101));
}

// ---------------------------------------------------------------- engine

#[test]
fn engine_routes_by_symbol_and_tracks_locations() {
    let mut e = MatchingEngine::new();
    let mut fills = Vec::new();
    e.submit("A", lim(1, Side::Buy, 100, 5), &mut fills).unwrap();
    e.submit("B", lim(2, Side::Sell, 100, 5), &mut fills).unwrap();
    assert!(fills.is_empty());
    assert_eq!(e.order(OrderId(1)).unwrap().0, "A");
    assert_eq!(
        e.submit("B", lim(1, Side::Buy, 1, 1), &mut fills),
        Err(BookError::DuplicateOrderId(OrderId(1)))
    );
    e.submit("A", lim(3, Side::Sell, 100, 5), &mut fills).unwrap();
    assert_eq!(fills.len(), 1);
    assert!(e.order(OrderId(1)).is_none());
    assert_eq!(e.cancel(OrderId(1)), Err(BookError::UnknownOrder(OrderId(1))));
    let (sym, rest) = e.cancel(OrderId(2)).unwrap();
    assert_eq!((sym.as_str(), rest.remaining), ("B", Qty(5)));
    assert_eq!(e.resting_orders(), 0);
    assert_eq!(e.last_trade_price("A"), Some(Price(100)));
    assert_eq!(e.last_trade_price("B"), None);
    assert!(e.depth("nope", 5).bids.is_empty());
}

#[test]
fn engine_replace_and_restore() {
    let mut e = MatchingEngine::new();
    let mut fills = Vec::new();
    e.restore("A", lim(10, Side::Sell, 105, 2), Qty(0)).unwrap();
    e.submit("A", lim(11, Side::Buy, 100, 2), &mut fills).unwrap();
    let ex = e.replace(OrderId(11), Price(105), Qty(2), &mut fills).unwrap();
    assert_eq!(ex.status, OrderStatus::Filled);
    assert_eq!(e.resting_orders(), 0);
    assert!(e.order(OrderId(10)).is_none());
}

#[test]
fn engine_put_book_undoes_a_symbols_changes_only() {
    let mut e = MatchingEngine::new();
    let mut fills = Vec::new();
    e.submit("A", lim(1, Side::Sell, 100, 5), &mut fills).unwrap();
    e.submit("A", lim(2, Side::Sell, 101, 5), &mut fills).unwrap();
    e.submit("B", lim(3, Side::Buy, 50, 5), &mut fills).unwrap();
    let (a, never) = (e.book("A").cloned(), e.book("C").cloned());
    let before = (e.depth("A", 10), e.last_trade_price("A"));
    // Fills order 1, takes part of order 2, rests order 4; cancels 2; opens book C.
    e.submit("A", lim(4, Side::Buy, 101, 7), &mut fills).unwrap();
    e.submit("A", lim(5, Side::Buy, 99, 1), &mut fills).unwrap();
    e.cancel(OrderId(2)).unwrap();
    e.submit("C", lim(6, Side::Sell, 10, 1), &mut fills).unwrap();
    e.put_book("A", a);
    e.put_book("C", never);
    assert_eq!((e.depth("A", 10), e.last_trade_price("A")), before);
    assert_eq!(
        e.order(OrderId(1)).map(|(s, o)| (s, o.remaining)),
        Some(("A", Qty(5)))
    );
    assert_eq!(
        e.order(OrderId(2)).map(|(s, o)| (s, o.remaining)),
        Some(("A", Qty(5)))
    );
    assert!(e.order(OrderId(4)).is_none() && e.order(OrderId(5)).is_none());
    assert!(e.order(OrderId(6)).is_none() && e.depth("C", 10).asks.is_empty());
    assert_eq!(e.order(OrderId(3)).map(|(s, _)| s), Some("B"));
    assert_eq!(e.resting_orders(), 3);
    // ... and matching goes on from there as if nothing happened.
    fills.clear();
    e.submit("A", lim(7, Side::Buy, 100, 5), &mut fills).unwrap();
    assert_eq!((fills.len(), fills[0].maker), (1, OrderId(1)));
}

// ---------------------------------------------------------------- risk

fn checker() -> RiskChecker {
    RiskChecker::new(RiskLimits {
        max_order_qty: Qty(100),
        max_notional: 10_000,
        max_position: 150,
        price_band_bps: 1_000,
    })
}

fn intent(side: Side, price: Option<i64>, qty: u64) -> OrderIntent {
    OrderIntent {
        side,
        price: price.map(Price),
        qty: Qty(qty),
    }
}

#[test]
fn risk_max_order_qty_at_and_past_limit() {
    let r = checker();
    assert!(r.check(&intent(Side::Buy, Some(1), 100), 0, None).is_ok());
    assert_eq!(
        r.check(&intent(Side::Buy, Some(1), 101), 0, None),
        Err(RiskError::MaxOrderQty {
            qty: Qty(101),
            limit: Qty(100)
        })
    );
}

#[test]
fn risk_max_notional_at_and_past_limit() {
    let r = checker();
    assert!(r.check(&intent(Side::Buy, Some(100), 100), 0, None).is_ok());
    let err = r.check(&intent(Side::Buy, Some(101), 100), 0, None).unwrap_err();
    assert_eq!(
        err,
        RiskError::MaxNotional {
            notional: 10_100,
            limit: 10_000
        }
    );
    assert_eq!(err.rule(), "max_notional");
    // market orders use the last price
    assert!(r
        .check(&intent(Side::Sell, None, 100), 0, Some(Price(100)))
        .is_ok());
    assert!(matches!(
        r.check(&intent(Side::Sell, None, 100), 0, Some(Price(101))),
        Err(RiskError::MaxNotional { .. })
    ));
    // and skip the check without one
    assert!(r.check(&intent(Side::Sell, None, 100), 0, None).is_ok());
}

#[test]
fn risk_max_position_at_and_past_limit_both_sides() {
    let r = checker();
    assert!(r.check(&intent(Side::Buy, Some(1), 50), 100, None).is_ok());
    assert_eq!(
        r.check(&intent(Side::Buy, Some(1), 51), 100, None),
        Err(RiskError::MaxPosition {
            resulting: 151,
            limit: 150
        })
    );
    assert!(r.check(&intent(Side::Sell, Some(1), 50), -100, None).is_ok());
    assert!(matches!(
        r.check(&intent(Side::Sell, Some(1), 51), -100, None),
        Err(RiskError::MaxPosition { resulting: -151, .. })
    ));
    // reducing a big position is fine
    assert!(r.check(&intent(Side::Sell, Some(1), 100), 150, None).is_ok());
}

#[test]
fn risk_price_band_at_and_past_limit() {
    let r = checker(); // 10 % band
    let last = Some(Price(50));
    assert!(r.check(&intent(Side::Buy, Some(55), 1), 0, last).is_ok());
    assert!(r.check(&intent(Side::Buy, Some(45), 1), 0, last).is_ok());
    assert_eq!(
        r.check(&intent(Side::Buy, Some(56), 1), 0, last),
        Err(RiskError::PriceBand {
            price: Price(56),
            reference: Price(50),
            band_bps: 1_000
        })
    );
    assert!(matches!(
        r.check(&intent(Side::Sell, Some(44), 1), 0, last),
        Err(RiskError::PriceBand { .. })
    ));
    // no reference, no band
    assert!(r.check(&intent(Side::Buy, Some(99), 1), 0, None).is_ok());
    // market orders are not banded
    assert!(r.check(&intent(Side::Buy, None, 1), 0, last).is_ok());
}

#[test]
fn exposure_counts_open_orders_until_they_fill_or_cancel() {
    let mut e = Exposure::default();
    e.add_open(Side::Buy, 30);
    e.add_open(Side::Sell, 10);
    assert_eq!((e.worst_case(Side::Buy), e.worst_case(Side::Sell)), (30, -10));
    // A resting buy fills 12: the lots move from open to net; the worst case is unchanged.
    e.apply_fill(Side::Buy, Qty(12), true);
    assert_eq!((e.net, e.open_buy, e.worst_case(Side::Buy)), (12, 18, 30));
    // An incoming sell fills 5: net only.
    e.apply_fill(Side::Sell, Qty(5), false);
    assert_eq!((e.net, e.open_sell, e.worst_case(Side::Sell)), (7, 10, -3));
    e.add_open(Side::Buy, -18);
    assert_eq!(e.worst_case(Side::Buy), 7);
    let risk = checker();
    let buy = intent(Side::Buy, Some(100), 100);
    let working = Exposure {
        net: 0,
        open_buy: 100,
        open_sell: 0,
    };
    assert!(risk.check_exposure(&buy, &Exposure::default(), None).is_ok());
    assert!(matches!(
        risk.check_exposure(&buy, &working, None),
        Err(RiskError::MaxPosition { resulting: 200, .. })
    ));
}

#[test]
fn risk_rules_have_distinct_names_and_messages() {
    let errs = [
        RiskError::MaxOrderQty {
            qty: Qty(2),
            limit: Qty(1),
        },
        RiskError::MaxNotional {
            notional: 2,
            limit: 1,
        },
        RiskError::MaxPosition {
            resulting: 2,
            limit: 1,
        },
        RiskError::PriceBand {
            price: Price(2),
            reference: Price(1),
            band_bps: 1,
        },
    ];
    let names: std::collections::HashSet<_> = errs.iter().map(RiskError::rule).collect();
    assert_eq!(names.len(), 4);
    for e in &errs {
        assert!(e.to_string().starts_with(e.rule()));
    }
}

// ---------------------------------------------------------------- positions

#[test]
fn pnl_long_round_trip() {
    let mut p = Position::default();
    p.apply_fill(Side::Buy, Price(100), Qty(10));
    assert_eq!(p.unrealised(Price(103)), 30);
    p.apply_fill(Side::Sell, Price(103), Qty(10));
    assert_eq!(p.net(), 0);
    assert_eq!(p.realised(), 30);
    assert_eq!(p.cost_basis(), 0);
    assert_eq!(p.average_price(), None);
    assert_eq!(p.unrealised(Price(1)), 0);
}

#[test]
fn pnl_short_round_trip() {
    let mut p = Position::default();
    p.apply_fill(Side::Sell, Price(100), Qty(4));
    p.apply_fill(Side::Sell, Price(104), Qty(4)); // avg 102
    assert_eq!(p.average_price(), Some(102));
    assert_eq!(p.unrealised(Price(100)), 16);
    p.apply_fill(Side::Buy, Price(101), Qty(2));
    assert_eq!(p.realised(), 2);
    assert_eq!(p.net(), -6);
    assert_eq!(p.average_price(), Some(102));
}

#[test]
fn pnl_through_flip_long_to_short() {
    let mut p = Position::default();
    p.apply_fill(Side::Buy, Price(100), Qty(5));
    p.apply_fill(Side::Sell, Price(110), Qty(8));
    assert_eq!(p.realised(), 50);
    assert_eq!(p.net(), -3);
    assert_eq!(p.average_price(), Some(110));
    assert_eq!(p.unrealised(Price(100)), 30);
    // flip back short -> long
    p.apply_fill(Side::Buy, Price(105), Qty(4));
    assert_eq!(p.realised(), 50 + 15);
    assert_eq!(p.net(), 1);
    assert_eq!(p.average_price(), Some(105));
}

#[test]
fn pnl_partial_close_rounding_is_consistent() {
    let mut p = Position::default();
    p.apply_fill(Side::Buy, Price(100), Qty(1));
    p.apply_fill(Side::Buy, Price(101), Qty(2)); // cost 302, avg 100.67
    p.apply_fill(Side::Sell, Price(101), Qty(1));
    p.apply_fill(Side::Sell, Price(101), Qty(2));
    // total bought 302, sold 303: realised must be exactly 1 in the end.
    assert_eq!(p.realised(), 1);
    assert_eq!(p.net(), 0);
}

#[test]
fn portfolio_tracks_symbols_independently() {
    let mut pf = Portfolio::default();
    pf.apply_fill("A", Side::Buy, Price(10), Qty(1));
    pf.apply_fill("B", Side::Sell, Price(10), Qty(2));
    pf.apply_fill("A", Side::Buy, Price(12), Qty(1));
    assert_eq!(pf.net("A"), 2);
    assert_eq!(pf.net("B"), -2);
    assert_eq!(pf.get("A").unwrap().cost_basis(), 22);
    assert_eq!(pf.iter().count(), 2);
}

// ---------------------------------------------------------------- strategy

#[test]
fn strategy_needs_full_window_and_signals_on_crosses_only() {
    let mut s = MovingAverageCrossover::new(1, 3, Qty(7));
    assert_eq!(s.on_tick(Price(10)), None);
    assert_eq!(s.on_tick(Price(10)), None);
    // full window; fast == slow -> no regime
    assert_eq!(s.on_tick(Price(10)), None);
    // first regime arms only
    assert_eq!(s.on_tick(Price(12)), None);
    assert_eq!(s.on_tick(Price(13)), None);
    let sig = s.on_tick(Price(8)).unwrap();
    assert_eq!(sig.side, Side::Sell);
    assert_eq!(sig.price, Price(8));
    assert_eq!(sig.qty, Qty(7));
    assert_eq!(s.on_tick(Price(7)), None);
    let sig = s.on_tick(Price(20)).unwrap();
    assert_eq!(sig.side, Side::Buy);
}

#[test]
#[should_panic(expected = "need 0 < fast < slow")]
fn strategy_rejects_bad_windows() {
    let _ = MovingAverageCrossover::new(3, 3, Qty(1));
}

#[test]
fn display_impls() {
    assert_eq!(Side::Buy.to_string(), "buy");
    assert_eq!(Side::Sell.opposite(), Side::Buy);
    assert_eq!(OrderStatus::PartiallyFilled.to_string(), "partially_filled");
    assert_eq!(
        BookError::UnknownOrder(OrderId(3)).to_string(),
        "unknown order id 3"
    );
    assert_eq!(notional(Price(-2), Qty(3)), -6);
}
