//! Image checks: `allowedRegistries`, `disallowLatestTag`, `requireImageDigest`, and the image
//! reference parser they share.
//!
//! Every container list is checked (containers, initContainers, ephemeralContainers): a debug
//! container pulls an image like any other. A container without an image is skipped; the API
//! server refuses it on its own.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Check, Definition, Params, ParamsError, parse_params};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        name: "allowedRegistries",
        summary: "images come only from the listed registry prefixes",
        params: &["registries"],
        parts: &[],
        build: AllowedRegistries::build,
    },
    Definition {
        name: "disallowLatestTag",
        summary: "images carry an explicit tag other than `latest`, or a digest",
        params: &[],
        parts: &[],
        build: DisallowLatestTag::build,
    },
    Definition {
        name: "requireImageDigest",
        summary: "images are pinned by `@sha256:` digest",
        params: &[],
        parts: &[],
        build: RequireImageDigest::build,
    },
];

/// The parts of an image reference (`[registry[:port]/]path[:tag][@digest]`), borrowed from the
/// string, following the grammar of distribution/reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry host (with port) when the reference names one, e.g. `host:5000`.
    pub registry: Option<&'a str>,
    /// Repository path without the registry, e.g. `team/app`.
    pub path: &'a str,
    /// Tag, e.g. `1.2.3`.
    pub tag: Option<&'a str>,
    /// Digest, e.g. `sha256:…`.
    pub digest: Option<&'a str>,
}

/// Docker Hub, which a reference without a registry host refers to.
const DEFAULT_REGISTRY: &str = "docker.io";

impl<'a> ImageRef<'a> {
    /// Splits `image` into its parts. Never fails: a malformed reference yields whatever parts it
    /// has (the runtime refuses it at pull time).
    ///
    /// ```
    /// use podguard::checks::images::ImageRef;
    /// let r = ImageRef::parse("registry.local:5000/team/app:1.2@sha256:0123");
    /// assert_eq!(r.registry, Some("registry.local:5000"));
    /// assert_eq!(r.path, "team/app");
    /// assert_eq!(r.tag, Some("1.2"));
    /// assert_eq!(r.digest, Some("sha256:0123"));
    /// ```
    pub fn parse(image: &'a str) -> Self {
        let (name_tag, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (image, None),
        };
        // A `:` is a tag separator only after the last `/`; before it, it is a registry port.
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i + 1..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
            _ => (name_tag, None),
        };
        // As distribution/reference: the first component is a registry host when it holds a `.`
        // or a `:`, is `localhost`, or has an upper-case letter (repositories cannot).
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (Some(first), rest)
            }
            _ => (None, name),
        };
        Self { registry, path, tag, digest }
    }
}

/// Whether `image` (as written) starts with `prefix`, also trying its fully qualified Docker Hub
/// form (`nginx` is `docker.io/library/nginx`), without allocating.
fn has_prefix(image: &str, r: &ImageRef<'_>, prefix: &str) -> bool {
    if image.starts_with(prefix) {
        return true;
    }
    let registry = r.registry.unwrap_or(DEFAULT_REGISTRY);
    if registry != DEFAULT_REGISTRY {
        return false;
    }
    // The text after `registry/`: the whole reference when it names no registry.
    let rest = match r.registry {
        Some(host) => image.strip_prefix(host).and_then(|s| s.strip_prefix('/')).unwrap_or(image),
        None => image,
    };
    let library = if r.path.contains('/') { "" } else { "library/" };
    concat_starts_with(&[registry, "/", library, rest], prefix)
}

/// `parts.concat().starts_with(prefix)` without building the string.
fn concat_starts_with(parts: &[&str], prefix: &str) -> bool {
    let mut want = prefix;
    for part in parts {
        if want.len() <= part.len() {
            return part.starts_with(want);
        }
        match want.strip_prefix(part) {
            Some(rest) => want = rest,
            None => return false,
        }
    }
    want.is_empty()
}

fn images<'a>(subject: &Subject<'a>) -> impl Iterator<Item = (ContainerRef<'a>, &'a str)> + 'a {
    subject.containers().filter_map(|c| c.image.filter(|i| !i.is_empty()).map(|i| (c, i)))
}

/// `<container> "<name>" uses image "<image>" <problem>`, put together with `concat` rather
/// than `format!`: a denied pod renders many findings, and the formatting machinery costs more
/// than the rest of one.
fn uses_image(c: &ContainerRef<'_>, image: &str, problem: &str) -> String {
    [c.kind.noun(), " \"", c.name, "\" uses image \"", image, "\" ", problem].concat()
}

/// Registries named in the fix of an `allowedRegistries` violation.
const FIX_REGISTRIES: usize = 5;

/// `allowedRegistries`: every image starts with one of `params.registries`.
#[derive(Debug)]
pub struct AllowedRegistries {
    registries: Vec<String>,
    /// Built at load so a finding only clones it.
    fix: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistriesParams {
    registries: Option<Vec<String>>,
}

impl AllowedRegistries {
    fn build(params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        let p: RegistriesParams = parse_params(params)?;
        let registries = p.registries.ok_or_else(|| {
            ParamsError::new("registries", "is required: list the registry prefixes images may come from")
        })?;
        if registries.is_empty() {
            return Err(ParamsError::new("registries", "must list at least one registry prefix"));
        }
        for (i, r) in registries.iter().enumerate() {
            let field = || format!("registries[{i}]");
            if r.trim().is_empty() || r.contains(char::is_whitespace) {
                return Err(ParamsError::new(field(), "must be a non-empty prefix without spaces"));
            }
            // A bare host would also match `host.evil.example/…`: require the `/` that ends it.
            if !r.contains('/') {
                return Err(ParamsError::new(
                    field(),
                    format!("`{r}` would also match other hosts that start with it; write `{r}/`"),
                ));
            }
        }
        // A long allow-list would repeat itself in every message: the first few, and a count.
        let fix = match registries.len().checked_sub(FIX_REGISTRIES) {
            Some(more) if more > 0 => format!(
                "use an image from {} (or {more} more registries the policy allows)",
                registries[..FIX_REGISTRIES].join(", ")
            ),
            _ => format!("use an image from {}", registries.join(", ")),
        };
        Ok(Box::new(Self { registries, fix }))
    }
}

impl Check for AllowedRegistries {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for (c, image) in images(subject) {
            let r = ImageRef::parse(image);
            if !self.registries.iter().any(|p| has_prefix(image, &r, p)) {
                out.push(Finding::new(
                    c.path(subject).field("image"),
                    uses_image(&c, image, "from a registry that is not allowed"),
                    Cow::Owned(self.fix.clone()),
                ));
            }
        }
    }
}

/// `disallowLatestTag`: no image uses the tag `latest`, or no tag at all (which pulls `latest`).
/// A digest pins the content whatever the tag says, so `app@sha256:…` passes.
#[derive(Debug)]
pub struct DisallowLatestTag;

impl DisallowLatestTag {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

const PIN_FIX: &str = "pin a version tag such as :1.4.2 or a digest such as @sha256:…";

impl Check for DisallowLatestTag {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for (c, image) in images(subject) {
            let r = ImageRef::parse(image);
            if r.digest.is_some() {
                continue;
            }
            let problem = match r.tag {
                Some("latest") => "with the mutable tag \"latest\"",
                Some(t) if !t.is_empty() => continue,
                _ => "without a tag, which pulls \"latest\"",
            };
            out.push(Finding::new(c.path(subject).field("image"), uses_image(&c, image, problem), PIN_FIX));
        }
    }
}

/// `requireImageDigest`: every image carries a well-formed `@sha256:<64 hex>` digest.
#[derive(Debug)]
pub struct RequireImageDigest;

impl RequireImageDigest {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl Check for RequireImageDigest {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for (c, image) in images(subject) {
            let message = match ImageRef::parse(image).digest {
                Some(d) if is_sha256_digest(d) => continue,
                Some(d) => {
                    uses_image(&c, image, &format!("whose digest \"{d}\" is not sha256:<64 hex digits>"))
                }
                None => uses_image(&c, image, "that is not pinned by digest"),
            };
            out.push(Finding::new(
                c.path(subject).field("image"),
                message,
                "reference the image as name@sha256:<digest>, the digest the registry reports for the tag",
            ));
        }
    }
}

/// Test helpers shared by the sibling check modules: build a check by name from YAML params and
/// run it on an object written in YAML.
#[cfg(test)]
pub(crate) mod tests {
    use rstest::rstest;

    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Runs check `name` built from YAML `params` on a `kind` object written in YAML, in
    /// namespace `apps`.
    pub(crate) fn run(name: &str, params: &str, kind: &str, yaml: &str) -> Vec<Finding> {
        run_in("apps", name, params, kind, yaml)
    }

    /// [`run`] in namespace `namespace`.
    pub(crate) fn run_in(namespace: &str, name: &str, params: &str, kind: &str, yaml: &str) -> Vec<Finding> {
        let params: Params = serde_yaml_ng::from_str(params).unwrap();
        let check = (crate::checks::lookup(name).unwrap().build)(&params).unwrap();
        crate::testing::run_check(
            check.as_ref(),
            &crate::testing::workload(kind, yaml),
            namespace,
            "web",
            kind,
        )
    }

    fn pod(image: &str) -> String {
        format!("spec: {{containers: [{{name: app, image: '{image}'}}]}}")
    }

    /// The rendered paths of `findings`.
    pub(crate) fn paths(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.path.as_str()).collect()
    }

    /// The error building check `name` from YAML `params`.
    pub(crate) fn build_err(name: &str, params: &str) -> ParamsError {
        let params: Params = serde_yaml_ng::from_str(params).unwrap();
        (crate::checks::lookup(name).unwrap().build)(&params).unwrap_err()
    }

    #[rstest]
    #[case::bare("nginx", None, "nginx", None, None)]
    #[case::tag("nginx:1.27", None, "nginx", Some("1.27"), None)]
    #[case::org("team/app:v2", None, "team/app", Some("v2"), None)]
    #[case::registry("public.ecr.aws/eks/pause:3.9", Some("public.ecr.aws"), "eks/pause", Some("3.9"), None)]
    #[case::port_no_tag("host:5000/app", Some("host:5000"), "app", None, None)]
    #[case::port_and_tag("host:5000/app:1.0", Some("host:5000"), "app", Some("1.0"), None)]
    #[case::localhost("localhost/app", Some("localhost"), "app", None, None)]
    #[case::upper_case_host("Registry/app", Some("Registry"), "app", None, None)]
    #[case::digest("app@sha256:ab", None, "app", None, Some("sha256:ab"))]
    #[case::tag_and_digest("h.io:443/a/b:t@sha256:ab", Some("h.io:443"), "a/b", Some("t"), Some("sha256:ab"))]
    #[case::empty("", None, "", None, None)]
    fn parses_references(
        #[case] image: &str,
        #[case] registry: Option<&str>,
        #[case] path: &str,
        #[case] tag: Option<&str>,
        #[case] digest: Option<&str>,
    ) {
        assert_eq!(ImageRef::parse(image), ImageRef { registry, path, tag, digest });
    }

    #[rstest]
    #[case::latest_tag("disallowLatestTag", "{}")]
    #[case::digest("requireImageDigest", "{}")]
    #[case::registries("allowedRegistries", "registries: [registry.example/]")]
    fn messages_say_which_container_list(#[case] name: &str, #[case] params: &str) {
        let yaml = "spec: {containers: [{name: a, image: app}], initContainers: [{name: i, image: app}], \
                    ephemeralContainers: [{name: e, image: app}]}";
        let f = run(name, params, "Pod", yaml);
        let named: Vec<&str> =
            f.iter().map(|f| f.message.split(" uses").next().unwrap_or_default()).collect();
        assert_eq!(named, ["container \"a\"", "init container \"i\"", "ephemeral container \"e\""]);
    }

    const ECR: &str = "registries: ['111122223333.dkr.ecr.us-east-1.amazonaws.com/', 'docker.io/library/']";

    #[test]
    fn a_long_allow_list_is_named_in_part() {
        let registries: Vec<String> = (0..40).map(|i| format!("'registry{i}.example/'")).collect();
        let params = format!("registries: [{}]", registries.join(", "));
        let findings = run("allowedRegistries", &params, "Pod", &pod("docker.io/library/nginx:1"));
        assert_eq!(
            findings[0].fix,
            "use an image from registry0.example/, registry1.example/, registry2.example/, registry3.example/, registry4.example/ (or 35 more registries the policy allows)"
        );
    }

    #[rstest]
    #[case::ecr("111122223333.dkr.ecr.us-east-1.amazonaws.com/web:1.0", true)]
    #[case::other_account("444455556666.dkr.ecr.us-east-1.amazonaws.com/web:1.0", false)]
    #[case::lookalike_host("111122223333.dkr.ecr.us-east-1.amazonaws.com.evil.io/web", false)]
    #[case::official_short("nginx:1.27", true)]
    #[case::official_qualified("docker.io/nginx", true)]
    #[case::official_full("docker.io/library/nginx", true)]
    #[case::hub_org("bitnami/nginx", false)]
    #[case::quay("quay.io/library/nginx", false)]
    fn allowed_registries(#[case] image: &str, #[case] allowed: bool) {
        let f = run("allowedRegistries", ECR, "Pod", &pod(image));
        assert_eq!(f.is_empty(), allowed, "{f:?}");
        if let Some(f) = f.first() {
            assert_eq!(f.path.as_str(), "spec.containers[0].image");
            assert!(f.message.contains(image) && f.message.contains("\"app\""), "{}", f.message);
            assert!(f.fix.contains("111122223333.dkr.ecr.us-east-1.amazonaws.com/"), "{}", f.fix);
        }
    }

    #[test]
    fn allowed_registries_checks_every_container_list_under_a_deployment() {
        let yaml = r"
spec:
  selector: {}
  template:
    spec:
      containers: [{name: ok, image: 'docker.io/library/nginx'}, {name: bad, image: 'ghcr.io/x/y'}]
      initContainers: [{name: init, image: 'ghcr.io/x/init'}]
      ephemeralContainers: [{name: debug, image: 'busybox'}, {name: noimage}]
";
        let f = run("allowedRegistries", ECR, "Deployment", yaml);
        assert_eq!(
            paths(&f),
            ["spec.template.spec.containers[1].image", "spec.template.spec.initContainers[0].image"]
        );
    }

    #[rstest]
    #[case::missing("{}", "registries")]
    #[case::empty("registries: []", "registries")]
    #[case::not_a_list("registries: docker.io/", "registries")]
    #[case::bare_host("registries: ['ok.io/', 'docker.io']", "registries[1]")]
    #[case::blank("registries: ['  ']", "registries[0]")]
    #[case::not_a_string("registries: ['a/', 3]", "registries[1]")]
    fn allowed_registries_rejects_bad_params(#[case] params: &str, #[case] field: &str) {
        assert_eq!(build_err("allowedRegistries", params).field, field);
    }

    #[rstest]
    #[case::versioned("nginx:1.27", None)]
    #[case::latest("nginx:latest", Some("mutable tag \"latest\""))]
    #[case::untagged("nginx", Some("without a tag"))]
    #[case::empty_tag("nginx:", Some("without a tag"))]
    #[case::port_untagged("host:5000/app", Some("without a tag"))]
    #[case::port_tagged("host:5000/app:2.1", None)]
    #[case::port_latest("host:5000/app:latest", Some("mutable tag"))]
    #[case::digest_only(&format!("app@{DIGEST}"), None)]
    #[case::latest_with_digest(&format!("app:latest@{DIGEST}"), None)]
    #[case::tag_named_latest_prefix("app:latest-1", None)]
    fn disallow_latest_tag(#[case] image: &str, #[case] problem: Option<&str>) {
        let f = run("disallowLatestTag", "{}", "Pod", &pod(image));
        match problem {
            None => assert!(f.is_empty(), "{f:?}"),
            Some(p) => {
                assert_eq!(paths(&f), ["spec.containers[0].image"]);
                assert!(f[0].message.contains(p), "{}", f[0].message);
                assert!(!f[0].fix.is_empty());
            }
        }
    }

    #[test]
    fn disallow_latest_tag_checks_init_and_ephemeral_containers() {
        let yaml = "spec: {containers: [{name: a, image: 'a:1'}], initContainers: [{name: i, image: i}], \
                    ephemeralContainers: [{name: e, image: 'e:latest'}]}";
        let f = run("disallowLatestTag", "{}", "Pod", yaml);
        assert_eq!(paths(&f), ["spec.initContainers[0].image", "spec.ephemeralContainers[0].image"]);
    }

    #[rstest]
    #[case::digest(&format!("app@{DIGEST}"), None)]
    #[case::tag_and_digest(&format!("host:5000/app:1.0@{DIGEST}"), None)]
    #[case::tag_only("app:1.0", Some("not pinned by digest"))]
    #[case::short_digest("app@sha256:abc", Some("is not sha256"))]
    #[case::upper_hex(&format!("app@{}", DIGEST.to_uppercase()), Some("is not sha256"))]
    #[case::other_algorithm("app@sha512:abc", Some("is not sha256"))]
    fn require_image_digest(#[case] image: &str, #[case] problem: Option<&str>) {
        let f = run("requireImageDigest", "{}", "Pod", &pod(image));
        match problem {
            None => assert!(f.is_empty(), "{f:?}"),
            Some(p) => {
                assert_eq!(paths(&f), ["spec.containers[0].image"]);
                assert!(f[0].message.contains(p), "{}", f[0].message);
            }
        }
    }

    #[test]
    fn require_image_digest_under_a_cronjob() {
        let yaml = "spec: {schedule: '* * * * *', jobTemplate: {spec: {template: {spec: {containers: \
                    [{name: a, image: 'a:1'}], initContainers: [{name: i, image: 'i:1'}]}}}}}";
        let f = run("requireImageDigest", "{}", "CronJob", yaml);
        assert_eq!(
            paths(&f),
            [
                "spec.jobTemplate.spec.template.spec.containers[0].image",
                "spec.jobTemplate.spec.template.spec.initContainers[0].image"
            ]
        );
    }
}
