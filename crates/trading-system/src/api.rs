//! HTTP handlers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use trading_core::{BookError, NewOrder, OrderId, OrderIntent, OrderStatus, OrderType, Price, Qty, Side};

use crate::db::{self, FillRow, OrderRow, Write};
use crate::AppState;

/// A JSON error response: `{"error": "..."}` (plus `"rule"` for risk rejections).
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    rule: Option<&'static str>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            rule: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.rule {
            Some(rule) => json!({ "error": self.message, "rule": rule }),
            None => json!({ "error": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}

/// Body of `POST /orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Symbol (1–32 chars of `A-Z a-z 0-9 . _ -`).
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `limit` or `market`.
    #[serde(rename = "type")]
    pub order_type: String,
    /// Limit price in ticks (required for limit orders).
    pub price: Option<i64>,
    /// Quantity in lots.
    pub qty: u64,
    /// Optional client order id (≤ 64 chars).
    pub client_id: Option<String>,
    /// Optional account (default `"default"`).
    pub account: Option<String>,
}

/// An order as returned by the API.
#[derive(Debug, Serialize)]
pub struct OrderView {
    id: i64,
    client_id: Option<String>,
    account: String,
    symbol: String,
    side: String,
    #[serde(rename = "type")]
    order_type: String,
    price: Option<i64>,
    qty: i64,
    filled: i64,
    remaining: i64,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fills: Option<Vec<FillView>>,
}

/// A fill as returned by `POST /orders`.
#[derive(Debug, Serialize)]
pub struct FillView {
    maker_order_id: i64,
    price: i64,
    qty: i64,
}

impl OrderView {
    fn from_row(r: OrderRow, remaining: i64) -> Self {
        OrderView {
            id: r.id,
            client_id: r.client_id,
            account: r.account,
            symbol: r.symbol,
            side: r.side,
            order_type: r.order_type,
            price: r.price,
            qty: r.qty,
            filled: r.filled,
            remaining,
            status: r.status,
            fills: None,
        }
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `POST /orders`.
pub async fn place_order(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let req: PlaceOrder = serde_json::from_slice(&body).map_err(|e| {
        app.metrics.reject("invalid_request");
        ApiError::bad_request(format!("invalid JSON body: {e}"))
    })?;
    let (side, kind, client_id, account) =
        validate(&req).inspect_err(|_| app.metrics.reject("invalid_request"))?;
    let qty = Qty(req.qty);

    let mut core = app.core.lock().await;
    core.ensure_consistent(&app).await?;
    let position = core.position(&account, &req.symbol);
    let last = core.engine.last_trade_price(&req.symbol);
    let intent = OrderIntent {
        side,
        price: match kind {
            OrderType::Limit(p) => Some(p),
            OrderType::Market => None,
        },
        qty,
    };
    if let Err(rej) = app.risk.check(&intent, position, last) {
        drop(core);
        app.metrics.reject(rej.rule());
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: rej.to_string(),
            rule: Some(rej.rule()),
        });
    }
    let id = core.next_order_id(&app).await?;
    let order = NewOrder {
        id: OrderId(id),
        side,
        kind,
        qty,
    };
    let mut fills = Vec::new();
    let exec = core
        .engine
        .submit(&req.symbol, order, &mut fills)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let account: Arc<str> = Arc::from(account);
    let mut fill_rows = Vec::with_capacity(fills.len());
    for f in &fills {
        let maker_account = core
            .order_accounts
            .get(&f.maker.0)
            .cloned()
            .unwrap_or_else(|| Arc::from("default"));
        core.apply_fill(&account, &req.symbol, f.taker_side, f.price, f.qty);
        core.apply_fill(
            &maker_account,
            &req.symbol,
            f.taker_side.opposite(),
            f.price,
            f.qty,
        );
        if f.maker_remaining.is_zero() {
            core.order_accounts.remove(&f.maker.0);
        }
        fill_rows.push(FillRow {
            taker: to_i64(f.taker.0),
            maker: to_i64(f.maker.0),
            taker_side: f.taker_side.as_str(),
            price: f.price.0,
            qty: to_i64(f.qty.0),
            maker_remaining: to_i64(f.maker_remaining.0),
        });
    }
    if exec.status.is_live() {
        core.order_accounts.insert(id, account.clone());
    }
    let row = OrderRow {
        id: to_i64(id),
        client_id,
        account: account.to_string(),
        symbol: req.symbol.clone(),
        side: side.as_str().to_owned(),
        order_type: req.order_type.clone(),
        price: intent.price.map(|p| p.0),
        qty: to_i64(qty.0),
        filled: to_i64(exec.filled.0),
        status: exec.status.as_str().to_owned(),
    };
    let fill_views: Vec<FillView> = fill_rows
        .iter()
        .map(|f| FillView {
            maker_order_id: f.maker,
            price: f.price,
            qty: f.qty,
        })
        .collect();
    let pending = app.writer.enqueue(Write::Order {
        order: row.clone(),
        fills: fill_rows,
    });
    drop(core);
    app.metrics.orders.fetch_add(1, Ordering::Relaxed);
    app.metrics.fills.fetch_add(fills.len() as u64, Ordering::Relaxed);
    pending.wait().await.map_err(|e| {
        ApiError::unavailable(format!(
            "order {id} not accepted: it could not be persisted ({e}); retry later"
        ))
    })?;
    let mut view = OrderView::from_row(row, to_i64(exec.remaining.0));
    view.fills = Some(fill_views);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

type Validated = (Side, OrderType, Option<String>, String);

fn validate(req: &PlaceOrder) -> Result<Validated, ApiError> {
    if !valid_name(&req.symbol, 32) {
        return Err(ApiError::bad_request(
            "symbol must be 1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ));
    }
    let side = match req.side.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return Err(ApiError::bad_request("side must be \"buy\" or \"sell\"")),
    };
    let kind = match (req.order_type.as_str(), req.price) {
        ("limit", Some(p)) if p > 0 => OrderType::Limit(Price(p)),
        ("limit", Some(_)) => return Err(ApiError::bad_request("price must be a positive number of ticks")),
        ("limit", None) => return Err(ApiError::bad_request("price is required for limit orders")),
        ("market", None) => OrderType::Market,
        ("market", Some(_)) => return Err(ApiError::bad_request("market orders must not have a price")),
        _ => return Err(ApiError::bad_request("type must be \"limit\" or \"market\"")),
    };
    if req.qty == 0 || i64::try_from(req.qty).is_err() {
        return Err(ApiError::bad_request("qty must be a positive number of lots"));
    }
    if let Some(c) = &req.client_id {
        if c.is_empty() || c.len() > 64 {
            return Err(ApiError::bad_request("client_id must be 1-64 characters"));
        }
    }
    let account = req.account.clone().unwrap_or_else(|| "default".to_owned());
    if !valid_name(&account, 64) {
        return Err(ApiError::bad_request(
            "account must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ));
    }
    Ok((side, kind, req.client_id.clone(), account))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid order id {raw:?}")))
}

/// `GET /orders/{id}`.
pub async fn get_order(
    State(app): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&raw)?;
    let client = app.pg.get().await.map_err(ApiError::unavailable)?;
    let row = db::get_order(&client, id)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("order {id} not found")))?;
    let live =
        row.status == OrderStatus::Open.as_str() || row.status == OrderStatus::PartiallyFilled.as_str();
    let remaining = if live { row.qty - row.filled } else { 0 };
    Ok(Json(OrderView::from_row(row, remaining)))
}

/// `DELETE /orders/{id}`.
pub async fn cancel_order(
    State(app): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&raw)?;
    let uid = id.unsigned_abs();
    let mut core = app.core.lock().await;
    core.ensure_consistent(&app).await?;
    match core.engine.cancel(OrderId(uid)) {
        Ok(_) => {
            core.order_accounts.remove(&uid);
            let pending = app.writer.enqueue(Write::Cancel { id });
            drop(core);
            pending.wait().await.map_err(ApiError::unavailable)?;
        }
        Err(BookError::UnknownOrder(_)) => {
            drop(core);
            let client = app.pg.get().await.map_err(ApiError::unavailable)?;
            return match db::get_order(&client, id).await.map_err(ApiError::unavailable)? {
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("order {id} not found"),
                )),
                Some(r) => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("order {id} is not open (status {})", r.status),
                )),
            };
        }
        Err(e) => return Err(ApiError::bad_request(e.to_string())),
    }
    let client = app.pg.get().await.map_err(ApiError::unavailable)?;
    let row = db::get_order(&client, id)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("order {id} not found")))?;
    Ok(Json(OrderView::from_row(row, 0)))
}

/// `GET /book/{symbol}` — aggregated levels.
pub async fn get_book(
    State(app): State<Arc<AppState>>,
    Path(symbol): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !valid_name(&symbol, 32) {
        return Err(ApiError::bad_request("invalid symbol"));
    }
    let mut levels = 20usize;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("depth", v)) => {
                levels = v
                    .parse::<usize>()
                    .map_err(|_| {
                        ApiError::bad_request(format!("depth must be a positive integer, got {v:?}"))
                    })?
                    .clamp(1, 1000);
            }
            _ => return Err(ApiError::bad_request(format!("unknown query parameter {pair:?}"))),
        }
    }
    let core = app.core.lock().await;
    let depth = core.engine.depth(&symbol, levels);
    let last = core.engine.last_trade_price(&symbol).map(|p| p.0);
    drop(core);
    let lv = |l: &trading_core::LevelView| json!({ "price": l.price.0, "qty": l.qty.0, "orders": l.orders });
    Ok(Json(json!({
        "symbol": symbol,
        "bids": depth.bids.iter().map(lv).collect::<Vec<_>>(),
        "asks": depth.asks.iter().map(lv).collect::<Vec<_>>(),
        "last_price": last,
    }))
    .into_response())
}

/// `GET /positions` — per account and symbol, marked at the last trade price.
pub async fn get_positions(State(app): State<Arc<AppState>>) -> Response {
    let core = app.core.lock().await;
    let mut out = Vec::new();
    for (account, pf) in &core.accounts {
        for (symbol, p) in pf.iter() {
            let mark = core.engine.last_trade_price(symbol);
            out.push(json!({
                "account": account,
                "symbol": symbol,
                "net": p.net(),
                "average_price": p.average_price().map(clamp_i128),
                "realised_pnl": clamp_i128(p.realised()),
                "unrealised_pnl": mark.map_or(0, |m| clamp_i128(p.unrealised(m))),
                "mark_price": mark.map(|m| m.0),
            }));
        }
    }
    drop(core);
    out.sort_by(|a, b| {
        (a["account"].as_str(), a["symbol"].as_str()).cmp(&(b["account"].as_str(), b["symbol"].as_str()))
    });
    Json(json!({ "positions": out })).into_response()
}

fn clamp_i128(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN })
}

/// `GET /health` — 200 only when Postgres and Redis both answer within 1 s.
pub async fn health(State(app): State<Arc<AppState>>) -> Response {
    let timeout = Duration::from_secs(1);
    let pg = async {
        let client = app.pg.get().await?;
        match tokio::time::timeout(timeout, client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".to_owned()),
        }
    };
    let pg = tokio::time::timeout(timeout, pg)
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()));
    let redis = app.redis.ping(timeout).await;
    let unhealthy = app.faults.config().unhealthy;
    let ok = pg.is_ok() && redis.is_ok() && !unhealthy;
    let status = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "status": "ok" }),
        Err(e) => json!({ "status": "error", "error": e }),
    };
    let mut body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "postgres": status(&pg), "redis": status(&redis) },
    });
    if unhealthy {
        body["fault_injected"] = json!(true);
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /metrics` — Prometheus text format.
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.render(),
    )
        .into_response()
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// Fallback for known routes called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> PlaceOrder {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn validation() {
        let ok = req(json!({"symbol":"AB-1","side":"buy","type":"limit","price":5,"qty":1}));
        let (side, kind, _, acct) = validate(&ok).unwrap();
        assert_eq!(
            (side, kind, acct.as_str()),
            (Side::Buy, OrderType::Limit(Price(5)), "default")
        );
        let m = req(json!({"symbol":"X","side":"sell","type":"market","qty":2,"account":"a1"}));
        assert_eq!(validate(&m).unwrap().1, OrderType::Market);
        for bad in [
            json!({"symbol":"","side":"buy","type":"limit","price":5,"qty":1}),
            json!({"symbol":"A B","side":"buy","type":"limit","price":5,"qty":1}),
            json!({"symbol":"A","side":"hold","type":"limit","price":5,"qty":1}),
            json!({"symbol":"A","side":"buy","type":"stop","price":5,"qty":1}),
            json!({"symbol":"A","side":"buy","type":"limit","qty":1}),
            json!({"symbol":"A","side":"buy","type":"limit","price":0,"qty":1}),
            json!({"symbol":"A","side":"buy","type":"market","price":3,"qty":1}),
            json!({"symbol":"A","side":"buy","type":"limit","price":5,"qty":0}),
            json!({"symbol":"A","side":"buy","type":"limit","price":5,"qty":1,"client_id":""}),
        ] {
            assert_eq!(
                validate(&req(bad.clone())).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<PlaceOrder>(
            json!({"symbol":"A","side":"buy","type":"limit","qty":1,"bogus":1})
        )
        .is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("12").unwrap(), 12);
        assert!(parse_id("0").is_err());
        assert!(parse_id("-3").is_err());
        assert!(parse_id("abc").is_err());
    }
}
