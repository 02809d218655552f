//! Who an operation acts for, as Directus calls it: a user (with role chain, policies and the
//! permissions they give from the caller's address), the public, or the system itself.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use crate::core::access::Access;
use crate::db::access::Principal;

/// Where a call came from: recorded on sessions and activity rows.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    /// `User-Agent`, at most 1024 characters.
    pub user_agent: Option<Arc<str>>,
    /// `Origin`, at most 1024 characters.
    pub origin: Option<Arc<str>>,
}

/// The caller, as Directus calls it.
#[derive(Debug, Clone)]
pub struct Accountability {
    pub user: Option<Uuid>,
    pub role: Option<Uuid>,
    /// The role and its ancestors.
    pub roles: Vec<Uuid>,
    pub admin: bool,
    pub app: bool,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Arc<str>>,
    pub origin: Option<Arc<str>>,
    /// Session mode: the digest of the session this request's token belongs to.
    pub session: Option<String>,
    pub principal: Arc<Principal>,
    /// The caller's effective permissions from this IP.
    pub access: Arc<Access>,
    /// Work the system does on its own behalf (Directus's `accountability: null`): full
    /// access, and no activity is recorded for it.
    pub system: bool,
}

impl Accountability {
    /// Full access for system work: every check passes and nothing is recorded as activity.
    pub fn system() -> Accountability {
        Accountability {
            user: None,
            role: None,
            roles: Vec::new(),
            admin: true,
            app: true,
            ip: None,
            user_agent: None,
            origin: None,
            session: None,
            principal: Arc::new(Principal::default()),
            access: Arc::new(Access::administrator()),
            system: true,
        }
    }

    /// Dynamic filter variables for one operation by this caller.
    pub fn variables(&self) -> crate::core::filter::Variables {
        let mut vars = crate::core::filter::Variables::from(Utc::now());
        vars.user = self.user.map(|u| u.to_string());
        vars.role = self.role.map(|r| r.to_string());
        vars.roles = self.roles.iter().map(Uuid::to_string).collect();
        vars.policies = self.access.policies.iter().map(Uuid::to_string).collect();
        vars.user_row = self.principal.user_row.clone();
        vars.role_row = self.principal.role_row.clone();
        vars
    }

    /// Where this caller came from.
    pub fn client(&self) -> Client {
        Client {
            ip: self.ip,
            user_agent: self.user_agent.clone(),
            origin: self.origin.clone(),
        }
    }
}
