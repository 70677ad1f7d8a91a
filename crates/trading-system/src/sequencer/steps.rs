//! One batch, two ways.
//!
//! *Speculative* (while no other instance wrote lately): match on the books as this
//! instance last saw them, then one round trip takes the symbols' locks, checks that
//! no other instance appended to their logs since, writes and commits. If one did,
//! Postgres refuses the write (nothing of it is stored), the market undoes the batch
//! and it runs again the other way.
//!
//! *Locked*: one round trip takes the locks and reads what other instances appended,
//! which is applied; then the batch is matched, and a second round trip writes and
//! commits.
//!
//! Either way the batch is matched on books that hold every entry written before it,
//! and its entries follow them in the log: what changed is only whether that was
//! known before matching (locked) or checked after it (speculative).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use trading_core::{OrderBook, OrderIntent, OrderType};

use super::{Context, Failed, Job, Outcome, Work};
use crate::batch::{Batch, Refused};
use crate::market::{Core, OrderCommand};
use crate::phases::Phase;
use crate::store::{self, Stmts};

/// How long after seeing another instance's entries batches run locked: a speculative
/// batch refused costs a wasted round trip, so none is tried while another instance
/// is writing (a rollout with both colours live).
pub(super) const CONTENDED: Duration = Duration::from_secs(2);

/// Most resting orders the books of a speculative batch may hold: undoing needs a
/// copy of each, made before matching (about 4 us per 1,000 orders measured here),
/// which past this costs more than the round trip it saves.
pub(super) const SPECULATE_MAX_RESTING: usize = 20_000;

/// Whether the next batch is speculative.
#[derive(Debug, Default)]
pub(super) struct Mode {
    /// Entries of other instances applied here (`Metrics::replayed`) when last looked.
    seen: u64,
    /// Batches run locked until then.
    locked_until: Option<Instant>,
}

impl Mode {
    /// Speculative unless another instance's entries were applied here (by this
    /// sequencer or by a reader catching up) or a speculative batch was refused
    /// within [`CONTENDED`], or the batch's books hold more than
    /// [`SPECULATE_MAX_RESTING`] orders.
    fn speculate(&mut self, replayed: u64, resting: usize, now: Instant) -> bool {
        if replayed != self.seen {
            self.seen = replayed;
            self.locked_until = Some(now + CONTENDED);
        }
        resting <= SPECULATE_MAX_RESTING && self.locked_until.is_none_or(|until| now >= until)
    }

    /// A speculative batch was refused at `now`.
    fn refused(&mut self, now: Instant) {
        self.locked_until = Some(now + CONTENDED);
    }
}

/// Matches and writes one batch; the caller holds the market.
pub(super) async fn sequence(
    ctx: &Context,
    mode: &mut Mode,
    core: &mut Core,
    client: &Client,
    stmts: &Stmts,
    jobs: &mut [Job],
) -> Result<(Vec<Outcome>, Batch), Failed> {
    let symbols: Vec<String> = jobs
        .iter()
        .map(|j| j.work.symbol().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let after: Vec<i64> = symbols.iter().map(|s| core.applied(s)).collect();
    let run = Run {
        ctx,
        client,
        stmts,
        symbols: &symbols,
        after: &after,
    };
    let replayed = ctx.metrics.replayed.load(Ordering::Relaxed);
    let resting = symbols
        .iter()
        .filter_map(|s| core.engine.book(s))
        .map(OrderBook::len)
        .sum();
    if mode.speculate(replayed, resting, Instant::now()) {
        if let Some(done) = speculative(&run, core, jobs).await? {
            return Ok(done);
        }
        ctx.metrics.conflicts.fetch_add(1, Ordering::Relaxed);
        mode.refused(Instant::now());
    }
    locked(&run, core, jobs).await
}

/// What either way works with: the batch's symbols and the log position of each
/// the market is at.
struct Run<'a> {
    ctx: &'a Context,
    client: &'a Client,
    stmts: &'a Stmts,
    symbols: &'a [String],
    after: &'a [i64],
}

/// The speculative way; `None` when Postgres refused it (the batch is undone).
async fn speculative(
    run: &Run<'_>,
    core: &mut Core,
    jobs: &mut [Job],
) -> Result<Option<(Vec<Outcome>, Batch)>, Failed> {
    let (ctx, client, stmts) = (run.ctx, run.client, run.stmts);
    let phases = &ctx.metrics.phases;
    let matching = Instant::now();
    core.speculate();
    let (outcomes, batch) = match match_jobs(ctx, core, client, stmts, jobs).await {
        Ok(done) => done,
        Err(e) => {
            core.undo();
            return Err(e);
        }
    };
    let sent = Instant::now();
    match batch
        .write(client, stmts, &ctx.origin, Some((run.symbols, run.after)))
        .await
    {
        Ok((heads, at)) => {
            core.confirm();
            ctx.metrics.speculative.fetch_add(1, Ordering::Relaxed);
            for (symbol, seq) in heads {
                core.mark_applied(&symbol, seq);
            }
            let (begun, locked, checked) = (
                at.begun.unwrap_or(sent),
                at.locked.unwrap_or(sent),
                at.checked.unwrap_or(sent),
            );
            phases.observe(Phase::Match, sent.saturating_duration_since(matching));
            phases.observe(Phase::Begin, begun.saturating_duration_since(sent));
            phases.observe(Phase::LockWait, locked.saturating_duration_since(begun));
            phases.observe(Phase::CatchUp, checked.saturating_duration_since(locked));
            phases.observe(Phase::Write, at.written.saturating_duration_since(checked));
            phases.observe(Phase::Commit, at.committed.saturating_duration_since(at.written));
            Ok(Some((outcomes, batch)))
        }
        Err(Refused::Moved(_)) => {
            core.undo();
            Ok(None)
        }
        Err(Refused::Failed(error)) => {
            core.undo();
            Err(Failed { error, retry: false })
        }
    }
}

/// The locked way.
async fn locked(run: &Run<'_>, core: &mut Core, jobs: &mut [Job]) -> Result<(Vec<Outcome>, Batch), Failed> {
    let (ctx, client, stmts) = (run.ctx, run.client, run.stmts);
    let phases = &ctx.metrics.phases;
    let sent = Instant::now();
    let (entries, [begun, locked]) =
        store::begin_lock_and_read(client, stmts, run.symbols, run.after).await?;
    phases.observe(Phase::Begin, begun.saturating_duration_since(sent));
    phases.observe(Phase::LockWait, locked.saturating_duration_since(begun));
    // A replay that diverges from what its writer saw (say, another version
    // matching differently) is repaired by rebuilding from Postgres, then retrying.
    let caught_up = core
        .replay(&entries)
        .map_err(|error| Failed { error, retry: true })?;
    let matching = Instant::now();
    phases.observe(Phase::CatchUp, matching.saturating_duration_since(locked));
    ctx.metrics
        .replayed
        .fetch_add(caught_up as u64, Ordering::Relaxed);
    let (outcomes, batch) = match_jobs(ctx, core, client, stmts, jobs).await?;
    let sent = Instant::now();
    phases.observe(Phase::Match, sent.saturating_duration_since(matching));
    let (heads, at) = batch
        .write(client, stmts, &ctx.origin, None)
        .await
        .map_err(|e| match e {
            Refused::Moved(error) | Refused::Failed(error) => Failed { error, retry: false },
        })?;
    phases.observe(Phase::Write, at.written.saturating_duration_since(sent));
    phases.observe(Phase::Commit, at.committed.saturating_duration_since(at.written));
    for (symbol, seq) in heads {
        core.mark_applied(&symbol, seq);
    }
    ctx.metrics.locked.fetch_add(1, Ordering::Relaxed);
    Ok((outcomes, batch))
}

/// Risk-checks and matches each job in order, collecting what the batch writes.
async fn match_jobs(
    ctx: &Context,
    core: &mut Core,
    client: &Client,
    stmts: &Stmts,
    jobs: &mut [Job],
) -> Result<(Vec<Outcome>, Batch), Failed> {
    let mut batch = Batch::default();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut fills = Vec::new();
    for job in jobs.iter_mut() {
        let outcome = match &job.work {
            Work::Place(p) => {
                let intent = OrderIntent {
                    side: p.side,
                    price: match p.kind {
                        OrderType::Limit(px) => Some(px),
                        OrderType::Market => None,
                    },
                    qty: p.qty,
                };
                let exposure = core.exposure(&p.account, &p.symbol);
                let last = core.engine.last_trade_price(&p.symbol);
                if let Err(rej) = ctx.risk.check_exposure(&intent, &exposure, last) {
                    outcomes.push(Outcome::Rejected(rej));
                    continue;
                }
                let id = match job.id {
                    Some(id) => id,
                    None => store::next_order_id(core, client, stmts).await?,
                };
                job.id = Some(id);
                let cmd = OrderCommand {
                    id,
                    account: Arc::from(p.account.as_str()),
                    symbol: p.symbol.clone(),
                    side: p.side,
                    kind: p.kind,
                    qty: p.qty,
                };
                fills.clear();
                let exec = core
                    .apply_new(&cmd, &mut fills)
                    .map_err(|e| format!("order {id}: {e}"))?;
                let (row, fill_rows) = batch.add_new(&cmd, p.client_id.clone(), &exec, &fills);
                Outcome::Placed {
                    row,
                    remaining: i64::try_from(exec.remaining.0).unwrap_or(i64::MAX),
                    fills: fill_rows,
                }
            }
            Work::Cancel { id, .. } => match core.apply_cancel(*id) {
                Ok((symbol, rest)) => {
                    batch.add_cancel(*id, &symbol, rest.remaining);
                    Outcome::Cancelled
                }
                Err(_) => Outcome::NotOpen,
            },
        };
        outcomes.push(outcome);
    }
    Ok((outcomes, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speculates_unless_another_instance_wrote_lately_or_the_books_are_deep() {
        let t0 = Instant::now();
        let mut mode = Mode::default();
        assert!(mode.speculate(0, 10, t0));
        // Entries of another instance were applied (a reader caught up, say).
        assert!(!mode.speculate(3, 10, t0));
        assert!(!mode.speculate(3, 10, t0 + CONTENDED / 2));
        assert!(mode.speculate(3, 10, t0 + CONTENDED));
        // A refused batch: locked for as long again.
        let t1 = t0 + CONTENDED * 3;
        mode.refused(t1);
        assert!(!mode.speculate(3, 10, t1 + CONTENDED / 2));
        assert!(mode.speculate(3, 10, t1 + CONTENDED));
        // Books too deep to copy cheaply.
        assert!(!mode.speculate(3, SPECULATE_MAX_RESTING + 1, t1 + CONTENDED));
        assert!(mode.speculate(3, SPECULATE_MAX_RESTING, t1 + CONTENDED));
    }
}
