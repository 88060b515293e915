//! Dormant workspaces on the real dockerd: volumes archived to files and
//! brought back byte for byte (every file's SHA-256, mode and owner
//! compared), a kill in the middle of an archive losing nothing, and
//! `serve` telling a student, archiving on its own and restoring at the
//! next push.

use berth_tests::fixture::World;
use berth_tests::smtp::Smtp;
use berth_tests::{Services, read_volume, stdout, volume_exists, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A workspace whose `box` writes files (random bytes, a nested file, a
/// symlink, an odd mode) into its volume `data`, then sleeps; `stopped`
/// keeps it stopped.
fn workspace(image: &str, state: &str) -> String {
    let script = "test -e /data/big || { mkdir -p /data/sub && head -c 300000 /dev/urandom > /data/big && echo hello > /data/sub/small && chmod 600 /data/sub/small && ln -s big /data/link && chown 1234:55 /data/big; }; exec sleep 3600";
    format!(
        "version: 1\ncontainers:\n  - name: box\n    image: \"{image}\"\n    state: {state}\n    volumes: [{{ name: data, path: /data }}]\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n"
    )
}

/// Every entry of the volume: path, mode, owner, and the SHA-256 of files.
fn listing(s: &Services, volume: &str) -> String {
    let out = read_volume(
        &s.docker_host,
        &s.test_image,
        volume,
        "cd /d && find . | sort | while read f; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then h=$(sha256sum \"$f\" | cut -d' ' -f1); else h=-; fi; echo \"$f $(stat -c '%a %u %g' \"$f\") $h\"; done",
    );
    assert!(out.status.success(), "{out:?}");
    stdout(&out)
}

/// Commits `box` running until its files are written, then stopped.
fn filled(w: &World, s: &Services, account: &str) {
    w.commit(
        account,
        Some(&workspace(&s.test_image, "running")),
        &w.mail(account),
    );
    w.apply(0);
    let name = format!("{account}--box");
    w.wait_running(&name);
    wait_for(WAIT, "the files in the volume", || {
        s.docker(&["exec", &name, "/bin/busybox", "test", "-L", "/data/link"])
            .status
            .success()
            .then_some(())
    });
    w.commit(
        account,
        Some(&workspace(&s.test_image, "stopped")),
        &w.mail(account),
    );
    w.apply(0);
}

/// Dormancy far off: only `reconciler archive` archives.
const DAYS: &str = "dormant_after: 1d, archive_after: 2d";

/// A world archiving to `<dir>/archive` (with the dormancy `settings`),
/// and an account `short` whose volume `data` is [`filled`]: the world,
/// the archive directory, the account, its volume and the volume's
/// listing.
fn archived_world(
    s: &Services,
    port: u16,
    short: &str,
    settings: &str,
) -> (World, std::path::PathBuf, String, String, String) {
    let mut w = World::new(s, port);
    let archive_dir = w.dir.join("archive");
    w.site_overrides.extra = format!(
        "dormancy: {{ {settings}, archive_dir: \"{}\" }}\n",
        archive_dir.display()
    );
    let a = w.account(short, &["students"]);
    filled(&w, s, &a);
    let volume = format!("berth-{a}--data");
    let before = listing(s, &volume);
    (w, archive_dir, a, volume, before)
}

#[test]
fn an_archive_killed_midway_loses_nothing_and_unarchive_restores_every_byte() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, archive_dir, a, volume, before) = archived_world(&s, 31000, "da", DAYS);
    assert!(before.contains("./sub/small 600 0 0"), "{before}");
    assert!(before.contains("./big 644 1234 55"), "{before}");

    // Killed between the file and its record: the volume stays, unchanged.
    let killed = w
        .reconciler_command(&["archive", "--account", &a])
        .env("BERTH_ARCHIVE_STOP_AFTER_EXPORT", "1")
        .output()
        .expect("runs");
    assert_eq!(killed.status.code(), Some(3), "{killed:?}");
    assert!(
        volume_exists(&s.docker_host, &volume),
        "the volume went with a kill"
    );
    assert_eq!(listing(&s, &volume), before);
    // Nor may an admin delete an archive that is not finished.
    let refused = w.reconciler(&["unarchive", "--account", &a, "--discard"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is unfinished"),
        "{refused:?}"
    );
    assert_eq!(listing(&s, &volume), before);

    // Again, to the end: verified, then the volume removed.
    let done = w.reconciler(&["archive", "--account", &a]);
    assert!(done.status.success(), "{done:?}");
    assert!(
        stdout(&done).contains(&format!("archived {volume}")),
        "{}",
        stdout(&done)
    );
    assert!(!volume_exists(&s.docker_host, &volume));
    let file = archive_dir.join(&a).join(format!("{volume}.tar.gz"));
    assert!(file.is_file(), "{}", file.display());
    assert!(
        !archive_dir
            .join(&a)
            .join(format!("{volume}.tar.gz.part"))
            .exists(),
        "a finished archive leaves no part"
    );
    assert_eq!(
        w.status(&a)["archived"],
        serde_json::json!([volume]),
        "status lists the archive"
    );
    // A resync leaves an archived workspace alone: no empty volume made.
    w.apply(0);
    assert!(
        !volume_exists(&s.docker_host, &volume),
        "apply made an empty volume"
    );
    assert!(w.inspect(&format!("{a}--box"), "{{.Id}}").is_none());

    let back = w.reconciler(&["unarchive", "--account", &a]);
    assert!(back.status.success(), "{back:?}");
    assert_eq!(listing(&s, &volume), before, "every file, byte for byte");
    assert!(!file.exists(), "the archive goes once the volume is back");
    w.apply(0);
    assert!(
        w.inspect(&format!("{a}--box"), "{{.Id}}").is_some(),
        "recreated from git"
    );
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(
        audit.contains("archived") && audit.contains("unarchived"),
        "{audit}"
    );
}

/// Retention over: an admin deletes the archive; the account is no
/// longer frozen and starts again with an empty volume.
#[test]
fn an_admin_discards_an_archive_and_the_next_apply_starts_afresh() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let (w, archive_dir, a, volume, before) = archived_world(&s, 31600, "dd", DAYS);
    let done = w.reconciler(&["archive", "--account", &a]);
    assert!(done.status.success(), "{done:?}");
    let file = archive_dir.join(&a).join(format!("{volume}.tar.gz"));
    assert!(file.is_file(), "{}", file.display());

    let gone = w.reconciler(&["unarchive", "--account", &a, "--discard"]);
    assert!(gone.status.success(), "{gone:?}");
    assert!(
        stdout(&gone).contains(&format!("deleted the archive of {volume}")),
        "{}",
        stdout(&gone)
    );
    assert!(!file.exists(), "the archive file is deleted");
    let status = w.status(&a);
    assert!(
        status["archived"].as_array().is_none_or(Vec::is_empty),
        "{status}"
    );
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(
        audit.contains("archive-discarded") && audit.contains("its data is gone"),
        "{audit}"
    );
    // Not frozen any more: apply creates the container, with a new volume.
    w.apply(0);
    assert!(w.inspect(&format!("{a}--box"), "{{.Id}}").is_some());
    assert!(volume_exists(&s.docker_host, &volume));
    assert_ne!(
        listing(&s, &volume),
        before,
        "a fresh volume, not the old data"
    );
    // Again: nothing left to delete.
    let again = w.reconciler(&["unarchive", "--account", &a, "--discard"]);
    assert!(stdout(&again).contains("nothing to do"), "{again:?}");
}

#[test]
fn serve_tells_archives_a_dormant_workspace_and_the_next_push_brings_it_back() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let Some(smtp) = Smtp::start() else {
        return;
    };
    let mut w = World::new(&s, 31100);
    let archive_dir = w.dir.join("archive");
    w.site_overrides.extra = format!(
        "dormancy: {{ dormant_after: 3s, archive_after: 6s, check_every: 1s, archive_dir: \"{}\" }}\n{}",
        archive_dir.display(),
        smtp.site_notify("1s", "")
    );
    let a = w.account("ds", &["students"]);
    filled(&w, &s, &a);
    let volume = format!("berth-{a}--data");
    let before = listing(&s, &volume);
    let server = w.serve_with(&["--watch", &w.repos_dir().display().to_string()]);

    let mine = |m: &berth_tests::smtp::Mail| m.to.contains(&w.mail(&a));
    wait_for(WAIT, "the dormancy mail", || {
        smtp.messages()
            .into_iter()
            .find(|m| mine(m) && m.body.contains("will be archived at"))
    });
    wait_for(WAIT, "the archive", || {
        (!volume_exists(&s.docker_host, &volume)).then_some(())
    });
    wait_for(WAIT, "the archive's mail", || {
        smtp.messages()
            .into_iter()
            .find(|m| mine(m) && m.body.contains("were archived (nothing is lost)"))
    });

    // The next push: volumes back before the container is made.
    w.commit(&a, Some(&workspace(&s.test_image, "running")), &w.mail(&a));
    let name = format!("{a}--box");
    wait_for(WAIT, "the container back", || {
        (w.inspect(&name, "{{.State.Running}}").as_deref() == Some("true")).then_some(())
    });
    assert_eq!(listing(&s, &volume), before, "every file, byte for byte");
    drop(server);
}

#[test]
fn an_archive_that_would_fill_the_disk_touches_nothing() {
    let Some(s) = Services::from_env() else {
        return;
    };
    // A reserve no disk here has: the archive must refuse before it begins.
    let (w, archive_dir, a, volume, before) = archived_world(
        &s,
        31500,
        "df",
        "dormant_after: 2s, archive_after: 4s, check_every: 1s, keep_free: 1000Ti",
    );

    let refused = w.reconciler(&["archive", "--account", &a]);
    assert!(!refused.status.success(), "{refused:?}");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("dormancy.keep_free"), "{why}");
    assert_eq!(listing(&s, &volume), before, "the volume is untouched");
    assert!(
        w.inspect(&format!("{a}--box"), "{{.Id}}").is_some(),
        "its stopped container stays"
    );
    let files: Vec<_> = std::fs::read_dir(archive_dir.join(&a))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "{files:?}");
    let status = w.status(&a);
    assert!(
        status["archived"].as_array().is_none_or(Vec::is_empty),
        "{status}"
    );

    // serve's loop, when the time comes: it fails the same, counts it for
    // the alert, audits why, and keeps the volume.
    let server = w.serve();
    wait_for(WAIT, "a failed archive counted", || {
        let (_, text) = berth_tests::http_get(&server.addr, "/metrics").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("berth_archive_failures_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| *n >= 1.0)
    });
    drop(server);
    let audit = stdout(&w.reconciler(&["audit", "--account", &a]));
    assert!(
        audit.contains("archive-failed") && audit.contains("dormancy.keep_free"),
        "{audit}"
    );
    assert_eq!(listing(&s, &volume), before, "the volume is untouched");
}
