//! JavaScript value semantics Directus's handlers lean on without saying so: `String(x)` (a
//! subscription's `uid` and `item`, a collab room's hash input), truthiness (`if (message.id)`),
//! and how `JSON.parse` + `JSON.stringify` reprint a number (`1.0` comes back as `1`).

use serde_json::{Number, Value};

/// `String(value)`.
pub fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_string(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                // Array.prototype.join prints null and undefined as nothing.
                Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript truthiness of a present value.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The number JavaScript would hold after `JSON.parse`: integral floats become integers, so an
/// echoed `1.0` or `1e2` prints as `1` or `100`, as Directus echoes it.
pub fn js_number(value: Value) -> Value {
    match &value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            // Only where an i64 holds it exactly; beyond 2^53 JavaScript has lost digits anyway.
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => Value::from(f as i64),
            _ => value,
        },
        _ => value,
    }
}

/// `Number.prototype.toString()`: exponent form from 1e21 and below 1e-6, as JavaScript does.
fn number_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 {
        return "0".into();
    }
    if f.abs() >= 1e21 || f.abs() < 1e-6 {
        // Rust writes `1e21` and `1.5e-7`; JavaScript writes `1e+21` and `1.5e-7`.
        let text = format!("{f:e}");
        return match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        };
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_as_javascript_prints_them() {
        assert_eq!(js_string(&json!(5)), "5");
        assert_eq!(js_string(&json!(-5)), "-5");
        assert_eq!(js_string(&json!(1.5)), "1.5");
        assert_eq!(js_string(&json!(1.0)), "1");
        assert_eq!(js_string(&json!(1e21)), "1e+21");
        assert_eq!(js_string(&json!(1.5e-7)), "1.5e-7");
        assert_eq!(js_string(&json!(0.000001)), "0.000001");
        assert_eq!(js_string(&json!(["auth"])), "auth");
        assert_eq!(js_string(&json!([1, null, "a"])), "1,,a");
        assert_eq!(js_string(&json!({})), "[object Object]");
        assert_eq!(js_string(&json!(null)), "null");
        assert_eq!(js_string(&json!(true)), "true");
    }

    #[test]
    fn truthiness() {
        for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for t in [json!(true), json!(1), json!("0"), json!([]), json!({})] {
            assert!(truthy(&t), "{t}");
        }
    }

    #[test]
    fn integral_floats_print_as_integers() {
        assert_eq!(js_number(json!(1.0)).to_string(), "1");
        assert_eq!(js_number(json!(-0.0)).to_string(), "0");
        assert_eq!(js_number(json!(1.5)).to_string(), "1.5");
        assert_eq!(js_number(json!("1.0")), json!("1.0"));
    }
}
