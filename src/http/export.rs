//! `?export=json|csv|csv_utf8`: item reads as a file download, as Directus writes them
//! (`JSON.stringify(data, null, '\t')`; CSV with nested objects flattened to `a.b` columns).

use actix_web::HttpResponse;
use serde_json::{Map, Value};

use crate::error::Error;

/// A download format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Json,
    Csv,
    /// CSV with a UTF-8 byte-order mark, for spreadsheet programs.
    CsvUtf8,
}

impl Export {
    /// Parses `export`; `None` when absent.
    pub fn parse(value: Option<&Value>) -> Result<Option<Export>, Error> {
        let Some(value) = value else { return Ok(None) };
        match value.as_str() {
            Some("json") => Ok(Some(Export::Json)),
            Some("csv") => Ok(Some(Export::Csv)),
            Some("csv_utf8") => Ok(Some(Export::CsvUtf8)),
            Some(format @ ("xml" | "yaml")) => {
                Err(Error::query(format!("Exporting as {format} is not supported")))
            }
            _ => Err(Error::query(
                "\"export\" must be one of [csv, csv_utf8, json, xml, yaml]",
            )),
        }
    }

    /// The download response for these rows (JSON texts) of `collection`.
    pub fn respond(self, collection: &str, rows: &[String]) -> Result<HttpResponse, Error> {
        let values: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::from_str(r))
            .collect::<Result<_, _>>()
            .map_err(Error::internal)?;
        let stamp = chrono::Utc::now().format("%Y-%m-%d at %H.%M.%S");
        let (body, extension, content_type) = match self {
            Export::Json => (
                pretty(&Value::Array(values))?,
                "json",
                "application/json; charset=utf-8",
            ),
            Export::Csv => (csv(&values), "csv", "text/csv; charset=utf-8"),
            Export::CsvUtf8 => (
                format!("\u{feff}{}", csv(&values)),
                "csv",
                "text/csv; charset=utf-8",
            ),
        };
        // The name comes from the schema snapshot; quotes are dropped so the header stays valid.
        let filename = format!("{} {stamp}.{extension}", collection.replace(['"', '\\'], ""));
        Ok(HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{filename}\""),
            ))
            .body(body))
    }
}

/// JSON indented with tabs, as `JSON.stringify(data, null, '\t')`.
fn pretty(value: &Value) -> Result<String, Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut serializer).map_err(Error::internal)?;
    String::from_utf8(out).map_err(Error::internal)
}

/// CSV: one column per flattened key (first-seen order), strings quoted, `null` empty.
pub fn csv(rows: &[Value]) -> String {
    let flat: Vec<Map<String, Value>> = rows
        .iter()
        .map(|row| {
            let mut out = Map::new();
            flatten("", row, &mut out);
            out
        })
        .collect();
    let mut columns: Vec<String> = Vec::new();
    for row in &flat {
        for key in row.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let mut out = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
    for row in &flat {
        out.push('\n');
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match row.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(Value::Array(_) | Value::Object(_)) => quote(&row[c].to_string()),
                Some(other) => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
    }
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, inner, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_flattens_and_quotes() {
        let rows = vec![
            json!({"id": 1, "title": "A \"quoted\", title", "author": {"name": "Ann"}, "tags": ["x"]}),
            json!({"id": 2, "title": null, "author": null, "extra": true}),
        ];
        assert_eq!(
            csv(&rows),
            "\"id\",\"title\",\"author.name\",\"tags\",\"author\",\"extra\"\n\
             1,\"A \"\"quoted\"\", title\",\"Ann\",\"[\"\"x\"\"]\",,\n\
             2,,,,,true"
        );
    }

    #[test]
    fn unknown_formats_are_invalid_queries() {
        assert!(Export::parse(Some(&json!("pdf"))).is_err());
        assert!(Export::parse(Some(&json!("xml"))).is_err());
        assert_eq!(Export::parse(Some(&json!("csv"))).unwrap(), Some(Export::Csv));
        assert_eq!(Export::parse(None).unwrap(), None);
    }
}
