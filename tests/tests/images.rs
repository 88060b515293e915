//! Images in the department registry (a real docker-registry on loopback):
//! another account's unshared image is refused naming its owner; sharing
//! lets others run it pinned to a digest; unsharing keeps what runs, with a
//! warning, and refuses new revisions; other registries are refused.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout};

fn uses(image: &str, greeting: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: tool\n    image: {image}\n    env: {{ GREETING: {greeting} }}\n"
    )
}

#[test]
fn sharing_pinning_and_unsharing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 22700);
    w.site_overrides.registry = Some(s.registry.clone());
    let alice = w.account("al", &["students"]);
    let bob = w.account("bo", &["students"]);
    let image = format!("{}/{alice}/tools:1", s.registry);
    assert!(s.docker(&["tag", &s.test_image, &image]).status.success());
    let push = s.docker(&["push", &image]);
    assert!(
        push.status.success(),
        "push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    let apply = |account: &str| {
        let out = w.reconciler(&["apply", "--account", account]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let last_error = |account: &str| {
        w.status(account)["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // Unshared: refused, naming the owner.
    w.commit(&bob, Some(&uses(&image, "one")), &w.mail(&bob));
    apply(&bob);
    assert!(w.containers_of(&bob).is_empty());
    assert!(
        last_error(&bob).contains(&format!("belongs to `{alice}` and is not shared with you")),
        "{}",
        last_error(&bob)
    );

    // Shared by alice: bob's next revision runs it, pinned to the registry's digest.
    let share = format!(
        "version: 1\nimages:\n  share:\n    - image: {image}\n      description: \"test tools\"\n"
    );
    w.commit(&alice, Some(&share), &w.mail(&alice));
    apply(&alice);
    w.commit(&bob, Some(&uses(&image, "two")), &w.mail(&bob));
    apply(&bob);
    let status = w.status(&bob);
    let running = &status["containers"][0];
    assert_eq!(running["state"], "running", "{status}");
    let pinned = running["image"].as_str().unwrap_or_default().to_string();
    // The local image may carry digests of other repositories too (the same
    // bits pushed elsewhere); the one for this repository must be the pin.
    let repo_digests =
        stdout(&s.docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &image]));
    assert!(
        repo_digests.contains(&format!("\"{pinned}\"")),
        "runs the digest the registry serves: {pinned} not in {repo_digests}"
    );
    assert!(
        pinned.starts_with(&format!("{}/{alice}/tools@sha256:", s.registry)),
        "{pinned}"
    );

    // The catalogue shows it: owner, digest, size, description, users.
    let out = w.reconciler(&["images", "--shared", "--output", "json"]);
    let catalogue: serde_json::Value = serde_json::from_slice(&out.stdout).expect("catalogue JSON");
    let entry = catalogue["images"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["reference"] == image.as_str()).cloned())
        .unwrap_or_else(|| panic!("{image} not in {catalogue}"));
    assert_eq!(entry["owner"], alice.as_str());
    assert_eq!(entry["description"], "test tools");
    assert_eq!(entry["users"], serde_json::json!([bob]));
    assert_eq!(
        format!(
            "{}/{alice}/tools@{}",
            s.registry,
            entry["digest"].as_str().unwrap_or_default()
        ),
        pinned
    );
    assert!(
        entry["size"].as_u64().unwrap_or(0) > 500_000,
        "busybox is ~1 MB: {entry}"
    );
    let text = stdout(&w.reconciler(&["images"]));
    assert!(
        text.contains(&image) && text.contains("test tools"),
        "{text}"
    );

    // Unshared again: bob keeps running the pinned digest, with a warning …
    let id = w.inspect(&format!("{bob}--tool"), "{{.Id}}");
    w.commit(&alice, Some("version: 1\n"), &w.mail(&alice));
    apply(&alice);
    apply(&bob);
    assert_eq!(
        w.inspect(&format!("{bob}--tool"), "{{.Id}}"),
        id,
        "still running the same container"
    );
    let warnings = w.status(&bob)["warnings"].to_string();
    assert!(
        warnings.contains(&format!("is no longer shared by `{alice}`")),
        "{warnings}"
    );
    // … and a new revision naming it is refused.
    w.commit(&bob, Some(&uses(&image, "three")), &w.mail(&bob));
    apply(&bob);
    assert_eq!(w.inspect(&format!("{bob}--tool"), "{{.Id}}"), id);
    assert!(
        last_error(&bob).contains("is not shared with you"),
        "{}",
        last_error(&bob)
    );

    // A registry outside the site's list is refused.
    w.commit(
        &bob,
        Some(&uses("quay.io/someone/tool:1", "four")),
        &w.mail(&bob),
    );
    apply(&bob);
    assert!(
        last_error(&bob).contains("registry `quay.io` is not allowed"),
        "{}",
        last_error(&bob)
    );
    s.docker(&["rmi", &image]);
}

#[test]
fn fifty_accounts_needing_one_image_cause_one_pull() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 22800);
    w.site_overrides.registry = Some(s.registry.clone());
    let owner = w.account("ow", &["students"]);
    let image = format!("{}/{owner}/tools:2", s.registry);
    assert!(s.docker(&["tag", &s.test_image, &image]).status.success());
    assert!(s.docker(&["push", &image]).status.success());
    let share = format!("version: 1\nimages:\n  share:\n    - image: {image}\n");
    w.commit(&owner, Some(&share), &w.mail(&owner));
    assert_eq!(
        w.reconciler(&["apply", "--account", &owner]).status.code(),
        Some(0)
    );
    // Only the registry has it now (under that name and digest).
    assert!(s.docker(&["rmi", &image]).status.success());
    let users: Vec<String> = (0..50)
        .map(|i| w.account(&format!("u{i}"), &["students"]))
        .collect();
    for u in &users {
        w.commit(u, Some(&uses(&image, "x")), &w.mail(u));
    }
    let since = stdout(
        &std::process::Command::new("date")
            .arg("+%s")
            .output()
            .expect("date"),
    );
    w.apply(0);
    let until = stdout(
        &std::process::Command::new("date")
            .arg("+%s")
            .output()
            .expect("date"),
    );
    for u in &users {
        assert_eq!(
            w.inspect(&format!("{u}--tool"), "{{.State.Running}}")
                .as_deref(),
            Some("true"),
            "{u}"
        );
    }
    let events = stdout(&s.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &format!("{}", until.parse::<u64>().unwrap_or(0) + 1),
        "--filter",
        "type=image",
        "--filter",
        "event=pull",
        "--format",
        "{{.ID}}",
    ]));
    let pulls: Vec<&str> = events
        .lines()
        .filter(|l| l.contains(&format!("{owner}/tools")))
        .collect();
    assert_eq!(pulls.len(), 1, "pulls: {pulls:?}");
}

#[test]
fn export_for_singularity_and_the_scan_hook() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 22900);
    w.site_overrides.registry = Some(s.registry.clone());
    let owner = w.account("ex", &["students"]);
    let other = w.account("ot", &["students"]);
    let image = format!("{}/{owner}/tools:3", s.registry);
    assert!(s.docker(&["tag", &s.test_image, &image]).status.success());
    assert!(s.docker(&["push", &image]).status.success());

    // export-image: refused for an account that may not use it …
    let file = w.dir.join("tools.tar");
    let file_arg = file.display().to_string();
    let refused = w.reconciler(&["export-image", &image, "-o", &file_arg, "--account", &other]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not shared with you"));
    assert!(!file.exists());
    // … written for its owner, and the archive loads back and runs.
    let out = w.reconciler(&["export-image", &image, "-o", &file_arg, "--account", &owner]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.docker(&["rmi", &image]).status.success());
    let load = s.docker(&["load", "-i", &file_arg]);
    assert!(stdout(&load).contains(&image), "{}", stdout(&load));
    assert_eq!(
        stdout(&s.docker(&["run", "--rm", &image, "/bin/busybox", "echo", "loaded"])),
        "loaded"
    );

    // The scan hook refuses a revision with its output, then lets it through.
    let script = w.dir.join("scan.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"CVE-2026-0001 in $1 ($2)\"\nexit 1\n",
    )
    .expect("script");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status();
    assert!(chmod.is_ok_and(|s| s.success()));
    w.site_overrides.scan_command = Some(script.display().to_string());
    w.commit(&owner, Some(&uses(&image, "scan")), &w.mail(&owner));
    let applied = w.apply(0);
    assert!(
        w.containers_of(&owner).is_empty(),
        "{applied}\n{}",
        std::fs::read_to_string(w.site_path()).unwrap_or_default()
    );
    let err = w.status(&owner)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains(&format!(
            "image scan refused `{image}`: CVE-2026-0001 in {image} (sha256:"
        )),
        "{err}"
    );
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("script");
    w.commit(&owner, Some(&uses(&image, "scanned")), &w.mail(&owner));
    w.apply(0);
    assert_eq!(
        w.inspect(&format!("{owner}--tool"), "{{.State.Running}}")
            .as_deref(),
        Some("true")
    );
}

/// Builds a variant of the test image (distinct id) and pushes it.
fn variant(s: &Services, reference: &str, marker: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", reference, "-"])
        .env("DOCKER_HOST", &s.docker_host)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker build");
    let dockerfile = format!(
        "FROM {}\nRUN [\"/bin/busybox\", \"touch\", \"/{marker}\"]\n",
        s.test_image
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dockerfile.as_bytes())
        .expect("dockerfile");
    assert!(
        child.wait().is_ok_and(|st| st.success()),
        "build {reference}"
    );
    assert!(
        s.docker(&["push", reference]).status.success(),
        "push {reference}"
    );
    assert!(
        s.docker(&["rmi", reference]).status.success(),
        "only the registry keeps {reference}"
    );
}

#[test]
fn gc_removes_unreferenced_pulled_images_only() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 23000);
    w.site_overrides.registry = Some(s.registry.clone());
    let owner = w.account("gc", &["students"]);
    let kept = format!("{}/{owner}/kept:1", s.registry);
    let dropped = format!("{}/{owner}/dropped:1", s.registry);
    variant(&s, &kept, &format!("{owner}-kept"));
    variant(&s, &dropped, &format!("{owner}-dropped"));
    let both = format!(
        "version: 1\ncontainers:\n  - {{ name: a, image: {kept} }}\n  - {{ name: b, image: {dropped} }}\n"
    );
    w.commit(&owner, Some(&both), &w.mail(&owner));
    w.apply(0);
    let dropped_ref = w
        .inspect(&format!("{owner}--b"), "{{.Config.Image}}")
        .expect("b runs");
    let kept_ref = w
        .inspect(&format!("{owner}--a"), "{{.Config.Image}}")
        .expect("a runs");
    w.commit(
        &owner,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: a, image: {kept} }}\n"
        )),
        &w.mail(&owner),
    );
    w.apply(0);
    assert!(w.inspect(&format!("{owner}--b"), "{{.Id}}").is_none());

    let dry = stdout(&w.reconciler(&["gc", "--dry-run", "--older-than", "0s"]));
    assert!(
        dry.contains(&format!("would remove {dropped_ref}")) && !dry.contains(&kept_ref),
        "{dry}"
    );
    let json =
        stdout(&w.reconciler(&["gc", "--dry-run", "--older-than", "0s", "--output", "json"]));
    let items: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        items
            .iter()
            .any(|i| i["image"] == dropped_ref.as_str() && i["removed"] == false),
        "{json}"
    );
    assert!(
        s.docker(&["image", "inspect", &dropped_ref])
            .status
            .success(),
        "dry run removes nothing"
    );
    let out = w.reconciler(&["gc", "--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("removed {dropped_ref}")) && text.contains(" freed in "),
        "{text}"
    );
    assert!(
        !s.docker(&["image", "inspect", &dropped_ref])
            .status
            .success(),
        "unreferenced image removed"
    );
    assert!(
        s.docker(&["image", "inspect", &kept_ref]).status.success(),
        "referenced image kept"
    );
    // The site's own age (7 days by default) keeps a just-used image.
    let none = stdout(&w.reconciler(&["gc", "--dry-run"]));
    assert!(
        none.starts_with("Gc: 0 image(s), 0 B reclaimable"),
        "{none}"
    );
}

#[test]
fn serve_publishes_the_catalogue() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 23100);
    w.site_overrides.registry = Some(s.registry.clone());
    let owner = w.account("ca", &["students"]);
    let image = format!("{}/{owner}/tools:6", s.registry);
    assert!(s.docker(&["tag", &s.test_image, &image]).status.success());
    assert!(s.docker(&["push", &image]).status.success());
    // The whole catalogue (owners, unshared images) is the admin's.
    w.site_overrides.extra = "admin_token_env: BERTH_ADMIN_TOKEN\n".into();
    let server = w.serve();
    let bearer = format!("Bearer {}", berth_tests::fixture::ADMIN_TOKEN);
    let body = berth_tests::wait_for(std::time::Duration::from_secs(20), "the catalogue", || {
        berth_tests::http_get_with(&server.addr, "/images", &[("Authorization", &bearer)])
            .ok()
            .map(|(_, b)| b)
            .filter(|b| b.contains(&image))
    });
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let entry = v["images"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["reference"] == image.as_str()).cloned());
    assert_eq!(
        entry.map(|e| e["owner"].clone()),
        Some(serde_json::Value::from(owner))
    );
}
