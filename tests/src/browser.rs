//! A real headless Chromium driven over WebDriver (chromedriver, started
//! by `scripts/test.sh`), for the console's tests: pages are loaded,
//! clicked and typed into as a student would, and each is saved as a
//! screenshot under `target/screenshots/`.

use fantoccini::{Client, ClientBuilder, Locator};
use std::time::Duration;

pub struct Browser {
    pub client: Client,
    pub base: String,
}

/// Where screenshots go (`scripts/screenshots.sh` copies them to docs/).
pub fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

impl Browser {
    /// A new browser session against `base` (`http://127.0.0.1:PORT`), or
    /// `None` when no WebDriver is running (test skipped, unless required).
    pub async fn start(base: &str) -> Option<Browser> {
        Browser::start_with(base, &[]).await
    }

    /// [`Browser::start`] with more Chromium switches (a certificate to
    /// trust, say).
    pub async fn start_with(base: &str, switches: &[String]) -> Option<Browser> {
        let Ok(webdriver) = std::env::var("BERTH_WEBDRIVER") else {
            assert!(
                std::env::var("BERTH_E2E_REQUIRED").is_err(),
                "BERTH_E2E_REQUIRED is set but BERTH_WEBDRIVER is not"
            );
            return None;
        };
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1200,900",
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(switches);
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .expect("chromedriver gives a session");
        Some(Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("the page loads");
    }

    /// Logs in on the console's form and waits for the logged-in page.
    pub async fn log_in(&self, user: &str, password: &str, timeout: Duration) {
        self.goto("/login").await;
        self.fill("#username", user).await;
        self.fill("#password", password).await;
        self.click("#login").await;
        self.wait_text("Log out", timeout).await;
    }

    /// The text of the page's body.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the body's text contains `what`.
    pub async fn wait_text(&self, what: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = self.text().await;
            if text.contains(what) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page never showed `{what}`; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or(serde_json::Value::Null)
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.ok();
        field.send_keys(text).await.expect("typing");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Waits until a line of the console's terminal (xterm.js's buffer, as
    /// the student sees it) reads `line` (trimmed); `what` names it in the
    /// failure, which shows the whole terminal.
    pub async fn wait_terminal_line(&self, line: &str, what: &str, timeout: Duration) {
        const BUFFER: &str = "return (() => { const t = window.berthTerminal; if (!t) return ''; \
            const buf = t.buffer.active; let out = []; \
            for (let i = 0; i < buf.length; i++) { out.push(buf.getLine(i).translateToString(true)); } \
            return out.join('\\n'); })()";
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = self.eval(BUFFER).await;
            let text = text.as_str().unwrap_or_default().to_string();
            if text.lines().any(|l| l.trim() == line) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A cookie as the browser holds it (name, value, flags), if it does.
    pub async fn cookie_full(&self, name: &str) -> Option<fantoccini::cookies::Cookie<'static>> {
        self.client.get_named_cookie(name).await.ok()
    }

    /// The session cookie's value, for raw HTTP requests as the same user.
    pub async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .map(|c| c.value().to_string())
            .unwrap_or_default()
    }

    /// Saves the page as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }

    /// Saves the element `css` alone as `target/screenshots/<name>.png`.
    pub async fn screenshot_of(&self, css: &str, name: &str) {
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        let png = element.screenshot().await.expect("an element screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("saving the screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
