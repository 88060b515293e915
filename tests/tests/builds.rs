//! Images built from the student's repository: real git, a real
//! `docker-registry` behind Berth's token service, real dockerd builds.
//! The test image has no `/bin/sh`, so `RUN` steps use busybox in exec form.

use berth_tests::Services;
use berth_tests::fixture::{REGISTRY_PASSWORD, REGISTRY_USER, World, free_port};
use berth_tests::registry::TokenRegistry;
use berth_tests::stdout;
use std::path::Path;

/// A world whose registry trusts Berth, with `base:1` (the test image)
/// pushed into `owner`'s namespace.
fn world(
    s: &Services,
    first_port: u16,
    owner_short: &str,
    options: impl FnOnce(&mut berth_tests::fixture::SiteOptions),
) -> (World, String, String, TokenRegistry) {
    let mut w = World::new(s, first_port);
    options(&mut w.site_overrides);
    let host = TokenRegistry::reserve();
    w.site_overrides.registry = Some(host.clone());
    w.site_overrides.registry_token = true;
    w.site_overrides.serve_port = Some(free_port());
    let owner = w.account(owner_short, &["students"]);
    let registry = TokenRegistry::start(&w, &host);
    (w, host, owner, registry)
}

/// Pushes the test image as `<host>/<owner>/base:1`, logged in as Berth.
fn push_base(w: &World, registry: &TokenRegistry, host: &str, owner: &str) -> String {
    let server = w.serve();
    let cli = registry.client(w, "berth");
    let login = cli.login(REGISTRY_USER, REGISTRY_PASSWORD);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let base = format!("{host}/{owner}/base:1");
    assert!(
        w.services
            .docker(&["tag", &w.services.test_image, &base])
            .status
            .success()
    );
    let push = cli.run(&["push", &base]);
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    drop(server);
    base
}

fn write(work: &Path, path: &str, text: &str) {
    let file = work.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
    std::fs::write(file, text).expect("write");
}

/// A Dockerfile from `base` whose RUN step runs `script` with busybox.
fn dockerfile(base: &str, script: &str) -> String {
    format!("FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n")
}

fn workspace(host: &str, account: &str) -> String {
    format!(
        "version: 1\nimages:\n  build:\n    - {{ name: tools, context: docker/tools }}\ncontainers:\n  - {{ name: web, image: \"{host}/{account}/tools:latest\" }}\n"
    )
}

/// Commits `account`'s workspace with its `tools` image built from `base`
/// running `script`.
fn commit_tools(w: &World, host: &str, account: &str, base: &str, script: &str) {
    w.commit_with(account, &w.mail(account), |work| {
        write(work, "workspace.yaml", &workspace(host, account));
        write(work, "docker/tools/Dockerfile", &dockerfile(base, script));
    });
}

fn exec(w: &World, container: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", container];
    all.extend_from_slice(args);
    stdout(&w.services.docker(&all)).trim().to_string()
}

fn image_of(w: &World, container: &str) -> String {
    w.inspect(container, "{{.Config.Image}}")
        .unwrap_or_default()
}

fn audit_count(w: &World, account: &str, event: &str) -> usize {
    let out = w.reconciler(&["audit", "--account", account, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    v["entries"]
        .as_array()
        .or_else(|| v.as_array())
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == event)
        .count()
}

fn last_error(w: &World, account: &str) -> String {
    w.status(account)["last_error"].to_string()
}

#[test]
fn alice_builds_her_image_runs_it_and_rebuilds_only_on_change() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (mut w, host, alice, registry) = world(&s, 25600, "ba", |_| {});
    let base = push_base(&w, &registry, &host, &alice);
    let web = format!("{alice}--web");

    w.commit_with(&alice, &w.mail(&alice), |work| {
        write(work, "workspace.yaml", &workspace(&host, &alice));
        write(
            work,
            "docker/tools/Dockerfile",
            &dockerfile(&base, "echo v1 > /www/built.txt"),
        );
        write(work, "docker/tools/.dockerignore", "secret.txt\n");
        write(work, "docker/tools/secret.txt", "not for the image\n");
    });
    // On a terminal the live view names the build and its Dockerfile step
    // while it runs, then a line says it was built.
    let (status, bytes) = berth_tests::pty::run(&w.reconciler_command(&["apply"]), 160, |_| {});
    let screen = String::from_utf8_lossy(&bytes);
    assert!(status.success(), "{screen}");
    let image = format!("{host}/{alice}/tools");
    for shown in [
        format!("{alice}: building {image} · Step "),
        format!("{alice}: built {image} in "),
    ] {
        assert!(
            screen.contains(&shown),
            "no `{shown}` on the terminal:\n{screen}"
        );
    }
    let first = image_of(&w, &web);
    assert!(
        first.starts_with(&format!("{host}/{alice}/tools@sha256:")),
        "the container runs the pinned build: {first}\n{}\n{}",
        w.status(&alice),
        registry.log()
    );
    assert_eq!(
        exec(&w, &web, &["/bin/busybox", "cat", "/www/built.txt"]),
        "v1"
    );
    assert_eq!(audit_count(&w, &alice, "image-built"), 1);
    // Usage accounting counts the build and its time.
    let usage = w.reconciler(&["usage", "--output", "json"]);
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout).expect("usage JSON");
    let line = usage["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["key"] == alice.as_str()).cloned())
        .unwrap_or_default();
    assert!(
        line["builds"] == 1 && line["build_minutes"].as_f64().is_some_and(|m| m > 0.0),
        "{usage}"
    );

    // A commit that leaves the context alone does not rebuild.
    w.commit_with(&alice, &w.mail(&alice), |work| {
        write(work, "README", "notes\n")
    });
    w.apply(0);
    assert_eq!(
        audit_count(&w, &alice, "image-built"),
        1,
        "rebuilt an unchanged context"
    );
    assert_eq!(image_of(&w, &web), first);

    // A changed Dockerfile rebuilds and recreates.
    w.commit_with(&alice, &w.mail(&alice), |work| {
        write(
            work,
            "docker/tools/Dockerfile",
            &dockerfile(&base, "echo v2 > /www/built.txt"),
        );
    });
    // Off a terminal: the same line, plain.
    let out = w.apply(0);
    assert!(
        out.contains(&format!("{alice}: built {host}/{alice}/tools in ")),
        "{out}"
    );
    let second = image_of(&w, &web);
    assert_ne!(second, first, "{}", w.status(&alice));
    assert_eq!(
        exec(&w, &web, &["/bin/busybox", "cat", "/www/built.txt"]),
        "v2"
    );
    assert_eq!(audit_count(&w, &alice, "image-built"), 2);
    let log = w.reconciler(&["build-log", "--account", &alice, "--name", "tools"]);
    assert!(
        stdout(&log).contains("Successfully built"),
        "{}",
        stdout(&log)
    );

    // Bob's Dockerfile starts from alice's unshared image: refused before
    // anything is built, with the line and the owner.
    let bob = w.account("bb", &["students"]);
    commit_tools(&w, &host, &bob, &base, "true");
    w.apply(0);
    let err = last_error(&w, &bob);
    assert!(
        err.contains("docker/tools/Dockerfile:1") && err.contains(&format!("belongs to `{alice}`")),
        "{err}"
    );
    assert!(w.containers_of(&bob).is_empty());
    assert_eq!(audit_count(&w, &bob, "image-built"), 0);

    // Alice stops building `tools`: once nothing runs it and the GC age
    // has passed, its manifests leave the registry.
    w.commit(
        &alice,
        Some("version: 1\ncontainers: []\n"),
        &w.mail(&alice),
    );
    w.apply(0);
    let gc = w.reconciler(&["gc", "--older-than", "0"]);
    let printed = stdout(&gc);
    assert!(
        printed.contains(&format!("registry: removed {host}/{alice}/tools@sha256:")),
        "{printed}"
    );
    let server = w.serve();
    let cli = registry.client(&w, "berth-after-gc");
    assert!(cli.login(REGISTRY_USER, REGISTRY_PASSWORD).status.success());
    let pull = cli.run(&["pull", &format!("{host}/{alice}/tools:latest")]);
    assert!(!pull.status.success(), "the dropped image is still served");
    // The base image she pushed by hand is not Berth's to delete.
    assert!(cli.run(&["pull", &base]).status.success());
    drop(server);
}

#[test]
fn a_build_over_its_memory_or_time_limit_fails_and_the_running_container_stays() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(smtp) = berth_tests::smtp::Smtp::start() else {
        return;
    };
    let (w, host, alice, registry) = world(&s, 25700, "bl", |o| {
        o.student_memory = "64Mi".into();
        o.policy_extra = "  builds: { timeout: 5s }\n".into();
        o.extra.push_str(&smtp.site_notify("1s", ""));
    });
    let base = push_base(&w, &registry, &host, &alice);
    let web = format!("{alice}--web");

    commit_tools(&w, &host, &alice, &base, "echo ok > /www/built.txt");
    w.apply(0);
    let running = image_of(&w, &web);
    assert!(running.contains("@sha256:"), "{}", w.status(&alice));
    let started = w.inspect(&web, "{{.State.StartedAt}}");

    // Over the memory quota: busybox tail holds 300 MiB of zeroes.
    w.commit_with(&alice, &w.mail(&alice), |work| {
        write(
            work,
            "docker/tools/Dockerfile",
            &dockerfile(
                &base,
                "/bin/busybox head -c 300m /dev/zero | /bin/busybox tail > /dev/null",
            ),
        );
    });
    w.apply(0);
    let err = last_error(&w, &alice);
    assert!(
        err.contains("did not build") && err.contains("137"),
        "{err}"
    );
    assert_eq!(
        image_of(&w, &web),
        running,
        "the running container was touched"
    );
    assert_eq!(w.inspect(&web, "{{.State.StartedAt}}"), started);
    let log = w.reconciler(&["build-log", "--account", &alice]);
    assert!(stdout(&log).contains("failed"), "{}", stdout(&log));
    // The student is mailed the failure once, as a failed build (its
    // refused push is not told twice).
    let server = w.serve();
    let mail = berth_tests::wait_for(
        std::time::Duration::from_secs(30),
        "the build's mail",
        || {
            smtp.messages()
                .into_iter()
                .find(|m| m.to.contains(&w.mail(&alice)))
        },
    );
    assert_eq!(mail.subject, "[Berth] Builds failed", "{mail:?}");
    assert!(mail.body.contains("did not build"), "{}", mail.body);
    drop(server);

    // Over the time limit.
    w.commit_with(&alice, &w.mail(&alice), |work| {
        write(
            work,
            "docker/tools/Dockerfile",
            &dockerfile(&base, "/bin/busybox sleep 60"),
        );
    });
    w.apply(0);
    let err = last_error(&w, &alice);
    assert!(err.contains("longer than the site's 5 s limit"), "{err}");
    assert_eq!(image_of(&w, &web), running);
    assert_eq!(w.inspect(&web, "{{.State.StartedAt}}"), started);
}

#[test]
fn a_build_that_would_pass_the_registry_quota_is_refused_with_the_sizes() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, host, alice, registry) =
        world(&s, 25800, "bq", |o| o.student_registry = Some("1Mi".into()));
    let base = push_base(&w, &registry, &host, &alice);
    commit_tools(&w, &host, &alice, &base, "echo big > /www/built.txt");
    w.apply(0);
    let err = last_error(&w, &alice);
    assert!(
        err.contains("over the registry quota") && err.contains("over your 1 MiB"),
        "{err}"
    );
    assert!(w.containers_of(&alice).is_empty());
}

/// Runs git in `dir` with `input` on stdin; its trimmed stdout.
fn git_in(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("git");
    assert!(out.status.success(), "git {args:?}");
    stdout(&out)
}

/// A tree of 10^`levels` empty files made of `levels` tree objects, each
/// naming the next ten times: a few hundred bytes of git, millions of paths.
fn tree_bomb(work: &Path, levels: u32) -> String {
    let empty = git_in(work, &["hash-object", "-w", "--stdin"], "");
    let entries = |mode: &str, kind: &str, id: &str| -> String {
        (0..10)
            .map(|i| format!("{mode} {kind} {id}\tn{i}\n"))
            .collect()
    };
    let mut tree = git_in(work, &["mktree"], &entries("100644", "blob", &empty));
    for _ in 1..levels {
        tree = git_in(work, &["mktree"], &entries("040000", "tree", &tree));
    }
    tree
}

#[test]
fn a_tree_bomb_as_build_context_is_refused_at_the_bound_and_remembered() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, host, alice, registry) = world(&s, 27700, "bt", |_| {});
    let base = push_base(&w, &registry, &host, &alice);
    // A normal commit first, so the repository and work tree exist.
    commit_tools(&w, &host, &alice, &base, "true");
    // The fixture's work tree of the account.
    let work = w.dir.join("work").join(&alice);
    // docker/tools holds the Dockerfile and a million-path bomb; the root
    // keeps workspace.yaml. Committed by plumbing: no index holds the bomb.
    let bomb = tree_bomb(&work, 6);
    let dockerfile_blob = git_in(
        &work,
        &["hash-object", "-w", "--stdin"],
        &dockerfile(&base, "true"),
    );
    let tools = git_in(
        &work,
        &["mktree"],
        &format!("100644 blob {dockerfile_blob}\tDockerfile\n040000 tree {bomb}\tbomb\n"),
    );
    let docker = git_in(&work, &["mktree"], &format!("040000 tree {tools}\ttools\n"));
    let yaml_blob = git_in(
        &work,
        &["hash-object", "-w", "--stdin"],
        &workspace(&host, &alice),
    );
    let root = git_in(
        &work,
        &["mktree"],
        &format!("100644 blob {yaml_blob}\tworkspace.yaml\n040000 tree {docker}\tdocker\n"),
    );
    let head = git_in(&work, &["rev-parse", "HEAD"], "");
    let mail = w.mail(&alice);
    let commit = git_in(
        &work,
        &[
            "-c",
            "user.name=Test",
            "-c",
            &format!("user.email={mail}"),
            "commit-tree",
            &root,
            "-p",
            &head,
            "-m",
            "bomb",
        ],
        "",
    );
    git_in(
        &work,
        &["push", "-q", "origin", &format!("{commit}:refs/heads/main")],
        "",
    );

    w.apply(0);
    let err = last_error(&w, &alice);
    assert!(
        err.contains("more than 20000 files and directories"),
        "{err}"
    );
    // Remembered: the next resync does not walk the tree again.
    w.apply(0);
    assert_eq!(audit_count(&w, &alice, "image-build-failed"), 1);
    drop(registry);
}

#[test]
fn serve_stops_within_its_grace_period_whatever_a_build_is_doing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, host, alice, registry) = world(&s, 27800, "bg", |_| {});
    let base = push_base(&w, &registry, &host, &alice);
    let server = w.serve_with(&[
        "--watch",
        &w.repos_dir().display().to_string(),
        "--shutdown-grace",
        "3s",
    ]);
    // The marker tells this build's step from other tests' containers.
    let marker = format!("grace-{alice}");
    commit_tools(
        &w,
        &host,
        &alice,
        &base,
        &format!("echo {marker}; /bin/busybox sleep 600"),
    );
    berth_tests::wait_for(
        std::time::Duration::from_secs(60),
        "the build's RUN step to start",
        || {
            let out = s.docker(&["ps", "--no-trunc", "--format", "{{.Command}}"]);
            stdout(&out).contains(&marker).then_some(())
        },
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(server.terminate());
    });
    // Before, serve waited for the build: up to the site's 10 min limit.
    let (code, log) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("serve exited after SIGTERM");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("grace period"), "{log}");
    drop(registry);
}

#[test]
fn a_build_steps_processes_are_limited_like_a_containers() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, host, alice, registry) = world(&s, 27900, "bp", |_| {});
    let base = push_base(&w, &registry, &host, &alice);
    // The step waits (bounded) for its PIDs limit to be set, then prints
    // it; the account's name keeps the builder's cache from answering.
    commit_tools(
        &w,
        &host,
        &alice,
        &base,
        &format!(
            "echo {alice}; f=/sys/fs/cgroup/pids/pids.max; [ -f $f ] || f=/sys/fs/cgroup/pids.max; for i in $(/bin/busybox seq 100); do v=$(/bin/busybox cat $f); [ $v != max ] && break; /bin/busybox sleep 0.1; done; echo pids-limit=$v"
        ),
    );
    w.apply(0);
    let log = stdout(&w.reconciler(&["build-log", "--account", &alice]));
    assert!(log.contains("pids-limit=1024"), "{log}");
    drop(registry);
}

#[test]
fn a_hidden_from_that_dockerd_acts_on_is_checked_by_berth_too() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, host, alice, registry) = world(&s, 28400, "bh", |_| {});
    // Nothing listens there: a pull fails at once and names it.
    let hidden = "127.0.0.1:1/hidden:1";
    let base = &s.test_image;
    let cases = [
        ("a byte-order mark", format!("\u{feff}FROM {hidden}\n"), 1),
        (
            "the escape directive",
            format!("# escape=`\nFROM {base}\nENV A=x\\\nFROM {hidden}\n"),
            4,
        ),
        (
            "an empty line inside a continuation",
            format!("FROM {base}\nCOPY \\\n\n--from={hidden} /bin/busybox /x\n"),
            2,
        ),
    ];
    for (what, dockerfile, line) in cases {
        // dockerd, by hand (classic builder, as Berth uses): it acts on it.
        let dir = w.dir.join(format!("by-hand-{line}"));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("Dockerfile"), &dockerfile).expect("write");
        let out = std::process::Command::new("docker")
            .args(["build", "-q", &dir.display().to_string()])
            .env("DOCKER_HOST", &s.docker_host)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success() && said.contains("127.0.0.1:1"),
            "{what}: dockerd did not try to pull the hidden image:\n{said}"
        );
        // Berth refuses the same Dockerfile at that line.
        w.commit_with(&alice, &w.mail(&alice), |work| {
            write(work, "workspace.yaml", &workspace(&host, &alice));
            write(work, "docker/tools/Dockerfile", &dockerfile);
        });
        w.apply(0);
        let err = last_error(&w, &alice);
        assert!(
            err.contains(&format!("Dockerfile:{line}:")) && err.contains("127.0.0.1:1"),
            "{what}: {err}"
        );
    }
    drop(registry);
}
