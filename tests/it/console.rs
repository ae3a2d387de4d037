//! The routing console in a real browser: Debian's headless Chromium driven over the W3C
//! WebDriver protocol by `chromedriver` (both installed by scripts/install-services.sh).
//! `switchyard demo` serves; the page must show the demo's three instances and a decision
//! after a request, and keep its layout (tables side by side, decisions below).
//!
//! With `SWITCHYARD_CONSOLE_SCREENSHOT=PATH` the test also saves a screenshot there (how
//! docs/img/console.png is made).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::http::post_json;
use switchyard_tests::{free_port, Proc};

use crate::chat;
use crate::plugins::wasm;

const TOKEN: &str = "console-test-token";

/// A chromedriver process and one headless Chromium session, both ended on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is missing: run scripts/install-services.sh (apt-get install chromium chromium-driver)");
        // From here on `drop` stops chromedriver, whatever fails below.
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
            {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900"]
            }
        }}});
        let created: Value = browser
            .http
            .post(format!("{}/session", browser.base))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        reply["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Re-evaluates `script` until it returns `true`; fails with `what` after 20 s.
    async fn until(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.eval(script).await != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "{what}; page text:\n{}",
                self.eval("return document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot_png(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(
                encoded
                    .as_str()
                    .unwrap_or_else(|| panic!("no screenshot: {encoded}")),
            )
            .unwrap()
    }
}

impl Drop for Browser {
    /// Ends the session first, so chromedriver quits Chromium: killing only chromedriver
    /// would leave the browser running, orphaned. A plain blocking request, since `drop`
    /// cannot await (and also runs when the test panics).
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://").to_owned();
        let session = !self.session.is_empty();
        if let (true, Ok(mut stream)) = (session, std::net::TcpStream::connect(&address)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                // The reply comes once the browser has quit.
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn the_console_shows_the_demo_instances_and_a_live_decision() {
    let port = free_port();
    let admin_port = free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let args: Vec<String> = [
        "demo",
        "--listen",
        "127.0.0.1:{port}",
        "--admin-listen",
        &admin_listen,
        "--plugin",
        &format!("scorer={}", wasm("least-loaded")),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut demo =
        Proc::spawn_with_env("demo", &args, port, &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)]).unwrap();
    demo.wait_ready("/live").await.unwrap();
    let browser = Browser::start().await;
    browser
        .go(&format!("http://{admin_listen}/console#token={TOKEN}"))
        .await;
    browser
        .until(
            "return document.querySelectorAll('#instances tr[data-instance]').length === 3",
            "the demo's three instances are not shown",
        )
        .await;
    browser
        .until(
            "return document.getElementById('status').textContent === 'live'",
            "the decision feed did not connect",
        )
        .await;
    assert_eq!(
        browser.eval("return location.hash").await,
        "",
        "the token must leave the address bar"
    );
    let (status, headers, _) = post_json(
        &format!("{}/v1/chat/completions", demo.url()),
        &chat("hello console", 4, false),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap();
    let picked = headers["x-switchyard-instance"].to_str().unwrap();
    browser
        .until(
            &format!(
                "const d = document.querySelector('#decisions .decision[data-request=\"{id}\"]'); \
                 return d !== null && d.querySelector('summary strong').textContent === '{picked}'"
            ),
            "the request's decision did not appear",
        )
        .await;
    // More traffic: every decision is listed, and the plugin's calls are counted.
    for n in 0..4 {
        let (status, _, _) = post_json(
            &format!("{}/v1/chat/completions", demo.url()),
            &chat(&format!("more {n}"), 4, false),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    browser
        .until(
            "return document.querySelectorAll('#decisions .decision').length === 5",
            "not every decision is listed",
        )
        .await;
    browser
        .until(
            "const row = document.querySelector('#plugins tr[data-plugin=\"least-loaded\"]'); \
             return row !== null && Number(row.children[4].textContent) >= 5",
            "the plugin's calls are not shown",
        )
        .await;
    // The instances' latency averages move once they have served (the demo's TTFT is 20 ms).
    browser
        .until(
            "return [...document.querySelectorAll('#instances tr[data-instance]')] \
               .some((row) => Number(row.children[7].textContent) > 0)",
            "no instance shows a TTFT average",
        )
        .await;
    // Layout: instances and plugins side by side, decisions below both.
    let layout = browser
        .eval(
            "const r = (s) => document.querySelector(s).closest('section').getBoundingClientRect(); \
             const i = r('#instances'), p = r('#plugins'), d = r('#decisions'); \
             return [i.left < p.left, Math.abs(i.top - p.top) < 2, d.top >= Math.max(i.bottom, p.bottom)]",
        )
        .await;
    assert_eq!(layout, json!([true, true, true]), "console layout changed");
    let png = browser.screenshot_png().await;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG screenshot"
    );
    if let Some(path) = std::env::var_os("SWITCHYARD_CONSOLE_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }
}
