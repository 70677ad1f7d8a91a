//! The shared order log in Postgres: catching up stays cheap however long the log
//! grows (only the entries after what an instance applied are read), whichever plan
//! Postgres picks for the prepared statement, and the sequencer's statements are
//! planned once, not per batch.
//!
//! Require `DATABASE_URL` and `REDIS_URL`; they fail without them.

mod common;

use std::sync::Arc;

use common::{private_database, start_on};
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
    let symbols = vec![common::unique("G")];
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
        let (entries, _) = store::begin_lock_and_read(&client, &stmts, &symbols, &after)
            .await
            .unwrap();
        assert!(entries.is_empty());
        fills.clear();
        let exec = core.apply_new(&cmd, &mut fills).unwrap();
        let mut batch = Batch::default();
        batch.add_new(&cmd, None, &exec, &fills);
        let (heads, _) = batch.write(&client, &stmts, "planner").await.unwrap();
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
    assert_eq!(plans.len(), 4);
    for p in &plans {
        let (sql, generic, custom): (String, i64, i64) = (p.get(0), p.get(1), p.get(2));
        // once per batch (locks, catch-up, write), or once (the order id block)
        let runs = if sql.contains("nextval") { 1 } else { 8 };
        assert_eq!((generic, custom), (runs, 0), "planned per execution: {sql}");
    }
    server.shutdown().await.unwrap();
}
