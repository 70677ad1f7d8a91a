//! Primitive value types: prices in integer ticks, quantities in integer lots.

use std::fmt;

/// A price expressed as an integer number of ticks. Never a float.
///
/// ```
/// use trading_core::Price;
/// let p = Price(10_050);
/// assert!(p > Price(10_000));
/// assert_eq!(p.to_string(), "10050");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(pub i64);

/// A quantity expressed as an integer number of lots.
///
/// ```
/// use trading_core::Qty;
/// assert_eq!(Qty(3).min(Qty(5)), Qty(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Qty(pub u64);

/// Identifier of an order, unique across all books of one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct OrderId(pub u64);

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Qty {
    /// Zero lots.
    pub const ZERO: Qty = Qty(0);

    /// True when the quantity is zero.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Notional value of `qty` lots at `price` ticks (ticks × lots), computed without overflow.
///
/// ```
/// use trading_core::{notional, Price, Qty};
/// assert_eq!(notional(Price(250), Qty(4)), 1_000);
/// ```
#[must_use]
pub fn notional(price: Price, qty: Qty) -> i128 {
    i128::from(price.0) * i128::from(qty.0)
}

/// Side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bid: wants to buy.
    Buy,
    /// Ask / offer: wants to sell.
    Sell,
}

impl Side {
    /// The other side.
    #[must_use]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// `+1` for buys, `-1` for sells.
    #[must_use]
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// Lower-case name (`"buy"` / `"sell"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Order type: a limit order carries its limit price; a market order takes
/// whatever liquidity is available and never rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// Rest at (or trade through up to) the given price.
    Limit(Price),
    /// Immediate-or-cancel at any price.
    Market,
}

/// An order as submitted to a book. The caller chooses the id (it must be unique).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    /// Unique id.
    pub id: OrderId,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderType,
    /// Quantity in lots (must be > 0).
    pub qty: Qty,
}

impl NewOrder {
    /// Convenience constructor for a limit order.
    #[must_use]
    pub const fn limit(id: u64, side: Side, price: i64, qty: u64) -> Self {
        NewOrder {
            id: OrderId(id),
            side,
            kind: OrderType::Limit(Price(price)),
            qty: Qty(qty),
        }
    }

    /// Convenience constructor for a market order.
    #[must_use]
    pub const fn market(id: u64, side: Side, qty: u64) -> Self {
        NewOrder {
            id: OrderId(id),
            side,
            kind: OrderType::Market,
            qty: Qty(qty),
        }
    }

    /// The limit price, if any.
    #[must_use]
    pub const fn price(&self) -> Option<Price> {
        match self.kind {
            OrderType::Limit(p) => Some(p),
            OrderType::Market => None,
        }
    }
}

/// One execution between an incoming (taker) order and a resting (maker) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// The incoming order.
    pub taker: OrderId,
    /// The resting order.
    pub maker: OrderId,
    /// Side of the taker (the maker is on the opposite side).
    pub taker_side: Side,
    /// Execution price: always the maker's resting price.
    pub price: Price,
    /// Executed lots.
    pub qty: Qty,
    /// Lots the maker still has resting after this fill (0 = fully filled, removed).
    pub maker_remaining: Qty,
}

/// Lifecycle state of an order after a submit / replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Resting in the book, nothing filled yet.
    Open,
    /// Resting in the book with some quantity filled.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Not resting: cancelled by the user, or a market order's unfilled remainder
    /// (which may have had partial fills before).
    Cancelled,
}

impl OrderStatus {
    /// Lower-case snake name, used for persistence.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// True while the order rests in the book.
    #[must_use]
    pub const fn is_live(self) -> bool {
        matches!(self, OrderStatus::Open | OrderStatus::PartiallyFilled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of submitting an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execution {
    /// The order's id.
    pub id: OrderId,
    /// Lots filled by this call.
    pub filled: Qty,
    /// Lots left resting in the book (0 unless the status is live).
    pub remaining: Qty,
    /// Status after the call.
    pub status: OrderStatus,
}
