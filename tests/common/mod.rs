//! Starts the real `pushgateway` binary on a free loopback port and talks HTTP to it.
//!
//! Each [`Gateway`] is one child process, ended (by its own PID) when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Gateway {
    child: Child,
    pub address: String,
    /// Everything the process has logged so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
    client: reqwest::blocking::Client,
}

/// A response reduced to what the tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Gateway {
    /// Starts the gateway with `args` (plus a loopback listen address on a free port).
    pub fn start(args: &[&str]) -> Gateway {
        Gateway::start_with(args, |_| {})
    }

    /// Like [`Gateway::start`], letting `configure` adjust the command first.
    pub fn start_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Gateway {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pushgateway"));
        command
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command.spawn().expect("start pushgateway");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, receiver) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log_writer = log.clone();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log_writer.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
                if line.contains("Listening on address") {
                    if let Some(address) = line.split("address=").nth(1) {
                        if let Some(sender) = sender.take() {
                            let _ = sender.send(address.trim().trim_matches('"').to_string());
                        }
                    }
                }
                if std::env::var_os("GATEWAY_LOG").is_some() {
                    eprintln!("[gateway] {line}");
                }
            }
        });
        let address = match receiver.recv_timeout(Duration::from_secs(20)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not report its listen address");
            }
        };
        Gateway {
            child,
            address,
            log,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> Reply {
        self.request_with(method, path, body.as_bytes().to_vec(), &[])
    }

    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.text().expect("body");
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub fn put(&self, path: &str, body: &str) -> Reply {
        self.request("PUT", path, body)
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, body)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, "")
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, "")
    }

    /// The whole scrape body.
    pub fn scrape(&self) -> String {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "scrape failed: {}", reply.body);
        reply.body
    }

    /// The scrape without the gateway's own families, and with push time values replaced by
    /// `T` (non-zero) so states can be compared exactly.
    pub fn pushed_state(&self) -> String {
        normalize_pushed(&self.scrape())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Ends the process with SIGKILL, as a crash would, and waits for it.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most 30 s) for a graceful exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the PID of our own child process.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls `done` every 50 ms until it holds; fails the test naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the gateway with `args` expecting it to fail before listening; returns its exit
/// status and what it logged. Bounded: killed after 20 s.
pub fn start_expecting_failure(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg("--web.listen-address=127.0.0.1:0")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pushgateway");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "gateway kept running: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drops the gateway's own families from a scrape and replaces non-zero push times by `T`.
pub fn normalize_pushed(scrape: &str) -> String {
    let own = |line: &str| {
        let name = line
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        name.starts_with("pushgateway_") || name.starts_with("process_")
    };
    scrape
        .lines()
        .filter(|line| !own(line))
        .map(|line| {
            let is_time = line.starts_with("push_time_seconds{")
                || line.starts_with("push_failure_time_seconds{");
            match line.rsplit_once(' ') {
                Some((series, value)) if is_time && value != "0" => format!("{series} T"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sample lines of the scrape for one metric name (exact name before `{` or space).
pub fn samples(scrape: &str, name: &str) -> Vec<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            &line[..end] == name
        })
        .map(str::to_string)
        .collect()
}
