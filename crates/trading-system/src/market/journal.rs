//! Speculative batches: while a batch is matched before Postgres accepted its write,
//! the market records how each book, portfolio, order owner and open exposure was
//! before the batch first changed it, so a refused write is undone exactly
//! ([`Core::undo`]) instead of rebuilding the whole market from Postgres.

use std::collections::HashMap;
use std::sync::Arc;

use trading_core::{Exposure, OrderBook, OrderId, Portfolio};

use super::Core;

/// What a speculative batch changed: each value as it was before (`None`: absent).
#[derive(Debug, Default)]
pub(super) struct Journal {
    books: HashMap<String, Option<OrderBook>>,
    accounts: HashMap<String, Option<Portfolio>>,
    owners: HashMap<u64, Option<Arc<str>>>,
    open: HashMap<(Arc<str>, String), Option<Exposure>>,
}

impl Core {
    /// Starts recording what changes so [`Core::undo`] can put it back. Applying log
    /// entries ([`Core::replay`], [`Core::mark_applied`]) and restoring from a
    /// snapshot are not recorded: they only happen outside a speculative batch.
    pub fn speculate(&mut self) {
        self.journal = Some(Journal::default());
    }

    /// Keeps what changed since [`Core::speculate`].
    pub fn confirm(&mut self) {
        self.journal = None;
    }

    /// Puts back everything changed since [`Core::speculate`] (nothing if not speculating).
    pub fn undo(&mut self) {
        let Some(j) = self.journal.take() else {
            return;
        };
        for (symbol, book) in j.books {
            self.engine.put_book(&symbol, book);
        }
        for (account, before) in j.accounts {
            match before {
                Some(p) => self.accounts.insert(account, p),
                None => self.accounts.remove(&account),
            };
        }
        for (id, before) in j.owners {
            match before {
                Some(a) => self.order_accounts.insert(id, a),
                None => self.order_accounts.remove(&id),
            };
        }
        for ((account, symbol), before) in j.open {
            let per_symbol = self.open.entry(account.clone()).or_default();
            match before {
                Some(e) => {
                    per_symbol.insert(symbol, e);
                }
                None => {
                    per_symbol.remove(&symbol);
                    if per_symbol.is_empty() {
                        self.open.remove(&account);
                    }
                }
            }
        }
    }

    pub(super) fn save_book(&mut self, symbol: &str) {
        if let Some(j) = &mut self.journal {
            if !j.books.contains_key(symbol) {
                j.books
                    .insert(symbol.to_owned(), self.engine.book(symbol).cloned());
            }
        }
    }

    /// Saves the book `id` rests in (a cancel finds its book by the order id).
    pub(super) fn save_book_of(&mut self, id: u64) {
        if self.journal.is_some() {
            if let Some((symbol, _)) = self.engine.order(OrderId(id)) {
                let symbol = symbol.to_owned();
                self.save_book(&symbol);
            }
        }
    }

    pub(super) fn save_account(&mut self, account: &str) {
        if let Some(j) = &mut self.journal {
            if !j.accounts.contains_key(account) {
                j.accounts
                    .insert(account.to_owned(), self.accounts.get(account).cloned());
            }
        }
    }

    pub(super) fn save_owner(&mut self, id: u64) {
        if let Some(j) = &mut self.journal {
            j.owners
                .entry(id)
                .or_insert_with(|| self.order_accounts.get(&id).cloned());
        }
    }

    pub(super) fn save_open(&mut self, account: &Arc<str>, symbol: &str) {
        if let Some(j) = &mut self.journal {
            j.open
                .entry((account.clone(), symbol.to_owned()))
                .or_insert_with(|| self.open.get(account).and_then(|m| m.get(symbol)).copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use trading_core::{Depth, OrderType, Position, Price, Qty, RestingOrder, Side};

    use super::*;
    use crate::market::OrderCommand;

    const SYMBOLS: [&str; 3] = ["S0", "S1", "S2"];

    /// A deterministic stream of new orders and cancels over 3 symbols and 6 accounts.
    struct Stream {
        state: u64,
        next_id: u64,
    }

    impl Stream {
        fn draw(&mut self, n: u64) -> u64 {
            self.state = self
                .state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.state >> 33) % n
        }

        fn apply(&mut self, core: &mut Core, steps: usize) {
            let mut fills = Vec::new();
            for _ in 0..steps {
                if self.draw(5) == 0 && self.next_id > 1 {
                    let _ = core.apply_cancel(1 + self.draw(self.next_id - 1));
                    continue;
                }
                let price = 95 + i64::try_from(self.draw(11)).unwrap();
                let cmd = OrderCommand {
                    id: self.next_id,
                    account: Arc::from(format!("a{}", self.draw(6))),
                    symbol: SYMBOLS[usize::try_from(self.draw(3)).unwrap()].to_owned(),
                    side: if self.draw(2) == 0 { Side::Buy } else { Side::Sell },
                    kind: if self.draw(8) == 0 {
                        OrderType::Market
                    } else {
                        OrderType::Limit(Price(price))
                    },
                    qty: Qty(1 + self.draw(8)),
                };
                self.next_id += 1;
                fills.clear();
                core.apply_new(&cmd, &mut fills).unwrap();
            }
        }
    }

    type View = (
        Vec<(Depth, Option<Price>)>,
        Vec<(String, Vec<(String, Position)>)>,
        Vec<(u64, Option<String>, Option<(String, RestingOrder)>)>,
        Vec<Exposure>,
        usize,
    );

    /// Everything a reader or a later batch can observe of the market.
    fn view(core: &Core, ids: u64) -> View {
        let books = SYMBOLS
            .iter()
            .map(|s| (core.engine.depth(s, 1000), core.engine.last_trade_price(s)))
            .collect();
        let mut accounts: Vec<_> = core
            .accounts
            .iter()
            .map(|(a, p)| {
                let mut pos: Vec<_> = p.iter().map(|(s, x)| (s.to_owned(), *x)).collect();
                pos.sort_by(|x, y| x.0.cmp(&y.0));
                (a.clone(), pos)
            })
            .collect();
        accounts.sort_by(|x, y| x.0.cmp(&y.0));
        let orders = (1..ids)
            .map(|id| {
                let owner = core.owner(id).map(ToString::to_string);
                let rest = core.engine.order(OrderId(id)).map(|(s, o)| (s.to_owned(), o));
                (id, owner, rest)
            })
            .collect();
        let exposures = (0..6)
            .flat_map(|a| SYMBOLS.iter().map(move |s| (format!("a{a}"), *s)))
            .map(|(a, s)| core.exposure(&a, s))
            .collect();
        (books, accounts, orders, exposures, core.engine.resting_orders())
    }

    #[test]
    fn undo_puts_back_exactly_what_a_batch_changed() {
        let mut changed = 0;
        for seed in 0..40 {
            let mut stream = Stream {
                state: seed,
                next_id: 1,
            };
            let (mut core, mut twin) = (Core::default(), Core::default());
            let mut twin_stream = Stream {
                state: seed,
                next_id: 1,
            };
            stream.apply(&mut core, 60);
            twin_stream.apply(&mut twin, 60);
            // ids up to 20 past the last: the batch's own included
            let ids = stream.next_id + 20;
            let before = view(&core, ids);
            // A speculative batch (fills, new accounts and books, cancels), undone.
            let mut batch = Stream {
                state: seed + 1000,
                next_id: stream.next_id,
            };
            core.speculate();
            batch.apply(&mut core, 1 + usize::try_from(seed % 12).unwrap());
            changed += usize::from(view(&core, ids) != before);
            core.undo();
            assert_eq!(view(&core, ids), before, "seed {seed}");
            // Nothing hidden differs either: the same orders afterwards do the same.
            stream.apply(&mut core, 60);
            twin_stream.apply(&mut twin, 60);
            assert_eq!(
                view(&core, stream.next_id),
                view(&twin, stream.next_id),
                "seed {seed}"
            );
        }
        assert!(changed >= 35, "only {changed} of 40 batches changed the market");
    }

    #[test]
    fn a_confirmed_batch_stays() {
        let mut stream = Stream { state: 7, next_id: 1 };
        let mut core = Core::default();
        core.speculate();
        stream.apply(&mut core, 30);
        core.confirm();
        let kept = view(&core, stream.next_id);
        core.undo();
        assert_eq!(view(&core, stream.next_id), kept);
    }
}
