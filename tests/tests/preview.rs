//! Plan previews through `serve`, with GitLab's API mocked from its
//! documented payloads: a branch push and a merge request are planned
//! exactly as an accepted push, posted as a `berth/plan` status (and one
//! merge-request note, edited in place), and never applied.

use berth_tests::fixture::{WEBHOOK_SECRET, World};
use berth_tests::{Services, http_post, stdout};
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn branch_push(account: &str, sha: &str, pusher: &str, branch: &str) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&berth_tests::gitlab::push_event(account, sha, pusher)).expect("json");
    v["ref"] = format!("refs/heads/{branch}").into();
    v.to_string()
}

fn merge_request(account: &str, sha: &str, user: &str, iid: u64, action: &str) -> String {
    serde_json::json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": { "id": berth_tests::gitlab::user_id(user), "username": user, "name": user },
        "project": {
            "id": 1000,
            "path_with_namespace": format!("{account}/workspace"),
            "default_branch": "main"
        },
        "object_attributes": {
            "iid": iid,
            "target_branch": "main",
            "source_branch": "feature",
            "source_project_id": 1000,
            "target_project_id": 1000,
            "state": "opened",
            "action": action,
            "last_commit": { "id": sha }
        }
    })
    .to_string()
}

fn deliver(addr: &str, kind: &str, uuid: &str, body: &str) -> u16 {
    let headers = [
        ("X-Gitlab-Token", WEBHOOK_SECRET),
        ("X-Gitlab-Event", kind),
        ("X-Gitlab-Event-UUID", uuid),
    ];
    http_post(addr, "/hooks/gitlab", &headers, body)
        .map(|(c, _)| c)
        .unwrap_or(0)
}

/// (state, description) of the `berth/plan` statuses posted for `sha`.
async fn plan_statuses(gl: &MockServer, sha: &str) -> Vec<(String, String)> {
    named_statuses(gl, sha, "berth/plan").await
}

async fn named_statuses(gl: &MockServer, sha: &str, name: &str) -> Vec<(String, String)> {
    gl.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with(sha))
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|v| v["name"] == name)
        .map(|v| {
            (
                v["state"].as_str().unwrap_or_default().to_string(),
                v["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn wait_plan(gl: &MockServer, sha: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = plan_statuses(gl, sha).await.pop() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no berth/plan status for {sha}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn note_requests(gl: &MockServer, verb: &str) -> Vec<serde_json::Value> {
    gl.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().contains("/notes"))
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

fn workspace(image: &str, containers: &[&str], greeting: &str) -> String {
    let mut text = String::from("version: 1\ncontainers:\n");
    for c in containers {
        text.push_str(&format!(
            "  - {{ name: {c}, image: \"{image}\", env: {{ GREETING: {greeting} }} }}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn branches_and_merge_requests_are_previewed_and_never_applied() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = berth_tests::gitlab::statuses_mock().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/1000/merge_requests/7/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 555})))
        .mount(&gl)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(
            r"^/api/v4/projects/1000/merge_requests/7/notes/555$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 555})))
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 26900);
    w.use_gitlab(&gl).await;
    let a = w.account("pa", &["students"]);
    let bob = w.account("pb", &["students"]);
    let mail = w.mail(&a);
    let server = w.serve();
    let image = &s.test_image;
    let write = |text: String| {
        move |work: &std::path::Path| {
            std::fs::write(work.join("workspace.yaml"), text).expect("write");
        }
    };

    // What runs: one container, accepted from a push to main.
    let main = w.commit_to(&a, "main", &mail, write(workspace(image, &["web"], "one")));
    assert_eq!(server.push(&a, &main, &a, "p-main", WEBHOOK_SECRET), 202);
    berth_tests::gitlab::wait_status(&gl, &main, "success").await;

    // A branch adding a container: previewed, with the counts, not applied.
    let started = std::time::Instant::now();
    let feature = w.commit_to(
        &a,
        "feature",
        &mail,
        write(workspace(image, &["web", "api"], "one")),
    );
    assert_eq!(
        deliver(
            &server.addr,
            "Push Hook",
            "p-f1",
            &branch_push(&a, &feature, &a, "feature")
        ),
        202
    );
    let (state, description) = wait_plan(&gl, &feature).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (state.as_str(), description.as_str()),
        ("success", "1 to create, 0 to recreate, 0 to remove")
    );
    eprintln!(
        "branch push → berth/plan status: {} ms",
        elapsed.as_millis()
    );
    assert_eq!(
        w.inspect(&format!("{a}--api"), "{{.Id}}"),
        None,
        "a preview created a container"
    );
    assert!(
        berth_tests::gitlab::statuses(&gl, &feature)
            .await
            .iter()
            .all(|(st, _)| st != "pending")
    );

    // An invalid file: failed, with line and column.
    let broken = w.commit_to(
        &a,
        "broken",
        &mail,
        write("version: 1\ncontainers:\n  - name: web\n    image: x\n    colour: blue\n".into()),
    );
    deliver(
        &server.addr,
        "Push Hook",
        "p-b1",
        &branch_push(&a, &broken, &a, "broken"),
    );
    let (state, description) = wait_plan(&gl, &broken).await;
    assert_eq!(state, "failed");
    assert!(description.contains("workspace.yaml:5:5"), "{description}");

    // Over quota (students may run 4 containers): failed.
    let big = w.commit_to(
        &a,
        "big",
        &mail,
        write(workspace(image, &["a", "b", "c", "d", "e"], "x")),
    );
    deliver(
        &server.addr,
        "Push Hook",
        "p-g1",
        &branch_push(&a, &big, &a, "big"),
    );
    let (state, description) = wait_plan(&gl, &big).await;
    assert_eq!(state, "failed", "{description}");
    assert!(description.contains("quota"), "{description}");

    // Bob may not push to alice's repository: no preview for him. A later
    // preview of the same account (queued after his) shows the worker got
    // past his request.
    let bobs = w.commit_to(&a, "a-bob", &mail, write(workspace(image, &["web"], "bob")));
    deliver(
        &server.addr,
        "Push Hook",
        "p-bob",
        &branch_push(&a, &bobs, &bob, "a-bob"),
    );
    let later = w.commit_to(
        &a,
        "z-later",
        &mail,
        write(workspace(image, &["web"], "later")),
    );
    deliver(
        &server.addr,
        "Push Hook",
        "p-z",
        &branch_push(&a, &later, &a, "z-later"),
    );
    wait_plan(&gl, &later).await;
    assert!(
        plan_statuses(&gl, &bobs).await.is_empty(),
        "bob got a preview"
    );

    // A merge request: one note, edited in place on the next update.
    assert_eq!(
        deliver(
            &server.addr,
            "Merge Request Hook",
            "mr-1",
            &merge_request(&a, &feature, &a, 7, "open")
        ),
        202
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while note_requests(&gl, "POST").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no merge request note"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = note_requests(&gl, "POST").await;
    assert!(
        created[0]["body"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("{a}--api")),
        "{}",
        created[0]
    );
    let updated = w.commit_to(
        &a,
        "feature",
        &mail,
        write(workspace(image, &["web", "api"], "two")),
    );
    deliver(
        &server.addr,
        "Merge Request Hook",
        "mr-2",
        &merge_request(&a, &updated, &a, 7, "update"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while note_requests(&gl, "PUT").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the note was not edited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        note_requests(&gl, "POST").await.len(),
        1,
        "a second note instead of an edit"
    );
    let (state, description) = wait_plan(&gl, &updated).await;
    assert_eq!(
        (state.as_str(), description.as_str()),
        ("success", "1 to create, 1 to recreate, 0 to remove")
    );

    // The merge: main moves to the previewed commit; exactly that applies.
    let bare = w.repos_dir().join(&a).join("workspace.git");
    let moved = std::process::Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["update-ref", "refs/heads/main", &updated])
        .output()
        .expect("git");
    assert!(moved.status.success());
    assert_eq!(
        server.push(&a, &updated, &a, "p-merge", WEBHOOK_SECRET),
        202
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !named_statuses(&gl, &updated, "berth")
        .await
        .iter()
        .any(|(st, _)| st == "success")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the merge was not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in ["web", "api"] {
        let env = w
            .inspect(&format!("{a}--{c}"), "{{json .Config.Env}}")
            .unwrap_or_default();
        assert!(env.contains("GREETING=two"), "{c}: {env}");
    }

    // `reconciler plan` prints the same for an admin; nothing changes now.
    let out = w.reconciler(&["plan", "--account", &a, "--ref", "feature"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = w.reconciler(&["plan", "--account", &a, "--ref", "big", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("quota"));
}

/// In GitLab mode a preview reads the account's mirror, so the ref it
/// plans is fetched into it first: a branch pushed a moment ago, and a
/// merge request from a fork, whose head only `refs/merge-requests/`
/// holds. The mirror clones and fetches over HTTP from the real `git
/// http-backend` behind the GitLab mock, with the API token.
#[tokio::test(flavor = "multi_thread")]
async fn gitlab_mode_previews_fetch_the_ref_they_plan() {
    let Some(s) = Services::from_env() else {
        return;
    };
    let gl = berth_tests::gitlab::statuses_mock().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/1000/merge_requests/4/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 556})))
        .mount(&gl)
        .await;
    let mut w = World::new(&s, 29100);
    w.use_gitlab(&gl).await;
    w.serve_git_from(&gl).await;
    let a = w.account("ga", &["students"]);
    let mail = w.mail(&a);
    let server = w.serve();
    let image = &s.test_image;
    let write = |text: String| {
        move |work: &std::path::Path| {
            std::fs::write(work.join("workspace.yaml"), text).expect("write");
        }
    };
    let main = w.commit_to(&a, "main", &mail, write(workspace(image, &["web"], "one")));
    assert_eq!(server.push(&a, &main, &a, "g-main", WEBHOOK_SECRET), 202);
    berth_tests::gitlab::wait_status(&gl, &main, "success").await;

    // A branch the mirror has never seen.
    let feature = w.commit_to(
        &a,
        "feature",
        &mail,
        write(workspace(image, &["web", "api"], "one")),
    );
    deliver(
        &server.addr,
        "Push Hook",
        "g-f1",
        &branch_push(&a, &feature, &a, "feature"),
    );
    assert_eq!(
        wait_plan(&gl, &feature).await,
        (
            "success".into(),
            "1 to create, 0 to recreate, 0 to remove".into()
        )
    );

    // A merge request from a fork: GitLab keeps its head in the target
    // project only as refs/merge-requests/4/head.
    let forked = w.commit_to(
        &a,
        "refs/merge-requests/4/head",
        &mail,
        write(workspace(image, &["web"], "two")),
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&merge_request(&a, &forked, &a, 4, "open")).expect("json");
    event["object_attributes"]["source_project_id"] = 2000.into();
    event["object_attributes"]["source_branch"] = "main".into();
    assert_eq!(
        deliver(
            &server.addr,
            "Merge Request Hook",
            "g-mr",
            &event.to_string()
        ),
        202
    );
    assert_eq!(
        wait_plan(&gl, &forked).await,
        (
            "success".into(),
            "0 to create, 1 to recreate, 0 to remove".into()
        )
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while note_requests(&gl, "POST").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no merge request note"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let note = note_requests(&gl, "POST").await[0]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("GREETING"), "{note}");

    // Every clone and fetch went over HTTP, through the token check.
    let git = berth_tests::githttp::git_requests(&gl).await;
    assert!(
        git.iter()
            .any(|(m, p)| m == "POST" && p == &format!("/{a}/workspace.git/git-upload-pack")),
        "{git:?}"
    );
    // `reconciler plan` fetches the ref too.
    let out = w.reconciler(&[
        "plan",
        "--account",
        &a,
        "--ref",
        "refs/merge-requests/4/head",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("GREETING"), "{}", stdout(&out));
    drop(server);
}
