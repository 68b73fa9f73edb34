//! Exemptions, as in Pod Security Admission: namespaces, usernames and runtime classes that no
//! policy applies to.

use std::collections::HashSet;

/// Who and what is exempt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// Namespaces.
    pub namespaces: HashSet<String>,
    /// Authenticated usernames (e.g. `system:serviceaccount:ci:deployer`).
    pub usernames: HashSet<String>,
    /// `spec.runtimeClassName` values.
    pub runtime_classes: HashSet<String>,
}

impl Exemptions {
    /// Why the request is exempt, if it is.
    pub fn reason(&self, namespace: &str, username: &str, runtime_class: Option<&str>) -> Option<String> {
        if self.namespaces.contains(namespace) {
            return Some(format!("namespace {namespace} is exempt"));
        }
        if self.usernames.contains(username) {
            return Some(format!("user {username} is exempt"));
        }
        match runtime_class {
            Some(rc) if self.runtime_classes.contains(rc) => Some(format!("runtimeClassName {rc} is exempt")),
            _ => None,
        }
    }
}
