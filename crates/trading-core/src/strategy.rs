//! A moving-average crossover strategy turning ticks into orders.

use std::collections::VecDeque;

use crate::types::{Price, Qty, Side};

/// An order the strategy wants to place: a limit order at the tick price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// Buy when the fast average crosses above the slow one, sell when below.
    pub side: Side,
    /// Limit price (the tick that triggered the signal).
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Regime {
    Above,
    Below,
}

/// Simple moving-average crossover over the last `fast` and `slow` prices.
///
/// Emits a [`Signal`] only when the relation between the two averages flips
/// (fast strictly above slow → buy; fast strictly below slow → sell). The first
/// regime observed once the slow window is full only arms the strategy and does
/// not trade. Averages are compared exactly with integer cross-multiplication;
/// no allocation happens per tick.
///
/// ```
/// use trading_core::{MovingAverageCrossover, Price, Qty, Side};
///
/// let mut s = MovingAverageCrossover::new(2, 4, Qty(10));
/// let mut signals = Vec::new();
/// for p in [100, 99, 98, 97, 96, 105, 110] {
///     if let Some(sig) = s.on_tick(Price(p)) {
///         signals.push(sig);
///     }
/// }
/// assert_eq!(signals.len(), 1);
/// assert_eq!(signals[0].side, Side::Buy);
/// assert_eq!(signals[0].price, Price(105));
/// ```
#[derive(Debug, Clone)]
pub struct MovingAverageCrossover {
    fast: usize,
    slow: usize,
    qty: Qty,
    window: VecDeque<i64>,
    fast_sum: i128,
    slow_sum: i128,
    regime: Option<Regime>,
}

impl MovingAverageCrossover {
    /// A strategy with `fast < slow` window lengths trading `qty` lots per signal.
    ///
    /// # Panics
    /// If `fast == 0` or `fast >= slow`.
    #[must_use]
    pub fn new(fast: usize, slow: usize, qty: Qty) -> Self {
        assert!(fast > 0 && fast < slow, "need 0 < fast < slow");
        MovingAverageCrossover {
            fast,
            slow,
            qty,
            window: VecDeque::with_capacity(slow + 1),
            fast_sum: 0,
            slow_sum: 0,
            regime: None,
        }
    }

    /// Feeds one tick; returns an order when the averages cross.
    pub fn on_tick(&mut self, price: Price) -> Option<Signal> {
        let p = i128::from(price.0);
        self.window.push_back(price.0);
        self.slow_sum += p;
        self.fast_sum += p;
        let len = self.window.len();
        if len > self.fast {
            self.fast_sum -= i128::from(self.window[len - 1 - self.fast]);
        }
        if len > self.slow {
            if let Some(old) = self.window.pop_front() {
                self.slow_sum -= i128::from(old);
            }
        }
        if self.window.len() < self.slow {
            return None;
        }
        // fast_avg vs slow_avg  <=>  fast_sum * slow vs slow_sum * fast
        let lhs = self.fast_sum * self.slow as i128;
        let rhs = self.slow_sum * self.fast as i128;
        let now = match lhs.cmp(&rhs) {
            std::cmp::Ordering::Greater => Regime::Above,
            std::cmp::Ordering::Less => Regime::Below,
            std::cmp::Ordering::Equal => return None,
        };
        let prev = self.regime.replace(now);
        match prev {
            Some(r) if r != now => Some(Signal {
                side: if now == Regime::Above {
                    Side::Buy
                } else {
                    Side::Sell
                },
                price,
                qty: self.qty,
            }),
            _ => None,
        }
    }
}
