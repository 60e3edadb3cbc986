//! `--web.config.file` and `--web.systemd-socket` against the real binary: HTTPS with a
//! certificate made here (rcgen), client certificates, basic auth (and a password changed
//! while running), the configured response headers, the rate limit, bad files stopping
//! start-up, and sockets passed the way systemd passes them.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Gateway;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use reqwest::blocking::{Client, RequestBuilder};

/// A folder of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("pgw-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8 path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its key, in PEM.
struct Pair {
    cert: String,
    key: String,
}

impl Pair {
    /// What reqwest takes as a client identity: key and certificate in one PEM.
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert, self.key).as_bytes())
            .expect("identity")
    }
}

/// A self-signed server certificate for 127.0.0.1 and localhost.
fn server_pair() -> Pair {
    let key = KeyPair::generate().expect("key");
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    Pair {
        cert: params.self_signed(&key).expect("self-signed").pem(),
        key: key.serialize_pem(),
    }
}

/// A CA, and a client certificate it signed.
fn client_ca_and_pair() -> (Pair, Pair) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = Pair {
        cert: ca_params.self_signed(&ca_key).expect("CA").pem(),
        key: ca_key.serialize_pem(),
    };
    let issuer = Issuer::new(ca_params, ca_key);
    let client_key = KeyPair::generate().expect("key");
    let client_params = CertificateParams::new(vec!["client.example".to_string()]).unwrap();
    let client = Pair {
        cert: client_params
            .signed_by(&client_key, &issuer)
            .expect("signed")
            .pem(),
        key: client_key.serialize_pem(),
    };
    (ca, client)
}

/// An HTTPS client that trusts only `root` (and offers `identity`), with no pooled
/// connections, so every request makes a new TLS handshake.
fn https_client(root: &str, identity: Option<reqwest::Identity>) -> Client {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).expect("root"))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().expect("client")
}

fn http_client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Status and body; panics if no HTTP answer came at all.
fn send(request: RequestBuilder) -> (u16, String) {
    let response = request.send().expect("an HTTP answer");
    let status = response.status().as_u16();
    (status, response.text().expect("body"))
}

fn tls_config(dir: &TempDir, server: &Pair, extra: &str) -> String {
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    // Relative paths are taken from the config file's folder, as upstream does.
    dir.write(
        "web.yml",
        &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
    )
}

#[test]
fn tls_serves_pushes_and_scrapes_and_refuses_plain_http() {
    let dir = TempDir::new("tls");
    let server = server_pair();
    let config = tls_config(&dir, &server, "");
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let client = https_client(&server.cert, None);
    let base = format!("https://{}", gateway.address);

    let (status, body) = send(
        client
            .put(format!("{base}/metrics/job/secure"))
            .body("over_tls 1\n"),
    );
    assert_eq!(status, 200, "{body}");
    let (status, scrape) = send(client.get(format!("{base}/metrics")));
    assert_eq!(status, 200);
    assert!(
        scrape.contains("over_tls{instance=\"\",job=\"secure\"} 1"),
        "{scrape}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = http_client()
        .get(format!("http://{}/metrics", gateway.address))
        .send();
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    // A client that does not trust the certificate cannot connect either.
    let other = server_pair();
    let untrusting = https_client(&other.cert, None)
        .get(format!("{base}/-/healthy"))
        .send();
    assert!(untrusting.is_err(), "{untrusting:?}");
}

#[test]
fn renewed_certificates_apply_to_new_connections() {
    let dir = TempDir::new("renew");
    let old = server_pair();
    let config = tls_config(&dir, &old, "");
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let url = format!("https://{}/-/healthy", gateway.address);
    assert_eq!(send(https_client(&old.cert, None).get(&url)).0, 200);

    let new = server_pair();
    dir.write("server.crt", &new.cert);
    dir.write("server.key", &new.key);
    assert_eq!(send(https_client(&new.cert, None).get(&url)).0, 200);
    let stale = https_client(&old.cert, None).get(&url).send();
    assert!(stale.is_err(), "the old certificate is still served");
}

#[test]
fn client_certificates_are_checked_against_the_client_ca() {
    let dir = TempDir::new("mtls");
    let server = server_pair();
    let (ca, client) = client_ca_and_pair();
    dir.write("ca.crt", &ca.cert);
    let config = tls_config(
        &dir,
        &server,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let url = format!("https://{}/-/healthy", gateway.address);

    let (status, body) = send(https_client(&server.cert, Some(client.identity())).get(&url));
    assert_eq!((status, body.as_str()), (200, "OK"));
    let without = https_client(&server.cert, None).get(&url).send();
    assert!(without.is_err(), "answered without a client certificate");
    // A certificate from another CA (here: self-signed) is refused too.
    let stranger = server_pair();
    let foreign = https_client(&server.cert, Some(stranger.identity()))
        .get(&url)
        .send();
    assert!(foreign.is_err(), "answered a certificate from another CA");
}

#[test]
fn optional_client_certificates_must_still_verify_when_given() {
    let dir = TempDir::new("mtls-optional");
    let server = server_pair();
    let (ca, client) = client_ca_and_pair();
    dir.write("ca.crt", &ca.cert);
    let config = tls_config(
        &dir,
        &server,
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n",
    );
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let url = format!("https://{}/-/healthy", gateway.address);

    assert_eq!(send(https_client(&server.cert, None).get(&url)).0, 200);
    assert_eq!(
        send(https_client(&server.cert, Some(client.identity())).get(&url)).0,
        200
    );
    let stranger = server_pair();
    let foreign = https_client(&server.cert, Some(stranger.identity()))
        .get(&url)
        .send();
    assert!(foreign.is_err(), "answered a certificate from another CA");
}

/// A bcrypt hash at the lowest cost, so the tests stay quick in a debug build.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

fn users_config(users: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         Content-Security-Policy: default-src 'self'\nbasic_auth_users:\n",
    );
    for (user, password) in users {
        text.push_str(&format!("  {user}: '{}'\n", hash(password)));
    }
    text
}

#[test]
fn basic_auth_guards_every_endpoint_and_follows_the_file() {
    let dir = TempDir::new("auth");
    let config = dir.write(
        "web.yml",
        &users_config(&[("alice", "wonderland"), ("bob", "builder")]),
    );
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let client = http_client();
    let url = |path: &str| format!("http://{}{path}", gateway.address);
    let scrape = |user: &str, password: &str| {
        client
            .get(url("/metrics"))
            .basic_auth(user, Some(password))
            .send()
            .expect("answer")
    };

    // Without credentials: 401 with a Basic challenge, and the configured headers.
    let refused = client.get(url("/metrics")).send().expect("answer");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Basic");
    assert_eq!(refused.headers()["x-frame-options"], "deny");
    assert_eq!(
        refused.headers()["content-security-policy"],
        "default-src 'self'"
    );
    // Every endpoint, unknown paths and health checks included.
    for path in ["/-/healthy", "/-/ready", "/api/v1/status", "/no/such/page"] {
        assert_eq!(
            client.get(url(path)).send().unwrap().status().as_u16(),
            401,
            "{path}"
        );
    }
    let (status, _) = send(client.put(url("/metrics/job/anon")).body("anon 1\n"));
    assert_eq!(status, 401);

    assert_eq!(scrape("alice", "wrong").status().as_u16(), 401);
    assert_eq!(scrape("mallory", "wonderland").status().as_u16(), 401);
    let allowed = scrape("alice", "wonderland");
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(allowed.headers()["x-frame-options"], "deny");
    let scraped = allowed.text().unwrap();
    assert!(!scraped.contains("anon"), "a refused push was stored");
    // A verdict cached for alice's password opens nothing for bob, and an unknown user is
    // refused even with the password of the dummy hash unknown users are checked against.
    assert_eq!(scrape("bob", "wonderland").status().as_u16(), 401);
    assert_eq!(scrape("mallory", "no such user").status().as_u16(), 401);
    assert_eq!(scrape("bob", "builder").status().as_u16(), 200);
    let (status, _) = send(
        client
            .put(url("/metrics/job/authed"))
            .basic_auth("bob", Some("builder"))
            .body("authed 1\n"),
    );
    assert_eq!(status, 200);

    // A new password applies without a restart; the old one stops working.
    dir.write("web.yml", &users_config(&[("alice", "looking-glass")]));
    assert_eq!(scrape("alice", "wonderland").status().as_u16(), 401);
    assert_eq!(scrape("bob", "builder").status().as_u16(), 401);
    let allowed = scrape("alice", "looking-glass");
    assert_eq!(allowed.status().as_u16(), 200);
    assert!(allowed.text().unwrap().contains("authed{"));
}

#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    // A cost that makes one check clearly slower than a request.
    let dir = TempDir::new("timing");
    let stored = bcrypt::hash("secret", 9).expect("bcrypt");
    let config = dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  alice: '{stored}'\n"),
    );
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let client = http_client();
    let url = format!("http://{}/-/healthy", gateway.address);
    let time = |user: &str, password: &str| {
        let start = Instant::now();
        let response = client
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .expect("answer");
        assert_eq!(response.status().as_u16(), 401);
        start.elapsed()
    };
    // Fresh passwords each time, so no verdict comes from the cache.
    let mut wrong = Duration::ZERO;
    let mut unknown = Duration::ZERO;
    for round in 0..3 {
        wrong += time("alice", &format!("wrong-{round}"));
        unknown += time(&format!("nobody-{round}"), &format!("guess-{round}"));
    }
    assert!(
        unknown * 3 > wrong && wrong * 3 > unknown,
        "wrong password: {wrong:?}, unknown user: {unknown:?}"
    );
    // And a cached verdict is quick: the same wrong password again.
    let start = Instant::now();
    time("alice", "wrong-0");
    assert!(
        start.elapsed() * 3 < wrong / 3,
        "{:?} vs {wrong:?}",
        start.elapsed()
    );
}

#[test]
fn rate_limit_refuses_past_the_burst() {
    let dir = TempDir::new("rate");
    let config = dir.write("web.yml", "rate_limit:\n  interval: 1h\n  burst: 2\n");
    let gateway = Gateway::start(&[&format!("--web.config.file={config}")]);
    let client = http_client();
    let url = format!("http://{}/-/healthy", gateway.address);
    assert_eq!(send(client.get(&url)).0, 200);
    assert_eq!(send(client.get(&url)).0, 200);
    assert_eq!(send(client.get(&url)).0, 429);
}

/// Runs the binary to its end (at most 20 s) and returns its exit status and log.
fn run_to_exit(command: &mut Command) -> (ExitStatus, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pushgateway");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pushgateway did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    (status, log)
}

fn gateway_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushgateway"));
    command
        .arg("--web.listen-address=127.0.0.1:0")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
    command
}

#[test]
fn a_bad_config_file_stops_startup_naming_the_file_and_the_problem() {
    let dir = TempDir::new("bad");
    let server = server_pair();
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    let other = server_pair();
    dir.write("other.key", &other.key);
    let tls = "tls_server_config:\n  cert_file: server.crt\n";
    let cases = [
        (
            "unknown-key.yml",
            "basic_auth_user:\n  a: b\n".to_string(),
            "unknown field `basic_auth_user`",
        ),
        (
            "tls10.yml",
            format!("{tls}  key_file: server.key\n  min_version: TLS10\n"),
            "min_version TLS10 is not supported",
        ),
        (
            "cipher.yml",
            format!("{tls}  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
            "is not supported (supported: TLS_ECDHE",
        ),
        (
            "no-key.yml",
            format!("{tls}  key_file: missing.key\n"),
            "cannot read key_file",
        ),
        (
            "wrong-key.yml",
            format!("{tls}  key_file: other.key\n"),
            "certificate and key",
        ),
        (
            "hash.yml",
            "basic_auth_users:\n  alice: plain-text\n".to_string(),
            "not a bcrypt hash",
        ),
        (
            "header.yml",
            "http_server_config:\n  headers:\n    Server: x\n".to_string(),
            "can not be configured (only",
        ),
    ];
    for (name, text, problem) in cases {
        let path = dir.write(name, &text);
        let (status, log) = run_to_exit(gateway_command().arg(format!("--web.config.file={path}")));
        assert!(!status.success(), "{name}: started anyway");
        assert!(
            log.contains(&path),
            "{name}: the log does not name the file:\n{log}"
        );
        assert!(
            log.contains(problem),
            "{name}: the log does not say {problem:?}:\n{log}"
        );
    }
    let missing = dir.0.join("absent.yml");
    let (status, log) =
        run_to_exit(gateway_command().arg(format!("--web.config.file={}", missing.display())));
    assert!(!status.success());
    assert!(
        log.contains("absent.yml") && log.contains("cannot read it"),
        "{log}"
    );
}

/// The binary with `listener` as fd 3 and `LISTEN_FDS=1`, `LISTEN_PID=<its own pid>`, as
/// systemd starts a socket-activated service. A shell sets `LISTEN_PID` to its own pid, then
/// `exec`s the gateway, which keeps that pid.
fn start_socket_activated(listener: &std::net::TcpListener, args: &[&str]) -> Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_pushgateway"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("GATEWAY_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // Already in place: only keep it open across exec.
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("start pushgateway")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn systemd_socket_activation_serves_on_the_passed_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().unwrap();
    // The listen address is the passed socket's own: binding it would fail, so the gateway
    // must be using the socket it was handed.
    let child = Killed(start_socket_activated(
        &listener,
        &[
            "--web.systemd-socket",
            &format!("--web.listen-address={address}"),
        ],
    ));
    drop(listener);
    let client = http_client();
    let (status, body) = send(
        client
            .put(format!("http://{address}/metrics/job/activated"))
            .body("activated 1\n"),
    );
    assert_eq!(status, 200, "{body}");
    let (_, scrape) = send(client.get(format!("http://{address}/metrics")));
    assert!(scrape.contains("activated{"), "{scrape}");
    drop(child);
}

#[test]
fn systemd_socket_without_sockets_stops_startup() {
    let (status, log) = run_to_exit(gateway_command().arg("--web.systemd-socket"));
    assert!(!status.success());
    assert!(
        log.contains("no sockets passed by systemd") && log.contains("LISTEN_PID is not set"),
        "{log}"
    );
    // Sockets meant for another process (LISTEN_PID of the parent) are not taken.
    let (status, log) = run_to_exit(
        gateway_command()
            .arg("--web.systemd-socket")
            .env("LISTEN_PID", std::process::id().to_string())
            .env("LISTEN_FDS", "1"),
    );
    assert!(!status.success());
    assert!(log.contains("not this process"), "{log}");
}
