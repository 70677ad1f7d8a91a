//! Risk invariants: the checks reject exactly the orders that breach a limit, and
//! an account whose orders all pass them never holds a position past the limit,
//! whatever fills later.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{op, pick, side, Op};
use crate::{
    Exposure, MatchingEngine, NewOrder, OrderId, OrderIntent, Portfolio, Price, Qty, RiskChecker, RiskLimits,
    Side,
};

fn limits() -> impl Strategy<Value = RiskLimits> {
    (1..=50u64, 1..=5_000i128, 1..=100u64, 0..=2_000u32).prop_map(|(qty, notional, position, band)| {
        RiskLimits {
            max_order_qty: Qty(qty),
            max_notional: notional,
            max_position: position,
            price_band_bps: band,
        }
    })
}

/// The rules `intent` breaks, in the documented evaluation order, written
/// independently of the checker (the band as an integer price interval).
fn breaches(l: &RiskLimits, o: &OrderIntent, position: i64, last: Option<i64>) -> Vec<&'static str> {
    let qty = i128::from(o.qty.0);
    let mut out = Vec::new();
    if o.qty.0 > l.max_order_qty.0 {
        out.push("max_order_qty");
    }
    if let Some(px) = o.price.map(|p| p.0).or(last) {
        if i128::from(px) * qty > l.max_notional {
            out.push("max_notional");
        }
    }
    let after = i128::from(position) + if o.side == Side::Buy { qty } else { -qty };
    if after > i128::from(l.max_position) || after < -i128::from(l.max_position) {
        out.push("max_position");
    }
    if let (Some(px), Some(last)) = (o.price, last) {
        let half_width = i128::from(last) * i128::from(l.price_band_bps) / 10_000;
        let (lo, hi) = (i128::from(last) - half_width, i128::from(last) + half_width);
        if !(lo..=hi).contains(&i128::from(px.0)) {
            out.push("price_band");
        }
    }
    out
}

proptest! {
    /// Every order breaching a limit is rejected, naming the first rule it breaks
    /// (quantity, notional, position, band); every other order passes. Values are
    /// drawn around the limits so the boundaries (inclusive) are hit often.
    #[test]
    fn risk_check_rejects_exactly_the_orders_that_breach_a_limit(
        limits in limits(),
        side in side(),
        price in proptest::option::of(1..=200i64),
        qty in 1..=60u64,
        position in -120..=120i64,
        last in proptest::option::of(1..=200i64),
    ) {
        let intent = OrderIntent { side, price: price.map(Price), qty: Qty(qty) };
        let got = RiskChecker::new(limits).check(&intent, position, last.map(Price)).map_err(|e| e.rule());
        let want = breaches(&limits, &intent, position, last);
        prop_assert_eq!(got, want.first().map_or(Ok(()), |r| Err(*r)), "breaches: {:?}", want);
    }

    /// Three accounts trade one symbol through the engine; every order and every
    /// replace must pass `check_exposure` first. Whatever fills afterwards, through
    /// anyone's orders, no account's net position ever exceeds the position limit,
    /// and the exposure bookkeeping (net, open lots per side) matches the
    /// portfolio and the resting orders.
    #[test]
    fn positions_stay_within_limits_when_orders_pass_risk(
        steps in prop::collection::vec((0..3usize, op()), 1..80),
    ) {
        let mut sim = Sim::new(RiskLimits { max_order_qty: Qty(15), max_notional: 1_500, max_position: 40, price_band_bps: 300 });
        for (step, (account, op)) in steps.iter().enumerate() {
            sim.apply(*account, op);
            sim.check().map_err(|e| TestCaseError::fail(format!("after step {step} ({op:?} by {account}): {e}")))?;
        }
    }
}

const SYMBOL: &str = "XYZ";

/// A risk-gated market: engine, portfolios and exposures of three accounts.
struct Sim {
    risk: RiskChecker,
    engine: MatchingEngine,
    portfolios: [Portfolio; 3],
    exposures: [Exposure; 3],
    /// Owner of each order that may still rest.
    owners: BTreeMap<u64, usize>,
    next_id: u64,
}

impl Sim {
    fn new(limits: RiskLimits) -> Self {
        Sim {
            risk: RiskChecker::new(limits),
            engine: MatchingEngine::new(),
            portfolios: Default::default(),
            exposures: [Exposure::default(); 3],
            owners: BTreeMap::new(),
            next_id: 0,
        }
    }

    fn last(&self) -> Option<Price> {
        self.engine.last_trade_price(SYMBOL)
    }

    fn apply(&mut self, account: usize, op: &Op) {
        let live: Vec<u64> = self.owners.keys().copied().collect();
        let mut fills = Vec::new();
        let (owner, side, exec) = match *op {
            Op::Limit { side, qty, .. } | Op::Market { side, qty } => {
                let price = match *op {
                    Op::Limit { price, .. } => Some(Price(price)),
                    _ => None,
                };
                let intent = OrderIntent {
                    side,
                    price,
                    qty: Qty(qty),
                };
                if self
                    .risk
                    .check_exposure(&intent, &self.exposures[account], self.last())
                    .is_err()
                {
                    return;
                }
                self.next_id += 1;
                let order = NewOrder {
                    id: OrderId(self.next_id),
                    side,
                    kind: price.map_or(crate::OrderType::Market, crate::OrderType::Limit),
                    qty: Qty(qty),
                };
                let exec = self
                    .engine
                    .submit(SYMBOL, order, &mut fills)
                    .expect("valid order");
                (account, side, exec)
            }
            Op::Cancel { ref target } => {
                let id = pick(target, &live, u64::MAX);
                if let Ok((_, rest)) = self.engine.cancel(OrderId(id)) {
                    let owner = self.owners.remove(&id).expect("resting orders have an owner");
                    self.exposures[owner].add_open(rest.side, -signed(rest.remaining));
                }
                return;
            }
            Op::Replace {
                ref target,
                price,
                qty,
            } => {
                let id = pick(target, &live, u64::MAX);
                let Some((_, rest)) = self.engine.order(OrderId(id)) else {
                    return;
                };
                let owner = self.owners[&id];
                // The replaced order's lots stop counting as open; the new size must pass.
                let mut without = self.exposures[owner];
                without.add_open(rest.side, -signed(rest.remaining));
                let intent = OrderIntent {
                    side: rest.side,
                    price: Some(Price(price)),
                    qty: Qty(qty),
                };
                if self.risk.check_exposure(&intent, &without, self.last()).is_err() {
                    return;
                }
                self.exposures[owner] = without;
                let exec = self
                    .engine
                    .replace(OrderId(id), Price(price), Qty(qty), &mut fills)
                    .expect("resting order");
                (owner, rest.side, exec)
            }
        };
        for f in &fills {
            let maker = self.owners[&f.maker.0];
            self.portfolios[owner].apply_fill(SYMBOL, side, f.price, f.qty);
            self.portfolios[maker].apply_fill(SYMBOL, side.opposite(), f.price, f.qty);
            self.exposures[owner].apply_fill(side, f.qty, false);
            self.exposures[maker].apply_fill(side.opposite(), f.qty, true);
        }
        if exec.status.is_live() {
            self.exposures[owner].add_open(side, signed(exec.remaining));
            self.owners.insert(exec.id.0, owner);
        }
        let engine = &self.engine;
        self.owners.retain(|id, _| engine.order(OrderId(*id)).is_some());
    }

    fn check(&self) -> Result<(), String> {
        let limit = i64::try_from(self.risk.limits().max_position).unwrap_or(i64::MAX);
        for (account, (pf, ex)) in self.portfolios.iter().zip(&self.exposures).enumerate() {
            let net = pf.net(SYMBOL);
            if net.abs() > limit {
                return Err(format!(
                    "account {account} holds {net}, past the position limit {limit}"
                ));
            }
            let mut open = Exposure {
                net,
                ..Exposure::default()
            };
            for (&id, _) in self.owners.iter().filter(|(_, &o)| o == account) {
                let (_, rest) = self.engine.order(OrderId(id)).ok_or("owned order not resting")?;
                open.add_open(rest.side, signed(rest.remaining));
            }
            if *ex != open {
                return Err(format!(
                    "account {account}: exposure {ex:?}, but portfolio and book say {open:?}"
                ));
            }
            if ex.worst_case(Side::Buy) > limit || ex.worst_case(Side::Sell) < -limit {
                return Err(format!(
                    "account {account}: worst case past the limit {limit}: {ex:?}"
                ));
            }
        }
        Ok(())
    }
}

fn signed(q: Qty) -> i64 {
    i64::try_from(q.0).unwrap_or(i64::MAX)
}
