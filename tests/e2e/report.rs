//! `podguard report` and `policies list --controls` through the real binary: a violation claims
//! exactly the controls of what it violated, every framework and control has a status, and each
//! format is what its readers parse.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::support::{podguard, stderr as err, stdout as out};

fn path(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p).display().to_string()
}

fn report(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["report", "--format", "json"];
    all.extend_from_slice(args);
    let o = podguard(&all);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    (o, v)
}

fn control<'a>(report: &'a Value, framework: &str, id: &str) -> &'a Value {
    let f = report["frameworks"].as_array().unwrap().iter().find(|f| f["id"] == framework).unwrap();
    f["controls"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()
}

/// Names of the objects failing a control.
fn failing(report: &Value, framework: &str, id: &str) -> BTreeSet<String> {
    control(report, framework, id)["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_missing_seccomp_profile_is_not_a_privileged_container() {
    let (_, r) = report(&[&path("tests/fixtures/compliance/workloads.yaml")]);
    let privileged = failing(&r, "cis-eks-1.8.0", "4.2.1");
    assert_eq!(privileged, BTreeSet::from(["privileged".to_owned()]));
    assert_eq!(control(&r, "cis-eks-1.8.0", "4.2.1")["status"], "fail");
    // The seccomp finding is evidence for what restricts the workload's functions, not 4.2.x.
    for id in ["4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.2.5"] {
        assert!(!failing(&r, "cis-eks-1.8.0", id).contains("seccomp-only"), "{id}");
    }
    assert!(failing(&r, "nist-800-53-r5", "CM-7").contains("seccomp-only"));
    let finding = &control(&r, "nist-800-53-r5", "CM-7")["failing"].as_array().unwrap()[0];
    assert!(finding["findings"][0]["path"].as_str().unwrap().contains("seccompProfile"), "{finding}");
    // The new checks: 4.4.1 secrets as files, 4.1.5 default service account.
    assert_eq!(failing(&r, "cis-eks-1.8.0", "4.4.1"), BTreeSet::from(["env-secret".to_owned()]));
    assert_eq!(failing(&r, "cis-eks-1.8.0", "4.1.5"), BTreeSet::from(["env-secret".to_owned()]));
    // Both Pod Security levels apply to each object: each counts once in scope.
    assert_eq!(control(&r, "cis-eks-1.8.0", "4.2.1")["evaluated"], 3);
    assert_eq!(control(&r, "cis-eks-1.8.0", "4.2.2")["status"], "pass");
}

#[test]
fn on_the_examples_the_privileged_pod_fails_4_2_1_and_the_compliant_deployment_does_not() {
    let (_, r) = report(&[&path("examples")]);
    let f = failing(&r, "cis-eks-1.8.0", "4.2.1");
    assert_eq!(f, BTreeSet::from(["debug-tools".to_owned()]), "the privileged pod, not the api Deployment");
}

#[test]
fn json_lists_all_seven_frameworks_and_a_status_for_every_control() {
    let (_, r) = report(&[&path("tests/fixtures/compliance/workloads.yaml")]);
    assert_eq!(r["apiVersion"], "podguard.dev/report/v1");
    assert_eq!(r["kind"], "ComplianceReport");
    let ids: Vec<&str> =
        r["frameworks"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "cis-eks-1.8.0",
            "nsa-cisa-1.2",
            "nist-800-53-r5",
            "pci-dss-4.0.1",
            "hipaa-164.312",
            "soc2-2017",
            "iso-27001-2022"
        ]
    );
    let statuses = ["pass", "fail", "not-applicable", "not-covered", "not-decidable"];
    for f in r["frameworks"].as_array().unwrap() {
        let controls = f["controls"].as_array().unwrap();
        assert!(!controls.is_empty(), "{}", f["id"]);
        let mut counted = 0;
        for c in controls {
            assert!(statuses.contains(&c["status"].as_str().unwrap()), "{c}");
            if c["admission"] == "none" {
                assert_eq!(c["status"], "not-decidable", "{c}");
            }
        }
        for s in ["pass", "fail", "notApplicable", "notCovered", "notDecidable"] {
            counted += f["summary"][s].as_u64().unwrap();
        }
        assert_eq!(counted as usize, controls.len(), "{}", f["id"]);
    }
    // The library has no registry list: 5.1.4 is decidable but not covered.
    assert_eq!(control(&r, "cis-eks-1.8.0", "5.1.4")["status"], "not-covered");
    let m = &r["metadata"];
    assert!(m["policySetDigest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(m["policySetDigest"].as_str().unwrap().len(), 7 + 64);
    assert_eq!(m["podguardVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["source"]["type"], "manifests");
    let generated = m["generated"].as_str().unwrap();
    assert!(
        generated.len() == 20 && generated.ends_with('Z') && generated.as_bytes()[10] == b'T',
        "{generated}"
    );
    assert_eq!(r["objects"]["read"], 3);
    assert_eq!(r["objects"]["failing"], 3);
}

#[test]
fn the_digest_names_the_policy_set() {
    let workloads = path("tests/fixtures/compliance/workloads.yaml");
    let (_, library) = report(&[&workloads]);
    let (_, again) = report(&[&workloads]);
    let (_, one) = report(&["--policies", &path("policies/pod-security-baseline.yaml"), &workloads]);
    let digest = |r: &Value| r["metadata"]["policySetDigest"].as_str().unwrap().to_owned();
    assert_eq!(digest(&library), digest(&again));
    assert_ne!(digest(&library), digest(&one));
    // The order sources are given in decides nothing, so it does not change the digest.
    let (a, b) = (path("policies/pod-security-baseline.yaml"), path("policies/disallow-latest-tag.yaml"));
    let (_, ab) = report(&["--policies", &a, "--policies", &b, &workloads]);
    let (_, ba) = report(&["--policies", &b, "--policies", &a, &workloads]);
    assert_eq!(digest(&ab), digest(&ba));
    // With baseline alone, restricted's controls are not covered.
    assert_eq!(control(&one, "cis-eks-1.8.0", "4.2.5")["status"], "not-covered");
    assert_eq!(control(&one, "cis-eks-1.8.0", "4.2.1")["status"], "fail");
}

#[test]
fn html_is_one_well_formed_page_with_the_summary_and_every_control() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    let o = podguard(&[
        "report",
        "--format",
        "html",
        "-o",
        file.to_str().unwrap(),
        &path("tests/fixtures/compliance/workloads.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(o.stdout.is_empty());
    // For others to read: a CI artifact, an auditor's copy.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
    }
    let page = std::fs::read_to_string(&file).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &page,
        roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
    )
    .unwrap_or_else(|e| panic!("not well-formed: {e}"));
    // Self-contained: nothing fetched from anywhere.
    for n in doc.descendants() {
        for a in ["src", "href"] {
            if let Some(v) = n.attribute(a) {
                assert!(v.starts_with('#'), "{a}={v}");
            }
        }
    }
    let summary = doc.descendants().find(|n| n.attribute("id") == Some("summary")).unwrap();
    assert_eq!(summary.text(), Some("Summary"));
    let rows: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("framework")).collect();
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().all(|r| r.descendants().any(|n| n.has_tag_name("svg"))));
    let privileged = doc.descendants().find(|n| n.attribute("id") == Some("cis-eks-1.8.0-4.2.1")).unwrap();
    assert!(privileged.descendants().any(|n| n.text() == Some("Deployment/shop/privileged")));
}

#[test]
fn markdown_and_csv() {
    let workloads = path("tests/fixtures/compliance/workloads.yaml");
    let o = podguard(&["report", &workloads]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let md = out(&o);
    assert!(md.starts_with("# Compliance report\n"), "{md}");
    assert!(md.contains("\n## Summary\n"), "{md}");
    assert!(md.contains("- Deployment/shop/privileged ("), "{md}");
    let o = podguard(&["report", "--format", "csv", &workloads]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let mut r = csv::Reader::from_reader(o.stdout.as_slice());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..3], ["framework", "framework_version", "control"]);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert!(rows.iter().any(|r| &r[2] == "4.2.1" && &r[6] == "fail" && &r[10] == "privileged"));
}

#[test]
fn a_broken_policy_writes_no_report_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  controls: [{framework: cis-eks-1.8.0, id: \"4.2.9\"}]\n  rules: [{name: r, check: disallowLatestTag}]\n",
    )
    .unwrap();
    let file = dir.path().join("r.json");
    let o = podguard(&[
        "report",
        "--policies",
        policy.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        &path("examples"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("has no control `4.2.9`"), "{}", err(&o));
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn policies_list_controls_shows_coverage_per_framework() {
    let o = podguard(&["policies", "list", "--controls"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    let header = text.lines().find(|l| l.starts_with("cis-eks-1.8.0 ")).unwrap();
    assert!(header.contains("enforced") && header.contains("not-decidable"), "{header}");
    let row =
        |id: &str| text.lines().find(|l| l.trim_start().starts_with(&format!("{id} "))).unwrap().to_owned();
    assert!(row("4.4.1").contains("warned"), "{}", row("4.4.1"));
    assert!(row("5.1.4").contains("not-covered"), "{}", row("5.1.4"));
}

#[test]
fn namespace_flags_are_refused_with_cluster() {
    let o = podguard(&["report", "--cluster", "--namespace", "shop"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("apply to manifests"), "{}", err(&o));
}
