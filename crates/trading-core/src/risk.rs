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

    /// Checks an order given the current net position in its symbol and the
    /// symbol's last trade price.
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
