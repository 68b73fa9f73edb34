//! `allowedHostPaths`: hostPath volumes stay under allowed host directories, read-only where the
//! policy says so.
//!
//! Paths are compared by component, so `/var/log` allows `/var/log` and `/var/log/app` but not
//! `/var/logs`. When several prefixes match, the longest one decides whether the mount must be
//! read-only (so `/var` writable with `/var/lib/secrets` read-only means what it says). An empty
//! list allows no hostPath volume at all. A read-only prefix requires `readOnly: true` on every
//! mount of the volume, in every container list.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Check, Definition, Params, ParamsError, parse_params};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "allowedHostPaths",
    summary: "hostPath volumes sit under the listed prefixes, read-only where required (empty: none)",
    params: &["paths"],
    parts: &[],
    build: AllowedHostPaths::build,
}];

/// One allowed prefix.
#[derive(Debug)]
struct Allowed {
    prefix: String,
    /// Number of path components in `prefix` (its specificity).
    depth: usize,
    read_only: bool,
}

/// `allowedHostPaths`: every hostPath volume is under one of `params.paths`.
#[derive(Debug)]
pub struct AllowedHostPaths {
    allowed: Vec<Allowed>,
    /// Built at load so a finding only clones it.
    fix: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostPathsParams {
    paths: Option<Vec<PathParam>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathParam {
    path_prefix: String,
    #[serde(default)]
    read_only: bool,
}

/// The components of an absolute path, ignoring empty ones (`//`, a trailing `/`) and `.`.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Whether `path` is `prefix` or below it, component by component.
fn is_under(path: &str, prefix: &str) -> bool {
    let mut path = components(path);
    components(prefix).all(|want| path.next() == Some(want))
}

impl AllowedHostPaths {
    fn build(params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        let p: HostPathsParams = parse_params(params)?;
        let listed = p.paths.ok_or_else(|| {
            ParamsError::new(
                "paths",
                "is required: list {pathPrefix, readOnly} entries, or [] to allow no hostPath volume",
            )
        })?;
        let mut allowed = Vec::with_capacity(listed.len());
        for (i, PathParam { path_prefix, read_only }) in listed.into_iter().enumerate() {
            let field = || format!("paths[{i}].pathPrefix");
            if !path_prefix.starts_with('/') {
                return Err(ParamsError::new(field(), format!("`{path_prefix}` must be an absolute path")));
            }
            if components(&path_prefix).any(|c| c == "..") {
                return Err(ParamsError::new(field(), format!("`{path_prefix}` must not contain `..`")));
            }
            allowed.push(Allowed { depth: components(&path_prefix).count(), prefix: path_prefix, read_only });
        }
        let fix = if allowed.is_empty() {
            "use a persistentVolumeClaim, emptyDir, configMap or secret volume instead".to_owned()
        } else {
            let list: Vec<String> = allowed
                .iter()
                .map(|a| if a.read_only { format!("{} read-only", a.prefix) } else { a.prefix.clone() })
                .collect();
            format!("use a host path under: {}", list.join(", "))
        };
        Ok(Box::new(Self { allowed, fix }))
    }

    /// The entry that governs `path`: the longest matching prefix, read-only on a tie.
    fn governing(&self, path: &str) -> Option<&Allowed> {
        self.allowed.iter().filter(|a| is_under(path, &a.prefix)).max_by_key(|a| (a.depth, a.read_only))
    }
}

impl Check for AllowedHostPaths {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for (vi, volume) in subject.spec.volumes.iter().flatten().enumerate() {
            let Some(host_path) = &volume.host_path else { continue };
            let path = host_path.path.as_str();
            let vpath = || subject.path().field("volumes").index(vi).field("hostPath").field("path");
            let problem = if !path.starts_with('/') {
                Some("which is not an absolute path")
            } else if components(path).any(|c| c == "..") {
                Some("which contains `..`")
            } else {
                None
            };
            let governing = if problem.is_none() { self.governing(path) } else { None };
            let Some(allowed) = governing else {
                let why = problem.unwrap_or(if self.allowed.is_empty() {
                    "but hostPath volumes are not allowed"
                } else {
                    "which is not under an allowed prefix"
                });
                out.push(Finding::new(
                    vpath(),
                    format!("volume \"{}\" mounts host path \"{path}\" {why}", volume.name),
                    Cow::Owned(self.fix.clone()),
                ));
                continue;
            };
            if !allowed.read_only {
                continue;
            }
            for c in subject.containers() {
                for (mi, m) in c.volume_mounts.iter().enumerate() {
                    if m.name != volume.name || m.read_only == Some(true) {
                        continue;
                    }
                    out.push(Finding::new(
                        c.path(subject).field("volumeMounts").index(mi).field("readOnly"),
                        format!(
                            "{} \"{}\" mounts host path volume \"{}\" ({path}) writable, but paths \
                             under {} may only be mounted read-only",
                            c.kind.noun(),
                            c.name,
                            volume.name,
                            allowed.prefix
                        ),
                        "set readOnly: true on this volumeMount",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::is_under;
    use crate::checks::images::tests::{build_err, paths, run};

    const NAME: &str = "allowedHostPaths";
    const LOGS: &str = "paths: [{pathPrefix: /var/log, readOnly: true}, {pathPrefix: /data/}]";

    #[rstest]
    #[case::same("/var/log", "/var/log", true)]
    #[case::below("/var/log/app", "/var/log", true)]
    #[case::trailing_slashes("/var/log/", "/var/log/", true)]
    #[case::doubled_slash("//var//log/x", "/var/log", true)]
    #[case::dot("/var/./log", "/var/log", true)]
    #[case::sibling_with_same_start("/var/logs", "/var/log", false)]
    #[case::parent("/var", "/var/log", false)]
    #[case::root_allows_all("/etc", "/", true)]
    fn component_prefixes(#[case] path: &str, #[case] prefix: &str, #[case] under: bool) {
        assert_eq!(is_under(path, prefix), under);
    }

    fn pod(host_path: &str, read_only: Option<bool>) -> String {
        let ro = read_only.map_or(String::new(), |r| format!(", readOnly: {r}"));
        format!(
            "spec: {{volumes: [{{name: cfg, configMap: {{name: c}}}}, {{name: host, hostPath: {{path: '{host_path}'}}}}], \
             containers: [{{name: app, volumeMounts: [{{name: host, mountPath: /h{ro}}}]}}]}}"
        )
    }

    #[rstest]
    #[case::read_only_ok("/var/log/app", Some(true), &[])]
    #[case::read_only_required("/var/log", Some(false), &["spec.containers[0].volumeMounts[0].readOnly"])]
    #[case::read_only_unset("/var/log/pods", None, &["spec.containers[0].volumeMounts[0].readOnly"])]
    #[case::writable_allowed("/data/cache", None, &[])]
    #[case::outside("/etc", Some(true), &["spec.volumes[1].hostPath.path"])]
    #[case::lookalike("/var/logs", Some(true), &["spec.volumes[1].hostPath.path"])]
    #[case::traversal("/data/../etc", None, &["spec.volumes[1].hostPath.path"])]
    #[case::relative("data/x", None, &["spec.volumes[1].hostPath.path"])]
    fn allowed_host_paths(#[case] host_path: &str, #[case] read_only: Option<bool>, #[case] want: &[&str]) {
        assert_eq!(paths(&run(NAME, LOGS, "Pod", &pod(host_path, read_only))), want);
    }

    #[test]
    fn messages_name_volume_path_and_fix() {
        let f = run(NAME, LOGS, "Pod", &pod("/etc", None));
        assert_eq!(
            f[0].message,
            "volume \"host\" mounts host path \"/etc\" which is not under an allowed prefix"
        );
        assert_eq!(f[0].fix, "use a host path under: /var/log read-only, /data/");
        let f = run(NAME, LOGS, "Pod", &pod("/var/log", None));
        assert_eq!(
            f[0].message,
            "container \"app\" mounts host path volume \"host\" (/var/log) writable, but paths under /var/log \
             may only be mounted read-only"
        );
    }

    #[test]
    fn empty_list_allows_no_host_path() {
        let f = run(NAME, "paths: []", "Pod", &pod("/var/log", Some(true)));
        assert_eq!(paths(&f), ["spec.volumes[1].hostPath.path"]);
        assert!(f[0].message.ends_with("but hostPath volumes are not allowed"), "{}", f[0].message);
        assert!(
            run(NAME, "paths: []", "Pod", "spec: {volumes: [{name: e, emptyDir: {}}], containers: []}")
                .is_empty()
        );
    }

    #[rstest]
    #[case::longest_read_only_wins("[{pathPrefix: /var}, {pathPrefix: /var/lib/secrets, readOnly: true}]", 1)]
    #[case::longest_writable_wins("[{pathPrefix: /var, readOnly: true}, {pathPrefix: /var/lib}]", 0)]
    #[case::tie_is_read_only("[{pathPrefix: /var/lib}, {pathPrefix: /var/lib/, readOnly: true}]", 1)]
    fn most_specific_prefix_decides(#[case] list: &str, #[case] count: usize) {
        let f = run(NAME, &format!("paths: {list}"), "Pod", &pod("/var/lib/secrets/x", None));
        assert_eq!(f.len(), count, "{f:?}");
    }

    #[test]
    fn every_mount_in_every_container_list_under_a_job() {
        let yaml = r"
spec:
  template:
    spec:
      volumes: [{name: logs, hostPath: {path: /var/log}}]
      containers:
        - {name: a, volumeMounts: [{name: other, mountPath: /o}, {name: logs, mountPath: /l, readOnly: true}]}
        - {name: b, volumeMounts: [{name: logs, mountPath: /l}]}
      initContainers: [{name: i, volumeMounts: [{name: logs, mountPath: /l}]}]
      ephemeralContainers: [{name: e, volumeMounts: [{name: logs, mountPath: /l, readOnly: false}]}]
";
        let f = run(NAME, LOGS, "Job", yaml);
        assert_eq!(
            paths(&f),
            [
                "spec.template.spec.containers[1].volumeMounts[0].readOnly",
                "spec.template.spec.initContainers[0].volumeMounts[0].readOnly",
                "spec.template.spec.ephemeralContainers[0].volumeMounts[0].readOnly",
            ]
        );
        let named: Vec<&str> =
            f.iter().map(|f| f.message.split(" mounts").next().unwrap_or_default()).collect();
        assert_eq!(named, ["container \"b\"", "init container \"i\"", "ephemeral container \"e\""]);
    }

    #[rstest]
    #[case::missing("{}", "paths")]
    #[case::not_a_list("paths: /var/log", "paths")]
    #[case::relative("paths: [{pathPrefix: /ok}, {pathPrefix: var/log}]", "paths[1].pathPrefix")]
    #[case::traversal("paths: [{pathPrefix: /var/../etc}]", "paths[0].pathPrefix")]
    #[case::no_prefix("paths: [{readOnly: true}]", "paths[0]")]
    #[case::read_only_not_bool("paths: [{pathPrefix: /x, readOnly: yes please}]", "paths[0].readOnly")]
    fn rejects_bad_params(#[case] params: &str, #[case] field: &str) {
        let e = build_err(NAME, params);
        assert_eq!(e.field, field, "{e}");
    }
}
