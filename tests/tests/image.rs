//! Berth's own container image (`packaging/Dockerfile`), built by the test
//! dockerd on the Debian base `scripts/test.sh` makes with debootstrap
//! (`BERTH_BASE_IMAGE`; no Docker Hub here), run there against the test
//! services as its unprivileged user: `/healthz` answers and a commit is
//! reconciled by the container.

use berth_tests::fixture::{World, reconciler_binary};
use berth_tests::{Services, stdout};
use std::path::Path;

/// Removes the serving container however the test ends.
struct Running<'a>(&'a Services, String);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.0.docker(&["rm", "-f", &self.1]);
    }
}

#[test]
fn the_image_serves_and_reconciles_as_an_unprivileged_user() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(base) = berth_tests::required_var(
        "BERTH_BASE_IMAGE",
        "the Debian base scripts/test.sh makes with debootstrap",
    ) else {
        return;
    };
    let mut w = World::new(&s, 29100);
    w.site_overrides.resync = "1s".into();

    // The build context is the directory holding the binary, as for a site.
    let context = w.dir.join("image");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::copy(reconciler_binary(), context.join("reconciler")).expect("binary");
    let tag = format!("berth-test/berth:{}", w.prefix());
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/Dockerfile");
    let built = s.docker(&[
        "build",
        "-q",
        "-f",
        &dockerfile.display().to_string(),
        "--build-arg",
        &format!("BASE={base}"),
        "-t",
        &tag,
        &context.display().to_string(),
    ]);
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let user = stdout(&s.docker(&["image", "inspect", "--format", "{{.Config.User}}", &tag]));
    assert_eq!(user, "10001:10001", "the image does not run as root");

    let a = w.account("img", &["students"]);
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: \"{}\" }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    // The site, repositories and state at the same paths inside; the state
    // is the image user's.
    let template = w.reconciler_command(&[]);
    std::fs::create_dir_all(w.state_dir()).expect("state");
    let chown = std::process::Command::new("chown")
        .args(["-R", "10001:10001"])
        .arg(w.state_dir())
        .status()
        .expect("chown");
    assert!(chown.success());
    let socket = s
        .docker_host
        .strip_prefix("unix://")
        .expect("a unix socket")
        .to_string();
    let gid = stdout(
        &std::process::Command::new("stat")
            .args(["-c", "%g", &socket])
            .output()
            .expect("stat"),
    );
    let port = berth_tests::fixture::free_port();
    let name = format!("berth-serve-{}", w.prefix());
    let dir = w.dir.display().to_string();
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--group-add",
        gid.trim(),
        "-v",
        &format!("{socket}:/var/run/docker.sock"),
        "-v",
        &format!("{dir}:{dir}"),
        "-e",
        "DOCKER_HOST=unix:///var/run/docker.sock",
        "-e",
        &format!("BERTH_CONFIG={}", w.site_path().display()),
    ]
    .map(String::from)
    .to_vec();
    for (k, v) in template.get_envs() {
        let (Some(k), Some(v)) = (k.to_str(), v.and_then(|v| v.to_str())) else {
            continue;
        };
        if k != "DOCKER_HOST" {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
    }
    args.extend([
        tag.clone(),
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = s.docker(&refs);
    assert!(
        started.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let _running = Running(&s, name.clone());
    let logs = || {
        stdout(&s.docker(&["logs", &name]))
            + &String::from_utf8_lossy(&s.docker(&["logs", &name]).stderr)
    };
    let answered = std::panic::catch_unwind(|| {
        berth_tests::wait_healthy(&format!("127.0.0.1:{port}"), "the image's /healthz");
        w.wait_running(&format!("{a}--web"));
    });
    if let Err(e) = answered {
        eprintln!("the serving container's log:\n{}", logs());
        std::panic::resume_unwind(e);
    }
    let _ = s.docker(&["rmi", "-f", &tag]);
}
