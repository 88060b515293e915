//! Attacks by one student on the service everyone shares, against real
//! `serve`, dockerd and slapd: a container that prints without newlines
//! followed in many tabs, terminal after terminal, an oversized WebSocket
//! message, an upload past axum's default body limit, a log that would
//! fill the host's disk. Each is held to its bound (docs/limits.md).

use berth_tests::fixture::World;
use berth_tests::{Services, http_raw, session_cookie};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
/// `console.max_log_streams` and `console.max_terminals` in these worlds.
const STREAMS: usize = 3;
const TERMINALS: usize = 2;

/// alice with a container that prints ~40 KB/s and never a newline, one
/// that idles, and a password; `serve` running.
fn world(s: &Services, first_port: u16) -> (World, berth_tests::fixture::Server, String, String) {
    let mut w = World::new(s, first_port);
    w.site_overrides.extra = format!(
        "console: {{ shell: [\"/bin/busybox\", \"sh\"], max_log_streams: {STREAMS}, max_terminals: {TERMINALS}, max_upload: 8Mi }}\n"
    );
    w.site_overrides.policy_extra = "  container_logs: { max_size: 1Mi, max_files: 2 }\n".into();
    let alice = w.student("na", "alice-pw");
    let image = &s.test_image;
    w.commit(
        &alice,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: idle, image: \"{image}\" }}\n  - name: noisy\n    image: \"{image}\"\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"while true; do /bin/busybox head -c 2000 /dev/zero | /bin/busybox tr '\\\\0' x; /bin/busybox sleep 0.05; done\"]\n"
        )),
        &w.mail(&alice),
    );
    w.apply(0);
    let server = w.serve();
    let auth = session_cookie(&server.addr, &alice, "alice-pw");
    (w, server, alice, auth)
}

/// Opens a request and reads the head; the stream stays open for the body.
fn open(addr: &str, head: &str) -> (u16, TcpStream) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, stream)
}

fn log_stream(addr: &str, auth: &str, container: &str) -> (u16, TcpStream) {
    open(
        addr,
        &format!(
            "GET /my/containers/{container}/logs/stream HTTP/1.1\r\nHost: {addr}\r\nCookie: {auth}\r\n\r\n"
        ),
    )
}

fn terminal(addr: &str, auth: &str, container: &str) -> (u16, TcpStream) {
    open(
        addr,
        &format!(
            "GET /my/containers/{container}/terminal/ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {auth}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
}

#[test]
fn output_without_newlines_reaches_the_page_in_bounded_lines_and_streams_are_capped() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (_w, server, alice, auth) = world(&s, 27400);
    let noisy = format!("{alice}--noisy");

    // The container never prints a newline: the page still gets lines,
    // each cut at the bound (before, it got nothing while serve's buffer
    // grew for as long as the page stayed open).
    let (code, mut stream) = log_stream(&server.addr, &auth, &noisy);
    assert_eq!(code, 200);
    let deadline = Instant::now() + WAIT;
    let mut body = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let line = loop {
        assert!(Instant::now() < deadline, "no log line within {WAIT:?}");
        if let Ok(n) = stream.read(&mut buf) {
            body.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&body);
        if let Some(l) = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|l| l.len() >= 1000)
        {
            break l.to_string();
        }
    };
    // Docker stamps each piece of its own (it splits at 16 KiB too).
    assert!(line.matches('x').count() > 15 * 1024, "{}", &line[..80]);
    assert_eq!(line.len(), 16 * 1024, "a line is cut at 16 KiB");

    // The account has STREAMS streams at most: this one and STREAMS-1 more;
    // the next is refused; closing one gives its place back.
    let mut held = vec![stream];
    for _ in 1..STREAMS {
        let (code, s) = log_stream(&server.addr, &auth, &noisy);
        assert_eq!(code, 200);
        held.push(s);
    }
    let (code, _) = log_stream(&server.addr, &auth, &noisy);
    assert_eq!(code, 429, "one stream past the bound");
    drop(held.pop());
    berth_tests::wait_for(WAIT, "a place given back", || {
        let (code, s) = log_stream(&server.addr, &auth, &noisy);
        (code == 200).then_some(s)
    });
    // And serve still answers everyone else.
    let (code, _) = http_raw(&server.addr, "GET", "/healthz", &[], b"").expect("healthz");
    assert_eq!(code, 200);
}

#[test]
fn terminals_are_capped_and_an_oversized_message_closes_the_socket() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (_w, server, alice, auth) = world(&s, 27500);
    let idle = format!("{alice}--idle");
    let mut held = Vec::new();
    for _ in 0..TERMINALS {
        let (code, s) = terminal(&server.addr, &auth, &idle);
        assert_eq!(code, 101, "a terminal within the bound");
        held.push(s);
    }
    let (code, _) = terminal(&server.addr, &auth, &idle);
    assert_eq!(code, 429, "one terminal past the bound");

    // A 1 MiB binary message (the bound is 256 KiB): a masked frame as a
    // browser sends it. The server closes the socket instead of reading it.
    let mut socket = held.pop().expect("a terminal");
    let payload = vec![b'a'; 1 << 20];
    let mut frame = vec![0x82u8, 0x80 | 127];
    frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    // Written from a thread: a server that stops reading must not block
    // the test in write_all.
    let mut writer = socket.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&frame);
        let _ = writer.write_all(&payload);
    });
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "the socket stayed open after an oversized message"
        );
        match socket.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            // A close frame (opcode 8) counts as closed too.
            Ok(n) if buf[..n].contains(&0x88) => break,
            _ => {}
        }
    }
    drop(socket);
    let _ = sender.join();
    // Its place comes back.
    berth_tests::wait_for(WAIT, "the terminal's place given back", || {
        let (code, s) = terminal(&server.addr, &auth, &idle);
        (code == 101).then_some(s)
    });
}

#[test]
fn an_upload_past_two_mebibytes_arrives_and_logs_rotate_at_the_sites_size() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, server, alice, auth) = world(&s, 27600);
    let idle = format!("{alice}--idle");

    // The upload form's CSRF token, then 3 MiB (axum's default limit was
    // 2 MiB, whatever console.max_upload said).
    let (_, page) = http_raw(
        &server.addr,
        "GET",
        &format!("/my/containers/{idle}/files"),
        &[("Cookie", &auth)],
        b"",
    )
    .expect("files page");
    let page = String::from_utf8_lossy(&page);
    let at = page.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    let csrf = &page[at..at + page[at..].find('"').expect("end")];
    let data = vec![b'z'; 3 << 20];
    let boundary = "berthboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"dir\"\r\n\r\n/www\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let (code, answer) = http_raw(
        &server.addr,
        "POST",
        &format!("/my/containers/{idle}/files"),
        &[
            ("Cookie", &auth),
            ("Content-Type", &content_type),
            ("Origin", &format!("http://{}", server.addr)),
        ],
        &body,
    )
    .expect("upload");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(code, 200, "{answer}");
    assert!(
        answer.contains("Uploaded big.bin (3145728 bytes)"),
        "{answer}"
    );
    let size = s.docker(&[
        "exec",
        &idle,
        "/bin/busybox",
        "stat",
        "-c",
        "%s",
        "/www/big.bin",
    ]);
    assert_eq!(String::from_utf8_lossy(&size.stdout).trim(), "3145728");

    // The host keeps at most max_files files of max_size of each log.
    let logs = w
        .inspect(&format!("{alice}--noisy"), "{{json .HostConfig.LogConfig}}")
        .expect("inspect");
    let logs: serde_json::Value = serde_json::from_str(&logs).expect("json");
    assert_eq!(logs["Type"], "json-file", "{logs}");
    assert_eq!(
        logs["Config"]["max-size"],
        (1u64 << 20).to_string(),
        "{logs}"
    );
    assert_eq!(logs["Config"]["max-file"], "2", "{logs}");
}

#[test]
fn a_student_added_to_the_directory_after_a_refused_push_is_accepted_at_the_next() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 28000);
    // Found accounts are believed for the site's TTL; nobody, only briefly
    // (10 s). A push inside those 10 s is refused again; the resync after
    // them takes the account's head (before, "nobody" stood for the TTL).
    w.site_overrides.ldap_cache_ttl = "10m".into();
    w.site_overrides.resync = "2s".into();
    let late = format!("{}late", w.prefix());
    let image = &s.test_image;
    let workspace = |n: u32| {
        format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{image}\", env: {{ N: \"{n}\" }} }}\n"
        )
    };
    w.commit(&late, Some(&workspace(1)), &w.mail(&late));
    let server = w.serve_with(&["--watch", &w.repos_dir().display().to_string()]);
    berth_tests::wait_for(WAIT, "the push refused: nobody by that name", || {
        (server.metric("berth_rejected_total{reason=\"unknown_account\"}") >= 1.0).then_some(())
    });
    assert_eq!(w.account("late", &["students"]), late);
    w.commit(&late, Some(&workspace(2)), &w.mail(&late));
    berth_tests::wait_for(WAIT, "the next push accepted and running", || {
        let env = w.inspect(
            &format!("{late}--web"),
            "{{.State.Running}} {{.Config.Env}}",
        )?;
        (env.starts_with("true") && env.contains("N=2")).then_some(())
    });
}
