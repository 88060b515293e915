//! Image builds from git: each `images.build` entry of a candidate
//! revision is built (when what goes into it changed), pushed to
//! `<registry>/<account>/<name>` and recorded, before the revision is
//! accepted. A build that cannot be checked, fails, or runs out of time
//! rejects the revision and changes nothing that runs.
//!
//! The Dockerfile's base images obey the same rules as `image:` (checked
//! here, [`dockerfile`]), and the builder pulls them with a token that can
//! pull only what the student may: even a Dockerfile this check misread
//! cannot make dockerd fetch a classmate's unshared image.

mod prepare;

use crate::backends::docker::{BuildJob, DockerBackend};
use crate::clients::{BuildEvent, Context, ReconcileError};
use crate::inputs::identity::Account;
use crate::store::BuildRecord;
use berth_core::grants::{Requester, grant, parse_scopes};
use berth_spec::Workspace;
use berth_spec::policy::Shared;
use berth_spec::workspace::Build;
use prepare::{Prepared, prepare};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Seconds before a build that failed with the same inputs is tried again
/// (a registry that was down, not the Dockerfile, may have failed it).
const RETRY_FAILED_AFTER: i64 = 3600;

/// Lines of the build log a rejection quotes.
const LOG_LINES: usize = 12;

/// What the builds of a revision came to.
#[derive(Debug, Default)]
pub struct Builds {
    /// Images built and pushed now.
    pub built: Vec<String>,
    /// Builds that would run (diff: nothing is built).
    pub pending: Vec<String>,
}

/// Builds what `revision` declares (with `build`; else only checks what
/// would refuse a build); `Ok(Err(why))` rejects the revision.
pub async fn run(
    ctx: &Arc<Context>,
    account: &str,
    identity: Option<&Account>,
    revision: &str,
    ws: &Workspace,
    shared: &Shared,
    build: bool,
) -> Result<Result<Builds, String>, ReconcileError> {
    let mut out = Builds::default();
    let Some(images) = &ws.images else {
        return Ok(Ok(out));
    };
    for b in &images.build {
        let Some(registry) = &ctx.site.registry else {
            return Ok(Err(
                "images.build needs the site's department registry".into()
            ));
        };
        let (name, sha, dir) = (
            account.to_string(),
            revision.to_string(),
            b.context_dir().to_string(),
        );
        let Some(tree) = ctx
            .read_source(move |s| s.tree_id(&name, &sha, &dir))
            .await?
        else {
            return Ok(Err(format!(
                "image `{}`: context `{}` is not a directory at this revision",
                *b.name,
                display_dir(b.context_dir())
            )));
        };
        let key = build_key(b, &tree);
        let previous = {
            let (account, name) = (account.to_string(), b.name.value.clone());
            ctx.store.call(move |s| s.build(&account, &name)).await?
        };
        match previous {
            Some(p) if p.key == key && p.ok => continue,
            // The same inputs failed within the hour: say so again instead
            // of rebuilding on every resync; any change retries at once.
            Some(p) if p.key == key && crate::store::now() - p.at < RETRY_FAILED_AFTER => {
                return Ok(Err(p.reason));
            }
            _ => {}
        }
        if !build {
            // Nothing is built (a diff or a preview), but whatever would
            // refuse the build refuses the revision now.
            if let Err(f) = prepare(ctx, account, revision, b, shared).await? {
                return Ok(Err(format!(
                    "image `{}` would not build: {}",
                    *b.name, f.reason
                )));
            }
            out.pending.push(b.name.value.clone());
            continue;
        }
        let reference = format!("{}/{account}/{}", registry.host.value, *b.name);
        let tell = |event: BuildEvent| {
            let _ = ctx.build_events.send(event);
        };
        tell(BuildEvent::Started {
            account: account.to_string(),
            image: reference.clone(),
        });
        let started = std::time::Instant::now();
        let built = build_one(ctx, account, identity, revision, b, shared, &reference).await;
        let seconds = started.elapsed().as_secs_f64();
        tell(BuildEvent::Finished {
            account: account.to_string(),
            image: reference.clone(),
            outcome: match &built {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(f)) => Err(f.reason.clone()),
                Err(e) => Err(e.to_string()),
            },
            seconds,
        });
        match built? {
            Ok(record) => {
                let record = BuildRecord {
                    key: key.clone(),
                    ..record.clone()
                };
                let (account, revision, detail) = (
                    account.to_string(),
                    revision.to_string(),
                    format!("{reference} {}", record.digest.as_deref().unwrap_or("")),
                );
                ctx.store
                    .call(move |s| -> Result<(), ReconcileError> {
                        s.record_build(&record)?;
                        s.add_build_usage(&account, crate::store::now(), seconds)?;
                        s.audit(&account, "image-built", Some(&revision), &detail)?;
                        Ok(())
                    })
                    .await?;
                out.built.push(reference);
            }
            Err(failure) => {
                let reason = format!(
                    "image `{}` did not build: {}{}",
                    *b.name,
                    failure.reason,
                    log_tail(&failure.log)
                );
                let record = BuildRecord {
                    account: account.to_string(),
                    name: b.name.value.clone(),
                    key: key.clone(),
                    revision: revision.to_string(),
                    ok: false,
                    digest: None,
                    reason: reason.clone(),
                    log: failure.log.clone(),
                    at: 0,
                };
                ctx.store
                    .call(move |s| -> Result<(), ReconcileError> {
                        s.record_build(&record)?;
                        s.add_build_usage(&record.account, crate::store::now(), seconds)?;
                        s.notify(
                            &record.account,
                            berth_core::notify::Category::BuildFailed,
                            &format!(
                                "revision {}: {}",
                                record.revision.get(..12).unwrap_or(&record.revision),
                                record.reason
                            ),
                        )?;
                        s.audit(
                            &record.account,
                            "image-build-failed",
                            Some(&record.revision),
                            &record.reason,
                        )?;
                        Ok(())
                    })
                    .await?;
                return Ok(Err(reason));
            }
        }
    }
    Ok(Ok(out))
}

/// Why one build produced nothing.
struct Failure {
    reason: String,
    log: String,
}

fn failure(reason: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        log: String::new(),
    }
}

async fn build_one(
    ctx: &Arc<Context>,
    account: &str,
    identity: Option<&Account>,
    revision: &str,
    b: &Build,
    shared: &Shared,
    reference: &str,
) -> Result<Result<BuildRecord, Failure>, ReconcileError> {
    let site = &ctx.site;
    let Prepared {
        entries,
        dockerfile,
        scopes,
    } = match prepare(ctx, account, revision, b, shared).await? {
        Ok(p) => p,
        Err(f) => return Ok(Err(f)),
    };
    // Matching every path against `.dockerignore` and packing the tar are
    // bounded by the context's limits, but still too much work for the
    // async threads that serve every other student.
    let packed = {
        let dockerfile = dockerfile.clone();
        tokio::task::spawn_blocking(move || berth_core::tarball::tar(&entries, &dockerfile))
            .await
            .map_err(|e| ReconcileError::Join(e.to_string()))?
    };
    let tar = match packed {
        Ok(t) => t,
        Err(e) => return Ok(Err(failure(e.to_string()))),
    };
    let backend = build_host(ctx, account).await?;
    let groups = identity.map(|a| a.groups.clone()).unwrap_or_default();
    let quota = berth_spec::policy::effective_quota(site, &groups);
    let defaults = &site.policy.default_resources;
    let (cpus, memory) = match &quota {
        Some(q) => (q.cpus, q.memory),
        None => (defaults.cpus, defaults.memory.bytes().unwrap_or(512 << 20)),
    };
    let tags: Vec<String> = b
        .tags_for(revision)
        .iter()
        .map(|t| format!("{reference}:{t}"))
        .collect();
    let job = BuildJob {
        context: tar,
        dockerfile: dockerfile.clone(),
        args: b.args.clone(),
        tags: tags.clone(),
        cpus,
        memory,
        timeout: site.build_timeout(),
        labels: HashMap::from([
            (
                berth_core::desired::LABEL_OWNER.to_string(),
                account.to_string(),
            ),
            ("berth.build".to_string(), b.name.value.clone()),
            ("berth.revision".to_string(), revision.to_string()),
        ]),
        pull_credentials: pull_credentials(ctx, account, &scopes).await,
    };
    tracing::info!(account, image = %reference, endpoint = %backend.name, "building");
    let on_step = |step: &str| {
        let _ = ctx.build_events.send(BuildEvent::Step {
            account: account.to_string(),
            image: reference.to_string(),
            step: step.to_string(),
        });
    };
    let built = backend
        .build(job, &on_step)
        .await
        .map_err(ReconcileError::from)?;
    let log = match built {
        Err(f) => {
            return Ok(Err(Failure {
                reason: f.reason,
                log: f.log,
            }));
        }
        Ok((_, log)) => log,
    };
    if let Some(limit) = quota.as_ref().and_then(|q| q.registry)
        && let Some(registry) = &ctx.registry
    {
        let used = registry.namespace_usage(account).await?;
        let size = backend
            .image_info(&tags[0])
            .await?
            .map(|(_, size)| size)
            .unwrap_or(0);
        if used + size > limit {
            return Ok(Err(Failure {
                reason: format!(
                    "over the registry quota: your images take {} MiB and this one up to {} MiB, over your {} MiB; remove images you no longer need from images.build",
                    used >> 20,
                    size >> 20,
                    limit >> 20
                ),
                log,
            }));
        }
    }
    for tag in &tags {
        // The registry refusing or failing is Berth's problem, not the
        // student's: an error, retried, never a rejection.
        backend.push(tag).await?;
        let (endpoint, tag) = (backend.name.clone(), tag.clone());
        let _ = ctx
            .store
            .call(move |s| s.record_pull(&endpoint, &tag))
            .await;
    }
    let digest = match &ctx.registry {
        Some(r) => {
            let (path, tag) = crate::backends::docker::split_tag(&tags[0]);
            let path = path
                .split_once('/')
                .map(|(_, p)| p)
                .unwrap_or(path)
                .to_string();
            r.digest(&path, tag).await.ok().flatten()
        }
        None => None,
    };
    Ok(Ok(BuildRecord {
        account: account.to_string(),
        name: b.name.value.clone(),
        key: String::new(),
        revision: revision.to_string(),
        ok: true,
        digest,
        reason: String::new(),
        log,
        at: 0,
    }))
}

/// The host an account's builds run on: where it runs, else the first
/// reachable one.
async fn build_host<'a>(
    ctx: &'a Context,
    account: &str,
) -> Result<&'a DockerBackend, ReconcileError> {
    let name = account.to_string();
    let placed = ctx.store.call(move |s| s.placement(&name)).await?;
    if let Some(ep) = placed
        && let Some(b) = ctx.dockerd(&ep)
    {
        return Ok(b);
    }
    ctx.docker
        .values()
        .find_map(|b| b.as_ref().ok().and_then(|b| b.docker()))
        .ok_or_else(|| ReconcileError::NoEndpoint(account.to_string()))
}

/// What the builder pulls base images with: a token granting the student
/// exactly the pulls it may make, when Berth serves the registry's tokens;
/// else nothing (never Berth's own credentials).
async fn pull_credentials(
    ctx: &Context,
    account: &str,
    scopes: &[String],
) -> HashMap<String, bollard::auth::DockerCredentials> {
    let Some(registry) = &ctx.site.registry else {
        return HashMap::new();
    };
    let host = registry.host.value.clone();
    let shares = match &ctx.registry_keys {
        Some(_) => ctx.store.call(|s| s.shares()).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let token = ctx.registry_keys.as_ref().and_then(|keys| {
        let shared = |repo: &str| {
            let key = format!("{host}/{repo}");
            shares.iter().any(|s| s.repository == key)
        };
        let student = Requester::Account {
            name: account.to_string(),
            admin: false,
        };
        let granted = grant(
            &student,
            &parse_scopes(scopes.iter().map(String::as_str)),
            &shared,
        );
        keys.signer.sign(account, &granted).ok().map(|i| i.token)
    });
    let credentials = match token {
        Some(token) => bollard::auth::DockerCredentials {
            serveraddress: Some(host.clone()),
            registrytoken: Some(token),
            ..Default::default()
        },
        // Without the token service there is no credential that can pull
        // only what the student may: Berth's own can pull every namespace,
        // so a Dockerfile this check misread would reach a classmate's
        // image. The build pulls anonymously instead (public images only).
        None => return HashMap::new(),
    };
    HashMap::from([(host, credentials)])
}

/// Hash of everything that goes into a build.
fn build_key(b: &Build, tree: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"berth-build-v1\0");
    for part in [
        b.name.as_str(),
        b.context_dir(),
        b.dockerfile.as_str(),
        tree,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (k, v) in &b.args {
        h.update(format!("{k}={v}\0").as_bytes());
    }
    for t in &b.tags {
        h.update(format!("tag={}\0", t.value).as_bytes());
    }
    crate::base::secret::hex(&h.finalize())
}

fn display_dir(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

/// The last lines of a build log, indented, for a rejection.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(LOG_LINES);
    let mut out = String::from("\nlast lines of the build log:");
    for l in &lines[start..] {
        out.push_str("\n  ");
        out.push_str(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Build {
        let ws = berth_spec::parse_workspace(
            format!("version: 1\nimages:\n  build:\n    - {yaml}\n").as_bytes(),
        )
        .expect("valid");
        ws.images.expect("images").build[0].clone()
    }

    #[test]
    fn the_key_changes_with_every_input_and_only_then() {
        let base = build("{ name: tools, context: docker/tools }");
        let k = build_key(&base, "tree1");
        assert_eq!(
            k,
            build_key(&build("{ name: tools, context: docker/tools/ }"), "tree1")
        );
        for other in [
            build_key(&base, "tree2"),
            build_key(
                &build("{ name: tools, context: docker/tools, args: { A: b } }"),
                "tree1",
            ),
            build_key(
                &build("{ name: tools, context: docker/tools, tags: [v1] }"),
                "tree1",
            ),
            build_key(
                &build("{ name: tools, context: docker/tools, dockerfile: D }"),
                "tree1",
            ),
        ] {
            assert_ne!(k, other);
        }
    }

    #[test]
    fn a_rejection_quotes_the_end_of_the_log() {
        let log: String = (0..30).map(|i| format!("step {i}\n")).collect();
        let tail = log_tail(&log);
        assert!(tail.contains("step 29") && tail.contains("step 18"));
        assert!(!tail.contains("step 17\n"));
    }
}
