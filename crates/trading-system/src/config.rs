//! Configuration, read only from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | Postgres URL (`postgres://user@host:port/db`) | required |
//! | `REDIS_URL` | Redis URL (`redis://host:port/db`) | required |
//! | `BIND_ADDR` | listen address | `0.0.0.0:8080` |
//! | `RUST_LOG` / `LOG_LEVEL` | tracing filter (`RUST_LOG` wins) | `info` |
//! | `TS_RISK_MAX_ORDER_QTY` | max lots per order | 10000 |
//! | `TS_RISK_MAX_NOTIONAL` | max ticks × lots per order | 1000000000 |
//! | `TS_RISK_MAX_POSITION` | max abs net position per account and symbol | 100000 |
//! | `TS_RISK_PRICE_BAND_BPS` | price band around last trade, basis points | 1000 |
//! | `TS_FAULT_ERROR_RATE` | testing aid, see [`crate::fault`] | off |
//! | `TS_FAULT_LATENCY_MS` | testing aid, see [`crate::fault`] | off |
//! | `TS_FAULT_UNHEALTHY` | testing aid, see [`crate::fault`] | off |
//! | `TS_FAULT_UNHEALTHY_AFTER` | testing aid, see [`crate::fault`] | off |

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use trading_core::{Qty, RiskLimits};

use crate::fault::FaultConfig;

/// Full service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Postgres connection URL.
    pub database_url: String,
    /// Redis connection URL.
    pub redis_url: String,
    /// Address to listen on.
    pub bind_addr: SocketAddr,
    /// Pre-trade risk limits.
    pub risk: RiskLimits,
    /// Fault injection (off by default).
    pub fault: FaultConfig,
}

/// A configuration problem, reported as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (used by tests).
    ///
    /// ```
    /// use trading_system::Config;
    /// let env = |k: &str| match k {
    ///     "DATABASE_URL" => Some("postgres://app@127.0.0.1:5432/app".to_owned()),
    ///     "REDIS_URL" => Some("redis://127.0.0.1:6379/0".to_owned()),
    ///     "TS_FAULT_LATENCY_MS" => Some("50".to_owned()),
    ///     _ => None,
    /// };
    /// let config = Config::from_lookup(env).unwrap();
    /// assert_eq!(config.bind_addr.port(), 8080);
    /// assert_eq!(config.fault.latency_ms, 50);
    ///
    /// let err = Config::from_lookup(|_| None).unwrap_err();
    /// assert_eq!(err.to_string(), "DATABASE_URL is not set");
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] naming the missing or invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |k: &str| -> Result<String, ConfigError> {
            match get(k) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                _ => Err(ConfigError(format!("{k} is not set"))),
            }
        };
        let database_url = required("DATABASE_URL")?;
        tokio_postgres::Config::from_str(&database_url)
            .map_err(|e| ConfigError(format!("DATABASE_URL is invalid: {e}")))?;
        let redis_url = required("REDIS_URL")?;
        redis::Client::open(redis_url.as_str())
            .map_err(|e| ConfigError(format!("REDIS_URL is invalid: {e}")))?;
        let bind_addr = parse_opt(&get, "BIND_ADDR")?.unwrap_or_else(|| ([0, 0, 0, 0], 8080).into());
        let d = RiskLimits::default();
        let risk = RiskLimits {
            max_order_qty: Qty(parse_opt(&get, "TS_RISK_MAX_ORDER_QTY")?.unwrap_or(d.max_order_qty.0)),
            max_notional: parse_opt(&get, "TS_RISK_MAX_NOTIONAL")?.unwrap_or(d.max_notional),
            max_position: parse_opt(&get, "TS_RISK_MAX_POSITION")?.unwrap_or(d.max_position),
            price_band_bps: parse_opt(&get, "TS_RISK_PRICE_BAND_BPS")?.unwrap_or(d.price_band_bps),
        };
        let error_rate: f64 = parse_opt(&get, "TS_FAULT_ERROR_RATE")?.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(ConfigError(format!(
                "TS_FAULT_ERROR_RATE must be between 0.0 and 1.0, got {error_rate}"
            )));
        }
        let latency_ms: u64 = parse_opt(&get, "TS_FAULT_LATENCY_MS")?.unwrap_or(0);
        let unhealthy = match get("TS_FAULT_UNHEALTHY").as_deref().map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "TS_FAULT_UNHEALTHY must be 0 or 1, got {other:?}"
                )));
            }
        };
        let unhealthy_after = match parse_opt::<f64>(&get, "TS_FAULT_UNHEALTHY_AFTER")? {
            None => None,
            Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(ConfigError(format!(
                    "TS_FAULT_UNHEALTHY_AFTER must be a number of seconds >= 0, got {s}"
                )));
            }
        };
        Ok(Config {
            database_url,
            redis_url,
            bind_addr,
            risk,
            fault: FaultConfig {
                error_rate,
                latency_ms,
                unhealthy,
                unhealthy_after,
            },
        })
    }
}

fn parse_opt<T: FromStr>(get: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: fmt::Display,
{
    match get(key) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| ConfigError(format!("{key} is invalid ({v:?}): {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://u@127.0.0.1:5432/db"),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    ];

    #[test]
    fn defaults() {
        let c = cfg(&BASE).unwrap();
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.risk, RiskLimits::default());
        assert!(!c.fault.unhealthy);
        assert!(c.fault.error_rate.abs() < f64::EPSILON);
    }

    #[test]
    fn missing_vars() {
        assert_eq!(cfg(&[]).unwrap_err().0, "DATABASE_URL is not set");
        assert_eq!(cfg(&BASE[..1]).unwrap_err().0, "REDIS_URL is not set");
    }

    #[test]
    fn invalid_values() {
        let mut v = BASE.to_vec();
        v.push(("BIND_ADDR", "nope"));
        assert!(cfg(&v).unwrap_err().0.starts_with("BIND_ADDR is invalid"));
        let mut v = BASE.to_vec();
        v.push(("TS_FAULT_ERROR_RATE", "1.5"));
        assert!(cfg(&v).unwrap_err().0.contains("between 0.0 and 1.0"));
        let mut v = BASE.to_vec();
        v.push(("TS_FAULT_UNHEALTHY", "yes"));
        assert!(cfg(&v).is_err());
        let mut v = BASE.to_vec();
        v.push(("TS_FAULT_UNHEALTHY_AFTER", "-1"));
        assert!(cfg(&v).unwrap_err().0.contains("seconds >= 0"));
        let v = [("DATABASE_URL", "postgres://u@h:notaport/db"), BASE[1]];
        assert!(cfg(&v).unwrap_err().0.starts_with("DATABASE_URL is invalid"));
        let v = [BASE[0], ("REDIS_URL", "http://x")];
        assert!(cfg(&v).unwrap_err().0.starts_with("REDIS_URL is invalid"));
    }

    #[test]
    fn fault_and_risk_overrides() {
        let mut v = BASE.to_vec();
        v.extend([
            ("TS_FAULT_ERROR_RATE", "0.25"),
            ("TS_FAULT_LATENCY_MS", "40"),
            ("TS_FAULT_UNHEALTHY", "1"),
            ("TS_FAULT_UNHEALTHY_AFTER", "2.5"),
            ("TS_RISK_MAX_ORDER_QTY", "5"),
            ("BIND_ADDR", "127.0.0.1:0"),
        ]);
        let c = cfg(&v).unwrap();
        assert!((c.fault.error_rate - 0.25).abs() < f64::EPSILON);
        assert_eq!(c.fault.latency_ms, 40);
        assert!(c.fault.unhealthy);
        assert_eq!(c.fault.unhealthy_after, Some(Duration::from_millis(2500)));
        assert_eq!(c.risk.max_order_qty, Qty(5));
    }
}
