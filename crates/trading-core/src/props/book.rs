//! Book and matching invariants over generated operation sequences.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{ops, pick, Op};
use crate::{
    BookError, Execution, Fill, NewOrder, OrderBook, OrderId, OrderStatus, Price, Qty, RestingOrder, Side,
};

/// What one operation did to the book.
#[derive(Debug)]
enum Event {
    Submit {
        id: u64,
        side: Side,
        limit: Option<i64>,
        qty: u64,
        exec: Execution,
    },
    Cancel {
        id: u64,
        result: Result<RestingOrder, BookError>,
    },
    Replace {
        id: u64,
        price: i64,
        qty: u64,
        result: Result<Execution, BookError>,
    },
}

/// Drives an [`OrderBook`] with generated operations.
#[derive(Default)]
struct Harness {
    book: OrderBook,
    /// Ids that may still rest (pruned after every step), in submission order.
    ids: Vec<u64>,
    next_id: u64,
}

/// An id no generated order has.
const NEVER_USED: u64 = u64::MAX;

impl Harness {
    fn apply(&mut self, op: &Op, fills: &mut Vec<Fill>) -> Event {
        fills.clear();
        let id = self.next_id + 1;
        let event = match *op {
            Op::Limit { side, price, qty } => self.submit(NewOrder::limit(id, side, price, qty), fills),
            Op::Market { side, qty } => self.submit(NewOrder::market(id, side, qty), fills),
            Op::Cancel { ref target } => {
                let id = pick(target, &self.ids, NEVER_USED);
                Event::Cancel {
                    id,
                    result: self.book.cancel(OrderId(id)),
                }
            }
            Op::Replace {
                ref target,
                price,
                qty,
            } => {
                let id = pick(target, &self.ids, NEVER_USED);
                Event::Replace {
                    id,
                    price,
                    qty,
                    result: self.book.replace(OrderId(id), Price(price), Qty(qty), fills),
                }
            }
        };
        let book = &self.book;
        self.ids.retain(|&id| book.order(OrderId(id)).is_some());
        event
    }

    fn submit(&mut self, order: NewOrder, fills: &mut Vec<Fill>) -> Event {
        self.next_id += 1;
        let exec = self
            .book
            .submit(order, fills)
            .expect("generated orders are valid");
        self.ids.push(order.id.0);
        Event::Submit {
            id: order.id.0,
            side: order.side,
            limit: order.price().map(|p| p.0),
            qty: order.qty.0,
            exec,
        }
    }
}

/// `(price, lots, orders)` of each level, best first.
type Levels = Vec<(i64, u64, u32)>;

/// Bid and ask depth of the whole book.
fn levels(book: &OrderBook) -> (Levels, Levels) {
    let d = book.depth(usize::MAX);
    let view = |l: &crate::LevelView| (l.price.0, l.qty.0, l.orders);
    (
        d.bids.iter().map(view).collect(),
        d.asks.iter().map(view).collect(),
    )
}

proptest! {
    /// After every operation the best bid is strictly below the best ask, and the
    /// depth view is well formed (levels non-empty, strictly ordered, counting
    /// every resting order).
    #[test]
    fn no_crossed_book_after_matching(ops in ops()) {
        let mut h = Harness::default();
        let mut fills = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            h.apply(op, &mut fills);
            if let (Some((bid, _)), Some((ask, _))) = (h.book.best_bid(), h.book.best_ask()) {
                prop_assert!(bid < ask, "crossed after step {step} ({op:?}): bid {bid} >= ask {ask}");
            }
            let (bids, asks) = levels(&h.book);
            prop_assert!(bids.windows(2).all(|w| w[0].0 > w[1].0), "bids out of order: {bids:?}");
            prop_assert!(asks.windows(2).all(|w| w[0].0 < w[1].0), "asks out of order: {asks:?}");
            prop_assert!(bids.iter().chain(&asks).all(|l| l.1 > 0 && l.2 > 0), "empty level left");
            let orders: u32 = bids.iter().chain(&asks).map(|l| l.2).sum();
            prop_assert_eq!(orders as usize, h.book.len());
        }
    }

    /// For every order, and summed over all orders: lots submitted = lots filled +
    /// lots resting + lots cancelled (by the user, by a replace to a smaller size,
    /// or as a market order's unfilled rest). The ledger is kept from the fills and
    /// the requests alone; the book's own state is only compared with it.
    #[test]
    fn quantity_is_conserved_across_fills_and_cancels(ops in ops()) {
        let mut h = Harness::default();
        let mut ledger = Ledger::default();
        let mut fills = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let event = h.apply(op, &mut fills);
            ledger.record(&event, &fills)?;
            ledger.check(&h.book, &fills).map_err(|e| TestCaseError::fail(format!("after step {step} ({op:?}): {e}")))?;
        }
    }

    /// Every fill takes the best-priced resting order on the other side, and among
    /// orders at that price the earliest (a replace keeps its place only when it
    /// just reduces the size at the same price). Checked fill by fill against a
    /// naive reference book that scans all resting orders; queues compared after
    /// every step.
    #[test]
    fn fills_follow_price_time_priority(ops in ops()) {
        let mut h = Harness::default();
        let mut model = Model::default();
        let mut fills = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let event = h.apply(op, &mut fills);
            let got: Vec<_> = fills.iter().map(|f| (f.maker.0, f.price.0, f.qty.0, f.maker_remaining.0)).collect();
            let want = match event {
                Event::Submit { id, side, limit, qty, .. } => {
                    prop_assert!(fills.iter().all(|f| f.taker.0 == id && f.taker_side == side));
                    Some(model.submit(id, side, limit, qty))
                }
                Event::Cancel { id, result } => {
                    prop_assert_eq!(result.is_ok(), model.cancel(id), "cancel of {} (step {})", id, step);
                    Some(Vec::new())
                }
                Event::Replace { id, price, qty, result } => {
                    let want = model.replace(id, price, qty);
                    prop_assert_eq!(result.is_ok(), want.is_some(), "replace of {} (step {})", id, step);
                    want
                }
            };
            prop_assert_eq!(&got, &want.unwrap_or_default(), "fills (maker, price, qty, maker left) at step {}: {:?}", step, op);
            prop_assert_eq!(levels(&h.book), (model.depth(Side::Buy), model.depth(Side::Sell)));
            for (side, price, queue) in model.queues() {
                let ids: Vec<u64> = h.book.level_orders(side, Price(price)).iter().map(|o| o.0).collect();
                prop_assert_eq!(ids, queue, "time priority of the {} level at {}", side, price);
            }
        }
    }
}

/// Per order: (submitted, filled, cancelled) lots.
#[derive(Default)]
struct Ledger {
    orders: BTreeMap<u64, (u64, u64, u64)>,
    fill_lots: u64,
}

impl Ledger {
    /// Lots the ledger says are still resting.
    fn open(&self, id: u64) -> u64 {
        self.orders
            .get(&id)
            .map_or(0, |&(s, f, c)| s.saturating_sub(f + c))
    }

    fn record(&mut self, event: &Event, fills: &[Fill]) -> Result<(), TestCaseError> {
        // What the ledger says rests of a cancelled or replaced order, before its fills.
        let before = match *event {
            Event::Cancel { id, .. } | Event::Replace { id, .. } => self.open(id),
            Event::Submit { .. } => 0,
        };
        for f in fills {
            self.fill_lots += f.qty.0;
            for id in [f.taker.0, f.maker.0] {
                self.orders.entry(id).or_default().1 += f.qty.0;
            }
        }
        match *event {
            Event::Submit {
                id, limit, qty, exec, ..
            } => {
                let taken: u64 = fills.iter().map(|f| f.qty.0).sum();
                prop_assert_eq!(exec.filled.0, taken, "execution report of order {}", id);
                let e = self.orders.entry(id).or_default();
                e.0 += qty;
                if limit.is_none() {
                    e.2 += qty - taken;
                    prop_assert!(!exec.status.is_live() && exec.remaining.is_zero());
                }
                let want = if taken == qty {
                    OrderStatus::Filled
                } else if limit.is_none() {
                    OrderStatus::Cancelled
                } else if taken > 0 {
                    OrderStatus::PartiallyFilled
                } else {
                    OrderStatus::Open
                };
                prop_assert_eq!(exec.status, want, "status of order {}", id);
            }
            Event::Cancel { id, ref result } => match result {
                Ok(r) => {
                    prop_assert_eq!(r.remaining.0, before, "lots cancelled from order {}", id);
                    self.orders.entry(id).or_default().2 += before;
                }
                Err(_) => prop_assert_eq!(before, 0, "order {} still open but not cancellable", id),
            },
            Event::Replace {
                id, qty, ref result, ..
            } => match result {
                Ok(_) => {
                    let e = self.orders.entry(id).or_default();
                    if qty >= before {
                        e.0 += qty - before;
                    } else {
                        e.2 += before - qty;
                    }
                }
                Err(_) => prop_assert_eq!(before, 0, "order {} open but not replaceable", id),
            },
        }
        Ok(())
    }

    fn check(&self, book: &OrderBook, fills: &[Fill]) -> Result<(), String> {
        let mut total = (0u64, 0u64, 0u64);
        for (&id, &(submitted, filled, cancelled)) in &self.orders {
            let resting = book.order(OrderId(id)).map_or(0, |o| o.remaining.0);
            if submitted != filled + resting + cancelled {
                return Err(format!(
                    "order {id}: submitted {submitted} != filled {filled} + resting {resting} + cancelled {cancelled} (fills: {fills:?})"
                ));
            }
            total = (total.0 + submitted, total.1 + filled, total.2 + cancelled);
        }
        let (bids, asks) = levels(book);
        let resting: u64 = bids.iter().chain(&asks).map(|l| l.1).sum();
        if total.0 != total.1 + resting + total.2 {
            return Err(format!(
                "in aggregate: submitted {} != filled {} + resting {resting} (depth) + cancelled {}",
                total.0, total.1, total.2
            ));
        }
        // Every fill fills one buy and one sell order by the same amount.
        if total.1 != 2 * self.fill_lots {
            return Err(format!(
                "filled {} != 2 x {} lots traded",
                total.1, self.fill_lots
            ));
        }
        Ok(())
    }
}

/// A resting order of the naive reference book.
#[derive(Debug, Clone, Copy)]
struct Resting {
    id: u64,
    side: Side,
    price: i64,
    qty: u64,
    seq: u64,
}

/// Naive reference book: a flat list, scanned in full for the best-priority
/// order at every fill. Obviously right, and slow.
#[derive(Default)]
struct Model {
    orders: Vec<Resting>,
    seq: u64,
}

impl Model {
    /// Fills as (maker, price, qty, maker's lots left).
    fn submit(&mut self, id: u64, side: Side, limit: Option<i64>, mut qty: u64) -> Vec<(u64, i64, u64, u64)> {
        let mut fills = Vec::new();
        while qty > 0 {
            let best = self
                .orders
                .iter()
                .enumerate()
                .filter(|(_, o)| o.side != side)
                .filter(|(_, o)| match (side, limit) {
                    (_, None) => true,
                    (Side::Buy, Some(l)) => o.price <= l,
                    (Side::Sell, Some(l)) => o.price >= l,
                })
                // Best price first (lowest ask, highest bid), then earliest.
                .min_by_key(|(_, o)| (if side == Side::Buy { o.price } else { -o.price }, o.seq))
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let maker = &mut self.orders[i];
            let take = qty.min(maker.qty);
            qty -= take;
            maker.qty -= take;
            fills.push((maker.id, maker.price, take, maker.qty));
            if maker.qty == 0 {
                self.orders.remove(i);
            }
        }
        if let (Some(price), true) = (limit, qty > 0) {
            self.seq += 1;
            self.orders.push(Resting {
                id,
                side,
                price,
                qty,
                seq: self.seq,
            });
        }
        fills
    }

    fn cancel(&mut self, id: u64) -> bool {
        let before = self.orders.len();
        self.orders.retain(|o| o.id != id);
        before != self.orders.len()
    }

    fn replace(&mut self, id: u64, price: i64, qty: u64) -> Option<Vec<(u64, i64, u64, u64)>> {
        let i = self.orders.iter().position(|o| o.id == id)?;
        let o = self.orders[i];
        if o.price == price && qty <= o.qty {
            self.orders[i].qty = qty;
            return Some(Vec::new());
        }
        self.orders.remove(i);
        Some(self.submit(id, o.side, Some(price), qty))
    }

    fn depth(&self, side: Side) -> Levels {
        let mut levels: BTreeMap<i64, (u64, u32)> = BTreeMap::new();
        for o in self.orders.iter().filter(|o| o.side == side) {
            let e = levels.entry(o.price).or_default();
            e.0 += o.qty;
            e.1 += 1;
        }
        let v = levels.into_iter().map(|(p, (q, n))| (p, q, n));
        if side == Side::Buy {
            v.rev().collect()
        } else {
            v.collect()
        }
    }

    /// Every level's order ids in time priority.
    fn queues(&self) -> Vec<(Side, i64, Vec<u64>)> {
        let mut by_level: BTreeMap<(bool, i64), Vec<(u64, u64)>> = BTreeMap::new();
        for o in &self.orders {
            by_level
                .entry((o.side == Side::Buy, o.price))
                .or_default()
                .push((o.seq, o.id));
        }
        by_level
            .into_iter()
            .map(|((buy, price), mut q)| {
                q.sort_unstable();
                let side = if buy { Side::Buy } else { Side::Sell };
                (side, price, q.into_iter().map(|(_, id)| id).collect())
            })
            .collect()
    }
}
