//! Shared by the end-to-end tests: fixtures, and the real `podguard serve` binary started on
//! 127.0.0.1:0 with an HTTPS client that trusts its CA.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Path of a file under tests/fixtures.
pub fn fixture_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// Bytes of a file under tests/fixtures.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixture_path(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The DER of the first certificate in a PEM text.
pub fn der(pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap().to_vec()
}

/// A running `podguard serve`, killed on drop.
pub struct Webhook {
    child: Child,
    /// HTTPS admission address.
    pub addr: SocketAddr,
    /// Plain-HTTP metrics address.
    pub metrics_addr: SocketAddr,
    /// CA certificates (PEM) the client trusts.
    pub cas: Vec<String>,
    logs: Arc<Mutex<Vec<String>>>,
    /// Holds the CA file and anything else the test put there, until the server is gone.
    _dir: tempfile::TempDir,
}

/// Flags and environment for one server.
pub struct Launch {
    args: Vec<String>,
    policies: Vec<PathBuf>,
    env: Vec<(String, String)>,
    self_signed: bool,
    cas: Vec<String>,
    dir: tempfile::TempDir,
}

impl Launch {
    /// A server with a self-signed certificate and the webhook test policies.
    pub fn new() -> Self {
        Self {
            args: Vec::new(),
            policies: vec![fixture_path("policies/webhook.yaml")],
            env: Vec::new(),
            self_signed: true,
            cas: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Replaces the test policies with `paths`; none means the built-in library.
    pub fn policies(mut self, paths: &[&Path]) -> Self {
        self.policies = paths.iter().map(|p| p.to_path_buf()).collect();
        self
    }

    /// Adds flags.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Serves `cert`/`key` files instead of a self-signed certificate; the client trusts `cas`.
    pub fn tls_files(mut self, cert: &Path, key: &Path, cas: &[&str]) -> Self {
        self.self_signed = false;
        self.args.push(format!("--tls-cert={}", cert.display()));
        self.args.push(format!("--tls-key={}", key.display()));
        self.cas = cas.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// A temporary folder that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server and waits for its `listening` log line.
    pub fn start(self) -> Webhook {
        let ca_out = self.dir.path().join("ca.pem");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podguard"));
        cmd.arg("serve").args(["--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"]);
        if self.self_signed {
            cmd.arg("--tls-self-signed").arg(format!("--tls-self-signed-ca-out={}", ca_out.display()));
        }
        cmd.args(self.policies.iter().map(|p| format!("--policies={}", p.display())));
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("RUST_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                {
                    let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                    let _ = tx.send((addr("addr"), addr("metrics_addr")));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        let (addr, metrics_addr) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                let err = err_rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!("podguard serve did not start: {err}\n{}", logs.lock().unwrap().join("\n"));
            }
        };
        let cas = if self.self_signed { vec![std::fs::read_to_string(&ca_out).unwrap()] } else { self.cas };
        Webhook { child, addr, metrics_addr, cas, logs, _dir: self.dir }
    }
}

impl Webhook {
    /// A server with the default test setup.
    pub fn start() -> Self {
        Launch::new().start()
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:METRICS_PORT{path}`.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics_addr)
    }

    /// A new HTTPS client (its own connection pool) trusting the server's CA(s).
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    /// The admission address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's highest resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The builder of [`Webhook::client`], to change before building.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .tls_info(true)
            .timeout(Duration::from_secs(20));
        for ca in &self.cas {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
        }
        b
    }

    /// POSTs `body` to /validate.
    pub async fn post(&self, body: Vec<u8>) -> (reqwest::StatusCode, String) {
        let res = self
            .client()
            .post(self.url("/validate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// POSTs a fixture review and returns its `response`, checking the envelope.
    pub async fn review(&self, path: &str) -> serde_json::Value {
        self.review_body(fixture(path)).await
    }

    /// POSTs a review body and returns its `response`, checking the envelope.
    pub async fn review_body(&self, body: Vec<u8>) -> serde_json::Value {
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let (status, text) = self.post(body).await;
        assert_eq!(status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], sent["request"]["uid"], "uid echoed");
        v["response"].clone()
    }

    /// GETs a path of the metrics port.
    pub async fn metrics_get(&self, path: &str) -> String {
        reqwest::get(self.metrics_url(path)).await.unwrap().text().await.unwrap()
    }

    /// Log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(l) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(Instant::now() < deadline, "no log line with {needle}:\n{}", self.logs().join("\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "podguard did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `podguard serve` with `args` and environment, expecting it to exit at once.
pub fn serve_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podguard"))
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs the podguard binary with `args` and waits for it.
pub fn podguard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_podguard")).args(args).output().expect("run podguard")
}

/// What a run wrote on stdout.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a run wrote on stderr.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
