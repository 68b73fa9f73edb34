//! Subjects: the pod spec inside an object, with the metadata and JSON path prefix that locate
//! it, so that a violation found in a CronJob names `spec.jobTemplate.spec.template.spec…`.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, EphemeralContainer, Lifecycle, PodSpec, Probe,
    ResourceRequirements, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::finding::FieldPath;
use crate::object::Workload;

static EMPTY_SPEC: LazyLock<PodSpec> = LazyLock::new(PodSpec::default);
static EMPTY_META: LazyLock<ObjectMeta> = LazyLock::new(ObjectMeta::default);

/// One pod spec and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// Kind of the object holding the spec (`Pod`, `Deployment`, ...).
    pub kind: &'static str,
    /// The object's own metadata (name, namespace, labels of the Deployment itself).
    pub object_meta: &'a ObjectMeta,
    /// The pod metadata: the Pod's own, or the template's (labels, annotations).
    pub meta: &'a ObjectMeta,
    /// Path prefix of [`Subject::meta`], e.g. `spec.template.metadata`.
    pub meta_prefix: &'static str,
    /// The pod spec (an empty one when the object has none).
    pub spec: &'a PodSpec,
    /// Path prefix of [`Subject::spec`], e.g. `spec.template.spec`.
    pub prefix: &'static str,
}

impl<'a> Subject<'a> {
    /// The subject of a decoded workload. Every supported kind holds exactly one pod spec.
    ///
    /// ```
    /// use podguard::object::{decode, Decoded};
    /// use podguard::subject::Subject;
    /// let Decoded::Workload(w) = decode("batch", "CronJob", r#"{"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{"containers":[]}}}}}}"#).unwrap() else { panic!() };
    /// assert_eq!(Subject::of(&w).prefix, "spec.jobTemplate.spec.template.spec");
    /// ```
    pub fn of(w: &'a Workload) -> Self {
        use Workload as W;
        let tmpl = |t: Option<&'a k8s_openapi::api::core::v1::PodTemplateSpec>| {
            t.map_or((&*EMPTY_META, &*EMPTY_SPEC), |t| {
                (t.metadata.as_ref().unwrap_or(&EMPTY_META), t.spec.as_ref().unwrap_or(&EMPTY_SPEC))
            })
        };
        let (kind, object_meta, (meta, spec), meta_prefix, prefix) = match w {
            W::Pod(p) => {
                let spec = p.spec.as_ref().unwrap_or(&EMPTY_SPEC);
                ("Pod", &p.metadata, (&p.metadata, spec), "metadata", "spec")
            }
            // The legacy body has `ephemeralContainers` at its top level, not under `spec`.
            W::LegacyEphemeralContainers(p) => {
                let spec = p.spec.as_ref().unwrap_or(&EMPTY_SPEC);
                ("Pod", &p.metadata, (&p.metadata, spec), "metadata", "")
            }
            W::PodTemplate(p) => {
                ("PodTemplate", &p.metadata, tmpl(p.template.as_ref()), "template.metadata", "template.spec")
            }
            W::Deployment(d) => (
                "Deployment",
                &d.metadata,
                tmpl(Some(&d.spec.template)),
                "spec.template.metadata",
                "spec.template.spec",
            ),
            W::ReplicaSet(d) => (
                "ReplicaSet",
                &d.metadata,
                tmpl(d.spec.template.as_ref()),
                "spec.template.metadata",
                "spec.template.spec",
            ),
            W::StatefulSet(d) => (
                "StatefulSet",
                &d.metadata,
                tmpl(Some(&d.spec.template)),
                "spec.template.metadata",
                "spec.template.spec",
            ),
            W::DaemonSet(d) => (
                "DaemonSet",
                &d.metadata,
                tmpl(Some(&d.spec.template)),
                "spec.template.metadata",
                "spec.template.spec",
            ),
            W::Job(d) => (
                "Job",
                &d.metadata,
                tmpl(d.spec.as_ref().map(|s| &s.template)),
                "spec.template.metadata",
                "spec.template.spec",
            ),
            W::CronJob(d) => (
                "CronJob",
                &d.metadata,
                tmpl(d.spec.job_template.spec.as_ref().map(|s| &s.template)),
                "spec.jobTemplate.spec.template.metadata",
                "spec.jobTemplate.spec.template.spec",
            ),
            W::ReplicationController(d) => (
                "ReplicationController",
                &d.metadata,
                tmpl(d.spec.as_ref().and_then(|s| s.template.as_ref())),
                "spec.template.metadata",
                "spec.template.spec",
            ),
        };
        Subject { kind, object_meta, meta, meta_prefix, spec, prefix }
    }

    /// A path rooted at the pod spec.
    pub fn path(&self) -> FieldPath {
        FieldPath::new(self.prefix)
    }

    /// A path rooted at the pod metadata.
    pub fn meta_path(&self) -> FieldPath {
        FieldPath::new(self.meta_prefix)
    }

    /// Every container of the spec: `containers`, then `initContainers`, then
    /// `ephemeralContainers`, each with its kind and index.
    pub fn containers(&self) -> impl Iterator<Item = ContainerRef<'a>> + 'a {
        let s = self.spec;
        let regular = s
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerRef::regular(ContainerKind::Container, i, c));
        let init = s
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| ContainerRef::regular(ContainerKind::InitContainer, i, c));
        let eph =
            s.ephemeral_containers.iter().flatten().enumerate().map(|(i, c)| ContainerRef::ephemeral(i, c));
        regular.chain(init).chain(eph)
    }
}

/// Which list a container sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    /// `containers`
    Container,
    /// `initContainers`
    InitContainer,
    /// `ephemeralContainers`
    EphemeralContainer,
}

impl ContainerKind {
    /// How messages name one: `container`, `init container`, `ephemeral container`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::InitContainer => "init container",
            Self::EphemeralContainer => "ephemeral container",
        }
    }

    /// The pod spec field holding this list.
    pub fn field(self) -> &'static str {
        match self {
            Self::Container => "containers",
            Self::InitContainer => "initContainers",
            Self::EphemeralContainer => "ephemeralContainers",
        }
    }

    /// The name CEL sees as `container.kind`.
    pub fn cel_name(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::InitContainer => "initContainer",
            Self::EphemeralContainer => "ephemeralContainer",
        }
    }
}

/// The original container object, for code that needs more than [`ContainerRef`] exposes.
#[derive(Clone, Copy, Debug)]
pub enum ContainerSource<'a> {
    /// A `containers` or `initContainers` entry.
    Regular(&'a Container),
    /// An `ephemeralContainers` entry.
    Ephemeral(&'a EphemeralContainer),
}

/// A view over a container, an init container or an ephemeral container: the fields checks
/// read, borrowed, whichever list the container sits in.
#[derive(Clone, Copy, Debug)]
pub struct ContainerRef<'a> {
    /// Which list.
    pub kind: ContainerKind,
    /// Index in that list.
    pub index: usize,
    /// `name`
    pub name: &'a str,
    /// `image`
    pub image: Option<&'a str>,
    /// `securityContext`
    pub security_context: Option<&'a SecurityContext>,
    /// `ports`
    pub ports: &'a [ContainerPort],
    /// `resources`
    pub resources: Option<&'a ResourceRequirements>,
    /// `livenessProbe`
    pub liveness_probe: Option<&'a Probe>,
    /// `readinessProbe`
    pub readiness_probe: Option<&'a Probe>,
    /// `startupProbe`
    pub startup_probe: Option<&'a Probe>,
    /// `lifecycle`
    pub lifecycle: Option<&'a Lifecycle>,
    /// `volumeMounts`
    pub volume_mounts: &'a [VolumeMount],
    /// The container as written.
    pub source: ContainerSource<'a>,
    /// `env`.
    pub env: &'a [EnvVar],
    /// `envFrom`.
    pub env_from: &'a [EnvFromSource],
}

impl<'a> ContainerRef<'a> {
    pub(crate) fn regular(kind: ContainerKind, index: usize, c: &'a Container) -> Self {
        Self {
            kind,
            index,
            name: &c.name,
            image: c.image.as_deref(),
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
            resources: c.resources.as_ref(),
            liveness_probe: c.liveness_probe.as_ref(),
            readiness_probe: c.readiness_probe.as_ref(),
            startup_probe: c.startup_probe.as_ref(),
            lifecycle: c.lifecycle.as_ref(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            source: ContainerSource::Regular(c),
            env: c.env.as_deref().unwrap_or_default(),
            env_from: c.env_from.as_deref().unwrap_or_default(),
        }
    }

    fn ephemeral(index: usize, c: &'a EphemeralContainer) -> Self {
        Self {
            kind: ContainerKind::EphemeralContainer,
            index,
            name: &c.name,
            image: c.image.as_deref(),
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
            resources: c.resources.as_ref(),
            liveness_probe: c.liveness_probe.as_ref(),
            readiness_probe: c.readiness_probe.as_ref(),
            startup_probe: c.startup_probe.as_ref(),
            lifecycle: c.lifecycle.as_ref(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            source: ContainerSource::Ephemeral(c),
            env: c.env.as_deref().unwrap_or_default(),
            env_from: c.env_from.as_deref().unwrap_or_default(),
        }
    }

    /// `<subject prefix>.containers[i]` (or `initContainers[i]`, `ephemeralContainers[i]`).
    pub fn path(&self, subject: &Subject<'_>) -> FieldPath {
        subject.path().field(self.kind.field()).index(self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Decoded, decode};

    fn subject_of(group: &str, kind: &str, json: &str) -> (String, String) {
        let Decoded::Workload(w) = decode(group, kind, json).unwrap() else { panic!("not a workload") };
        let s = Subject::of(&w);
        (s.prefix.to_owned(), s.meta_prefix.to_owned())
    }

    #[test]
    fn prefixes_per_kind() {
        let t = r#"{"spec":{"selector":{},"template":{"spec":{"containers":[]}}}}"#;
        assert_eq!(subject_of("", "Pod", r#"{"spec":{"containers":[]}}"#).0, "spec");
        assert_eq!(subject_of("apps", "Deployment", t).0, "spec.template.spec");
        assert_eq!(
            subject_of("apps", "StatefulSet", r#"{"spec":{"selector":{},"serviceName":"s","template":{}}}"#)
                .0,
            "spec.template.spec"
        );
        assert_eq!(
            subject_of("", "PodTemplate", r#"{"template":{}}"#),
            ("template.spec".into(), "template.metadata".into())
        );
        assert_eq!(subject_of("", "ReplicationController", r#"{"spec":{}}"#).0, "spec.template.spec");
    }

    #[test]
    fn containers_iterate_all_three_lists_with_paths() {
        let json = r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}],"initContainers":[{"name":"i"}],"ephemeralContainers":[{"name":"e"}]}}"#;
        let Decoded::Workload(w) = decode("", "Pod", json).unwrap() else { panic!() };
        let s = Subject::of(&w);
        let paths: Vec<String> = s.containers().map(|c| format!("{}={}", c.path(&s), c.name)).collect();
        assert_eq!(
            paths,
            [
                "spec.containers[0]=a",
                "spec.containers[1]=b",
                "spec.initContainers[0]=i",
                "spec.ephemeralContainers[0]=e"
            ]
        );
    }
}
