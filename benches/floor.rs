//! The floor of the webhook load test (benches/load/run.sh): the least an admission webhook in
//! Rust can do per request over the same transport. axum on hyper, rustls with the same
//! provider, HTTP/1.1 and HTTP/2; it decodes the AdmissionReview (uid and object) and allows it.
//! No policies, no logging, no metrics: what podguard's latency is compared against.
//!
//! `cargo run --release --example floor -- 127.0.0.1:PORT CA_OUT.pem`

// A benchmark tool: a setup failure should stop it at once, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Deserialize)]
struct Review {
    request: Request,
}

#[derive(Deserialize)]
struct Request {
    uid: String,
    object: Option<serde_json::Value>,
}

async fn validate(body: Bytes) -> ([(&'static str, &'static str); 1], String) {
    let review: Review = serde_json::from_slice(&body).expect("an AdmissionReview");
    std::hint::black_box(&review.request.object);
    let uid = serde_json::to_string(&review.request.uid).expect("a string");
    let answer = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":{uid},"allowed":true}}}}"#
    );
    ([("content-type", "application/json")], answer)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("listen address");
    let ca_out = args.next().expect("where to write the CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Subject and issuer must differ, or clients take the leaf for a self-signed certificate.
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "floor CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(&ca_out, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/readyz", axum::routing::get(|| async { "ok\n" }));
    let listener = TcpListener::bind(&addr).await.unwrap();
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .await;
        });
    }
}
