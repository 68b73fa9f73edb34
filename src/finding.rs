//! What a check or a CEL rule finds wrong, before any policy is attached to it: the exact field
//! ([`FieldPath`]) and the [`Finding`]. A leaf: checks, CEL rules and subjects build them, the
//! policy set stamps them into `policy::Violation`s.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// A JSON field path such as `spec.template.spec.containers[1].securityContext.privileged`.
///
/// Built only when something is wrong, so the happy path never allocates one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at `root` (e.g. `spec` or `spec.template.spec`).
    pub fn new(root: &str) -> Self {
        let mut s = String::with_capacity(root.len() + 48);
        s.push_str(root);
        Self(s)
    }

    /// Appends `.name`.
    #[must_use]
    pub fn field(mut self, name: &str) -> Self {
        if !self.0.is_empty() {
            self.0.push('.');
        }
        self.0.push_str(name);
        self
    }

    /// Appends `[i]`.
    #[must_use]
    pub fn index(mut self, i: usize) -> Self {
        // Digits by hand: every container path has an index, and `write!` costs more than the
        // rest of the path.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = i;
        loop {
            at -= 1;
            // `n % 10` is below 10, so the cast keeps it whole.
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.0.push('[');
        self.0.extend(digits[at..].iter().map(|&d| char::from(d)));
        self.0.push(']');
        self
    }

    /// Appends `["key"]`, for map keys that may hold dots or slashes (annotations, sysctls).
    #[must_use]
    pub fn key(mut self, key: &str) -> Self {
        self.0.push_str("[\"");
        self.0.push_str(key);
        self.0.push_str("\"]");
        self
    }

    /// The rendered path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One thing a rule found wrong with a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Exact field that is wrong (or the closest parent when the field is missing).
    pub path: FieldPath,
    /// What is wrong, e.g. `privileged containers are not allowed`.
    pub message: String,
    /// How to fix it, e.g. `set it to false or remove it`. May be empty.
    pub fix: Cow<'static, str>,
    /// Which part of its check found it, for checks whose parts bear on different compliance
    /// controls (`podSecurity`'s `privileged`, `hostNamespaces/hostPID`, ...); empty for a check
    /// that is one thing. Declared in the check's [`crate::checks::Definition::parts`].
    pub part: &'static str,
}

impl Finding {
    /// A finding at `path`.
    pub fn new(path: FieldPath, message: impl Into<String>, fix: impl Into<Cow<'static, str>>) -> Self {
        Self { path, message: message.into(), fix: fix.into(), part: "" }
    }

    /// The finding, found by `part` of its check.
    #[must_use]
    pub fn part(mut self, part: &'static str) -> Self {
        self.part = part;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_fields_indexes_and_keys() {
        let p = FieldPath::new("spec.template.spec").field("containers").index(1).field("securityContext");
        assert_eq!(p.as_str(), "spec.template.spec.containers[1].securityContext");
        for i in [0, 9, 10, 99, 1234, usize::MAX] {
            assert_eq!(FieldPath::new("v").index(i).as_str(), format!("v[{i}]"));
        }
        let a = FieldPath::new("metadata")
            .field("annotations")
            .key("container.apparmor.security.beta.kubernetes.io/app");
        assert_eq!(
            a.to_string(),
            "metadata.annotations[\"container.apparmor.security.beta.kubernetes.io/app\"]"
        );
    }
}
