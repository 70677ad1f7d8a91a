//! Blue and green: two instances of the service on one Postgres and one Redis serve
//! one market. Orders placed through either are matched with orders placed through
//! the other, every fill happens exactly once, quantities are conserved, and both
//! (and a freshly started third) report the same books and positions.
//!
//! Require `DATABASE_URL` and `REDIS_URL`; they fail without them.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use common::{http, http_raw, pg, post_order, private_database, redis_conn, start, start_on, unique};
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// Book of `sym` as an instance reports it.
async fn book(addr: SocketAddr, sym: &str) -> Value {
    let (st, b) = http(addr, "GET", &format!("/book/{sym}?depth=1000"), None).await;
    assert_eq!(st, 200, "{b}");
    b
}

/// Positions in `symbols` as an instance reports them, sorted.
async fn positions(addr: SocketAddr, symbols: &[String]) -> Vec<Value> {
    let (st, p) = http(addr, "GET", "/positions", None).await;
    assert_eq!(st, 200, "{p}");
    p["positions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| symbols.iter().any(|s| x["symbol"] == s.as_str()))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_through_blue_is_seen_and_matched_through_green() {
    let (blue, green) = (start(&[]).await, start(&[]).await);
    let sym = unique("X");
    let (st, maker) = post_order(
        blue.addr,
        json!({"symbol": sym, "side": "sell", "type": "limit", "price": 100, "qty": 10, "account": "ann"}),
    )
    .await;
    assert_eq!(st, 201, "{maker}");
    let maker_id = maker["id"].as_i64().unwrap();
    // Green sees blue's order before trading against it...
    assert_eq!(
        book(green.addr, &sym).await["asks"],
        json!([{"price": 100, "qty": 10, "orders": 1}])
    );
    let (st, taker) = post_order(
        green.addr,
        json!({"symbol": sym, "side": "buy", "type": "limit", "price": 101, "qty": 4, "account": "bob"}),
    )
    .await;
    assert_eq!(st, 201, "{taker}");
    assert_eq!(taker["status"], "filled");
    assert_eq!(
        taker["fills"],
        json!([{"maker_order_id": maker_id, "price": 100, "qty": 4}])
    );
    // ...and blue sees green's fill.
    let (b, g) = (book(blue.addr, &sym).await, book(green.addr, &sym).await);
    assert_eq!(b["asks"], json!([{"price": 100, "qty": 6, "orders": 1}]));
    assert_eq!((&b, b["last_price"].as_i64()), (&g, Some(100)));
    let syms = [sym.clone()];
    let pb = positions(blue.addr, &syms).await;
    assert_eq!(pb, positions(green.addr, &syms).await);
    assert_eq!(pb.len(), 2, "{pb:?}");
    // Green cancels blue's order; blue's book is empty, a second cancel conflicts.
    let (st, c) = http(green.addr, "DELETE", &format!("/orders/{maker_id}"), None).await;
    assert_eq!((st, c["status"].as_str()), (200, Some("cancelled")), "{c}");
    assert_eq!(book(blue.addr, &sym).await["asks"], json!([]));
    assert_eq!(
        http(blue.addr, "DELETE", &format!("/orders/{maker_id}"), None)
            .await
            .0,
        409
    );
    // A market order through blue finds nothing left (no double fill of the cancelled rest).
    let (st, m) = post_order(
        blue.addr,
        json!({"symbol": sym, "side": "buy", "type": "market", "qty": 1, "account": "bob"}),
    )
    .await;
    assert_eq!((st, m["filled"].as_i64()), (201, Some(0)), "{m}");
    blue.shutdown().await.unwrap();
    green.shutdown().await.unwrap();
}

/// What the clients saw: every fill as reported to its taker, resting order ids.
#[derive(Debug, Default)]
struct Seen {
    fills: Vec<(i64, i64, i64, i64)>, // taker, maker, price, qty
    resting: Vec<i64>,
    placed: usize,
    cancelled: usize,
}

/// One client: `n` requests on alternating colours, both sides, limit and market
/// orders on two symbols, and cancels (through the other colour) of its resting orders.
async fn client(k: u64, n: u64, colours: [SocketAddr; 2], symbols: [String; 2], seen: Arc<Mutex<Seen>>) {
    for i in 0..n {
        let addr = colours[usize::from((k + i) % 2 == 1)];
        let r = k * 7919 + i * 104_729; // deterministic spread
        if i % 5 == 4 {
            let victim = seen.lock().await.resting.pop();
            if let Some(id) = victim {
                let (st, body) = http(addr, "DELETE", &format!("/orders/{id}"), None).await;
                assert!(st == 200 || st == 409, "cancel {id}: {st} {body}");
                seen.lock().await.cancelled += usize::from(st == 200);
                continue;
            }
        }
        let sym = &symbols[usize::from(r.is_multiple_of(3))];
        let side = if (r / 3).is_multiple_of(2) { "buy" } else { "sell" };
        let qty = 1 + r % 7;
        let order = if r.is_multiple_of(11) {
            json!({"symbol": sym, "side": side, "type": "market", "qty": qty, "account": format!("acct{}", k % 4)})
        } else {
            let price = 100 + (r % 7) as i64 - 3;
            json!({"symbol": sym, "side": side, "type": "limit", "price": price, "qty": qty, "account": format!("acct{}", k % 4)})
        };
        let (st, o) = post_order(addr, order).await;
        assert_eq!(st, 201, "{o}");
        let id = o["id"].as_i64().unwrap();
        let mut s = seen.lock().await;
        s.placed += 1;
        for f in o["fills"].as_array().unwrap() {
            let get = |k: &str| f[k].as_i64().unwrap();
            s.fills
                .push((id, get("maker_order_id"), get("price"), get("qty")));
        }
        if o["remaining"].as_i64().unwrap() > 0 {
            s.resting.push(id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_on_both_colours_see_one_market() {
    let (blue, green) = (start(&[]).await, start(&[]).await);
    let symbols = [unique("CA"), unique("CB")];
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tasks: Vec<_> = (0..8u64)
        .map(|k| {
            let (symbols, seen) = (symbols.clone(), seen.clone());
            tokio::spawn(client(k, 60, [blue.addr, green.addr], symbols, seen))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let seen = Arc::try_unwrap(seen).unwrap().into_inner();
    assert!(seen.placed > 300 && seen.cancelled > 0, "{} placed", seen.placed);

    // Every fill exactly once: what the takers were told is what Postgres holds.
    let db = pg().await;
    let rows = db
        .query(
            "SELECT taker_order_id, maker_order_id, price, qty FROM fills WHERE symbol = ANY($1) ORDER BY id",
            &[&symbols.to_vec()],
        )
        .await
        .unwrap();
    let mut stored: Vec<_> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut told = seen.fills.clone();
    assert!(told.len() > 50, "too few fills to mean anything: {}", told.len());
    stored.sort_unstable();
    told.sort_unstable();
    assert_eq!(stored, told);
    // ... and each published once to the Redis fills stream.
    let mut r = redis_conn().await;
    let stream: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("fills")
        .arg("-")
        .arg("+")
        .query_async(&mut r)
        .await
        .unwrap();
    let published = stream
        .iter()
        .filter(|(_, kv)| kv.iter().any(|(k, v)| k == "symbol" && symbols.contains(v)))
        .count();
    assert_eq!(published, stored.len());

    // Quantities conserved per order: filled = its fills, and what rests is in the book.
    let orders = db
        .query(
            "SELECT id, symbol, qty, filled, status, order_type FROM orders WHERE symbol = ANY($1)",
            &[&symbols.to_vec()],
        )
        .await
        .unwrap();
    let mut by_order: HashMap<i64, i64> = HashMap::new();
    for &(taker, maker, _, qty) in &stored {
        *by_order.entry(taker).or_default() += qty;
        *by_order.entry(maker).or_default() += qty;
    }
    let mut resting: BTreeMap<String, i64> = BTreeMap::new();
    for o in &orders {
        let (id, sym, qty, filled, status): (i64, String, i64, i64, String) =
            (o.get(0), o.get(1), o.get(2), o.get(3), o.get(4));
        assert_eq!(filled, by_order.get(&id).copied().unwrap_or(0), "order {id}");
        assert!(filled <= qty, "order {id} overfilled");
        match status.as_str() {
            "filled" => assert_eq!(filled, qty, "order {id}"),
            "open" | "partially_filled" => *resting.entry(sym).or_default() += qty - filled,
            "cancelled" => assert!(filled < qty || o.get::<_, String>(5) == "market", "order {id}"),
            other => panic!("order {id}: status {other}"),
        }
    }

    // Both colours (and a new instance built from Postgres) report the same market,
    // holding exactly the resting lots, never crossed.
    let fresh = start(&[]).await;
    for sym in &symbols {
        let b = book(blue.addr, sym).await;
        assert_eq!(b, book(green.addr, sym).await, "{sym}");
        assert_eq!(b, book(fresh.addr, sym).await, "{sym} after a restart");
        let lots: i64 = ["bids", "asks"]
            .iter()
            .flat_map(|side| b[side].as_array().unwrap().iter())
            .map(|l| l["qty"].as_i64().unwrap())
            .sum();
        assert_eq!(lots, resting.get(sym).copied().unwrap_or(0), "{sym}: {b}");
        if let (Some(bid), Some(ask)) = (b["bids"][0]["price"].as_i64(), b["asks"][0]["price"].as_i64()) {
            assert!(bid < ask, "{sym} crossed: {b}");
        }
    }
    let p = positions(blue.addr, &symbols).await;
    assert_eq!(p, positions(green.addr, &symbols).await);
    assert_eq!(p, positions(fresh.addr, &symbols).await);
    for sym in &symbols {
        let net: i64 = p
            .iter()
            .filter(|x| x["symbol"] == sym.as_str())
            .map(|x| x["net"].as_i64().unwrap())
            .sum();
        assert_eq!(net, 0, "{sym}: every lot bought was sold by someone");
    }
    for colour in [blue.addr, green.addr] {
        assert!(metric(colour, "order_log_replayed_total").await > 0);
        assert_eq!(metric(colour, "market_rebuilds_total").await, 0);
    }
    for app in [blue, green, fresh] {
        app.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_diverges_is_repaired_from_postgres() {
    // Its own database: the damage below must not reach the other tests' instances.
    let url = private_database("colours_diverge_").await;
    let (blue, green) = (start_on(&url).await, start_on(&url).await);
    let sym = unique("D");
    let (st, o) = post_order(
        blue.addr,
        json!({"symbol": sym, "side": "sell", "type": "limit", "price": 100, "qty": 10}),
    )
    .await;
    assert_eq!(st, 201, "{o}");
    // Make the log disagree with what replaying it gives (as a green that matched
    // differently from blue would): green must notice and rebuild from the tables.
    let db = trading_system::db::connect(&url).await.expect("postgres");
    let n = db
        .execute("UPDATE order_log SET lots = 3 WHERE symbol = $1", &[&sym])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        book(green.addr, &sym).await["asks"],
        json!([{"price": 100, "qty": 10, "orders": 1}])
    );
    let (st, t) = post_order(
        green.addr,
        json!({"symbol": sym, "side": "buy", "type": "limit", "price": 100, "qty": 4}),
    )
    .await;
    assert_eq!((st, t["filled"].as_i64()), (201, Some(4)), "{t}");
    assert_eq!(book(blue.addr, &sym).await, book(green.addr, &sym).await);
    assert_eq!(metric(green.addr, "market_rebuilds_total").await, 1);
    assert_eq!(metric(blue.addr, "market_rebuilds_total").await, 0);
    blue.shutdown().await.unwrap();
    green.shutdown().await.unwrap();
}

/// The value of an unlabelled counter on an instance's `/metrics`.
async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (st, text) = http_raw(addr, "GET", "/metrics", None).await;
    assert_eq!(st, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}
