//! [`AccessChange`]: what a committed transaction changed about who may read what, as the
//! access triggers announce it in a logical decoding message (prefix [`PREFIX`], migration
//! `access_messages`). The feed re-plans the open subscriptions it touches before it delivers
//! anything committed later.

use serde_json::Value;
use uuid::Uuid;

/// The logical decoding message prefix the access triggers emit under.
pub const PREFIX: &str = "directrix.access";

/// Whose subscriptions a transaction's access writes may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// Roles, policies, access rows or permissions: anyone's.
    Everyone,
    /// These users' rows changed (status, role, token, fields rules read) or they were deleted.
    Users(Vec<Uuid>),
    /// These refresh sessions ended (their session-mode access tokens with them), by digest.
    Sessions(Vec<String>),
}

impl AccessChange {
    /// Reads a message's content. Anything it cannot read is taken as [`AccessChange::Everyone`]:
    /// re-planning too much costs time, too little would leak.
    pub fn parse(content: &[u8]) -> AccessChange {
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(content) else {
            return AccessChange::Everyone;
        };
        let ids = || -> Option<Vec<String>> {
            message
                .get("ids")?
                .as_array()?
                .iter()
                .map(|id| id.as_str().map(str::to_string))
                .collect()
        };
        match message.get("t").and_then(Value::as_str) {
            Some("users") => match ids().and_then(|ids| ids.iter().map(|id| id.parse().ok()).collect()) {
                Some(users) => AccessChange::Users(users),
                None => AccessChange::Everyone,
            },
            Some("sessions") => match ids() {
                Some(sessions) => AccessChange::Sessions(sessions),
                None => AccessChange::Everyone,
            },
            _ => AccessChange::Everyone,
        }
    }

    /// Whether a session acting for `user` with refresh session `session` is touched.
    pub fn touches(&self, user: Option<Uuid>, session: Option<&str>) -> bool {
        match self {
            AccessChange::Everyone => true,
            AccessChange::Users(users) => user.is_some_and(|u| users.contains(&u)),
            AccessChange::Sessions(sessions) => session.is_some_and(|s| sessions.iter().any(|t| t == s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_name_users_sessions_or_everyone() {
        let user = Uuid::new_v4();
        let users = AccessChange::parse(format!(r#"{{"t":"users","ids":["{user}"]}}"#).as_bytes());
        assert_eq!(users, AccessChange::Users(vec![user]));
        assert!(users.touches(Some(user), None));
        assert!(!users.touches(Some(Uuid::new_v4()), None));
        assert!(!users.touches(None, None), "the public is no user");
        let sessions = AccessChange::parse(br#"{"t":"sessions","ids":["abc"]}"#);
        assert!(sessions.touches(Some(user), Some("abc")));
        assert!(!sessions.touches(Some(user), Some("abd")));
        assert_eq!(
            AccessChange::parse(br#"{"t":"permissions"}"#),
            AccessChange::Everyone
        );
        assert_eq!(
            AccessChange::parse(br#"{"t":"users","ids":["nope"]}"#),
            AccessChange::Everyone
        );
        assert_eq!(AccessChange::parse(b"not json"), AccessChange::Everyone);
    }

    proptest! {
        /// Any content reads as something, and what cannot be read touches everyone.
        #[test]
        fn any_content_parses_and_unreadable_content_touches_everyone(content in proptest::collection::vec(any::<u8>(), 0..200)) {
            let change = AccessChange::parse(&content);
            if serde_json::from_slice::<Value>(&content).is_err() {
                prop_assert_eq!(change, AccessChange::Everyone);
            }
        }
    }
}
