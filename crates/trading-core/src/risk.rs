//! Pre-trade risk checks.

use std::fmt;

use crate::types::{notional, Price, Qty, Side};

/// Static limits applied to every order before it reaches the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest quantity one order may have (inclusive).
    pub max_order_qty: Qty,
    /// Largest notional (ticks × lots) one order may have (inclusive).
    pub max_notional: i128,
    /// Largest absolute net position per symbol the order may lead to if fully
    /// filled (inclusive).
    pub max_position: u64,
    /// Limit prices must be within this many basis points of the last trade price
    /// (inclusive). Not applied while a symbol has no last trade.
    pub price_band_bps: u32,
}

impl Default for RiskLimits {
    fn default() -> Self {
        RiskLimits {
            max_order_qty: Qty(10_000),
            max_notional: 1_000_000_000,
            max_position: 100_000,
            price_band_bps: 1_000,
        }
    }
}

/// The reason an order was rejected; one variant per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskError {
    /// Order quantity exceeds [`RiskLimits::max_order_qty`].
    MaxOrderQty {
        /// Order quantity.
        qty: Qty,
        /// The limit.
        limit: Qty,
    },
    /// Order notional exceeds [`RiskLimits::max_notional`].
    MaxNotional {
        /// Order notional.
        notional: i128,
        /// The limit.
        limit: i128,
    },
    /// Resulting net position would exceed [`RiskLimits::max_position`].
    MaxPosition {
        /// Net position if the order fully fills.
        resulting: i128,
        /// The limit (absolute).
        limit: u64,
    },
    /// Limit price outside the band around the last trade.
    PriceBand {
        /// Order price.
        price: Price,
        /// Last trade price.
        reference: Price,
        /// Band in basis points.
        band_bps: u32,
    },
}

impl RiskError {
    /// Stable machine-readable name of the violated rule.
    #[must_use]
    pub const fn rule(&self) -> &'static str {
        match self {
            RiskError::MaxOrderQty { .. } => "max_order_qty",
            RiskError::MaxNotional { .. } => "max_notional",
            RiskError::MaxPosition { .. } => "max_position",
            RiskError::PriceBand { .. } => "price_band",
        }
    }
}

impl fmt::Display for RiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RiskError::MaxOrderQty { qty, limit } => {
                write!(f, "max_order_qty: quantity {qty} exceeds limit {limit}")
            }
            RiskError::MaxNotional { notional, limit } => {
                write!(f, "max_notional: notional {notional} exceeds limit {limit}")
            }
            RiskError::MaxPosition { resulting, limit } => {
                write!(
                    f,
                    "max_position: resulting position {resulting} exceeds limit {limit}"
                )
            }
            RiskError::PriceBand {
                price,
                reference,
                band_bps,
            } => write!(
                f,
                "price_band: price {price} is more than {band_bps} bps away from last trade {reference}"
            ),
        }
    }
}

impl std::error::Error for RiskError {}

/// What the risk check needs to know about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderIntent {
    /// Side.
    pub side: Side,
    /// Limit price (`None` for market orders).
    pub price: Option<Price>,
    /// Quantity.
    pub qty: Qty,
}

/// What an account holds and has working in one symbol: the filled net position and
/// the lots of its resting (not yet filled) orders on each side.
///
/// Resting orders can fill at any time, through someone else's order, without
/// another risk check. So the position limit has to hold for the position the
/// account would have if every open order on the order's side filled:
/// [`worst_case`](Self::worst_case).
///
/// ```
/// use trading_core::{Exposure, Side};
/// let e = Exposure { net: 10, open_buy: 30, open_sell: 5 };
/// assert_eq!(e.worst_case(Side::Buy), 40);
/// assert_eq!(e.worst_case(Side::Sell), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exposure {
    /// Filled net position (positive = long).
    pub net: i64,
    /// Lots of open buy orders.
    pub open_buy: u64,
    /// Lots of open sell orders.
    pub open_sell: u64,
}

impl Exposure {
    /// Net position if every open order on `side` filled.
    #[must_use]
    pub fn worst_case(&self, side: Side) -> i64 {
        let open = match side {
            Side::Buy => self.open_buy,
            Side::Sell => self.open_sell,
        };
        let open = i64::try_from(open).unwrap_or(i64::MAX);
        self.net.saturating_add(side.sign().saturating_mul(open))
    }

    /// Adds (`delta > 0`) or removes resting lots on `side`.
    pub fn add_open(&mut self, side: Side, delta: i64) {
        let slot = match side {
            Side::Buy => &mut self.open_buy,
            Side::Sell => &mut self.open_sell,
        };
        *slot = slot.saturating_add_signed(delta);
    }

    /// Applies a fill of `qty` lots on `side` of an order that was resting
    /// (`was_open`: the lots leave the open count) or incoming.
    pub fn apply_fill(&mut self, side: Side, qty: Qty, was_open: bool) {
        let q = i64::try_from(qty.0).unwrap_or(i64::MAX);
        self.net = self.net.saturating_add(side.sign().saturating_mul(q));
        if was_open {
            self.add_open(side, -q);
        }
    }
}

/// Applies [`RiskLimits`] to an order.
///
/// Rules are evaluated in this order and the first violation is returned:
/// quantity, notional, position, price band. Every limit is inclusive: an order
/// exactly at a limit passes, one lot/tick past it fails.
///
/// For market orders the notional is computed at the last trade price (skipped
/// when there is none) and the price band does not apply.
///
/// ```
/// use trading_core::{OrderIntent, Price, Qty, RiskChecker, RiskError, RiskLimits, Side};
///
/// let risk = RiskChecker::new(RiskLimits {
///     max_order_qty: Qty(100),
///     max_notional: 1_000_000,
///     max_position: 150,
///     price_band_bps: 500, // 5 %
/// });
/// let buy = |price, qty| OrderIntent { side: Side::Buy, price: Some(Price(price)), qty: Qty(qty) };
///
/// assert!(risk.check(&buy(100, 100), 0, Some(Price(100))).is_ok());
/// assert_eq!(risk.check(&buy(100, 101), 0, None).unwrap_err().rule(), "max_order_qty");
/// assert_eq!(risk.check(&buy(106, 10), 0, Some(Price(100))).unwrap_err().rule(), "price_band");
/// assert!(matches!(risk.check(&buy(100, 60), 100, None), Err(RiskError::MaxPosition { .. })));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RiskChecker {
    limits: RiskLimits,
}

impl RiskChecker {
    /// A checker enforcing `limits`.
    #[must_use]
    pub const fn new(limits: RiskLimits) -> Self {
        RiskChecker { limits }
    }

    /// The configured limits.
    #[must_use]
    pub const fn limits(&self) -> &RiskLimits {
        &self.limits
    }

    /// Checks an order against the account's [`Exposure`] in its symbol: the
    /// position rule applies to [`Exposure::worst_case`] on the order's side, so
    /// no combination of fills of accepted orders can take the net position past
    /// [`RiskLimits::max_position`].
    ///
    /// ```
    /// use trading_core::{Exposure, OrderIntent, Price, Qty, RiskChecker, RiskLimits, Side};
    /// let risk = RiskChecker::new(RiskLimits { max_position: 100, ..RiskLimits::default() });
    /// let buy = OrderIntent { side: Side::Buy, price: Some(Price(10)), qty: Qty(60) };
    /// let flat = Exposure::default();
    /// assert!(risk.check_exposure(&buy, &flat, None).is_ok());
    /// // A second resting buy of 60 could fill too: 120 > 100.
    /// let working = Exposure { open_buy: 60, ..flat };
    /// assert_eq!(risk.check_exposure(&buy, &working, None).unwrap_err().rule(), "max_position");
    /// ```
    ///
    /// # Errors
    /// The first [`RiskError`] rule the order violates.
    pub fn check_exposure(
        &self,
        order: &OrderIntent,
        exposure: &Exposure,
        last_price: Option<Price>,
    ) -> Result<(), RiskError> {
        self.check(order, exposure.worst_case(order.side), last_price)
    }

    /// Checks an order given the current net position in its symbol and the
    /// symbol's last trade price. Orders that rest can fill later without a
    /// check: pass the worst-case position, or use [`check_exposure`](Self::check_exposure).
    ///
    /// # Errors
    /// The first [`RiskError`] rule the order violates.
    pub fn check(
        &self,
        order: &OrderIntent,
        position: i64,
        last_price: Option<Price>,
    ) -> Result<(), RiskError> {
        let l = &self.limits;
        if order.qty > l.max_order_qty {
            return Err(RiskError::MaxOrderQty {
                qty: order.qty,
                limit: l.max_order_qty,
            });
        }
        if let Some(px) = order.price.or(last_price) {
            let n = notional(px, order.qty).abs();
            if n > l.max_notional {
                return Err(RiskError::MaxNotional {
                    notional: n,
                    limit: l.max_notional,
                });
            }
        }
        let resulting = i128::from(position) + i128::from(order.side.sign()) * i128::from(order.qty.0);
        if resulting.unsigned_abs() > u128::from(l.max_position) {
            return Err(RiskError::MaxPosition {
                resulting,
                limit: l.max_position,
            });
        }
        if let (Some(price), Some(reference)) = (order.price, last_price) {
            // |price - ref| / ref <= band / 10_000, in integers.
            let diff = (i128::from(price.0) - i128::from(reference.0)).abs() * 10_000;
            let allowed = i128::from(reference.0).abs() * i128::from(l.price_band_bps);
            if diff > allowed {
                return Err(RiskError::PriceBand {
                    price,
                    reference,
                    band_bps: l.price_band_bps,
                });
            }
        }
        Ok(())
    }
}
