//! Behaviour of compiled CEL rules on real subjects: variables, `foreach`, messages, errors,
//! the cost limit, the function library, and the example policies in deploy/examples.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rstest::rstest;
use serde_json::value::RawValue;

use super::{
    CompileError, DEFAULT_COST_LIMIT, Field, MAX_LIST_ELEMENTS, MAX_STRING_BYTES, Position, compile,
};
use crate::checks::Params;
use crate::context::{Context, Operation, UserInfo};
use crate::object::{Decoded, Workload, decode};
use crate::policy::{Finding, Foreach, Rule};
use crate::subject::Subject;

pub(super) const POD: &str = include_str!("testdata/pod.yaml");
const DEPLOYMENT: &str = include_str!("testdata/deployment.yaml");
const CRONJOB: &str = include_str!("testdata/cronjob.yaml");

/// A decoded manifest and the JSON text it came from.
pub(super) struct Manifest {
    workload: Workload,
    json: Box<RawValue>,
    kind: String,
    name: String,
}

pub(super) fn manifest(yaml: &str) -> Manifest {
    let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let kind = v["kind"].as_str().unwrap().to_owned();
    let group = v["apiVersion"].as_str().unwrap().rsplit_once('/').map_or("", |(g, _)| g).to_owned();
    let name = v["metadata"]["name"].as_str().unwrap().to_owned();
    let json = RawValue::from_string(v.to_string()).unwrap();
    let Decoded::Workload(workload) = decode(&group, &kind, json.get()).unwrap() else {
        panic!("not a workload")
    };
    Manifest { workload, json, kind, name }
}

/// What to vary in the request around a manifest.
#[derive(Default)]
pub(super) struct Request<'a> {
    pub(super) operation: Option<Operation>,
    pub(super) old: Option<&'a RawValue>,
    pub(super) namespace_labels: Option<&'a BTreeMap<String, String>>,
}

pub(super) fn run_with(rule: &Rule, params: &Params, m: &Manifest, req: Request<'_>) -> Vec<Finding> {
    let check = compile(rule.cel_source(), params).unwrap();
    let user = UserInfo {
        username: "alice".into(),
        groups: vec!["dev".into(), "system:authenticated".into()],
        ..Default::default()
    };
    let ctx = Context {
        operation: req.operation.unwrap_or(Operation::Create),
        namespace: "shop",
        namespace_labels: req.namespace_labels,
        name: &m.name,
        kind: &m.kind,
        sub_resource: None,
        user: &user,
        dry_run: false,
        object: Some(&m.json),
        old_object: req.old,
    };
    let mut out = Vec::new();
    check.evaluate(&ctx, &Subject::of(&m.workload), &mut out);
    out
}

pub(super) fn run(rule: &Rule, m: &Manifest) -> Vec<Finding> {
    run_with(rule, &Params::new(), m, Request::default())
}

pub(super) fn cel(expr: &str) -> Rule {
    Rule { name: "r".into(), cel: Some(expr.into()), ..Default::default() }
}

fn foreach(expr: &str, f: Foreach) -> Rule {
    Rule { foreach: Some(f), ..cel(expr) }
}

fn paths(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.path.as_str()).collect()
}

fn messages(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.message.as_str()).collect()
}

fn params(json: &str) -> Params {
    serde_json::from_str(json).unwrap()
}

#[rstest]
#[case::object("object.metadata.name == 'web' && object.kind == 'Pod'", true)]
#[case::object_false("object.metadata.name == 'api'", false)]
#[case::old_object_null_on_create("oldObject == null", true)]
#[case::request_operation("request.operation == 'CREATE'", true)]
#[case::request_names("request.namespace == 'shop' && request.name == 'web'", true)]
#[case::request_user("request.userInfo.username == 'alice' && 'dev' in request.userInfo.groups", true)]
#[case::request_user_uid_absent("!has(request.userInfo.uid)", true)]
#[case::request_dry_run("request.dryRun == false", true)]
#[case::request_kind("request.kind == {'group': '', 'version': 'v1', 'kind': 'Pod'}", true)]
#[case::namespace_unknown("namespaceObject == null", true)]
#[case::spec("spec.containers.size() == 2 && spec.hostAliases[0].ip == '10.0.0.1'", true)]
#[case::spec_absent_field("!has(spec.hostNetwork)", true)]
#[case::metadata("metadata.labels.team == 'payments'", true)]
#[case::metadata_false("metadata.labels.team == 'search'", false)]
fn variables_of_a_pod(#[case] expr: &str, #[case] holds: bool) {
    let findings = run(&cel(expr), &manifest(POD));
    assert_eq!(findings.is_empty(), holds, "{expr}: {findings:?}");
}

#[test]
fn old_object_on_update() {
    let m = manifest(POD);
    let old = RawValue::from_string(r#"{"metadata":{"labels":{"team":"legacy"}}}"#.into()).unwrap();
    let rule = cel("request.operation == 'UPDATE' && oldObject.metadata.labels.team == 'legacy'");
    let req = Request { operation: Some(Operation::Update), old: Some(&old), ..Default::default() };
    assert_eq!(run_with(&rule, &Params::new(), &m, req), []);
}

#[test]
fn namespace_object_when_labels_are_known() {
    let labels = BTreeMap::from([("tier".to_owned(), "prod".to_owned())]);
    let rule =
        cel("namespaceObject.metadata.name == 'shop' && namespaceObject.metadata.labels.tier == 'prod'");
    let req = Request { namespace_labels: Some(&labels), ..Default::default() };
    assert_eq!(run_with(&rule, &Params::new(), &manifest(POD), req), []);
}

#[test]
fn params_are_bound() {
    let p = params(r#"{"teams": ["payments", "search"], "registry": "111122223333.dkr.ecr."}"#);
    let m = manifest(POD);
    let req = || Request::default();
    assert_eq!(run_with(&cel("metadata.labels.team in params.teams"), &p, &m, req()), []);
    let rule = foreach("container.image.startsWith(params.registry)", Foreach::Containers);
    assert_eq!(paths(&run_with(&rule, &p, &m, req())), ["spec.containers[1]"]);
}

#[rstest]
#[case::containers(Foreach::Containers, &["spec.containers[1]"])]
#[case::init_containers(Foreach::InitContainers, &[])]
#[case::ephemeral_containers(Foreach::EphemeralContainers, &["spec.ephemeralContainers[0]"])]
#[case::all_containers(Foreach::AllContainers, &["spec.containers[1]", "spec.ephemeralContainers[0]"])]
fn foreach_reports_each_failing_container_at_its_path(#[case] f: Foreach, #[case] expected: &[&str]) {
    let findings = run(&foreach("container.image.contains('@sha256:')", f), &manifest(POD));
    assert_eq!(paths(&findings), expected);
}

#[rstest]
#[case::containers(
    Foreach::Containers,
    "container.kind == 'container' && spec.containers[index].name == container.name"
)]
#[case::init(
    Foreach::InitContainers,
    "container.kind == 'initContainer' && index == 0 && container.name == 'migrate'"
)]
#[case::ephemeral(
    Foreach::EphemeralContainers,
    "container.kind == 'ephemeralContainer' && container.name == 'debugger'"
)]
fn foreach_binds_container_kind_and_index(#[case] f: Foreach, #[case] expr: &str) {
    assert_eq!(run(&foreach(expr, f), &manifest(POD)), []);
}

#[test]
fn foreach_without_container_reads_index_only() {
    let findings = run(&foreach("index < 1", Foreach::AllContainers), &manifest(POD));
    assert_eq!(paths(&findings), ["spec.containers[1]"]);
}

#[test]
fn deployment_rules_read_the_template() {
    let m = manifest(DEPLOYMENT);
    assert_eq!(run(&cel("metadata.labels.team == 'search' && spec.containers.size() == 2"), &m), []);
    let findings = run(&foreach("container.image.contains('@sha256:')", Foreach::Containers), &m);
    assert_eq!(paths(&findings), ["spec.template.spec.containers[1]"]);
}

#[test]
fn cronjob_rules_read_the_job_template() {
    let m = manifest(CRONJOB);
    let findings = run(&cel("!has(spec.hostNetwork) || !spec.hostNetwork"), &m);
    assert_eq!(paths(&findings), ["spec.jobTemplate.spec.template.spec"]);
    assert_eq!(run(&cel("metadata.labels.app == 'report' && object.spec.schedule == '0 * * * *'"), &m), []);
}

#[test]
fn message_expression_names_the_container() {
    let rule = Rule {
        message: Some("images must be pinned by digest".into()),
        message_expression: Some(
            "'image ' + container.image + ' of ' + container.name + ' is not pinned'".into(),
        ),
        ..foreach("container.image.contains('@sha256:')", Foreach::Containers)
    };
    let findings = run(&rule, &manifest(POD));
    assert_eq!(messages(&findings), ["image docker.io/library/nginx:1.27 of sidecar is not pinned"]);
}

#[test]
fn message_is_used_without_message_expression() {
    let rule = Rule {
        message: Some("images must be pinned by digest".into()),
        ..foreach("container.image.contains('@')", Foreach::Containers)
    };
    assert_eq!(messages(&run(&rule, &manifest(POD))), ["images must be pinned by digest"]);
}

#[test]
fn default_message_names_the_expression() {
    let findings = run(&cel("metadata.labels.team ==\n   'search'"), &manifest(POD));
    assert_eq!(messages(&findings), ["CEL rule is false: metadata.labels.team == 'search'"]);
    assert!(!findings[0].fix.is_empty());
}

#[rstest]
#[case::error("metadata.labels.nope", "no such key: nope")]
#[case::not_string("size(metadata.labels)", "returned int, not string")]
#[case::empty("''", "empty or multi-line string")]
fn failing_message_expression_falls_back_to_message(#[case] expr: &str, #[case] problem: &str) {
    let rule = Rule {
        message: Some("team must be search".into()),
        message_expression: Some(expr.into()),
        ..cel("false")
    };
    let msg = messages(&run(&rule, &manifest(POD))).concat();
    assert!(msg.starts_with("team must be search (messageExpression failed: "), "{msg}");
    assert!(msg.to_lowercase().contains(problem), "{msg}");
}

#[rstest]
#[case::no_such_key("metadata.labels.owner == 'x'", "CEL rule failed: No such key: owner")]
#[case::wrong_type(
    "spec.containers.size() > 'a'",
    "CEL rule failed: found no matching overload for '_>_' applied to '(int, string)'"
)]
#[case::wrong_argument_type("metadata.name.startsWith(1)", "CEL rule failed: ")]
#[case::bad_computed_regex(
    "metadata.name.matches(metadata.name + '(')",
    "CEL rule failed: Error executing function 'matches'"
)]
#[case::not_bool("metadata.name", "CEL rule returned string, not bool: metadata.name")]
fn runtime_errors_are_findings(#[case] expr: &str, #[case] start: &str) {
    let findings = run(&cel(expr), &manifest(POD));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].message.starts_with(start), "{}", findings[0].message);
    assert_eq!(findings[0].path.as_str(), "spec");
}

#[rstest]
#[case::absent_label("!has(metadata.labels.owner) || metadata.labels.owner == 'x'", true)]
#[case::absent_parent("has(spec.securityContext) && has(spec.securityContext.runAsNonRoot)", false)]
#[case::present("has(spec.hostAliases) && spec.hostAliases.all(a, has(a.hostnames))", true)]
#[case::map_key("!('owner' in metadata.labels) || metadata.labels['owner'] == 'x'", true)]
#[case::optional("metadata.labels.?owner.orValue('none') == 'none'", true)]
fn has_guarded_expressions_never_error(#[case] expr: &str, #[case] holds: bool) {
    let findings = run(&cel(expr), &manifest(POD));
    assert_eq!(findings.is_empty(), holds, "{findings:?}");
    assert!(findings.iter().all(|f| f.message.starts_with("CEL rule is false")), "{findings:?}");
}

fn compile_err(rule: &Rule) -> CompileError {
    compile(rule.cel_source(), &Params::new()).unwrap_err()
}

fn at(line: u32, column: u32) -> Option<Position> {
    Some(Position { line, column })
}

#[rstest]
#[case::syntax("spec.hostNetwork ==", at(1, 20), "mismatched input '<EOF>'")]
#[case::syntax_second_line(
    "has(spec.hostPID) &&\n  spec.hostPID = true",
    at(2, 16),
    "token recognition error"
)]
#[case::unknown_variable("spec.x == 1 &&\n  objekt.y == 2", at(2, 3), "unknown variable `objekt`")]
#[case::container_without_foreach(
    "container.image != ''",
    at(1, 1),
    "`container` is only bound in rules with `foreach`"
)]
#[case::index_without_foreach("1 + index > 0", at(1, 5), "`index` is only bound")]
#[case::bad_regex("metadata.name.matches('[a-')", at(1, 23), "invalid regular expression")]
#[case::too_deep(&format!("{}true{}", "[1].all(x, ".repeat(20), ")".repeat(20)), None, "nests more than 32 levels")]
#[case::bracket_depth(&format!("{}1{}", "(".repeat(200), ")".repeat(200)), at(1, 128), "could nest more than 256 levels")]
#[case::chain_depth(&format!("has(spec{})", ".a".repeat(7_000)), at(1, 4), "could nest more than 256 levels")]
fn compile_errors_name_the_position(#[case] expr: &str, #[case] pos: Option<Position>, #[case] reason: &str) {
    let err = compile_err(&cel(expr));
    assert_eq!(err.field, Field::Cel);
    if pos.is_some() {
        assert_eq!(err.position, pos, "{err}");
    }
    assert!(err.reason.contains(reason), "{err}");
}

#[test]
fn compile_error_display_names_field_and_position() {
    let rule = Rule { message_expression: Some("'a' +".into()), ..cel("true") };
    let err = compile_err(&rule);
    assert_eq!(err.field, Field::MessageExpression);
    assert!(err.to_string().starts_with("messageExpression at 1:6: mismatched input"), "{err}");
    let err = compile_err(&Rule { cel: None, ..cel("") });
    assert_eq!(err.to_string(), "cel: the rule has no `cel` expression");
}

#[test]
fn unicode_before_an_error_counts_characters() {
    let err = compile_err(&cel("'héllo' == nope"));
    assert_eq!(err.position, at(1, 12), "{err}");
}

fn run_limited(expr: &str, cost_limit: Option<u64>, params: &Params) -> (Vec<Finding>, Duration) {
    let rule = Rule { cost_limit, ..cel(expr) };
    let check = compile(rule.cel_source(), params).unwrap();
    let m = manifest(POD);
    let start = Instant::now();
    let out = crate::testing::run_check(check.as_ref(), &m.workload, "shop", "web", "Pod");
    (out, start.elapsed())
}

fn params_of(json: serde_json::Value) -> Params {
    json.as_object().unwrap().clone()
}

/// The issue's rule: 40 chained terms that each build, reverse and sort a list.
fn sort_chain(range: &str) -> String {
    vec![format!("lists.range({range}).reverse().sort().size() > 0"); 40].join(" && ")
}

/// The count in a "costs at least N units" load error.
fn certain_cost_of(err: &CompileError) -> u64 {
    let rest = err.reason.strip_prefix("this expression costs at least ").unwrap_or_else(|| panic!("{err}"));
    rest.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{err}"))
}

#[test]
fn a_rule_certain_to_be_too_costly_is_refused_at_load() {
    let err = compile_err(&cel(&sort_chain("1000000")));
    assert_eq!(
        err.reason,
        format!(
            "lists.range(1000000) would build a list of 1000000 elements, more than the limit of {MAX_LIST_ELEMENTS}"
        )
    );
    assert_eq!(err.position, at(1, 12));
    // 2,000 × 2,000 visits whatever the object.
    let err = compile_err(&cel("lists.range(2000).map(i, lists.range(2000).map(j, j)).size() > 0"));
    let at_least = certain_cost_of(&err);
    assert!(at_least >= 4_000_000, "{err}");
    assert!(
        err.reason.contains(&format!("more than the rule's cost limit of {DEFAULT_COST_LIMIT}")),
        "{err}"
    );
    // A smaller one is refused under the default limit and loads with a higher one; run with a
    // limit just under the load-time count, it is stopped: that count is a lower bound.
    let smaller = "lists.range(300).map(i, lists.range(300).map(j, j)).size() > 0";
    let err = compile_err(&cel(smaller));
    let at_least = certain_cost_of(&err);
    let rule = Rule { cost_limit: Some(super::MAX_COST_LIMIT), ..cel(smaller) };
    assert!(compile(rule.cel_source(), &Params::new()).is_ok());
    let p = params_of(serde_json::json!({"n": 300}));
    let (findings, _) = run_limited(
        "lists.range(params.n).map(i, lists.range(params.n).map(j, j)).size() > 0",
        Some(at_least - 1),
        &p,
    );
    assert_eq!(messages(&findings), [format!("CEL rule exceeded its cost limit of {} units", at_least - 1)]);
    let (findings, _) = run_limited(
        "lists.range(params.n).map(i, lists.range(params.n).map(j, j)).size() > 0",
        Some(at_least),
        &p,
    );
    assert_eq!(findings, [], "the load-time count equals what this rule spends");
}

#[rstest]
#[case::sort_chain_from_params(&sort_chain("params.n"), "CEL rule exceeded its cost limit of 100000 units")]
#[case::nested_all(
    "lists.range(1000).all(i, lists.range(1000).all(j, lists.range(1000).all(k, true)))",
    "CEL rule exceeded its cost limit of 100000 units"
)]
#[case::absorbed_by_or(
    "lists.range(1000).exists(i, lists.range(1000).exists(j, j < 0)) || true",
    "CEL rule exceeded its cost limit of 100000 units"
)]
#[case::filter(
    "lists.range(params.n / 30).filter(i, lists.range(params.n / 30).filter(j, j == i).size() == 0).size() == 0",
    "CEL rule exceeded its cost limit of 100000 units"
)]
#[case::sets(
    "sets.contains(lists.range(params.n), lists.range(params.n).map(x, -x))",
    "CEL rule exceeded its cost limit of 100000 units"
)]
#[case::replace_growth(
    "'aaaaaaaaaa'.replace('a', params.big).replace('a', params.big).replace('a', params.big).size() > 0",
    "CEL rule would build a string of 80000000 bytes, more than the limit of 1048576"
)]
#[case::computed_range(
    "lists.range(params.n * 10).size() > 0",
    "CEL rule would build a list of 1000000 elements, more than the limit of 100000"
)]
#[case::join_growth(
    "lists.range(params.n / 30).map(i, params.big).join(params.big).size() > 0",
    "CEL rule would build a string of 1333000 bytes, more than the limit of 1048576"
)]
fn the_cost_limit_stops_costly_rules_deterministically(#[case] expr: &str, #[case] message: &str) {
    let p = params_of(serde_json::json!({"n": 100_000, "big": "a".repeat(200)}));
    let (first, took) = run_limited(expr, None, &p);
    assert_eq!(first.len(), 1, "{expr}: {first:?}");
    assert!(first[0].message.starts_with(message), "{expr}: {}", first[0].message);
    // Counted, not timed: the same verdict every time, whatever the machine is doing.
    for _ in 0..3 {
        assert_eq!(run_limited(expr, None, &p).0, first, "{expr}");
    }
    // A sanity bound, not a benchmark: unbounded, each of these runs for seconds or minutes.
    assert!(took < Duration::from_secs(2), "{expr} took {took:?}");
}

#[test]
fn join_growth_within_the_string_limit_is_charged_but_allowed_with_a_higher_limit() {
    let p = params_of(serde_json::json!({"big": "a".repeat(200)}));
    let expr = "lists.range(1000).map(i, params.big).join(params.big).size() > 0";
    let (findings, _) = run_limited(expr, Some(1_000_000), &p);
    assert_eq!(findings, []);
}

#[test]
fn map_and_filter_stay_linear_and_a_rule_may_raise_its_limit() {
    let expr = "lists.range(100000).map(x, x * 2).filter(x, x % 4 == 0).size() == 50000";
    let err = compile_err(&cel(expr));
    assert!(err.reason.starts_with("this expression costs at least "), "{err}");
    let (findings, took) = run_limited(expr, Some(1_000_000), &Params::new());
    assert_eq!(findings, []);
    assert!(took < Duration::from_secs(5), "quadratic? {took:?}");
}

#[test]
fn the_cost_limit_is_per_rule_and_subject_and_checked() {
    let p = params_of(serde_json::json!({"n": 10}));
    let (findings, _) = run_limited("lists.range(params.n).all(i, true)", Some(5), &p);
    assert_eq!(messages(&findings), ["CEL rule exceeded its cost limit of 5 units"]);
    let (findings, _) = run_limited("lists.range(params.n).all(i, true)", Some(100), &p);
    assert_eq!(findings, []);
    for bad in [0, super::MAX_COST_LIMIT + 1] {
        let rule = Rule { cost_limit: Some(bad), ..cel("true") };
        let err = compile(rule.cel_source(), &Params::new()).unwrap_err();
        assert!(err.reason.starts_with(&format!("costLimit {bad} is out of range")), "{err}");
    }
}

#[test]
fn own_versions_of_replace_join_and_range_agree_with_the_library() {
    // The rewritten calls must mean what the library's did.
    for expr in [
        "'hello hello'.replace('he', 'we') == 'wello wello'",
        "'hello hello'.replace('he', 'we', -1) == 'wello wello'",
        "'hello hello'.replace('he', 'we', 1) == 'wello hello'",
        "'hello hello'.replace('he', 'we', 0) == 'hello hello'",
        "'abc'.replace('', '-') == '-a-b-c-'",
        "'abc'.replace('', '-', 2) == '-a-bc'",
        "'ééé'.replace('é', 'e') == 'eee'",
        "['a', 'b'].join() == 'ab' && ['a', 'b'].join('-') == 'a-b' && [].join('-') == ''",
        "lists.range(3) == [0, 1, 2] && lists.range(0) == []",
        "size('x'.replace('x', 'yy')) == 2 && [1, 2].map(x, string(x)).join(',') == '1,2'",
    ] {
        let (findings, _) = run_limited(expr, None, &Params::new());
        assert_eq!(findings, [], "{expr}");
        let env = super::library::env().unwrap();
        let plain = env.compile(expr).unwrap();
        let ctx = cel::Context::with_env(env.clone());
        assert_eq!(plain.execute(&ctx), Ok(cel::Value::Bool(true)), "the library disagrees: {expr}");
    }
    let (findings, _) = run_limited("['a', 1].join() == ''", None, &Params::new());
    assert!(findings[0].message.starts_with("CEL rule failed: "), "{findings:?}");
    let (findings, _) = run_limited("lists.range(-2) == []", None, &Params::new());
    assert_eq!(
        messages(&findings),
        ["CEL rule failed: Error executing function 'lists.range': size must be non-negative, got -2"]
    );
    let _ = MAX_STRING_BYTES;
}

#[rstest]
#[case::lower_ascii("'TacoCat'.lowerAscii() == 'tacocat' && 'a'.upperAscii() == 'A'")]
#[case::split_join("'a,b,c'.split(',').join('-') == 'a-b-c'")]
#[case::trim_replace("'  x y '.trim().replace(' ', '_') == 'x_y'")]
#[case::index_of("'registry/image'.indexOf('/') == 8 && 'a/b/c'.lastIndexOf('/') == 3")]
#[case::substring("'sha256:abc'.substring(7) == 'abc'")]
#[case::size_contains(
    "size('abc') == 3 && 'abc'.contains('b') && 'abc'.startsWith('a') && 'abc'.endsWith('c')"
)]
#[case::matches("'v1.2.3'.matches('^v[0-9]+\\\\.') && matches('abc', 'b')")]
#[case::matches_computed("'abc'.matches('^' + 'a')")]
#[case::find("'image:1.27'.find('[0-9.]+$') == '1.27' && 'a'.find('z') == ''")]
#[case::find_all(
    "'a1b22c333'.findAll('[0-9]+') == ['1', '22', '333'] && 'a1b2'.findAll('[0-9]', 1) == ['1']"
)]
#[case::macros("[1, 2, 3].all(x, x > 0) && [1, 2].exists(x, x == 2) && [1, 2].exists_one(x, x == 1)")]
#[case::map_filter("[1, 2, 3].map(x, x * 2).filter(x, x > 2) == [4, 6]")]
#[case::lists_ext(
    "[3, 1, 2].sort() == [1, 2, 3] && [[1], [2]].flatten() == [1, 2] && [1, 2, 3].slice(1, 2) == [2]"
)]
#[case::k8s_lists("[1, 2, 3].isSorted() && [1, 2, 3].sum() == 6 && [2, 1].min() == 1 && [2, 1].max() == 2")]
#[case::k8s_list_index("[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2 && [1].indexOf(5) == -1")]
#[case::sets(
    "sets.contains([1, 2, 3], [1, 3]) && sets.equivalent([1, 2], [2, 1, 1]) && sets.intersects([1], [2, 1])"
)]
#[case::sets_false("!sets.contains([1], [2]) && !sets.intersects([1], [2])")]
#[case::math("math.greatest(1, 5, 3) == 5 && math.least([4, 2]) == 2")]
#[case::base64("base64.encode(b'hi') == 'aGk='")]
#[case::quantity_compare(
    "quantity('512Mi').isLessThan(quantity('1Gi')) && quantity('2').isGreaterThan(quantity('1500m'))"
)]
#[case::quantity_equal("quantity('1Gi') == quantity('1073741824') && quantity('0.5') == quantity('500m')")]
#[case::quantity_compare_to(
    "quantity('1k').compareTo(quantity('1000')) == 0 && quantity('1').compareTo(quantity('2')) == -1"
)]
#[case::quantity_as("quantity('1Ki').asInteger() == 1024 && quantity('250m').asApproximateFloat() == 0.25")]
#[case::quantity_sign(
    "quantity('-1').sign() == -1 && quantity('0').sign() == 0 && quantity('1.5').isInteger() == false"
)]
#[case::quantity_arith(
    "quantity('1Gi').add(quantity('1Gi')) == quantity('2Gi') && quantity('1').sub(1) == quantity('0')"
)]
#[case::is_quantity("isQuantity('100m') && !isQuantity('100 m') && !isQuantity('1K')")]
#[case::quantity_less("quantity('1') < quantity('2')")]
#[case::optional_select(
    "spec.?securityContext.?runAsUser.orValue(1000) != 0 && {'a': 1}[?'b'].orValue(0) == 0"
)]
#[case::optional_fns(
    "optional.of(1).hasValue() && !optional.none().hasValue() && optional.of(2).value() == 2"
)]
#[case::exists_one_camel("[1, 2].existsOne(x, x == 1)")]
#[case::map_three_args("[1, 2, 3].map(x, x > 1, x * 10) == [20, 30]")]
#[case::time("timestamp('2023-01-01T10:00:00Z').getHours() == 10 && duration('1h') > duration('30m')")]
#[case::strings_more(
    "'%s-%d'.format(['a', 1]) == 'a-1' && strings.quote('a') == '\"a\"' && 'abc'.reverse() == 'cba'"
)]
#[case::char_at("'abc'.charAt(1) == 'b' && 'a-b'.split('-', 1) == ['a-b']")]
#[case::lists_more(
    "[3, 1].sortBy(x, x) == [1, 3] && lists.range(3) == [0, 1, 2] && [1, 2].reverse() == [2, 1]"
)]
#[case::math_more("math.ceil(1.2) == 2.0 && math.abs(-1) == 1 && math.sqrt(4) == 2.0")]
#[case::base64_decode("base64.decode('aGk=') == b'hi'")]
#[case::conversions("type(1) == int && dyn(1) == 1 && int('1') == 1 && bool('true') && bytes('a') == b'a'")]
fn library_functions(#[case] expr: &str) {
    assert_eq!(run(&cel(expr), &manifest(POD)), [], "{expr}");
}

#[test]
fn distinct_is_refused() {
    let err = compile_err(&cel("[1, 1].distinct() == [1]"));
    assert!(err.reason.contains("distinct"), "{err}");
}

#[test]
fn quantity_of_container_limits() {
    let rule = Rule {
        message_expression: Some("container.name + ' asks for ' + container.resources.limits.memory".into()),
        ..foreach(
            "!has(container.resources.limits.memory) || quantity(container.resources.limits.memory).isLessThan(quantity('2Gi'))",
            Foreach::Containers,
        )
    };
    let findings = run(&rule, &manifest(POD));
    assert_eq!(paths(&findings), ["spec.containers[1]"]);
    assert_eq!(messages(&findings), ["sidecar asks for 4Gi"]);
}

/// Expressions that push cel's edge cases (overflow, bad indexes, bad formats, odd types): each
/// must end in a verdict or a finding, never a panic.
#[rstest]
fn edge_cases_never_panic(
    #[values(
        "duration('9999999999999999h') > duration('1s')",
        "timestamp(9223372036854775807) > timestamp(0)",
        "int(1e300) > 0",
        "-9223372036854775808 / -1 == 0",
        "9223372036854775807 + 1 > 0",
        "math.abs(-9223372036854775808) > 0",
        "'abc'.substring(2, 1) == ''",
        "'abc'.charAt(-1) == ''",
        "'a,b'.split(',', -9223372036854775808).size() > 0",
        "lists.range(-1).size() == 0",
        "[1, 2].slice(-1, 1) == []",
        "[1, 'a'].sort() == []",
        "[1.0, 0.0 / 0.0].sort() == []",
        "'%.99999f'.format([1.0]) == ''",
        "'%d %s'.format([1]) == ''",
        "{1: 1, 1u: 2}.size() == 1",
        "[1][-1] == 1",
        "{'a': 1}[1] == 1",
        "optional.none().value() == 1",
        "timestamp('2023-01-01T00:00:00Z').getHours('Bad/Zone') == 0",
        "string(b'\\xff') == ''",
        "quantity('1e99999999999') > quantity('1')",
        "quantity('99999999999999999999999999999999999999999Ei').sign() == 1",
        "quantity('1Ei').asInteger() > 0",
        "[].min() == 0",
        "['a', 1].sum() == 0",
        "'a'.findAll('(' + '', 1) == []",
        "spec.containers[99].name == ''",
        "object.spec.nope.nope == 1"
    )]
    expr: &str,
) {
    let findings = run(&cel(expr), &manifest(POD));
    assert!(findings.len() <= 1, "{expr}: {findings:?}");
}

/// Every example CEL policy compiles, passes its passing pod and fails its failing one.
#[test]
fn example_policies() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = file.strip_prefix("cel-").and_then(|f| f.strip_suffix(".yaml")) else { continue };
        seen += 1;
        let policy: crate::policy::Policy =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cel/testdata/examples");
        for (suffix, passes) in [("pass", true), ("fail", false)] {
            let pod =
                std::fs::read_to_string(format!("{testdata}/{stem}.{suffix}.yaml")).unwrap_or_else(|e| {
                    panic!("{file} needs src/cel/testdata/examples/{stem}.{suffix}.yaml: {e}")
                });
            let m = manifest(&pod);
            let findings: Vec<Finding> = policy
                .spec
                .rules
                .iter()
                .filter(|r| r.cel.is_some())
                .flat_map(|r| run_with(r, &policy.spec.params, &m, Request::default()))
                .collect();
            assert_eq!(findings.is_empty(), passes, "{file} on {stem}.{suffix}.yaml: {findings:?}");
            assert!(
                findings.iter().all(|f| !f.message.starts_with("CEL rule failed")),
                "{file} errs on {stem}.{suffix}.yaml: {findings:?}"
            );
        }
    }
    assert!(seen >= 3, "expected at least three deploy/examples/cel-*.yaml, found {seen}");
}
