//! Order entry: any bytes as the body of `POST /orders` go through the service's own
//! parser and validator. It must never panic, and what it accepts must be a well-formed
//! order (valid names, a positive quantity, a price exactly when the type needs one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trading_core::OrderType;
use trading_system::api::parse_order;

fn name_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fuzz_target!(|body: &[u8]| {
    if let Ok((req, (_side, kind, client_id, account))) = parse_order(body) {
        assert!(name_ok(&req.symbol, 32), "accepted symbol {:?}", req.symbol);
        assert!(name_ok(&account, 64), "accepted account {account:?}");
        assert!(req.qty > 0 && i64::try_from(req.qty).is_ok(), "accepted qty {}", req.qty);
        match kind {
            OrderType::Limit(p) => assert!(p.0 > 0 && req.price == Some(p.0)),
            OrderType::Market => assert!(req.price.is_none()),
        }
        if let Some(c) = client_id {
            assert!(!c.is_empty() && c.len() <= 64);
        }
        // What was accepted must serialise back to an equivalent request.
        let again = serde_json::to_vec(&serde_json::json!({
            "symbol": req.symbol, "side": req.side, "type": req.order_type,
            "price": req.price, "qty": req.qty, "account": account,
        }))
        .expect("serialises");
        assert!(parse_order(&again).is_ok(), "round trip rejected");
    }
});
