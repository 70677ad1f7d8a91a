//! Helpers shared by the integration tests: configuration from the environment,
//! in-process servers, a minimal HTTP client, direct Postgres and Redis access.
#![allow(dead_code)] // each test crate uses a different subset

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trading_system::{Config, Server};

pub fn urls() -> (String, String) {
    let get = |k: &str| match std::env::var(k) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{k} is not set: these integration tests need a real Postgres and Redis. \
             Set DATABASE_URL (postgres://...) and REDIS_URL (redis://...)."
        ),
    };
    (get("DATABASE_URL"), get("REDIS_URL"))
}

pub fn config(extra: &[(&str, &str)]) -> Config {
    let (db, redis) = urls();
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db),
        ("REDIS_URL".into(), redis),
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).expect("valid config")
}

pub async fn start(extra: &[(&str, &str)]) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::start(&config(extra), listener)
        .await
        .expect("server starts")
}

/// A server on `database_url` instead of DATABASE_URL (same Redis).
pub async fn start_on(database_url: &str) -> Server {
    let (_, redis) = urls();
    let vars = [
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis.as_str()),
        ("BIND_ADDR", "127.0.0.1:0"),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
        .expect("valid config");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::start(&config, listener).await.expect("server starts")
}

/// A fresh database on the test server (same credentials as DATABASE_URL), for a test
/// that damages shared state on purpose: instances of other tests running at the same
/// time replay the one order log, so damage there would reach them.
pub async fn private_database(prefix: &str) -> String {
    let (db, _) = urls();
    let name = unique(prefix).to_lowercase();
    pg().await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a private database");
    let (server, rest) = db.rsplit_once('/').expect("DATABASE_URL ends in /<database>");
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{server}/{name}{query}")
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}{}x{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Minimal HTTP/1.1 client (one request per connection).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = http_raw(addr, method, path, body).await;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub async fn http_raw(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("http response");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub async fn post_order(addr: SocketAddr, order: Value) -> (u16, Value) {
    http(addr, "POST", "/orders", Some(&order.to_string())).await
}

pub async fn pg() -> tokio_postgres::Client {
    let (db, _) = urls();
    trading_system::db::connect(&db).await.expect("postgres")
}

pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    let (_, url) = urls();
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}
