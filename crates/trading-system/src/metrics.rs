//! Hand-rolled Prometheus metrics (text exposition format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::phases::Phases;

/// Histogram bucket upper bounds, in seconds: fine below 10 ms, where an order's
/// answer and each of its phases fall, so quantiles read from them mean something.
pub const BUCKETS: [f64; 20] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All service metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// Orders accepted.
    pub orders: AtomicU64,
    /// Fills produced.
    pub fills: AtomicU64,
    /// Order log entries written by other instances and applied here.
    pub replayed: AtomicU64,
    /// Times the market was rebuilt from Postgres (failed write, diverging replay).
    pub rebuilds: AtomicU64,
    /// Speculative batches refused because another instance wrote their symbols first.
    pub conflicts: AtomicU64,
    /// Batches written speculatively (one round trip).
    pub speculative: AtomicU64,
    /// Batches written after locking and catching up (two round trips).
    pub locked: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    /// Time per phase of an order's path, and batch sizes.
    pub phases: Phases,
}

impl Metrics {
    /// Records one HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry((route.to_owned(), method.to_owned())).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// Records a rejected order with the rule (or reason) that rejected it.
    pub fn reject(&self, rule: &str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(rule.to_owned()).or_default() += 1;
        }
    }

    /// Renders the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    escape(route),
                    escape(method)
                );
            }
        }
        out.push_str("# HELP http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for ((route, method), h) in m.iter() {
                let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(out, "http_request_duration_seconds_count{{{labels}}} {}", h.count);
            }
        }
        let counters = [
            ("orders_total", "Orders accepted.", &self.orders),
            ("fills_total", "Fills (executions) produced.", &self.fills),
            (
                "order_log_replayed_total",
                "Order log entries of other instances applied here.",
                &self.replayed,
            ),
            (
                "market_rebuilds_total",
                "Rebuilds of the in-memory market from Postgres.",
                &self.rebuilds,
            ),
            (
                "order_log_conflicts_total",
                "Speculative batches refused (another instance wrote their symbols first) and run again locked.",
                &self.conflicts,
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP sequencer_batches_total Batches written, by way: speculative (matched, then \
             locked, checked and written in one round trip) or locked (locked and caught up first).\n\
             # TYPE sequencer_batches_total counter\n",
        );
        for (way, n) in [("speculative", &self.speculative), ("locked", &self.locked)] {
            let _ = writeln!(
                out,
                "sequencer_batches_total{{way=\"{way}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP orders_rejected_total Orders rejected, by rule.\n# TYPE orders_rejected_total counter\n",
        );
        if let Ok(m) = self.rejected.lock() {
            if m.is_empty() {
                out.push_str("orders_rejected_total 0\n");
            }
            for (rule, n) in m.iter() {
                let _ = writeln!(out, "orders_rejected_total{{rule=\"{}\"}} {n}", escape(rule));
            }
        }
        self.phases.render(&mut out);
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware recording request count and latency for every route.
pub async fn middleware(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    metrics.observe_request(&route, &method, status, elapsed);
    tracing::debug!(%method, %route, status, elapsed_ms = elapsed * 1000.0, "request");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_all_families() {
        let m = Metrics::default();
        m.observe_request("/orders", "POST", 201, 0.003);
        m.observe_request("/orders", "POST", 201, 0.2);
        m.reject("max_order_qty");
        m.orders.fetch_add(2, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("http_requests_total{route=\"/orders\",method=\"POST\",status=\"201\"} 2"));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{route=\"/orders\",method=\"POST\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{route=\"/orders\",method=\"POST\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("http_request_duration_seconds_count{route=\"/orders\",method=\"POST\"} 2"));
        assert!(text.contains("orders_total 2"));
        assert!(text.contains("fills_total 0"));
        assert!(text.contains("order_log_replayed_total 0\n"));
        assert!(text.contains("# TYPE market_rebuilds_total counter\nmarket_rebuilds_total 0\n"));
        m.speculative.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("order_log_conflicts_total 0\n"));
        assert!(text.contains("sequencer_batches_total{way=\"speculative\"} 3\n"));
        assert!(text.contains("sequencer_batches_total{way=\"locked\"} 0\n"));
        assert!(text.contains("orders_rejected_total{rule=\"max_order_qty\"} 1"));
    }

    #[test]
    fn escapes_labels() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
