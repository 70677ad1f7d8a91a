//! Redis side effects: `SET last_price:{symbol}` and `XADD fills` per fill.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tracing::warn;

use crate::db::FillRow;

/// Redis stream receiving one entry per fill.
pub const FILLS_STREAM: &str = "fills";

/// Publishes fills and last prices.
#[derive(Clone)]
pub struct RedisPub {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisPub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisPub")
    }
}

impl RedisPub {
    /// Wraps a connection manager.
    #[must_use]
    pub fn new(conn: ConnectionManager) -> Self {
        RedisPub { conn }
    }

    /// Publishes the fills of a committed batch (with their symbols) in one
    /// pipelined round trip. Failures are logged, never propagated: Postgres is the
    /// system of record.
    pub async fn publish(&self, fills: &[(String, FillRow)]) {
        if fills.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (symbol, f) in fills {
            pipe.cmd("XADD")
                .arg(FILLS_STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(100_000)
                .arg("*")
                .arg("symbol")
                .arg(symbol)
                .arg("price")
                .arg(f.price)
                .arg("qty")
                .arg(f.qty)
                .arg("taker_order_id")
                .arg(f.taker)
                .arg("maker_order_id")
                .arg(f.maker)
                .arg("taker_side")
                .arg(f.taker_side)
                .ignore();
            pipe.cmd("SET")
                .arg(format!("last_price:{symbol}"))
                .arg(f.price)
                .ignore();
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(Duration::from_millis(500), pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "redis publish failed"),
            Err(_) => warn!("redis publish timed out"),
        }
    }

    /// `PING`, with a timeout.
    ///
    /// # Errors
    /// The failure, as text.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".to_owned()),
        }
    }
}
