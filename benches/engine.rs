//! Engine benchmarks: the cost of deciding one pod, without HTTP or TLS.
//!
//! `cargo bench --bench engine`. Figures go to BENCHMARKS.md with the command that produced them.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use podguard::admission::{self, Settings};
use podguard::context::{Context, Operation, UserInfo};
use podguard::object::{self, Decoded};
use podguard::policy::{Origin, PolicySet, load_str};
use podguard::subject::Subject;

// The allocator of the podguard binary, so that allocation costs are the webhook's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixture_json(path: &str) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path))
            .expect("fixture");
    let value: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    value.to_string()
}

fn policy(text: &str) -> PolicySet {
    PolicySet::new(load_str(&Origin::File { path: "bench".into() }, text).expect("policy"))
}

fn engine(c: &mut Criterion) {
    let pod_json = fixture_json("pods/realistic.yaml");
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

    let restricted = policy(
        "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: r}\nspec:\n  rules: [{name: pss, check: podSecurity}]\n  params: {level: restricted}\n",
    );
    assert!(restricted.evaluate(&ctx, &subject).is_empty(), "the bench pod must be restricted-compliant");
    c.bench_function("pss_restricted_3_containers", |b| {
        b.iter(|| black_box(restricted.evaluate(&ctx, black_box(&subject))))
    });

    let (library, errors) = PolicySet::merge([podguard::source::embedded::load().expect("library")]);
    assert!(errors.is_empty());
    c.bench_function("default_library_3_containers", |b| {
        b.iter(|| black_box(library.evaluate(&ctx, black_box(&subject))))
    });

    // The whole decision the webhook makes after TLS and HTTP: review JSON in, response JSON out.
    let review = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"b","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"namespace":"shop","operation":"CREATE","userInfo":{{"username":"alice"}},"object":{pod_json}}}}}"#
    );
    let settings = Settings::default();
    c.bench_function("review_decode_decide_encode_default_library", |b| {
        b.iter(|| {
            let req = admission::review::parse(black_box(review.as_bytes())).expect("review");
            let d = admission::evaluate(&library, &settings, &req, None);
            black_box(d.review_json(&req.uid))
        })
    });

    // The same for the load test's reviews (compact JSON, as the API server sends them), with the
    // library and with an empty set (decoding and encoding alone, as the load test's floor): the
    // violating one is denied with 3 enforce, 12 warn and 3 audit violations.
    let empty = PolicySet::new(Vec::new());
    for name in ["compliant", "violating"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/reviews/pod-{name}.json")),
        )
        .expect("review fixture");
        let review = serde_json::from_str::<serde_json::Value>(&text).expect("json").to_string();
        for (set_name, set) in [("default_library", &library), ("empty_set", &empty)] {
            c.bench_function(&format!("review_{name}_decode_decide_encode_{set_name}"), |b| {
                b.iter(|| {
                    let req = admission::review::parse(black_box(review.as_bytes())).expect("review");
                    let d = admission::evaluate(set, &settings, &req, None);
                    black_box(d.review_json(&req.uid))
                })
            });
        }

        // Encoding alone, the decision made with the library (`-- encode_only`). At 5308325 these
        // compared the hand-written writer with a serde-based one (BENCHMARKS.md).
        let req = admission::review::parse(review.as_bytes()).expect("review");
        let d = admission::evaluate(&library, &settings, &req, None);
        c.bench_function(&format!("encode_only_{name}"), |b| {
            b.iter(|| black_box(black_box(&d).review_json(black_box(&req.uid))))
        });
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
