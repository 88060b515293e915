//! The webhook router against GitLab's documented payloads: status codes of
//! every branch of the checks, and exactly which SyncRequests come out.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use berth_webhook::{Config, Counts, Outcome, SyncRequest, SyncSink, router};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

#[derive(Default)]
struct Recorder(Mutex<Vec<SyncRequest>>);

impl SyncSink for Recorder {
    fn submit(&self, request: SyncRequest) {
        self.0.lock().expect("lock").push(request);
    }
}

struct Harness {
    app: axum::Router,
    sink: Arc<Recorder>,
    counts: Arc<Counts>,
}

fn harness() -> Harness {
    let sink = Arc::new(Recorder::default());
    let counts = Arc::new(Counts::default());
    let mut config = Config::new("s3cret");
    config.max_body = 64 * 1024;
    Harness {
        app: router(config, sink.clone(), counts.clone()),
        sink,
        counts,
    }
}

const PUSH: &str = include_str!("fixtures/push.json");
const SYSTEM_PUSH: &str = include_str!("fixtures/system-push.json");

impl Harness {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn push(&self, token: &str, uuid: &str, body: &str) -> StatusCode {
        let headers = [
            ("x-gitlab-token", token),
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-event-uuid", uuid),
        ];
        self.send("POST", "/hooks/gitlab", &headers, body.to_string())
            .await
            .0
    }

    fn requests(&self) -> Vec<SyncRequest> {
        self.sink.0.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn documented_push_event_becomes_one_sync_request() {
    let h = harness();
    assert_eq!(h.push("s3cret", "u-1", PUSH).await, StatusCode::ACCEPTED);
    assert_eq!(
        h.requests(),
        vec![SyncRequest {
            account: "alice".into(),
            repository: "workspace".into(),
            path: Some("alice/workspace".into()),
            project_id: Some(15),
            revision: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into()),
            pusher: Some("alice".into()),
            pusher_id: Some(4),
            delivery: Some("u-1".into()),
            preview: None,
        }]
    );
}

#[tokio::test]
async fn system_hook_push_is_accepted_and_other_system_events_ignored() {
    let h = harness();
    let headers = [
        ("x-gitlab-token", "s3cret"),
        ("x-gitlab-event", "System Hook"),
    ];
    let (status, _) = h
        .send("POST", "/hooks/gitlab", &headers, SYSTEM_PUSH.into())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = h
        .send(
            "POST",
            "/hooks/gitlab",
            &headers,
            r#"{"event_name":"user_create","username":"x"}"#.into(),
        )
        .await;
    assert_eq!((status, body.contains("ignored")), (StatusCode::OK, true));
    assert_eq!(h.requests().len(), 1);
}

#[tokio::test]
async fn wrong_or_missing_secret_is_401_and_nothing_is_queued() {
    let h = harness();
    assert_eq!(h.push("wrong", "u-1", PUSH).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.push("s3cre", "u-2", PUSH).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.push("s3cret-and-more", "u-3", PUSH).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = h
        .send(
            "POST",
            "/hooks/gitlab",
            &[("x-gitlab-event", "Push Hook")],
            PUSH.into(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Auth comes first: even a malformed body is 401 without the secret.
    assert_eq!(
        h.push("wrong", "u-4", "{not json").await,
        StatusCode::UNAUTHORIZED
    );
    assert!(h.requests().is_empty());
    assert_eq!(h.counts.get(Outcome::Unauthorized), 5);
}

#[tokio::test]
async fn an_empty_configured_secret_authenticates_nothing() {
    let sink = Arc::new(Recorder::default());
    let app = router(Config::new(""), sink.clone(), Arc::new(Counts::default()));
    let req = Request::post("/hooks/gitlab")
        .header("x-gitlab-token", "")
        .header("x-gitlab-event", "Push Hook")
        .body(Body::from(PUSH))
        .expect("request");
    assert_eq!(
        app.oneshot(req).await.expect("response").status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn oversized_malformed_and_wrong_method() {
    let h = harness();
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(
        h.push("s3cret", "big", &big).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        h.push("s3cret", "bad", "{\"after\": ").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.push("s3cret", "shape", "{\"after\": 1}").await,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = h.send("GET", "/hooks/gitlab", &[], String::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn redeliveries_are_ignored_by_uuid_or_idempotency_key() {
    let h = harness();
    assert_eq!(h.push("s3cret", "same", PUSH).await, StatusCode::ACCEPTED);
    assert_eq!(h.push("s3cret", "same", PUSH).await, StatusCode::OK);
    let headers = [
        ("x-gitlab-token", "s3cret"),
        ("x-gitlab-event", "Push Hook"),
        ("idempotency-key", "k1"),
    ];
    assert_eq!(
        h.send("POST", "/hooks/gitlab", &headers, PUSH.into())
            .await
            .0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.send("POST", "/hooks/gitlab", &headers, PUSH.into())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(h.requests().len(), 2);
    assert_eq!(h.counts.get(Outcome::Duplicate), 2);
}

#[tokio::test]
async fn another_branch_is_queued_as_a_preview_and_tags_and_other_events_ignored() {
    let h = harness();
    let feature = PUSH.replace("refs/heads/main", "refs/heads/feature");
    assert_eq!(h.push("s3cret", "f", &feature).await, StatusCode::ACCEPTED);
    let previews = h.requests();
    assert_eq!(previews.len(), 1);
    assert_eq!(
        previews[0].preview,
        Some(berth_webhook::Preview {
            git_ref: "feature".into(),
            merge_request: None
        })
    );
    let h = harness();
    let tag = PUSH.replace("refs/heads/main", "refs/tags/v1");
    assert_eq!(h.push("s3cret", "t", &tag).await, StatusCode::OK);
    let headers = [
        ("x-gitlab-token", "s3cret"),
        ("x-gitlab-event", "Issue Hook"),
    ];
    assert_eq!(
        h.send("POST", "/hooks/gitlab", &headers, "{}".into())
            .await
            .0,
        StatusCode::OK
    );
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn deleting_the_default_branch_asks_for_a_resync_without_a_revision() {
    let h = harness();
    let deleted = PUSH
        .replace(
            "\"after\": \"da1560886d4f094c3e6c9ef40349f7d38b5d27d7\"",
            "\"after\": \"0000000000000000000000000000000000000000\"",
        )
        .replace(
            "\"checkout_sha\": \"da1560886d4f094c3e6c9ef40349f7d38b5d27d7\"",
            "\"checkout_sha\": null",
        );
    assert_eq!(
        h.push("s3cret", "del", &deleted).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(h.requests()[0].revision, None);
}

#[tokio::test]
async fn every_outcome_is_reported_to_the_observer() {
    let h = harness();
    h.push("s3cret", "m1", PUSH).await;
    h.push("nope", "m2", PUSH).await;
    assert_eq!(h.counts.get(Outcome::Queued), 1);
    assert_eq!(h.counts.get(Outcome::Unauthorized), 1);
    let (status, _) = h.send("GET", "/metrics", &[], String::new()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "metrics are the reconciler's"
    );
}

#[tokio::test]
async fn a_merge_request_into_the_default_branch_is_queued_as_a_preview() {
    let h = harness();
    let event = serde_json::json!({
        "object_kind": "merge_request",
        "user": { "id": 4, "username": "alice", "name": "Alice" },
        "project": { "id": 15, "path_with_namespace": "alice/workspace", "default_branch": "main" },
        "object_attributes": {
            "iid": 7, "target_branch": "main", "source_branch": "feature",
            "source_project_id": 99, "target_project_id": 15,
            "state": "opened", "action": "open",
            "last_commit": { "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7" }
        }
    })
    .to_string();
    let headers = [
        ("x-gitlab-token", "s3cret"),
        ("x-gitlab-event", "Merge Request Hook"),
        ("x-gitlab-event-uuid", "mr-7"),
    ];
    let (status, _) = h
        .send("POST", "/hooks/gitlab", &headers, event.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = h.requests();
    assert_eq!(got.len(), 1);
    // From a fork too: the head is read from the target project's ref.
    assert_eq!(
        got[0].preview,
        Some(berth_webhook::Preview {
            git_ref: "refs/merge-requests/7/head".into(),
            merge_request: Some(7)
        })
    );
    assert_eq!(
        got[0].revision.as_deref(),
        Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
    );
    // Merged or closed, or into another branch: nothing.
    let h = harness();
    for (from, to) in [
        ("\"open\"", "\"merge\""),
        ("\"target_branch\":\"main\"", "\"target_branch\":\"dev\""),
    ] {
        let other = event.replace(from, to);
        let headers = [
            ("x-gitlab-token", "s3cret"),
            ("x-gitlab-event", "Merge Request Hook"),
        ];
        let (status, _) = h.send("POST", "/hooks/gitlab", &headers, other).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(h.requests().is_empty());
}
