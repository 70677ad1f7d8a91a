//! # trading-system
//!
//! HTTP trading service around [`trading_core`]: axum + tokio, Postgres
//! (system of record for orders and fills) and Redis (last trade price per
//! symbol in `last_price:{symbol}`, one `XADD fills` stream entry per fill).
//!
//! ## Routes
//! * `GET /health` – JSON with per-dependency status; 200 only when Postgres and
//!   Redis both answer within 1 s, 503 otherwise.
//! * `GET /metrics` – Prometheus text (`http_requests_total`,
//!   `http_request_duration_seconds`, `orders_total`, `fills_total`,
//!   `orders_rejected_total`).
//! * `POST /orders` – `{"symbol","side":"buy|sell","type":"limit|market","price"?,"qty","client_id"?,"account"?}`
//!   → 201 with the order and its fills; 400 malformed, 422 risk rejection (with `"rule"`).
//! * `GET /orders/{id}`, `DELETE /orders/{id}` (404 unknown, 409 not open).
//! * `GET /book/{symbol}?depth=N` – aggregated levels.
//! * `GET /positions` – per account and symbol, average-cost P&L.
//!
//! Errors are always JSON: `{"error": "..."}`.
//!
//! ## Consistency
//! Matching happens in memory under one lock; the resulting writes are queued, in
//! engine order, to a single writer task that group-commits them to Postgres and
//! then publishes to Redis. A request is answered only after its write
//! committed. On start-up, migrations are applied under an advisory lock, then
//! open orders are re-inserted into the books in their original priority and
//! positions are rebuilt from the fills table.
//!
//! ## Configuration and fault injection
//! Environment only: see [`config`]. Fault injection for deployment tests
//! (`TS_FAULT_ERROR_RATE`, `TS_FAULT_LATENCY_MS`, `TS_FAULT_UNHEALTHY`) is
//! documented in [`fault`]; it is off unless set.

pub mod api;
pub mod config;
pub mod db;
pub mod fault;
pub mod metrics;
pub mod redis_pub;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tracing::{info, warn};
use trading_core::{MatchingEngine, NewOrder, OrderId, OrderType, Portfolio, Price, Qty, RiskChecker, Side};

pub use config::{Config, ConfigError};

use crate::api::ApiError;
use crate::db::{Pg, Writer};
use crate::fault::Faults;
use crate::metrics::Metrics;
use crate::redis_pub::RedisPub;

/// Mutable in-memory state, guarded by one async mutex.
#[derive(Debug, Default)]
pub struct Core {
    /// Books.
    pub engine: MatchingEngine,
    /// Positions per account.
    pub accounts: HashMap<String, Portfolio>,
    /// Account of each resting order.
    pub order_accounts: HashMap<u64, Arc<str>>,
    next_id: u64,
    id_end: u64,
}

impl Core {
    /// Net position of `account` in `symbol`.
    #[must_use]
    pub fn position(&self, account: &str, symbol: &str) -> i64 {
        self.accounts.get(account).map_or(0, |p| p.net(symbol))
    }

    fn apply_fill(&mut self, account: &str, symbol: &str, side: Side, price: Price, qty: Qty) {
        if let Some(p) = self.accounts.get_mut(account) {
            p.apply_fill(symbol, side, price, qty);
        } else {
            let mut p = Portfolio::default();
            p.apply_fill(symbol, side, price, qty);
            self.accounts.insert(account.to_owned(), p);
        }
    }

    /// If a persistence failure left the books ahead of Postgres, waits for the
    /// writer to drain and rebuilds books and positions from Postgres (the system
    /// of record). Call with the core lock held.
    ///
    /// # Errors
    /// 503 while Postgres is unavailable.
    pub async fn ensure_consistent(&mut self, app: &AppState) -> Result<(), ApiError> {
        if !app.stale.load(Ordering::SeqCst) {
            return Ok(());
        }
        let unavailable = |e: String| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e);
        let _ = app.writer.enqueue(db::Write::Barrier).wait().await;
        app.stale.store(false, Ordering::SeqCst);
        let client = app.pg.get().await.map_err(|e| {
            app.stale.store(true, Ordering::SeqCst);
            unavailable(e)
        })?;
        let mut fresh = Core::default();
        if let Err(e) = restore(&client, &mut fresh).await {
            app.stale.store(true, Ordering::SeqCst);
            return Err(unavailable(e));
        }
        fresh.next_id = self.next_id;
        fresh.id_end = self.id_end;
        *self = fresh;
        warn!("in-memory state rebuilt from postgres after a persistence failure");
        Ok(())
    }

    async fn next_order_id(&mut self, app: &AppState) -> Result<u64, ApiError> {
        if self.next_id >= self.id_end {
            let client = app
                .pg
                .get()
                .await
                .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e))?;
            let start = db::next_id_block(&client)
                .await
                .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e))?;
            let start = start.unsigned_abs();
            self.next_id = start;
            self.id_end = start + 1000;
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(id)
    }
}

/// Shared application state.
#[derive(Debug)]
pub struct AppState {
    /// In-memory books and positions.
    pub core: Mutex<Core>,
    /// Read-side Postgres client.
    pub pg: Pg,
    /// Redis publisher.
    pub redis: RedisPub,
    /// Persistence queue.
    pub writer: Writer,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Risk limits.
    pub risk: RiskChecker,
    /// Set when a write failed after matching: the books must be rebuilt from
    /// Postgres before the next order is accepted.
    pub stale: Arc<AtomicBool>,
    /// Fault injection.
    pub faults: Arc<Faults>,
}

/// Builds the router (API routes get fault injection; everything gets metrics).
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/orders", axum::routing::post(api::place_order))
        .route("/orders/{id}", get(api::get_order).delete(api::cancel_order))
        .route("/book/{symbol}", get(api::get_book))
        .route("/positions", get(api::get_positions))
        .layer(from_fn_with_state(state.faults.clone(), fault::middleware));
    Router::new()
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .merge(api)
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(from_fn_with_state(state.metrics.clone(), metrics::middleware))
        .with_state(state)
}

async fn retry<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() + delay < deadline => {
                warn!(error = %e, "{what} not ready, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects to Postgres and Redis (retrying for up to 30 s), applies
/// migrations and rebuilds in-memory state.
///
/// # Errors
/// A one-line description of what failed.
pub async fn build_state(config: &Config) -> Result<Arc<AppState>, String> {
    let deadline = Duration::from_secs(30);
    let url = config.database_url.clone();
    let mut migr = retry("postgres", deadline, || db::connect(&url)).await?;
    let applied = db::migrate(&mut migr).await?;
    drop(migr);
    info!(?applied, "schema up to date");
    let read = db::connect(&url).await?;
    let write = db::connect(&url).await?;

    let redis_client =
        redis::Client::open(config.redis_url.as_str()).map_err(|e| format!("REDIS_URL: {e}"))?;
    let conn = retry("redis", deadline, || {
        let c = redis_client.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), redis::aio::ConnectionManager::new(c))
                .await
                .map_err(|_| "timed out connecting to Redis".to_owned())?
                .map_err(|e| format!("cannot connect to Redis: {e}"))
        }
    })
    .await?;
    let redis = RedisPub::new(conn);

    let mut core = Core::default();
    restore(&read, &mut core).await?;
    let stale = Arc::new(AtomicBool::new(false));
    let writer = db::spawn_writer(url.clone(), write, Some(redis.clone()), stale.clone());
    Ok(Arc::new(AppState {
        core: Mutex::new(core),
        pg: Pg::new(url, read),
        redis,
        writer,
        metrics: Arc::new(Metrics::default()),
        risk: RiskChecker::new(config.risk),
        stale,
        faults: Arc::new(Faults::new(config.fault)),
    }))
}

fn parse_side(s: &str) -> Side {
    if s == "sell" {
        Side::Sell
    } else {
        Side::Buy
    }
}

async fn restore(client: &tokio_postgres::Client, core: &mut Core) -> Result<(), String> {
    let fills = db::all_fills(client).await?;
    for f in &fills {
        let side = parse_side(&f.taker_side);
        let (price, qty) = (Price(f.price), Qty(f.qty.unsigned_abs()));
        core.apply_fill(&f.taker_account, &f.symbol, side, price, qty);
        core.apply_fill(&f.maker_account, &f.symbol, side.opposite(), price, qty);
        core.engine.set_last_trade_price(&f.symbol, Some(price));
    }
    let open = db::open_orders(client).await?;
    let mut restored = 0usize;
    for o in open {
        let Some(price) = o.price else { continue };
        let remaining = o.qty - o.filled;
        if remaining <= 0 {
            continue;
        }
        let order = NewOrder {
            id: OrderId(o.id.unsigned_abs()),
            side: parse_side(&o.side),
            kind: OrderType::Limit(Price(price)),
            qty: Qty(remaining.unsigned_abs()),
        };
        match core
            .engine
            .restore(&o.symbol, order, Qty(o.filled.unsigned_abs()))
        {
            Ok(()) => {
                core.order_accounts
                    .insert(o.id.unsigned_abs(), Arc::from(o.account.as_str()));
                restored += 1;
            }
            Err(e) => warn!(order = o.id, error = %e, "skipping open order on restore"),
        }
    }
    info!(
        fills = fills.len(),
        open_orders = restored,
        "state restored from postgres"
    );
    Ok(())
}

/// A running server (used by `main` and by in-process integration tests).
#[derive(Debug)]
pub struct Server {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Connects, migrates, restores and starts serving on `listener`.
    ///
    /// # Errors
    /// Startup failures, as one line.
    pub async fn start(config: &Config, listener: TcpListener) -> Result<Server, String> {
        let state = build_state(config).await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        info!(%addr, "listening");
        Ok(Server {
            addr,
            shutdown: Some(tx),
            handle,
        })
    }

    /// Begins a graceful shutdown: stop accepting, let in-flight requests finish.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers graceful shutdown and waits for in-flight requests to finish.
    ///
    /// # Errors
    /// Server I/O errors.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.trigger_shutdown();
        self.wait().await
    }

    /// Waits for the server to stop.
    ///
    /// # Errors
    /// Server I/O errors.
    pub async fn wait(self) -> std::io::Result<()> {
        self.handle
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Longest time [`run`] waits for in-flight requests after the shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs the service until `signal` resolves, then shuts down gracefully
/// (stops accepting, waits up to [`SHUTDOWN_GRACE`] for in-flight requests).
///
/// # Errors
/// Startup or server failures, as one line.
pub async fn run(config: Config, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
    let listener = TcpListener::bind(config.bind_addr)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", config.bind_addr))?;
    let mut server = Server::start(&config, listener).await?;
    signal.await;
    info!("shutdown signal received; draining in-flight requests");
    server.trigger_shutdown();
    match tokio::time::timeout(SHUTDOWN_GRACE, server.wait()).await {
        Ok(r) => r.map_err(|e| format!("server error: {e}"))?,
        Err(_) => {
            return Err(format!(
                "in-flight requests still running {}s after the shutdown signal; exiting",
                SHUTDOWN_GRACE.as_secs()
            ))
        }
    }
    info!("stopped");
    Ok(())
}
