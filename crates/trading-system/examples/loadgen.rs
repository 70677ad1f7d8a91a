//! Fixed-rate load generator for `POST /orders` (raw HTTP/1.1 with keep-alive).
//!
//! ```text
//! cargo run --release -p trading-system --example loadgen -- [ADDR] [RATE] [SECONDS] [CONNECTIONS]
//! # defaults: 127.0.0.1:8080 500 10 8
//! ```
//!
//! Requests are scheduled at fixed intervals; latency is measured from the
//! *scheduled* send time (so a stalled server is not hidden by the client
//! backing off). Prints p50/p90/p99/max latency in ms and the achieved rate.
//! Only loopback / local targets are intended.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Outcome {
    latencies: Vec<Duration>,
    ok: u64,
    errors: u64,
}

async fn connect(addr: SocketAddr) -> std::io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(BufReader::new(s))
}

/// Sends one request on the connection; returns the status code.
async fn request(conn: &mut BufReader<TcpStream>, addr: SocketAddr, body: &str) -> std::io::Result<u16> {
    let req = format!(
        "POST /orders HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

async fn worker(
    addr: SocketAddr,
    worker: u64,
    workers: u64,
    total: u64,
    rate: f64,
    t0: Instant,
    symbol: String,
) -> Outcome {
    let mut out = Outcome {
        latencies: Vec::with_capacity((total / workers + 1) as usize),
        ok: 0,
        errors: 0,
    };
    let mut conn = None;
    let mut k = worker;
    while k < total {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let side = if k.is_multiple_of(2) { "buy" } else { "sell" };
        let price = 10_000 + (k * 7 % 11) as i64 - 5;
        let qty = 1 + k % 5;
        let body = format!(
            r#"{{"symbol":"{symbol}","side":"{side}","type":"limit","price":{price},"qty":{qty},"account":"loadgen"}}"#
        );
        if conn.is_none() {
            conn = connect(addr).await.ok();
        }
        let result = match conn.as_mut() {
            Some(c) => tokio::time::timeout(Duration::from_secs(10), request(c, addr, &body))
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("timeout"))),
            None => Err(std::io::Error::other("connect failed")),
        };
        out.latencies.push(due.elapsed());
        match result {
            Ok(s) if (200..300).contains(&s) => out.ok += 1,
            Ok(_) => out.errors += 1,
            Err(_) => {
                out.errors += 1;
                conn = None;
            }
        }
        k += workers;
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .map_or("127.0.0.1:8080", String::as_str)
        .parse()
        .unwrap_or_else(|e| {
            eprintln!("loadgen: bad address: {e}");
            std::process::exit(2)
        });
    let num = |i: usize, default: f64| -> f64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .filter(|v: &f64| *v > 0.0)
            .unwrap_or(default)
    };
    let rate = num(1, 500.0);
    let seconds = num(2, 10.0).min(3600.0);
    let workers = num(3, 8.0) as u64;
    let total = (rate * seconds).round() as u64;
    let symbol = format!("LG{}", std::process::id());
    println!("loadgen: {total} x POST /orders to {addr} at {rate} req/s over {seconds}s, {workers} connections, symbol {symbol}");

    let t0 = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(worker(addr, w, workers, total, rate, t0, symbol.clone())))
        .collect();
    let mut latencies = Vec::with_capacity(total as usize);
    let (mut ok, mut errors) = (0, 0);
    for h in handles {
        if let Ok(o) = h.await {
            latencies.extend(o.latencies);
            ok += o.ok;
            errors += o.errors;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "requests={} ok={ok} errors={errors} elapsed={elapsed:.2}s achieved_rate={:.1} req/s",
        latencies.len(),
        latencies.len() as f64 / elapsed
    );
    println!(
        "latency_ms p50={:.3} p90={:.3} p99={:.3} max={:.3}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
