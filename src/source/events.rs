//! Kubernetes Events on policy ConfigMaps: `Warning PolicyInvalid` when one is refused (or some
//! of its policies are ignored), `Normal PolicyLoaded` when it loads cleanly again.
//!
//! Events go out through kube-rs's [`Recorder`] (the `events.k8s.io/v1` API) from one background
//! task fed by a bounded queue, so a slow or absent API server never delays a policy reload, and
//! Events keep their order.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::policy::{LoadError, Origin};

/// Reason of the Event for a refused ConfigMap or ignored policies.
pub const REASON_INVALID: &str = "PolicyInvalid";
/// Reason of the Event for a ConfigMap that loads again after a warning.
pub const REASON_LOADED: &str = "PolicyLoaded";
/// The Event's action (what podguard was doing).
pub const ACTION: &str = "LoadPolicies";
/// The Events API limit on a note, in bytes.
const NOTE_LIMIT: usize = 1024;
/// Events waiting to be sent; beyond this, new ones are dropped (and logged).
const QUEUE: usize = 64;
/// How long one Event may take to send before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends policy Events in the background. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PolicyEvents {
    tx: Option<mpsc::Sender<(ObjectReference, Event)>>,
}

impl PolicyEvents {
    /// Starts the sending task. Must be called inside a tokio runtime.
    pub fn spawn(client: kube::Client, reporter: Reporter) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, Event)>(QUEUE);
        let recorder = Recorder::new(client, reporter);
        let task = tokio::spawn(async move {
            while let Some((reference, event)) = rx.recv().await {
                let name = reference.name.as_deref().unwrap_or_default();
                match tokio::time::timeout(SEND_TIMEOUT, recorder.publish(&event, &reference)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(configmap = name, reason = %event.reason, error = %e,
                        "cannot record Event (podguard needs create/patch on events.k8s.io events)"),
                    Err(_) => tracing::warn!(configmap = name, reason = %event.reason,
                        "cannot record Event: the API server did not answer in time"),
                }
            }
        });
        (Self { tx: Some(tx) }, task)
    }

    /// Events that go nowhere (no cluster).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// `Warning PolicyInvalid`: `cm` was refused for `errors`; it contributes no policy.
    pub fn invalid(&self, cm: &ConfigMap, errors: &[LoadError]) {
        let headline = "refused; no policy of this ConfigMap is in force until it loads:";
        self.send(cm, EventType::Warning, REASON_INVALID, note(headline, errors));
    }

    /// `Warning PolicyInvalid`: `cm` loaded, but these policies of it are ignored.
    pub fn ignored(&self, cm: &ConfigMap, errors: &[LoadError]) {
        self.send(
            cm,
            EventType::Warning,
            REASON_INVALID,
            note("loaded, but some policies are ignored:", errors),
        );
    }

    /// `Normal PolicyLoaded`: `cm` loads cleanly again.
    pub fn loaded(&self, cm: &ConfigMap, policies: usize) {
        let note = format!("loaded {policies} {}", if policies == 1 { "policy" } else { "policies" });
        self.send(cm, EventType::Normal, REASON_LOADED, note);
    }

    fn send(&self, cm: &ConfigMap, type_: EventType, reason: &str, note: String) {
        let Some(tx) = &self.tx else { return };
        // The reference carries the resourceVersion, so each version of the ConfigMap gets an
        // Event of its own instead of bumping the count of an older one with a stale note.
        let reference = cm.object_ref(&());
        let event =
            Event { type_, reason: reason.into(), note: Some(note), action: ACTION.into(), secondary: None };
        if tx.try_send((reference, event)).is_err() {
            tracing::warn!(configmap = %cm.metadata.name.as_deref().unwrap_or_default(), reason,
                "Event dropped: too many Events waiting to be sent");
        }
    }
}

/// `headline` then every error as `key:line: document[i]: field: reason`, `; `-separated, cut
/// to the Events API limit with a count of what did not fit.
pub fn note(headline: &str, errors: &[LoadError]) -> String {
    let mut out = String::from(headline);
    for (i, e) in errors.iter().enumerate() {
        let item = format!("{}{}", if i == 0 { " " } else { "; " }, describe(e));
        let rest = errors.len() - i - 1;
        // Keep room to say how many more there are.
        let tail = if rest == 0 { 0 } else { 48 };
        if out.len() + item.len() + tail <= NOTE_LIMIT {
            out.push_str(&item);
            continue;
        }
        let more = format!(" (+{} more; see GET /policies or the logs)", rest + 1);
        if i == 0 {
            // Even the first error is too long: show what fits of it.
            let room = NOTE_LIMIT.saturating_sub(out.len() + more.len() + 3);
            let cut = (0..=room.min(item.len())).rev().find(|&n| item.is_char_boundary(n)).unwrap_or(0);
            out.push_str(&item[..cut]);
            out.push_str("...");
            if rest > 0 {
                out.push_str(&format!(" (+{rest} more; see GET /policies or the logs)"));
            }
        } else {
            out.push_str(&more);
        }
        break;
    }
    out
}

/// One error without the ConfigMap's own namespace/name (the Event is on it already).
fn describe(e: &LoadError) -> String {
    let mut s = match &e.origin {
        Origin::ConfigMap { key, .. } => key.clone(),
        other => other.to_string(),
    };
    if let Some(line) = e.line {
        s.push_str(&format!(":{line}"));
    }
    // Writing into a String cannot fail.
    let _ = e.write_place(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(key: &str, line: Option<usize>, reason: &str) -> LoadError {
        LoadError {
            origin: Origin::ConfigMap { namespace: "ns".into(), name: "cm".into(), key: key.into() },
            document: Some(1),
            line,
            policy: None,
            rule: None,
            field: Some("spec.rules[0].check".into()),
            reason: reason.into(),
        }
    }

    #[test]
    fn note_names_key_line_document_field_and_reason() {
        let n =
            note("refused:", &[error("a.yaml", Some(7), "unknown check `x`"), error("b.yml", None, "bad")]);
        assert_eq!(
            n,
            "refused: a.yaml:7: document[1]: spec.rules[0].check: unknown check `x`; \
             b.yml: document[1]: spec.rules[0].check: bad"
        );
    }

    #[test]
    fn long_notes_are_cut_to_the_limit_with_a_count() {
        let errors: Vec<_> = (0..50).map(|i| error("a.yaml", Some(i), &"x".repeat(60))).collect();
        let n = note("refused:", &errors);
        assert!(n.len() <= NOTE_LIMIT, "{}", n.len());
        assert!(n.ends_with("more; see GET /policies or the logs)"), "{n}");
        let shown = n.matches("a.yaml:").count();
        assert!(n.contains(&format!("(+{} more", 50 - shown)), "{n}");
    }

    #[test]
    fn one_huge_error_is_cut_at_a_char_boundary() {
        let n = note("refused:", &[error("a.yaml", Some(1), &"é".repeat(2000))]);
        assert!(n.len() <= NOTE_LIMIT, "{}", n.len());
        assert!(n.ends_with("..."), "{n}");
    }
}
