//! `--format sarif`: SARIF 2.1.0, the format code-scanning services read (GitHub code scanning
//! annotates the offending line of a pull request with it).
//!
//! One SARIF rule per policy rule of the set (so that an alert closes when its finding is
//! fixed), with the check's summary and the policy's description as help and the compliance
//! controls as tags; one result per violation, located at the line of the offending field. The
//! level follows the violation's effective mode: enforce is `error`, warn `warning`, audit
//! `note`. Written object by object, like `--format json`.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::ObjectResult;
use crate::policy::{CompiledPolicy, Mode, PolicySet, Severity};

/// The rule of objects refused without a violation.
pub const REFUSED: &str = "podguard/refused";

/// The `$schema` SARIF consumers expect.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Writes a SARIF 2.1.0 log object by object: the tool and its rules first (they come from the
/// policy set), then each object's results as it is decided, so a run over thousands of
/// objects never holds them all.
#[derive(Debug, Default)]
pub struct Sarif {
    /// Rule id -> its index in the driver's rules.
    rule_index: std::collections::HashMap<String, usize>,
    written: usize,
}

impl Sarif {
    /// Writes the log up to its results: the driver with one rule per policy rule of `set`.
    pub fn begin(set: &PolicySet, out: &mut dyn Write) -> io::Result<Self> {
        let mut rule_index = std::collections::HashMap::new();
        let mut rules = Vec::new();
        for p in set.policies() {
            for (i, rule) in p.rules.iter().enumerate() {
                let id = format!("{}/{}", p.name, rule.name);
                rules.push(rule_json(p, i, &id));
                rule_index.insert(id, rules.len() - 1);
            }
        }
        // Objects refused for no violation (unreadable as their kind, an apiVersion no longer
        // served) fail the run: they get a result too, under a rule of their own.
        rules.push(json!({
            "id": REFUSED,
            "name": REFUSED,
            "shortDescription": {"text": "the object would be refused without a policy violation"},
            "fullDescription": {"text": "The object cannot be read as its kind (a field of the wrong type, with --on-error deny), or its apiVersion is no longer served: the cluster refuses it whatever the policies say."},
            "help": {"text": "Fix what the message names: the field and its expected type, or the apiVersion to use."},
            "defaultConfiguration": {"level": "error"},
            "properties": {"tags": ["kubernetes"], "precision": "very-high", "problem.severity": "error"},
        }));
        rule_index.insert(REFUSED.to_owned(), rules.len() - 1);
        let tool =
            json!({"driver": {"name": "podguard", "version": env!("CARGO_PKG_VERSION"), "rules": rules}});
        write!(out, "{{\"$schema\": \"{SCHEMA}\", \"version\": \"2.1.0\", \"runs\": [{{\n\"tool\": ")?;
        serde_json::to_writer_pretty(&mut *out, &tool)?;
        out.write_all(b",\n\"columnKind\": \"unicodeCodePoints\",\n\"results\": [")?;
        Ok(Self { rule_index, written: 0 })
    }

    /// Writes the results of one object: one per violation, and one for a refusal without an
    /// enforce violation.
    pub fn result(&mut self, out: &mut dyn Write, r: &ObjectResult) -> io::Result<()> {
        if !r.allowed && !r.violations.iter().any(|f| f.violation.mode == Mode::Enforce) {
            let mut why: Vec<String> = r.reason.iter().cloned().collect();
            why.extend(r.notes.iter().cloned());
            let result = json!({
                "ruleId": REFUSED,
                "ruleIndex": self.rule_index.get(REFUSED),
                "level": "error",
                "message": {"text": format!("{} {}: refused: {}", r.kind, r.name, why.join("; "))},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&r.file)},
                        "region": {"startLine": r.line.max(1)},
                    },
                }],
            });
            self.write(out, &result)?;
        }
        for f in &r.violations {
            let v = &f.violation;
            let id = format!("{}/{}", v.policy, v.rule);
            let mut message = v.line();
            if !r.name.is_empty() {
                message = format!("{} {}: {message}", r.kind, r.name);
            }
            let mut result = json!({
                "ruleId": id,
                "level": level(v.mode),
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&r.file)},
                        "region": {"startLine": f.line.max(1)},
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("{}/{}/{}:{}", r.kind, r.namespace, r.name, v.path),
                        "kind": "object",
                    }],
                }],
                "properties": {"mode": v.mode.as_str(), "path": v.path.as_str()},
            });
            if let Some(index) = self.rule_index.get(&id) {
                result["ruleIndex"] = json!(index);
            }
            self.write(out, &result)?;
        }
        Ok(())
    }

    fn write(&mut self, out: &mut dyn Write, result: &Value) -> io::Result<()> {
        out.write_all(if self.written == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, result)?;
        self.written += 1;
        Ok(())
    }

    /// Closes the log.
    pub fn finish(self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(b"\n]}]}\n")
    }
}

/// The SARIF rule of rule `i` of policy `p`.
fn rule_json(p: &CompiledPolicy, i: usize, id: &str) -> Value {
    let source = p.source.spec.rules.get(i);
    let rule_name = p.rules.get(i).map_or("", |r| &*r.name);
    let what = source
        .and_then(|r| r.check.as_deref())
        .and_then(crate::checks::lookup)
        .map(|d| d.summary.to_owned())
        .or_else(|| source.and_then(|r| r.message.clone()))
        .unwrap_or_else(|| format!("rule {rule_name} of policy {}", p.name));
    let description = p.source.spec.description.trim();
    let controls: Vec<String> = p.controls.iter().map(ToString::to_string).collect();
    let mut help = format!("{what}.");
    if !description.is_empty() {
        help.push_str(&format!(" Policy {}: {description}", p.name));
    }
    if !controls.is_empty() {
        help.push_str(&format!(" Controls: {}.", controls.join(", ")));
    }
    let mut tags = vec!["security".to_owned(), "kubernetes".to_owned()];
    tags.extend(controls);
    json!({
        "id": id,
        "name": id,
        "shortDescription": {"text": what},
        "fullDescription": {"text": help},
        "help": {"text": help},
        "defaultConfiguration": {"level": level(p.mode.unwrap_or(Mode::Enforce))},
        "properties": {
            "tags": tags,
            "precision": "very-high",
            "problem.severity": problem_severity(p.severity),
            "security-severity": security_severity(p.severity),
        },
    })
}

fn level(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "error",
        Mode::Warn => "warning",
        Mode::Audit => "note",
    }
}

fn problem_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "recommendation",
    }
}

/// GitHub's scale: critical above 9, high 7 to 8.9, medium 4 to 6.9, low below 4.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

/// A file as given on the command line as a URI reference: relative paths stay relative (code
/// scanning resolves them against the repository), absolute ones become `file://` URIs, and
/// bytes outside the unreserved set and `/` are percent-encoded.
fn uri(file: &str) -> String {
    let (prefix, path) = match file.strip_prefix('/') {
        Some(_) => ("file://", file),
        None => ("", file.strip_prefix("./").unwrap_or(file)),
    };
    let mut out = String::with_capacity(prefix.len() + path.len());
    out.push_str(prefix);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_become_uri_references() {
        assert_eq!(uri("./deploy/app.yaml"), "deploy/app.yaml");
        assert_eq!(uri("/abs/my app.yaml"), "file:///abs/my%20app.yaml");
        assert_eq!(uri("-"), "-");
        assert_eq!(uri("é.yaml"), "%C3%A9.yaml");
    }
}
