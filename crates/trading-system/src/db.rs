//! Postgres access: connections, migrations, row types and the read queries.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;
use tokio_postgres::{Client, GenericClient, NoTls};
use tracing::{info, warn};

/// Embedded, ordered schema migrations: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "order_log", include_str!("../migrations/0002_order_log.sql")),
    (
        3,
        "order_log_unmoved",
        include_str!("../migrations/0003_order_log_unmoved.sql"),
    ),
];

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

/// Open orders in time priority.
///
/// # Errors
/// Database errors, as text.
pub async fn open_orders(client: &impl GenericClient) -> Result<Vec<OrderRow>, String> {
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
pub async fn all_fills(client: &impl GenericClient) -> Result<Vec<HistFill>, String> {
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
