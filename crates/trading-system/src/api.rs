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
use trading_core::{OrderStatus, OrderType, Price, Qty, Side};

use crate::db::{self, OrderRow};
use crate::sequencer::{Outcome, Place, Work};
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

/// Order entry: the body of `POST /orders` parsed and validated, exactly as the handler
/// does it (public so the fuzz target exercises the real code path). Never panics.
///
/// # Errors
/// A 400 `ApiError` naming what is wrong with the body.
pub fn parse_order(body: &[u8]) -> Result<(PlaceOrder, Validated), ApiError> {
    let req: PlaceOrder =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let valid = validate(&req)?;
    Ok((req, valid))
}

/// `POST /orders`.
pub async fn place_order(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let (req, (side, kind, client_id, account)) =
        parse_order(&body).inspect_err(|_| app.metrics.reject("invalid_request"))?;
    let work = Work::Place(Place {
        symbol: req.symbol,
        side,
        kind,
        qty: Qty(req.qty),
        client_id,
        account,
    });
    let outcome = app.sequencer.run(work).await.map_err(|e| {
        ApiError::unavailable(format!(
            "order not accepted: it could not be persisted ({e}); retry later"
        ))
    })?;
    match outcome {
        Outcome::Placed {
            row,
            remaining,
            fills,
        } => {
            app.metrics.orders.fetch_add(1, Ordering::Relaxed);
            app.metrics.fills.fetch_add(fills.len() as u64, Ordering::Relaxed);
            let mut view = OrderView::from_row(row, remaining);
            view.fills = Some(
                fills
                    .iter()
                    .map(|f| FillView {
                        maker_order_id: f.maker,
                        price: f.price,
                        qty: f.qty,
                    })
                    .collect(),
            );
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
        Outcome::Rejected(rej) => {
            app.metrics.reject(rej.rule());
            Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: rej.to_string(),
                rule: Some(rej.rule()),
            })
        }
        Outcome::Cancelled | Outcome::NotOpen => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected outcome for a new order",
        )),
    }
}

/// A validated order: side, type (with its price), client id, account.
pub type Validated = (Side, OrderType, Option<String>, String);

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
    let row = find_order(&app, id).await?;
    let remaining = if is_live(&row.status) {
        row.qty - row.filled
    } else {
        0
    };
    Ok(Json(OrderView::from_row(row, remaining)))
}

/// `DELETE /orders/{id}`.
pub async fn cancel_order(
    State(app): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&raw)?;
    let row = find_order(&app, id).await?;
    if is_live(&row.status) {
        let work = Work::Cancel {
            id: id.unsigned_abs(),
            symbol: row.symbol,
        };
        let outcome = app.sequencer.run(work).await.map_err(ApiError::unavailable)?;
        if matches!(outcome, Outcome::Cancelled) {
            return Ok(Json(OrderView::from_row(find_order(&app, id).await?, 0)));
        }
    }
    // Filled or cancelled, possibly by another instance a moment ago.
    let row = find_order(&app, id).await?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!("order {id} is not open (status {})", row.status),
    ))
}

fn is_live(status: &str) -> bool {
    status == OrderStatus::Open.as_str() || status == OrderStatus::PartiallyFilled.as_str()
}

async fn find_order(app: &AppState, id: i64) -> Result<OrderRow, ApiError> {
    let client = app.pg.get().await.map_err(ApiError::unavailable)?;
    db::get_order(&client, id)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("order {id} not found")))
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
    let core = app.caught_up(Some(&symbol)).await?;
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
pub async fn get_positions(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let core = app.caught_up(None).await?;
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
    Ok(Json(json!({ "positions": out })).into_response())
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
    let unhealthy = app.faults.unhealthy();
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
