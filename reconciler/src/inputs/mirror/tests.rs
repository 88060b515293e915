use super::*;

#[test]
fn basic_auth_is_standard_base64() {
    assert_eq!(basic("oauth2", "x"), "b2F1dGgyOng=");
    assert_eq!(basic("a", "bc"), "YTpiYw==");
    assert_eq!(basic("ab", "c"), "YWI6Yw==");
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "git {args:?}");
}

/// A bare upstream `<tmp>/up/alice/workspace.git` and a work tree that
/// pushes to it.
struct Upstream {
    tmp: PathBuf,
    bare: PathBuf,
    work: PathBuf,
}

impl Upstream {
    fn new(name: &str) -> Upstream {
        let tmp = std::env::temp_dir().join(format!("berth-mirror-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let bare = tmp.join("up/alice/workspace.git");
        let work = tmp.join("work");
        std::fs::create_dir_all(&bare).expect("dirs");
        std::fs::create_dir_all(&work).expect("dirs");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        git(&work, &["init", "-q", "-b", "main"]);
        Upstream { tmp, bare, work }
    }

    fn commit_and_push(&self, message: &str, branch: &str) {
        git(
            &self.work,
            &[
                "-c",
                "user.name=a",
                "-c",
                "user.email=a@x",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                message,
            ],
        );
        let target = format!("HEAD:{branch}");
        git(
            &self.work,
            &[
                "push",
                "-q",
                self.bare.to_str().unwrap_or_default(),
                &target,
            ],
        );
    }

    fn mirrors(&self) -> Mirrors {
        let template = format!(
            "file://{}/up/{{account}}/{{repository}}.git",
            self.tmp.display()
        );
        Mirrors::new(self.tmp.join("mirrors"), "workspace", &template, None)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

#[tokio::test]
async fn clones_then_fetches_new_commits() {
    let up = Upstream::new("fetch");
    up.commit_and_push("one", "main");
    let mirrors = up.mirrors();
    mirrors.fetch("alice", None).await.expect("clone");
    let source = crate::inputs::source::LocalSource::new(mirrors.root(), "workspace");
    let first = source.head("alice").expect("read").expect("head");
    up.commit_and_push("two", "main");
    mirrors.fetch("alice", None).await.expect("fetch");
    let second = source.head("alice").expect("read").expect("head");
    assert_ne!(first.sha, second.sha);
    assert_eq!(second.summary, "two");
    assert!(mirrors.fetch("nobody", None).await.is_err());
}

#[tokio::test]
async fn a_changed_default_branch_is_followed() {
    let up = Upstream::new("branch");
    up.commit_and_push("on main", "main");
    let mirrors = up.mirrors();
    mirrors.fetch("alice", None).await.expect("clone");
    up.commit_and_push("on trunk", "trunk");
    git(&up.bare, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    mirrors.fetch("alice", None).await.expect("fetch");
    let source = crate::inputs::source::LocalSource::new(mirrors.root(), "workspace");
    let head = source.head("alice").expect("read").expect("head");
    assert_eq!(head.summary, "on trunk");
}

#[tokio::test]
async fn a_repository_past_the_size_cap_is_refused_and_left_nowhere() {
    let up = Upstream::new("size");
    // 3 MiB that do not compress.
    let mut noise = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while noise.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(up.work.join("blob"), &noise).expect("blob");
    git(&up.work, &["add", "blob"]);
    up.commit_and_push("big", "main");
    let mirrors = up.mirrors().with_limits(Limits {
        timeout: std::time::Duration::from_secs(60),
        max_bytes: 1 << 20,
    });
    let err = mirrors.fetch("alice", None).await.expect_err("too big");
    assert!(err.message.contains("grew past 1 MiB"), "{err}");
    assert!(!up.tmp.join("mirrors/alice/workspace.git").exists());
}

#[tokio::test]
async fn a_fetch_that_hangs_is_stopped() {
    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let tmp = std::env::temp_dir().join(format!("berth-mirror-hang-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let template = format!("http://127.0.0.1:{port}/{{account}}/{{repository}}.git");
    let mirrors = Mirrors::new(&tmp, "workspace", &template, None).with_limits(Limits {
        timeout: std::time::Duration::from_secs(1),
        max_bytes: 1 << 20,
    });
    let err = mirrors.fetch("alice", None).await.expect_err("hangs");
    assert!(err.message.contains("took longer than 1 s"), "{err}");
    drop(listener);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn preview_refs_are_branches_or_merge_request_heads() {
    assert_eq!(
        preview_ref("feature").as_deref(),
        Some("refs/heads/feature")
    );
    assert_eq!(
        preview_ref("team/x-1").as_deref(),
        Some("refs/heads/team/x-1")
    );
    assert_eq!(
        preview_ref("refs/merge-requests/7/head").as_deref(),
        Some("refs/merge-requests/7/head")
    );
    for bad in [
        "",
        "a:b",
        "*",
        "a/*",
        "-x",
        "+x",
        "a..b",
        "a/.hidden",
        "x.lock",
        "a b",
        "a@{1}",
        "a\\b",
        "trail.",
        "a//b",
        "refs/heads/main",
        "refs/merge-requests/x/head",
        "refs/merge-requests/7/merge",
        "refs/merge-requests//head",
    ] {
        assert_eq!(preview_ref(bad), None, "{bad:?}");
    }
}

#[test]
fn ls_remote_symref_output_is_read() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let text = format!("ref: refs/heads/trunk\tHEAD\n{sha}\tHEAD\n");
    assert_eq!(
        parse_remote_head(&text),
        Some(RemoteHead {
            branch: "trunk".into(),
            sha: sha.into()
        })
    );
    assert_eq!(parse_remote_head(""), None);
    assert_eq!(parse_remote_head(&format!("{sha}\trefs/heads/x\n")), None);
}

#[tokio::test]
async fn a_merge_request_head_and_a_new_branch_are_fetched_for_previews() {
    let up = Upstream::new("preview");
    up.commit_and_push("on main", "main");
    let mirrors = up.mirrors();
    mirrors.fetch("alice", None).await.expect("clone");
    // GitLab keeps a fork's merge request head only here.
    up.commit_and_push("from a fork", "refs/merge-requests/3/head");
    up.commit_and_push("on feature", "feature");
    let source = crate::inputs::source::LocalSource::new(mirrors.root(), "workspace");
    let sha = |r: &str| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&up.bare)
            .args(["rev-parse", r])
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (mr, feature) = (sha("refs/merge-requests/3/head"), sha("refs/heads/feature"));
    assert!(source.at("alice", &mr).expect("read").is_none());
    mirrors
        .fetch_ref("alice", None, "refs/merge-requests/3/head")
        .await
        .expect("fetch the merge request head");
    assert_eq!(
        source.at("alice", &mr).expect("read").map(|h| h.summary),
        Some("from a fork".to_string())
    );
    mirrors
        .fetch_ref("alice", None, "feature")
        .await
        .expect("fetch the branch");
    assert!(source.at("alice", &feature).expect("read").is_some());
    // The default branch's head, asked of the remote, without a fetch.
    let head = mirrors
        .remote_head("alice", None, std::time::Duration::from_secs(30))
        .await
        .expect("ls-remote")
        .expect("a head");
    assert_eq!(
        (head.branch.as_str(), head.sha),
        ("main", sha("refs/heads/main"))
    );
    let err = mirrors
        .fetch_ref("alice", None, "a:b")
        .await
        .expect_err("refused");
    assert!(err.message.contains("not a ref"), "{err}");
}
