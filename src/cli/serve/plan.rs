//! Flags → [`Plan`]: every value checked and built before anything is started, each error
//! naming its flag.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Args;
use crate::admission::Settings;
use crate::admission::decision::OnError;
use crate::admission::exemptions::Exemptions;
use crate::admission::policies::PolicyConfigMaps;
use crate::policy::Mode;
use crate::server::Options;
use crate::source::cluster::{ConfigMapOptions, default_policy_namespace};

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPlan {
    /// A PEM pair on disk, watched.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generated at start.
    SelfSigned {
        /// Where to write the CA, if anywhere.
        ca_out: Option<PathBuf>,
    },
}

/// Checked flags.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Ports and limits.
    pub options: Options,
    /// TLS source.
    pub tls: TlsPlan,
    /// `--policies`; empty means the built-in library.
    pub policies: Vec<PathBuf>,
    /// Where policy ConfigMaps are, with `--configmaps`.
    pub configmaps: Option<ConfigMapOptions>,
    /// Decision settings.
    pub settings: Settings,
    /// Run the background audit (with --configmaps).
    pub audit: bool,
    /// What runs beside the audit: report objects, the writer's Lease, bypass verdicts.
    pub audit_duties: Option<crate::source::reports::Options>,
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {reason}")]
pub struct FlagError {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn flag_error(flag: &'static str, reason: impl Into<String>) -> FlagError {
    FlagError { flag, reason: reason.into() }
}

impl Plan {
    /// Checks every flag; the first error names the flag and what it expects.
    pub fn from_args(args: Args) -> Result<Self, FlagError> {
        let addr = |flag, v: &str| {
            v.parse::<SocketAddr>().map_err(|_| {
                flag_error(flag, format!("`{v}` is not an address; use IP:PORT, e.g. 0.0.0.0:9443"))
            })
        };
        let listen = addr("listen", &args.listen)?;
        let metrics_listen = addr("metrics-listen", &args.metrics_listen)?;
        if !args.configmaps && args.policy_namespace.is_some() {
            return Err(flag_error("policy-namespace", "needs --configmaps"));
        }
        if listen == metrics_listen && listen.port() != 0 {
            return Err(flag_error("metrics-listen", "must differ from --listen"));
        }
        let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
            (Some(cert), Some(key), false) => {
                if args.tls_self_signed_ca_out.is_some() {
                    return Err(flag_error("tls-self-signed-ca-out", "needs --tls-self-signed"));
                }
                TlsPlan::Files { cert, key }
            }
            (None, None, true) => TlsPlan::SelfSigned { ca_out: args.tls_self_signed_ca_out },
            (Some(_), None, false) => return Err(flag_error("tls-key", "--tls-cert needs --tls-key")),
            (None, Some(_), false) => return Err(flag_error("tls-cert", "--tls-key needs --tls-cert")),
            (_, _, true) => {
                return Err(flag_error(
                    "tls-self-signed",
                    "use either --tls-self-signed or --tls-cert/--tls-key",
                ));
            }
            (None, None, false) => {
                return Err(flag_error("tls-cert", "give --tls-cert and --tls-key, or --tls-self-signed"));
            }
        };
        let default_mode: Mode = args.default_mode.into();
        let namespace_mode_label = args.namespace_mode_label;
        let on_error: OnError = args.on_error.into();
        let max_body_bytes = parse_size(&args.max_body_bytes).map_err(|r| flag_error("max-body-bytes", r))?;
        let client_timeout = parse_duration(&args.client_timeout)
            .and_then(|d| {
                if d.is_zero() { Err("a zero timeout would cut off every client".into()) } else { Ok(d) }
            })
            .map_err(|r| flag_error("client-timeout", r))?;
        let idle_timeout = parse_duration(&args.idle_timeout)
            .and_then(|d| {
                if d.is_zero() { Err("a zero timeout would close every connection".into()) } else { Ok(d) }
            })
            .map_err(|r| flag_error("idle-timeout", r))?;
        if args.max_connections == 0 {
            return Err(flag_error("max-connections", "must be at least 1"));
        }
        let grace_period = parse_duration(&args.shutdown_grace_period)
            .map_err(|r| flag_error("shutdown-grace-period", r))?;
        let set = |v: Vec<String>| -> HashSet<String> {
            v.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        };
        let exemptions = Exemptions {
            namespaces: set(args.exempt_namespaces),
            usernames: set(args.exempt_users),
            runtime_classes: set(args.exempt_runtime_classes),
        };
        let policy_configmaps = if args.configmaps {
            let selector =
                args.policy_selector.parse().map_err(|r: String| flag_error("policy-selector", r))?;
            Some(PolicyConfigMaps {
                namespace: args.policy_namespace.clone().unwrap_or_else(default_policy_namespace),
                selector,
            })
        } else {
            None
        };
        Ok(Self {
            options: Options {
                listen,
                metrics_listen,
                max_body_bytes,
                grace_period,
                client_timeout,
                max_connections: args.max_connections,
                idle_timeout,
            },
            tls,
            policies: args.policies,
            audit: args.configmaps && args.audit,
            audit_duties: (args.configmaps && args.audit).then(|| crate::source::reports::Options {
                reports: args.audit_reports,
                lease: (
                    args.policy_namespace.clone().unwrap_or_else(default_policy_namespace),
                    args.audit_lease.clone(),
                ),
                identity: crate::source::reports::identity(),
                webhook_configuration: args.webhook_configuration.clone(),
                exempt_users: !exemptions.usernames.is_empty(),
                settings: crate::source::reports::settings_fingerprint(&Settings {
                    default_mode,
                    namespace_mode_label,
                    exemptions: exemptions.clone(),
                    ..Settings::default()
                }),
            }),
            configmaps: args.configmaps.then(|| ConfigMapOptions {
                namespace: args.policy_namespace.clone().unwrap_or_else(default_policy_namespace),
                selector: args.policy_selector.clone(),
            }),
            settings: Settings {
                default_mode,
                namespace_mode_label,
                exemptions,
                on_error,
                policy_configmaps,
                // The webhook answers with no more than it shows; `check` reports them all.
                keep_only_shown: true,
                record_applied: false,
            },
        })
    }
}

/// `3145728`, `512Ki`, `3Mi`, `3MiB`, `1Gi`.
fn parse_size(v: &str) -> Result<usize, String> {
    let t = v.trim();
    let t = t.strip_suffix('B').unwrap_or(t);
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => return Err(format!("`{v}` is not a size; use bytes or a Ki/Mi/Gi suffix, e.g. 3Mi")),
    };
    let n: usize = digits.parse().map_err(|_| format!("`{v}` is not a size; use bytes or e.g. 3Mi"))?;
    match n.checked_shl(shift).filter(|b| *b >> shift == n) {
        Some(0) => Err("must be more than 0".into()),
        Some(b) => Ok(b),
        None => Err(format!("`{v}` is too large")),
    }
}

/// `25s`, `500ms`, `1m`, or plain seconds.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a duration; use e.g. 25s, 500ms or 1m");
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use clap::Parser;
    use rstest::rstest;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// `flags` read by clap as `serve` reads them, then checked.
    pub(in crate::cli::serve) fn plan(flags: &[&str]) -> Result<Plan, String> {
        let argv = std::iter::once("serve").chain(flags.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Plan::from_args(cli.args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let p = plan(&["--tls-self-signed"]).unwrap();
        assert_eq!(p.options.listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(p.options.metrics_listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(p.options.max_body_bytes, 3 * 1024 * 1024);
        assert_eq!(p.options.grace_period, Duration::from_secs(25));
        assert_eq!(p.settings.default_mode, Mode::Enforce);
        assert!(p.settings.namespace_mode_label);
        assert_eq!(p.settings.on_error, OnError::Deny);
        assert!(p.settings.exemptions.namespaces.contains("kube-system"));
        assert_eq!(p.tls, TlsPlan::SelfSigned { ca_out: None });
    }

    #[test]
    fn lists_and_values_are_read() {
        let p = plan(&[
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--exempt-users=a,b",
            "--exempt-namespaces=ops",
            "--default-mode=warn",
            "--namespace-mode-label=false",
            "--on-error=allow",
            "--max-body-bytes=512Ki",
            "--shutdown-grace-period=500ms",
            "--policies=a.yaml",
            "--policies=dir",
        ])
        .unwrap();
        assert_eq!(p.settings.exemptions.usernames, HashSet::from(["a".into(), "b".into()]));
        assert_eq!(p.settings.exemptions.namespaces, HashSet::from(["ops".into()]));
        assert_eq!(p.settings.default_mode, Mode::Warn);
        assert!(!p.settings.namespace_mode_label);
        assert_eq!(p.settings.on_error, OnError::Allow);
        assert_eq!(p.options.max_body_bytes, 512 * 1024);
        assert_eq!(p.options.grace_period, Duration::from_millis(500));
        assert_eq!(p.policies, [PathBuf::from("a.yaml"), PathBuf::from("dir")]);
    }

    #[rstest]
    #[case::no_tls(&[], "--tls-cert")]
    #[case::cert_without_key(&["--tls-cert=c"], "--tls-key")]
    #[case::both_tls(&["--tls-self-signed", "--tls-cert=c", "--tls-key=k"], "either")]
    #[case::ca_out_without_self_signed(&["--tls-cert=c", "--tls-key=k", "--tls-self-signed-ca-out=x"], "needs")]
    #[case::bad_listen(&["--tls-self-signed", "--listen=9443"], "--listen")]
    #[case::same_ports(&["--tls-self-signed", "--listen=0.0.0.0:1", "--metrics-listen=0.0.0.0:1"], "differ")]
    #[case::bad_mode(&["--tls-self-signed", "--default-mode=strict"], "--default-mode")]
    #[case::bad_size(&["--tls-self-signed", "--max-body-bytes=3MB"], "--max-body-bytes")]
    #[case::zero_size(&["--tls-self-signed", "--max-body-bytes=0"], "more than 0")]
    #[case::bad_grace(&["--tls-self-signed", "--shutdown-grace-period=soon"], "duration")]
    fn bad_flags_name_the_flag(#[case] flags: &[&str], #[case] needle: &str) {
        let e = plan(flags).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }

    // clap refuses these before `Plan::from_args` sees them; its message names the flag and
    // lists what it accepts.
    #[rstest]
    #[case::bad_mode(&["--default-mode=strict"], "--default-mode", "[possible values: enforce, warn, audit]")]
    #[case::bad_bool(&["--namespace-mode-label=yes"], "--namespace-mode-label", "[possible values: true, false]")]
    #[case::bad_on_error(&["--on-error=ignore"], "--on-error", "[possible values: deny, allow]")]
    fn refused_values_name_the_flag_and_the_values(
        #[case] flags: &[&str],
        #[case] flag: &str,
        #[case] values: &str,
    ) {
        let flags = [&["--tls-self-signed"], flags].concat();
        let e = plan(&flags).unwrap_err();
        assert!(e.contains(flag) && e.contains(values), "{e}");
    }

    #[rstest]
    #[case::bytes("3145728", 3_145_728)]
    #[case::kib("64Ki", 65_536)]
    #[case::mib_with_b("3MiB", 3_145_728)]
    #[case::gib("1Gi", 1 << 30)]
    fn sizes(#[case] v: &str, #[case] want: usize) {
        assert_eq!(parse_size(v).unwrap(), want);
    }
}
