//! `podguard check`, `podguard policies` through the real binary on fixture files.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{podguard, stderr, stdout};

fn fixture(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path).display().to_string()
}

#[test]
fn privileged_pod_names_policy_rule_and_field_and_exits_1() {
    let o = podguard(&[
        "check",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("pods/privileged.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("[baseline/pss] spec.containers[0].securityContext.privileged: "), "{out}");
    assert!(out.contains("[baseline/pss] spec.hostPID: "), "{out}");
    assert!(out.contains("DENIED"), "{out}");
}

#[test]
fn restricted_pod_passes_the_builtin_library() {
    let o = podguard(&["check", &fixture("pods/restricted.yaml")]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn deployment_template_paths() {
    let o = podguard(&[
        "check",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("workloads/deployment-bad-template.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("spec.template.spec.hostNetwork"), "{out}");
    assert!(out.contains("spec.template.spec.containers[1].securityContext.privileged"), "{out}");
}

#[test]
fn cronjob_paths_sit_under_the_job_template() {
    let o = podguard(&[
        "check",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("workloads/cronjob-bad.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn broken_policy_exits_2_naming_file_and_field() {
    let file = fixture("policies/broken/unknown-field.yaml");
    let o = podguard(&["check", "--policies", &file, &fixture("pods/restricted.yaml")]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{file}:9: document[0]: spec.rules[0].chek: unknown field `chek`")),
        "{err}"
    );
}

#[test]
fn json_format_is_the_documented_contract() {
    let o = podguard(&[
        "check",
        "--format",
        "json",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("pods/privileged.yaml"),
        &fixture("manifests/mixed-list.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["summary"],
        serde_json::json!({"objects": 3, "denied": 1, "warned": 0, "audited": 0, "skipped": 1})
    );
    let first = &v["results"][0];
    assert_eq!(first["file"], fixture("pods/privileged.yaml"));
    assert_eq!(
        (first["kind"].as_str(), first["namespace"].as_str(), first["name"].as_str()),
        (Some("Pod"), Some("team-a"), Some("privileged"))
    );
    assert_eq!(first["allowed"], false);
    let viol = &first["violations"][0];
    for key in ["policy", "rule", "mode", "severity", "path", "message", "controls"] {
        assert!(viol.get(key).is_some(), "missing {key} in {viol}");
    }
    assert_eq!((viol["policy"].as_str(), viol["mode"].as_str()), (Some("baseline"), Some("enforce")));
    assert_eq!(v["results"][1]["skipped"], true);
    assert_eq!(
        (v["results"][2]["document"].as_u64(), v["results"][2]["allowed"].as_bool()),
        (Some(1), Some(true))
    );
}

#[test]
fn warn_mode_reports_but_exits_0() {
    let o = podguard(&[
        "check",
        "--policies",
        &fixture("policies/restricted-warn.yaml"),
        &fixture("pods/privileged.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("warn    [restricted/pss]"), "{}", stdout(&o));
}

#[test]
fn default_mode_warn_turns_denials_into_warnings() {
    let o = podguard(&[
        "check",
        "--default-mode",
        "warn",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("pods/privileged.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn stdin_and_folders() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_podguard"))
        .args(["check", "--policies", &fixture("policies/baseline.yaml"), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let text = std::fs::read(fixture("pods/privileged.yaml")).expect("fixture");
    child.stdin.take().expect("stdin").write_all(&text).expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("-[0] Pod team-a/privileged: DENIED"), "{}", stdout(&o));

    let o = podguard(&[
        "check",
        "--format",
        "json",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("workloads"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["summary"]["objects"], 2);
}

#[test]
fn admission_review_documents_are_evaluated_as_the_webhook_would() {
    let o = podguard(&[
        "check",
        "--policies",
        &fixture("policies/baseline.yaml"),
        &fixture("reviews/privileged-pod.json"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("spec.containers[0].securityContext.privileged"));
}

#[test]
fn unreadable_input_exits_2_with_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n").expect("write");
    let o = podguard(&["check", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&format!("{}:", bad.display())), "{}", stderr(&o));
}

#[test]
fn policies_lint_and_list() {
    let o = podguard(&["policies", "lint", &fixture("policies/broken")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown field `chek`"));
    let o = podguard(&["policies", "lint", &fixture("policies/baseline.yaml")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = podguard(&["policies", "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("pod-security-baseline"), "{out}");
    assert!(out.contains("podSecurity"), "{out}");
}

#[test]
fn configmap_manifests_are_linted_and_used_as_the_cluster_would() {
    // The ConfigMaps the real-apiserver suite applies, linted as files before they reach a cluster.
    let good = fixture("configmaps/team-a.yaml");
    let o = podguard(&["policies", "lint", &good]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = podguard(&["policies", "list", &good]);
    assert!(stdout(&o).contains("team-a.yaml: configmap/podguard-system/team-a["), "{}", stdout(&o));

    let bad = fixture("configmaps/team-a-bad-policy.yaml");
    let o = podguard(&["policies", "lint", &bad]);
    assert_eq!(o.status.code(), Some(2));
    let text = std::fs::read_to_string(&bad).expect("fixture");
    let line = text.lines().position(|l| l.contains("requireProbez")).expect("typo") + 1;
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "team-a-bad-policy.yaml:{line}: configmap/podguard-system/team-a[namespaces.yaml]: document[1]: \
             policy probes, rule probes: spec.rules[0].check: unknown check `requireProbez`"
        )),
        "{err}"
    );

    // `check --policies` takes the same manifests: team-a's registry policy refuses Docker Hub.
    let o = podguard(&["check", "--policies", &good, &fixture("pods/restricted.yaml")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("[allowed-registries/registry] spec.containers[0].image"), "{}", stdout(&o));
}

#[test]
fn hostile_inputs_get_answers_not_crashes() {
    for file in ["deep-nesting.yaml", "alias-bomb.yaml", "wrong-types.yaml", "binary-garbage.yaml"] {
        let o = podguard(&["check", "--format", "json", &fixture(&format!("hostile/{file}"))]);
        // 0/1 are verdicts, 2 is an input error; a panic would be 101, a signal None.
        assert!(matches!(o.status.code(), Some(0..=2)), "{file}: {:?}\n{}", o.status, stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{file}: {}", stderr(&o));
    }
    let o = podguard(&["check", "--format", "json", &fixture("hostile/wrong-types.yaml")]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    // Unreadable pod specs are refused (the webhook's default --on-error deny), naming the field.
    let reasons: Vec<&str> =
        v["results"].as_array().expect("results").iter().filter_map(|r| r["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("spec.containers")), "{reasons:?}");
}

#[test]
fn bad_params_name_the_param_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("p.yaml");
    std::fs::write(
        &p,
        "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules: [{name: pss, check: podSecurity}]\n  params:\n    level: extreme\n",
    )
    .expect("write");
    let o = podguard(&["policies", "lint", p.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:7: document[0]: policy p: spec.params.level: ", p.display())), "{err}");
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/examples").join(name).display().to_string()
}

fn cel_case(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/cel/testdata/examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn cel_example_policies_pass_and_fail_through_the_cli() {
    for name in ["ecr-digest", "team-label", "no-host-aliases", "memory-limit"] {
        let policy = example(&format!("cel-{name}.yaml"));
        let pass = podguard(&["check", "--policies", &policy, &cel_case(&format!("{name}.pass.yaml"))]);
        assert_eq!(pass.status.code(), Some(0), "{name} pass: {}{}", stdout(&pass), stderr(&pass));
        let fail = podguard(&[
            "check",
            "--format",
            "json",
            "--policies",
            &policy,
            &cel_case(&format!("{name}.fail.yaml")),
        ]);
        assert_eq!(fail.status.code(), Some(1), "{name} fail: {}{}", stdout(&fail), stderr(&fail));
        let v: serde_json::Value = serde_json::from_slice(&fail.stdout).expect("json");
        let paths: Vec<&str> = v["results"][0]["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .filter_map(|x| x["path"].as_str())
            .collect();
        assert!(!paths.is_empty() && paths.iter().all(|p| p.starts_with("spec")), "{name}: {paths:?}");
    }
}

#[test]
fn cel_foreach_names_each_container_under_the_workload_prefix() {
    let o = podguard(&[
        "check",
        "--policies",
        &example("cel-ecr-digest.yaml"),
        &fixture("workloads/deployment-bad-template.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("[ecr-pinned-images/digest] spec.template.spec.containers[0]: image nginx:1.27 of container web is not pinned by digest"), "{out}");
    assert!(out.contains("[ecr-pinned-images/digest] spec.template.spec.containers[1]: image busybox:1.36 of container sidecar"), "{out}");
}

#[test]
fn cel_compile_error_names_policy_rule_and_position() {
    let file = fixture("policies/broken-cel/syntax.yaml");
    let o = podguard(&["policies", "lint", &file]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{file}:8: document[0]: policy broken-cel, rule team: spec.rules[0].cel: ")),
        "{err}"
    );
    assert!(err.contains("cel at 1:"), "{err}");
}

#[test]
fn a_folder_walk_skips_devices_fifos_and_link_loops_and_still_checks_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::copy(fixture("pods/privileged.yaml"), root.join("pod.yaml")).expect("copy");
    std::os::unix::fs::symlink("/dev/zero", root.join("zero.yaml")).expect("link");
    let fifo = root.join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    for name in ["a", "b", "c"] {
        std::os::unix::fs::symlink("..", root.join("sub").join(name)).expect("link");
    }
    // Before: /dev/zero filled memory, the FIFO blocked forever, the loops never ended.
    let mut child = Command::new(env!("CARGO_BIN_EXE_podguard"))
        .args(["check", root.to_str().expect("utf8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run podguard");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("podguard check did not finish in 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("spec.containers[0].securityContext.privileged"), "{out}\n{err}");
    assert!(err.contains("zero.yaml: not a regular file"), "{err}");
    assert!(err.contains("fifo.yaml: not a regular file"), "{err}");
    assert!(err.contains("a link back to a folder above it (a loop)"), "{err}");
}
