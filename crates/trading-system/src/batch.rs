//! The rows one sequenced batch writes: new orders in their final state, updates
//! of earlier orders it filled or cancelled, fills and log entries; written and
//! committed in one pipelined round trip (together with taking the symbols' locks
//! and checking their logs, for a speculative batch).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use trading_core::{Execution, Fill, OrderStatus, OrderType, Qty};

use crate::db::{FillRow, OrderRow};
use crate::market::OrderCommand;
use crate::store::{db_err, stamped, Stmts, MOVED};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Why a batch was not written (its transaction ended without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Another instance appended to the log of one of the batch's symbols since it
    /// was last applied here (speculative writes only): the batch saw stale books.
    Moved(String),
    /// Anything else, as text (the transaction is then aborted: roll it back).
    Failed(String),
}

/// When each answer of a batch's write arrived (`None`: not part of it).
#[derive(Debug, Clone, Copy)]
pub struct Arrivals {
    /// `BEGIN`'s (speculative writes).
    pub begun: Option<Instant>,
    /// The symbols' locks (speculative writes).
    pub locked: Option<Instant>,
    /// The check that their logs did not move (speculative writes).
    pub checked: Option<Instant>,
    /// The write's.
    pub written: Instant,
    /// The `COMMIT`'s.
    pub committed: Instant,
}

/// A speculative batch's symbols and the log position of each it was matched at.
pub type Unmoved<'a> = (&'a [String], &'a [i64]);

/// What a sequenced batch writes, in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// New orders in log order, with their state at the end of the batch.
    orders: Vec<OrderRow>,
    new_index: HashMap<i64, usize>,
    /// Earlier orders the batch filled or cancelled: lots filled, final status.
    updates: BTreeMap<i64, (i64, &'static str)>,
    /// Fills in execution order, with their symbol.
    pub fills: Vec<(String, FillRow)>,
    log: Vec<(String, &'static str, i64, i64)>,
}

impl Batch {
    /// Records an accepted order, its execution and fills; returns its row and fill
    /// rows as of its own execution.
    pub fn add_new(
        &mut self,
        cmd: &OrderCommand,
        client_id: Option<String>,
        exec: &Execution,
        fills: &[Fill],
    ) -> (OrderRow, Vec<FillRow>) {
        let id = to_i64(cmd.id);
        let mut rows = Vec::with_capacity(fills.len());
        for f in fills {
            let fill = FillRow {
                taker: id,
                maker: to_i64(f.maker.0),
                taker_side: f.taker_side.as_str(),
                price: f.price.0,
                qty: to_i64(f.qty.0),
                maker_remaining: to_i64(f.maker_remaining.0),
            };
            let status = if f.maker_remaining.is_zero() {
                OrderStatus::Filled
            } else {
                OrderStatus::PartiallyFilled
            };
            self.touch(fill.maker, fill.qty, status.as_str());
            self.fills.push((cmd.symbol.clone(), fill.clone()));
            rows.push(fill);
        }
        let row = OrderRow {
            id,
            client_id,
            account: cmd.account.to_string(),
            symbol: cmd.symbol.clone(),
            side: cmd.side.as_str().to_owned(),
            order_type: if matches!(cmd.kind, OrderType::Market) {
                "market"
            } else {
                "limit"
            }
            .to_owned(),
            price: match cmd.kind {
                OrderType::Limit(p) => Some(p.0),
                OrderType::Market => None,
            },
            qty: to_i64(cmd.qty.0),
            filled: to_i64(exec.filled.0),
            status: exec.status.as_str().to_owned(),
        };
        self.new_index.insert(id, self.orders.len());
        self.orders.push(row.clone());
        self.log
            .push((cmd.symbol.clone(), "new", id, to_i64(exec.filled.0)));
        (row, rows)
    }

    /// Records a cancel of `id` that removed `lots`.
    pub fn add_cancel(&mut self, id: u64, symbol: &str, lots: Qty) {
        let id = to_i64(id);
        self.touch(id, 0, OrderStatus::Cancelled.as_str());
        self.log.push((symbol.to_owned(), "cancel", id, to_i64(lots.0)));
    }

    fn touch(&mut self, id: i64, filled: i64, status: &'static str) {
        if let Some(&i) = self.new_index.get(&id) {
            self.orders[i].filled += filled;
            status.clone_into(&mut self.orders[i].status);
        } else {
            let e = self.updates.entry(id).or_insert((0, status));
            e.0 += filled;
            e.1 = status;
        }
    }

    /// Writes the batch and commits; returns the new log head per symbol, and when
    /// each answer arrived. Without `unmoved`, into the transaction
    /// [`begin_lock_and_read`](crate::store::begin_lock_and_read) began (one statement
    /// and the COMMIT). With it, the batch was matched speculatively on the books as
    /// last seen: its own transaction takes the symbols' locks and checks that no
    /// other instance wrote them since the given positions before writing. Either way
    /// one round trip: the statements are pipelined, and the first one failing aborts
    /// the transaction, which its COMMIT then rolls back.
    ///
    /// # Errors
    /// [`Refused::Moved`] when the check failed; [`Refused::Failed`] otherwise.
    pub async fn write(
        &self,
        client: &Client,
        st: &Stmts,
        origin: &str,
        unmoved: Option<Unmoved<'_>>,
    ) -> Result<(Vec<(String, i64)>, Arrivals), Refused> {
        let o = &self.orders;
        let col = |f: fn(&OrderRow) -> String| o.iter().map(f).collect::<Vec<_>>();
        let (ids, client_ids): (Vec<i64>, Vec<Option<String>>) =
            o.iter().map(|r| (r.id, r.client_id.clone())).unzip();
        let (accounts, symbols) = (col(|r| r.account.clone()), col(|r| r.symbol.clone()));
        let (sides, types, statuses) = (
            col(|r| r.side.clone()),
            col(|r| r.order_type.clone()),
            col(|r| r.status.clone()),
        );
        let prices: Vec<Option<i64>> = o.iter().map(|r| r.price).collect();
        let (qtys, filled): (Vec<i64>, Vec<i64>) = o.iter().map(|r| (r.qty, r.filled)).unzip();
        let upd_ids: Vec<i64> = self.updates.keys().copied().collect();
        let upd_added: Vec<i64> = self.updates.values().map(|u| u.0).collect();
        let upd_status: Vec<&str> = self.updates.values().map(|u| u.1).collect();
        let f = &self.fills;
        let f_symbols: Vec<&str> = f.iter().map(|(s, _)| s.as_str()).collect();
        let (f_taker, f_maker): (Vec<i64>, Vec<i64>) = f.iter().map(|(_, x)| (x.taker, x.maker)).unzip();
        let f_side: Vec<&str> = f.iter().map(|(_, x)| x.taker_side).collect();
        let (f_price, f_qty): (Vec<i64>, Vec<i64>) = f.iter().map(|(_, x)| (x.price, x.qty)).unzip();
        let l = &self.log;
        let l_symbols: Vec<&str> = l.iter().map(|e| e.0.as_str()).collect();
        let l_kinds: Vec<&str> = l.iter().map(|e| e.1).collect();
        let (l_ids, l_lots): (Vec<i64>, Vec<i64>) = l.iter().map(|e| (e.2, e.3)).unzip();
        let params: &[&(dyn ToSql + Sync)] = &[
            &ids,
            &client_ids,
            &accounts,
            &symbols,
            &sides,
            &types,
            &prices,
            &qtys,
            &filled,
            &statuses,
            &upd_ids,
            &upd_added,
            &upd_status,
            &f_symbols,
            &f_taker,
            &f_maker,
            &f_side,
            &f_price,
            &f_qty,
            &l_symbols,
            &l_kinds,
            &l_ids,
            &l_lots,
            &origin,
        ];
        let write = stamped(client.query(&st.write, params));
        let commit = stamped(client.batch_execute("COMMIT"));
        let refused = |e: tokio_postgres::Error| match e.code() {
            Some(code) if code.code() == MOVED => Refused::Moved(db_err(&e)),
            _ => Refused::Failed(db_err(&e)),
        };
        let (rows, begun, locked, checked, written, committed) = match unmoved {
            None => {
                let ((rows, written), ((), committed)) =
                    tokio::try_join!(biased; write, commit).map_err(refused)?;
                (rows, None, None, None, written, committed)
            }
            Some((symbols, applied)) => {
                let lock: &[&(dyn ToSql + Sync)] = &[&symbols];
                let check: &[&(dyn ToSql + Sync)] = &[&symbols, &applied];
                let (((), begun), (_, locked), (_, checked), (rows, written), ((), committed)) =
                    tokio::try_join!(
                        biased;
                        stamped(client.batch_execute("BEGIN")),
                        stamped(client.execute(&st.lock, lock)),
                        stamped(client.execute(&st.unmoved, check)),
                        write,
                        commit,
                    )
                    .map_err(refused)?;
                (rows, Some(begun), Some(locked), Some(checked), written, committed)
            }
        };
        let arrivals = Arrivals {
            begun,
            locked,
            checked,
            written,
            committed,
        };
        let heads = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok((heads, arrivals))
    }
}
