//! Students' home directories in their containers (`home: true`), on real
//! dockerd and slapd (posixAccount entries): the directory comes from the
//! site's template and the account's name only, is checked (a plain
//! directory of the account's uid, no symbolic link on the way), is
//! mounted `nosuid,nodev`, and the container runs as the student.

use berth_tests::fixture::World;
use berth_tests::{Services, wait_for};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

fn workspace(image: &str, script: &str) -> String {
    format!(
        "version: 1\ncontainers:\n  - name: shell\n    image: \"{image}\"\n    home: true\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n"
    )
}

fn chown(path: &std::path::Path, uid: u32) {
    let ok = std::process::Command::new("chown")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .expect("chown");
    assert!(ok.success());
}

#[test]
fn a_home_directory_is_the_students_own_and_nothing_more() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29200);
    let homes = w.dir.join("homes");
    w.site_overrides.docker_endpoint = Some(format!(
        "homes: {{ source: \"{}/{{account}}\", target: \"/home/{{account}}\" }}",
        homes.display()
    ));
    let alice = w.account("ha", &["students"]);
    let bob = w.account("hb", &["students"]);
    let carol = w.account("hc", &["students"]);
    let dave = w.account("hd", &["students"]);
    for (i, a) in [&alice, &bob, &carol, &dave].iter().enumerate() {
        w.set_posix(a, 42_001 + i as u32);
    }
    // alice's and bob's are theirs; carol's is a link to bob's; dave's
    // belongs to root.
    for (a, uid) in [(&alice, 42_001), (&bob, 42_002)] {
        std::fs::create_dir_all(homes.join(a)).expect("home");
        chown(&homes.join(a), uid);
    }
    std::fs::write(homes.join(&bob).join("secret"), "bob's\n").expect("secret");
    std::os::unix::fs::symlink(homes.join(&bob), homes.join(&carol)).expect("link");
    std::fs::create_dir_all(homes.join(&dave)).expect("dave's");

    let image = &s.test_image;
    let script = format!(
        "id -u > /home/{alice}/whoami; cp /bin/busybox /home/{alice}/tool; chmod u+s /home/{alice}/tool; exec sleep 3600"
    );
    w.commit(&alice, Some(&workspace(image, &script)), &w.mail(&alice));
    for a in [&carol, &dave] {
        w.commit(a, Some(&workspace(image, "exec sleep 3600")), &w.mail(a));
    }
    let text = w.apply(2);

    // alice: her directory, as her uid, nosuid and nodev.
    let whoami = homes.join(&alice).join("whoami");
    wait_for(
        Duration::from_secs(30),
        "alice's container to write",
        || {
            std::fs::read_to_string(&whoami)
                .ok()
                .filter(|t| !t.is_empty())
        },
    );
    assert_eq!(
        std::fs::read_to_string(&whoami).expect("whoami").trim(),
        "42001"
    );
    let written = std::fs::metadata(&whoami).expect("whoami");
    assert_eq!((written.uid(), written.gid()), (42_001, 42_001));
    let tool = std::fs::metadata(homes.join(&alice).join("tool")).expect("tool");
    assert_ne!(tool.uid(), 0, "a set-uid file there is never root's");
    let name = format!("{alice}--shell");
    assert_eq!(
        w.inspect(&name, "{{.Config.User}}").as_deref(),
        Some("42001:42001"),
        "not root"
    );
    // Nothing written there can act for root on the host: the student
    // cannot make a root-owned (set-uid) file or a device node. (The mount
    // is asked for `nosuid,nodev`; Debian's dockerd 20.10 does not apply
    // them to a bind, as /proc/mounts in the container shows, so these are
    // what hold: the student's own uid, no capabilities, no-new-privileges.)
    for (what, cmd) in [
        ("chown to root", vec!["/bin/busybox", "chown", "0:0", ""]),
        ("mknod", vec!["/bin/busybox", "mknod", "", "c", "1", "3"]),
    ] {
        let target = if what == "mknod" {
            format!("/home/{alice}/mem")
        } else {
            format!("/home/{alice}/tool")
        };
        let args: Vec<&str> = ["exec", name.as_str()]
            .into_iter()
            .chain(
                cmd.iter()
                    .map(|a| if a.is_empty() { target.as_str() } else { a }),
            )
            .collect();
        let done = s.docker(&args);
        assert!(
            !done.status.success(),
            "{what} succeeded in the home directory"
        );
    }
    assert_ne!(
        std::fs::metadata(homes.join(&alice).join("tool"))
            .expect("tool")
            .uid(),
        0
    );
    assert!(!homes.join(&alice).join("mem").exists());
    let privileges = w
        .inspect(&name, "{{.HostConfig.SecurityOpt}}")
        .unwrap_or_default();
    assert!(privileges.contains("no-new-privileges"), "{privileges}");
    // No other account's directory by any name from inside.
    for path in [
        format!("/home/{bob}/secret"),
        format!("/home/{alice}/../{bob}/secret"),
        format!("{}/{bob}/secret", homes.display()),
    ] {
        let read = s.docker(&["exec", &name, "/bin/busybox", "cat", &path]);
        assert!(!read.status.success(), "{path} was readable");
    }

    // carol's link and dave's foreign directory: refused, nothing created.
    assert!(text.contains("symbolic link"), "{text}");
    assert!(text.contains("belongs to uid 0"), "{text}");
    for a in [&carol, &dave] {
        assert_eq!(w.inspect(&format!("{a}--shell"), "{{.Id}}"), None, "{a}");
    }
    // The same site refuses `home: true` where no host mounts homes.
    let mut plain = World::new(&s, 29300);
    let erin = plain.account("he", &["students"]);
    plain.commit(
        &erin,
        Some(&workspace(image, "exec sleep 3600")),
        &plain.mail(&erin),
    );
    let text = plain.apply(0);
    assert!(text.contains("mounts no home directories"), "{text}");
}

/// A declared volume that happens to share the home mount's name must
/// never be the home directory: a container without `home: true` runs
/// as root, and a root-owned set-uid file in a student's home is root on
/// every host that mounts homes without `nosuid`.
#[test]
fn a_declared_volume_never_mounts_the_home_directory() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29400);
    let homes = w.dir.join("homes");
    w.site_overrides.docker_endpoint = Some(format!(
        "homes: {{ source: \"{}/{{account}}\", target: \"/home/{{account}}\" }}",
        homes.display()
    ));
    let alice = w.account("hv", &["students"]);
    w.set_posix(&alice, 42_101);
    std::fs::create_dir_all(homes.join(&alice)).expect("home");
    chown(&homes.join(&alice), 42_101);
    let image = &s.test_image;
    w.commit(
        &alice,
        Some(&workspace(image, "exec sleep 3600")),
        &w.mail(&alice),
    );
    w.apply(0);
    w.wait_running(&format!("{alice}--shell"));

    // Then a root container declares a volume of the home mount's name.
    let rooted = format!(
        "{}  - name: rooted\n    image: \"{image}\"\n    volumes: [{{ name: home, path: /h }}]\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"cp /bin/busybox /h/rootsh; chmod u+s /h/rootsh; exec sleep 3600\"]\n",
        workspace(image, "exec sleep 3600")
    );
    w.commit(&alice, Some(&rooted), &w.mail(&alice));
    w.apply(0);
    let name = format!("{alice}--rooted");
    w.wait_running(&name);
    wait_for(
        Duration::from_secs(30),
        "the root container to write",
        || {
            s.docker(&["exec", &name, "/bin/busybox", "test", "-e", "/h/rootsh"])
                .status
                .success()
                .then_some(())
        },
    );
    assert!(
        !homes.join(&alice).join("rootsh").exists(),
        "a declared volume mounted the home directory, as root"
    );
}
