//! Runs a command on a real terminal: util-linux `script` gives it a PTY
//! of a known width, and every byte the terminal got comes back, each
//! chunk also handed to a watcher the moment it arrives (to see a progress
//! line before the command ends).

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};

/// Runs `cmd` (its program, arguments and environment) on a PTY `cols`
/// wide; `watch` sees all bytes so far after each read.
pub fn run(cmd: &Command, cols: usize, mut watch: impl FnMut(&[u8])) -> (ExitStatus, Vec<u8>) {
    let words: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| quote(&w.to_string_lossy()))
        .collect();
    let line = format!("stty cols {cols} rows 30; exec {}", words.join(" "));
    let mut script = Command::new("script");
    script
        .args(["-qfec", &line, "/dev/null"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => script.env(key, v),
            None => script.env_remove(key),
        };
    }
    let mut child = script.spawn().expect("script runs");
    let mut out = child.stdout.take().expect("stdout");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = out.read(&mut buf).expect("read the terminal");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        watch(&bytes);
    }
    (child.wait().expect("exit"), bytes)
}

/// One shell word.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
