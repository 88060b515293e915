//! The Debian package (`cargo deb -p berth-reconciler`, metadata in
//! `reconciler/Cargo.toml`, files in `packaging/`): built, installed with
//! `dpkg -i` on this machine, its unit checked with `systemd-analyze
//! verify`, and — systemd is not PID 1 here, so the unit cannot start —
//! its `ExecStart` line run by hand as the package's user, against the test
//! services, until it answers `/healthz` and reconciles a commit.
//!
//! The package is built from the dev profile's binary (cargo-deb warns):
//! a release build would add minutes to every run, and what is tested is
//! the package's shape, user, files and unit, not the optimiser.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools_present() -> bool {
    let deb = Command::new("cargo").args(["deb", "--version"]).output();
    let present = deb.is_ok_and(|o| o.status.success())
        && Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok()
        && Command::new("dpkg").arg("--version").output().is_ok();
    if !present {
        assert!(
            std::env::var_os("BERTH_E2E_REQUIRED").is_none(),
            "cargo-deb, systemd-analyze or dpkg is missing (scripts/test.sh installs them)"
        );
        eprintln!("skipped: cargo-deb, systemd-analyze or dpkg missing");
    }
    present
}

/// Removes the package however the test ends (the machine keeps no berth).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "berth"]).output();
    }
}

#[test]
fn the_package_installs_a_hardened_unit_and_its_command_serves() {
    let Some(s) = Services::from_env() else {
        return;
    };
    if !tools_present() {
        return;
    }
    let mut w = World::new(&s, 29000);
    w.site_overrides.resync = "1s".into();
    let out_dir = w.dir.join("deb");
    ok(Command::new("cargo")
        .args([
            "deb",
            "-p",
            "berth-reconciler",
            "--profile",
            "dev",
            "--no-build",
            "-o",
        ])
        .arg(&out_dir)
        .current_dir(root()));
    let deb = std::fs::read_dir(&out_dir)
        .expect("package dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let _installed = Installed;
    ok(Command::new("dpkg").arg("-i").arg(&deb));

    // What the package put in place.
    let version = ok(Command::new("/usr/bin/reconciler").arg("--version"));
    assert!(version.starts_with("reconciler 0."), "{version}");
    ok(Command::new("getent").args(["passwd", "berth"]));
    let groups = ok(Command::new("id").args(["-nG", "berth"]));
    assert!(groups.split_whitespace().any(|g| g == "docker"), "{groups}");
    let state = std::fs::metadata("/var/lib/berth").expect("/var/lib/berth");
    assert_eq!(state.permissions().mode() & 0o777, 0o700);
    let env = std::fs::metadata("/etc/berth/berth.env").expect("berth.env");
    assert_eq!((env.permissions().mode() & 0o777, env.uid()), (0o600, 0));
    let site = std::fs::metadata("/etc/berth/site.yaml").expect("site.yaml");
    assert_eq!(site.permissions().mode() & 0o777, 0o640);
    let conffiles = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "berth"]));
    assert!(conffiles.contains("/etc/berth/site.yaml"), "{conffiles}");
    assert!(conffiles.contains("/etc/berth/berth.env"), "{conffiles}");
    // The example site the package ships validates.
    ok(Command::new("/usr/bin/reconciler").args(["validate", "/etc/berth/site.yaml"]));

    // The unit, as systemd reads it, and its hardening.
    let unit_path = "/lib/systemd/system/berth.service";
    ok(Command::new("systemd-analyze").args(["verify", unit_path]));
    let unit = std::fs::read_to_string(unit_path).expect("unit");
    for line in [
        "User=berth",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/berth",
        "NoNewPrivileges=true",
        "EnvironmentFile=/etc/berth/berth.env",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} not in the unit");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words: Vec<String> = exec.split_whitespace().map(String::from).collect();
    // Its own port here: the unit's 8080 may be taken on a test machine.
    let port = berth_tests::fixture::free_port();
    let listen = words
        .iter()
        .position(|w| w == "--listen")
        .expect("--listen");
    words[listen + 1] = format!("127.0.0.1:{port}");

    // Run as the unit would: its user, its environment file's variables
    // (BERTH_CONFIG pointing at this test's site), state it may write.
    let a = w.account("pkg", &["students"]);
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\" }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    let template = w.reconciler_command(&[]);
    std::fs::create_dir_all(w.state_dir()).expect("state dir");
    ok(Command::new("chown")
        .args(["-R", "berth:berth"])
        .arg(w.state_dir()));
    let mut serve = Command::new("/usr/sbin/runuser");
    serve
        .args(["-u", "berth", "--"])
        .args(&words)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("BERTH_CONFIG", w.site_path())
        .envs(template.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = serve.spawn().expect("runuser");
    let answered = std::panic::catch_unwind(|| {
        berth_tests::wait_healthy(
            &format!("127.0.0.1:{port}"),
            "the installed serve's /healthz",
        );
        w.wait_running(&format!("{a}--web"));
    });
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    if let Err(e) = answered {
        std::panic::resume_unwind(e);
    }
    // What it wrote belongs to its user.
    let store = std::fs::metadata(w.state_dir().join("berth.sqlite3")).expect("store");
    let berth_uid: u32 = stdout(
        &Command::new("id")
            .args(["-u", "berth"])
            .output()
            .expect("id"),
    )
    .trim()
    .parse()
    .expect("uid");
    assert_eq!(store.uid(), berth_uid);
}
