//! The background audit's first full audit, without the API server: N pods (the realistic
//! fixture, each a distinct name and half of them privileged), as a list would deliver them,
//! judged and held by the [`Auditor`] with the built-in library. Prints the time and the memory
//! the held objects and results take.
//!
//! `cargo run --release --example audit_first -- 10000` (figures in BENCHMARKS.md).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use podguard::admission::Settings;
use podguard::audit::Auditor;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pods/realistic.yaml"))
            .expect("fixture");
    let base: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let (set, errors) =
        podguard::policy::PolicySet::merge([podguard::source::embedded::load().expect("library")]);
    assert!(errors.is_empty());
    // What a list hands over: one JSON value per pod, as the API server sends it, made as the
    // audit takes them (a list is read a page at a time), so that the peak is the audit's.
    let pod = |i: usize| {
        let mut p = base.clone();
        p["metadata"]["name"] = format!("pod-{i}").into();
        p["metadata"]["namespace"] = format!("ns-{}", i % 50).into();
        if i.is_multiple_of(2) {
            p["spec"]["containers"][0]["securityContext"]["privileged"] = true.into();
        }
        p
    };
    let before = rss_kib("VmHWM:");
    let mut a = Auditor::new(Settings::default(), Arc::new(set));
    a.relist_begins("Pod");
    let start = Instant::now();
    for i in 0..n {
        a.apply("", "Pod", pod(i), None);
    }
    a.relist_done("Pod", &["Pod"]);
    let took = start.elapsed();
    let after = rss_kib("VmHWM:");
    let set = a.policies().clone();
    let again = Instant::now();
    a.reaudit(set, |_| None);
    let reaudit = again.elapsed();
    let with_findings =
        a.snapshot(None, &["Pod"], |_| None).namespaces.iter().map(|n| n.results.len()).sum::<usize>();
    println!(
        "{n} pods: first audit {:.0} ms ({:.1} µs/pod), re-audit {:.0} ms; held {} objects ({:.1} MiB of JSON), {with_findings} with findings; \
         peak memory +{:.1} MiB ({:.1} KiB/pod), VmHWM {:.1} MiB",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / n as f64,
        reaudit.as_secs_f64() * 1e3,
        a.len(),
        a.held_bytes() as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / 1024.0,
        after.saturating_sub(before) as f64 / n as f64,
        rss_kib("VmHWM:") as f64 / 1024.0,
    );
}
