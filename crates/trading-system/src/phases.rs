//! Where an order's time goes: one lock-free histogram per phase of its path
//! through the service, exposed on `/metrics` as `order_phase_seconds{phase=...}`,
//! and the size of the sequencer's batches as `sequencer_batch_size`.
//!
//! Per request: `queue` (waiting for the sequencer to take it) and `sequenced`
//! (from queueing to the answer, as the handler sees it). Per batch: `market_lock`
//! (waiting for this instance's market), `begin`, `lock_wait` (the symbols'
//! advisory locks), `catch_up` (reading and applying other instances' log entries;
//! for a speculative batch, checking that there are none),
//! `match` (risk checks, matching, id allocation), `write`, `commit`, `publish`
//! (Redis, batches with fills) and `batch` (all of them). Pipelined statements are timed by when each
//! one's answer arrived, so a lock wait shows as `lock_wait`, not as `catch_up`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::BUCKETS;

/// A phase of an order's path (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Queued until the sequencer took the request into a batch.
    Queue,
    /// From queueing to the answer, as the request handler sees it.
    Sequenced,
    /// The batch waiting for this instance's market (readers hold it while catching up).
    MarketLock,
    /// `BEGIN`'s answer (one round trip when nothing is queued before it).
    Begin,
    /// The advisory locks of the batch's symbols.
    LockWait,
    /// Reading and applying other instances' log entries (speculative batches:
    /// checking that there are none).
    CatchUp,
    /// Risk checks, matching and order id allocation.
    Match,
    /// The batch's write statement.
    Write,
    /// The `COMMIT`.
    Commit,
    /// Publishing the batch's fills to Redis (batches with fills only).
    Publish,
    /// The whole batch, from taking it to answering it.
    Batch,
}

impl Phase {
    /// Every phase, in path order.
    pub const ALL: [Phase; 11] = [
        Phase::Queue,
        Phase::Sequenced,
        Phase::MarketLock,
        Phase::Begin,
        Phase::LockWait,
        Phase::CatchUp,
        Phase::Match,
        Phase::Write,
        Phase::Commit,
        Phase::Publish,
        Phase::Batch,
    ];

    /// The `phase` label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::Sequenced => "sequenced",
            Phase::MarketLock => "market_lock",
            Phase::Begin => "begin",
            Phase::LockWait => "lock_wait",
            Phase::CatchUp => "catch_up",
            Phase::Match => "match",
            Phase::Write => "write",
            Phase::Commit => "commit",
            Phase::Publish => "publish",
            Phase::Batch => "batch",
        }
    }
}

/// Upper bounds of the batch size histogram (the sequencer takes at most 256).
pub const SIZE_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A histogram recorded without a lock: one counter per bucket (not cumulative:
/// made cumulative when rendered), the count and the sum.
#[derive(Debug)]
struct Atomic<const N: usize> {
    counts: [AtomicU64; N],
    over: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Default for Atomic<N> {
    fn default() -> Self {
        Atomic {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Atomic<N> {
    fn record(&self, bucket: Option<usize>, amount: u64) {
        match bucket {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(amount, Ordering::Relaxed);
    }

    /// Cumulative counts per bound, then the total.
    fn cumulative(&self) -> ([u64; N], u64) {
        let mut out = [0; N];
        let mut running = 0;
        for (i, c) in self.counts.iter().enumerate() {
            running += c.load(Ordering::Relaxed);
            out[i] = running;
        }
        (out, running + self.over.load(Ordering::Relaxed))
    }
}

/// The phase histograms and the batch sizes.
#[derive(Debug, Default)]
pub struct Phases {
    phases: [Atomic<{ BUCKETS.len() }>; Phase::ALL.len()],
    sizes: Atomic<{ SIZE_BUCKETS.len() }>,
}

impl Phases {
    /// Records `elapsed` in `phase`.
    pub fn observe(&self, phase: Phase, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| seconds <= *b);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.phases[phase as usize].record(bucket, nanos);
    }

    /// Records a batch of `size` requests.
    pub fn batch_size(&self, size: usize) {
        let size = size as u64;
        self.sizes
            .record(SIZE_BUCKETS.iter().position(|b| size <= *b), size);
    }

    /// Appends the Prometheus text of both families to `out`.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP order_phase_seconds Time spent per phase of an order's path.\n");
        out.push_str("# TYPE order_phase_seconds histogram\n");
        for phase in Phase::ALL {
            let h = &self.phases[phase as usize];
            let (cumulative, count) = h.cumulative();
            let labels = format!("phase=\"{}\"", phase.name());
            for (b, n) in BUCKETS.iter().zip(cumulative) {
                let _ = writeln!(out, "order_phase_seconds_bucket{{{labels},le=\"{b}\"}} {n}");
            }
            let sum = h.sum.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "order_phase_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "order_phase_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "order_phase_seconds_count{{{labels}}} {count}");
        }
        out.push_str("# HELP sequencer_batch_size Requests per sequenced batch.\n");
        out.push_str("# TYPE sequencer_batch_size histogram\n");
        let (cumulative, count) = self.sizes.cumulative();
        for (b, n) in SIZE_BUCKETS.iter().zip(cumulative) {
            let _ = writeln!(out, "sequencer_batch_size_bucket{{le=\"{b}\"}} {n}");
        }
        let sum = self.sizes.sum.load(Ordering::Relaxed);
        let _ = writeln!(out, "sequencer_batch_size_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "sequencer_batch_size_sum {sum}");
        let _ = writeln!(out, "sequencer_batch_size_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_sum_and_count() {
        let p = Phases::default();
        p.observe(Phase::Write, Duration::from_micros(300));
        p.observe(Phase::Write, Duration::from_micros(900));
        p.observe(Phase::Write, Duration::from_secs(9));
        p.batch_size(1);
        p.batch_size(3);
        let mut text = String::new();
        p.render(&mut text);
        let line = |s: &str| text.lines().any(|l| l == s);
        assert!(
            line("order_phase_seconds_bucket{phase=\"write\",le=\"0.00025\"} 0"),
            "{text}"
        );
        assert!(line(
            "order_phase_seconds_bucket{phase=\"write\",le=\"0.0005\"} 1"
        ));
        assert!(line("order_phase_seconds_bucket{phase=\"write\",le=\"0.001\"} 2"));
        assert!(line("order_phase_seconds_bucket{phase=\"write\",le=\"2.5\"} 2"));
        assert!(line("order_phase_seconds_bucket{phase=\"write\",le=\"+Inf\"} 3"));
        assert!(line("order_phase_seconds_sum{phase=\"write\"} 9.0012"));
        assert!(line("order_phase_seconds_count{phase=\"queue\"} 0"));
        assert!(line("sequencer_batch_size_bucket{le=\"2\"} 1"));
        assert!(line("sequencer_batch_size_bucket{le=\"4\"} 2"));
        assert!(line("sequencer_batch_size_sum 4"));
    }
}
