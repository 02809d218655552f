//! Filter values coerced to their field's type, so SQL and the in-memory evaluator compare the
//! same thing the same way. `$NOW` is resolved here against a `now` the caller passes in (core
//! reads no clock).

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;

use crate::core::field_type::FieldType;

/// A typed filter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    Timestamp(DateTime<Utc>),
    Json(Value),
}

impl Scalar {
    /// The value as Postgres input text (bound as a parameter and cast to the column type).
    pub fn to_sql_text(&self) -> Option<String> {
        Some(match self {
            Scalar::Null => return None,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
            Scalar::Date(d) => d.format("%Y-%m-%d").to_string(),
            Scalar::Time(t) => t.format("%H:%M:%S%.f").to_string(),
            Scalar::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            Scalar::Timestamp(t) => t.to_rfc3339(),
            Scalar::Json(v) => v.to_string(),
        })
    }
}

/// Coerces a JSON filter value to `field_type`. `what` names the field in errors.
pub fn coerce(
    value: &Value,
    field_type: FieldType,
    now: DateTime<Utc>,
    what: &str,
) -> Result<Scalar, String> {
    // Directus's wording for numbers; a clearer one for the types it would answer with a 500.
    let wrong = || match field_type {
        FieldType::Integer | FieldType::BigInteger | FieldType::Float | FieldType::Decimal => {
            "Invalid numeric value".to_string()
        }
        _ => format!(
            "Invalid value {} for field \"{what}\" of type {field_type}",
            short(value)
        ),
    };
    if value.is_null() {
        return Ok(Scalar::Null);
    }
    if let Some(text) = value.as_str()
        && let Some(moment) = dynamic_now(text, now)?
    {
        return match field_type {
            FieldType::Timestamp => Ok(Scalar::Timestamp(moment)),
            FieldType::DateTime => Ok(Scalar::DateTime(moment.naive_utc())),
            FieldType::Date => Ok(Scalar::Date(moment.date_naive())),
            FieldType::Time => Ok(Scalar::Time(moment.time())),
            _ => Err(wrong()),
        };
    }
    let text = match value {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    Ok(match field_type {
        FieldType::Integer | FieldType::BigInteger => match value {
            Value::Number(n) => Scalar::Int(n.as_i64().ok_or_else(wrong)?),
            Value::String(s) => Scalar::Int(s.trim().parse().map_err(|_| wrong())?),
            _ => return Err(wrong()),
        },
        FieldType::Float | FieldType::Decimal => {
            let f = match value {
                Value::Number(n) => n.as_f64().ok_or_else(wrong)?,
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| wrong())?,
                _ => return Err(wrong()),
            };
            if !f.is_finite() {
                return Err(wrong());
            }
            Scalar::Float(f)
        }
        FieldType::Boolean => match value {
            Value::Bool(b) => Scalar::Bool(*b),
            Value::String(s) if s == "true" || s == "1" => Scalar::Bool(true),
            Value::String(s) if s == "false" || s == "0" => Scalar::Bool(false),
            Value::Number(n) if n.as_i64() == Some(1) => Scalar::Bool(true),
            Value::Number(n) if n.as_i64() == Some(0) => Scalar::Bool(false),
            _ => return Err(wrong()),
        },
        FieldType::Uuid => {
            let parsed = text
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or_else(wrong)?;
            Scalar::Text(parsed.hyphenated().to_string())
        }
        FieldType::Date => Scalar::Date(text.and_then(parse_date).ok_or_else(wrong)?),
        FieldType::Time => Scalar::Time(text.and_then(parse_time).ok_or_else(wrong)?),
        FieldType::DateTime => Scalar::DateTime(text.and_then(parse_datetime).ok_or_else(wrong)?),
        FieldType::Timestamp => Scalar::Timestamp(text.and_then(parse_timestamp).ok_or_else(wrong)?),
        FieldType::Json => Scalar::Json(value.clone()),
        FieldType::String | FieldType::Text | FieldType::Csv | FieldType::Hash | FieldType::Unknown => {
            match value {
                Value::String(s) if !s.contains('\0') => Scalar::Text(s.clone()),
                Value::Number(n) => Scalar::Text(n.to_string()),
                Value::Bool(b) => Scalar::Text(b.to_string()),
                _ => return Err(wrong()),
            }
        }
        FieldType::Alias => return Err(wrong()),
    })
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime(s).map(|d| d.date()))
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .ok()
        .or_else(|| NaiveTime::parse_from_str(s, "%H:%M").ok())
}

fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|d| d.naive_utc()))
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
        .or_else(|| {
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z")
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
        // Without an offset Directus (Node) reads the time as UTC.
        .or_else(|| parse_datetime(s).map(|d| d.and_utc()))
}

/// `$NOW`, `$NOW(-1 year)`, `$NOW(+2d)`, `$NOW(-90 minutes)`: `Ok(None)` when `text` is not one.
/// Directus's grammar (`adjust-date.ts`): an optional sign, a number, an optional unit (default
/// days) from its list of spellings.
pub fn dynamic_now(text: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(rest) = text.strip_prefix("$NOW") else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(Some(now));
    }
    let bad = || format!("Invalid date adjustment \"{text}\"");
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(bad)?
        .trim();
    let (negative, body) = match inner.as_bytes().first() {
        Some(b'-') => (true, &inner[1..]),
        Some(b'+') => (false, &inner[1..]),
        _ => (false, inner),
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let amount: f64 = number.parse().map_err(|_| bad())?;
    let amount = if negative { -amount } else { amount };
    if !amount.is_finite() || amount.abs() > 1e7 {
        return Err(bad());
    }
    let unit = unit.trim().to_ascii_lowercase();
    let millis = |per: f64| now.checked_add_signed(Duration::milliseconds((amount * per) as i64));
    let months = |m: f64| -> Option<DateTime<Utc>> {
        let m = m.trunc() as i64;
        let m32 = u32::try_from(m.unsigned_abs()).ok()?;
        if m >= 0 {
            now.checked_add_months(Months::new(m32))
        } else {
            now.checked_sub_months(Months::new(m32))
        }
    };
    let moved = match unit.as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => millis(1.0),
        "s" | "sec" | "secs" | "second" | "seconds" => millis(1_000.0),
        "m" | "min" | "mins" | "minute" | "minutes" => millis(60_000.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => millis(3_600_000.0),
        "" | "d" | "day" | "days" => millis(86_400_000.0),
        "w" | "week" | "weeks" => millis(604_800_000.0),
        "mo" | "mth" | "mths" | "month" | "months" => months(amount),
        "y" | "yr" | "yrs" | "year" | "years" => months(amount * 12.0),
        _ => None,
    };
    moved.map(Some).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn values_take_the_field_type() {
        assert_eq!(
            coerce(&json!("5"), FieldType::Integer, now(), "n"),
            Ok(Scalar::Int(5))
        );
        assert_eq!(
            coerce(&json!(5), FieldType::String, now(), "s"),
            Ok(Scalar::Text("5".into()))
        );
        assert_eq!(
            coerce(&json!("true"), FieldType::Boolean, now(), "b"),
            Ok(Scalar::Bool(true))
        );
        assert!(coerce(&json!("abc"), FieldType::Integer, now(), "n").is_err());
        assert!(coerce(&json!("not-a-uuid"), FieldType::Uuid, now(), "u").is_err());
        assert!(coerce(&json!({"a": 1}), FieldType::String, now(), "s").is_err());
        assert!(coerce(&json!(1e300), FieldType::Integer, now(), "n").is_err());
    }

    #[test]
    fn now_adjustments_follow_directus() {
        let ts = |s: &str| coerce(&json!(s), FieldType::Timestamp, now(), "t").unwrap();
        assert_eq!(ts("$NOW"), Scalar::Timestamp(now()));
        assert_eq!(
            ts("$NOW(-1 year)").to_sql_text().unwrap(),
            "2023-03-31T12:00:00+00:00"
        );
        assert_eq!(
            ts("$NOW(+2 hours)").to_sql_text().unwrap(),
            "2024-03-31T14:00:00+00:00"
        );
        assert_eq!(
            ts("$NOW(-1 month)").to_sql_text().unwrap(),
            "2024-02-29T12:00:00+00:00"
        );
        assert_eq!(
            ts("$NOW(+2d)").to_sql_text().unwrap(),
            "2024-04-02T12:00:00+00:00"
        );
        assert_eq!(
            ts("$NOW(-90 minutes)").to_sql_text().unwrap(),
            "2024-03-31T10:30:00+00:00"
        );
        assert_eq!(ts("$NOW(1)").to_sql_text().unwrap(), "2024-04-01T12:00:00+00:00");
        assert!(coerce(&json!("$NOW(soon)"), FieldType::Timestamp, now(), "t").is_err());
        assert!(coerce(&json!("$NOW"), FieldType::Integer, now(), "n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn coercion_never_panics(text in ".{0,30}") {
            for t in crate::core::field_type::CREATABLE {
                let _ = coerce(&Value::String(text.clone()), *t, now(), "f");
            }
        }
    }
}
