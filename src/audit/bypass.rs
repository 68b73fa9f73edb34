//! Catching objects that reached the cluster without a podguard decision.
//!
//! A validating webhook cannot mark what it admitted, and a decision log is per replica and
//! lost with it; what every object does carry is when each field manager last wrote it
//! (`metadata.managedFields[].time`). So the audit reasons with times:
//!
//! - an object whose pod spec was last written **before the webhook configuration was
//!   registered** was never asked about (it predates podguard, or a re-registration);
//! - an object refused now whose pod spec was last written **after** a policy that refuses it
//!   and its namespace's mode were both in force would have been refused had podguard been
//!   asked: the API server did not ask (podguard down or timing out under `failurePolicy:
//!   Ignore`, the webhook not registered, a namespace selector that left it out) — or an
//!   exempt user wrote it.
//!
//! Everything in between (written before the policy or the mode that refuses it now) was
//! admitted under the rules of its time and is an ordinary violation. Times have one-second
//! resolution; a write in the same second as the policy or the mode is given the benefit of
//! the doubt.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// Why the audit concludes an object was not judged at admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Its pod spec was written before the webhook configuration was registered.
    PredatesWebhook,
    /// Written while a refusing policy and the namespace's mode were in force.
    NotAsked,
}

/// A bypass: the object is refused now and was not judged when it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bypass {
    /// Why.
    pub reason: Reason,
    /// When its pod spec was last written (RFC 3339).
    pub spec_written: String,
    /// One sentence for people: what podguard concludes and from which times.
    pub message: String,
}

/// The times a verdict is made from, beside the object's own.
#[derive(Clone, Debug, Default)]
pub struct Times {
    /// When the webhook configuration was created, if podguard knows its name.
    pub webhook_registered: Option<Timestamp>,
    /// When the namespace's labels (its mode) were last written.
    pub namespace_mode_since: Option<Timestamp>,
    /// Each policy refusing the object now, with the time it came into force (unknown: `None`).
    pub policies: Vec<(Arc<str>, Option<Timestamp>)>,
    /// When podguard's settings (default mode, exemptions) took their current values, as the
    /// writer recorded it on its Lease; unknown: no "not asked" verdict.
    pub settings_since: Option<Timestamp>,
    /// Whether some users are exempt (`--exempt-users`): a write "not asked" may be theirs.
    pub exempt_users: bool,
}

/// The verdict on an object refused now whose pod spec was last written at `written`.
pub fn classify(written: Timestamp, times: &Times) -> Option<Bypass> {
    let at = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Some(registered) = times.webhook_registered
        && written < registered
    {
        return Some(Bypass {
            reason: Reason::PredatesWebhook,
            spec_written: at(written),
            message: format!(
                "its pod spec was written at {} and podguard's webhook was registered at {}: \
                 it was never judged at admission",
                at(written),
                at(registered)
            ),
        });
    }
    // The namespace's mode comes from its labels and podguard's default: the later of both.
    let mode = times.namespace_mode_since?.max(times.settings_since?);
    if written <= mode {
        return None;
    }
    let (policy, since) = times
        .policies
        .iter()
        .filter_map(|(p, since)| since.map(|s| (p, s)))
        .filter(|(_, since)| written > *since)
        .min_by_key(|(_, since)| *since)?;
    let who = if times.exempt_users {
        "podguard was not asked (down or timing out under failurePolicy Ignore, or not \
         registered), or an exempt user wrote it"
    } else {
        "podguard was not asked (down or timing out under failurePolicy Ignore, or not registered)"
    };
    Some(Bypass {
        reason: Reason::NotAsked,
        spec_written: at(written),
        message: format!(
            "its pod spec was written at {}, after policy {policy} (in force since {}) and its \
             namespace's mode (in force since {}): admission would have refused it, so {who}",
            at(written),
            at(since),
            at(mode)
        ),
    })
}

/// The latest time a field manager wrote under `path` of an object (its `metadata`), e.g.
/// `["f:spec", "f:template"]`; without managed fields, its creation time.
pub fn last_write(metadata: &Value, path: &[&str]) -> Option<Timestamp> {
    let owns = |fields: &Value| path.iter().try_fold(fields, |v, k| v.get(*k)).is_some();
    let managed = metadata.get("managedFields").and_then(Value::as_array);
    let latest = managed
        .into_iter()
        .flatten()
        .filter(|e| e.get("fieldsV1").is_some_and(owns))
        .filter_map(|e| e.get("time")?.as_str()?.parse::<Timestamp>().ok())
        .max();
    latest.or_else(|| created(metadata))
}

/// An object's creation time (its `metadata`).
pub fn created(metadata: &Value) -> Option<Timestamp> {
    metadata.get("creationTimestamp")?.as_str()?.parse().ok()
}

/// Where the pod spec of `kind` lives, as managed-fields keys.
pub fn pod_spec_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["f:spec"],
        "PodTemplate" => &["f:template"],
        "CronJob" => &["f:spec", "f:jobTemplate"],
        _ => &["f:spec", "f:template"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn times(registered: Option<&str>, mode: &str, policy: Option<&str>) -> Times {
        Times {
            webhook_registered: registered.map(t),
            namespace_mode_since: Some(t(mode)),
            policies: vec![("restricted".into(), policy.map(t))],
            settings_since: Some(t("2025-01-01T00:00:00Z")),
            exempt_users: false,
        }
    }

    #[test]
    fn written_before_the_webhook_was_registered_is_a_bypass() {
        let b = classify(
            t("2026-01-01T00:00:00Z"),
            &times(Some("2026-02-01T00:00:00Z"), "2025-01-01T00:00:00Z", Some("2025-01-01T00:00:00Z")),
        )
        .unwrap();
        assert_eq!(b.reason, Reason::PredatesWebhook);
        assert!(b.message.contains("2026-02-01T00:00:00Z"), "{}", b.message);
    }

    #[test]
    fn written_after_policy_and_mode_is_a_bypass_naming_the_policy() {
        let b = classify(
            t("2026-03-01T00:00:00Z"),
            &times(Some("2026-01-01T00:00:00Z"), "2026-02-01T00:00:00Z", Some("2026-02-15T00:00:00Z")),
        )
        .unwrap();
        assert_eq!(b.reason, Reason::NotAsked);
        assert!(
            b.message.contains("policy restricted (in force since 2026-02-15T00:00:00Z)"),
            "{}",
            b.message
        );
        assert!(!b.message.contains("exempt user"));
    }

    #[test]
    fn admitted_under_older_rules_is_not_a_bypass() {
        // Written before the policy came into force.
        let before_policy =
            times(Some("2026-01-01T00:00:00Z"), "2026-01-01T00:00:00Z", Some("2026-03-01T00:00:00Z"));
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &before_policy), None);
        // Written before the namespace moved to enforce.
        let before_mode =
            times(Some("2026-01-01T00:00:00Z"), "2026-03-01T00:00:00Z", Some("2026-01-01T00:00:00Z"));
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &before_mode), None);
        // In the same second as the policy: given the benefit of the doubt.
        let same = times(None, "2026-01-01T00:00:00Z", Some("2026-02-01T00:00:00Z"));
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &same), None);
        // When the policy came into force is unknown: no claim.
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &times(None, "2026-01-01T00:00:00Z", None)), None);
    }

    #[test]
    fn settings_changed_later_or_unknown_make_no_not_asked_claim() {
        // The default mode moved to enforce after the write (helm upgrade --set mode=enforce).
        let mut ts = times(None, "2026-01-01T00:00:00Z", Some("2026-01-01T00:00:00Z"));
        ts.settings_since = Some(t("2026-03-01T00:00:00Z"));
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &ts), None);
        ts.settings_since = None;
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &ts), None);
        // Before the webhook was registered is still known.
        ts.webhook_registered = Some(t("2026-03-01T00:00:00Z"));
        assert_eq!(classify(t("2026-02-01T00:00:00Z"), &ts).unwrap().reason, Reason::PredatesWebhook);
    }

    #[test]
    fn exempt_users_are_named_as_a_possible_writer() {
        let mut ts = times(None, "2026-01-01T00:00:00Z", Some("2026-01-01T00:00:00Z"));
        ts.exempt_users = true;
        let b = classify(t("2026-02-01T00:00:00Z"), &ts).unwrap();
        assert!(b.message.contains("exempt user"), "{}", b.message);
    }

    #[test]
    fn last_write_reads_the_managers_that_own_the_path() {
        let meta = serde_json::json!({
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                {"manager": "kubectl", "time": "2026-01-02T00:00:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {}}}}},
                {"manager": "scaler", "time": "2026-01-05T00:00:00Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kube-controller-manager", "time": "2026-01-09T00:00:00Z",
                 "fieldsV1": {"f:status": {}}},
            ]
        });
        assert_eq!(last_write(&meta, pod_spec_fields("Deployment")), Some(t("2026-01-02T00:00:00Z")));
        assert_eq!(last_write(&meta, &["f:spec"]), Some(t("2026-01-05T00:00:00Z")));
        // Nobody owns the labels: the creation time.
        assert_eq!(last_write(&meta, &["f:metadata", "f:labels"]), Some(t("2026-01-01T00:00:00Z")));
        assert_eq!(last_write(&serde_json::json!({}), &["f:spec"]), None);
    }
}
