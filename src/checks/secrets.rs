//! `disallowSecretsInEnv`: containers read secrets from files, not environment variables.
//!
//! A variable is inherited by every child process, shows in crash dumps and in `/proc/<pid>/environ`,
//! and is often logged by frameworks that print their configuration; a mounted secret is a file
//! only the container reads, and it follows rotation (CIS EKS 4.4.1). Every container list is
//! checked, debug containers included.

use super::{Check, Definition, Params, ParamsError};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "disallowSecretsInEnv",
    summary: "containers mount secrets as files instead of reading them into environment variables",
    params: &[],
    parts: &[],
    build: DisallowSecretsInEnv::build,
}];

/// `disallowSecretsInEnv`: no `env[].valueFrom.secretKeyRef` and no `envFrom[].secretRef`.
#[derive(Debug)]
pub struct DisallowSecretsInEnv;

impl DisallowSecretsInEnv {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

const FIX: &str = "mount the secret as a volume (a `secret` or `projected` volume) and read it from the file";

impl Check for DisallowSecretsInEnv {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for c in subject.containers() {
            for (i, var) in c.env.iter().enumerate() {
                let Some(key) = var.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) else {
                    continue;
                };
                out.push(Finding::new(
                    c.path(subject).field("env").index(i).field("valueFrom").field("secretKeyRef"),
                    format!(
                        "{} {:?} reads key {:?} of secret {:?} into environment variable {:?}",
                        c.kind.noun(),
                        c.name,
                        key.key,
                        key.name,
                        var.name
                    ),
                    FIX,
                ));
            }
            for (i, from) in c.env_from.iter().enumerate() {
                let Some(secret) = from.secret_ref.as_ref() else { continue };
                out.push(Finding::new(
                    c.path(subject).field("envFrom").index(i).field("secretRef"),
                    format!(
                        "{} {:?} loads every key of secret {:?} into its environment",
                        c.kind.noun(),
                        c.name,
                        secret.name
                    ),
                    FIX,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::images::tests::{paths, run};

    const NAME: &str = "disallowSecretsInEnv";

    #[test]
    fn secret_key_refs_and_secret_env_from_are_found_where_they_are() {
        let yaml = "spec: {containers: [{name: app, env: [
              {name: PLAIN, value: x},
              {name: FROM_CM, valueFrom: {configMapKeyRef: {name: cm, key: k}}},
              {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}],
            envFrom: [{configMapRef: {name: cm}}, {secretRef: {name: creds}}]}],
          initContainers: [{name: init, env: [{name: T, valueFrom: {secretKeyRef: {name: t, key: k}}}]}]}";
        let f = run(NAME, "{}", "Pod", yaml);
        assert_eq!(
            paths(&f),
            [
                "spec.containers[0].env[2].valueFrom.secretKeyRef",
                "spec.containers[0].envFrom[1].secretRef",
                "spec.initContainers[0].env[0].valueFrom.secretKeyRef",
            ]
        );
        let all: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert!(
            all.contains(
                &r#"container "app" reads key "password" of secret "db" into environment variable "PASSWORD""#
            ),
            "{all:?}"
        );
        assert!(
            all.contains(&r#"container "app" loads every key of secret "creds" into its environment"#),
            "{all:?}"
        );
        assert!(f.iter().all(|f| f.fix.contains("volume")));
    }

    #[test]
    fn no_secrets_no_findings() {
        let yaml = "spec: {containers: [{name: app, env: [{name: A, value: b}], envFrom: [{configMapRef: {name: c}}]}]}";
        assert!(run(NAME, "{}", "Pod", yaml).is_empty());
        let deployment = "spec: {selector: {}, template: {spec: {containers: [{name: app,
            env: [{name: P, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}}}";
        assert_eq!(
            paths(&run(NAME, "{}", "Deployment", deployment)),
            ["spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef"]
        );
    }
}
