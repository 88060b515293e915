//! What `serve` does besides reconciling pushes: the read model kept
//! fresh, the image catalogue and image collection, the periodic resync,
//! commit statuses posted in order, and watching local repositories.

use super::{CATALOGUE_EVERY, GC_EVERY, ServeError, Shared, StatusUpdate};
use crate::edges::queue::Queue;
use crate::inputs::gitlab::GitLab;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Rebuilds `account`'s view after a reconcile: from `before` (the
/// observation the reconcile planned against) when it changed nothing on
/// the backends, else from a fresh observation of the account's objects
/// (one label-filtered list per kind). Reconciles that change nothing —
/// resyncs, refused pushes — so cost dockerd no extra call.
pub(super) async fn refresh_view(
    shared: &Shared,
    account: &str,
    before: crate::clients::Observed,
    changed: bool,
) {
    let observed = if changed {
        shared.ctx.observe_account(account).await
    } else {
        before
    };
    let name = account.to_string();
    let cards = crate::engine::reconcile::lending::cards(&shared.ctx.site);
    match shared
        .ctx
        .store
        .call(move |s| crate::ops::view::account(s, &observed, &name, &cards))
        .await
    {
        Ok(v) => {
            shared.views.write().await.insert(account.to_string(), v);
            let _ = shared.updates.send(account.to_string());
        }
        Err(e) => tracing::warn!(account, cause = %e, "reading the store for the read model"),
    }
}

/// Views the console asks for again (a container it started or stopped).
pub(super) async fn refresh_requested(
    shared: Arc<Shared>,
    mut requests: tokio::sync::mpsc::Receiver<crate::edges::console::FollowUp>,
) {
    use crate::edges::console::FollowUp;
    while let Some(follow) = requests.recv().await {
        match follow {
            FollowUp::View(account) => {
                refresh_view(&shared, &account, crate::clients::Observed::default(), true).await;
            }
            FollowUp::Reconcile(account) => shared.queue.resync(&account),
        }
    }
}

/// The read model of every known account at start, from one observation.
pub(super) async fn refresh_all_views(shared: Arc<Shared>) {
    let observed = Arc::new(shared.ctx.observe_all().await);
    let accounts = match crate::ops::discovery::list(&shared.ctx, None, &observed).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(cause = %e, "listing accounts for the read model");
            return;
        }
    };
    let mut views = BTreeMap::new();
    for a in accounts {
        let (seen, name) = (observed.clone(), a.clone());
        let cards = crate::engine::reconcile::lending::cards(&shared.ctx.site);
        match shared
            .ctx
            .store
            .call(move |s| crate::ops::view::account(s, &seen, &name, &cards))
            .await
        {
            Ok(v) => {
                views.insert(a, v);
            }
            Err(e) => {
                tracing::warn!(account = a, cause = %e, "reading the store for the read model")
            }
        }
    }
    // Reconciles that finished meanwhile hold newer views.
    let mut current = shared.views.write().await;
    for (a, v) in views {
        current.entry(a).or_insert(v);
    }
}

/// Keeps the catalogue fresh (every 5 minutes and after pushes that touch
/// images) and collects unused images every hour.
pub(super) async fn images_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if shared.ctx.registry.is_none() && shared.ctx.docker.is_empty() {
        return;
    }
    let mut last_gc = Instant::now();
    loop {
        match crate::ops::catalogue::catalogue(&shared.ctx).await {
            Ok(Some(entries)) => {
                // Each namespace's bytes, for storage over time (a
                // manifest counted once, however many tags name it).
                let mut owners: BTreeMap<String, u64> = BTreeMap::new();
                let mut seen = std::collections::BTreeSet::new();
                for e in &entries {
                    if seen.insert((&e.owner, &e.name, &e.digest)) {
                        *owners.entry(e.owner.clone()).or_default() += e.size;
                    }
                }
                let owners: Vec<(String, u64)> = owners.into_iter().collect();
                let at = crate::store::now();
                if let Err(e) = shared
                    .ctx
                    .store
                    .call(move |s| s.record_registry_bytes(at, &owners))
                    .await
                {
                    tracing::warn!(cause = %e, "recording the registry's bytes");
                }
                *shared.catalogue.write().await = entries;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(cause = %e, "catalogue refresh failed"),
        }
        if last_gc.elapsed() >= GC_EVERY {
            last_gc = Instant::now();
            match crate::ops::gc::collect(&shared.ctx, shared.ctx.site.image_gc_after(), false)
                .await
            {
                Ok(removed) if !removed.is_empty() => {
                    let bytes: u64 = removed.iter().map(|r| r.bytes).sum();
                    tracing::info!(images = removed.len(), bytes, "image gc");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(cause = %e, "image gc failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CATALOGUE_EVERY.min(GC_EVERY)) => {}
            _ = shared.refresh.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

pub(super) async fn resync_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = shared.ctx.site.resync_interval();
    loop {
        let observed = shared.ctx.observe_all().await;
        match crate::ops::discovery::list(&shared.ctx, None, &observed).await {
            Ok(accounts) => accounts.iter().for_each(|a| shared.queue.resync(a)),
            Err(e) => tracing::warn!(cause = %e, "listing accounts for resync"),
        }
        // ±10 % jitter so several replicas or restarts do not synchronise.
        let jitter = (nanos() % 200) as f64 / 1000.0 - 0.1;
        let wait = interval.mul_f64(1.0 + jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Every `every` (`repositories.gitlab.poll`), asks GitLab where each
/// known workspace's default branch points and hands what moved to `sink`
/// as the webhook would: queued, with a pending commit status.
pub(super) async fn poll_loop(
    shared: Arc<Shared>,
    sink: Arc<dyn berth_webhook::SyncSink>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let poller = crate::ops::poll::Poller::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let round = tokio::select! {
            r = poller.round(&shared.ctx) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match round {
            Ok(r) => {
                for (account, cause) in r.failed.iter().take(5) {
                    tracing::warn!(%account, %cause, "poll: could not ask the repository");
                }
                for (account, sha) in &r.unattributed {
                    tracing::info!(%account, revision = %crate::engine::reconcile::short(sha), "poll: moved, but GitLab names no pusher yet");
                }
                let level_info = !r.pushes.is_empty() || !r.failed.is_empty();
                let (polled, moved, failed) = (r.polled, r.pushes.len(), r.failed.len());
                let (asked_ms, attributed_ms) =
                    (r.asked.as_millis() as u64, r.attributed.as_millis() as u64);
                if level_info {
                    tracing::info!(polled, moved, failed, asked_ms, attributed_ms, "poll round");
                } else {
                    tracing::debug!(polled, asked_ms, "poll round");
                }
                for push in r.pushes {
                    sink.submit(push);
                }
            }
            Err(e) => tracing::warn!(cause = %e, "poll round failed"),
        }
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

pub(super) async fn post_statuses(client: GitLab, mut rx: mpsc::Receiver<StatusUpdate>) {
    while let Some(u) = rx.recv().await {
        if let Err(e) = client
            .set_status(u.project, &u.sha, u.state, &u.description)
            .await
        {
            tracing::warn!(cause = %e, project = u.project, "commit status not posted");
        }
    }
}

/// Watches local bare repositories; a write to a ref under
/// `<root>/<account>/` queues that account. Only writes: inotify reports
/// opening a file too, and serve's own reads of a repository queued the
/// next reconcile of it, for ever, each undoing what a student had just
/// stopped. Only refs: a push writes its objects first, over as long as it
/// takes, and a push spanning two debounce windows queued two reconciles.
pub(super) fn watch(
    root: PathBuf,
    queue: Arc<Queue>,
) -> Result<
    notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    ServeError,
> {
    use notify::RecursiveMode;
    let root_for_events = root.clone();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(200),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = res else { return };
            let mut accounts = std::collections::BTreeSet::new();
            for e in events {
                if !(e.kind.is_create() || e.kind.is_modify() || e.kind.is_remove()) {
                    continue;
                }
                for p in &e.paths {
                    if let Ok(rel) = p.strip_prefix(&root_for_events)
                        && names_a_ref(rel)
                        && let Some(first) = rel.components().next()
                    {
                        accounts.insert(first.as_os_str().to_string_lossy().into_owned());
                    }
                }
            }
            for a in accounts {
                queue.resync(&a);
            }
        },
    )
    .map_err(|source| ServeError::Watch {
        path: root.display().to_string(),
        source,
    })?;
    debouncer
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|source| ServeError::Watch {
            path: root.display().to_string(),
            source,
        })?;
    Ok(debouncer)
}

/// Whether a path inside a bare repository is (or locks) one of its refs.
fn names_a_ref(rel: &std::path::Path) -> bool {
    // The first component is the account, which may be called `refs`.
    rel.components().skip(1).any(|c| c.as_os_str() == "refs")
        || rel.file_name().is_some_and(|f| {
            let f = f.to_string_lossy();
            let f = f.strip_suffix(".lock").unwrap_or(&f);
            f == "packed-refs" || f == "HEAD"
        })
}

/// Measures every Docker host's volumes every `policy.storage.measure_every`
/// (the storage quota, the console's Volumes page and `reconciler volumes`
/// read what it stores). The first measurement comes at start.
pub(super) async fn storage_loop(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if shared.ctx.docker.is_empty() {
        return;
    }
    // Download helpers of a Berth that stopped mid-download.
    for backend in shared.ctx.docker.values().flatten() {
        if let Some(docker) = backend.docker()
            && let Ok(n) = docker.remove_stale_helpers().await
            && n > 0
        {
            tracing::info!(endpoint = %docker.name, helpers = n, "removed stale volume download helpers");
        }
    }
    let every = shared.ctx.site.storage_measure_every();
    loop {
        // A walk of a large host is not waited for at shutdown.
        let found = tokio::select! {
            found = crate::ops::storage::measure(&shared.ctx) => found,
            _ = stop.wait_for(|s| *s) => return,
        };
        for m in found {
            if m.error.is_none() {
                shared
                    .metrics
                    .measured_volumes(&m.endpoint, m.bytes, m.seconds);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Longest a usage round may take before it is given up (each of its
/// calls has a 10 s bound of its own).
const ROUND_DEADLINE: Duration = Duration::from_secs(300);

/// Ticks every `every`; one that comes late delays the next rather than
/// bunching them (a long round is not followed by a burst).
pub(super) fn ticks(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// Waits for the next tick: `false` once `serve` is stopping.
pub(super) async fn next_tick(
    ticks: &mut tokio::time::Interval,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = ticks.tick() => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// Usage accounting: a sampling round over every Docker host every
/// `policy.usage.sample_every` (each host's round within that time).
pub(super) async fn usage_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if shared.ctx.docker.is_empty() {
        return;
    }
    let every = shared.ctx.site.usage_sample_every();
    let mut ticks = ticks(every);
    while next_tick(&mut ticks, &mut stop).await {
        // A round may outlast the interval on a large host (the next tick
        // waits for it); only one that hangs is given up.
        let started = Instant::now();
        let rounds = tokio::select! {
            r = crate::ops::usage::sample(&shared.ctx, every.max(ROUND_DEADLINE)) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let seconds = started.elapsed().as_secs_f64();
        if let Err(e) = crate::ops::usage::refresh_budgets(&shared.ctx, crate::store::now()).await {
            tracing::warn!(cause = %e, "summing the groups' budgets");
        }
        match crate::ops::usage::monthly_csv(&shared.ctx, jiff::Timestamp::now()).await {
            Ok(Some(path)) => {
                tracing::info!(path = %path.display(), "wrote last month's usage report")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(cause = %e, "writing last month's usage report"),
        }
        for round in rounds.iter().filter(|r| r.error.is_none()) {
            tracing::debug!(endpoint = %round.endpoint, containers = round.containers, seconds, "usage sampled");
            for (account, a) in &round.by_account {
                shared.metrics.used(account, a);
            }
        }
    }
}

/// Samples running containers and stops idle ones (see [`crate::ops::cull`]),
/// every `policy.idle.sample_every`; does nothing when no group has an
/// `idle_stop_after`.
pub(super) async fn culling_loop(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let site = &shared.ctx.site;
    if !site
        .policy
        .quotas
        .values()
        .any(|q| q.idle_stop_after.is_some() || q.gpu_idle_stop_after.is_some())
    {
        return;
    }
    let every = berth_spec::site::duration_or(
        &site.policy.idle.sample_every,
        std::time::Duration::from_secs(300),
    );
    let mut culler = crate::ops::cull::Culler::default();
    loop {
        let candidates: Vec<crate::ops::cull::Candidate> = {
            let views = shared.views.read().await;
            views
                .values()
                .flat_map(|v| {
                    v.containers
                        .iter()
                        .filter(|c| c.backend == "docker" && c.state == "running" && !c.runner)
                        .filter_map(|c| {
                            Some(crate::ops::cull::Candidate {
                                account: v.account.clone(),
                                endpoint: c.endpoint.clone()?,
                                container: c.container.clone(),
                                gpu: c.gpu_devices.is_some(),
                            })
                        })
                })
                .collect()
        };
        for account in culler.sweep(&shared.ctx, &candidates).await {
            refresh_view(&shared, &account, crate::clients::Observed::default(), true).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::names_a_ref;
    use std::path::Path;

    #[test]
    fn only_ref_updates_of_a_push_queue_a_reconcile() {
        for path in [
            "alice/workspace.git/refs/heads/main",
            "alice/workspace.git/refs/heads/main.lock",
            "alice/workspace.git/packed-refs",
            "alice/workspace.git/HEAD",
        ] {
            assert!(names_a_ref(Path::new(path)), "{path}");
        }
        for path in [
            "alice/workspace.git/objects/ab/cdef",
            "alice/workspace.git/objects/incoming-x1/pack/pack-1.pack",
            "alice/workspace.git/config",
            "refs/workspace.git/objects/ab/cdef",
            "alice",
        ] {
            assert!(!names_a_ref(Path::new(path)), "{path}");
        }
    }
}
