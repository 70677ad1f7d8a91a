//! Multi-symbol matching engine: a map from symbol to [`OrderBook`].

use std::collections::HashMap;

use crate::book::{BookError, Depth, OrderBook, RestingOrder};
use crate::types::{Execution, Fill, NewOrder, OrderId, Price, Qty};

/// Routes orders to one [`OrderBook`] per symbol, creating books on demand.
///
/// Order ids must be unique per engine; the engine remembers which symbol each
/// resting order lives in, so cancels only need the id.
///
/// ```
/// use trading_core::{MatchingEngine, NewOrder, OrderStatus, Side};
///
/// let mut engine = MatchingEngine::new();
/// let mut fills = Vec::new();
/// engine.submit("ACME", NewOrder::limit(1, Side::Sell, 500, 10), &mut fills).unwrap();
/// engine.submit("OTHER", NewOrder::limit(2, Side::Buy, 500, 10), &mut fills).unwrap();
/// assert!(fills.is_empty()); // different symbols never match
///
/// let exec = engine.submit("ACME", NewOrder::market(3, Side::Buy, 4), &mut fills).unwrap();
/// assert_eq!(exec.status, OrderStatus::Filled);
/// assert_eq!(fills.len(), 1);
/// assert_eq!(engine.last_trade_price("ACME").map(|p| p.0), Some(500));
/// ```
#[derive(Debug, Default, Clone)]
pub struct MatchingEngine {
    symbols: HashMap<String, u32>,
    names: Vec<String>,
    books: Vec<OrderBook>,
    locations: HashMap<OrderId, u32, crate::hash::IdBuildHasher>,
}

impl MatchingEngine {
    /// An engine with no books.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Index of `symbol`'s book, creating the book if needed (symbols are interned
    /// once, so resting orders do not allocate a symbol string each).
    fn book_index(&mut self, symbol: &str) -> u32 {
        if let Some(&i) = self.symbols.get(symbol) {
            return i;
        }
        let i = u32::try_from(self.books.len()).expect("too many symbols");
        self.symbols.insert(symbol.to_owned(), i);
        self.names.push(symbol.to_owned());
        self.books.push(OrderBook::new());
        i
    }

    fn book_mut(&mut self, symbol: &str) -> &mut OrderBook {
        let i = self.book_index(symbol);
        &mut self.books[i as usize]
    }

    /// The book for `symbol`, if any order was ever sent to it.
    #[must_use]
    pub fn book(&self, symbol: &str) -> Option<&OrderBook> {
        self.symbols.get(symbol).map(|&i| &self.books[i as usize])
    }

    /// Symbols with a book.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Submits an order to `symbol`'s book; see [`OrderBook::submit`].
    ///
    /// # Errors
    /// As [`OrderBook::submit`]; ids are checked for uniqueness across all symbols.
    pub fn submit(
        &mut self,
        symbol: &str,
        order: NewOrder,
        fills: &mut Vec<Fill>,
    ) -> Result<Execution, BookError> {
        if self.locations.contains_key(&order.id) {
            return Err(BookError::DuplicateOrderId(order.id));
        }
        let start = fills.len();
        let bi = self.book_index(symbol);
        let exec = self.books[bi as usize].submit(order, fills)?;
        for f in &fills[start..] {
            if f.maker_remaining.is_zero() {
                self.locations.remove(&f.maker);
            }
        }
        if exec.status.is_live() {
            self.locations.insert(order.id, bi);
        }
        Ok(exec)
    }

    /// Re-inserts a persisted resting order without matching; see [`OrderBook::restore`].
    ///
    /// # Errors
    /// As [`OrderBook::restore`].
    pub fn restore(&mut self, symbol: &str, order: NewOrder, already_filled: Qty) -> Result<(), BookError> {
        if self.locations.contains_key(&order.id) {
            return Err(BookError::DuplicateOrderId(order.id));
        }
        let bi = self.book_index(symbol);
        self.books[bi as usize].restore(order, already_filled)?;
        self.locations.insert(order.id, bi);
        Ok(())
    }

    /// Cancels a resting order by id, returning its symbol and what was left.
    ///
    /// # Errors
    /// [`BookError::UnknownOrder`].
    pub fn cancel(&mut self, id: OrderId) -> Result<(String, RestingOrder), BookError> {
        let &bi = self.locations.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let rest = self.books[bi as usize].cancel(id)?;
        self.locations.remove(&id);
        Ok((self.names[bi as usize].clone(), rest))
    }

    /// Replaces a resting order; see [`OrderBook::replace`] for the priority rule.
    ///
    /// # Errors
    /// As [`OrderBook::replace`].
    pub fn replace(
        &mut self,
        id: OrderId,
        price: Price,
        qty: Qty,
        fills: &mut Vec<Fill>,
    ) -> Result<Execution, BookError> {
        let &bi = self.locations.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let start = fills.len();
        let exec = self.books[bi as usize].replace(id, price, qty, fills)?;
        for f in &fills[start..] {
            if f.maker_remaining.is_zero() {
                self.locations.remove(&f.maker);
            }
        }
        if !exec.status.is_live() {
            self.locations.remove(&id);
        }
        Ok(exec)
    }

    /// Looks up a resting order and its symbol.
    #[must_use]
    pub fn order(&self, id: OrderId) -> Option<(&str, RestingOrder)> {
        let &bi = self.locations.get(&id)?;
        let order = self.books[bi as usize].order(id)?;
        Some((self.names[bi as usize].as_str(), order))
    }

    /// Depth snapshot for a symbol (empty if the symbol has no book).
    #[must_use]
    pub fn depth(&self, symbol: &str, levels: usize) -> Depth {
        self.book(symbol).map(|b| b.depth(levels)).unwrap_or_default()
    }

    /// Last trade price of a symbol.
    #[must_use]
    pub fn last_trade_price(&self, symbol: &str) -> Option<Price> {
        self.book(symbol).and_then(OrderBook::last_trade_price)
    }

    /// Sets the last trade price of a symbol (used when restoring state).
    pub fn set_last_trade_price(&mut self, symbol: &str, price: Option<Price>) {
        self.book_mut(symbol).set_last_trade_price(price);
    }

    /// Puts back a copy of `symbol`'s book taken earlier with
    /// [`book`](Self::book)`(symbol).cloned()` (`None`: the book did not exist, so an
    /// empty one), undoing whatever was submitted or cancelled there since; which
    /// orders rest where is updated to match.
    pub fn put_book(&mut self, symbol: &str, book: Option<OrderBook>) {
        let bi = self.book_index(symbol);
        let book = book.unwrap_or_default();
        let old = std::mem::replace(&mut self.books[bi as usize], book);
        for id in old.ids() {
            self.locations.remove(&id);
        }
        for id in self.books[bi as usize].ids() {
            self.locations.insert(id, bi);
        }
    }

    /// Total resting orders across all books.
    #[must_use]
    pub fn resting_orders(&self) -> usize {
        self.locations.len()
    }
}
