//! What a gateway publishes about itself in `GET /api/status` that a sync records: its price
//! (`quota_per_unit`, quota units per US dollar), how it shows quota, its dollar exchange rate
//! and its version (new-api's `controller/misc.go` `GetStatus`; one-api has the same endpoint).
//!
//! The price is read, never trusted blindly: only a positive whole number that fits a 64-bit
//! integer is one. Anything else (missing, text, zero, negative, fractional, huge) leaves the
//! sync without a price, and reports then fall back to the price recorded before, else 500000.

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// One reading of `GET /api/status`, as a sync records it.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayStatus {
    /// Quota units per US dollar, when the gateway published a usable one.
    pub quota_per_unit: Option<i64>,
    /// `USD`, `CNY`, `TOKENS`, `CUSTOM`: how the gateway's own pages show quota.
    pub quota_display_type: Option<String>,
    pub usd_exchange_rate: Option<f64>,
    pub version: Option<String>,
    /// Why there is no price, for the warning that says so; `None` when there is one.
    pub no_price: Option<String>,
}

impl GatewayStatus {
    /// A pull that could not read the endpoint (`why`): nothing to record.
    pub fn unread(why: String) -> GatewayStatus {
        GatewayStatus {
            quota_per_unit: None,
            quota_display_type: None,
            usd_exchange_rate: None,
            version: None,
            no_price: Some(why),
        }
    }
}

/// Reads the body of a successful `GET /api/status`. An error when it is not the gateway's
/// envelope (not JSON, `success` not true, no `data` object); an envelope without a usable
/// `quota_per_unit` is a status without a price, its other fields still recorded.
pub(crate) fn parse_gateway_status(body: &[u8]) -> Result<GatewayStatus> {
    let bad = |what: &str| Error::Api(format!("/api/status: {what}"));
    let envelope: Json = serde_json::from_slice(body)
        .map_err(|_| bad("the response is not JSON; the gateway may not publish its price"))?;
    if envelope.get("success") != Some(&Json::Bool(true)) {
        let message = envelope.get("message").and_then(Json::as_str);
        return Err(bad(&format!(
            "the gateway did not answer success:true{}",
            message.map(|m| format!(": {m}")).unwrap_or_default()
        )));
    }
    let Some(data) = envelope.get("data").and_then(Json::as_object) else {
        return Err(bad("the response has no `data` object"));
    };
    let text = |name| data.get(name).and_then(Json::as_str).map(str::to_string);
    let quota_per_unit = price(data);
    Ok(GatewayStatus {
        no_price: quota_per_unit.as_ref().err().cloned(),
        quota_per_unit: quota_per_unit.ok(),
        quota_display_type: text("quota_display_type"),
        usd_exchange_rate: data
            .get("usd_exchange_rate")
            .and_then(Json::as_f64)
            .filter(|rate| rate.is_finite()),
        version: text("version"),
    })
}

/// `data.quota_per_unit` as a price: a positive whole number within 64 bits, written as an
/// integer or as a float with no fraction (`500000.0`); else why it is not one.
fn price(data: &Map<String, Json>) -> std::result::Result<i64, String> {
    let not_a_price = |value: &Json| {
        format!("/api/status sent quota_per_unit {value}, not a positive whole number")
    };
    let value = match data.get("quota_per_unit") {
        None | Some(Json::Null) => return Err("/api/status has no quota_per_unit".into()),
        Some(value) => value,
    };
    let Json::Number(number) = value else {
        return Err(not_a_price(value));
    };
    // Past 2^63 a float is no i64 (and `as` would saturate): 2^63 itself is refused.
    let whole = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0)
            .map(|f| f as i64)
    });
    whole.filter(|n| *n > 0).ok_or_else(|| not_a_price(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(data: &str) -> GatewayStatus {
        let body = format!(r#"{{"success":true,"message":"","data":{data}}}"#);
        parse_gateway_status(body.as_bytes()).unwrap()
    }

    fn price_of(value: &str) -> Option<i64> {
        status(&format!(r#"{{"quota_per_unit":{value}}}"#)).quota_per_unit
    }

    #[test]
    fn reads_what_new_api_publishes() {
        let read = status(
            r#"{"quota_per_unit":500000,"quota_display_type":"CNY","usd_exchange_rate":7.3,
                "custom_currency_symbol":"¤","enable_data_export":true,"version":"v0.9.0"}"#,
        );
        assert_eq!(
            read,
            GatewayStatus {
                quota_per_unit: Some(500_000),
                quota_display_type: Some("CNY".into()),
                usd_exchange_rate: Some(7.3),
                version: Some("v0.9.0".into()),
                no_price: None,
            }
        );
    }

    #[test]
    fn only_a_positive_whole_number_within_64_bits_is_a_price() {
        assert_eq!(price_of("500000"), Some(500_000));
        assert_eq!(price_of("500000.0"), Some(500_000));
        assert_eq!(price_of("5e5"), Some(500_000));
        assert_eq!(price_of("9223372036854775807"), Some(i64::MAX));
        for refused in [
            "0",
            "-500000",
            "0.5",
            "500000.5",
            "\"500000\"",
            "true",
            "null",
            "[500000]",
            "9223372036854775808",
            "9223372036854775808.0",
            "1e300",
        ] {
            assert_eq!(price_of(refused), None, "{refused}");
        }
    }

    #[test]
    fn without_a_price_the_rest_is_kept_and_the_reason_given() {
        let read = status(r#"{"quota_per_unit":-5,"version":"v1.0.0","usd_exchange_rate":"7"}"#);
        assert_eq!(read.version.as_deref(), Some("v1.0.0"));
        assert_eq!(read.usd_exchange_rate, None);
        assert_eq!(
            read.no_price.as_deref(),
            Some("/api/status sent quota_per_unit -5, not a positive whole number")
        );
        let read = status(r#"{"display_in_currency":true}"#);
        assert_eq!(
            read.no_price.as_deref(),
            Some("/api/status has no quota_per_unit")
        );
    }

    #[test]
    fn bodies_that_are_not_the_envelope_are_errors() {
        let error = |body: &str| {
            parse_gateway_status(body.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("<html>Not Found</html>"),
            "/api/status: the response is not JSON; the gateway may not publish its price"
        );
        assert_eq!(
            error(r#"{"success":false,"message":"boom"}"#),
            "/api/status: the gateway did not answer success:true: boom"
        );
        assert_eq!(
            error(r#"{"success":true,"data":[]}"#),
            "/api/status: the response has no `data` object"
        );
    }
}
