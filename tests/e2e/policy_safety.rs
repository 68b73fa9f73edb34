//! No policy, however wrong, takes podguard down: the cases of the policy-safety issue through the
//! real binary (`policies lint`, `serve --policies` at start and while watching a folder).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Launch, fixture_path, serve_exit};

/// A policy document with one CEL rule `name` whose expression is `cel` (YAML-quoted).
fn cel_policy(policy: &str, name: &str, cel: &str) -> String {
    let quoted = serde_json::to_string(cel).unwrap();
    format!(
        "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {{name: {policy}}}\nspec:\n  rules:\n    - name: first\n      cel: \"true\"\n    - name: {name}\n      cel: {quoted}\n"
    )
}

fn lint(text: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podguard"))
        .args(["policies", "lint", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn deep_fields(n: usize) -> String {
    format!("has(spec{})", ".a".repeat(n))
}

fn long_sum(n: usize) -> String {
    format!("1{} == 2", " + 1".repeat(n))
}

#[test]
fn expressions_that_overflowed_the_parser_are_policy_errors_in_lint() {
    for (what, cel) in [
        ("7,000 fields", deep_fields(7_000)),
        ("7,000 terms", long_sum(7_000)),
        ("30,000 terms", long_sum(30_000)),
    ] {
        let (out, stderr) = lint(&cel_policy("deep", "deep-rule", &cel));
        // 2 is a policy error; an abort would be a signal (no code) or 134.
        assert_eq!(out.status.code(), Some(2), "{what}: {:?}\n{stderr}", out.status);
        assert!(
            stderr.contains(":9: document[0]: policy deep, rule deep-rule: spec.rules[1].cel: cel"),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("could nest more than 256 levels")
                || stderr.contains("more than the limit of 16384"),
            "{what}: {stderr}"
        );
    }
}

#[test]
fn deeply_nested_yaml_is_a_policy_error_not_a_crash() {
    let n = 100_000;
    let text = format!(
        "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  rules: [{{name: r, cel: \"true\"}}]\n  params:\n    x: {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let (out, stderr) = lint(&text);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("document[0]: the document nests more than 128 levels deep"), "{stderr}");
}

#[test]
fn a_misspelt_function_is_a_lint_error_naming_policy_rule_line_and_fix() {
    let (out, stderr) = lint(&cel_policy("images", "prefix", "container.image.startsWithh('1111')"));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            ":9: document[0]: policy images, rule prefix: spec.rules[1].cel: cel at 1:17: unknown function `startsWithh`; did you mean `startsWith`?"
        ),
        "{stderr}"
    );
}

#[test]
fn the_forty_term_sort_rule_is_refused_at_load() {
    let cel = vec!["lists.range(1000000).reverse().sort().size() > 0"; 40].join(" && ");
    assert!(cel.len() > 2_000);
    let (out, stderr) = lint(&cel_policy("sorts", "sort-chain", &cel));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "policy sorts, rule sort-chain: spec.rules[1].cel: cel at 1:12: lists.range(1000000) would build a list of 1000000 elements, more than the limit of 100000"
        ),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_to_start_on_a_deep_policy_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.yaml");
    std::fs::write(&file, cel_policy("deep", "deep-rule", &deep_fields(7_000))).unwrap();
    let policies = format!("--policies={}", file.display());
    let (code, stderr) = serve_exit(
        &["--tls-self-signed", "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", &policies],
        &[],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("policy deep, rule deep-rule") && stderr.contains("could nest more than 256"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_selector_it_cannot_read() {
    let (code, stderr) = serve_exit(
        &["--tls-self-signed", "--configmaps", "--policy-selector=team in a", "--listen=127.0.0.1:0"],
        &[],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("--policy-selector") && stderr.contains("not a label requirement"), "{stderr}");
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_deep_policy_dropped_into_a_watched_folder_leaves_the_server_serving() {
    let launch = Launch::new();
    let folder = launch.dir().join("policies");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(fixture_path("policies/webhook.yaml"), folder.join("webhook.yaml")).unwrap();
    let w = launch.policies(&[Path::new(&folder)]).start();
    assert_eq!(w.review("reviews/pod-violating.json").await["allowed"], false);

    std::fs::write(folder.join("deep.yaml"), cel_policy("deep", "deep-rule", &deep_fields(7_000))).unwrap();
    eventually("the load error", async || {
        let listing: Value = serde_json::from_str(&w.metrics_get("/policies").await).unwrap();
        listing["errors"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    let listing: Value = serde_json::from_str(&w.metrics_get("/policies").await).unwrap();
    let error = &listing["errors"][0];
    assert_eq!(
        (error["policy"].as_str(), error["rule"].as_str()),
        (Some("deep"), Some("deep-rule")),
        "{error}"
    );
    assert!(error["reason"].as_str().unwrap().contains("could nest more than 256"), "{error}");
    // Still serving, with the policies it had.
    assert_eq!(w.review("reviews/pod-violating.json").await["allowed"], false);
    assert_eq!(w.client().get(w.url("/healthz")).send().await.unwrap().status(), 200);
}
