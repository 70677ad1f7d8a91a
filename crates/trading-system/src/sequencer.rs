//! The sequencer: the one task per instance that changes the market.
//!
//! Requests queue [`Work`]; the task takes what is queued (up to 256 items) as one
//! batch and, in one Postgres transaction: locks the batch's symbols, makes sure the
//! market holds every log entry other instances appended for them, risk-checks and
//! matches each item in order, appends its orders, fills and log entries, commits
//! (one fsync for the whole batch), then publishes the fills to Redis and answers.
//! While no other instance writes, a batch is matched speculatively and all of that
//! is one round trip to Postgres; see `steps` for both ways. The market's lock is
//! held for the whole batch, so readers of this instance never see matches that
//! might still roll back.

mod steps;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::Client;
use tracing::error;
use trading_core::{OrderType, Qty, RiskChecker, RiskError, Side};

use crate::db::{self, FillRow, OrderRow};
use crate::market::Core;
use crate::metrics::Metrics;
use crate::phases::Phase;
use crate::redis_pub::RedisPub;
use crate::store::{self, Stmts};

/// A validated order to place.
#[derive(Debug, Clone)]
pub struct Place {
    /// Symbol.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderType,
    /// Lots.
    pub qty: Qty,
    /// Client order id.
    pub client_id: Option<String>,
    /// Owner.
    pub account: String,
}

/// One item for the sequencer.
#[derive(Debug, Clone)]
pub enum Work {
    /// Place an order.
    Place(Place),
    /// Cancel a resting order of `symbol`.
    Cancel {
        /// Order id.
        id: u64,
        /// Its symbol (from its row).
        symbol: String,
    },
}

impl Work {
    fn symbol(&self) -> &str {
        match self {
            Work::Place(p) => &p.symbol,
            Work::Cancel { symbol, .. } => symbol,
        }
    }
}

/// What became of a [`Work`] item once its batch committed.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Accepted: the order as of its own execution, and its fills.
    Placed {
        /// The order row.
        row: OrderRow,
        /// Lots left resting.
        remaining: i64,
        /// Its fills, in execution order.
        fills: Vec<FillRow>,
    },
    /// Refused by the risk checks (nothing written).
    Rejected(RiskError),
    /// Cancelled.
    Cancelled,
    /// Not resting (filled or cancelled meanwhile).
    NotOpen,
}

struct Job {
    work: Work,
    /// The order id, once given (kept across a retry so a batch whose commit was
    /// in fact applied can never be placed twice: the second insert conflicts).
    id: Option<u64>,
    reply: oneshot::Sender<Result<Outcome, String>>,
    queued: Instant,
}

/// Handle to queue work.
#[derive(Debug, Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.work.fmt(f)
    }
}

impl Sequencer {
    /// Queues `work` and waits until its batch committed.
    ///
    /// # Errors
    /// Queue full, or the batch could not be committed (nothing of it happened).
    pub async fn run(&self, work: Work) -> Result<Outcome, String> {
        let (reply, rx) = oneshot::channel();
        let queued = Instant::now();
        let job = Job {
            work,
            id: None,
            reply,
            queued,
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "order queue is full".to_owned(),
            mpsc::error::TrySendError::Closed(_) => "sequencer stopped".to_owned(),
        })?;
        let outcome = rx.await.unwrap_or_else(|_| Err("sequencer stopped".to_owned()));
        self.metrics.phases.observe(Phase::Sequenced, queued.elapsed());
        outcome
    }
}

/// What the sequencer task needs.
#[derive(Debug)]
pub struct Context {
    /// Postgres URL (reconnects, rebuilds).
    pub url: String,
    /// The market, shared with the readers.
    pub core: Arc<Mutex<Core>>,
    /// Publisher of committed fills.
    pub redis: Option<RedisPub>,
    /// Pre-trade limits.
    pub risk: RiskChecker,
    /// Set when the market may differ from Postgres.
    pub stale: Arc<AtomicBool>,
    /// This instance's name in the log.
    pub origin: String,
    /// Counters (replayed entries, rebuilds).
    pub metrics: Arc<Metrics>,
}

/// Starts the sequencer task on its own connection.
#[must_use]
pub fn spawn(ctx: Context, client: Client) -> Sequencer {
    let (tx, mut rx) = mpsc::channel::<Job>(65_536);
    let metrics = ctx.metrics.clone();
    tokio::spawn(async move {
        let mut conn = Conn {
            client: Some(client),
            stmts: None,
        };
        let mut batch: Vec<Job> = Vec::with_capacity(256);
        let mut mode = steps::Mode::default();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let taken = Instant::now();
            let phases = &ctx.metrics.phases;
            phases.batch_size(batch.len());
            for job in &batch {
                phases.observe(Phase::Queue, taken.saturating_duration_since(job.queued));
            }
            let result = run_batch(&ctx, &mut mode, &mut conn, &mut batch).await;
            phases.observe(Phase::Batch, taken.elapsed());
            match result {
                Ok(outcomes) => {
                    for (job, outcome) in batch.drain(..).zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    });
    Sequencer { tx, metrics }
}

struct Conn {
    client: Option<Client>,
    stmts: Option<Stmts>,
}

impl Conn {
    async fn ready(&mut self, url: &str) -> Result<(&mut Client, &Stmts), String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(db::connect(url).await?);
            self.stmts = None;
        }
        let client = self.client.as_mut().ok_or("no connection")?;
        if self.stmts.is_none() {
            self.stmts = Some(
                store::prepare(client)
                    .await
                    .map_err(|e| format!("database error: {e}"))?,
            );
        }
        Ok((client, self.stmts.as_ref().ok_or("no statements")?))
    }
}

/// Runs one batch, retrying once on a new connection when the old one broke.
async fn run_batch(
    ctx: &Context,
    mode: &mut steps::Mode,
    conn: &mut Conn,
    jobs: &mut [Job],
) -> Result<Vec<Outcome>, String> {
    let waited = Instant::now();
    let mut core = ctx.core.lock().await;
    ctx.metrics.phases.observe(Phase::MarketLock, waited.elapsed());
    let mut last = String::new();
    for attempt in 0..2u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Err(e) = store::rebuild_if_stale(&mut core, &ctx.url, &ctx.stale, &ctx.metrics).await {
            last = e;
            continue;
        }
        let (client, stmts) = match conn.ready(&ctx.url).await {
            Ok(c) => c,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match steps::sequence(ctx, mode, &mut core, client, stmts, jobs).await {
            Ok((outcomes, batch)) => {
                drop(core);
                if let (Some(r), false) = (&ctx.redis, batch.fills.is_empty()) {
                    let start = Instant::now();
                    r.publish(&batch.fills).await;
                    ctx.metrics.phases.observe(Phase::Publish, start.elapsed());
                }
                return Ok(outcomes);
            }
            Err(Failed { error, retry }) => {
                // The market applied some of the batch; Postgres has none of it.
                store::rollback(client).await;
                ctx.stale.store(true, Ordering::SeqCst);
                error!(error = %error, attempt, "sequencing a batch failed");
                let broken = conn.client.as_ref().is_none_or(Client::is_closed);
                last = error;
                if !(broken || retry) {
                    break; // a data error will not fix itself by retrying
                }
            }
        }
    }
    Err(last)
}

/// Why a batch failed, and whether running it again (on a market rebuilt from
/// Postgres) can succeed.
struct Failed {
    error: String,
    retry: bool,
}

impl From<String> for Failed {
    fn from(error: String) -> Self {
        Failed { error, retry: false }
    }
}
