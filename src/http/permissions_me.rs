//! `GET /permissions/me`: what the caller may do per collection and action, in Directus's
//! summary shape (`access: full | partial | none`, the union of fields, merged presets).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::auth::Accountability;
use super::state::AppState;
use crate::error::Error;

/// Directus's `PERMISSION_ACTIONS`, in its order.
const ACTIONS: [&str; 5] = ["create", "read", "update", "delete", "share"];

/// `GET /permissions/me`. The public gets `FORBIDDEN`, as in Directus.
pub async fn read_me(acc: Accountability, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    if acc.user.is_none() && acc.role.is_none() {
        return Err(Error::Forbidden);
    }
    let mut infos = Map::new();
    if acc.admin {
        for collection in state.schema().collections.keys() {
            let actions: Map<String, Value> = ACTIONS
                .iter()
                .map(|a| (a.to_string(), json!({"access": "full", "fields": ["*"]})))
                .collect();
            infos.insert(collection.clone(), Value::Object(actions));
        }
        return Ok(HttpResponse::Ok().json(json!({ "data": infos })));
    }
    for permission in acc
        .principal
        .permissions
        .iter()
        .filter(|p| acc.access.policies.contains(&p.policy))
    {
        let collection = infos.entry(permission.collection.clone()).or_insert_with(|| {
            Value::Object(
                ACTIONS
                    .iter()
                    .map(|a| (a.to_string(), json!({"access": "none"})))
                    .collect(),
            )
        });
        let Some(info) = collection
            .get_mut(permission.action.as_str())
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if info.get("access") == Some(&json!("none")) {
            info.insert("access".into(), json!("full"));
        }
        let filtered = permission
            .permissions
            .as_ref()
            .and_then(Value::as_object)
            .is_some_and(|rule| !rule.is_empty());
        if filtered && info.get("access") == Some(&json!("full")) {
            info.insert("access".into(), json!("partial"));
        }
        if let Some(fields) = &permission.fields {
            let mut merged: Vec<String> = info
                .get("fields")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            if merged.first().map(String::as_str) != Some("*") {
                for field in fields {
                    if !merged.contains(field) {
                        merged.push(field.clone());
                    }
                }
                if merged.iter().any(|f| f == "*") {
                    merged = vec!["*".into()];
                }
                info.insert("fields".into(), json!(merged));
            }
        }
        if let Some(Value::Object(presets)) = &permission.presets {
            let mut merged = info
                .get("presets")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            merged.extend(presets.clone());
            info.insert("presets".into(), Value::Object(merged));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "data": infos })))
}
