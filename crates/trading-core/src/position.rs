//! Position and P&L accounting with average cost, in integer ticks × lots.

use std::collections::HashMap;

use crate::types::{Price, Qty, Side};

/// Net position in one symbol with average-cost P&L.
///
/// `cost` is the signed cost basis of the open position (≈ average price × net
/// quantity: positive when long, negative when short). Reducing a position
/// realises `exit value − proportional cost`; a fill larger than the position
/// closes it completely and opens the remainder on the other side at the fill
/// price. All amounts are in ticks × lots and exact except for the integer
/// division when a partial close takes a proportional share of the cost basis.
///
/// ```
/// use trading_core::{Position, Price, Qty, Side};
///
/// let mut pos = Position::default();
/// pos.apply_fill(Side::Buy, Price(100), Qty(10));
/// pos.apply_fill(Side::Buy, Price(110), Qty(10)); // avg 105
/// pos.apply_fill(Side::Sell, Price(120), Qty(5)); // +15 × 5
/// assert_eq!(pos.net(), 15);
/// assert_eq!(pos.realised(), 75);
/// assert_eq!(pos.average_price(), Some(105));
/// assert_eq!(pos.unrealised(Price(100)), -75);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    net: i64,
    cost: i128,
    realised: i128,
}

impl Position {
    /// Net quantity (positive = long, negative = short).
    #[must_use]
    pub const fn net(&self) -> i64 {
        self.net
    }

    /// Signed cost basis of the open position.
    #[must_use]
    pub const fn cost_basis(&self) -> i128 {
        self.cost
    }

    /// Realised P&L so far.
    #[must_use]
    pub const fn realised(&self) -> i128 {
        self.realised
    }

    /// Average entry price in whole ticks (truncated), `None` when flat.
    #[must_use]
    pub fn average_price(&self) -> Option<i128> {
        (self.net != 0).then(|| self.cost / i128::from(self.net))
    }

    /// Unrealised P&L of the open position marked at `mark`.
    #[must_use]
    pub fn unrealised(&self, mark: Price) -> i128 {
        i128::from(self.net) * i128::from(mark.0) - self.cost
    }

    /// Applies one fill of `qty` lots at `price` on `side`.
    pub fn apply_fill(&mut self, side: Side, price: Price, qty: Qty) {
        let q = i128::from(qty.0);
        let px = i128::from(price.0);
        let net = i128::from(self.net);
        let signed = i128::from(side.sign()) * q;
        if net == 0 || (net > 0) == (signed > 0) {
            // Opening or increasing.
            self.cost += signed * px;
        } else {
            let open = net.abs();
            let closing = q.min(open);
            let removed = if closing == open {
                self.cost
            } else {
                self.cost * closing / open
            };
            // Long closing sells: +closing*px - removed; short closing buys: -closing*px - removed.
            self.realised += net.signum() * closing * px - removed;
            self.cost -= removed;
            let opening = q - closing;
            if opening > 0 {
                self.cost = i128::from(side.sign()) * opening * px;
            }
        }
        let new_net = net + signed;
        self.net = i64::try_from(new_net).unwrap_or(if new_net > 0 { i64::MAX } else { i64::MIN });
        if self.net == 0 {
            self.cost = 0;
        }
    }
}

/// Positions across symbols.
///
/// ```
/// use trading_core::{Portfolio, Price, Qty, Side};
/// let mut book = Portfolio::default();
/// book.apply_fill("ACME", Side::Sell, Price(50), Qty(2));
/// assert_eq!(book.net("ACME"), -2);
/// assert_eq!(book.net("OTHER"), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Portfolio {
    positions: HashMap<String, Position>,
}

impl Portfolio {
    /// Applies a fill to `symbol`'s position.
    pub fn apply_fill(&mut self, symbol: &str, side: Side, price: Price, qty: Qty) {
        if let Some(p) = self.positions.get_mut(symbol) {
            p.apply_fill(side, price, qty);
        } else {
            let mut p = Position::default();
            p.apply_fill(side, price, qty);
            self.positions.insert(symbol.to_owned(), p);
        }
    }

    /// Net position in `symbol` (0 if none).
    #[must_use]
    pub fn net(&self, symbol: &str) -> i64 {
        self.positions.get(symbol).map_or(0, Position::net)
    }

    /// The position in `symbol`, if any fill was applied.
    #[must_use]
    pub fn get(&self, symbol: &str) -> Option<&Position> {
        self.positions.get(symbol)
    }

    /// All positions, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Position)> {
        self.positions.iter().map(|(k, v)| (k.as_str(), v))
    }
}
