//! TLS between the API server and the webhook: the caBundle, the Secret and the Service agree,
//! the generated certificate verifies for the Service's DNS name, and on upgrade it is kept
//! until it nears expiry, then replaced while the old CA stays trusted for the switch-over.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rstest::rstest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;

use super::render::{NAMESPACE, Rendered, chart_dir, render, render_chart};
use super::{SERVICE_DNS_NAME, args, container, pod_spec, webhook};

#[test]
fn webhook_reaches_the_service_over_tls_it_can_verify() {
    let rendered = render(&[]);
    let hook = webhook(&rendered);
    let target = hook.client_config.service.as_ref().unwrap();
    let service: Service = rendered.typed("Service");
    assert_eq!(Some(&target.name), service.metadata.name.as_ref());
    assert_eq!(target.namespace, NAMESPACE);
    assert_eq!(target.path.as_deref(), Some("/validate"));
    assert_eq!(target.port, Some(443));
    let port = service.spec.unwrap().ports.unwrap().into_iter().find(|p| p.port == 443).unwrap();
    assert_eq!(port.target_port, Some(IntOrString::String("https".into())));
    let https = container(&rendered).ports.unwrap().into_iter().find(|p| p.name.as_deref() == Some("https"));
    assert_eq!(https.unwrap().container_port, 9443);
    assert!(args(&rendered).contains(&"--listen=0.0.0.0:9443".to_owned()));

    let secret: Secret = rendered.typed("Secret");
    let volume = pod_spec(&rendered).volumes.unwrap().into_iter().find(|v| v.name == "tls").unwrap();
    assert_eq!(volume.secret.unwrap().secret_name, secret.metadata.name);
    let data = secret.data.unwrap();
    let ca_bundle = hook.client_config.ca_bundle.unwrap();
    assert_eq!(ca_bundle.0, data["ca.crt"].0, "caBundle is the Secret's CA");
    verify_serving_pair(SERVICE_DNS_NAME, &ca_bundle.0, &data["tls.crt"].0, &data["tls.key"].0);
}

/// The certificate chains to the bundle for `dns_name`, and the key belongs to it.
fn verify_serving_pair(dns_name: &str, ca_bundle: &[u8], cert: &[u8], key: &[u8]) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_bundle) {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
    let cert = CertificateDer::from_pem_slice(cert).unwrap();
    let name = ServerName::try_from(dns_name.to_owned()).unwrap();
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        verifier.as_ref(),
        &cert,
        &[],
        &name,
        &[],
        UnixTime::now(),
    )
    .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("the private key matches the certificate");
}

/// The chart with `lookup` of the TLS Secret replaced by a file, so an "existing" Secret can be
/// handed to the real reuse-or-regenerate logic without a cluster.
struct ChartWithSecret {
    dir: tempfile::TempDir,
}

impl ChartWithSecret {
    const LOOKUP: &str = r#"lookup "v1" "Secret" .Release.Namespace $secretName"#;

    fn new(existing: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&chart_dir(), dir.path());
        let helpers = dir.path().join("templates/_tls.tpl");
        let text = std::fs::read_to_string(&helpers).unwrap();
        assert!(text.contains(Self::LOOKUP), "_tls.tpl no longer looks the Secret up as expected");
        let text = text.replace(Self::LOOKUP, r#".Files.Get "existing-secret.json" | fromJson"#);
        std::fs::write(&helpers, text).unwrap();
        std::fs::write(dir.path().join("existing-secret.json"), existing.to_string()).unwrap();
        Self { dir }
    }

    fn render(&self, args: &[&str]) -> Rendered {
        render_chart(self.dir.path(), args)
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn tls_of(rendered: &Rendered) -> (Value, String) {
    let secret = rendered.one("Secret").clone();
    let bundle = webhook(rendered).client_config.ca_bundle.unwrap();
    (secret, String::from_utf8(bundle.0).unwrap())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn generated_certificate_is_kept_across_upgrades() {
    let (first, _) = tls_of(&render(&[]));
    let chart = ChartWithSecret::new(&first);
    let (second, bundle) = tls_of(&chart.render(&[]));
    assert_eq!(second["data"], first["data"], "a valid certificate must be reused");
    assert_eq!(second["metadata"]["annotations"], first["metadata"]["annotations"]);
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
}

#[rstest]
#[case::near_expiry(Some(now() + 86_400), None)]
#[case::unreadable_expiry(Some(-1), None)]
#[case::service_renamed(None, Some("other"))]
fn generated_certificate_is_replaced_with_both_cas_trusted(
    #[case] not_after: Option<i64>,
    #[case] fullname: Option<&str>,
) {
    let (mut old, _) = tls_of(&render(&[]));
    if let Some(not_after) = not_after {
        old["metadata"]["annotations"]["podguard.dev/tls-not-after"] = not_after.to_string().into();
    }
    let chart = ChartWithSecret::new(&old);
    let args: Vec<String> =
        fullname.map(|n| vec!["--set".into(), format!("fullnameOverride={n}")]).unwrap_or_default();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rendered = chart.render(&args);
    let (new, bundle) = tls_of(&rendered);
    assert_ne!(new["data"]["tls.crt"], old["data"]["tls.crt"]);
    assert_ne!(new["data"]["ca.crt"], old["data"]["ca.crt"]);
    let expiry: i64 =
        new["metadata"]["annotations"]["podguard.dev/tls-not-after"].as_str().unwrap().parse().unwrap();
    assert!(expiry > now() + 3_000 * 86_400, "a new certificate lives validityDays");
    // Pods still serving the old certificate and pods already on the new one are both trusted.
    let secret: Secret = serde_json::from_value(new).unwrap();
    let data = secret.data.unwrap();
    let old_secret: Secret = serde_json::from_value(old).unwrap();
    let old_data = old_secret.data.unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
    let service = webhook(&rendered).client_config.service.unwrap();
    let new_name = format!("{}.{}.svc", service.name, service.namespace);
    verify_serving_pair(&new_name, bundle.as_bytes(), &data["tls.crt"].0, &data["tls.key"].0);
    verify_serving_pair(SERVICE_DNS_NAME, bundle.as_bytes(), &old_data["tls.crt"].0, &old_data["tls.key"].0);
}
