//! `reconciler apply` as an admin sees it, against real dockerd: on a
//! terminal (a real PTY, through util-linux `script`) a live progress line
//! advances before the last account is done; with `--output json` one JSON
//! object per account arrives as each account finishes.

use berth_tests::Services;
use berth_tests::fixture::World;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

const ACCOUNTS: usize = 5;

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

#[test]
fn on_a_terminal_the_progress_line_advances_before_the_end() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let w = world(&s, 27100);
    // Writes site.yaml; the command itself runs under `script`'s PTY.
    drop(w.reconciler_command(&[]));
    let bin = berth_tests::fixture::reconciler_binary();
    let cmd = format!(
        "{} --config {} apply --concurrency 1",
        bin.display(),
        w.site_path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("DOCKER_HOST", &s.docker_host)
        .env("BERTH_LDAP_PASSWORD", &s.ldap_password)
        .env("COLUMNS", "160")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script runs");
    let mut out = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut progress_before_end = false;
    loop {
        let n = out.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !seen.contains("Apply:") && advanced(&seen) {
            progress_before_end = true;
        }
    }
    let status = child.wait().expect("exit");
    assert!(status.success(), "{seen}");
    assert!(
        progress_before_end,
        "no progress line before the end:\n{seen}"
    );
    assert!(seen.contains("Apply: "), "{seen}");
    assert!(seen.contains("\u{1b}["), "a terminal gets colour");
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
