//! CEL rule benchmarks: the cost of one compiled CEL rule on one pod (three containers), beside
//! the built-in checks measured in benches/engine.rs.
//!
//! `cargo bench --bench cel`. Figures go to BENCHMARKS.md with the command that produced them.

// Setup is not the code under test: a broken fixture should stop the bench at once.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_main};
use podguard::checks::Params;
use podguard::context::{Context, Operation, UserInfo};
use podguard::object::{self, Decoded};
use podguard::policy::{Foreach, Rule};
use podguard::subject::Subject;

fn fixture_json(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(path).expect("fixture");
    let value: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    value.to_string()
}

fn rule(cel: &str, foreach: Option<Foreach>) -> Rule {
    Rule { name: "bench".into(), cel: Some(cel.into()), foreach, ..Default::default() }
}

fn cel(c: &mut Criterion) {
    let pod_json = fixture_json("tests/fixtures/pods/realistic.yaml");
    let Decoded::Workload(pod) = object::decode("", "Pod", &pod_json).expect("decode") else {
        panic!("not a pod")
    };
    let subject = Subject::of(&pod);
    let user = UserInfo::default();
    let raw = serde_json::value::RawValue::from_string(pod_json.clone()).expect("raw");
    let ctx = Context {
        operation: Operation::Create,
        namespace: "shop",
        namespace_labels: None,
        name: "checkout",
        kind: "Pod",
        sub_resource: None,
        user: &user,
        dry_run: false,
        object: Some(&raw),
        old_object: None,
    };
    let params: Params = serde_json::from_str(r#"{"teams": ["payments", "search"]}"#).expect("params");
    let cases = [
        ("cel_label_in_params", rule("has(metadata.labels) && metadata.labels.team in params.teams", None)),
        (
            "cel_foreach_all_containers_regex",
            rule(
                r"container.image.matches('^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/') && container.image.contains('@sha256:')",
                Some(Foreach::AllContainers),
            ),
        ),
        ("cel_spec_all_containers", rule("spec.containers.all(c, c.image.contains('@sha256:'))", None)),
        (
            "cel_object_all_containers",
            rule("object.spec.containers.all(c, c.image.contains('@sha256:'))", None),
        ),
    ];
    for (name, rule) in cases {
        let check = podguard::cel::compile(rule.cel_source(), &params).expect("compile");
        let mut out = Vec::new();
        check.evaluate(&ctx, &subject, &mut out);
        assert!(out.is_empty(), "{name} must pass on the bench pod: {out:?}");
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut out = Vec::new();
                check.evaluate(black_box(&ctx), black_box(&subject), &mut out);
                black_box(out)
            })
        });
    }
}

// The group function criterion generates has no doc comment to carry.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::cel);
}
criterion_main!(group::benches);
