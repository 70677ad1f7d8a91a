//! The in-memory market of one instance: books, positions and open exposure,
//! changed only by [`Command`]s applied in log order.
//!
//! Every instance (blue and green) applies the same commands in the same order,
//! its own as it sequences them and the others' as it catches up from the order
//! log, so every instance holds the same market. Matching is deterministic
//! (integer prices, price-time priority), so replaying an accepted order yields the
//! same fills its writer saw; the entry's recorded outcome is compared to be sure.

mod journal;

use std::collections::HashMap;
use std::sync::Arc;

use trading_core::{
    BookError, Execution, Exposure, Fill, MatchingEngine, NewOrder, OrderId, OrderType, Portfolio, Price,
    Qty, RestingOrder, Side,
};

/// An order accepted into a book (new), as logged.
#[derive(Debug, Clone)]
pub struct OrderCommand {
    /// Order id.
    pub id: u64,
    /// Owner.
    pub account: Arc<str>,
    /// Symbol.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderType,
    /// Lots.
    pub qty: Qty,
}

/// One entry of the order log.
#[derive(Debug, Clone)]
pub enum Command {
    /// A new order: match, then rest a limit order's remainder.
    New(OrderCommand),
    /// A cancel of a resting order.
    Cancel {
        /// Order id.
        id: u64,
    },
}

/// A log entry read back for replay.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Position in the log.
    pub seq: i64,
    /// Symbol whose book it changes.
    pub symbol: String,
    /// What to apply.
    pub command: Command,
    /// Lots filled (new) or removed (cancel) when its writer applied it.
    pub lots: u64,
}

/// Books, positions and open exposure.
#[derive(Debug, Default)]
pub struct Core {
    /// Books.
    pub engine: MatchingEngine,
    /// Positions per account.
    pub accounts: HashMap<String, Portfolio>,
    /// Account of each resting order.
    order_accounts: HashMap<u64, Arc<str>>,
    /// Resting lots per side, per account and symbol (`net` unused: see [`Core::exposure`]).
    open: HashMap<Arc<str>, HashMap<String, Exposure>>,
    /// Last log seq applied, per symbol.
    applied: HashMap<String, i64>,
    pub(crate) next_id: u64,
    pub(crate) id_end: u64,
    /// While a batch is speculative: what it changed, to undo it.
    journal: Option<journal::Journal>,
}

impl Core {
    /// Net position and open lots of `account` in `symbol`, for the risk check.
    #[must_use]
    pub fn exposure(&self, account: &str, symbol: &str) -> Exposure {
        let open = self
            .open
            .get(account)
            .and_then(|m| m.get(symbol))
            .copied()
            .unwrap_or_default();
        Exposure {
            net: self.accounts.get(account).map_or(0, |p| p.net(symbol)),
            ..open
        }
    }

    /// Account owning a resting order.
    #[must_use]
    pub fn owner(&self, id: u64) -> Option<&Arc<str>> {
        self.order_accounts.get(&id)
    }

    /// Last log seq applied for `symbol` (0: none).
    #[must_use]
    pub fn applied(&self, symbol: &str) -> i64 {
        self.applied.get(symbol).copied().unwrap_or(0)
    }

    /// Every symbol with an applied log entry and its last applied seq.
    #[must_use]
    pub fn applied_all(&self) -> (Vec<String>, Vec<i64>) {
        self.applied.iter().map(|(s, q)| (s.clone(), *q)).unzip()
    }

    /// Records that the log up to `seq` is applied for `symbol`.
    pub fn mark_applied(&mut self, symbol: &str, seq: i64) {
        if let Some(s) = self.applied.get_mut(symbol) {
            *s = (*s).max(seq);
        } else {
            self.applied.insert(symbol.to_owned(), seq);
        }
    }

    fn add_open(&mut self, account: &Arc<str>, symbol: &str, side: Side, lots: Qty) {
        let delta = i64::try_from(lots.0).unwrap_or(i64::MAX);
        self.open_mut(account, symbol).add_open(side, delta);
    }

    fn remove_open(&mut self, account: &Arc<str>, symbol: &str, side: Side, lots: Qty) {
        let delta = i64::try_from(lots.0).unwrap_or(i64::MAX);
        self.open_mut(account, symbol).add_open(side, -delta);
    }

    fn open_mut(&mut self, account: &Arc<str>, symbol: &str) -> &mut Exposure {
        self.save_open(account, symbol);
        let per_symbol = self.open.entry(account.clone()).or_default();
        if !per_symbol.contains_key(symbol) {
            per_symbol.insert(symbol.to_owned(), Exposure::default());
        }
        per_symbol.get_mut(symbol).expect("inserted above")
    }

    fn apply_fill(&mut self, account: &str, symbol: &str, side: Side, price: Price, qty: Qty) {
        self.save_account(account);
        if let Some(p) = self.accounts.get_mut(account) {
            p.apply_fill(symbol, side, price, qty);
        } else {
            let mut p = Portfolio::default();
            p.apply_fill(symbol, side, price, qty);
            self.accounts.insert(account.to_owned(), p);
        }
    }

    /// Applies a new order: matches it, updates both sides' positions and open
    /// lots, rests a limit remainder. Appends the fills to `fills`.
    ///
    /// # Errors
    /// The book's validation errors (nothing changes then).
    pub fn apply_new(&mut self, o: &OrderCommand, fills: &mut Vec<Fill>) -> Result<Execution, BookError> {
        let start = fills.len();
        let order = NewOrder {
            id: OrderId(o.id),
            side: o.side,
            kind: o.kind,
            qty: o.qty,
        };
        self.save_book(&o.symbol);
        let exec = self.engine.submit(&o.symbol, order, fills)?;
        for f in &fills[start..] {
            let maker = self
                .order_accounts
                .get(&f.maker.0)
                .cloned()
                .unwrap_or_else(|| Arc::from("default"));
            self.apply_fill(&o.account, &o.symbol, f.taker_side, f.price, f.qty);
            self.apply_fill(&maker, &o.symbol, f.taker_side.opposite(), f.price, f.qty);
            self.remove_open(&maker, &o.symbol, f.taker_side.opposite(), f.qty);
            if f.maker_remaining.is_zero() {
                self.save_owner(f.maker.0);
                self.order_accounts.remove(&f.maker.0);
            }
        }
        if exec.status.is_live() {
            self.save_owner(o.id);
            self.order_accounts.insert(o.id, o.account.clone());
            self.add_open(&o.account, &o.symbol, o.side, exec.remaining);
        }
        Ok(exec)
    }

    /// Cancels a resting order, returning its symbol and what was left of it.
    ///
    /// # Errors
    /// [`BookError::UnknownOrder`] when it is not resting.
    pub fn apply_cancel(&mut self, id: u64) -> Result<(String, RestingOrder), BookError> {
        self.save_book_of(id);
        let (symbol, rest) = self.engine.cancel(OrderId(id))?;
        self.save_owner(id);
        if let Some(account) = self.order_accounts.remove(&id) {
            self.remove_open(&account, &symbol, rest.side, rest.remaining);
        }
        Ok((symbol, rest))
    }

    /// Re-inserts a persisted resting order (start-up / rebuild).
    ///
    /// # Errors
    /// As [`MatchingEngine::restore`].
    pub fn restore_order(&mut self, o: &OrderCommand, filled: Qty) -> Result<(), BookError> {
        let order = NewOrder {
            id: OrderId(o.id),
            side: o.side,
            kind: o.kind,
            qty: o.qty,
        };
        self.engine.restore(&o.symbol, order, filled)?;
        self.order_accounts.insert(o.id, o.account.clone());
        self.add_open(&o.account, &o.symbol, o.side, o.qty);
        Ok(())
    }

    /// Applies a persisted fill to both positions (start-up / rebuild).
    pub fn restore_fill(&mut self, symbol: &str, taker: (&str, Side), maker: &str, price: Price, qty: Qty) {
        self.apply_fill(taker.0, symbol, taker.1, price, qty);
        self.apply_fill(maker, symbol, taker.1.opposite(), price, qty);
        self.engine.set_last_trade_price(symbol, Some(price));
    }

    /// Applies log entries written by any instance, in order, skipping those
    /// already applied. Returns how many were applied.
    ///
    /// # Errors
    /// A replayed entry whose outcome differs from what its writer recorded (the
    /// books have diverged: the caller must rebuild from Postgres).
    pub fn replay(&mut self, entries: &[LogEntry]) -> Result<usize, String> {
        let mut fills = Vec::new();
        let mut applied = 0;
        for e in entries {
            if e.seq <= self.applied(&e.symbol) {
                continue;
            }
            let got = match &e.command {
                Command::New(o) => {
                    fills.clear();
                    self.apply_new(o, &mut fills)
                        .map(|x| x.filled.0)
                        .map_err(|err| format!("log entry {}: {err}", e.seq))?
                }
                Command::Cancel { id } => self.apply_cancel(*id).map_or(0, |(_, r)| r.remaining.0),
            };
            if got != e.lots {
                return Err(format!(
                    "log entry {} ({}): replay gave {got} lots, its writer {}",
                    e.seq, e.symbol, e.lots
                ));
            }
            self.mark_applied(&e.symbol, e.seq);
            applied += 1;
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: u64, account: &str, side: Side, price: i64, qty: u64) -> OrderCommand {
        OrderCommand {
            id,
            account: Arc::from(account),
            symbol: "S".to_owned(),
            side,
            kind: OrderType::Limit(Price(price)),
            qty: Qty(qty),
        }
    }

    /// Applies commands as their writer does, returning the log entries it would write.
    fn write(core: &mut Core, commands: &[Command]) -> Vec<LogEntry> {
        let mut fills = Vec::new();
        let mut log = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            let lots = match c {
                Command::New(o) => core.apply_new(o, &mut fills).unwrap().filled.0,
                Command::Cancel { id } => core.apply_cancel(*id).unwrap().1.remaining.0,
            };
            let seq = i64::try_from(i).unwrap() + 1;
            core.mark_applied("S", seq);
            log.push(LogEntry {
                seq,
                symbol: "S".to_owned(),
                command: c.clone(),
                lots,
            });
        }
        log
    }

    fn view(core: &Core) -> (trading_core::Depth, Vec<(String, i64)>, Exposure, Exposure) {
        let mut nets: Vec<_> = core
            .accounts
            .iter()
            .map(|(a, p)| (a.clone(), p.net("S")))
            .collect();
        nets.sort();
        (
            core.engine.depth("S", 100),
            nets,
            core.exposure("ann", "S"),
            core.exposure("bob", "S"),
        )
    }

    #[test]
    fn replaying_the_log_gives_the_writers_market_once() {
        let commands = [
            Command::New(order(1, "ann", Side::Sell, 100, 10)),
            Command::New(order(2, "ann", Side::Sell, 101, 5)),
            Command::New(order(3, "bob", Side::Buy, 101, 12)),
            Command::New(order(4, "bob", Side::Buy, 99, 7)),
            Command::Cancel { id: 2 },
        ];
        let mut writer = Core::default();
        let log = write(&mut writer, &commands);
        assert_eq!(log.iter().map(|e| e.lots).collect::<Vec<_>>(), [0, 0, 12, 0, 3]);
        let mut other = Core::default();
        assert_eq!(other.replay(&log[..2]).unwrap(), 2);
        // Entries already applied are skipped when read again.
        assert_eq!(other.replay(&log).unwrap(), 3);
        assert_eq!(other.replay(&log).unwrap(), 0);
        assert_eq!(view(&other), view(&writer));
        assert_eq!(other.applied("S"), 5);
        // ann sold 12 and has nothing open; bob bought 12 and has 7 open.
        assert_eq!(
            other.exposure("ann", "S"),
            Exposure {
                net: -12,
                open_buy: 0,
                open_sell: 0
            }
        );
        assert_eq!(
            other.exposure("bob", "S"),
            Exposure {
                net: 12,
                open_buy: 7,
                open_sell: 0
            }
        );
    }

    #[test]
    fn a_diverging_entry_is_reported_not_applied_twice() {
        let mut writer = Core::default();
        let mut log = write(
            &mut writer,
            &[
                Command::New(order(1, "ann", Side::Sell, 100, 10)),
                Command::New(order(2, "bob", Side::Buy, 100, 4)),
            ],
        );
        log[1].lots = 3;
        let mut other = Core::default();
        let err = other.replay(&log).unwrap_err();
        assert!(
            err.contains("log entry 2") && err.contains("gave 4 lots, its writer 3"),
            "{err}"
        );
        assert_eq!(other.applied("S"), 1);
    }

    #[test]
    fn restored_orders_and_fills_count_as_exposure() {
        let mut core = Core::default();
        core.restore_fill("S", ("bob", Side::Buy), "ann", Price(100), Qty(4));
        core.restore_order(&order(7, "ann", Side::Sell, 101, 6), Qty(0))
            .unwrap();
        assert_eq!(
            core.exposure("ann", "S"),
            Exposure {
                net: -4,
                open_buy: 0,
                open_sell: 6
            }
        );
        assert_eq!(core.exposure("ann", "S").worst_case(Side::Sell), -10);
        assert_eq!(core.engine.last_trade_price("S"), Some(Price(100)));
        let (symbol, rest) = core.apply_cancel(7).unwrap();
        assert_eq!((symbol.as_str(), rest.remaining), ("S", Qty(6)));
        assert_eq!(core.exposure("ann", "S").open_sell, 0);
        assert!(core.owner(7).is_none());
    }
}
