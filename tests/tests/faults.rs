//! What a fault run found, each as a test: a state store that cannot be
//! written is named, with its reason, by `status` and `/healthz`.

use berth_tests::fixture::World;
use berth_tests::{Services, http_get, wait_for};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Makes a file immutable (`chattr +i`: even root cannot write it) until
/// dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn new(path: PathBuf) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Immutable(path))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_unwritable_store_is_named_by_status_and_health() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let mut w = World::new(&s, 25300);
    w.site_overrides.resync = "1s".into();
    w.site_overrides.extra = "admin_token_env: BERTH_ADMIN_TOKEN\n".into();
    let a = w.account("fs", &["students"]);
    w.commit(
        &a,
        Some(&format!(
            "version: 1\ncontainers:\n  - {{ name: web, image: {} }}\n",
            s.test_image
        )),
        &w.mail(&a),
    );
    w.apply(0);
    let file = w.state_dir().join("berth.sqlite3");
    // Everything in the WAL goes into the file first, so that the file
    // alone is the store.
    let store = berth_reconciler::store::Store::open(&w.state_dir()).expect("store");
    drop(store);
    let Some(guard) = Immutable::new(file.clone()) else {
        eprintln!("skipped: chattr +i is not supported on this file system");
        return;
    };
    let out = w.reconciler(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("state store {} cannot be written", file.display()))
            && err.contains("readonly"),
        "{err}"
    );
    let server = w.serve();
    let body = wait_for(
        Duration::from_secs(20),
        "health to report the store",
        || {
            http_get(&server.addr, "/healthz")
                .ok()
                .filter(|(status, _)| status.contains("503"))
                .map(|(_, body)| body)
        },
    );
    // Anyone may ask /healthz: the store's path is for the admin only.
    assert!(
        body.contains("state store cannot be written")
            && !body.contains(&file.display().to_string()),
        "{body}"
    );
    let bearer = format!("Bearer {}", berth_tests::fixture::ADMIN_TOKEN);
    let (_, detail) =
        berth_tests::http_get_with(&server.addr, "/healthz", &[("Authorization", &bearer)])
            .expect("healthz");
    assert!(
        detail.contains(&file.display().to_string()) && detail.contains("readonly"),
        "{detail}"
    );
    drop(guard);
    wait_for(Duration::from_secs(20), "health to recover", || {
        http_get(&server.addr, "/healthz")
            .ok()
            .filter(|(status, _)| status.contains("200"))
    });
}
