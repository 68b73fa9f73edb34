//! The Helm chart (charts/podguard) and deploy/podguard.yaml: every rendered object is valid for
//! its Kubernetes type (see `render`), and the properties that keep a cluster safe hold: the
//! webhook reaches the Service over TLS it can verify, fails closed exactly when it enforces and
//! never calls for kube-system or podguard's own namespace, the pod meets Pod Security "restricted", RBAC is what `serve`
//! needs and no more, the policy library becomes labelled ConfigMaps, and the generated
//! certificate survives upgrades until it nears expiry.
//!
//! Needs `helm` (see `render`); scripts/helm-check.sh runs it after the chart lint.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod render;
mod tls;

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use render::{NAMESPACE, Rendered, chart_dir, parse, render, repo, try_render_chart, validate};
use rstest::rstest;
use serde_json::{Value, json};

/// The value sets under charts/podguard/ci/, each rendered by `renders_only_valid_objects`.
const CI_VALUES: &[&str] = &[
    "cert-manager-issuer-values.yaml",
    "cert-manager-values.yaml",
    "enforce-values.yaml",
    "host-network-values.yaml",
    "network-policy-values.yaml",
    "service-monitor-values.yaml",
];

/// The name the API server uses to reach the Service (and checks the certificate against).
const SERVICE_DNS_NAME: &str = "podguard.podguard-system.svc";

fn ci_values(file: &str) -> String {
    chart_dir().join("ci").join(file).display().to_string()
}

fn render_values(file: &str) -> Rendered {
    render(&["-f", &ci_values(file)])
}

fn pod_spec(rendered: &Rendered) -> PodSpec {
    let deployment: Deployment = rendered.typed("Deployment");
    deployment.spec.template.spec.unwrap()
}

fn container(rendered: &Rendered) -> Container {
    let spec = pod_spec(rendered);
    assert_eq!(spec.containers.len(), 1);
    spec.containers.into_iter().next().unwrap()
}

fn args(rendered: &Rendered) -> Vec<String> {
    container(rendered).args.unwrap()
}

fn selector_labels() -> Value {
    json!({"app.kubernetes.io/name": "podguard", "app.kubernetes.io/instance": "podguard"})
}

fn webhook(rendered: &Rendered) -> k8s_openapi::api::admissionregistration::v1::ValidatingWebhook {
    named_webhook(rendered, "validate.podguard.dev").unwrap()
}

fn named_webhook(
    rendered: &Rendered,
    name: &str,
) -> Option<k8s_openapi::api::admissionregistration::v1::ValidatingWebhook> {
    let config: ValidatingWebhookConfiguration = rendered.typed("ValidatingWebhookConfiguration");
    config.webhooks.unwrap().into_iter().find(|h| h.name == name)
}

#[test]
fn policy_configmaps_are_validated_by_a_webhook_of_their_own_that_never_blocks() {
    let rendered = render(&["--set", "mode=enforce"]);
    let hook = named_webhook(&rendered, "policies.podguard.dev").unwrap();
    assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(hook.client_config, webhook(&rendered).client_config, "the same service and CA");
    let selector = serde_json::to_value(hook.namespace_selector.unwrap()).unwrap();
    assert_eq!(
        selector,
        json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [NAMESPACE]}]})
    );
    assert_eq!(
        serde_json::to_value(hook.object_selector.unwrap()).unwrap(),
        json!({"matchLabels": {"podguard.dev/policy": "true"}})
    );
    let rules = serde_json::to_value(hook.rules.unwrap()).unwrap();
    assert_eq!(
        rules,
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"], "scope": "Namespaced"}])
    );
    // The server is told where the policy ConfigMaps are.
    let a = args(&rendered);
    assert!(a.contains(&format!("--policy-namespace={NAMESPACE}")), "{a:?}");
    let off = render(&["--set", "webhook.validatePolicies=false"]);
    assert!(named_webhook(&off, "policies.podguard.dev").is_none());
}

#[rstest]
#[case::defaults(None)]
#[case::cert_manager(Some("cert-manager-values.yaml"))]
#[case::cert_manager_issuer(Some("cert-manager-issuer-values.yaml"))]
#[case::enforce(Some("enforce-values.yaml"))]
#[case::host_network(Some("host-network-values.yaml"))]
#[case::network_policy(Some("network-policy-values.yaml"))]
#[case::service_monitor(Some("service-monitor-values.yaml"))]
fn renders_only_valid_objects(#[case] values: Option<&str>) {
    let rendered = match values {
        Some(file) => render_values(file),
        None => render(&[]),
    };
    let errors: Vec<String> = rendered.0.iter().filter_map(|o| validate(o).err()).collect();
    assert!(errors.is_empty(), "invalid objects:\n{}", errors.join("\n"));
    let names = rendered.names();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "two objects share a kind and name: {names:?}");
}

#[test]
fn every_ci_values_file_is_rendered_by_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, CI_VALUES, "add a case to renders_only_valid_objects for each ci/ file");
}

#[test]
fn deploy_manifest_is_valid_and_carries_no_private_key() {
    let text = std::fs::read_to_string(repo().join("deploy/podguard.yaml")).unwrap();
    let rendered = parse(&text);
    let errors: Vec<String> = rendered.0.iter().filter_map(|o| validate(o).err()).collect();
    assert!(errors.is_empty(), "invalid objects in deploy/podguard.yaml:\n{}", errors.join("\n"));
    assert_eq!(rendered.0[0]["kind"], "Namespace");
    assert_eq!(rendered.0[0]["metadata"]["name"], NAMESPACE);
    assert!(rendered.all("Secret").is_empty(), "deploy/podguard.yaml must not carry a Secret");
    assert!(rendered.all("Pod").is_empty(), "helm test hooks do not belong in deploy/podguard.yaml");
    assert_eq!(rendered.all("Certificate").len(), 2);
}

#[rstest]
#[case::defaults(&[], &["kube-system", "podguard-system"])]
#[case::more(&["--set", "exemptions.namespaces={kube-system,istio-system}"], &["kube-system", "istio-system", "podguard-system"])]
#[case::release_namespace_cannot_be_dropped(&["--set-json", "exemptions.namespaces=[]"], &["podguard-system"])]
fn webhook_never_calls_for_exempt_namespaces(#[case] set: &[&str], #[case] exempt: &[&str]) {
    let rendered = render(set);
    let selector = webhook(&rendered).namespace_selector.unwrap();
    let expressions = serde_json::to_value(selector.match_expressions.unwrap()).unwrap();
    assert_eq!(
        expressions,
        json!([
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": exempt},
            {"key": "podguard.dev/ignore", "operator": "NotIn", "values": ["true"]},
        ])
    );
    assert!(args(&rendered).contains(&format!("--exempt-namespaces={}", exempt.join(","))));
}

#[rstest]
#[case::warn_by_default(&[], "Ignore")]
#[case::audit(&["--set", "mode=audit"], "Ignore")]
#[case::enforce(&["--set", "mode=enforce"], "Fail")]
#[case::warn_but_told_to_fail(&["--set", "mode=warn", "--set", "webhook.failurePolicy=Fail"], "Fail")]
#[case::enforce_but_told_to_ignore(&["--set", "mode=enforce", "--set", "webhook.failurePolicy=Ignore"], "Ignore")]
fn failure_policy_follows_the_mode_unless_set(#[case] set: &[&str], #[case] expected: &str) {
    let hook = webhook(&render(set));
    assert_eq!(hook.failure_policy.as_deref(), Some(expected));
}

#[test]
fn cert_manager_namespace_is_exempt_when_cert_manager_issues_the_certificate() {
    let rendered = render(&["--set", "certManager.enabled=true"]);
    let selector = webhook(&rendered).namespace_selector.unwrap();
    let expressions = serde_json::to_value(selector.match_expressions.unwrap()).unwrap();
    let exempt = expressions[0]["values"].as_array().unwrap();
    assert!(exempt.contains(&json!("cert-manager")), "{expressions}");
    let flag = args(&rendered).into_iter().find(|a| a.starts_with("--exempt-namespaces=")).unwrap();
    assert!(flag.split(['=', ',']).any(|n| n == "cert-manager"), "{flag}");
}

#[test]
fn webhook_covers_pods_and_every_workload() {
    let rendered = render(&["--set", "mode=enforce"]);
    let hook = webhook(&rendered);
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.timeout_seconds, Some(5));
    assert_eq!(hook.side_effects, "None");
    assert_eq!(hook.admission_review_versions, ["v1"]);
    let mut covered = BTreeSet::new();
    for rule in hook.rules.unwrap() {
        assert_eq!(rule.operations.as_deref(), Some(&["CREATE".to_owned(), "UPDATE".to_owned()][..]));
        assert_eq!(rule.scope.as_deref(), Some("Namespaced"));
        for group in rule.api_groups.unwrap() {
            for resource in rule.resources.as_deref().unwrap() {
                covered.insert(format!("{group}/{resource}"));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "/pods",
        "/pods/ephemeralcontainers",
        "/replicationcontrollers",
        "/podtemplates",
        "apps/deployments",
        "apps/replicasets",
        "apps/statefulsets",
        "apps/daemonsets",
        "batch/jobs",
        "batch/cronjobs",
    ]
    .map(String::from)
    .into();
    assert_eq!(covered, expected);
}

#[test]
fn pod_meets_pod_security_restricted_and_spreads_over_nodes() {
    let rendered = render(&[]);
    let deployment: Deployment = rendered.typed("Deployment");
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)), "never fewer ready replicas");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-cluster-critical"));
    assert_eq!(pod.host_network, None);
    let pod_sc = pod.security_context.unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    for (probe, path) in [(c.liveness_probe.clone(), "/healthz"), (c.readiness_probe.clone(), "/readyz")] {
        let get = probe.unwrap().http_get.unwrap();
        assert_eq!((get.path.as_deref(), get.scheme.as_deref()), (Some(path), Some("HTTPS")));
        assert_eq!(get.port, IntOrString::String("https".into()));
    }
    let spread = serde_json::to_value(pod.topology_spread_constraints.unwrap()).unwrap();
    assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread[0]["whenUnsatisfiable"], "DoNotSchedule");
    assert_eq!(spread[0]["labelSelector"]["matchLabels"], selector_labels());
    let args = c.args.clone().unwrap();
    for expected in [
        "serve",
        "--configmaps",
        "--policy-namespace=podguard-system",
        "--tls-cert=/etc/podguard/tls/tls.crt",
        "--tls-key=/etc/podguard/tls/tls.key",
        "--default-mode=warn",
        "--on-error=deny",
    ] {
        assert!(args.contains(&expected.to_owned()), "{expected} missing from {args:?}");
    }
    let mount = c.volume_mounts.clone().unwrap().into_iter().find(|m| m.name == "tls").unwrap();
    assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/etc/podguard/tls", Some(true)));
    assert_eq!(mount.sub_path, None, "subPath mounts never see rotated certificates");
}

#[rstest]
#[case::two_replicas(&[], Some(1))]
#[case::single_replica_has_no_budget(&["--set", "replicaCount=1"], None)]
fn disruption_budget_keeps_one_replica(#[case] set: &[&str], #[case] min_available: Option<i32>) {
    let rendered = render(set);
    let budgets = rendered.all("PodDisruptionBudget");
    match min_available {
        None => assert!(budgets.is_empty()),
        Some(n) => {
            let pdb: PodDisruptionBudget = rendered.typed("PodDisruptionBudget");
            let spec = pdb.spec.unwrap();
            assert_eq!(spec.min_available, Some(IntOrString::Int(n)));
            assert_eq!(spec.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"));
            let selector = serde_json::to_value(spec.selector.unwrap().match_labels).unwrap();
            assert_eq!(selector, selector_labels());
        }
    }
}

#[test]
fn rbac_grants_what_serve_needs_and_nothing_more() {
    let rendered = render(&[]);
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    };
    let named = |groups: &[&str], resources: &[&str], name: &str, verbs: &[&str]| PolicyRule {
        resource_names: Some(vec![name.to_owned()]),
        ..rule(groups, resources, verbs)
    };
    let configmaps = rule(&[""], &["configmaps"], &["get", "list", "watch"]);
    let events = rule(&["events.k8s.io"], &["events"], &["create", "patch"]);
    // The other Role belongs to the helm test hook.
    let role: Role = serde_json::from_value(rendered.named("Role", "podguard").clone()).unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(
        role.rules.unwrap(),
        [
            configmaps.clone(),
            events.clone(),
            // The audit writer's Lease: created once, then only that one.
            rule(&["coordination.k8s.io"], &["leases"], &["create"]),
            named(&["coordination.k8s.io"], &["leases"], "podguard-audit-writer", &["get", "patch"]),
        ]
    );
    let cluster_role: ClusterRole = rendered.typed("ClusterRole");
    let namespaces = rule(&[""], &["namespaces"], &["get", "list", "watch"]);
    // The background audit (on by default): read-only on every kind that holds a pod spec; the
    // webhook configuration's creation time, and Events on objects that bypassed admission.
    let audit = [
        rule(&[""], &["pods", "podtemplates", "replicationcontrollers"], &["list", "watch"]),
        rule(&["apps"], &["deployments", "replicasets", "statefulsets", "daemonsets"], &["list", "watch"]),
        rule(&["batch"], &["jobs", "cronjobs"], &["list", "watch"]),
        named(&["admissionregistration.k8s.io"], &["validatingwebhookconfigurations"], "podguard", &["get"]),
        events.clone(),
        rule(&[""], &["events"], &["list"]),
    ];
    let mut want = vec![namespaces.clone()];
    want.extend(audit.clone());
    assert_eq!(cluster_role.rules.unwrap(), want);
    let args = pod_spec(&rendered).containers[0].args.clone().unwrap();
    for arg in [
        "--audit=true",
        "--audit-reports=false",
        "--webhook-configuration=podguard",
        "--audit-lease=podguard-audit-writer",
    ] {
        assert!(args.contains(&arg.to_owned()), "{arg} not in {args:?}");
    }
    assert!(rendered.all("CustomResourceDefinition").is_empty(), "no CRD unless reports are asked for");
    // Report objects: the CRD (unless another tool installed it) and exactly what the writer uses.
    let reports = render(&["--set", "audit.reports.enabled=true"]);
    let crd = reports.typed::<Value>("CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "policyreports.wgpolicyk8s.io");
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    let with_reports: ClusterRole = reports.typed("ClusterRole");
    want.push(rule(&["wgpolicyk8s.io"], &["policyreports"], &["list", "create", "patch", "delete"]));
    assert_eq!(with_reports.rules.unwrap(), want);
    assert!(
        pod_spec(&reports).containers[0].args.as_ref().unwrap().contains(&"--audit-reports=true".to_owned())
    );
    let own_crd = render(&["--set", "audit.reports.enabled=true", "--set", "audit.reports.installCRD=false"]);
    assert!(own_crd.all("CustomResourceDefinition").is_empty());
    let without = render(&["--set", "audit.enabled=false"]);
    assert_eq!(without.typed::<ClusterRole>("ClusterRole").rules.unwrap(), [namespaces]);
    let without_role: Role = serde_json::from_value(without.named("Role", "podguard").clone()).unwrap();
    assert_eq!(without_role.rules.unwrap(), [configmaps, events]);
    let subject = json!([{"kind": "ServiceAccount", "name": "podguard", "namespace": NAMESPACE}]);
    let binding: RoleBinding =
        serde_json::from_value(rendered.named("RoleBinding", "podguard").clone()).unwrap();
    assert_eq!(serde_json::to_value(binding.subjects).unwrap(), subject);
    assert_eq!(binding.role_ref.name, "podguard");
    let cluster_binding: ClusterRoleBinding = rendered.typed("ClusterRoleBinding");
    assert_eq!(serde_json::to_value(cluster_binding.subjects).unwrap(), subject);
    assert_eq!(cluster_binding.role_ref.kind, "ClusterRole");
    assert_eq!(pod_spec(&rendered).service_account_name.as_deref(), Some("podguard"));
}

fn library() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(chart_dir().join("policies"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_library_policy_becomes_a_labelled_configmap() {
    let rendered = render(&[]);
    let library = library();
    assert!(library.iter().any(|(name, _)| name == "pod-security-restricted"));
    for (name, text) in &library {
        let configmap = rendered.named("ConfigMap", &format!("podguard-policy-{name}"));
        assert_eq!(configmap["metadata"]["labels"]["podguard.dev/policy"], "true");
        let data = configmap["data"][format!("{name}.yaml")].as_str().unwrap();
        assert_eq!(data, format!("{}\n", text.trim_end()), "{name}: ConfigMap differs from the file");
    }
    assert_eq!(rendered.all("ConfigMap").len(), library.len());
}

#[test]
fn library_policies_switch_off_and_extra_policies_install() {
    let rendered = render_values("enforce-values.yaml");
    let names: Vec<&str> =
        rendered.all("ConfigMap").iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"podguard-policy-pod-security-baseline"), "{names:?}");
    assert!(names.contains(&"podguard-policy-pod-security-restricted"), "{names:?}");

    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(ci_values("enforce-values.yaml")).unwrap()).unwrap();
    for name in ["no-latest-tag", "require-probes"] {
        let configmap = rendered.named("ConfigMap", &format!("podguard-extra-{name}"));
        assert_eq!(configmap["metadata"]["labels"]["podguard.dev/policy"], "true");
        let text = configmap["data"][format!("{name}.yaml")].as_str().unwrap();
        let policy: Value = serde_yaml_ng::from_str(text).unwrap();
        let given = &values["extraPolicies"][name];
        let given: Value = match given.as_str() {
            Some(text) => serde_yaml_ng::from_str(text).unwrap(),
            None => given.clone(),
        };
        assert_eq!(policy, given, "{name}");
    }
}

#[rstest]
#[case::warn(&[], "warn", "warn")]
#[case::enforce(&["--set", "mode=enforce"], "enforce", "deny")]
#[case::audit(&["--set", "mode=audit"], "audit", "admit")]
#[case::explicit(&["--set", "mode=enforce", "--set", "test.expect=warn"], "enforce", "warn")]
fn helm_test_expects_what_the_mode_answers(#[case] set: &[&str], #[case] mode: &str, #[case] expect: &str) {
    let rendered = render(set);
    assert!(args(&rendered).contains(&format!("--default-mode={mode}")));
    let pod: Pod = rendered.typed("Pod");
    let annotations = pod.metadata.annotations.unwrap();
    assert_eq!(annotations["helm.sh/hook"], "test");
    let labels = serde_json::to_value(pod.metadata.labels.unwrap()).unwrap();
    assert_ne!(labels["app.kubernetes.io/name"], "podguard", "the Service must not select the test pod");
    let spec = pod.spec.unwrap();
    let env = spec.containers[0].env.clone().unwrap();
    let get = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone()).unwrap();
    assert_eq!(get("EXPECT"), expect);
    assert_eq!(get("TEST_NAMESPACE"), "default");
    let sc = spec.containers[0].security_context.clone().unwrap();
    assert_eq!((sc.read_only_root_filesystem, sc.allow_privilege_escalation), (Some(true), Some(false)));
}

#[test]
fn host_network_uses_node_dns_and_its_own_port() {
    let rendered = render_values("host-network-values.yaml");
    let deployment: Deployment = rendered.typed("Deployment");
    let spec = deployment.spec;
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(0)), "two pods cannot share a node port");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let ports = pod.containers[0].ports.clone().unwrap();
    assert_eq!(ports.iter().map(|p| p.container_port).collect::<Vec<_>>(), [9444, 9091]);
    let args = pod.containers[0].args.clone().unwrap();
    assert!(args.contains(&"--listen=0.0.0.0:9444".to_owned()));
    assert!(args.contains(&"--metrics-listen=0.0.0.0:9091".to_owned()));
}

#[test]
fn cert_manager_issues_the_certificate_and_injects_the_ca() {
    let rendered = render_values("cert-manager-values.yaml");
    assert!(rendered.all("Secret").is_empty(), "cert-manager owns the TLS Secret");
    let config = rendered.one("ValidatingWebhookConfiguration");
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "podguard-system/podguard-serving"
    );
    assert!(config["webhooks"][0]["clientConfig"].get("caBundle").is_none());
    let serving = rendered.named("Certificate", "podguard-serving");
    let volume = pod_spec(&rendered).volumes.unwrap().into_iter().find(|v| v.name == "tls").unwrap();
    assert_eq!(serving["spec"]["secretName"], volume.secret.unwrap().secret_name.unwrap());
    assert!(serving["spec"]["dnsNames"].as_array().unwrap().contains(&json!(SERVICE_DNS_NAME)));
    // serving <- CA Issuer <- CA Certificate <- self-signed Issuer
    let issuer = rendered.named("Issuer", serving["spec"]["issuerRef"]["name"].as_str().unwrap());
    let ca = rendered.named("Certificate", "podguard-ca");
    assert_eq!(issuer["spec"]["ca"]["secretName"], ca["spec"]["secretName"]);
    assert_eq!(ca["spec"]["isCA"], true);
    let root = rendered.named("Issuer", ca["spec"]["issuerRef"]["name"].as_str().unwrap());
    assert_eq!(root["spec"]["selfSigned"], json!({}));
}

#[test]
fn cert_manager_uses_the_given_issuer() {
    let rendered = render_values("cert-manager-issuer-values.yaml");
    assert!(rendered.all("Issuer").is_empty());
    let serving = rendered.one("Certificate");
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"name": "corporate-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
}

#[test]
fn service_monitor_scrapes_the_metrics_port() {
    let rendered = render_values("service-monitor-values.yaml");
    let monitor = rendered.one("ServiceMonitor");
    let service = rendered.one("Service");
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], selector_labels());
    for (key, value) in selector_labels().as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value);
    }
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!([NAMESPACE]));
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert!(service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == "metrics"));
    assert_eq!(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack");
}

#[test]
fn network_policy_admits_the_control_plane_and_limits_metrics() {
    let rendered = render_values("network-policy-values.yaml");
    let policy: NetworkPolicy = rendered.typed("NetworkPolicy");
    let policy = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(policy["podSelector"]["matchLabels"], selector_labels());
    assert_eq!(policy["ingress"][0], json!({"ports": [{"port": "https", "protocol": "TCP"}]}));
    assert_eq!(policy["ingress"][1]["ports"], json!([{"port": "metrics", "protocol": "TCP"}]));
    assert_eq!(
        policy["ingress"][1]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
    assert_eq!(policy["egress"], json!([{"ports": [{"port": 443, "protocol": "TCP"}]}]));
}

#[rstest]
#[case::unknown_top_level_key(&["--set", "replicas=3"], "additional properties 'replicas' not allowed")]
#[case::wrong_type(&["--set", "replicaCount=two"], "/replicaCount")]
#[case::unknown_mode(&["--set", "mode=block"], "/mode")]
#[case::mode_not_a_string(&["--set", "mode=1"], "/mode")]
#[case::failure_policy(&["--set", "webhook.failurePolicy=Open"], "/webhook/failurePolicy")]
#[case::timeout_too_long(&["--set", "webhook.timeoutSeconds=31"], "/webhook/timeoutSeconds")]
#[case::unknown_nested_key(&["--set", "certManager.enable=true"], "additional properties 'enable' not allowed")]
#[case::kubelet_port(&["--set", "ports.webhook=10250"], "the kubelet's API port")]
#[case::same_ports(&["--set", "ports.metrics=9443"], "must differ")]
#[case::unknown_library_policy(&["--set", "policies.library.no-such-policy=false"], "no built-in policy has that name")]
#[case::library_toggle_not_bool(&["--set-string", "policies.library.pod-security-baseline=no"], "/policies/library")]
fn bad_values_are_refused(#[case] set: &[&str], #[case] message: &str) {
    let stderr = try_render_chart(&chart_dir(), set).err().expect("helm template should fail");
    assert!(stderr.contains(message), "expected {message:?} in:\n{stderr}");
}

#[test]
fn notes_explain_the_mode_and_how_to_enforce() {
    let output = std::process::Command::new(render::helm())
        .args(["install", "podguard"])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE, "--dry-run=client"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let notes = &stdout[stdout.find("NOTES:").expect("NOTES rendered")..];
    assert!(notes.contains("Cluster default mode: warn"), "{notes}");
    assert!(notes.contains("kubectl label namespace <namespace> podguard.dev/mode=enforce"), "{notes}");
    assert!(notes.contains("--set mode=enforce"), "{notes}");
    assert!(notes.contains("Never evaluated: namespaces kube-system, podguard-system"), "{notes}");
}
