//! [`Violation`]: what a rule found wrong ([`Finding`], from a check or a CEL rule) stamped with
//! its policy, rule, severity, controls and mode.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::{Mode, Severity};
pub use crate::finding::{FieldPath, Finding};

/// A finding with everything a reader needs: which policy and rule, how severe, which
/// compliance controls, and the mode that applies to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Policy name.
    #[serde(serialize_with = "serialize_str")]
    pub policy: Arc<str>,
    /// Rule name inside the policy.
    #[serde(serialize_with = "serialize_str")]
    pub rule: Arc<str>,
    /// The policy's severity.
    pub severity: Severity,
    /// The policy's compliance mapping.
    pub controls: crate::compliance::Controls,
    /// Effective mode. [`crate::policy::PolicySet::evaluate`] sets the policy's own mode (unset =
    /// enforce); [`crate::admission`] lowers it to the namespace's mode.
    pub mode: Mode,
    /// The field that is wrong.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub fix: Cow<'static, str>,
    /// Other policies whose rule of the same name found the same thing on the same field (the
    /// Pod Security `baseline` and `restricted` levels share most controls): one violation names
    /// them all rather than repeating the line. Empty for nearly every violation.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "serialize_also")]
    pub also: Vec<Arc<str>>,
}

fn serialize_also<S: serde::Serializer>(also: &[Arc<str>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(also.iter().map(|p| &**p))
}

fn serialize_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

impl Violation {
    /// `[policy/rule] field.path: what is wrong (how to fix)`: the line used in deny messages
    /// and reports.
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(
            self.policy.len()
                + self.rule.len()
                + self.path.as_str().len()
                + self.message.len()
                + self.fix.len()
                + 12,
        );
        self.write_line(&mut s);
        s
    }

    /// Whether `other` is the same finding as this one from another policy: same rule name,
    /// field and message.
    pub fn same_finding(&self, other: &Violation) -> bool {
        self.rule == other.rule && self.path == other.path && self.message == other.message
    }

    /// Takes in `other`, the [same finding](Violation::same_finding) from another policy: the
    /// stronger mode wins (its policy is named first), and the controls of both are kept.
    pub fn absorb(&mut self, mut other: Violation) {
        if other.mode > self.mode {
            std::mem::swap(&mut self.policy, &mut other.policy);
            self.mode = other.mode;
            self.also.insert(0, other.policy);
        } else {
            self.also.push(other.policy);
        }
        self.severity = self.severity.max(other.severity);
        // Nearly always the same list (both Pod Security levels map a part alike): compared
        // whole before control by control.
        if !self.controls.same(&other.controls)
            && self.controls != other.controls
            && other.controls.iter().any(|c| !self.controls.contains(c))
        {
            let mut all = self.controls.to_vec();
            all.extend(other.controls.iter().filter(|c| !self.controls.contains(c)).cloned());
            self.controls = all.into();
        }
        self.also.extend(other.also);
    }

    /// Appends [`Violation::line`] to `out` without an intermediate allocation.
    pub fn write_line(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = self.render(out, true);
    }

    /// Writes `[policy/rule] field.path: what is wrong`, and ` (how to fix)` when `with_fix`
    /// and there is one, to any writer.
    pub fn render<W: fmt::Write + ?Sized>(&self, w: &mut W, with_fix: bool) -> fmt::Result {
        w.write_char('[')?;
        w.write_str(&self.policy)?;
        w.write_char('/')?;
        w.write_str(&self.rule)?;
        for policy in &self.also {
            w.write_str(", ")?;
            w.write_str(policy)?;
            w.write_char('/')?;
            w.write_str(&self.rule)?;
        }
        w.write_str("] ")?;
        w.write_str(self.path.as_str())?;
        w.write_str(": ")?;
        w.write_str(&self.message)?;
        if with_fix && !self.fix.is_empty() {
            w.write_str(" (")?;
            w.write_str(&self.fix)?;
            w.write_char(')')?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_policy_rule_path_message_and_fix() {
        let v = Violation {
            policy: "psb".into(),
            rule: "pss".into(),
            severity: Severity::High,
            controls: Default::default(),
            mode: Mode::Enforce,
            path: FieldPath::new("spec").field("hostPID"),
            message: "host PID namespace is not allowed".into(),
            fix: "remove hostPID or set it to false".into(),
            also: Vec::new(),
        };
        assert_eq!(
            v.line(),
            "[psb/pss] spec.hostPID: host PID namespace is not allowed (remove hostPID or set it to false)"
        );
    }
}
