//! The slice of zod 4 that Directus's WebSocket schemas use, so a schema error reads exactly as
//! Directus's does. Directus answers handler errors with `fromZodError(err).message`
//! (zod-validation-error 4: `Validation error: … at "path"`) and collab errors with zod's own
//! `err.message`, the issues as two-space indented JSON. Both renderings live here; the schemas
//! are in `schemas`.

use serde_json::{Map, Value, json};

/// One step of an issue's path: an object key or an array index.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// A zod issue, with its path relative to the value that was checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Issue {
    InvalidType {
        expected: &'static str,
        received: &'static str,
        path: Vec<Seg>,
    },
    /// A literal (one value) or an enum (several) did not match.
    InvalidValue {
        values: &'static [&'static str],
        path: Vec<Seg>,
    },
    InvalidUnion {
        errors: Vec<Vec<Issue>>,
        path: Vec<Seg>,
    },
    /// A discriminated union whose discriminator matched no option.
    NoDiscriminator {
        discriminator: &'static str,
        path: Vec<Seg>,
    },
    /// A refinement of ours (zod's `custom` issue); Directus has none.
    Custom {
        message: String,
        path: Vec<Seg>,
    },
}

impl Issue {
    fn path_mut(&mut self) -> &mut Vec<Seg> {
        match self {
            Issue::InvalidType { path, .. }
            | Issue::InvalidValue { path, .. }
            | Issue::InvalidUnion { path, .. }
            | Issue::NoDiscriminator { path, .. }
            | Issue::Custom { path, .. } => path,
        }
    }

    fn path(&self) -> &[Seg] {
        match self {
            Issue::InvalidType { path, .. }
            | Issue::InvalidValue { path, .. }
            | Issue::InvalidUnion { path, .. }
            | Issue::NoDiscriminator { path, .. }
            | Issue::Custom { path, .. } => path,
        }
    }

    /// zod 4's English message for the issue.
    fn message(&self) -> String {
        match self {
            Issue::InvalidType {
                expected, received, ..
            } => format!("Invalid input: expected {expected}, received {received}"),
            Issue::InvalidValue { values, .. } => match values {
                [one] => format!("Invalid input: expected \"{one}\""),
                many => {
                    let quoted: Vec<String> = many.iter().map(|v| format!("\"{v}\"")).collect();
                    format!("Invalid option: expected one of {}", quoted.join("|"))
                }
            },
            Issue::InvalidUnion { .. } | Issue::NoDiscriminator { .. } => "Invalid input".into(),
            Issue::Custom { message, .. } => message.clone(),
        }
    }

    fn to_json(&self) -> Value {
        let path: Vec<Value> = self
            .path()
            .iter()
            .map(|seg| match seg {
                Seg::Key(key) => json!(key),
                Seg::Index(index) => json!(index),
            })
            .collect();
        // Key order is the order zod builds each issue in; JSON.stringify keeps it.
        let mut out = Map::new();
        match self {
            Issue::InvalidType { expected, .. } => {
                out.insert("expected".into(), json!(expected));
                out.insert("code".into(), json!("invalid_type"));
            }
            Issue::InvalidValue { values, .. } => {
                out.insert("code".into(), json!("invalid_value"));
                out.insert("values".into(), json!(values));
            }
            Issue::InvalidUnion { errors, .. } => {
                out.insert("code".into(), json!("invalid_union"));
                let errors: Vec<Value> = errors
                    .iter()
                    .map(|branch| Value::Array(branch.iter().map(Issue::to_json).collect()))
                    .collect();
                out.insert("errors".into(), Value::Array(errors));
            }
            Issue::NoDiscriminator { discriminator, .. } => {
                out.insert("code".into(), json!("invalid_union"));
                out.insert("errors".into(), json!([]));
                out.insert("note".into(), json!("No matching discriminator"));
                out.insert("discriminator".into(), json!(discriminator));
            }
            Issue::Custom { .. } => {
                out.insert("code".into(), json!("custom"));
            }
        }
        out.insert("path".into(), Value::Array(path));
        out.insert("message".into(), json!(self.message()));
        Value::Object(out)
    }
}

/// Puts `seg` in front of every issue's path, as a parent object or array does.
fn prefixed(seg: Seg, mut issues: Vec<Issue>) -> Vec<Issue> {
    for issue in &mut issues {
        issue.path_mut().insert(0, seg.clone());
    }
    issues
}

/// The schema combinators Directus's messages are written with.
#[derive(Debug)]
pub enum Schema {
    Str,
    Num,
    /// `z.any()`, `z.unknown()`, `z.custom()`: anything, even absent.
    Any,
    /// `z.record(z.string(), z.any())`.
    Record,
    /// `z.literal(x)` with one value, `z.enum([...])` with several.
    OneOf(&'static [&'static str]),
    Array(Box<Schema>),
    Union(Vec<Schema>),
    Optional(Box<Schema>),
    Nullable(Box<Schema>),
    Object(Vec<(&'static str, Schema)>),
}

impl Schema {
    pub fn optional(self) -> Schema {
        Schema::Optional(Box::new(self))
    }

    pub fn nullable(self) -> Schema {
        Schema::Nullable(Box::new(self))
    }

    /// `z.union([z.string(), z.number()])`, Directus's type for uids and keys.
    pub fn str_or_num() -> Schema {
        Schema::Union(vec![Schema::Str, Schema::Num])
    }

    /// The issues of `value` (`None` = the key is absent), paths relative to it.
    pub fn check(&self, value: Option<&Value>) -> Vec<Issue> {
        let mismatch = |expected| {
            vec![Issue::InvalidType {
                expected,
                received: received(value),
                path: vec![],
            }]
        };
        match self {
            Schema::Any => vec![],
            Schema::Str => match value {
                Some(Value::String(_)) => vec![],
                _ => mismatch("string"),
            },
            Schema::Num => match value {
                Some(Value::Number(_)) => vec![],
                _ => mismatch("number"),
            },
            Schema::Record => match value {
                Some(Value::Object(_)) => vec![],
                _ => mismatch("record"),
            },
            Schema::OneOf(values) => match value {
                Some(Value::String(s)) if values.contains(&s.as_str()) => vec![],
                _ => vec![Issue::InvalidValue { values, path: vec![] }],
            },
            Schema::Array(element) => match value {
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .flat_map(|(i, item)| prefixed(Seg::Index(i), element.check(Some(item))))
                    .collect(),
                _ => mismatch("array"),
            },
            Schema::Union(options) => {
                let mut errors = Vec::with_capacity(options.len());
                for option in options {
                    let issues = option.check(value);
                    if issues.is_empty() {
                        return vec![];
                    }
                    errors.push(issues);
                }
                vec![Issue::InvalidUnion { errors, path: vec![] }]
            }
            Schema::Optional(inner) => match value {
                None => vec![],
                Some(_) => inner.check(value),
            },
            Schema::Nullable(inner) => match value {
                Some(Value::Null) => vec![],
                _ => inner.check(value),
            },
            Schema::Object(shape) => match value {
                Some(Value::Object(map)) => shape
                    .iter()
                    .flat_map(|(key, schema)| prefixed(Seg::Key(key), schema.check(map.get(*key))))
                    .collect(),
                _ => mismatch("object"),
            },
        }
    }
}

/// zod's name for the type of what it received.
fn received(value: Option<&Value>) -> &'static str {
    match value {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// `fromZodError(new ZodError(issues)).message`, as zod-validation-error 4 builds it with its
/// default options.
pub fn validation_message(issues: &[Issue]) -> String {
    let parts: Vec<String> = issues.iter().map(|issue| map_issue(issue, &[])).collect();
    let message = parts.join("; ");
    if message.is_empty() {
        "Validation error".into()
    } else {
        format!("Validation error: {message}")
    }
}

fn map_issue(issue: &Issue, parent: &[Seg]) -> String {
    let path: Vec<Seg> = parent.iter().chain(issue.path()).cloned().collect();
    if let Issue::InvalidUnion { errors, .. } = issue
        && !errors.is_empty()
    {
        let mut branches: Vec<String> = Vec::with_capacity(errors.len());
        for branch in errors {
            let text = branch
                .iter()
                .map(|sub| map_issue(sub, &path))
                .collect::<Vec<_>>()
                .join("; ");
            // zod-validation-error drops repeated branches (`new Set`), keeping first order.
            if !branches.contains(&text) {
                branches.push(text);
            }
        }
        return branches.join(" or ");
    }
    let mut out = title_case(&issue.message());
    match path.as_slice() {
        [] => {}
        [Seg::Index(index)] => out.push_str(&format!(" at index {index}")),
        _ => out.push_str(&format!(" at \"{}\"", join_path(&path))),
    }
    out
}

fn title_case(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// zod-validation-error's `joinPath`: `a.b`, `ids[0]`, `a["x\"y"]`.
fn join_path(path: &[Seg]) -> String {
    if let [Seg::Key(key)] = path {
        return if key.is_empty() {
            "\"\"".into()
        } else {
            key.to_string()
        };
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
            Seg::Key(key) if key.contains('"') => {
                out.push_str(&format!("[\"{}\"]", key.replace('"', "\\\"")));
            }
            // Its identifier regex is unanchored: one identifier character anywhere suffices.
            Seg::Key(key) if !key.chars().any(|c| c.is_alphabetic() || c == '$' || c == '_') => {
                out.push_str(&format!("[\"{key}\"]"));
            }
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
        }
    }
    out
}

/// zod 4's `ZodError.message`: the issues as `JSON.stringify(issues, null, 2)`.
pub fn zod_message(issues: &[Issue]) -> String {
    let value = Value::Array(issues.iter().map(Issue::to_json).collect());
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
