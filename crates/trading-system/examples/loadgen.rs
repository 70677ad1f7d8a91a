//! Fixed-rate load generator for `POST /orders` (raw HTTP/1.1 with keep-alive).
//!
//! ```text
//! cargo run --release -p trading-system --example loadgen -- [ADDR] [RATE] [SECONDS] [CONNECTIONS] [--json]
//! # defaults: 127.0.0.1:8080 500 10 8
//! ```
//!
//! Requests are scheduled at fixed intervals; latency is measured from the
//! *scheduled* send time (so a stalled server is not hidden by the client
//! backing off). Prints p50/p90/p99/max latency in ms and the achieved rate;
//! with `--json`, one JSON object instead (what the pipeline's `load` and
//! `stress` stages read). Orders alternate sides around one price and are
//! spread over 64 accounts, so a long run never trips the per-account position
//! limit. Only loopback / local targets are intended.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Outcome {
    latencies: Vec<Duration>,
    ok: u64,
    /// 4xx answers (a rejected order: the generator is built not to cause any).
    client_errors: u64,
    /// 5xx answers.
    server_errors: u64,
    /// Connection failures, resets and timeouts: failures only the client sees.
    transport_errors: u64,
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
        client_errors: 0,
        server_errors: 0,
        transport_errors: 0,
    };
    let mut conn = None;
    let mut k = worker;
    while k < total {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let side = if k.is_multiple_of(2) { "buy" } else { "sell" };
        let price = 10_000 + (k * 7 % 11) as i64 - 5;
        let qty = 1 + k % 5;
        let account = k % 64;
        let body = format!(
            r#"{{"symbol":"{symbol}","side":"{side}","type":"limit","price":{price},"qty":{qty},"account":"loadgen-{account}"}}"#
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
            Ok(s) if (400..500).contains(&s) => out.client_errors += 1,
            Ok(_) => out.server_errors += 1,
            Err(_) => {
                out.transport_errors += 1;
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
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let json = raw.iter().any(|a| a == "--json");
    let args: Vec<&String> = raw.iter().filter(|a| *a != "--json").collect();
    let addr: SocketAddr = args
        .first()
        .map_or("127.0.0.1:8080", |s| s.as_str())
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
    if !json {
        println!("loadgen: {total} x POST /orders to {addr} at {rate} req/s over {seconds}s, {workers} connections, symbol {symbol}");
    }

    let t0 = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(worker(addr, w, workers, total, rate, t0, symbol.clone())))
        .collect();
    let mut latencies = Vec::with_capacity(total as usize);
    let (mut ok, mut client, mut server, mut transport) = (0, 0, 0, 0);
    for h in handles {
        if let Ok(o) = h.await {
            latencies.extend(o.latencies);
            ok += o.ok;
            client += o.client_errors;
            server += o.server_errors;
            transport += o.transport_errors;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let errors = client + server + transport;
    let (p50, p95, p99) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
    );
    let max = latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let achieved = latencies.len() as f64 / elapsed;
    if json {
        println!(
            "{{\"requests\":{},\"ok\":{ok},\"client_errors\":{client},\"server_errors\":{server},\"transport_errors\":{transport},\"elapsed_s\":{elapsed:.3},\"target_rate\":{rate},\"achieved_rate\":{achieved:.1},\"p50_ms\":{p50:.3},\"p95_ms\":{p95:.3},\"p99_ms\":{p99:.3},\"max_ms\":{max:.3}}}",
            latencies.len()
        );
        return;
    }
    println!(
        "requests={} ok={ok} errors={errors} (4xx={client} 5xx={server} transport={transport}) elapsed={elapsed:.2}s achieved_rate={achieved:.1} req/s",
        latencies.len()
    );
    println!("latency_ms p50={p50:.3} p95={p95:.3} p99={p99:.3} max={max:.3}");
    if errors > 0 {
        std::process::exit(1);
    }
}
