//! Text → JSON per type, with the outputs `render()` gives for the same values (checked against
//! Postgres itself in `tests/pgoutput.rs`).

use serde_json::json;

use super::*;

fn ok(field_type: FieldType, text: &str) -> Value {
    to_json(field_type, Some(text)).unwrap()
}

#[test]
fn type_oids_map_like_introspection_does() {
    assert_eq!(field_type(16), FieldType::Boolean);
    assert_eq!(field_type(21), FieldType::Integer);
    assert_eq!(field_type(23), FieldType::Integer);
    assert_eq!(field_type(20), FieldType::BigInteger);
    assert_eq!(field_type(700), FieldType::Float);
    assert_eq!(field_type(701), FieldType::Float);
    assert_eq!(field_type(1700), FieldType::Decimal);
    assert_eq!(field_type(25), FieldType::Text);
    assert_eq!(field_type(1043), FieldType::String);
    assert_eq!(field_type(1042), FieldType::String);
    assert_eq!(field_type(2950), FieldType::Uuid);
    assert_eq!(field_type(114), FieldType::Json);
    assert_eq!(field_type(3802), FieldType::Json);
    assert_eq!(field_type(1082), FieldType::Date);
    assert_eq!(field_type(1083), FieldType::Time);
    assert_eq!(field_type(1114), FieldType::DateTime);
    assert_eq!(field_type(1184), FieldType::Timestamp);
    // int4[] and anything not built in.
    assert_eq!(field_type(1007), FieldType::Unknown);
    assert_eq!(field_type(16_390), FieldType::Unknown);
}

#[test]
fn null_is_null_for_every_type() {
    for ft in [
        FieldType::Integer,
        FieldType::Json,
        FieldType::Timestamp,
        FieldType::Csv,
        FieldType::Hash,
    ] {
        assert_eq!(to_json(ft, None), Ok(Value::Null));
    }
}

#[test]
fn numbers_follow_node_pg() {
    assert_eq!(ok(FieldType::Integer, "-42"), json!(-42));
    assert_eq!(
        ok(FieldType::BigInteger, "9007199254740993"),
        json!("9007199254740993")
    );
    assert_eq!(ok(FieldType::Decimal, "12.50000"), json!("12.50000"));
    assert_eq!(ok(FieldType::Float, "1.5"), json!(1.5));
    assert_eq!(ok(FieldType::Float, "1"), json!(1));
    assert_eq!(ok(FieldType::Float, "1e+20"), json!(1e20));
    assert_eq!(ok(FieldType::Float, "NaN"), json!("NaN"));
    assert_eq!(ok(FieldType::Float, "-Infinity"), json!("-Infinity"));
    assert!(to_json(FieldType::Integer, Some("x")).is_err());
}

#[test]
fn booleans_strings_uuids_and_json() {
    assert_eq!(ok(FieldType::Boolean, "t"), json!(true));
    assert_eq!(ok(FieldType::Boolean, "f"), json!(false));
    assert!(to_json(FieldType::Boolean, Some("true")).is_err());
    assert_eq!(ok(FieldType::String, "ab  "), json!("ab  "));
    assert_eq!(ok(FieldType::Text, ""), json!(""));
    let uuid = "8f14e45f-ceea-467f-a8f1-9a3c1b8e0e9c";
    assert_eq!(ok(FieldType::Uuid, uuid), json!(uuid));
    assert_eq!(
        ok(FieldType::Json, r#"{"a": [1, {"b": null}], "c": "d"}"#),
        json!({"a": [1, {"b": null}], "c": "d"})
    );
    assert_eq!(
        to_json(FieldType::Json, Some("{")),
        Err(ValueError { expected: "json" })
    );
}

#[test]
fn timestamptz_is_utc_with_truncated_milliseconds() {
    assert_eq!(
        ok(FieldType::Timestamp, "2024-03-15 10:30:00.123999+00"),
        json!("2024-03-15T10:30:00.123Z")
    );
    assert_eq!(
        ok(FieldType::Timestamp, "2024-03-15 10:30:00+00"),
        json!("2024-03-15T10:30:00.000Z")
    );
    // Offsets carry across days, months and years.
    assert_eq!(
        ok(FieldType::Timestamp, "2024-01-01 03:15:00.5+05:45"),
        json!("2023-12-31T21:30:00.500Z")
    );
    assert_eq!(
        ok(FieldType::Timestamp, "2024-02-28 22:00:00-03"),
        json!("2024-02-29T01:00:00.000Z")
    );
    // Local mean time before 1920 has second offsets.
    assert_eq!(
        ok(FieldType::Timestamp, "1900-01-01 05:41:16+05:41:16"),
        json!("1900-01-01T00:00:00.000Z")
    );
    // `YYYY` of 1 BC is 0001, and crossing into it from 1 AD works.
    assert_eq!(
        ok(FieldType::Timestamp, "0001-01-01 00:30:00+01"),
        json!("0001-12-31T23:30:00.000Z")
    );
    assert_eq!(
        ok(FieldType::Timestamp, "0044-03-15 12:00:00+00 BC"),
        json!("0044-03-15T12:00:00.000Z")
    );
    assert_eq!(
        ok(FieldType::Timestamp, "12345-06-07 08:09:10+00"),
        json!("12345-06-07T08:09:10.000Z")
    );
    assert_eq!(ok(FieldType::Timestamp, "infinity"), Value::Null);
    assert_eq!(ok(FieldType::Timestamp, "-infinity"), Value::Null);
}

#[test]
fn timestamp_and_date_keep_their_wall_clock() {
    assert_eq!(
        ok(FieldType::DateTime, "2024-03-15 10:30:00.999999"),
        json!("2024-03-15T10:30:00")
    );
    assert_eq!(
        ok(FieldType::DateTime, "0044-03-15 10:30:00 BC"),
        json!("0044-03-15T10:30:00")
    );
    assert_eq!(ok(FieldType::Date, "2024-02-29"), json!("2024-02-29"));
    assert_eq!(ok(FieldType::Date, "0044-03-15 BC"), json!("0044-03-15"));
    assert_eq!(ok(FieldType::Date, "infinity"), Value::Null);
    assert_eq!(ok(FieldType::Time, "10:30:00.5"), json!("10:30:00.5"));
}

#[test]
fn non_iso_datestyles_are_refused() {
    for text in [
        "03/15/2024 10:30:00 UTC",
        "Fri Mar 15 10:30:00 2024 UTC",
        "2024-03-15T10:30:00+00",
    ] {
        assert!(to_json(FieldType::Timestamp, Some(text)).is_err(), "{text}");
    }
    assert!(to_json(FieldType::DateTime, Some("2024-03-15 10:30:00+00")).is_err());
    assert!(to_json(FieldType::Date, Some("15.03.2024")).is_err());
    assert!(to_json(FieldType::Timestamp, Some("2024-03-15 10:30:00.1234567+00")).is_err());
}

#[test]
fn csv_hash_and_unknown_types() {
    assert_eq!(ok(FieldType::Csv, "a,,b"), json!(["a", "", "b"]));
    assert_eq!(ok(FieldType::Csv, ""), json!([]));
    assert_eq!(ok(FieldType::Hash, "$argon2id$…"), json!("**********"));
    assert_eq!(ok(FieldType::Hash, ""), Value::Null);
    assert_eq!(ok(FieldType::Unknown, "{1,2,NULL}"), json!("{1,2,NULL}"));
    assert_eq!(to_json_by_oid(1007, Some("{1,2}")), Ok(json!("{1,2}")));
    assert_eq!(to_json_by_oid(20, Some("7")), Ok(json!("7")));
}

#[test]
fn day_counts_round_trip_over_the_whole_postgres_range() {
    // 4713 BC (astronomical -4712) to 294276 AD, in steps that hit every day of the month
    // over the centuries.
    let mut days = days_from_civil(-4712, 1, 1);
    let end = days_from_civil(294_276, 12, 31);
    while days <= end {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
        days += 997;
    }
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
}

proptest::proptest! {
    #[test]
    fn any_text_never_panics(text in ".{0,40}") {
        for ft in [FieldType::Integer, FieldType::Float, FieldType::Boolean, FieldType::Json,
                   FieldType::Timestamp, FieldType::DateTime, FieldType::Date, FieldType::Csv] {
            let _ = to_json(ft, Some(&text));
        }
    }

    #[test]
    fn timestamps_like_postgres_prints_them_never_panic(
        text in "[0-9]{4,6}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?[+-][0-9]{2}(:[0-9]{2}){0,2}( BC)?"
    ) {
        let _ = to_json(FieldType::Timestamp, Some(&text));
    }
}
