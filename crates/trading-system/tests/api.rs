//! Integration tests against real Postgres and Redis.
//!
//! Require `DATABASE_URL` and `REDIS_URL`; they FAIL (never skip) without them.
//! Every test uses its own random symbols, so tests can share one database and
//! run in parallel (threads or nextest processes).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{http, http_raw, pg, post_order, redis_conn, start, unique, urls};
use serde_json::{json, Value};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_matches_fills_persist_and_last_price_in_redis() {
    let app = start(&[]).await;
    let sym = unique("M");
    let (st, maker) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "sell", "type": "limit", "price": 1000, "qty": 10, "client_id": "c-1", "account": "alice"}),
    )
    .await;
    assert_eq!(st, 201, "{maker}");
    assert_eq!(maker["status"], "open");
    let maker_id = maker["id"].as_i64().unwrap();

    let (st, taker) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "buy", "type": "limit", "price": 1001, "qty": 4, "account": "bob"}),
    )
    .await;
    assert_eq!(st, 201, "{taker}");
    assert_eq!(taker["status"], "filled");
    assert_eq!(taker["fills"][0]["price"], 1000);
    assert_eq!(taker["fills"][0]["maker_order_id"], maker_id);
    let taker_id = taker["id"].as_i64().unwrap();

    // A market order takes 1 more.
    let (st, mkt) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "buy", "type": "market", "qty": 1, "account": "bob"}),
    )
    .await;
    assert_eq!(st, 201, "{mkt}");
    assert_eq!(mkt["filled"], 1);

    // Fills persisted: check the tables directly.
    let db = pg().await;
    let row = db
        .query_one(
            "SELECT count(*), COALESCE(sum(qty), 0)::BIGINT FROM fills WHERE symbol = $1",
            &[&sym],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, i64>(1), 5);
    let row = db
        .query_one(
            "SELECT taker_order_id, maker_order_id, price, qty FROM fills WHERE symbol = $1 ORDER BY id LIMIT 1",
            &[&sym],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), taker_id);
    assert_eq!(row.get::<_, i64>(1), maker_id);
    assert_eq!(row.get::<_, i64>(2), 1000);
    let row = db
        .query_one(
            "SELECT status, filled, client_id FROM orders WHERE id = $1",
            &[&maker_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "partially_filled");
    assert_eq!(row.get::<_, i64>(1), 5);
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("c-1"));

    // Last price and fills stream in Redis.
    let mut r = redis_conn().await;
    let last: Option<String> = redis::cmd("GET")
        .arg(format!("last_price:{sym}"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(last.as_deref(), Some("1000"));
    let entries: redis::Value = redis::cmd("XREVRANGE")
        .arg("fills")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(10_000)
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(
        format!("{entries:?}").contains(&sym),
        "fills stream has no entry for {sym}"
    );

    // API views.
    let (st, o) = http(app.addr, "GET", &format!("/orders/{maker_id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(o["remaining"], 5);
    assert_eq!(o["status"], "partially_filled");
    let (st, book) = http(app.addr, "GET", &format!("/book/{sym}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(book["asks"], json!([{"price": 1000, "qty": 5, "orders": 1}]));
    assert_eq!(book["last_price"], 1000);
    let (st, pos) = http(app.addr, "GET", "/positions", None).await;
    assert_eq!(st, 200);
    let mine: Vec<&Value> = pos["positions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["symbol"] == sym.as_str())
        .collect();
    assert_eq!(mine.len(), 2);
    let bob = mine.iter().find(|p| p["account"] == "bob").unwrap();
    assert_eq!(bob["net"], 5);
    let alice = mine.iter().find(|p| p["account"] == "alice").unwrap();
    assert_eq!(alice["net"], -5);

    // Cancel the rest; second cancel is a conflict.
    let (st, c) = http(app.addr, "DELETE", &format!("/orders/{maker_id}"), None).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    let (st, _) = http(app.addr, "DELETE", &format!("/orders/{maker_id}"), None).await;
    assert_eq!(st, 409);
    let status: String = db
        .query_one("SELECT status FROM orders WHERE id = $1", &[&maker_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "cancelled");

    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_restart() {
    let sym = unique("R");
    let app = start(&[]).await;
    let mut ids = Vec::new();
    for (price, qty) in [(500, 3), (500, 4), (499, 5)] {
        let (st, o) = post_order(
            app.addr,
            json!({"symbol": sym, "side": "buy", "type": "limit", "price": price, "qty": qty}),
        )
        .await;
        assert_eq!(st, 201, "{o}");
        ids.push(o["id"].as_i64().unwrap());
    }
    // Partially fill the first order at 500.
    let (st, _) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "sell", "type": "limit", "price": 500, "qty": 1, "account": "s"}),
    )
    .await;
    assert_eq!(st, 201);
    let (_, book_before) = http(app.addr, "GET", &format!("/book/{sym}"), None).await;
    app.shutdown().await.unwrap();

    let app = start(&[]).await;
    let (st, book_after) = http(app.addr, "GET", &format!("/book/{sym}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(book_before, book_after);
    assert_eq!(
        book_after["bids"][0],
        json!({"price": 500, "qty": 6, "orders": 2})
    );
    let (st, o) = http(app.addr, "GET", &format!("/orders/{}", ids[0]), None).await;
    assert_eq!(st, 200);
    assert_eq!(o["filled"], 1);
    assert_eq!(o["remaining"], 2);

    // Time priority survived: a sell of 3 fills the first order (2 left) then 1 of the second.
    let (st, t) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "sell", "type": "limit", "price": 500, "qty": 3, "account": "s"}),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    let makers: Vec<i64> = t["fills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["maker_order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(makers, vec![ids[0], ids[1]]);
    // Positions were rebuilt from fills too (4 bought in total by "default").
    let (_, pos) = http(app.addr, "GET", "/positions", None).await;
    let mine = pos["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["symbol"] == sym.as_str() && p["account"] == "default")
        .cloned()
        .unwrap();
    assert_eq!(mine["net"], 4);
    // Cancel of an order restored from the database works.
    let (st, _) = http(app.addr, "DELETE", &format!("/orders/{}", ids[2]), None).await;
    assert_eq!(st, 200);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_give_json_4xx() {
    let app = start(&[("TS_RISK_MAX_ORDER_QTY", "100")]).await;
    let sym = unique("B");
    let (st, e) = http(app.addr, "POST", "/orders", Some("{not json")).await;
    assert_eq!(st, 400);
    assert!(e["error"].as_str().unwrap().contains("invalid JSON"), "{e}");
    let (st, e) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "up", "type": "limit", "price": 1, "qty": 1}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(e["error"].is_string());
    let (st, e) = http(app.addr, "GET", "/orders/987654321098", None).await;
    assert_eq!(st, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("not found"));
    let (st, _) = http(app.addr, "DELETE", "/orders/987654321098", None).await;
    assert_eq!(st, 404);
    let (st, _) = http(app.addr, "GET", "/orders/abc", None).await;
    assert_eq!(st, 400);
    let (st, e) = http(app.addr, "GET", "/nope", None).await;
    assert_eq!(st, 404);
    assert!(e["error"].is_string());
    let (st, e) = http(app.addr, "PUT", "/orders", Some("{}")).await;
    assert_eq!(st, 405);
    assert!(e["error"].is_string());
    let (st, e) = http(app.addr, "GET", &format!("/book/{sym}?depth=x"), None).await;
    assert_eq!(st, 400);
    assert!(e["error"].as_str().unwrap().contains("depth"));
    let (st, _) = http(app.addr, "GET", &format!("/book/{sym}?depth=3"), None).await;
    assert_eq!(st, 200);
    let (st, e) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "buy", "type": "limit", "price": 10, "qty": 101}),
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(e["rule"], "max_order_qty");
    let (st, _) = post_order(
        app.addr,
        json!({"symbol": sym, "side": "buy", "type": "limit", "price": 10, "qty": 100}),
    )
    .await;
    assert_eq!(st, 201);

    let (st, h) = http(app.addr, "GET", "/health", None).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["checks"]["postgres"]["status"], "ok");
    assert_eq!(h["checks"]["redis"]["status"], "ok");
    let (st, m) = http_raw(app.addr, "GET", "/metrics", None).await;
    assert_eq!(st, 200);
    for needle in [
        "http_requests_total{route=\"/orders\",method=\"POST\",status=\"422\"} 1",
        "http_request_duration_seconds_bucket{route=\"/orders\",method=\"POST\",le=\"+Inf\"}",
        "orders_total 1",
        "fills_total 0",
        "orders_rejected_total{rule=\"max_order_qty\"} 1",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_in_flight_request_finish() {
    let mut app = start(&[("TS_FAULT_LATENCY_MS", "1500")]).await;
    let addr = app.addr;
    let sym = unique("G");
    let started = Instant::now();
    let inflight = tokio::spawn(async move {
        post_order(
            addr,
            json!({"symbol": sym, "side": "buy", "type": "limit", "price": 10, "qty": 1}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.trigger_shutdown();
    let (st, o) = inflight.await.unwrap();
    assert_eq!(st, 201, "{o}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    tokio::time::timeout(Duration::from_secs(10), app.wait())
        .await
        .expect("server stops after draining")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_affects_api_but_not_health_or_metrics() {
    let app = start(&[("TS_FAULT_ERROR_RATE", "1.0")]).await;
    let (st, e) = http(app.addr, "GET", "/positions", None).await;
    assert_eq!(st, 500);
    assert_eq!(e["error"], "injected fault");
    assert_eq!(http(app.addr, "GET", "/health", None).await.0, 200);
    assert_eq!(http_raw(app.addr, "GET", "/metrics", None).await.0, 200);
    app.shutdown().await.unwrap();

    let app = start(&[("TS_FAULT_UNHEALTHY", "1")]).await;
    let (st, h) = http(app.addr, "GET", "/health", None).await;
    assert_eq!(st, 503);
    assert_eq!(h["fault_injected"], true);
    assert_eq!(http(app.addr, "GET", "/positions", None).await.0, 200);
    app.shutdown().await.unwrap();

    let app = start(&[("TS_FAULT_UNHEALTHY_AFTER", "1")]).await;
    assert_eq!(http(app.addr, "GET", "/health", None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, h) = http(app.addr, "GET", "/health", None).await;
    assert_eq!(st, 503);
    assert_eq!(h["fault_injected"], true);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_are_safe() {
    let (db, _) = urls();
    let mut a = trading_system::db::connect(&db).await.unwrap();
    let mut b = trading_system::db::connect(&db).await.unwrap();
    let (ra, rb) = tokio::join!(
        trading_system::db::migrate(&mut a),
        trading_system::db::migrate(&mut b)
    );
    ra.unwrap();
    rb.unwrap();
    let n: i64 = a
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, i64::try_from(trading_system::db::MIGRATIONS.len()).unwrap());
}

#[test]
fn binary_version_and_config_errors() {
    let bin = env!("CARGO_BIN_EXE_trading-system");
    let out = std::process::Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("trading-system {}", env!("CARGO_PKG_VERSION"))
    );
    let out = std::process::Command::new(bin)
        .env_remove("DATABASE_URL")
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
    assert!(!err.contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_zero_on_sigterm() {
    let (db, redis) = urls();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trading-system"))
        .env("DATABASE_URL", db)
        .env("REDIS_URL", redis)
        .env("BIND_ADDR", addr.to_string())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(addr).await.is_ok() && http(addr, "GET", "/health", None).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "binary did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    // `kill` through sh: the builtin exists wherever a shell does.
    let st = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(st.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
