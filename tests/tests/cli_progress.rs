//! `reconciler apply` as an admin sees it, against real dockerd: on a
//! terminal (a real PTY, through util-linux `script`) a live progress line
//! advances before the last account is done; with `--output json` one JSON
//! object per account arrives as each account finishes. The README's
//! terminal pictures are taken here too.

use berth_tests::Services;
use berth_tests::fixture::World;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const ACCOUNTS: usize = 5;
/// The width of the PTY `apply` runs on and of the terminal that draws it.
const COLS: usize = 120;

fn world(s: &Services, first_port: u16) -> World {
    let mut w = World::new(s, first_port);
    for i in 0..ACCOUNTS {
        let a = w.account(&format!("g{i}"), &["students"]);
        w.commit(
            &a,
            Some(&format!(
                "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\" }}\n  - {{ name: two, image: \"{}\" }}\n",
                s.test_image, s.test_image
            )),
            &w.mail(&a),
        );
    }
    w
}

#[test]
fn json_output_streams_one_object_per_account_as_each_finishes() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let w = world(&s, 27000);
    let mut child = w
        .reconciler_command(&["apply", "--concurrency", "1", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("apply starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let still_running = child.try_wait().expect("wait").is_none();
    let mut objects = vec![first];
    objects.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("exit");
    assert!(status.success());
    assert!(
        still_running,
        "the first account's line came only at the end"
    );
    // Every account of ours (the shared dockerd may hold others' leftovers).
    assert!(objects.len() >= ACCOUNTS, "{objects:?}");
    for line in &objects {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["account"].is_string(), "{v}");
        if v["account"]
            .as_str()
            .is_some_and(|a| a.starts_with(&w.prefix()))
        {
            assert_eq!(v["errors"], serde_json::json!([]), "{v}");
        }
    }
    let ours = objects
        .iter()
        .filter(|l| l.contains(&format!("\"account\":\"{}", w.prefix())))
        .count();
    assert_eq!(ours, ACCOUNTS);
}

/// `apply` run on a real PTY (util-linux `script`): every byte the
/// terminal got, and how many of them it had when a progress line first
/// showed some but not all accounts done (`None`: never before the end).
struct PtyRun {
    bytes: Vec<u8>,
    progress_at: Option<usize>,
}

fn apply_on_a_pty(w: &World) -> PtyRun {
    let apply = w.reconciler_command(&["apply", "--concurrency", "1"]);
    let mut progress_at = None;
    let (status, bytes) = berth_tests::pty::run(&apply, COLS, |bytes| {
        let seen = String::from_utf8_lossy(bytes);
        if progress_at.is_none() && !seen.contains("Apply:") && advanced(&seen) {
            progress_at = Some(bytes.len());
        }
    });
    assert!(status.success(), "{}", String::from_utf8_lossy(&bytes));
    PtyRun { bytes, progress_at }
}

#[test]
fn on_a_terminal_the_progress_line_advances_before_the_end() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let w = world(&s, 27100);
    let run = apply_on_a_pty(&w);
    let seen = String::from_utf8_lossy(&run.bytes);
    assert!(
        run.progress_at.is_some(),
        "no progress line before the end:\n{seen}"
    );
    assert!(seen.contains("Apply: "), "{seen}");
    assert!(seen.contains("\u{1b}["), "a terminal gets colour");
}

/// The README's pictures: what a terminal shows for a coloured `diff` and
/// for `apply` midway, rendered by xterm.js (the terminal the console
/// ships) in real Chromium and saved as `target/screenshots/cli-*.png`.
#[tokio::test(flavor = "multi_thread")]
async fn terminal_screenshots_of_a_coloured_diff_and_an_apply_in_progress() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let dir = berth_tests::browser::screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let Some(browser) =
        berth_tests::browser::Browser::start(&format!("file://{}", dir.display())).await
    else {
        return;
    };
    let w = world(&s, 27200);
    let run = tokio::task::block_in_place(|| apply_on_a_pty(&w));
    assert!(run.progress_at.is_some(), "a progress line before the end");
    let cut = last_bar_before_the_end(&run.bytes);

    // One account's container changes, one loses a container, one gains one.
    let accounts: Vec<String> = (0..3).map(|i| format!("{}g{i}", w.prefix())).collect();
    let image = &s.test_image;
    let changes = [
        format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", env: {{ GREETING: hello }} }}\n  - {{ name: two, image: \"{image}\" }}\n"
        ),
        format!("version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\" }}\n"),
        format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\" }}\n  - {{ name: two, image: \"{image}\" }}\n  - {{ name: three, image: \"{image}\", ports: [8080] }}\n"
        ),
    ];
    for (a, yaml) in accounts.iter().zip(&changes) {
        w.commit(a, Some(yaml), &w.mail(a));
    }
    let diff = w.reconciler(&["--color", "always", "diff"]);
    assert_eq!(diff.status.code(), Some(1), "diff finds changes");
    let text = String::from_utf8_lossy(&diff.stdout).to_string();
    for mark in ["\u{1b}[32m", "\u{1b}[33m", "\u{1b}[31m", "Plan:"] {
        assert!(text.contains(mark), "{mark:?} missing from:\n{text}");
    }

    let shown = render(&browser, &dir, "cli-diff", text.as_bytes(), true).await;
    assert!(shown.contains("Plan: 1 to create"), "{shown}");
    let shown = render(&browser, &dir, "cli-apply", &run.bytes[..cut], false).await;
    assert!(shown.contains(" accounts"), "{shown}");
    browser.close().await;
}

/// Writes `bytes` to an xterm.js terminal in a page of its own, waits
/// until it has drawn them, saves the terminal as `<name>.png` and returns
/// the text of its rows.
async fn render(
    browser: &berth_tests::browser::Browser,
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
    convert_eol: bool,
) -> String {
    use base64::Engine;
    let xterm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reconciler/src/edges/console/assets/vendor/xterm")
        .canonicalize()
        .expect("vendored xterm.js");
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="file://{x}/xterm.css"><script src="file://{x}/xterm.js"></script>
<style>body {{ margin: 0; background: #1e1e1e; }} #t {{ display: inline-block; padding: 10px; background: #000; }}
.xterm-viewport {{ overflow: hidden !important; }} .xterm .scrollbar {{ display: none !important; }}</style>
</head><body><div id="t"></div><script>
const bytes = Uint8Array.from(atob("{data}"), c => c.charCodeAt(0));
const term = new Terminal({{ cols: {COLS}, rows: 60, convertEol: {convert_eol}, fontSize: 13 }});
term.open(document.getElementById("t"));
term.write(bytes, () => {{
  // As many rows as were written (scrollback included), no more.
  const b = term.buffer.active;
  term.resize({COLS}, Math.max(4, Math.min(b.baseY + b.cursorY + 1, 60)));
  document.body.dataset.drawn = "yes";
}});
</script></body></html>"#,
        x = xterm.display(),
        data = base64::engine::general_purpose::STANDARD.encode(bytes),
    );
    std::fs::write(dir.join(format!("{name}.html")), page).expect("page");
    browser.goto(&format!("/{name}.html")).await;
    // Parsed (the write callback), then painted (the rows have text).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let shown = loop {
        let text = browser
            .eval(
                "return document.body.dataset.drawn === 'yes' \
                 ? document.querySelector('.xterm-rows').innerText : ''",
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !text.trim().is_empty() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "xterm.js never drew {name}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    browser.screenshot_of("#t", name).await;
    let _ = std::fs::remove_file(dir.join(format!("{name}.html")));
    shown
}

/// How many bytes the terminal had when the last progress line before the
/// closing line was fully drawn: the fullest "in progress" picture.
fn last_bar_before_the_end(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let end = text.find("Apply:").unwrap_or(text.len());
    let drawn = text[..end]
        .match_indices(" left")
        .map(|(i, _)| i + " left".len())
        .filter(|i| advanced(&text[..*i]))
        .last()
        .unwrap_or(end);
    // Lossy decoding may have widened invalid bytes; map back by prefix.
    text[..drawn].len().min(bytes.len())
}

/// Whether a progress line shows some but not all accounts done.
fn advanced(text: &str) -> bool {
    text.split("] ").skip(1).any(|rest| {
        let Some((count, _)) = rest.split_once(" accounts") else {
            return false;
        };
        match count.split_once('/') {
            Some((done, total)) => match (done.parse::<usize>(), total.parse::<usize>()) {
                (Ok(d), Ok(t)) => d >= 1 && d < t,
                _ => false,
            },
            None => false,
        }
    })
}
