//! The shared order log in Postgres: per-symbol locks, catch-up reads, the batch
//! write of a sequenced batch, and the consistent snapshot an instance starts from.
//!
//! Locks are transaction-scoped advisory locks `(LOCK_NAMESPACE, hashtext(symbol))`,
//! taken in key order (so two instances locking several symbols cannot deadlock)
//! and released by the commit that makes their entries visible.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Row, Statement};
use tracing::{info, warn};
use trading_core::{OrderType, Price, Qty, Side};

use crate::db;
use crate::market::{Command, Core, LogEntry, OrderCommand};
use crate::metrics::Metrics;

/// First key of the per-symbol advisory locks ("ts"); the second is `hashtext(symbol)`.
pub const LOCK_NAMESPACE: i32 = 0x7473;

/// SQLSTATE of `order_log_unmoved` (migration 3) refusing a speculative batch.
pub const MOVED: &str = "TS001";

/// Takes the locks in key order: the outer select runs over the sorted subquery.
fn lock_sql() -> String {
    format!(
        "SELECT pg_advisory_xact_lock({LOCK_NAMESPACE}, k)
         FROM (SELECT DISTINCT hashtext(s) AS k FROM unnest($1::text[]) AS s ORDER BY 1) AS keys"
    )
}

const LOG_COLUMNS: &str =
    "l.seq, l.symbol, l.kind, l.order_id, l.lots, o.account, o.side, o.order_type, o.price, o.qty";

/// The entries of symbol `{sym}` after seq `{after}`, each with its order. Both
/// lateral subqueries are fenced (`OFFSET 0`: Postgres may not flatten them into
/// joins), so each runs once per symbol, or per entry, with its values bound: index
/// scans reading what is new, whatever plan Postgres caches for the statement. As
/// plain joins, a generic plan hashed the whole log and every order: time growing
/// with their length on every batch.
fn entries_after(sym: &str, after: &str) -> String {
    format!(
        "CROSS JOIN LATERAL (
             SELECT e.seq, e.symbol, e.kind, e.order_id, e.lots FROM order_log e
             WHERE e.symbol = {sym} AND e.seq > {after} OFFSET 0
         ) AS l
         CROSS JOIN LATERAL (SELECT * FROM orders x WHERE x.id = l.order_id OFFSET 0) AS o"
    )
}

/// Log entries of the given symbols after the given seqs, in log order. Only symbols
/// whose head (`log_heads`) moved past what was applied are read: when no other
/// instance wrote, that is one lookup per symbol (public for the tests that check
/// its plan).
#[must_use]
pub fn log_since_sql() -> String {
    format!(
        "SELECT {LOG_COLUMNS}
         FROM unnest($1::text[], $2::bigint[]) AS w(symbol, after)
         CROSS JOIN LATERAL (SELECT seq FROM log_heads WHERE symbol = w.symbol OFFSET 0) AS h
         {}
         WHERE h.seq > w.after
         ORDER BY l.seq",
        entries_after("w.symbol", "w.after")
    )
}

/// Log entries of every symbol whose head is past what was applied (symbols not
/// listed: from the start), in log order (public for the tests that check its plan).
#[must_use]
pub fn log_since_all_sql() -> String {
    format!(
        "SELECT {LOG_COLUMNS}
         FROM log_heads h
         LEFT JOIN unnest($1::text[], $2::bigint[]) AS w(symbol, after) ON w.symbol = h.symbol
         {}
         WHERE h.seq > COALESCE(w.after, 0)
         ORDER BY l.seq",
        entries_after("h.symbol", "COALESCE(w.after, 0)")
    )
}

/// A batch's whole write as one statement (one plan, one execution): new orders in
/// log order, earlier orders it filled or cancelled, fills, log entries, and the new
/// log head per symbol, which it returns. Data-modifying CTEs all run, once; the
/// foreign keys are checked at the end of the statement, when every row is there.
const WRITE_SQL: &str = "
WITH new_orders AS (
    INSERT INTO orders (id, client_id, account, symbol, side, order_type, price, qty, filled, status)
    SELECT id, client_id, account, symbol, side, order_type, price, qty, filled, status
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])
         WITH ORDINALITY AS r(id, client_id, account, symbol, side, order_type, price, qty, filled,
                              status, ord)
    ORDER BY ord
    RETURNING 1
), touched AS (
    UPDATE orders o SET filled = o.filled + d.added, status = d.status, updated_at = now()
    FROM unnest($11::bigint[], $12::bigint[], $13::text[]) AS d(id, added, status)
    WHERE o.id = d.id
    RETURNING 1
), new_fills AS (
    INSERT INTO fills (symbol, taker_order_id, maker_order_id, taker_side, price, qty)
    SELECT symbol, taker, maker, side, price, qty
    FROM unnest($14::text[], $15::bigint[], $16::bigint[], $17::text[], $18::bigint[], $19::bigint[])
         WITH ORDINALITY AS f(symbol, taker, maker, side, price, qty, ord)
    ORDER BY ord
    RETURNING 1
), log AS (
    INSERT INTO order_log (symbol, kind, order_id, lots, origin)
    SELECT symbol, kind, order_id, lots, $24
    FROM unnest($20::text[], $21::text[], $22::bigint[], $23::bigint[])
         WITH ORDINALITY AS e(symbol, kind, order_id, lots, ord)
    ORDER BY ord
    RETURNING symbol, seq
)
INSERT INTO log_heads (symbol, seq)
SELECT symbol, max(seq) FROM log GROUP BY symbol
ON CONFLICT (symbol) DO UPDATE SET seq = EXCLUDED.seq
RETURNING symbol, seq";

/// Statements the sequencer prepares once per connection.
#[derive(Debug)]
pub struct Stmts {
    pub(crate) lock: Statement,
    pub(crate) log_since: Statement,
    pub(crate) write: Statement,
    pub(crate) next_ids: Statement,
    pub(crate) unmoved: Statement,
}

/// Prepares the sequencer's statements, planned once for the connection's lifetime.
///
/// Each is written to run well with its values unknown at planning (arrays of any
/// length, fenced lateral lookups), so the connection forces generic plans: left to
/// choose, Postgres compares a generic plan costed for 10-element arrays with custom
/// plans for the actual one-element arrays, finds it dearer and plans the write
/// again for every batch, which cost as much as executing it.
///
/// # Errors
/// Database errors.
pub async fn prepare(client: &Client) -> Result<Stmts, tokio_postgres::Error> {
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    Ok(Stmts {
        lock: client.prepare(&lock_sql()).await?,
        log_since: client.prepare(&log_since_sql()).await?,
        write: client.prepare(WRITE_SQL).await?,
        next_ids: client.prepare("SELECT nextval('order_id_blocks')").await?,
        unmoved: client
            .prepare("SELECT order_log_unmoved($1::text[], $2::bigint[])")
            .await?,
    })
}

/// `fut`'s value and the instant it arrived: pipelined statements are timed by
/// when each one's answer came back.
pub(crate) async fn stamped<T, E>(fut: impl Future<Output = Result<T, E>>) -> Result<(T, Instant), E> {
    fut.await.map(|v| (v, Instant::now()))
}

pub(crate) fn db_err(e: &tokio_postgres::Error) -> String {
    format!("database error: {e}")
}

fn parse_side(s: &str) -> Side {
    if s == "sell" {
        Side::Sell
    } else {
        Side::Buy
    }
}

fn log_entry(r: &Row) -> LogEntry {
    let seq: i64 = r.get(0);
    let symbol: String = r.get(1);
    let kind: String = r.get(2);
    let id = r.get::<_, i64>(3).unsigned_abs();
    let command = if kind == "cancel" {
        Command::Cancel { id }
    } else {
        let price: Option<i64> = r.get(8);
        let order_type: String = r.get(7);
        Command::New(OrderCommand {
            id,
            account: Arc::from(r.get::<_, String>(5).as_str()),
            symbol: symbol.clone(),
            side: parse_side(&r.get::<_, String>(6)),
            kind: match (order_type.as_str(), price) {
                ("limit", Some(p)) => OrderType::Limit(Price(p)),
                _ => OrderType::Market,
            },
            qty: Qty(r.get::<_, i64>(9).unsigned_abs()),
        })
    };
    LogEntry {
        seq,
        symbol,
        command,
        lots: r.get::<_, i64>(4).unsigned_abs(),
    }
}

/// Begins a transaction, takes the locks of `symbols` and reads the log entries of
/// those symbols after `after`: pipelined, one round trip. The caller ends the
/// transaction ([`Batch::write`](crate::batch::Batch::write) commits it; after an
/// error, [`rollback`]). Also returns when the answers to `BEGIN` and to the locks
/// arrived.
///
/// # Errors
/// Database errors, as text.
pub async fn begin_lock_and_read(
    client: &Client,
    st: &Stmts,
    symbols: &[String],
    after: &[i64],
) -> Result<(Vec<LogEntry>, [Instant; 2]), String> {
    let (lock_params, read_params): (&[&(dyn ToSql + Sync)], &[&(dyn ToSql + Sync)]) =
        (&[&symbols], &[&symbols, &after]);
    let (((), begun), (_, locked), rows) = tokio::try_join!(
        biased;
        stamped(client.batch_execute("BEGIN")),
        stamped(client.execute(&st.lock, lock_params)),
        client.query(&st.log_since, read_params)
    )
    .map_err(|e| db_err(&e))?;
    Ok((rows.iter().map(log_entry).collect(), [begun, locked]))
}

/// Log entries not yet applied for `symbol` (or for every symbol), read without a
/// lock: per symbol, entries become visible in seq order, so this never skips one.
///
/// # Errors
/// Database errors, as text.
pub async fn read_since(
    client: &Client,
    symbols: &[String],
    after: &[i64],
    all: bool,
) -> Result<Vec<LogEntry>, String> {
    let sql = if all { log_since_all_sql() } else { log_since_sql() };
    let rows = client
        .query(sql.as_str(), &[&symbols, &after])
        .await
        .map_err(|e| db_err(&e))?;
    Ok(rows.iter().map(log_entry).collect())
}

/// Ends a failed transaction, if the connection still works.
pub async fn rollback(client: &Client) {
    if !client.is_closed() {
        if let Err(e) = client.batch_execute("ROLLBACK").await {
            warn!(error = %e, "rollback failed");
        }
    }
}

/// Builds an instance's market from Postgres in one consistent snapshot: positions
/// from the fills, open orders in time priority, and the log position per symbol.
///
/// # Errors
/// Database errors, as text.
pub async fn snapshot(url: &str) -> Result<Core, String> {
    let mut client = db::connect(url).await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| db_err(&e))?;
    let fills = db::all_fills(&tx).await?;
    let open = db::open_orders(&tx).await?;
    let heads = tx
        .query("SELECT symbol, seq FROM log_heads", &[])
        .await
        .map_err(|e| db_err(&e))?;
    let mut core = Core::default();
    for f in &fills {
        let (price, qty) = (Price(f.price), Qty(f.qty.unsigned_abs()));
        let taker = (f.taker_account.as_str(), parse_side(&f.taker_side));
        core.restore_fill(&f.symbol, taker, &f.maker_account, price, qty);
    }
    let mut restored = 0usize;
    for o in open {
        let (Some(price), remaining) = (o.price, o.qty - o.filled) else {
            continue;
        };
        if remaining <= 0 {
            continue;
        }
        let cmd = OrderCommand {
            id: o.id.unsigned_abs(),
            account: Arc::from(o.account.as_str()),
            symbol: o.symbol.clone(),
            side: parse_side(&o.side),
            kind: OrderType::Limit(Price(price)),
            qty: Qty(remaining.unsigned_abs()),
        };
        match core.restore_order(&cmd, Qty(o.filled.unsigned_abs())) {
            Ok(()) => restored += 1,
            Err(e) => warn!(order = o.id, error = %e, "skipping open order on restore"),
        }
    }
    for r in &heads {
        core.mark_applied(r.get::<_, &str>(0), r.get(1));
    }
    info!(
        fills = fills.len(),
        open_orders = restored,
        "state restored from postgres"
    );
    Ok(core)
}

/// If a failed write or a diverging replay left this instance's market unlike
/// Postgres, rebuilds it from a snapshot (keeping the reserved order ids). Call
/// with the core lock held.
///
/// # Errors
/// Postgres unavailable (the market stays marked stale).
pub async fn rebuild_if_stale(
    core: &mut Core,
    url: &str,
    stale: &AtomicBool,
    metrics: &Metrics,
) -> Result<(), String> {
    if !stale.load(Ordering::SeqCst) {
        return Ok(());
    }
    metrics.rebuilds.fetch_add(1, Ordering::Relaxed);
    let mut fresh = snapshot(url).await?;
    fresh.next_id = core.next_id;
    fresh.id_end = core.id_end;
    *core = fresh;
    stale.store(false, Ordering::SeqCst);
    warn!("in-memory market rebuilt from postgres");
    Ok(())
}

/// The next order id, reserving a new block of 1000 (ids `start..start+1000`, the
/// sequence steps by 1000) from Postgres when needed.
///
/// # Errors
/// Database errors, as text.
pub async fn next_order_id(core: &mut Core, client: &Client, st: &Stmts) -> Result<u64, String> {
    if core.next_id >= core.id_end {
        let start = client
            .query_one(&st.next_ids, &[])
            .await
            .map_err(|e| format!("cannot allocate order ids: {e}"))?
            .get::<_, i64>(0)
            .unsigned_abs();
        core.next_id = start;
        core.id_end = start + 1000;
    }
    let id = core.next_id;
    core.next_id += 1;
    Ok(id)
}
