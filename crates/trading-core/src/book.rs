//! Price-time-priority limit order book for a single symbol.
//!
//! Layout: one `BTreeMap<Price, Level>` per side; each level is an intrusive
//! FIFO doubly-linked list threaded through a slab (`Vec<Node>`) with a free
//! list, plus an id → slot hash map. Inserting, cancelling and filling an order
//! never allocates once the slab and maps have grown to the working-set size.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::hash::IdBuildHasher;
use crate::types::{Execution, Fill, NewOrder, OrderId, OrderStatus, OrderType, Price, Qty, Side};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    id: OrderId,
    side: Side,
    price: Price,
    qty: Qty,
    filled: Qty,
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    head: u32,
    tail: u32,
    total: u64,
    count: u32,
}

impl Level {
    const fn new() -> Self {
        Level {
            head: NIL,
            tail: NIL,
            total: 0,
            count: 0,
        }
    }
}

/// Errors returned by book and engine operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookError {
    /// An order with this id is already resting.
    DuplicateOrderId(OrderId),
    /// No resting order has this id.
    UnknownOrder(OrderId),
    /// Quantity must be greater than zero.
    ZeroQuantity,
    /// Limit prices must be strictly positive.
    InvalidPrice(Price),
    /// [`OrderBook::restore`] was given an order that would cross the book.
    WouldCross(OrderId),
    /// [`OrderBook::restore`] was given a market order.
    NotALimitOrder(OrderId),
}

impl fmt::Display for BookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookError::DuplicateOrderId(id) => write!(f, "duplicate order id {id}"),
            BookError::UnknownOrder(id) => write!(f, "unknown order id {id}"),
            BookError::ZeroQuantity => f.write_str("quantity must be greater than zero"),
            BookError::InvalidPrice(p) => write!(f, "invalid price {p}: must be > 0"),
            BookError::WouldCross(id) => write!(f, "restored order {id} would cross the book"),
            BookError::NotALimitOrder(id) => write!(f, "order {id} is not a limit order"),
        }
    }
}

impl std::error::Error for BookError {}

/// A read-only view of a resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder {
    /// Id.
    pub id: OrderId,
    /// Side.
    pub side: Side,
    /// Limit price.
    pub price: Price,
    /// Lots still resting.
    pub remaining: Qty,
    /// Lots filled so far (since it was submitted or last re-queued).
    pub filled: Qty,
}

/// Aggregated view of one price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelView {
    /// Level price.
    pub price: Price,
    /// Sum of resting lots.
    pub qty: Qty,
    /// Number of resting orders.
    pub orders: u32,
}

/// Aggregated depth snapshot, best levels first on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Depth {
    /// Bids, highest price first.
    pub bids: Vec<LevelView>,
    /// Asks, lowest price first.
    pub asks: Vec<LevelView>,
}

/// A price-time-priority limit order book for one symbol.
///
/// * Orders at a better price always match first; within a level, the oldest order
///   matches first (FIFO).
/// * An incoming order crosses when its limit is equal to or better than the best
///   opposite price; executions happen at the **resting** order's price.
/// * Market orders match against whatever is available and never rest; an unfilled
///   remainder is cancelled (an empty book gives status [`OrderStatus::Cancelled`]
///   with no fills).
///
/// ```
/// use trading_core::{NewOrder, OrderBook, OrderStatus, Price, Qty, Side};
///
/// let mut book = OrderBook::new();
/// let mut fills = Vec::new();
/// book.submit(NewOrder::limit(1, Side::Sell, 101, 5), &mut fills).unwrap();
/// book.submit(NewOrder::limit(2, Side::Sell, 102, 5), &mut fills).unwrap();
///
/// // A buy for 7 up to 102 sweeps the 101 level, then takes 2 at 102.
/// let exec = book.submit(NewOrder::limit(3, Side::Buy, 102, 7), &mut fills).unwrap();
/// assert_eq!(exec.status, OrderStatus::Filled);
/// assert_eq!(fills.len(), 2);
/// assert_eq!((fills[0].price, fills[0].qty), (Price(101), Qty(5)));
/// assert_eq!((fills[1].price, fills[1].qty), (Price(102), Qty(2)));
/// assert_eq!(book.best_ask(), Some((Price(102), Qty(3))));
/// ```
#[derive(Debug, Default, Clone)]
pub struct OrderBook {
    bids: BTreeMap<Price, Level>,
    asks: BTreeMap<Price, Level>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashMap<OrderId, u32, IdBuildHasher>,
    last_trade: Option<Price>,
}

impl OrderBook {
    /// An empty book.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty book with room for `orders` resting orders before reallocating.
    #[must_use]
    pub fn with_capacity(orders: usize) -> Self {
        OrderBook {
            nodes: Vec::with_capacity(orders),
            free: Vec::with_capacity(orders),
            index: HashMap::with_capacity_and_hasher(orders, IdBuildHasher::default()),
            ..Self::default()
        }
    }

    /// Number of resting orders.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing rests in the book.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Price of the most recent execution in this book.
    #[must_use]
    pub fn last_trade_price(&self) -> Option<Price> {
        self.last_trade
    }

    /// Overrides the last trade price (e.g. when restoring state).
    pub fn set_last_trade_price(&mut self, price: Option<Price>) {
        self.last_trade = price;
    }

    /// Best bid price and total lots at it.
    #[must_use]
    pub fn best_bid(&self) -> Option<(Price, Qty)> {
        self.bids.last_key_value().map(|(p, l)| (*p, Qty(l.total)))
    }

    /// Best ask price and total lots at it.
    #[must_use]
    pub fn best_ask(&self) -> Option<(Price, Qty)> {
        self.asks.first_key_value().map(|(p, l)| (*p, Qty(l.total)))
    }

    /// Looks up a resting order.
    #[must_use]
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        self.index.get(&id).map(|&slot| {
            let n = &self.nodes[slot as usize];
            RestingOrder {
                id: n.id,
                side: n.side,
                price: n.price,
                remaining: n.qty,
                filled: n.filled,
            }
        })
    }

    /// Ids of every resting order, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.index.keys().copied()
    }

    /// Resting order ids at one price level, in time priority (for inspection/tests).
    #[must_use]
    pub fn level_orders(&self, side: Side, price: Price) -> Vec<OrderId> {
        let level = match side {
            Side::Buy => self.bids.get(&price),
            Side::Sell => self.asks.get(&price),
        };
        let mut out = Vec::new();
        if let Some(level) = level {
            let mut cur = level.head;
            while cur != NIL {
                let n = &self.nodes[cur as usize];
                out.push(n.id);
                cur = n.next;
            }
        }
        out
    }

    /// Aggregated depth of up to `levels` price levels per side.
    ///
    /// ```
    /// use trading_core::{NewOrder, OrderBook, Price, Qty, Side};
    /// let mut book = OrderBook::new();
    /// let mut fills = Vec::new();
    /// book.submit(NewOrder::limit(1, Side::Buy, 99, 2), &mut fills).unwrap();
    /// book.submit(NewOrder::limit(2, Side::Buy, 99, 3), &mut fills).unwrap();
    /// book.submit(NewOrder::limit(3, Side::Buy, 98, 1), &mut fills).unwrap();
    /// let depth = book.depth(10);
    /// assert_eq!(depth.bids[0].price, Price(99));
    /// assert_eq!(depth.bids[0].qty, Qty(5));
    /// assert_eq!(depth.bids[0].orders, 2);
    /// assert!(depth.asks.is_empty());
    /// ```
    #[must_use]
    pub fn depth(&self, levels: usize) -> Depth {
        let view = |(p, l): (&Price, &Level)| LevelView {
            price: *p,
            qty: Qty(l.total),
            orders: l.count,
        };
        Depth {
            bids: self.bids.iter().rev().take(levels).map(view).collect(),
            asks: self.asks.iter().take(levels).map(view).collect(),
        }
    }

    /// Submits an order: matches it against the opposite side, appending
    /// executions to `fills`, and rests a limit order's remainder.
    ///
    /// # Errors
    /// [`BookError::ZeroQuantity`], [`BookError::InvalidPrice`] (limit price ≤ 0) or
    /// [`BookError::DuplicateOrderId`]; the book is unchanged on error.
    pub fn submit(&mut self, order: NewOrder, fills: &mut Vec<Fill>) -> Result<Execution, BookError> {
        Self::validate(&order)?;
        if self.index.contains_key(&order.id) {
            return Err(BookError::DuplicateOrderId(order.id));
        }
        Ok(self.submit_unchecked(order, Qty::ZERO, fills))
    }

    fn validate(order: &NewOrder) -> Result<(), BookError> {
        if order.qty.is_zero() {
            return Err(BookError::ZeroQuantity);
        }
        if let OrderType::Limit(p) = order.kind {
            if p.0 <= 0 {
                return Err(BookError::InvalidPrice(p));
            }
        }
        Ok(())
    }

    fn submit_unchecked(&mut self, order: NewOrder, prior_filled: Qty, fills: &mut Vec<Fill>) -> Execution {
        let limit = order.price();
        let filled = self.match_incoming(order.id, order.side, limit, order.qty, fills);
        let remaining = order.qty.0 - filled;
        let total_filled = Qty(prior_filled.0 + filled);
        match (limit, remaining) {
            (_, 0) => Execution {
                id: order.id,
                filled: Qty(filled),
                remaining: Qty::ZERO,
                status: OrderStatus::Filled,
            },
            (None, _) => Execution {
                id: order.id,
                filled: Qty(filled),
                remaining: Qty::ZERO,
                status: OrderStatus::Cancelled,
            },
            (Some(price), rem) => {
                self.rest(order.id, order.side, price, Qty(rem), total_filled);
                Execution {
                    id: order.id,
                    filled: Qty(filled),
                    remaining: Qty(rem),
                    status: if total_filled.is_zero() {
                        OrderStatus::Open
                    } else {
                        OrderStatus::PartiallyFilled
                    },
                }
            }
        }
    }

    /// Inserts a limit order as resting **without matching** (used to rebuild a
    /// book from persisted open orders, in their original time-priority order).
    ///
    /// # Errors
    /// Validation errors as for [`submit`](Self::submit), [`BookError::NotALimitOrder`]
    /// for market orders, and [`BookError::WouldCross`] if it would trade.
    pub fn restore(&mut self, order: NewOrder, already_filled: Qty) -> Result<(), BookError> {
        Self::validate(&order)?;
        let OrderType::Limit(price) = order.kind else {
            return Err(BookError::NotALimitOrder(order.id));
        };
        if self.index.contains_key(&order.id) {
            return Err(BookError::DuplicateOrderId(order.id));
        }
        let crosses = match order.side {
            Side::Buy => self.asks.first_key_value().is_some_and(|(p, _)| *p <= price),
            Side::Sell => self.bids.last_key_value().is_some_and(|(p, _)| *p >= price),
        };
        if crosses {
            return Err(BookError::WouldCross(order.id));
        }
        self.rest(order.id, order.side, price, order.qty, already_filled);
        Ok(())
    }

    /// Cancels a resting order, returning what was left of it.
    ///
    /// # Errors
    /// [`BookError::UnknownOrder`] if no resting order has this id.
    ///
    /// ```
    /// use trading_core::{BookError, NewOrder, OrderBook, OrderId, Qty, Side};
    /// let mut book = OrderBook::new();
    /// book.submit(NewOrder::limit(7, Side::Buy, 100, 4), &mut Vec::new()).unwrap();
    /// assert_eq!(book.cancel(OrderId(7)).unwrap().remaining, Qty(4));
    /// assert_eq!(book.cancel(OrderId(7)), Err(BookError::UnknownOrder(OrderId(7))));
    /// ```
    pub fn cancel(&mut self, id: OrderId) -> Result<RestingOrder, BookError> {
        let slot = self.index.remove(&id).ok_or(BookError::UnknownOrder(id))?;
        let n = self.nodes[slot as usize];
        self.unlink(slot);
        Ok(RestingOrder {
            id,
            side: n.side,
            price: n.price,
            remaining: n.qty,
            filled: n.filled,
        })
    }

    /// Replaces a resting order's price and/or remaining quantity.
    ///
    /// `new_qty` is the new **remaining** quantity.
    ///
    /// Priority rule: if the price is unchanged and the quantity only decreases, the
    /// order is amended in place and **keeps** its time priority. Any other change
    /// (new price, or a larger quantity) is a cancel + new order with the same id:
    /// it **loses** priority (goes to the back of its level) and may trade
    /// immediately if the new price crosses the book; resulting fills are appended
    /// to `fills`.
    ///
    /// # Errors
    /// [`BookError::UnknownOrder`], [`BookError::ZeroQuantity`] or
    /// [`BookError::InvalidPrice`]; the book is unchanged on error.
    ///
    /// ```
    /// use trading_core::{NewOrder, OrderBook, OrderId, Price, Qty, Side};
    /// let mut book = OrderBook::new();
    /// let mut fills = Vec::new();
    /// book.submit(NewOrder::limit(1, Side::Buy, 100, 5), &mut fills).unwrap();
    /// book.submit(NewOrder::limit(2, Side::Buy, 100, 5), &mut fills).unwrap();
    /// // Decreasing quantity keeps priority...
    /// book.replace(OrderId(1), Price(100), Qty(3), &mut fills).unwrap();
    /// assert_eq!(book.level_orders(Side::Buy, Price(100)), vec![OrderId(1), OrderId(2)]);
    /// // ...increasing it sends the order to the back of the queue.
    /// book.replace(OrderId(1), Price(100), Qty(9), &mut fills).unwrap();
    /// assert_eq!(book.level_orders(Side::Buy, Price(100)), vec![OrderId(2), OrderId(1)]);
    /// ```
    pub fn replace(
        &mut self,
        id: OrderId,
        new_price: Price,
        new_qty: Qty,
        fills: &mut Vec<Fill>,
    ) -> Result<Execution, BookError> {
        let &slot = self.index.get(&id).ok_or(BookError::UnknownOrder(id))?;
        if new_qty.is_zero() {
            return Err(BookError::ZeroQuantity);
        }
        if new_price.0 <= 0 {
            return Err(BookError::InvalidPrice(new_price));
        }
        let node = self.nodes[slot as usize];
        if new_price == node.price && new_qty <= node.qty {
            let delta = node.qty.0 - new_qty.0;
            self.nodes[slot as usize].qty = new_qty;
            let level = self.level_mut(node.side, node.price);
            level.total -= delta;
            return Ok(Execution {
                id,
                filled: Qty::ZERO,
                remaining: new_qty,
                status: if node.filled.is_zero() {
                    OrderStatus::Open
                } else {
                    OrderStatus::PartiallyFilled
                },
            });
        }
        self.index.remove(&id);
        self.unlink(slot);
        let order = NewOrder {
            id,
            side: node.side,
            kind: OrderType::Limit(new_price),
            qty: new_qty,
        };
        Ok(self.submit_unchecked(order, node.filled, fills))
    }

    fn level_mut(&mut self, side: Side, price: Price) -> &mut Level {
        let map = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        map.get_mut(&price)
            .expect("invariant: resting order's level exists")
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.nodes[slot as usize] = node;
            slot
        } else {
            let slot = u32::try_from(self.nodes.len()).expect("more than u32::MAX resting orders");
            self.nodes.push(node);
            slot
        }
    }

    fn rest(&mut self, id: OrderId, side: Side, price: Price, qty: Qty, filled: Qty) {
        let slot = self.alloc(Node {
            id,
            side,
            price,
            qty,
            filled,
            prev: NIL,
            next: NIL,
        });
        self.index.insert(id, slot);
        let map = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = map.entry(price).or_insert(Level::new());
        let tail = level.tail;
        level.tail = slot;
        level.total += qty.0;
        level.count += 1;
        if tail == NIL {
            level.head = slot;
        } else {
            self.nodes[tail as usize].next = slot;
            self.nodes[slot as usize].prev = tail;
        }
    }

    /// Unlinks a node from its level (removing the level if empty) and frees the slot.
    /// The caller must already have removed it from `index`.
    fn unlink(&mut self, slot: u32) {
        let Node {
            side,
            price,
            qty,
            prev,
            next,
            ..
        } = self.nodes[slot as usize];
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let map = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = map
            .get_mut(&price)
            .expect("invariant: resting order's level exists");
        if level.head == slot {
            level.head = next;
        }
        if level.tail == slot {
            level.tail = prev;
        }
        level.total -= qty.0;
        level.count -= 1;
        if level.count == 0 {
            map.remove(&price);
        }
        self.free.push(slot);
    }

    /// Matches an incoming order against the opposite side. Returns lots filled.
    fn match_incoming(
        &mut self,
        taker: OrderId,
        side: Side,
        limit: Option<Price>,
        qty: Qty,
        fills: &mut Vec<Fill>,
    ) -> u64 {
        let mut remaining = qty.0;
        while remaining > 0 {
            let entry = match side {
                Side::Buy => self.asks.first_entry(),
                Side::Sell => self.bids.last_entry(),
            };
            let Some(mut entry) = entry else { break };
            let price = *entry.key();
            let crosses = match (side, limit) {
                (_, None) => true,
                (Side::Buy, Some(l)) => price <= l,
                (Side::Sell, Some(l)) => price >= l,
            };
            if !crosses {
                break;
            }
            let level = entry.get_mut();
            let mut cur = level.head;
            while remaining > 0 && cur != NIL {
                let node = &mut self.nodes[cur as usize];
                let take = remaining.min(node.qty.0);
                node.qty.0 -= take;
                node.filled.0 += take;
                remaining -= take;
                level.total -= take;
                fills.push(Fill {
                    taker,
                    maker: node.id,
                    taker_side: side,
                    price,
                    qty: Qty(take),
                    maker_remaining: node.qty,
                });
                let next = node.next;
                if node.qty.is_zero() {
                    let maker = node.id;
                    self.index.remove(&maker);
                    self.free.push(cur);
                    level.count -= 1;
                    cur = next;
                    level.head = cur;
                    if cur == NIL {
                        level.tail = NIL;
                    } else {
                        self.nodes[cur as usize].prev = NIL;
                    }
                } else {
                    break;
                }
            }
            self.last_trade = Some(price);
            if level.count == 0 {
                entry.remove();
            }
        }
        qty.0 - remaining
    }
}
