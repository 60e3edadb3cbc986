//! A headless Chromium driven over the DevTools protocol, with nothing but the standard
//! library and `serde_json`: a minimal WebSocket client (RFC 6455, client side, no
//! extensions) carries the protocol's JSON messages.
//!
//! Chromium is `/usr/bin/chromium` (Debian's `chromium` package, which `.ci/run` installs) or
//! `$CHROMIUM`. When it cannot be started the test fails: it never skips.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Chromium binary the tests use.
pub fn chromium_binary() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The flags every headless run gets: no sandbox (CI runs as root), nothing fetched from the
/// network besides what the page asks for, a fresh profile.
pub fn headless_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--hide-scrollbars",
        "--lang=en-US",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One Chromium process and a DevTools session on its first page.
pub struct Browser {
    socket: WebSocket,
    // Dropped after the socket: ends Chromium.
    process: Process,
    next_id: u64,
    /// Protocol events received while waiting for answers, oldest first.
    pub events: Vec<Value>,
    // Dropped after the process has ended.
    _profile: TempDir,
}

impl Browser {
    /// Starts headless Chromium and attaches to its blank first page.
    pub fn launch() -> Browser {
        let binary = chromium_binary();
        let profile = TempDir::new("pushgateway-ui-chromium");
        let mut command = Command::new(&binary);
        command
            .args(headless_args(&profile.0))
            .arg("--remote-debugging-port=0")
            .arg("--window-size=1280,900")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Its own process group, so that dropping the browser ends its helper processes too.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot start {} ({error}); install Debian's `chromium` package (bash .ci/run does) or set CHROMIUM",
                binary.display()
            )
        });
        // From here on, a panic drops the guard, which ends Chromium.
        let mut process = Process(child);
        let stderr = process.0.stderr.take().expect("chromium stderr");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("CHROMIUM_LOG").is_some() {
                    eprintln!("[chromium] {line}");
                }
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    if let Some(sender) = sender.take() {
                        let _ = sender.send(Ok(url.trim().to_string()));
                    }
                } else if sender.is_some() {
                    log.push(line);
                }
            }
            if let Some(sender) = sender.take() {
                let _ = sender.send(Err(log.join("\n")));
            }
        });
        let browser_url = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(log)) => panic!("chromium exited before DevTools was listening:\n{log}"),
            Err(_) => panic!("chromium did not start DevTools within 60 s"),
        };
        // ws://127.0.0.1:PORT/devtools/browser/ID → the page targets at http://127.0.0.1:PORT/json.
        let host = browser_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("DevTools host")
            .to_string();
        let page_url = wait_for_page_target(&host);
        let socket = WebSocket::connect(&page_url);
        let mut browser = Browser {
            socket,
            process,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser
    }

    /// Sends a command and returns its `result`; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    /// Sends a command and returns its `result`, or the protocol's error.
    pub fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket.send(&message.to_string());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self
                .socket
                .receive(deadline)
                .unwrap_or_else(|| panic!("no answer to {method} within 30 s"));
            let message: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if message["id"] == json!(id) {
                return match message.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(message["result"].clone()),
                };
            }
            self.on_event(message);
        }
    }

    fn on_event(&mut self, message: Value) {
        if message["method"] == "Page.javascriptDialogOpening" {
            // A native confirm() (the page's fallback without <dialog>): accept it.
            self.next_id += 1;
            let accept = json!({"id": self.next_id, "method": "Page.handleJavaScriptDialog", "params": {"accept": true}});
            self.socket.send(&accept.to_string());
        }
        self.events.push(message);
    }

    /// Uncaught exceptions the page has thrown so far.
    pub fn exceptions(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Runtime.exceptionThrown")
            .map(|e| e["params"]["exceptionDetails"].to_string())
            .collect()
    }

    /// Evaluates a JavaScript expression in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("evaluating {expression} threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy; panics with the page's text after `timeout`.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // While a page loads there may be no document or no context to evaluate in:
            // that counts as "not yet".
            let answer = self.try_call(
                "Runtime.evaluate",
                json!({
                    "expression": format!("(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"),
                    "returnByValue": true,
                }),
            );
            if matches!(answer, Ok(ref result) if result["result"]["value"] == json!(true)) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "timed out waiting for {expression}; page text:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Loads `url` and waits until the page's script has run.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            "document.readyState === 'complete' && document.body && document.body.getAttribute('data-ready') === 'true'",
            Duration::from_secs(20),
        );
    }

    /// Reloads the page and waits until its script has run again.
    pub fn reload(&mut self) {
        self.eval("document.body.removeAttribute('data-ready'), true");
        self.call("Page.reload", json!({}));
        self.wait_for(
            "document.readyState === 'complete' && document.body && document.body.getAttribute('data-ready') === 'true'",
            Duration::from_secs(20),
        );
    }

    /// Clicks the centre of the first element matching `selector` with real mouse events,
    /// after scrolling it into view.
    pub fn click(&mut self, selector: &str) {
        let selector_js = serde_json::to_string(selector).unwrap();
        let point = self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector_js}); if (!el) return null; \
             el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect(); \
             if (r.width === 0 || r.height === 0) return null; \
             return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()"
        ));
        let (x, y) = match (point["x"].as_f64(), point["y"].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => panic!("no visible element matches {selector}"),
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }
}

/// The Chromium process, ended with its whole process group (which it leads) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.0.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The DevTools WebSocket URL of the first page, from `/json/list`.
fn wait_for_page_target(host: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(url) = http_get(host, "/json/list").and_then(|body| {
            let targets: Value = serde_json::from_str(&body).ok()?;
            targets
                .as_array()?
                .iter()
                .find(|t| t["type"] == "page")?
                .get("webSocketDebuggerUrl")?
                .as_str()
                .map(str::to_string)
        }) {
            return url;
        }
        if Instant::now() > deadline {
            panic!("chromium at {host} lists no page target");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.1 GET on the DevTools port (no proxy, no client library). Chromium keeps
/// the connection open, so the body is read by its `Content-Length`.
fn http_get(host: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0u8; length?];
    reader.read_exact(&mut body).ok()?;
    status
        .starts_with("HTTP/1.1 200")
        .then(|| String::from_utf8_lossy(&body).into_owned())
}

/// The client side of a WebSocket: text messages out (masked, as clients must), text
/// messages in (reassembled from fragments); pings are answered.
pub struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    /// Connects to `ws://host:port/path` and completes the opening handshake.
    pub fn connect(url: &str) -> WebSocket {
        let rest = url
            .strip_prefix("ws://")
            .unwrap_or_else(|| panic!("not a ws:// URL: {url}"));
        let (host, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let mut stream = TcpStream::connect(host).expect("connect to DevTools");
        stream.set_nodelay(true).ok();
        // No Origin header: Chromium accepts DevTools connections from non-browser clients.
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: cHVzaGdhdGV3YXktdWktdGVzdA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("send the WebSocket handshake");
        // Read the answer's head byte by byte so no frame bytes are consumed with it.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream
                .read_exact(&mut byte)
                .expect("read the WebSocket handshake");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "DevTools refused the WebSocket: {head}"
        );
        WebSocket { stream }
    }

    pub fn send(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes());
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x5a, 0x13, 0xc7, 0x2e];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .write_all(&frame)
            .expect("write to the DevTools WebSocket");
    }

    /// The next text message, or `None` once `deadline` has passed.
    pub fn receive(&mut self, deadline: Instant) -> Option<String> {
        let mut message = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream.set_read_timeout(Some(deadline - now)).ok()?;
            let mut header = [0u8; 2];
            match self.stream.read_exact(&mut header) {
                Ok(()) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(error) => panic!("DevTools WebSocket failed: {error}"),
            }
            // Once a frame has started, read it whole.
            self.stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .ok()?;
            let fin = header[0] & 0x80 != 0;
            let opcode = header[0] & 0x0f;
            let masked = header[1] & 0x80 != 0;
            let mut len = u64::from(header[1] & 0x7f);
            if len == 126 {
                let mut ext = [0u8; 2];
                self.read(&mut ext);
                len = u64::from(u16::from_be_bytes(ext));
            } else if len == 127 {
                let mut ext = [0u8; 8];
                self.read(&mut ext);
                len = u64::from_be_bytes(ext);
            }
            let mut mask = [0u8; 4];
            if masked {
                self.read(&mut mask);
            }
            let mut payload = vec![0u8; len as usize];
            self.read(&mut payload);
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Some(String::from_utf8(message).expect("UTF-8 text message"));
                    }
                }
                0x8 => panic!("DevTools closed the WebSocket"),
                0x9 => self.send_frame(0xA, &payload),
                _ => {}
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) {
        self.stream
            .read_exact(buf)
            .expect("read from the DevTools WebSocket");
    }
}
