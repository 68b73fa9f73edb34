//! Property tests over CEL expressions and policy documents: whatever the text, compiling it ends
//! with a policy or a policy error, on a thread with a request thread's stack, within the limits;
//! never a panic, an abort or a hang. The expression strategy builds the shapes that once
//! overflowed the parser (thousands of chained fields, operators, unary signs, brackets), mixed
//! with real syntax, so a regression in [`super::limits`] is found in the first cases.
//!
//! Bounded for CI: `PROPTEST_CASES` (default 256 per property) caps the cases.

use proptest::prelude::*;

use crate::checks::Params;
use crate::policy::{Origin, Rule, load_str};

/// Stack of a tokio worker thread: what the webhook compiles ConfigMap policies on.
const WORKER_STACK: usize = 2 << 20;

/// Runs `f` on a thread with a worker's stack; a stack overflow would abort the test binary.
fn on_worker_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new().stack_size(WORKER_STACK).spawn(f).unwrap();
    assert!(handle.join().is_ok(), "compiling panicked");
}

/// Pieces of CEL, repeated into chains of up to a few thousand.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        ".a",
        " + 1",
        " - ",
        "!",
        "-",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        " && ",
        " || ",
        " ? ",
        " == ",
        "1",
        "'s'",
        "\"q\"",
        "r'raw'",
        "b'x'",
        "spec",
        "container",
        ".size()",
        ".all(x, ",
        ".exists(y, ",
        ".map(z, z)",
        "lists.range(3)",
        "x",
        " in ",
        "has(",
        "// c\n",
        "\n",
        "'''t'''",
        "0x1e-5",
        "1.5e3",
        "\\",
        "'unterminated",
        "@tick(",
        "startsWith(",
        "sets.contains(",
    ])
}

fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        // Mixed syntax, mostly wrong.
        prop::collection::vec(piece(), 0..400).prop_map(|v| v.concat()),
        // One piece repeated: the chains that nest without brackets.
        (piece(), 1..8_000usize).prop_map(|(p, n)| format!("has(spec{})", p.repeat(n))),
        // Balanced brackets around a real rule.
        (1..400usize).prop_map(|n| format!("{}spec.hostNetwork == false{}", "(".repeat(n), ")".repeat(n))),
        // Arbitrary text.
        ".{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_expression_compiles_or_is_refused(cel in expression(), foreach in any::<bool>()) {
        on_worker_stack(move || {
            let rule = Rule {
                name: "r".into(),
                cel: Some(cel),
                foreach: foreach.then_some(crate::policy::Foreach::Containers),
                ..Default::default()
            };
            if let Err(e) = super::compile(rule.cel_source(), &Params::new()) {
                assert!(!e.reason.is_empty());
            }
        });
    }

    #[test]
    fn any_policy_document_loads_or_is_refused(cel in expression(), params in ".{0,200}", depth in 0..300usize) {
        on_worker_stack(move || {
            let text = format!(
                "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  rules:\n    - name: r\n      cel: {}\n  params: {{x: {}{}{}}}\n",
                serde_json::to_string(&cel).unwrap(),
                "[".repeat(depth),
                serde_json::to_string(&params).unwrap(),
                "]".repeat(depth),
            );
            match load_str(&Origin::File { path: "p.yaml".into() }, &text) {
                Ok(policies) => assert_eq!(policies.len(), 1),
                Err(errors) => assert!(errors.iter().all(|e| !e.reason.is_empty())),
            }
        });
    }
}
