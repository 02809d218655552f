//! Postgres text values → Directus JSON, the shapes `db::items::read`'s `render()` serves for
//! the same column, so a realtime event and a REST read of one row agree.
//!
//! The shapes are those of node-pg as Directus passes them on: `bigint` and `numeric` as
//! strings, `timestamptz` as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`, `timestamp` without zone or
//! fraction, `date` as `YYYY-MM-DD`, `json` parsed, and types Directus has no type for (arrays,
//! intervals, …) as their text. Input is pgoutput's text output, which depends on the walsender
//! session's `DateStyle`: the replication connection must keep it `ISO` (the default).

use serde_json::{Number, Value};

use crate::core::field_type::FieldType;

/// A text value did not have the shape its type's output function produces. The value itself
/// is not kept: row values never reach logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {expected} text from Postgres")]
pub struct ValueError {
    pub expected: &'static str,
}

/// Built-in type oids (`pg_type.oid`, fixed across versions) and their `typname`.
const BUILT_IN: &[(u32, &str)] = &[
    (16, "bool"),
    (18, "char"),
    (19, "name"),
    (20, "int8"),
    (21, "int2"),
    (23, "int4"),
    (25, "text"),
    (114, "json"),
    (700, "float4"),
    (701, "float8"),
    (1042, "bpchar"),
    (1043, "varchar"),
    (1082, "date"),
    (1083, "time"),
    (1114, "timestamp"),
    (1184, "timestamptz"),
    (1266, "timetz"),
    (1700, "numeric"),
    (2950, "uuid"),
    (3802, "jsonb"),
];

/// The Directus type of a column from its type oid alone; `Unknown` for types not built in.
///
/// Prefer the schema snapshot's [`FieldType`] when there is one: only it knows the `special`
/// flags that make a `text` column `csv` or a `varchar` column `hash`.
pub fn field_type(type_oid: u32) -> FieldType {
    let typname = BUILT_IN
        .iter()
        .find(|(oid, _)| *oid == type_oid)
        .map_or("", |(_, name)| *name);
    FieldType::from_postgres(typname, &[])
}

/// The JSON Directus serves for a column of type `field_type` holding `text` (`None` = null).
pub fn to_json(field_type: FieldType, text: Option<&str>) -> Result<Value, ValueError> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    Ok(match field_type {
        FieldType::Integer => {
            let n: i64 = text.parse().map_err(|_| malformed("integer"))?;
            Value::Number(n.into())
        }
        // Postgres's JSON writes a float's text when it is a valid JSON number, else a string
        // (NaN, Infinity). Parsing it as JSON keeps `1` an integer, as Postgres's JSON has it.
        FieldType::Float if is_json_number(text) => {
            Value::Number(serde_json::from_str::<Number>(text).map_err(|_| malformed("float"))?)
        }
        FieldType::Float => Value::String(text.to_string()),
        FieldType::Boolean => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(malformed("boolean")),
        },
        FieldType::Json => serde_json::from_str(text).map_err(|_| malformed("json"))?,
        FieldType::Timestamp => timestamptz(text)?,
        FieldType::DateTime => timestamp(text)?,
        FieldType::Date => date(text)?,
        // `case when c = '' then '[]' else to_json(string_to_array(c, ',')) end`.
        FieldType::Csv => Value::Array(
            text.split(',')
                .filter(|_| !text.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        FieldType::Hash if text.is_empty() => Value::Null,
        FieldType::Hash => Value::String("**********".into()),
        // bigint and numeric (node-pg strings), time, arrays and unknown types (`::text`), and
        // strings, uuids and aliases as themselves.
        FieldType::String
        | FieldType::Text
        | FieldType::BigInteger
        | FieldType::Decimal
        | FieldType::Uuid
        | FieldType::Time
        | FieldType::Alias
        | FieldType::Unknown => Value::String(text.to_string()),
    })
}

/// [`to_json`] for a column known only by its type oid (see [`field_type`]).
pub fn to_json_by_oid(type_oid: u32, text: Option<&str>) -> Result<Value, ValueError> {
    to_json(field_type(type_oid), text)
}

fn malformed(expected: &'static str) -> ValueError {
    ValueError { expected }
}

/// JSON's number grammar, which Postgres checks before writing a float unquoted.
fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// A date and time of day as Postgres's ISO output spells them, with the year astronomical
/// (1 BC = 0), as Postgres keeps it internally.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    seconds_of_day: i64,
    micros: u32,
}

/// `to_char(c at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`; infinite values are null,
/// as `to_char` returns for them.
fn timestamptz(text: &str) -> Result<Value, ValueError> {
    const EXPECTED: &str = "timestamptz";
    if is_infinite(text) {
        return Ok(Value::Null);
    }
    let (text, bc) = strip_bc(text);
    let (civil, rest) = date_time(text, bc).ok_or(malformed(EXPECTED))?;
    let offset = utc_offset(rest).ok_or(malformed(EXPECTED))?;
    // Shift to UTC through a day count, so days, months and years carry correctly.
    let days = days_from_civil(civil.year, civil.month, civil.day);
    let total = (days * 86_400 + civil.seconds_of_day)
        .checked_sub(offset)
        .ok_or(malformed(EXPECTED))?;
    let (year, month, day) = civil_from_days(total.div_euclid(86_400));
    let seconds = total.rem_euclid(86_400);
    Ok(Value::String(format!(
        "{}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        display_year(year),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        // `MS` truncates, it does not round.
        civil.micros / 1000,
    )))
}

/// `to_char(c, 'YYYY-MM-DD"T"HH24:MI:SS')`.
fn timestamp(text: &str) -> Result<Value, ValueError> {
    const EXPECTED: &str = "timestamp";
    if is_infinite(text) {
        return Ok(Value::Null);
    }
    let (text, bc) = strip_bc(text);
    let (civil, rest) = date_time(text, bc).ok_or(malformed(EXPECTED))?;
    if !rest.is_empty() {
        return Err(malformed(EXPECTED));
    }
    let seconds = civil.seconds_of_day;
    Ok(Value::String(format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}",
        display_year(civil.year),
        civil.month,
        civil.day,
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
    )))
}

/// `to_char(c, 'YYYY-MM-DD')`.
fn date(text: &str) -> Result<Value, ValueError> {
    if is_infinite(text) {
        return Ok(Value::Null);
    }
    let (text, bc) = strip_bc(text);
    let (year, month, day, rest) = ymd(text, bc).ok_or(malformed("date"))?;
    if !rest.is_empty() {
        return Err(malformed("date"));
    }
    Ok(Value::String(format!(
        "{}-{month:02}-{day:02}",
        display_year(year)
    )))
}

fn is_infinite(text: &str) -> bool {
    text == "infinity" || text == "-infinity"
}

fn strip_bc(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(text) => (text, true),
        None => (text, false),
    }
}

/// `to_char`'s `YYYY`: the year as written (1 BC is 0001), at least four digits.
fn display_year(astronomical: i64) -> String {
    let year = if astronomical <= 0 {
        1 - astronomical
    } else {
        astronomical
    };
    format!("{year:04}")
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` and what follows it.
fn date_time(text: &str, bc: bool) -> Option<(Civil, &str)> {
    let (year, month, day, rest) = ymd(text, bc)?;
    let rest = rest.strip_prefix(' ')?;
    let (hour, rest) = fixed_digits(rest, 2)?;
    let (minute, rest) = fixed_digits(rest.strip_prefix(':')?, 2)?;
    let (second, mut rest) = fixed_digits(rest.strip_prefix(':')?, 2)?;
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 6 {
            return None;
        }
        let (digits, after) = fraction.split_at_checked(len)?;
        micros = digits.parse::<u32>().ok()? * 10u32.pow(6 - len as u32);
        rest = after;
    }
    // 24:00:00 is a valid time of day in Postgres; it carries into the next day below.
    if hour > 24 || minute > 59 || second > 60 {
        return None;
    }
    let civil = Civil {
        year,
        month,
        day,
        seconds_of_day: i64::from(hour * 3600 + minute * 60 + second),
        micros,
    };
    Some((civil, rest))
}

/// `YYYY-MM-DD` (the year may have more digits) as an astronomical year, month and day.
fn ymd(text: &str, bc: bool) -> Option<(i64, u32, u32, &str)> {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    if !(4..=7).contains(&len) {
        return None;
    }
    let (year, rest) = text.split_at_checked(len)?;
    let year: i64 = year.parse().ok()?;
    let (month, rest) = fixed_digits(rest.strip_prefix('-')?, 2)?;
    let (day, rest) = fixed_digits(rest.strip_prefix('-')?, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year == 0 {
        return None;
    }
    let year = if bc { 1 - year } else { year };
    Some((year, month, day, rest))
}

fn fixed_digits(text: &str, len: usize) -> Option<(u32, &str)> {
    let (digits, rest) = text.split_at_checked(len)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, rest))
}

/// `±HH[:MM[:SS]]` (Postgres prints minutes and seconds only when non-zero) as seconds east of
/// UTC.
fn utc_offset(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    let (hours, mut rest) = fixed_digits(rest, 2)?;
    let mut seconds = i64::from(hours) * 3600;
    for unit in [60, 1] {
        let Some(more) = rest.strip_prefix(':') else {
            break;
        };
        let (n, after) = fixed_digits(more, 2)?;
        seconds += i64::from(n) * unit;
        rest = after;
    }
    rest.is_empty().then_some(sign * seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`),
/// valid for every year Postgres stores.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=12, 1..=31).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests;
