//! Fault injection — a **testing aid** for deployment tests (canary analysis,
//! blue/green rollback). Everything here is OFF unless the variables are set:
//!
//! * `TS_FAULT_ERROR_RATE` — fraction (0.0–1.0) of API requests answered with
//!   `500 {"error":"injected fault"}`; `/health` and `/metrics` are never affected.
//! * `TS_FAULT_LATENCY_MS` — milliseconds of latency added to every API request.
//! * `TS_FAULT_UNHEALTHY=1` — `/health` answers 503 regardless of dependencies.
//! * `TS_FAULT_UNHEALTHY_AFTER=<seconds>` — `/health` answers 200 at first, then 503
//!   from that many seconds after start on: a colour that passes its health gate and
//!   fails later, during a bake window (the rollout's consecutive-failures trigger).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// Fault injection settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultConfig {
    /// Fraction of API requests that fail with 500.
    pub error_rate: f64,
    /// Added latency per API request, in milliseconds.
    pub latency_ms: u64,
    /// Force `/health` to 503.
    pub unhealthy: bool,
    /// Force `/health` to 503 once this long has passed since start.
    pub unhealthy_after: Option<Duration>,
}

/// Shared fault injector (config plus a tiny PRNG).
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: AtomicU64,
    started: Instant,
}

impl Faults {
    /// A new injector.
    #[must_use]
    pub fn new(config: FaultConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x1234_5678, |d| d.as_nanos() as u64)
            | 1;
        Faults {
            config,
            rng: AtomicU64::new(seed),
            started: Instant::now(),
        }
    }

    /// Whether `/health` must fail now (`unhealthy`, or `unhealthy_after` has passed).
    #[must_use]
    pub fn unhealthy(&self) -> bool {
        self.config.unhealthy
            || self
                .config
                .unhealthy_after
                .is_some_and(|after| self.started.elapsed() >= after)
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> FaultConfig {
        self.config
    }

    /// Uniform sample in [0, 1).
    fn sample(&self) -> f64 {
        let mut x = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        // splitmix64 finaliser
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Middleware applying latency and error faults to API routes.
pub async fn middleware(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let cfg = faults.config;
    if cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
    }
    if cfg.error_rate > 0.0 && faults.sample() < cfg.error_rate {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "injected fault").into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_after_turns_on_later() {
        let later = Faults::new(FaultConfig {
            unhealthy_after: Some(Duration::from_secs(3600)),
            ..FaultConfig::default()
        });
        assert!(!later.unhealthy());
        let now = Faults::new(FaultConfig {
            unhealthy_after: Some(Duration::ZERO),
            ..FaultConfig::default()
        });
        assert!(now.unhealthy());
        assert!(!Faults::new(FaultConfig::default()).unhealthy());
    }

    #[test]
    fn sample_is_in_unit_interval_and_roughly_uniform() {
        let f = Faults::new(FaultConfig::default());
        let n = 10_000;
        let below: usize = (0..n).filter(|_| f.sample() < 0.3).count();
        assert!((2_500..3_500).contains(&below), "{below}");
    }
}
