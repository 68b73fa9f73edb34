//! Table-driven pass/fail cases from `tests/fixtures/pss/cases.yaml`: each pod must be allowed
//! or denied at the listed versions, and a denial must name the expected control.

use serde::Deserialize;

use super::test_pod::{check, run};
use crate::object::{Decoded, decode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    level: String,
    #[serde(default)]
    control: Option<String>,
    #[serde(default)]
    pass: Vec<String>,
    #[serde(default)]
    fail: Vec<String>,
    pod: serde_json::Value,
}

#[test]
fn fixture_cases() {
    let cases: Vec<Case> =
        serde_yaml_ng::from_str(include_str!("../../../tests/fixtures/pss/cases.yaml")).unwrap();
    assert!(cases.len() > 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        assert!(!case.pass.is_empty() || !case.fail.is_empty(), "{}: no versions", case.name);
        assert!(
            case.fail.is_empty() || case.control.is_some(),
            "{}: failing case without control",
            case.name
        );
        let Decoded::Workload(pod) = decode("", "Pod", &case.pod.to_string()).unwrap() else {
            unreachable!()
        };
        for (version, want_pass) in
            case.pass.iter().map(|v| (v, true)).chain(case.fail.iter().map(|v| (v, false)))
        {
            let c = check(&format!("level: {}\nversion: {version}", case.level));
            let found = run(c.as_ref(), &pod);
            let ok = if want_pass {
                found.is_empty()
            } else {
                let prefix = format!("{}: ", case.control.as_deref().unwrap_or_default());
                found.iter().any(|f| f.message.starts_with(&prefix))
            };
            if !ok {
                let got: Vec<_> = found.iter().map(|f| format!("{}: {}", f.path, f.message)).collect();
                let want = if want_pass { "pass" } else { "fail" };
                failures.push(format!("{} @ {}/{version}: want {want}, got {got:#?}", case.name, case.level));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
