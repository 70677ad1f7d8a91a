//! # trading-core
//!
//! The pure (no I/O) heart of the reference trading system:
//!
//! * [`OrderBook`] – price-time-priority limit order book for one symbol;
//! * [`MatchingEngine`] – one book per symbol, producing [`Fill`]s;
//! * [`RiskChecker`] – pre-trade limits (quantity, notional, position, price band);
//! * [`Position`] / [`Portfolio`] – average-cost position and P&L accounting;
//! * [`MovingAverageCrossover`] – a strategy turning ticks into orders.
//!
//! Money is never a float: prices are integer ticks ([`Price`]) and quantities
//! integer lots ([`Qty`]); notionals and P&L are `i128` ticks × lots.
//!
//! ```
//! use trading_core::{MatchingEngine, NewOrder, Portfolio, Side};
//!
//! let mut engine = MatchingEngine::new();
//! let mut portfolio = Portfolio::default();
//! let mut fills = Vec::new();
//! engine.submit("XYZ", NewOrder::limit(1, Side::Sell, 1_000, 3), &mut fills).unwrap();
//! engine.submit("XYZ", NewOrder::limit(2, Side::Buy, 1_001, 3), &mut fills).unwrap();
//! for f in &fills {
//!     portfolio.apply_fill("XYZ", f.taker_side, f.price, f.qty);
//! }
//! assert_eq!(portfolio.net("XYZ"), 3);
//! ```

mod book;
mod engine;
mod hash;
mod position;
mod risk;
mod strategy;
mod types;

pub use book::{BookError, Depth, LevelView, OrderBook, RestingOrder};
pub use engine::MatchingEngine;
pub use hash::{IdBuildHasher, IdHasher};
pub use position::{Portfolio, Position};
pub use risk::{Exposure, OrderIntent, RiskChecker, RiskError, RiskLimits};
pub use strategy::{MovingAverageCrossover, Signal};
pub use types::{notional, Execution, Fill, NewOrder, OrderId, OrderStatus, OrderType, Price, Qty, Side};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
