//! `requireProbes`: containers declare the health probes the policy names.
//!
//! Only `containers` are checked. Init containers are exempt: ordinary ones run to completion
//! before the pod starts and cannot have probes; `restartPolicy: Always` sidecars may carry
//! probes but are not required to. Ephemeral containers may not have probes at all.

use serde::Deserialize;

use super::{Check, Definition, Params, ParamsError, parse_params};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::{ContainerKind, ContainerRef, Subject};

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "requireProbes",
    summary: "containers declare the listed probes (default: liveness and readiness)",
    params: &["probes"],
    parts: &[],
    build: RequireProbes::build,
}];

/// A probe kind, as written in `params.probes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Probe {
    Liveness,
    Readiness,
    Startup,
}

impl Probe {
    fn field(self) -> &'static str {
        match self {
            Self::Liveness => "livenessProbe",
            Self::Readiness => "readinessProbe",
            Self::Startup => "startupProbe",
        }
    }

    fn is_set(self, c: &ContainerRef<'_>) -> bool {
        match self {
            Self::Liveness => c.liveness_probe.is_some(),
            Self::Readiness => c.readiness_probe.is_some(),
            Self::Startup => c.startup_probe.is_some(),
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Self::Liveness => {
                "add a livenessProbe (httpGet, tcpSocket, grpc or exec) so a hung container is restarted"
            }
            Self::Readiness => "add a readinessProbe so the pod gets traffic only once it can serve it",
            Self::Startup => "add a startupProbe so a slow start is not mistaken for a hang",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Liveness => "liveness",
            Self::Readiness => "readiness",
            Self::Startup => "startup",
        }
    }
}

/// `requireProbes`: every container sets each probe in `params.probes`.
#[derive(Debug)]
pub struct RequireProbes {
    probes: Vec<Probe>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbesParams {
    probes: Option<Vec<Probe>>,
}

impl RequireProbes {
    fn build(params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        let p: ProbesParams = parse_params(params)?;
        let listed = p.probes.unwrap_or_else(|| vec![Probe::Liveness, Probe::Readiness]);
        if listed.is_empty() {
            return Err(ParamsError::new("probes", "must list at least one of liveness, readiness, startup"));
        }
        let mut probes = Vec::with_capacity(listed.len());
        for p in listed {
            if !probes.contains(&p) {
                probes.push(p);
            }
        }
        Ok(Box::new(Self { probes }))
    }
}

impl Check for RequireProbes {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for c in subject.containers().filter(|c| c.kind == ContainerKind::Container) {
            for &p in &self.probes {
                if !p.is_set(&c) {
                    out.push(Finding::new(
                        c.path(subject).field(p.field()),
                        format!("container \"{}\" has no {} probe", c.name, p.noun()),
                        p.fix(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use crate::checks::images::tests::{build_err, paths, run};

    const NAME: &str = "requireProbes";
    const PROBE: &str = "{tcpSocket: {port: 8080}}";

    #[rstest]
    #[case::defaults_met("{}", &["livenessProbe", "readinessProbe"], &[])]
    #[case::defaults_missing_readiness("{}", &["livenessProbe"], &["spec.containers[0].readinessProbe"])]
    #[case::defaults_ignore_startup("{}", &["livenessProbe", "readinessProbe"], &[])]
    #[case::startup_required("{probes: [startup]}", &["livenessProbe"], &["spec.containers[0].startupProbe"])]
    #[case::all_missing("{probes: [liveness, readiness, startup]}", &[], &[
        "spec.containers[0].livenessProbe",
        "spec.containers[0].readinessProbe",
        "spec.containers[0].startupProbe",
    ])]
    #[case::duplicates_report_once("{probes: [liveness, liveness]}", &[], &["spec.containers[0].livenessProbe"])]
    fn require_probes(#[case] params: &str, #[case] set: &[&str], #[case] want: &[&str]) {
        let probes: Vec<String> = set.iter().map(|p| format!("{p}: {PROBE}")).collect();
        let yaml = format!("spec: {{containers: [{{name: app, {}}}]}}", probes.join(", "));
        let f = run(NAME, params, "Pod", &yaml);
        assert_eq!(paths(&f), want);
    }

    #[test]
    fn message_names_container_and_probe() {
        let f = run(NAME, "{probes: [readiness]}", "Pod", "spec: {containers: [{name: web}]}");
        assert_eq!(f[0].message, "container \"web\" has no readiness probe");
        assert!(f[0].fix.contains("readinessProbe"));
    }

    #[test]
    fn init_and_ephemeral_containers_are_exempt_under_a_deployment() {
        let yaml = r"
spec:
  selector: {}
  template:
    spec:
      containers: [{name: a}, {name: b, livenessProbe: {exec: {command: [check]}}, readinessProbe: {httpGet: {port: 80}}}]
      initContainers: [{name: init}]
      ephemeralContainers: [{name: debug}]
";
        let f = run(NAME, "{}", "Deployment", yaml);
        assert_eq!(
            paths(&f),
            [
                "spec.template.spec.containers[0].livenessProbe",
                "spec.template.spec.containers[0].readinessProbe"
            ]
        );
    }

    #[rstest]
    #[case::empty("{probes: []}", "probes")]
    #[case::unknown("{probes: [liveness, health]}", "probes[1]")]
    #[case::not_a_list("{probes: liveness}", "probes")]
    fn rejects_bad_params(#[case] params: &str, #[case] field: &str) {
        assert_eq!(build_err(NAME, params).field, field);
    }
}
