//! Students' volumes on real dockerd and slapd: measured by Docker's own
//! walk (`reconciler volumes --measure`, and `serve` on its clock), the
//! storage quota that refuses new volumes while an account is over it,
//! and the console's Volumes page in a real Chromium: sizes, a tar
//! download byte-identical to what the container wrote, a delete refused
//! while in use and done when not, audited; admins read every account's,
//! and change none.

use berth_tests::fixture::World;
use berth_tests::{Services, stdout, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A container `name` mounting each of `volumes` at `/<volume>`, running
/// `script`.
fn container(image: &str, name: &str, volumes: &[&str], script: &str) -> String {
    let mounts: Vec<String> = volumes
        .iter()
        .map(|v| format!("{{ name: {v}, path: /{v} }}"))
        .collect();
    format!(
        "  - name: {name}\n    image: \"{image}\"\n    volumes: [{}]\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n",
        mounts.join(", ")
    )
}

fn workspace(containers: &[String]) -> String {
    format!("version: 1\ncontainers:\n{}", containers.concat())
}

#[test]
fn a_new_volume_is_refused_while_the_account_is_over_its_storage_quota() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 29500);
    w.site_overrides.student_quota_extra = ", storage: 1Mi".into();
    let alice = w.account("qa", &["students"]);
    let image = &s.test_image;
    // 2 MiB in `data`: over the 1 MiB quota once measured.
    let writer = container(
        image,
        "writer",
        &["data"],
        "dd if=/dev/zero of=/data/fill bs=1024 count=2048 && exec sleep 3600",
    );
    w.commit(&alice, Some(&workspace(&[writer.clone()])), &w.mail(&alice));
    w.apply(0);
    let name = format!("{alice}--writer");
    w.wait_running(&name);
    wait_for(WAIT, "the container to fill its volume", || {
        s.docker(&["exec", &name, "/bin/busybox", "test", "-s", "/data/fill"])
            .status
            .success()
            .then_some(())
    });

    // Measured: the listing gives the size and the total against the quota.
    let measured = w.reconciler(&["volumes", "--measure", "--account", &alice]);
    let listing = stdout(&measured);
    assert!(measured.status.success(), "{listing}");
    assert!(
        listing.contains(&format!("berth-{alice}--data")) && listing.contains("2.0 MiB"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "{alice}: 2.0 MiB of 1.0 MiB (group students, OVER)"
        )),
        "{listing}"
    );

    // Over quota: a revision adding `scratch` is refused with the numbers;
    // what runs keeps running and nothing is created.
    let scratch = container(image, "scratch", &["scratch"], "exec sleep 3600");
    w.commit(
        &alice,
        Some(&workspace(&[writer.clone(), scratch])),
        &w.mail(&alice),
    );
    // A refused revision is a result, not a failure of apply.
    let text = w.apply(0);
    assert!(
        text.contains(
            "storage quota: your volumes hold 2.0 MiB of the 1.0 MiB that group `students` allows"
        ) && text.contains("may not add volume `scratch`"),
        "{text}"
    );
    let volumes = stdout(&s.docker(&["volume", "ls", "-q"]));
    assert!(
        !volumes.contains(&format!("berth-{alice}--scratch")),
        "{volumes}"
    );
    assert_eq!(
        w.inspect(&name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    let status = w.status(&alice);
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("storage quota")),
        "{status}"
    );

    // Reusing what exists is not adding: another container on `data` is
    // accepted while over.
    let reader = container(image, "reader", &["data"], "exec sleep 3600");
    w.commit(
        &alice,
        Some(&workspace(&[writer.clone(), reader])),
        &w.mail(&alice),
    );
    w.apply(0);
    w.wait_running(&format!("{alice}--reader"));

    // Under the quota again (the file removed, measured), `scratch` is in.
    let emptied = s.docker(&["exec", &name, "/bin/busybox", "rm", "/data/fill"]);
    assert!(emptied.status.success());
    let measured = w.reconciler(&["volumes", "--measure", "--account", &alice]);
    assert!(measured.status.success());
    let scratch = container(image, "scratch", &["scratch"], "exec sleep 3600");
    w.commit(
        &alice,
        Some(&workspace(&[writer, scratch])),
        &w.mail(&alice),
    );
    w.apply(0);
    w.wait_running(&format!("{alice}--scratch"));
}
