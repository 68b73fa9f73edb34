//! Volume controls: `hostPathVolumes` (baseline, v1.0+) forbids `hostPath` volumes;
//! `restrictedVolumes` (restricted, v1.0+, replaces `hostPathVolumes`) allows only the volume
//! types that do not reach outside the pod's own storage (upstream `check_hostPathVolumes.go`,
//! `check_restrictedVolumes.go`).

use k8s_openapi::api::core::v1::Volume;

use super::{Control, Quoted};
use crate::finding::Finding;
use crate::subject::Subject;

pub(super) fn host_path(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    for (i, v) in s.spec.volumes.iter().flatten().enumerate() {
        if v.host_path.is_some() {
            out.push(Finding::new(
                s.path().field("volumes").index(i).field("hostPath"),
                format!("{id}: volume {} mounts a host path", Quoted(&v.name)),
                "use another volume type (emptyDir, configMap, a PersistentVolumeClaim, ...)",
            ));
        }
    }
}

pub(super) fn restricted(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    for (i, v) in s.spec.volumes.iter().flatten().enumerate() {
        // A volume with any allowed source passes, as upstream's `switch` matches allowed
        // sources first. `image` was added to the 1.0 revision in place (Kubernetes 1.33), so it
        // is allowed at every version, like upstream.
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.image.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if allowed {
            continue;
        }
        // A volume with no source at all is an implicit emptyDir: the API server defaults it so
        // before admission, and upstream's own restrictedVolumes pass fixture ("volume0")
        // expects it to pass.
        let Some(kind) = restricted_source(v) else { continue };
        out.push(Finding::new(
            s.path().field("volumes").index(i).field(kind),
            format!("{id}: volume {} uses restricted type {kind}", Quoted(&v.name)),
            "use configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected or secret",
        ));
    }
}

/// The JSON name of the first restricted source set on `v`.
fn restricted_source(v: &Volume) -> Option<&'static str> {
    let sources = [
        (v.host_path.is_some(), "hostPath"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.rbd.is_some(), "rbd"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.cinder.is_some(), "cinder"),
        (v.cephfs.is_some(), "cephfs"),
        (v.flocker.is_some(), "flocker"),
        (v.fc.is_some(), "fc"),
        (v.azure_file.is_some(), "azureFile"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
    ];
    sources.into_iter().find(|(set, _)| *set).map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::super::test_pod::{rule_paths, spec_paths};
    use super::super::{Control, Rule};

    #[test]
    fn host_path_fails_at_baseline() {
        let pod = "spec:\n  containers: [{name: a}]\n  volumes:\n  - {name: ok, emptyDir: {}}\n  - {name: h, hostPath: {path: /}}\n";
        assert_eq!(
            rule_paths(Control::HostPathVolumes, Rule::HostPathVolumes, pod),
            ["spec.volumes[1].hostPath"]
        );
    }

    #[rstest]
    #[case::config_map("configMap: {name: c}")]
    #[case::csi("csi: {driver: d}")]
    #[case::downward_api("downwardAPI: {}")]
    #[case::empty_dir("emptyDir: {}")]
    #[case::ephemeral("ephemeral: {}")]
    #[case::image("image: {reference: r}")]
    #[case::pvc("persistentVolumeClaim: {claimName: c}")]
    #[case::projected("projected: {sources: []}")]
    #[case::secret("secret: {secretName: s}")]
    #[case::implicit_empty_dir("")]
    fn allowed_types_pass(#[case] source: &str) {
        let source = if source.is_empty() { String::new() } else { format!(", {source}") };
        let pod = format!("spec:\n  containers: [{{name: a}}]\n  volumes:\n  - {{name: v{source}}}\n");
        assert!(rule_paths(Control::RestrictedVolumes, Rule::RestrictedVolumes, &pod).is_empty());
    }

    #[rstest]
    #[case::host_path("hostPath: {path: /}", "hostPath")]
    #[case::gce("gcePersistentDisk: {pdName: p}", "gcePersistentDisk")]
    #[case::aws("awsElasticBlockStore: {volumeID: v}", "awsElasticBlockStore")]
    #[case::git("gitRepo: {repository: r}", "gitRepo")]
    #[case::nfs("nfs: {server: s, path: /}", "nfs")]
    #[case::iscsi("iscsi: {targetPortal: t, iqn: i, lun: 0}", "iscsi")]
    #[case::glusterfs("glusterfs: {endpoints: e, path: p}", "glusterfs")]
    #[case::rbd("rbd: {monitors: [m], image: i}", "rbd")]
    #[case::flex("flexVolume: {driver: d}", "flexVolume")]
    #[case::cinder("cinder: {volumeID: v}", "cinder")]
    #[case::cephfs("cephfs: {monitors: [m]}", "cephfs")]
    #[case::flocker("flocker: {datasetName: d}", "flocker")]
    #[case::fc("fc: {wwids: [w]}", "fc")]
    #[case::azure_file("azureFile: {secretName: s, shareName: s}", "azureFile")]
    #[case::vsphere("vsphereVolume: {volumePath: p}", "vsphereVolume")]
    #[case::quobyte("quobyte: {registry: r, volume: v}", "quobyte")]
    #[case::azure_disk("azureDisk: {diskName: d, diskURI: u}", "azureDisk")]
    #[case::photon("photonPersistentDisk: {pdID: p}", "photonPersistentDisk")]
    #[case::portworx("portworxVolume: {volumeID: v}", "portworxVolume")]
    #[case::scale_io("scaleIO: {gateway: g, system: s, secretRef: {name: n}}", "scaleIO")]
    #[case::storageos("storageos: {volumeName: v}", "storageos")]
    fn restricted_types_fail(#[case] source: &str, #[case] field: &str) {
        let pod = format!(
            "spec:\n  containers: [{{name: a}}]\n  volumes:\n  - {{name: ok, secret: {{secretName: s}}}}\n  - {{name: v, {source}}}\n"
        );
        assert_eq!(
            rule_paths(Control::RestrictedVolumes, Rule::RestrictedVolumes, &pod),
            [format!("spec.volumes[1].{field}")]
        );
    }

    #[test]
    fn restricted_reports_host_path_once() {
        // restrictedVolumes replaces hostPathVolumes, so a hostPath volume is one finding.
        let spec = "securityContext: {runAsNonRoot: true}\ncontainers: [{name: a}]\nvolumes: [{name: h, hostPath: {path: /}}]";
        assert_eq!(spec_paths("restricted/v1.0", spec), ["spec.volumes[0].hostPath"]);
        assert_eq!(spec_paths("baseline/v1.0", spec), ["spec.volumes[0].hostPath"]);
    }
}
