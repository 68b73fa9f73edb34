//! `podguard check` deciding as the cluster would (YAML read as kubectl reads it, list kinds,
//! namespace context, stray files), its CI formats (SARIF, JUnit, summary, `--fail-on`), and
//! `podguard test`, through the real binary.

use std::path::PathBuf;
use std::process::Output;

use crate::support::{podguard, stderr as err, stdout as out};

fn fixture(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci").join(path).display().to_string()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", out(o), err(o)))
}

#[test]
fn bitnami_style_octal_mode_and_yes_are_read_as_kubectl_reads_them_and_the_deployment_is_evaluated() {
    let o = podguard(&["check", "--format", "json", &fixture("bitnami-default-mode.yaml")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let r = &json(&o)["results"][0];
    assert!(r.get("reason").is_none(), "not evaluated: {r}");
    let rules: Vec<&str> =
        r["violations"].as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert!(rules.contains(&"spec.template.spec.containers[0].securityContext.privileged"), "{rules:?}");
    // `readOnlyRootFilesystem: yes` is true: the read-only-root policy has nothing to say.
    assert!(
        !r["violations"].as_array().unwrap().iter().any(|v| v["policy"] == "read-only-root-filesystem"),
        "{r}"
    );
}

#[test]
fn a_merge_key_privileged_pod_is_denied() {
    let o = podguard(&["check", "--format", "json", &fixture("merge-key-privileged.yaml")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let v = &json(&o)["results"][0]["violations"];
    assert!(
        v.as_array().unwrap().iter().any(|v| v["path"] == "spec.containers[0].securityContext.privileged"),
        "{v}"
    );
}

#[test]
fn list_kinds_are_expanded_item_by_item_and_a_privileged_pod_in_a_pod_list_is_denied() {
    let o = podguard(&["check", "--format", "json", &fixture("pod-list.yaml")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let v = json(&o);
    let results = v["results"].as_array().unwrap();
    let named: Vec<(u64, u64, &str, bool)> = results
        .iter()
        .map(|r| {
            (
                r["document"].as_u64().unwrap(),
                r["item"].as_u64().unwrap(),
                r["name"].as_str().unwrap(),
                r["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(named, [(0, 0, "fine", true), (1, 0, "also-fine", true), (1, 1, "privileged", false)]);
    assert_eq!(results[2]["kind"], "Pod");
}

#[test]
fn a_folder_with_kustomization_and_values_files_and_a_privileged_pod_exits_1_not_2() {
    let o = podguard(&["check", &fixture("folder")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(err(&o).is_empty(), "{}", err(&o));
    assert!(out(&o).contains("pod.yaml[0] Pod shop/privileged: DENIED"), "{}", out(&o));
    // Skipped documents are counted, listed only on request.
    assert!(!out(&o).contains("kustomization.yaml"), "{}", out(&o));
    let listed = podguard(&["check", "--show-skipped", &fixture("folder")]);
    assert!(out(&listed).contains("kustomization.yaml[0]: skipped"), "{}", out(&listed));
    assert!(out(&listed).contains("not a Kubernetes object"), "{}", out(&listed));
    // Named on the command line, a file without any object is an error.
    let named = podguard(&["check", &fixture("folder/values.yaml")]);
    assert_eq!(named.status.code(), Some(2));
    assert!(err(&named).contains("holds no Kubernetes object"), "{}", err(&named));
}

#[test]
fn namespace_objects_labels_and_exemptions_apply_as_in_the_webhook() {
    let o = podguard(&[
        "check",
        "--format",
        "json",
        "--policies",
        &fixture("pci-policy.yaml"),
        "--policies",
        &format!("{}/policies/pod-security-baseline.yaml", env!("CARGO_MANIFEST_DIR")),
        &fixture("namespaces.yaml"),
    ]);
    let v = json(&o);
    let by_ns = |ns: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "Pod" && r["namespace"] == ns)
            .unwrap()
            .clone()
    };
    // Mode label warn: admitted with warnings.
    let sandbox = by_ns("sandbox");
    assert_eq!(sandbox["allowed"], true, "{sandbox}");
    assert!(sandbox["violations"].as_array().unwrap().iter().all(|f| f["mode"] == "warn"), "{sandbox}");
    // namespaceSelector pci=true: the PCI policy applies there only.
    let payments = by_ns("payments");
    assert!(
        payments["violations"].as_array().unwrap().iter().any(|f| f["policy"] == "pci-pinned"),
        "{payments}"
    );
    assert!(!by_ns("other")["violations"].as_array().unwrap().iter().any(|f| f["policy"] == "pci-pinned"));
    assert_eq!(by_ns("other")["allowed"], false);
    // kube-system is exempt by default, as in the webhook.
    let system = by_ns("kube-system");
    assert_eq!(
        (system["skipped"].as_bool(), system["reason"].as_str()),
        (Some(true), Some("namespace kube-system is exempt"))
    );
    // --namespace-labels says what the cluster has; --exempt-namespaces replaces the default.
    let o = podguard(&[
        "check",
        "--format",
        "json",
        "--policies",
        &fixture("pci-policy.yaml"),
        "--namespace-labels",
        "other:pci=true",
        "--exempt-namespaces",
        "sandbox",
        &fixture("namespaces.yaml"),
    ]);
    let v = json(&o);
    let pods: Vec<(&str, bool, usize)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "Pod")
        .map(|r| {
            (
                r["namespace"].as_str().unwrap(),
                r["skipped"].as_bool().unwrap(),
                r["violations"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        pods,
        [("sandbox", true, 0), ("payments", false, 1), ("kube-system", false, 0), ("other", false, 1)]
    );
}

#[test]
fn an_extensions_v1beta1_daemonset_is_evaluated_and_said_to_be_no_longer_served() {
    let o = podguard(&["check", &fixture("legacy-daemonset.yaml")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let text = out(&o);
    assert!(text.contains("spec.template.spec.hostPID"), "{text}");
    assert!(
        text.contains("note: extensions/v1beta1 DaemonSet is no longer served (since Kubernetes 1.16)"),
        "{text}"
    );
    assert!(!text.contains("holds no pod spec"), "{text}");
}

#[test]
fn helm_template_output_without_a_namespace_draws_no_default_namespace_finding_unless_given_one() {
    let o = podguard(&["check", "--format", "json", &fixture("helm-no-namespace.yaml")]);
    let v = json(&o);
    let policies: Vec<&str> = v["results"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["policy"].as_str().unwrap())
        .collect();
    assert!(!policies.contains(&"disallow-default-namespace"), "{policies:?}");
    let o = podguard(&[
        "check",
        "--format",
        "json",
        "--namespace",
        "default",
        &fixture("helm-no-namespace.yaml"),
    ]);
    let v = json(&o);
    assert_eq!(v["results"][0]["namespace"], "default");
    assert!(
        v["results"][0]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["policy"] == "disallow-default-namespace")
    );
}

#[test]
fn baseline_and_restricted_findings_on_the_same_field_are_one_line_naming_both() {
    let o = podguard(&["check", &fixture("merge-key-privileged.yaml")]);
    let text = out(&o);
    let privileged: Vec<&str> = text.lines().filter(|l| l.contains("securityContext.privileged")).collect();
    assert_eq!(privileged.len(), 1, "{text}");
    assert!(
        privileged[0].contains("[pod-security-baseline/pod-security, pod-security-restricted/pod-security]"),
        "{text}"
    );
    assert!(privileged[0].trim_start().starts_with("enforce"), "the stronger mode wins: {text}");
}

#[test]
fn fail_on_chooses_what_makes_exit_1() {
    // The compliant-but-floating Deployment has only warn and audit findings.
    let file = fixture("helm-no-namespace.yaml");
    assert_eq!(podguard(&["check", &file]).status.code(), Some(0));
    assert_eq!(podguard(&["check", "--fail-on", "warn", &file]).status.code(), Some(1));
    assert_eq!(podguard(&["check", "--fail-on", "audit", &file]).status.code(), Some(1));
    assert_eq!(podguard(&["check", "--fail-on", "enforce", &file]).status.code(), Some(0));
}

#[test]
fn sarif_output_validates_against_the_2_1_0_schema_and_points_at_the_offending_lines() {
    let o = podguard(&[
        "check",
        "--format",
        "sarif",
        &fixture("bitnami-default-mode.yaml"),
        &fixture("pod-list.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let log = json(&o);
    let schema_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif/sarif-schema-2.1.0.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    // The schema's `language` patterns (`…{2}]?$`, whose last `]` is a literal most engines
    // accept) fail the validator's strict ECMA-262 check of the meta-schema's `format: regex`,
    // so the schema would not compile: those patterns are dropped in memory. podguard writes no
    // `language`; every other keyword and format of the schema is checked.
    let mut schema = schema;
    for at in ["run", "toolComponent"] {
        let language = &mut schema["definitions"][at]["properties"]["language"];
        assert!(language.as_object_mut().unwrap().remove("pattern").is_some(), "{at}");
    }
    let validator = jsonschema::draft7::options().should_validate_formats(true).build(&schema).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&log).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator does find what is wrong: a log without its version is refused.
    let mut broken = log.clone();
    broken.as_object_mut().unwrap().remove("version");
    assert!(!validator.is_valid(&broken));
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let baseline = rules.iter().find(|r| r["id"] == "pod-security-baseline/pod-security").unwrap();
    assert!(!baseline["help"]["text"].as_str().unwrap().is_empty());
    assert!(
        baseline["properties"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("cis-eks"))
    );
    let results = run["results"].as_array().unwrap();
    let located = |file: &str, path: &str| {
        results
            .iter()
            .find(|r| {
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .ends_with(file)
                    && r["properties"]["path"] == path
            })
            .map(|r| r["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64().unwrap())
    };
    // Line 19 of the Deployment holds `privileged: true`; line 23 of the list file holds the
    // PodList item's.
    assert_eq!(
        located("bitnami-default-mode.yaml", "spec.template.spec.containers[0].securityContext.privileged"),
        Some(19)
    );
    assert_eq!(located("pod-list.yaml", "spec.containers[0].securityContext.privileged"), Some(23));
}

#[test]
fn junit_parses_as_xml_with_one_failure_per_denied_object() {
    let o = podguard(&["check", "--format", "junit", &fixture("pod-list.yaml"), &fixture("folder")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let text = out(&o);
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{text}");
    assert!(failed.iter().all(|n| n.starts_with("Pod shop/privileged")), "{failed:?}");
    let root = doc.root_element();
    assert_eq!(root.attribute("failures"), Some("2"));
    assert_eq!(root.attribute("tests").unwrap().parse::<usize>().unwrap(), cases.len());
}

#[test]
fn summary_counts_objects_per_policy_rule_and_mode() {
    let o = podguard(&["check", "--format", "summary", &fixture("pod-list.yaml")]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    let row = text
        .lines()
        .find(|l| l.starts_with("pod-security-baseline/pod-security"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.split_whitespace().skip(1).collect::<Vec<_>>(), ["1", "0", "0"], "{text}");
    assert!(text.ends_with("3 objects: 1 denied, 3 warned, 3 audited, 0 skipped\n"), "{text}");
}

#[test]
fn podguard_test_passes_the_library_tests_and_fails_a_wrong_expectation_with_a_diff() {
    let library = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/policies").display().to_string();
    let o = podguard(&["test", &library]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("0 failed, 0 broken"), "{}", out(&o));
    let ok = podguard(&["test", &fixture("tests/pci.test.yaml")]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", out(&ok), err(&ok));
    let wrong = podguard(&["test", &fixture("tests/wrong.test.yaml")]);
    assert_eq!(wrong.status.code(), Some(1), "{}{}", out(&wrong), err(&wrong));
    let text = out(&wrong);
    assert!(text.contains("FAIL  "), "{text}");
    assert!(
        text.contains("  Pod/payments/p pci-pinned/digest\n  -   result: pass\n  +   result: fail\n"),
        "{text}"
    );
    assert!(text.contains("[pci-pinned/digest] spec.containers[0].image"), "{text}");
    assert!(text.contains("1 of 2 expectations not met"), "{text}");
}

#[test]
fn podguard_test_reports_unknown_policies_and_objects_as_broken() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: podguard.dev/v1\nkind: PolicyTest\nmetadata: {{name: t}}\nspec:\n  policies: [{}]\n  resources: [{}]\n  expect:\n  - {{object: Pod/payments/p, policy: pci-pined, rule: digest, result: fail}}\n  - {{object: Pod/nowhere/p, policy: pci-pinned, rule: digest, result: fail}}\n",
            fixture("pci-policy.yaml"),
            fixture("namespaces.yaml")
        ),
    )
    .unwrap();
    let o = podguard(&["test", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", out(&o), err(&o));
    let text = out(&o);
    assert!(text.contains("no policy \"pci-pined\""), "{text}");
    assert!(text.contains("Pod/nowhere/p pci-pinned/digest: no such object"), "{text}");
}

#[test]
fn an_api_version_no_longer_served_is_refused_as_the_api_server_refuses_it() {
    let o = podguard(&["check", "--format", "json", &fixture("legacy-cronjob.yaml")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let r = &json(&o)["results"][0];
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("batch/v1beta1 CronJob is no longer served (since Kubernetes 1.25)")
    );
    // In SARIF it has a result of its own, on the object's line.
    let o = podguard(&["check", "--format", "sarif", &fixture("legacy-cronjob.yaml")]);
    let log = json(&o);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let refused =
        results.iter().find(|r| r["ruleId"] == "podguard/refused").unwrap_or_else(|| panic!("{log}"));
    assert_eq!(refused["locations"][0]["physicalLocation"]["region"]["startLine"], 3);
    assert!(refused["message"]["text"].as_str().unwrap().contains("no longer served"), "{refused}");
}

#[test]
fn on_error_decides_unreadable_objects_as_the_webhook_flag_does() {
    let denied = podguard(&["check", &fixture("unreadable.yaml")]);
    assert_eq!(denied.status.code(), Some(1), "{}", out(&denied));
    assert!(out(&denied).contains("spec.containers[0].securityContext.runAsUser"), "{}", out(&denied));
    let allowed = podguard(&["check", "--on-error", "allow", &fixture("unreadable.yaml")]);
    assert_eq!(allowed.status.code(), Some(0), "{}", out(&allowed));
}

#[test]
fn podguard_test_on_a_folder_without_tests_is_an_error() {
    let o = podguard(&["test", &fixture("folder")]);
    assert_eq!(o.status.code(), Some(2), "{}{}", out(&o), err(&o));
    assert!(err(&o).contains("no PolicyTest document found"), "{}", err(&o));
}
