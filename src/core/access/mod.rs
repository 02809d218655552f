//! Access control, pure: from one caller's policy and permission rows to what that caller may
//! do, following Directus v11 (`api/src/permissions/**`).
//!
//! The caller (`http`/`db`) loads the rows of the policies that apply to a request (through the
//! user, the role and its parents, or the public policy) and builds an [`Access`] once per
//! request. [`Access::resolve`] then answers per collection and action with a [`Resolved`]: the
//! items (an item filter), the fields, per-field visibility when policies disagree, validation
//! rules and presets. [`narrow_wildcards`] shrinks `*` to readable fields, [`check_query`] walks
//! every field a read touches, [`Resolved::prepare_payload`] checks a write.
//!
//! What the SQL side must do with a [`Resolved`] (the parts no name check can do):
//! - read: AND [`Resolved::row_filter`] (or, as Directus, [`Resolved::row_filter_for`] the
//!   selected keys) into `WHERE`; read every field through its [`Visibility`] — in the select
//!   list *and* wherever the query uses it (filter, sort, aggregate, group, search), so results
//!   and counts never depend on values the caller cannot see. `search` looks only in fields
//!   [`Resolved::can`] grants, each under its condition (Directus's `applySearch`).
//! - relations: nested reads, `count()` of O2M fields and relational filters AND the related
//!   collection's read row filter (Directus does so for `_some`/`_none` subqueries; doing it for
//!   M2O joins as well closes the oracle of directus#15437).
//! - update: the target keys AND [`Resolved::write_condition`] of the payload keys must match
//!   every key, else `FORBIDDEN`; then [`Resolved::prepare_payload`]. Delete: keys AND the row
//!   filter. Create: [`Resolved::prepare_payload`] only (the item filter is not applied).
//!
//! Nothing here does I/O, reads the clock or knows SQL: `$NOW`, the user's row and the request
//! IP come in as values. Files: [`ip`] (allow-lists), `resolve` (rows → [`Resolved`]),
//! `validate` (payloads), `query_check` (queries).

pub mod ip;
pub mod plan;
mod query_check;
mod resolve;
pub mod rules;
mod validate;

use std::net::IpAddr;

use serde_json::Value;
use uuid::Uuid;

use crate::core::filter::Variables;
use crate::core::payload::Failure;
use crate::core::schema::SchemaSnapshot;

pub use query_check::{check_query, narrow_wildcards};
pub use resolve::{FieldSet, Resolved, Rule, Visibility};
pub use validate::validate_payload;

/// What a permission row allows (`directus_permissions.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    /// Creating shares; parsed so rows load, not enforced here.
    Share,
}

impl Action {
    /// Parses Directus's spelling.
    pub fn parse(text: &str) -> Option<Action> {
        Some(match text {
            "create" => Action::Create,
            "read" => Action::Read,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "share" => Action::Share,
            _ => return None,
        })
    }

    /// Directus's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Share => "share",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `directus_policies`, as far as access needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub id: Uuid,
    /// Bypasses every permission check.
    pub admin_access: bool,
    /// May use the Data Studio app (system collections the app needs).
    pub app_access: bool,
    /// Users under this policy must set up two-factor authentication.
    pub enforce_tfa: bool,
    /// Addresses, CIDR blocks or ranges the policy is limited to ([`ip`]); `None` or empty:
    /// everywhere.
    pub ip_access: Option<Vec<String>>,
}

/// One row of `directus_permissions`.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionRow {
    pub policy: Uuid,
    pub collection: String,
    pub action: Action,
    /// Fields the row grants; `"*"` is every field, `None` none (Directus: `fields ?? []`).
    pub fields: Option<Vec<String>>,
    /// The item filter; `None` or `{}` is every item.
    pub permissions: Option<Value>,
    /// A filter the written payload must satisfy (create and update).
    pub validation: Option<Value>,
    /// Default values for writes; the payload overrides them.
    pub presets: Option<Value>,
}

/// Why access is refused. Converts into `crate::error::Error` at the edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessError {
    /// `FORBIDDEN`: no permission for the collection (or a related one a query reaches).
    #[error("You don't have permission to access this.")]
    Forbidden,
    /// `FORBIDDEN` naming the collection: no permission at all for the operation on it.
    #[error("You don't have permission to access collection \"{collection}\" or it does not exist.")]
    Collection { collection: String },
    /// `FORBIDDEN` naming a field that may not be used, with the relational path it was named
    /// under; the same answer as for a field that does not exist.
    #[error(
        "You don't have permission to access field \"{field}\" in collection \"{collection}\" or it does not exist."
    )]
    Field {
        collection: String,
        field: String,
        path: Option<String>,
    },
    /// `FAILED_VALIDATION`: the payload breaks the permission's validation rules.
    #[error("Validation failed.")]
    Validation(Vec<Failure>),
    /// A stored permission rule cannot be applied (its filter names a field that is gone, uses an
    /// operator the field type lacks, ...). A server-side problem: the request fails closed.
    #[error("the {action} permission rule on \"{collection}\" is invalid: {reason}")]
    InvalidRule {
        collection: String,
        action: Action,
        reason: String,
    },
}

/// What one caller may do: the policies that apply to this request and their permission rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// Some kept policy has `admin_access`: every check passes.
    pub admin: bool,
    /// Some kept policy has `app_access`.
    pub app_access: bool,
    /// Some kept policy has `enforce_tfa`.
    pub enforce_tfa: bool,
    /// Ids of the kept policies, for `$CURRENT_POLICIES`.
    pub policies: Vec<Uuid>,
    /// Permission rows of the kept policies, in the order given.
    permissions: Vec<PermissionRow>,
}

impl Access {
    /// Keeps the policies whose IP allow-list admits `ip` ([`ip::admits`]) and the permission
    /// rows of those policies. `permissions` must be in policy order (`directus_access.sort`),
    /// so that later presets override earlier ones as in Directus.
    pub fn build(policies: &[PolicyRow], permissions: &[PermissionRow], ip: Option<IpAddr>) -> Access {
        let kept: Vec<&PolicyRow> = policies
            .iter()
            .filter(|p| ip::admits(p.ip_access.as_deref(), ip))
            .collect();
        let mut ids: Vec<Uuid> = Vec::with_capacity(kept.len());
        for policy in &kept {
            // A policy can reach a user twice (through the user and through a role).
            if !ids.contains(&policy.id) {
                ids.push(policy.id);
            }
        }
        Access {
            admin: kept.iter().any(|p| p.admin_access),
            app_access: kept.iter().any(|p| p.app_access),
            enforce_tfa: kept.iter().any(|p| p.enforce_tfa),
            permissions: permissions
                .iter()
                .filter(|row| ids.contains(&row.policy))
                .cloned()
                .collect(),
            policies: ids,
        }
    }

    /// Full access with no rows: for internal callers that act as the system.
    pub fn administrator() -> Access {
        Access {
            admin: true,
            app_access: true,
            enforce_tfa: false,
            policies: Vec::new(),
            permissions: Vec::new(),
        }
    }

    /// `vars` with `$CURRENT_POLICIES` set to the kept policies.
    pub fn with_policies(&self, vars: Variables) -> Variables {
        Variables {
            policies: self.policies.iter().map(Uuid::to_string).collect(),
            ..vars
        }
    }

    /// What this caller may do with `action` on `collection`; `None` when no permission row
    /// grants it (answer `FORBIDDEN`). An admin gets everything. Rules are parsed against
    /// `snapshot` with `vars` (`$CURRENT_USER`, `$NOW`, ...), so resolve once per request.
    pub fn resolve(
        &self,
        snapshot: &SchemaSnapshot,
        collection: &str,
        action: Action,
        vars: &Variables,
    ) -> Result<Option<Resolved>, AccessError> {
        if self.admin {
            return Ok(Some(Resolved::unrestricted(collection, action)));
        }
        let rows: Vec<&PermissionRow> = self
            .permissions
            .iter()
            .filter(|row| row.collection == collection && row.action == action)
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        Resolved::from_rows(&rows, snapshot, collection, action, vars).map(Some)
    }

    /// A read resolver for [`check_query`] and [`narrow_wildcards`].
    pub fn reader<'a>(
        &'a self,
        snapshot: &'a SchemaSnapshot,
        vars: &'a Variables,
    ) -> impl Fn(&str) -> Result<Option<Resolved>, AccessError> + 'a {
        move |collection| self.resolve(snapshot, collection, Action::Read, vars)
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(n: u128) -> PolicyRow {
        PolicyRow {
            id: Uuid::from_u128(n),
            admin_access: false,
            app_access: false,
            enforce_tfa: false,
            ip_access: None,
        }
    }

    fn read_all(policy: u128, collection: &str) -> PermissionRow {
        PermissionRow {
            policy: Uuid::from_u128(policy),
            collection: collection.into(),
            action: Action::Read,
            fields: Some(vec!["*".into()]),
            permissions: None,
            validation: None,
            presets: None,
        }
    }

    #[test]
    fn actions_use_directus_spelling() {
        for action in [
            Action::Create,
            Action::Read,
            Action::Update,
            Action::Delete,
            Action::Share,
        ] {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("write"), None);
    }

    #[test]
    fn policies_outside_the_ip_allow_list_are_dropped_with_their_rows() {
        let office = PolicyRow {
            ip_access: Some(vec!["10.0.0.0/8".into()]),
            app_access: true,
            ..policy(1)
        };
        let anywhere = policy(2);
        let rows = [read_all(1, "secrets"), read_all(2, "articles")];
        let home = Access::build(
            &[office.clone(), anywhere.clone()],
            &rows,
            "192.0.2.1".parse().ok(),
        );
        assert_eq!(home.policies, vec![Uuid::from_u128(2)]);
        assert!(!home.app_access);
        let snap = testing::blog();
        let vars = Variables::default();
        assert_eq!(home.resolve(snap, "authors", Action::Read, &vars), Ok(None));
        let at_work = Access::build(&[office, anywhere], &rows, "10.1.2.3".parse().ok());
        assert_eq!(at_work.policies.len(), 2);
        assert!(at_work.app_access);
    }

    #[test]
    fn an_unknown_ip_drops_every_restricted_policy() {
        let office = PolicyRow {
            ip_access: Some(vec!["10.0.0.0/8".into()]),
            admin_access: true,
            ..policy(1)
        };
        let access = Access::build(&[office], &[], None);
        assert!(!access.admin);
        assert!(access.policies.is_empty());
    }

    #[test]
    fn any_admin_policy_makes_the_caller_admin() {
        let admin = PolicyRow {
            admin_access: true,
            ..policy(1)
        };
        let access = Access::build(&[policy(2), admin], &[], None);
        assert!(access.admin);
        let snap = testing::blog();
        let resolved = access
            .resolve(snap, "articles", Action::Delete, &Variables::default())
            .unwrap()
            .unwrap();
        assert!(resolved.row_filter().is_none());
        assert!(resolved.can("anything"));
    }

    #[test]
    fn no_row_for_the_collection_and_action_means_no_access() {
        let access = Access::build(&[policy(1)], &[read_all(1, "articles")], None);
        let snap = testing::blog();
        let vars = Variables::default();
        assert!(
            access
                .resolve(snap, "articles", Action::Read, &vars)
                .unwrap()
                .is_some()
        );
        assert_eq!(access.resolve(snap, "articles", Action::Update, &vars), Ok(None));
        assert_eq!(access.resolve(snap, "authors", Action::Read, &vars), Ok(None));
    }

    #[test]
    fn a_policy_reached_twice_counts_once_and_sets_current_policies() {
        let access = Access::build(&[policy(1), policy(1)], &[], None);
        assert_eq!(access.policies, vec![Uuid::from_u128(1)]);
        let vars = access.with_policies(Variables::default());
        assert_eq!(vars.policies, vec![Uuid::from_u128(1).to_string()]);
    }

    #[test]
    fn rows_of_other_policies_are_ignored() {
        let stray = PermissionRow {
            permissions: Some(json!({"id": {"_eq": 1}})),
            ..read_all(9, "articles")
        };
        let access = Access::build(&[policy(1)], &[stray], None);
        assert_eq!(
            access.resolve(testing::blog(), "articles", Action::Read, &Variables::default()),
            Ok(None)
        );
    }

    proptest::proptest! {
        #[test]
        fn admin_bypasses_everything(
            collection in "[a-z_]{1,12}",
            ip in proptest::option::of(proptest::num::u32::ANY),
            fields in proptest::collection::vec("[a-z]{1,8}", 0..4),
        ) {
            let admin = PolicyRow { admin_access: true, ..policy(1) };
            let rows = vec![PermissionRow {
                fields: Some(fields.clone()),
                permissions: Some(json!({"id": {"_eq": 1}})),
                ..read_all(1, &collection)
            }];
            let access = Access::build(&[admin], &rows, ip.map(|a| IpAddr::from(a.to_be_bytes())));
            proptest::prop_assert!(access.admin);
            let snap = testing::blog();
            for action in [Action::Create, Action::Read, Action::Update, Action::Delete] {
                let resolved = access.resolve(snap, &collection, action, &Variables::default());
                let resolved = resolved.unwrap().unwrap();
                proptest::prop_assert!(resolved.row_filter().is_none());
                for field in &fields {
                    proptest::prop_assert!(resolved.can(field));
                    proptest::prop_assert_eq!(resolved.field_condition(field), Visibility::Always);
                }
                proptest::prop_assert!(resolved.validation().is_empty());
                proptest::prop_assert!(resolved.presets().is_empty());
            }
        }
    }
}
