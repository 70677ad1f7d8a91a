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
//!   `orders_rejected_total`, and where an order's time goes: see [`phases`]).
//! * `POST /orders` – `{"symbol","side":"buy|sell","type":"limit|market","price"?,"qty","client_id"?,"account"?}`
//!   → 201 with the order and its fills; 400 malformed, 422 risk rejection (with `"rule"`).
//! * `GET /orders/{id}`, `DELETE /orders/{id}` (404 unknown, 409 not open).
//! * `GET /book/{symbol}?depth=N` – aggregated levels.
//! * `GET /positions` – per account and symbol, average-cost P&L.
//!
//! Errors are always JSON: `{"error": "..."}`.
//!
//! ## Consistency (one market across instances)
//! Several instances (blue and green) share one Postgres and serve one market.
//! Every change to a book is an entry of one ordered log in Postgres
//! (`order_log`). The [`sequencer`] of each instance takes queued requests as a
//! batch and, in one transaction, locks the batch's symbols (advisory locks),
//! applies the entries other instances appended since it last looked, risk-checks
//! and matches each request, appends its orders, fills and log entries, and commits;
//! then it publishes the fills to Redis and answers. While no other instance has
//! written lately, a batch is matched first on the books as last seen, and its
//! transaction checks under the locks that no entry was appended since (else
//! Postgres refuses it, and the batch is undone and run again the first way): one
//! round trip instead of two. A request is answered only after its write committed. Reads of books and positions first apply the entries
//! they have not seen. On start-up (and after a failed write), the [`market`] is
//! built from one consistent Postgres snapshot: open orders in their original
//! priority, positions from the fills, and the log position per symbol.
//!
//! ## Configuration and fault injection
//! Environment only: see [`config`]. Fault injection for deployment tests
//! (`TS_FAULT_ERROR_RATE`, `TS_FAULT_LATENCY_MS`, `TS_FAULT_UNHEALTHY`,
//! `TS_FAULT_UNHEALTHY_AFTER`) is
//! documented in [`fault`]; it is off unless set.

pub mod api;
pub mod batch;
pub mod config;
pub mod db;
pub mod fault;
pub mod market;
pub mod metrics;
pub mod phases;
pub mod redis_pub;
pub mod sequencer;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, MutexGuard};
use tracing::{info, warn};
use trading_core::RiskChecker;

pub use config::{Config, ConfigError};

use crate::api::ApiError;
use crate::db::Pg;
use crate::fault::Faults;
use crate::market::Core;
use crate::metrics::Metrics;
use crate::redis_pub::RedisPub;
use crate::sequencer::Sequencer;

/// Shared application state.
#[derive(Debug)]
pub struct AppState {
    /// This instance's market (books, positions, open exposure).
    pub core: Arc<Mutex<Core>>,
    /// Read-side Postgres client.
    pub pg: Pg,
    /// Postgres URL (rebuilds).
    url: String,
    /// Redis publisher.
    pub redis: RedisPub,
    /// The only writer of the market.
    pub sequencer: Sequencer,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Set when the market may differ from Postgres: it is rebuilt before next use.
    pub stale: Arc<AtomicBool>,
    /// Fault injection.
    pub faults: Arc<Faults>,
}

impl AppState {
    /// The market, after applying every log entry other instances committed for
    /// `symbol` (`None`: for every symbol), so a read here sees every order
    /// accepted anywhere before it started.
    ///
    /// # Errors
    /// 503 while Postgres is unavailable.
    pub async fn caught_up(&self, symbol: Option<&str>) -> Result<MutexGuard<'_, Core>, ApiError> {
        let unavailable = |e: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e);
        let (symbols, after) = {
            let core = self.core.lock().await;
            match symbol {
                Some(s) => (vec![s.to_owned()], vec![core.applied(s)]),
                None => core.applied_all(),
            }
        };
        let client = self.pg.get().await.map_err(unavailable)?;
        let entries = store::read_since(&client, &symbols, &after, symbol.is_none())
            .await
            .map_err(unavailable)?;
        let mut core = self.core.lock().await;
        store::rebuild_if_stale(&mut core, &self.url, &self.stale, &self.metrics)
            .await
            .map_err(unavailable)?;
        match core.replay(&entries) {
            Ok(n) => {
                self.metrics.replayed.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                warn!(error = %e, "replaying the order log diverged; rebuilding from postgres");
                self.stale.store(true, Ordering::SeqCst);
                store::rebuild_if_stale(&mut core, &self.url, &self.stale, &self.metrics)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(core)
    }
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
/// migrations and builds the market from Postgres.
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

    let core = Arc::new(Mutex::new(store::snapshot(&url).await?));
    let stale = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::default());
    let sequencer = sequencer::spawn(
        sequencer::Context {
            url: url.clone(),
            core: core.clone(),
            redis: Some(redis.clone()),
            risk: RiskChecker::new(config.risk),
            stale: stale.clone(),
            origin: origin(config),
            metrics: metrics.clone(),
        },
        write,
    );
    Ok(Arc::new(AppState {
        core,
        pg: Pg::new(url.clone(), read),
        url,
        redis,
        sequencer,
        metrics,
        stale,
        faults: Arc::new(Faults::new(config.fault)),
    }))
}

/// A name for this running instance in the order log: listen address, process id
/// and start time.
fn origin(config: &Config) -> String {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{}/{}/{started}", config.bind_addr, std::process::id())
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
