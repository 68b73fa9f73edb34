//! A decision rendered as the answer to the API server: the refusal message, the warnings, the
//! audit annotations, as an [`AdmissionResponse`] or straight as the AdmissionReview JSON.
//!
//! What an answer shows and what it only counts ([`MAX_SHOWN`] per mode) is the decision's
//! (`Decision::shown`); this module only writes it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::decision::{Decision, MAX_SHOWN, Outcome};
use super::review::{API_VERSION, AdmissionResponse, KIND, Status};
use crate::json;
use crate::object::DecodeError;
use crate::policy::{Mode, Violation};

impl Decision {
    /// The refusal message: one line per enforce violation,
    /// `[policy/rule] field.path: what is wrong (how to fix)`; or the read error.
    pub fn deny_message(&self) -> String {
        let mut msg = String::with_capacity(128 * self.violations.len());
        // Writing into a String cannot fail.
        let _ = self.write_deny_message(&mut msg);
        msg
    }

    fn write_deny_message<W: fmt::Write + ?Sized>(&self, w: &mut W) -> fmt::Result {
        match &self.outcome {
            Outcome::Unreadable(e) => return write!(w, "podguard cannot evaluate this object: {e}"),
            Outcome::Refused(why) => return w.write_str(why),
            _ => {}
        }
        let (shown, more) = self.shown(Mode::Enforce);
        for (i, v) in shown.enumerate() {
            if i > 0 {
                w.write_char('\n')?;
            }
            v.render(w, true)?;
        }
        if more > 0 {
            write!(
                w,
                "\n… and {more} more (the first {MAX_SHOWN} are shown; podguard's log and metrics count all)"
            )?;
        }
        let controls = crate::compliance::compact_union(self.shown(Mode::Enforce).0.map(|v| &v.controls));
        if !controls.is_empty() {
            w.write_str("\ncontrols: ")?;
            w.write_str(&controls)?;
        }
        Ok(())
    }

    /// One warning per warn violation: the full line when it fits in 120 characters, else
    /// without the fix (the API server may cut long warnings).
    pub fn warnings(&self) -> Vec<String> {
        self.warning_lines()
            .map(|w| {
                let mut s = String::new();
                let _ = w.write(&mut s);
                s
            })
            .collect()
    }

    fn warning_lines(&self) -> impl Iterator<Item = Warning<'_>> {
        let on_error = match (self.allowed, &self.outcome) {
            (true, Outcome::Unreadable(e)) => Some(Warning::AdmittedUnreadable(e)),
            _ => None,
        };
        let (shown, more) = self.shown(Mode::Warn);
        let more = (more > 0).then_some(Warning::More(more));
        shown.map(Warning::Violation).chain(more).chain(on_error)
    }

    /// `auditAnnotations`: key `violations`, a compact JSON list of the first [`MAX_SHOWN`] audit
    /// violations, and `violations-omitted` with the count of the others when there are more.
    pub fn audit_annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.with_mode(Mode::Audit).next().is_some() {
            let mut list = String::new();
            let _ = self.write_audit_list(&mut list);
            out.insert(AUDIT_KEY.to_owned(), list);
        }
        let (_, more) = self.shown(Mode::Audit);
        if more > 0 {
            out.insert(AUDIT_OMITTED_KEY.to_owned(), more.to_string());
        }
        out
    }

    /// `[{"policy":…,"rule":…,"path":…,"message":…,"controls":…},…]` (`controls` compact, when
    /// there are any).
    fn write_audit_list<W: fmt::Write + ?Sized>(&self, w: &mut W) -> fmt::Result {
        self.write_audit_entries(w, "\"", json::string)
    }

    /// The audit list as the inside of a JSON string literal: the annotation's value. Its own
    /// quotes are written escaped from the start rather than escaped afterwards: a list of three
    /// violations holds some fifty of them.
    fn write_audit_list_escaped(&self, out: &mut String) -> fmt::Result {
        self.write_audit_entries(out, "\\\"", json::string_in_string)
    }

    /// The audit list with `quote` around keys and `value` writing each value.
    fn write_audit_entries<W: fmt::Write + ?Sized>(
        &self,
        w: &mut W,
        quote: &str,
        value: fn(&mut W, &str) -> fmt::Result,
    ) -> fmt::Result {
        w.write_char('[')?;
        for (i, v) in self.shown(Mode::Audit).0.enumerate() {
            if i > 0 {
                w.write_char(',')?;
            }
            let controls = v.controls.compact();
            let fields = [
                ("policy", &*v.policy),
                ("rule", &*v.rule),
                ("path", v.path.as_str()),
                ("message", &v.message),
                ("controls", controls),
            ];
            let present = if controls.is_empty() { 4 } else { 5 };
            for (j, (key, text)) in fields.into_iter().take(present).enumerate() {
                w.write_char(if j == 0 { '{' } else { ',' })?;
                w.write_str(quote)?;
                w.write_str(key)?;
                w.write_str(quote)?;
                w.write_char(':')?;
                value(w, text)?;
            }
            w.write_char('}')?;
        }
        w.write_char(']')
    }

    /// The AdmissionResponse for request `uid`.
    pub fn response(&self, uid: &str) -> AdmissionResponse {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: self.allowed,
            status: (!self.allowed).then(|| Status {
                code: 403,
                reason: "Forbidden".into(),
                message: self.deny_message(),
            }),
            warnings: self.warnings(),
            audit_annotations: self.audit_annotations(),
        }
    }

    /// The AdmissionReview JSON answering request `uid`: the same bytes as
    /// `self.response(uid).to_review_json()`, written straight into one buffer instead of
    /// building the message, every warning and the annotation as strings first. A denied pod
    /// carries dozens of lines, and this runs for every admission request. Measured side by
    /// side with a serde writer of borrowed types (now the tests' oracle), it encodes the load
    /// test's denied review in 2.0 µs against 3.7 µs (BENCHMARKS.md).
    pub fn review_json(&self, uid: &str) -> Vec<u8> {
        let mut out = String::with_capacity(160 + 192 * self.violations.len());
        // Writing into a String cannot fail.
        let _ = self.write_review_json(&mut out, uid);
        out.into_bytes()
    }

    fn write_review_json(&self, out: &mut String, uid: &str) -> fmt::Result {
        write!(out, r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","response":{{"uid":"#)?;
        json::string(out, uid)?;
        write!(out, r#","allowed":{}"#, self.allowed)?;
        // Each string is written plain into `text` first and escaped into `out` in one pass:
        // escaping many small pieces one by one costs more than the copy.
        // Empty until needed: an allowed pod without findings (most requests) allocates nothing.
        let mut text = String::new();
        if !self.allowed {
            self.write_deny_message(&mut text)?;
            out.push_str(r#","status":{"code":403,"reason":"Forbidden","message":"#);
            json::string(out, &text)?;
            out.push('}');
        }
        let mut warnings = 0;
        for warning in self.warning_lines() {
            text.clear();
            warning.write(&mut text)?;
            out.push_str(if warnings == 0 { r#","warnings":["# } else { "," });
            json::string(out, &text)?;
            warnings += 1;
        }
        if warnings > 0 {
            out.push(']');
        }
        // As `audit_annotations`: the list when some are kept, the count when some are not (a
        // merge can lift every kept audit finding to enforce while others were only counted).
        let kept = self.with_mode(Mode::Audit).next().is_some();
        let (_, more) = self.shown(Mode::Audit);
        if kept || more > 0 {
            out.push_str(r#","auditAnnotations":{"#);
            if kept {
                write!(out, r#""{AUDIT_KEY}":""#)?;
                self.write_audit_list_escaped(out)?;
                out.push('"');
            }
            if more > 0 {
                if kept {
                    out.push(',');
                }
                write!(out, r#""{AUDIT_OMITTED_KEY}":"{more}""#)?;
            }
            out.push('}');
        }
        out.push_str("}}");
        Ok(())
    }
}

/// The `auditAnnotations` key holding the audit violations.
const AUDIT_KEY: &str = "violations";

/// The `auditAnnotations` key counting the audit violations not listed.
const AUDIT_OMITTED_KEY: &str = "violations-omitted";

/// One entry of `warnings`.
enum Warning<'a> {
    /// A warn-mode violation.
    Violation(&'a Violation),
    /// The object could not be read and `--on-error allow` admitted it.
    AdmittedUnreadable(&'a DecodeError),
    /// How many warn-mode violations were not listed.
    More(usize),
}

impl Warning<'_> {
    /// Longer warnings lose their fix: the API server may cut them, and the fix is the part a
    /// reader can best do without.
    const MAX_CHARS: usize = 120;

    /// Appends the warning to `out`.
    fn write(&self, out: &mut String) -> fmt::Result {
        match self {
            Self::Violation(v) => {
                let start = out.len();
                v.render(out, true)?;
                if char_count(&out[start..]) > Self::MAX_CHARS {
                    out.truncate(start);
                    v.render(out, false)?;
                }
                Ok(())
            }
            Self::AdmittedUnreadable(e) => {
                write!(out, "podguard could not evaluate this object and admitted it (--on-error allow): {e}")
            }
            Self::More(n) => write!(out, "… and {n} more warnings (the first {MAX_SHOWN} are shown)"),
        }
    }
}

/// Characters in `s`; most lines are ASCII, where that is the length.
fn char_count(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.chars().count() }
}

/// The oracle of [`Decision::review_json`]'s bytes: the AdmissionReview written by serde, with
/// borrowed types serialized straight into one buffer. The deny message is streamed through the
/// serializer's escaping, each warning is put together in one reused line first (a long one
/// loses its fix, which needs the whole line), and the audit annotation's value is the audit list
/// serialized to a string first (it is JSON text held in a JSON string). Measured side by side,
/// the hand-written writer encodes a denied review in about 55% of this one's time
/// (BENCHMARKS.md), so it is the one the webhook uses.
#[cfg(test)]
mod serde_writer {
    use serde::ser::{Error as _, SerializeSeq as _};
    use serde::{Serialize, Serializer};

    use super::*;

    /// The AdmissionReview JSON answering `uid`, written by serde.
    pub(super) fn review_json(d: &Decision, uid: &str) -> Vec<u8> {
        let review = ReviewOut {
            api_version: API_VERSION,
            kind: KIND,
            response: ResponseOut {
                uid,
                allowed: d.allowed,
                status: (!d.allowed).then_some(StatusOut {
                    code: 403,
                    reason: "Forbidden",
                    message: DenyMessage(d),
                }),
                warnings: Warnings(d),
                audit_annotations: d.with_mode(Mode::Audit).next().is_some().then(|| AuditAnnotations {
                    violations: serde_json::to_string(&AuditList(d)).unwrap_or_default(),
                    omitted: Some(d.shown(Mode::Audit).1).filter(|&more| more > 0),
                }),
            },
        };
        let mut out = Vec::with_capacity(160 + 192 * d.violations.len());
        // Writing into a Vec cannot fail, nor can rendering into the serializer's writer.
        let _ = serde_json::to_writer(&mut out, &review);
        out
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ReviewOut<'a> {
        api_version: &'static str,
        kind: &'static str,
        response: ResponseOut<'a>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ResponseOut<'a> {
        uid: &'a str,
        allowed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<StatusOut<'a>>,
        #[serde(skip_serializing_if = "Warnings::is_empty")]
        warnings: Warnings<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        audit_annotations: Option<AuditAnnotations>,
    }

    #[derive(Serialize)]
    struct StatusOut<'a> {
        code: u16,
        reason: &'static str,
        message: DenyMessage<'a>,
    }

    /// The refusal message, streamed into the serializer's escaping.
    struct DenyMessage<'a>(&'a Decision);

    impl fmt::Display for DenyMessage<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.write_deny_message(f)
        }
    }

    impl Serialize for DenyMessage<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    /// The warnings, each put together in one reused line.
    struct Warnings<'a>(&'a Decision);

    impl Warnings<'_> {
        fn is_empty(&self) -> bool {
            self.0.warning_lines().next().is_none()
        }
    }

    impl Serialize for Warnings<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(None)?;
            let mut line = String::new();
            for warning in self.0.warning_lines() {
                line.clear();
                warning.write(&mut line).map_err(S::Error::custom)?;
                seq.serialize_element(line.as_str())?;
            }
            seq.end()
        }
    }

    /// `auditAnnotations`; the keys are [`AUDIT_KEY`] and [`AUDIT_OMITTED_KEY`].
    #[derive(Serialize)]
    struct AuditAnnotations {
        violations: String,
        #[serde(
            rename = "violations-omitted",
            skip_serializing_if = "Option::is_none",
            serialize_with = "as_string"
        )]
        omitted: Option<usize>,
    }

    /// A count as a JSON string (annotation values are strings).
    fn as_string<S: Serializer>(n: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    /// The first [`MAX_SHOWN`] audit violations.
    struct AuditList<'a>(&'a Decision);

    impl Serialize for AuditList<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.shown(Mode::Audit).0.map(AuditEntry::of))
        }
    }

    #[derive(Serialize)]
    struct AuditEntry<'a> {
        policy: &'a str,
        rule: &'a str,
        path: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        controls: &'a str,
    }

    impl<'a> AuditEntry<'a> {
        fn of(v: &'a Violation) -> Self {
            Self {
                policy: &v.policy,
                rule: &v.rule,
                path: v.path.as_str(),
                message: &v.message,
                controls: v.controls.compact(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::decision::{Settings, evaluate};
    use crate::context::Operation;
    use crate::testing::{pod, privileged_rule, request, set};
    use rstest::rstest;

    #[test]
    fn warnings_and_audit_annotations() {
        let s = set(vec![
            privileged_rule("w", Some(Mode::Warn), "privileged"),
            privileged_rule("a", Some(Mode::Audit), "root"),
        ]);
        let r =
            evaluate(&s, &Settings::default(), &request("", "Pod", Operation::Create, pod(&[true])), None)
                .response("u");
        assert!(r.allowed && r.status.is_none());
        assert_eq!(
            r.warnings,
            [
                "[w/privileged] spec.containers[0].securityContext.privileged: container \"c0\" is privileged (set it to false)"
            ]
        );
        let audit: serde_json::Value = serde_json::from_str(&r.audit_annotations["violations"]).unwrap();
        assert_eq!(
            audit,
            serde_json::json!([{"policy":"a","rule":"root","path":"spec.containers[0].securityContext.privileged","message":"container \"c0\" is privileged"}])
        );
    }

    fn violation(policy: &str, mode: Mode, message: &str, fix: &'static str) -> Violation {
        Violation {
            policy: policy.into(),
            rule: "rule".into(),
            severity: crate::policy::Severity::High,
            controls: Vec::new().into(),
            mode,
            path: crate::policy::FieldPath::new("spec").field("containers").index(0).field("image"),
            message: message.into(),
            fix: fix.into(),
            also: Vec::new(),
        }
    }

    fn decided(violations: Vec<Violation>) -> Decision {
        Decision {
            allowed: !violations.iter().any(|v| v.mode == Mode::Enforce),
            outcome: Outcome::Evaluated,
            violations,
            namespace_mode: Mode::Enforce,
            omitted: Vec::new(),
            applied: Vec::new(),
        }
    }

    fn unreadable(allowed: bool) -> Decision {
        Decision {
            allowed,
            outcome: Outcome::Unreadable(DecodeError {
                kind: "Pod".into(),
                path: "spec.containers[0].securityContext.runAsUser".into(),
                reason: "invalid type: string \"x\", expected i64".into(),
            }),
            violations: Vec::new(),
            namespace_mode: Mode::Enforce,
            omitted: Vec::new(),
            applied: Vec::new(),
        }
    }

    #[rstest]
    #[case::allowed_clean(decided(vec![]))]
    #[case::skipped(Decision::skipped("DELETE is not evaluated"))]
    #[case::denied_with_every_mode(decided(vec![
        violation("e1", Mode::Enforce, "container \"web\" runs privileged", "set it to false"),
        violation("e2", Mode::Enforce, "no fix here", ""),
        violation("w", Mode::Warn, "tag \"latest\"\nis\tmutable \\ é 日本", "pin it"),
        violation("a", Mode::Audit, "a \"quoted\" \\ back\u{1}slash\u{8}\u{c}", "x"),
        violation("a2", Mode::Audit, "second", ""),
    ]))]
    #[case::warn_only(decided(vec![violation("w", Mode::Warn, "short", "fix")]))]
    #[case::long_warning(decided(vec![violation("w", Mode::Warn, &"long ".repeat(30), "dropped fix")]))]
    #[case::audit_only(decided(vec![violation("a", Mode::Audit, "m", "")]))]
    #[case::audit_only_counted(Decision {
        omitted: vec![crate::admission::decision::Omitted { policy: "a".into(), rule: "r".into(), mode: Mode::Audit, count: 10 }],
        ..decided(vec![violation("e", Mode::Enforce, "m", "")])
    })]
    #[case::unreadable_denied(unreadable(false))]
    #[case::unreadable_admitted(unreadable(true))]
    fn review_json_is_byte_for_byte_the_serialized_response(#[case] d: Decision) {
        for uid in ["705ab4f5-6393-11e8-b7cc-42010a800002", "odd \"uid\"\\"] {
            let direct = String::from_utf8(d.review_json(uid)).unwrap();
            let serialized = String::from_utf8(d.response(uid).to_review_json()).unwrap();
            assert_eq!(direct, serialized);
            let back: serde_json::Value = serde_json::from_str(&direct).unwrap();
            assert_eq!(back["response"]["uid"], uid);
            assert_eq!(back["response"]["allowed"], d.allowed);
        }
    }

    #[test]
    fn a_pod_with_thousands_of_violations_gets_a_bounded_answer() {
        let s = set(vec![
            privileged_rule("e", None, "e"),
            privileged_rule("w", Some(Mode::Warn), "w"),
            privileged_rule("a", Some(Mode::Audit), "a"),
        ]);
        let d = evaluate(
            &s,
            &Settings::default(),
            &request("", "Pod", Operation::Create, pod(&[true; 7_000])),
            None,
        );
        assert_eq!(d.violations.len(), 21_000, "every violation is kept for metrics and the log");
        let json = d.review_json("u");
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
        assert_eq!(
            String::from_utf8(json).unwrap(),
            String::from_utf8(d.response("u").to_review_json()).unwrap()
        );
        let r = d.response("u");
        let message = r.status.unwrap().message;
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert_eq!(
            lines[MAX_SHOWN],
            "… and 6950 more (the first 50 are shown; podguard's log and metrics count all)"
        );
        assert_eq!(r.warnings.len(), MAX_SHOWN + 1);
        assert_eq!(r.warnings[MAX_SHOWN], "… and 6950 more warnings (the first 50 are shown)");
        let audit: Vec<serde_json::Value> = serde_json::from_str(&r.audit_annotations["violations"]).unwrap();
        assert_eq!(audit.len(), MAX_SHOWN);
        assert_eq!(r.audit_annotations["violations-omitted"], "6950");
    }

    #[test]
    fn warnings_over_120_characters_lose_their_fix() {
        let short = violation("w", Mode::Warn, "short", "pin it");
        let long = violation("w", Mode::Warn, &"é".repeat(100), "pin it");
        let warnings = decided(vec![short, long]).warnings();
        assert_eq!(warnings[0], "[w/rule] spec.containers[0].image: short (pin it)");
        assert_eq!(warnings[1], format!("[w/rule] spec.containers[0].image: {}", "é".repeat(100)));
        // Counted in characters, not bytes: 75 two-byte characters with the fix make a line of
        // 119 characters (194 bytes), which fits.
        let fits = violation("w", Mode::Warn, &"é".repeat(75), "pin it");
        assert!(decided(vec![fits]).warnings()[0].ends_with("(pin it)"));
    }

    /// Every part of an answer with what needs escaping and what does not: quotes, backslashes,
    /// every control character, DEL, non-ASCII of every width, U+2028, in names, messages and fixes.
    fn escapes_everywhere() -> Decision {
        let controls: String = (0u8..0x20).map(char::from).collect();
        let text = format!("say \"hi\" \\ {controls} \u{7f} é 日本 🚀 \u{2028} </script>");
        let mut vs = Vec::new();
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
            let mut v = violation("pol\"icy\\é", mode, &text, "fix \"it\"\n");
            v.rule = "ru\tle".into();
            v.controls = vec![
                crate::policy::Control { framework: "NIST".into(), id: "AC-6".into() },
                crate::policy::Control { framework: "Own \"x\"".into(), id: "é\\1".into() },
            ]
            .into();
            vs.push(v);
        }
        // Short enough to keep its fix as a warning.
        vs.push(violation("w", Mode::Warn, "tab\tnew\nline \u{1} 🚀", "pin \"it\""));
        decided(vs)
    }

    #[test]
    fn both_writers_give_the_same_bytes() {
        let mut decisions = vec![
            decided(vec![]),
            Decision::skipped("DELETE is not evaluated"),
            decided(vec![
                violation("e1", Mode::Enforce, "container \"web\" runs privileged", "set it to false"),
                violation("e2", Mode::Enforce, "no fix here", ""),
                violation("w", Mode::Warn, "tag \"latest\"\nis\tmutable \\ é 日本", "pin it"),
                violation("a", Mode::Audit, "a \"quoted\" \\ back\u{1}slash\u{8}\u{c}", "x"),
                violation("a2", Mode::Audit, "second", ""),
            ]),
            decided(vec![violation("w", Mode::Warn, "short", "fix")]),
            decided(vec![violation("w", Mode::Warn, &"long ".repeat(30), "dropped fix")]),
            decided(vec![violation("w", Mode::Warn, &"é".repeat(100), "dropped fix")]),
            decided(vec![violation("a", Mode::Audit, "m", "")]),
            unreadable(false),
            unreadable(true),
            Decision {
                allowed: false,
                outcome: Outcome::Refused("policy ConfigMap \"p\" does not load:\n\tbad".into()),
                ..decided(vec![])
            },
            escapes_everywhere(),
        ];
        // The bounded answers: 7,000 violations in each mode, all kept or only the shown ones.
        let s = set(vec![
            privileged_rule("e", None, "e"),
            privileged_rule("w", Some(Mode::Warn), "w"),
            privileged_rule("a", Some(Mode::Audit), "a"),
        ]);
        let req = request("", "Pod", Operation::Create, pod(&[true; 7_000]));
        decisions.push(evaluate(&s, &Settings::default(), &req, None));
        decisions.push(evaluate(&s, &Settings { keep_only_shown: true, ..Settings::default() }, &req, None));
        for d in &decisions {
            for uid in ["705ab4f5-6393-11e8-b7cc-42010a800002", "odd \"uid\"\\\u{1} é"] {
                let hand = String::from_utf8(d.review_json(uid)).unwrap();
                let serde = String::from_utf8(serde_writer::review_json(d, uid)).unwrap();
                assert_eq!(hand, serde);
            }
        }
    }

    #[test]
    fn the_answer_is_these_bytes() {
        let d = decided(vec![
            violation("e1", Mode::Enforce, "container \"web\" runs privileged", "set it to false"),
            violation("w", Mode::Warn, "tag \"latest\"\nis\tmutable \\ é 日本", "pin it"),
            violation("a", Mode::Audit, "a \"quoted\" \\ back\u{1}slash", "x"),
        ]);
        let expected = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":false,"status":{"code":403,"reason":"Forbidden","message":"[e1/rule] spec.containers[0].image: container \"web\" runs privileged (set it to false)"},"warnings":["[w/rule] spec.containers[0].image: tag \"latest\"\nis\tmutable \\ é 日本 (pin it)"],"auditAnnotations":{"violations":"[{\"policy\":\"a\",\"rule\":\"rule\",\"path\":\"spec.containers[0].image\",\"message\":\"a \\\"quoted\\\" \\\\ back\\u0001slash\"}]"}}}"#;
        assert_eq!(String::from_utf8(d.review_json("u")).unwrap(), expected);
    }
}
