//! Test fixtures shared by the library's unit tests: the example site,
//! and the engine running in-process over fakes ([`InProcess`]).

/// The project's example `site.yaml`.
pub(crate) fn example_site() -> berth_spec::Site {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/site.yaml"
    ))
    .expect("example site");
    berth_spec::parse_site(&text).expect("the example site is valid")
}

/// An engine running in-process: a site with one fake Docker endpoint
/// `local`, a directory of fixed entries, an in-memory store and real git
/// repositories in a temporary directory. No service runs.
pub(crate) struct InProcess {
    pub dir: std::path::PathBuf,
    pub ctx: std::sync::Arc<crate::clients::Context>,
    pub docker: std::sync::Arc<crate::backends::fake::FakeContainers>,
    pub ldap: std::sync::Arc<crate::inputs::identity::fixed::FixedEntries>,
}

impl InProcess {
    pub fn new(name: &str) -> InProcess {
        let dir =
            std::env::temp_dir().join(format!("berth-inprocess-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("repos")).expect("temp dir");
        let docker = std::sync::Arc::new(crate::backends::fake::FakeContainers::default());
        let ldap = std::sync::Arc::new(crate::inputs::identity::fixed::FixedEntries::default());
        let directory = crate::inputs::identity::Directory::over(
            Box::new(ldap.clone()),
            std::time::Duration::ZERO,
        );
        let endpoint: crate::backends::Endpoint = docker.clone();
        let ctx = crate::clients::Context::for_tests(
            example_site(),
            &dir.join("repos"),
            directory,
            [("local".to_string(), endpoint)].into(),
        );
        InProcess {
            dir,
            ctx: std::sync::Arc::new(ctx),
            docker,
            ldap,
        }
    }

    /// A student in the `students` group (mail `<name>@berth.test`).
    pub fn student(&self, name: &str) -> berth_core::account::Account {
        let account = berth_core::account::Account {
            name: name.into(),
            dn: format!("uid={name},ou=people,dc=berth,dc=test"),
            entry: format!("uid={name},ou=people,dc=berth,dc=test"),
            mail: Some(format!("{name}@berth.test")),
            groups: vec!["students".into()],
            disabled: false,
            posix: None,
        };
        self.ldap.put(account.clone(), "pw");
        account
    }

    /// Commits `workspace` to `account`'s repository as `<account>@berth.test`;
    /// returns the commit id.
    pub fn commit(&self, account: &str, workspace: &str) -> String {
        let bare = self.dir.join("repos").join(account).join("workspace.git");
        let work = self.dir.join("work").join(account);
        let git = |dir: &std::path::Path, args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .expect("git runs");
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        if !bare.exists() {
            std::fs::create_dir_all(&bare).expect("repo dir");
            std::fs::create_dir_all(&work).expect("work dir");
            git(&bare, &["init", "-q", "--bare", "-b", "main"]);
            git(&work, &["init", "-q", "-b", "main"]);
        }
        std::fs::write(work.join("workspace.yaml"), workspace).expect("write");
        git(&work, &["add", "-A"]);
        let email = format!("user.email={account}@berth.test");
        git(
            &work,
            &[
                "-c",
                "user.name=T",
                "-c",
                &email,
                "commit",
                "-q",
                "-m",
                "change",
            ],
        );
        let target = bare.display().to_string();
        git(&work, &["push", "-q", &target, "HEAD:main"]);
        git(&work, &["rev-parse", "HEAD"])
    }

    /// Evaluates and executes `account` once, as a resync does.
    pub async fn reconcile(
        &self,
        account: &str,
    ) -> Result<
        (
            crate::engine::reconcile::AccountPlan,
            crate::engine::reconcile::AccountReport,
        ),
        crate::clients::ReconcileError,
    > {
        let observed = self.ctx.observe_account(account).await;
        let plan = crate::engine::reconcile::evaluate(&self.ctx, account, &observed, None).await?;
        let report = crate::engine::reconcile::execute(&self.ctx, &plan).await?;
        Ok((plan, report))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
