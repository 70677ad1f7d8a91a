//! The shared order log in Postgres: catching up stays cheap however long the log
//! grows (only the entries after what an instance applied are read), whichever plan
//! Postgres picks for the prepared statement, and the sequencer's statements are
//! planned once, not per batch. A batch matched speculatively on a book another
//! instance has since written to is refused by Postgres and run again after catching
//! up.
//!
//! Require `DATABASE_URL` and `REDIS_URL`; they fail without them.

mod common;

use std::sync::Arc;

use std::net::SocketAddr;

use common::{http, http_raw, post_order, private_database, start_on, unique};
use serde_json::json;
use tokio_postgres::SimpleQueryMessage;
use trading_core::{OrderType, Price, Qty, Side};
use trading_system::batch::Batch;
use trading_system::market::{Core, OrderCommand};
use trading_system::store;

/// The plan text of `execute`.
async fn plan(db: &tokio_postgres::Client, execute: &str) -> String {
    db.simple_query(&format!("EXPLAIN {execute}"))
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Seqs returned by `execute`.
async fn seqs(db: &tokio_postgres::Client, execute: &str) -> Vec<i64> {
    db.simple_query(execute)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_reads_only_new_entries_however_long_the_log() {
    let url = private_database("log_plan_").await;
    let server = start_on(&url).await; // applies the migrations
    let db = trading_system::db::connect(&url).await.expect("postgres");
    // 40,000 entries of one symbol, then 6 of another, as a long-lived market has.
    db.batch_execute(
        "INSERT INTO orders (id, account, symbol, side, order_type, price, qty, status)
             SELECT g, 'a', CASE WHEN g <= 40000 THEN 'OLD' ELSE 'NEW' END, 'buy', 'limit', 100, 1, 'open'
             FROM generate_series(1, 40006) AS g;
         INSERT INTO order_log (symbol, kind, order_id, lots, origin)
             SELECT symbol, 'new', id, 0, 'test' FROM orders ORDER BY id;
         INSERT INTO log_heads (symbol, seq) SELECT symbol, max(seq) FROM order_log GROUP BY symbol;
         ANALYZE orders; ANALYZE order_log; ANALYZE log_heads;",
    )
    .await
    .unwrap();
    db.batch_execute(&format!(
        "PREPARE one(text[], bigint[]) AS {};
         PREPARE every(text[], bigint[]) AS {};",
        store::log_since_sql(),
        store::log_since_all_sql()
    ))
    .await
    .unwrap();
    let (head_old, head_new) = (40_000, 40_006);
    for mode in ["force_generic_plan", "force_custom_plan"] {
        db.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        // An instance that applied OLD fully and NEW up to its third entry reads the
        // other three; one 5 entries behind on OLD alone reads those 5.
        let cases = [
            (
                "one('{OLD,NEW}', '{40000,40003}')",
                vec![40_004, 40_005, head_new],
            ),
            (
                "every('{OLD,NEW}', '{40000,40003}')",
                vec![40_004, 40_005, head_new],
            ),
            ("one('{OLD}', '{39995}')", (39_996..=head_old).collect()),
            // Nothing new anywhere: nothing read.
            ("one('{OLD,NEW}', '{40000,40006}')", vec![]),
            ("every('{OLD,NEW}', '{40000,40006}')", vec![]),
        ];
        for (call, want) in cases {
            let execute = format!("EXECUTE {call}");
            assert_eq!(seqs(&db, &execute).await, want, "{mode}: {call}");
            let p = plan(&db, &execute).await;
            assert!(
                !p.contains("Seq Scan on order_log") && !p.contains("Seq Scan on orders"),
                "{mode}: {call} scans the whole log:\n{p}"
            );
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencers_statements_are_planned_once() {
    // Planning the batch's write anew for every batch cost as much as running it: with
    // its arrays sized only at execution, Postgres judged the generic plan dearer than
    // each custom one and kept re-planning.
    let url = private_database("log_generic_").await;
    let server = start_on(&url).await;
    let client = trading_system::db::connect(&url).await.expect("postgres");
    let stmts = store::prepare(&client).await.unwrap();
    let symbols = vec![unique("G")];
    let mut core = Core::default();
    let mut fills = Vec::new();
    for i in 0..8u64 {
        let cmd = OrderCommand {
            id: store::next_order_id(&mut core, &client, &stmts).await.unwrap(),
            account: Arc::from("planner"),
            symbol: symbols[0].clone(),
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            kind: OrderType::Limit(Price(100)),
            qty: Qty(1),
        };
        let after = vec![core.applied(&symbols[0])];
        // Locked and speculative batches by turns: every statement of both ways runs.
        let speculative = i % 2 == 1;
        if !speculative {
            let (entries, _) = store::begin_lock_and_read(&client, &stmts, &symbols, &after)
                .await
                .unwrap();
            assert!(entries.is_empty());
        }
        fills.clear();
        let exec = core.apply_new(&cmd, &mut fills).unwrap();
        let mut batch = Batch::default();
        batch.add_new(&cmd, None, &exec, &fills);
        let unmoved = speculative.then_some((symbols.as_slice(), after.as_slice()));
        let (heads, _) = batch.write(&client, &stmts, "planner", unmoved).await.unwrap();
        for (symbol, seq) in heads {
            core.mark_applied(&symbol, seq);
        }
    }
    let plans = client
        .query(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
             WHERE statement NOT LIKE '%pg_prepared_statements%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(plans.len(), 5);
    for p in &plans {
        let (sql, generic, custom): (String, i64, i64) = (p.get(0), p.get(1), p.get(2));
        assert!(generic > 0 && custom == 0, "planned per execution: {sql}");
    }
    server.shutdown().await.unwrap();
}

/// A counter of an instance's `/metrics`, by its whole series name (labels included).
async fn counter(addr: SocketAddr, series: &str) -> u64 {
    let (st, text) = http_raw(addr, "GET", "/metrics", None).await;
    assert_eq!(st, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speculative_batch_on_a_stale_book_is_refused_and_run_again() {
    let url = private_database("log_speculate_").await;
    let (blue, green) = (start_on(&url).await, start_on(&url).await);
    let sym = unique("SP");
    let order = |side: &str, price: i64, qty: u64, account: &str| json!({"symbol": sym, "side": side, "type": "limit", "price": price, "qty": qty, "account": account});
    // Green alone on the symbol: its batch is speculative, one round trip.
    let (st, far) = post_order(green.addr, order("sell", 200, 1, "gus")).await;
    assert_eq!(st, 201, "{far}");
    let locked = "sequencer_batches_total{way=\"locked\"}";
    let speculative = "sequencer_batches_total{way=\"speculative\"}";
    assert_eq!(
        (
            counter(green.addr, speculative).await,
            counter(green.addr, locked).await
        ),
        (1, 0)
    );
    // Blue writes an ask green has not seen (green reads nothing in between).
    let (st, maker) = post_order(blue.addr, order("sell", 100, 10, "ann")).await;
    assert_eq!(st, 201, "{maker}");
    // Green's book is stale: matched there, the bid would rest unfilled. Postgres
    // refuses the speculative write; green undoes it, catches up and matches it
    // against blue's ask.
    let (st, taker) = post_order(green.addr, order("buy", 100, 4, "bob")).await;
    assert_eq!(st, 201, "{taker}");
    assert_eq!(taker["status"], "filled", "{taker}");
    assert_eq!(
        taker["fills"],
        json!([{"maker_order_id": maker["id"], "price": 100, "qty": 4}])
    );
    assert_eq!(counter(green.addr, "order_log_conflicts_total").await, 1);
    assert_eq!(counter(green.addr, locked).await, 1);
    // Nothing of the refused attempt stayed, here or in Postgres.
    let path = format!("/book/{sym}?depth=10");
    let (b, g) = (
        http(blue.addr, "GET", &path, None).await.1,
        http(green.addr, "GET", &path, None).await.1,
    );
    assert_eq!(b, g);
    assert_eq!(
        (&g["bids"], &g["asks"]),
        (
            &json!([]),
            &json!([{"price": 100, "qty": 6, "orders": 1}, {"price": 200, "qty": 1, "orders": 1}])
        )
    );
    let db = trading_system::db::connect(&url).await.expect("postgres");
    let n: i64 = db
        .query_one("SELECT count(*) FROM orders WHERE symbol = $1", &[&sym])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    // Another instance wrote lately: green's next batch is locked, not tried first.
    let (st, _) = post_order(green.addr, order("sell", 105, 1, "gus")).await;
    assert_eq!(st, 201);
    assert_eq!(counter(green.addr, "order_log_conflicts_total").await, 1);
    assert_eq!(counter(green.addr, locked).await, 2);
    blue.shutdown().await.unwrap();
    green.shutdown().await.unwrap();
}
