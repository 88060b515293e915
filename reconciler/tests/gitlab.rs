//! The GitLab client against a mock server answering as GitLab's REST API
//! documents: exact requests (paths, token header, bodies), pagination,
//! retries on 5xx/429 with Retry-After, and hook creation vs update.

use berth_reconciler::inputs::gitlab::{CommitState, GitLab, GitLabError};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> GitLab {
    GitLab::new(&server.uri(), "glpat-x".into()).with_backoff(4, Duration::from_millis(10))
}

const SHA: &str = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";

#[tokio::test]
async fn commit_status_is_posted_as_documented() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v4/projects/15/statuses/{SHA}")))
        .and(header("PRIVATE-TOKEN", "glpat-x"))
        .and(body_partial_json(serde_json::json!({"state": "failed", "name": "berth", "description": "rejected: quota"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 93, "status": "failed"})))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .set_status(15, SHA, CommitState::Failed, "rejected: quota")
        .await
        .expect("posted");
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .with_priority(3)
        .mount(&server)
        .await;
    client(&server)
        .set_status(1, SHA, CommitState::Success, "ok")
        .await
        .expect("eventually posted");
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(4));
}

#[tokio::test]
async fn persistent_errors_give_up_with_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = client(&server)
        .set_status(1, SHA, CommitState::Running, "x")
        .await
        .expect_err("gives up");
    assert!(
        matches!(err, GitLabError::Status { status: 503, .. }),
        "{err}"
    );
    assert_eq!(
        server.received_requests().await.map(|r| r.len()),
        Some(4),
        "max attempts"
    );
    // Client errors are not retried.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    assert!(
        client(&server)
            .set_status(1, SHA, CommitState::Running, "x")
            .await
            .is_err()
    );
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(1));
}

#[tokio::test]
async fn group_projects_follow_pagination() {
    let server = MockServer::start().await;
    let project = |id: u64, p: &str| serde_json::json!({"id": id, "path_with_namespace": p, "default_branch": "main"});
    Mock::given(method("GET"))
        .and(path("/api/v4/groups/students%2F2026/projects"))
        .and(query_param("page", "1"))
        .and(query_param("include_subgroups", "true"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Next-Page", "2")
                .set_body_json(vec![project(1, "alice/workspace")]),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/groups/students%2F2026/projects"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Next-Page", "")
                .set_body_json(vec![project(2, "bob/workspace")]),
        )
        .mount(&server)
        .await;
    let got = client(&server)
        .group_projects("students/2026")
        .await
        .expect("projects");
    let names: Vec<&str> = got.iter().map(|p| p.path_with_namespace.as_str()).collect();
    assert_eq!(names, ["alice/workspace", "bob/workspace"]);
}

#[tokio::test]
async fn file_existence_is_a_head_request() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/api/v4/projects/1/repository/files/workspace.yaml"))
        .and(query_param("ref", "main"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let gl = client(&server);
    assert!(
        gl.has_file(1, "workspace.yaml", "main")
            .await
            .expect("answer")
    );
    assert!(
        !gl.has_file(2, "workspace.yaml", "main")
            .await
            .expect("answer")
    );
}

#[tokio::test]
async fn hooks_are_created_once_then_updated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/7/hooks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!([{"id": 3, "url": "https://berth/hooks/gitlab"}])),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v4/projects/7/hooks/3"))
        .and(body_partial_json(
            serde_json::json!({"push_events": true, "token": "s", "tag_push_events": false}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": 3, "url": "https://berth/hooks/gitlab"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/8/hooks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/8/hooks"))
        .and(body_partial_json(
            serde_json::json!({"url": "https://berth/hooks/gitlab", "push_events": true}),
        ))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": 9, "url": "https://berth/hooks/gitlab"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let gl = client(&server);
    assert_eq!(
        gl.ensure_hook(7, "https://berth/hooks/gitlab", "s")
            .await
            .expect("updated"),
        3
    );
    assert_eq!(
        gl.ensure_hook(8, "https://berth/hooks/gitlab", "s")
            .await
            .expect("created"),
        9
    );
}

#[tokio::test]
async fn runners_are_created_for_the_project_and_deleted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .and(body_partial_json(serde_json::json!({"runner_type": "project_type", "project_id": 15, "tag_list": "docker,alice"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 12345, "token": "glrt-abc", "token_expires_at": null})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/v4/runners/12345"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/v4/runners/999"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let gl = client(&server);
    let runner = gl
        .create_runner(15, "berth alice", &["docker".into(), "alice".into()])
        .await
        .expect("created");
    assert_eq!((runner.id, runner.token.as_str()), (12345, "glrt-abc"));
    gl.delete_runner(12345).await.expect("deleted");
    gl.delete_runner(999).await.expect("already gone is fine");
}

/// An admin reading the error knows what to check: the address and the
/// setting it came from, the real cause, and for a refused token the
/// variable that holds it.
#[tokio::test]
async fn errors_name_the_setting_to_check() {
    let nowhere =
        berth_spec::Located::at("http://127.0.0.1:9".to_string(), berth_spec::Pos::new(3, 8));
    let err = GitLab::configured(&nowhere, "BERTH_GITLAB_TOKEN", "glpat-x".into())
        .with_backoff(1, Duration::from_millis(1))
        .set_status(15, SHA, CommitState::Success, "ok")
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(matches!(err, GitLabError::Unreachable { .. }), "{text}");
    for part in ["http://127.0.0.1:9", "`gitlab.url` (line 3", "refused"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string("{\"message\":\"401 Unauthorized\"}"),
        )
        .mount(&server)
        .await;
    let url = berth_spec::Located::new(server.uri());
    let err = GitLab::configured(&url, "BERTH_GITLAB_TOKEN", "glpat-x".into())
        .set_status(15, SHA, CommitState::Success, "ok")
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("BERTH_GITLAB_TOKEN is not valid"),
        "{err}"
    );
}
