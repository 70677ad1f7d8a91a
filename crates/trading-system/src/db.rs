//! Postgres access: connections, migrations, persistence writer and restore.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, RwLock};
use tokio_postgres::{Client, NoTls, Statement};
use tracing::{error, info, warn};

/// Embedded, ordered schema migrations: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "init", include_str!("../migrations/0001_init.sql"))];

/// Advisory lock key serialising migrations across instances ("tsmigr" in ASCII).
pub const MIGRATION_LOCK_KEY: i64 = 0x7473_6d69_6772;

/// Opens one connection and spawns its driver task.
///
/// # Errors
/// Connection failure or timeout (5 s).
pub async fn connect(url: &str) -> Result<Client, String> {
    let fut = tokio_postgres::connect(url, NoTls);
    let (client, conn) = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "timed out connecting to Postgres".to_owned())?
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// A shared client that transparently reconnects once the old one closed.
#[derive(Debug)]
pub struct Pg {
    url: String,
    client: RwLock<Arc<Client>>,
}

impl Pg {
    /// Wraps an open client.
    #[must_use]
    pub fn new(url: String, client: Client) -> Self {
        Pg {
            url,
            client: RwLock::new(Arc::new(client)),
        }
    }

    /// The current client, reconnecting if needed.
    ///
    /// # Errors
    /// Reconnection failure.
    pub async fn get(&self) -> Result<Arc<Client>, String> {
        let c = self.client.read().await.clone();
        if !c.is_closed() {
            return Ok(c);
        }
        let mut w = self.client.write().await;
        if w.is_closed() {
            *w = Arc::new(connect(&self.url).await?);
        }
        Ok(w.clone())
    }
}

/// Applies pending migrations under a session-level advisory lock, so two
/// instances starting at once apply each migration exactly once.
///
/// # Errors
/// Any database error, as text.
pub async fn migrate(client: &mut Client) -> Result<Vec<i64>, String> {
    let e = |ctx: &str| {
        let ctx = ctx.to_owned();
        move |err: tokio_postgres::Error| format!("migration: {ctx}: {err}")
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(e("advisory lock"))?;
    let result = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(e("create schema_migrations"))?;
        let applied: Vec<i64> = client
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(e("read schema_migrations"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut newly = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let tx = client.transaction().await.map_err(e("begin"))?;
            tx.batch_execute(sql).await.map_err(e(name))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(e("record version"))?;
            tx.commit().await.map_err(e("commit"))?;
            info!(version, name, "applied migration");
            newly.push(*version);
        }
        Ok::<_, String>(newly)
    }
    .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    if let Err(err) = unlock {
        warn!(error = %err, "failed to release migration lock");
    }
    result
}

/// An order row as persisted.
#[derive(Debug, Clone)]
pub struct OrderRow {
    /// Id.
    pub id: i64,
    /// Optional client-supplied id.
    pub client_id: Option<String>,
    /// Account.
    pub account: String,
    /// Symbol.
    pub symbol: String,
    /// `buy` / `sell`.
    pub side: String,
    /// `limit` / `market`.
    pub order_type: String,
    /// Limit price.
    pub price: Option<i64>,
    /// Original quantity.
    pub qty: i64,
    /// Filled quantity.
    pub filled: i64,
    /// Status name.
    pub status: String,
}

/// A fill row as persisted.
#[derive(Debug, Clone)]
pub struct FillRow {
    /// Taker order id.
    pub taker: i64,
    /// Maker order id.
    pub maker: i64,
    /// Taker side.
    pub taker_side: &'static str,
    /// Price.
    pub price: i64,
    /// Quantity.
    pub qty: i64,
    /// Maker's remaining quantity after the fill.
    pub maker_remaining: i64,
}

/// One unit of work for the writer.
#[derive(Debug)]
pub enum Write {
    /// A new order and the fills it produced.
    Order {
        /// The order.
        order: OrderRow,
        /// Its fills.
        fills: Vec<FillRow>,
    },
    /// A user cancel.
    Cancel {
        /// Order id.
        id: i64,
    },
    /// No-op; acknowledged once every earlier write has been processed.
    Barrier,
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Handle used by request handlers to queue writes in engine order.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write.fmt(f)
    }
}

/// A pending write; await [`Pending::wait`] for its durable completion.
#[derive(Debug)]
pub struct Pending(Result<oneshot::Receiver<Result<(), String>>, String>);

impl Pending {
    /// Waits until the write is committed (and published to Redis).
    ///
    /// # Errors
    /// The persistence error, as text.
    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            Ok(rx) => rx
                .await
                .unwrap_or_else(|_| Err("persistence writer stopped".to_owned())),
            Err(e) => Err(e),
        }
    }
}

impl Writer {
    /// Queues a write without waiting. Call while holding the engine lock so that
    /// writes reach the database in engine order.
    #[must_use]
    pub fn enqueue(&self, write: Write) -> Pending {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { write, reply }) {
            Ok(()) => Pending(Ok(rx)),
            Err(mpsc::error::TrySendError::Full(_)) => Pending(Err("persistence queue is full".to_owned())),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Pending(Err("persistence writer stopped".to_owned()))
            }
        }
    }
}

/// Starts the single writer task. It drains the queue in batches, writing each
/// batch in one transaction (group commit), then publishes fills and last
/// prices to Redis, then acknowledges the batch.
///
/// When a batch cannot be committed, `stale` is set: the in-memory books then
/// contain matches that Postgres does not, and must be rebuilt from Postgres.
#[must_use]
pub fn spawn_writer(
    url: String,
    client: Client,
    redis: Option<crate::redis_pub::RedisPub>,
    stale: Arc<AtomicBool>,
) -> Writer {
    let (tx, mut rx) = mpsc::channel::<Job>(65_536);
    tokio::spawn(async move {
        let mut client = Some(client);
        let mut stmts: Option<Stmts> = None;
        let mut batch: Vec<Job> = Vec::with_capacity(256);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let mut result = Err(String::new());
            for attempt in 0..3 {
                if client.as_ref().is_none_or(Client::is_closed) {
                    match connect(&url).await {
                        Ok(c) => {
                            client = Some(c);
                            stmts = None;
                        }
                        Err(e) => {
                            result = Err(e);
                            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                            continue;
                        }
                    }
                }
                let Some(c) = client.as_mut() else { continue };
                result = write_batch(c, &mut stmts, &batch).await;
                match &result {
                    Ok(()) => break,
                    Err(e) => {
                        error!(error = %e, attempt, "persisting batch failed");
                        if !c.is_closed() {
                            // A data error will not fix itself by retrying.
                            break;
                        }
                    }
                }
            }
            if result.is_err() {
                stale.store(true, Ordering::SeqCst);
            } else {
                if let Some(r) = &redis {
                    r.publish(&batch_writes(&batch)).await;
                }
            }
            for job in batch.drain(..) {
                let _ = job.reply.send(result.clone());
            }
        }
    });
    Writer { tx }
}

fn batch_writes(batch: &[Job]) -> Vec<&Write> {
    batch.iter().map(|j| &j.write).collect()
}

/// Statements the writer prepares once per connection.
struct Stmts {
    ins_order: Statement,
    ins_fill: Statement,
    upd_maker: Statement,
    cancel: Statement,
}

async fn prepare(client: &Client) -> Result<Stmts, tokio_postgres::Error> {
    Ok(Stmts {
        ins_order: client
            .prepare(
                "INSERT INTO orders (id, client_id, account, symbol, side, order_type, price, qty, filled, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .await?,
        ins_fill: client
            .prepare(
                "INSERT INTO fills (symbol, taker_order_id, maker_order_id, taker_side, price, qty)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?,
        upd_maker: client
            .prepare(
                "UPDATE orders SET filled = filled + $2,
                    status = CASE WHEN $3::BIGINT = 0 THEN 'filled' ELSE 'partially_filled' END,
                    updated_at = now()
                 WHERE id = $1",
            )
            .await?,
        cancel: client
            .prepare("UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = $1")
            .await?,
    })
}

async fn write_batch(client: &mut Client, stmts: &mut Option<Stmts>, batch: &[Job]) -> Result<(), String> {
    let map = |e: tokio_postgres::Error| format!("database error: {e}");
    if stmts.is_none() {
        *stmts = Some(prepare(client).await.map_err(map)?);
    }
    let Some(Stmts {
        ins_order,
        ins_fill,
        upd_maker,
        cancel,
    }) = stmts.as_ref()
    else {
        return Err("statements not prepared".to_owned());
    };
    let tx = client.transaction().await.map_err(map)?;
    for job in batch {
        match &job.write {
            Write::Order { order: o, fills } => {
                tx.execute(
                    ins_order,
                    &[
                        &o.id,
                        &o.client_id,
                        &o.account,
                        &o.symbol,
                        &o.side,
                        &o.order_type,
                        &o.price,
                        &o.qty,
                        &o.filled,
                        &o.status,
                    ],
                )
                .await
                .map_err(map)?;
                for f in fills {
                    tx.execute(
                        ins_fill,
                        &[&o.symbol, &f.taker, &f.maker, &f.taker_side, &f.price, &f.qty],
                    )
                    .await
                    .map_err(map)?;
                    tx.execute(upd_maker, &[&f.maker, &f.qty, &f.maker_remaining])
                        .await
                        .map_err(map)?;
                }
            }
            Write::Cancel { id } => {
                tx.execute(cancel, &[id]).await.map_err(map)?;
            }
            Write::Barrier => {}
        }
    }
    tx.commit().await.map_err(map)
}

/// Reads one order by id.
///
/// # Errors
/// Database errors, as text.
pub async fn get_order(client: &Client, id: i64) -> Result<Option<OrderRow>, String> {
    let row = client
        .query_opt(
            "SELECT id, client_id, account, symbol, side, order_type, price, qty, filled, status
             FROM orders WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(|e| format!("database error: {e}"))?;
    Ok(row.as_ref().map(order_row))
}

/// An `OrderRow` from a row selected as `id, client_id, account, symbol, side,
/// order_type, price, qty, filled, status`.
fn order_row(r: &tokio_postgres::Row) -> OrderRow {
    OrderRow {
        id: r.get(0),
        client_id: r.get(1),
        account: r.get(2),
        symbol: r.get(3),
        side: r.get(4),
        order_type: r.get(5),
        price: r.get(6),
        qty: r.get(7),
        filled: r.get(8),
        status: r.get(9),
    }
}

/// Reserves a block of 1000 order ids: returns `start` (ids `start..start+1000`).
///
/// # Errors
/// Database errors, as text.
pub async fn next_id_block(client: &Client) -> Result<i64, String> {
    let row = client
        .query_one("SELECT nextval('order_id_blocks')", &[])
        .await
        .map_err(|e| format!("cannot allocate order ids: {e}"))?;
    Ok(row.get(0))
}

/// Open orders in time priority.
///
/// # Errors
/// Database errors, as text.
pub async fn open_orders(client: &Client) -> Result<Vec<OrderRow>, String> {
    let rows = client
        .query(
            "SELECT id, client_id, account, symbol, side, order_type, price, qty, filled, status
             FROM orders WHERE status IN ('open', 'partially_filled') ORDER BY seq",
            &[],
        )
        .await
        .map_err(|e| format!("database error: {e}"))?;
    Ok(rows.iter().map(order_row).collect())
}

/// A historical fill with both accounts, for rebuilding positions.
#[derive(Debug, Clone)]
pub struct HistFill {
    /// Symbol.
    pub symbol: String,
    /// Taker side.
    pub taker_side: String,
    /// Price.
    pub price: i64,
    /// Quantity.
    pub qty: i64,
    /// Taker's account.
    pub taker_account: String,
    /// Maker's account.
    pub maker_account: String,
}

/// All fills in execution order.
///
/// # Errors
/// Database errors, as text.
pub async fn all_fills(client: &Client) -> Result<Vec<HistFill>, String> {
    let rows = client
        .query(
            "SELECT f.symbol, f.taker_side, f.price, f.qty, t.account, m.account
             FROM fills f JOIN orders t ON t.id = f.taker_order_id JOIN orders m ON m.id = f.maker_order_id
             ORDER BY f.id",
            &[],
        )
        .await
        .map_err(|e| format!("database error: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| HistFill {
            symbol: r.get(0),
            taker_side: r.get(1),
            price: r.get(2),
            qty: r.get(3),
            taker_account: r.get(4),
            maker_account: r.get(5),
        })
        .collect())
}
